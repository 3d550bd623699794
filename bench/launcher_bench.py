"""Measure 3: creating a session with an instance through EC2 Fleet, against its critical path, under the latency model.

The baseline is the critical path itself, run in this process with the same
model and the same calls: key pair (then its SSM put), group (then its
ingress rule) and the live-session slot (read, then conditional write) side
by side, then the profile template's version, the session's own launch
template, the subnets, ``CreateFleet`` and the template's delete. Anything
``create_session`` adds beyond that (extra round trips, serial steps, local
work) shows in the ratio. The handler's secret and idempotency calls are in
neither side.

Two rows: the legacy profile (on demand, one ``CreateFleet``), and a
``spot-first`` profile with spot exhausted (``tests/support/capacity.py``),
against the critical path plus one more ``CreateFleet``, with the count of
fleet calls each create made (exactly two: spot, then on demand). A
capacity error pays the model's round trip on both sides, as EC2's would.
"""

from __future__ import annotations

import base64
import io
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta

from aws import factory
from launch import create_session, ssh_from
from report import Row
from session_naming import SessionName, session_tags, tag_specifications
from session_naming.profiles import Profile
from session_naming.settings import load_launcher
from slots import Slots
from throttle import Model

from tests.support.capacity import Capacity
from tests.support.stack import make_launch_template
from tools.local_stack import make_launcher_stack

REGION = "eu-west-1"  # not one the sweep seeds: its key-pair count stays small
CIDRS = ("203.0.113.0/24",)


def key_pair(ec2, ssm, name: SessionName) -> None:
    """A session's key pair and its private key's SecureString: the minimal calls."""
    answer = ec2.create_key_pair(
        KeyName=name, KeyType="ed25519", TagSpecifications=tag_specifications(name, ["key-pair"])
    )
    ssm.put_parameter(
        Name=f"/{name}/private-key", Value=answer["KeyMaterial"], Type="SecureString", Tags=session_tags(name)
    )


def group(ec2, name: SessionName, cidrs=()) -> str:
    """A session's group (and its SSH rule when there are CIDRs): the minimal calls."""
    spec = tag_specifications(name, ["security-group"])
    ident = ec2.create_security_group(GroupName=name, Description="bench", TagSpecifications=spec)["GroupId"]
    if cidrs:
        ec2.authorize_security_group_ingress(GroupId=ident, IpPermissions=[ssh_from(cidrs)])
    return ident


def slot(dynamodb, table: str, ident: str) -> None:
    """A live-session slot's minimal calls: a consistent read, then a conditional write."""
    key = {"id": {"S": ident}}
    dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)
    dynamodb.put_item(
        TableName=table, Item={**key, "version": {"N": "1"}}, ConditionExpression="attribute_not_exists(id)"
    )


def fleet_tail(
    ec2, template: str, name: SessionName, group_id: str, market: str = "on-demand", user_data: str | None = None
) -> None:
    """After the slots: the profile template's data, the session's own template, the subnets, the fleet, the delete.

    ``market`` ``spot-first`` asks spot, then on-demand (the capacity fallback's one more call).
    """
    data = ec2.describe_launch_template_versions(LaunchTemplateId=template, Versions=["$Default"])
    data = dict(data["LaunchTemplateVersions"][0]["LaunchTemplateData"])
    data.update(
        SecurityGroupIds=[group_id],
        KeyName=str(name),
        InstanceInitiatedShutdownBehavior="terminate",
        TagSpecifications=tag_specifications(name, ["instance", "volume", "network-interface"]),
    )
    if user_data:
        data["UserData"] = base64.b64encode(user_data.encode()).decode()
    own = ec2.create_launch_template(
        LaunchTemplateName=str(name),
        LaunchTemplateData=data,
        TagSpecifications=tag_specifications(name, ["launch-template"]),
    )["LaunchTemplate"]["LaunchTemplateId"]
    subnets = [
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    ]
    config = {
        "LaunchTemplateSpecification": {"LaunchTemplateId": own, "Version": "$Latest"},
        "Overrides": [{"SubnetId": s} for s in sorted(subnets)],
    }
    for ask in ("spot", "on-demand") if market == "spot-first" else (market,):
        answer = ec2.create_fleet(
            Type="instant",
            TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": ask},
            LaunchTemplateConfigs=[config],
        )
        if any(entry.get("InstanceIds") for entry in answer.get("Instances") or ()):
            break
    ec2.delete_launch_template(LaunchTemplateId=own)


def critical_path(clients, template: str, table: str, market: str = "on-demand") -> None:
    """The fewest calls a create with an instance needs, in the fewest rounds.

    Key pair (then its SSM put), group (then its SSH rule) and the live-session
    slot (a read, then a conditional write) side by side; then the profile
    template's version, the session's own template, the subnets, one
    CreateFleet per market asked, and the template's delete.
    """
    ec2, ssm, dynamodb = clients("ec2", REGION), clients("ssm", REGION), clients("dynamodb", REGION)
    name = SessionName.make("ec2-test-runner", timedelta(hours=1))

    with ThreadPoolExecutor(max_workers=3) as pool:
        k = pool.submit(key_pair, ec2, ssm, name)
        g = pool.submit(group, ec2, name, CIDRS)
        s = pool.submit(slot, dynamodb, table, f"slots#bench-critical-path#{name.token}")
    k.result(), s.result()
    fleet_tail(ec2, template, name, g.result(), market)


def refusals_cost_a_round_trip(client, model: Model) -> None:
    """A CreateFleet that ``Capacity`` answers (no instance, capacity errors) pays the model's round trip too.

    ``Capacity`` answers such a call before it is sent, so the model's
    ``before-send`` never sees it; EC2 would have taken a round trip to say no.
    Registered first, this runs before ``Capacity`` answers, on both sides alike.
    """

    def before_call(context, **_):
        if context.get("ec2-sessions-errors"):
            with model._lock:
                model.attempts["CreateFleet (capacity error)"] += 1
            time.sleep(model.latency)

    client.meta.events.register_first("before-call.ec2.CreateFleet", before_call)


def timed(runs: int, ours, ideal) -> tuple[list[float], list[float]]:
    """``runs`` of each, interleaved so machine noise hits both alike."""
    a, b = [], []
    for _ in range(runs):
        start = time.perf_counter()
        ours()
        a.append(time.perf_counter() - start)
        start = time.perf_counter()
        ideal()
        b.append(time.perf_counter() - start)
    return a, b


def measure(latency: float, runs: int, log) -> tuple[list[Row], list[str]]:
    log(f"launcher: {runs} creates with an instance through CreateFleet, then {runs} spot-first on exhausted spot")
    template = make_launch_template(factory(), REGION)
    stack = make_launcher_stack(factory(), "BenchWebhookSecret0123456789abcdefghijklmnopqr", REGION)
    settings = load_launcher({"LAUNCH_TEMPLATE_ID": template, "MAX_LIVE_SESSIONS": "2000", **stack})
    model, reference = Model(latency=latency, throttle=False), Model(latency=latency, throttle=False)
    clients, ideal_clients = factory(model), factory(reference)
    capacity, ideal_capacity = Capacity(), Capacity()
    for side, on in ((model, clients), (reference, ideal_clients)):
        refusals_cost_a_round_trip(on("ec2", REGION), side)
    capacity.attach(clients("ec2", REGION)), ideal_capacity.attach(ideal_clients("ec2", REGION))
    slots = Slots(clients("dynamodb", REGION), settings.idempotency_table)
    table = settings.idempotency_table
    spot_first = Profile("spot-first", frozenset({"ec2-session"}), template, market="spot-first")

    def create(profile):
        return lambda: create_session(
            clients,
            settings,
            "ec2-test-runner",
            timedelta(hours=1),
            datetime.now(UTC),
            slots=slots,
            ingress_cidrs=CIDRS,
            profile=profile,
        )

    rows, details = [], []
    # 1. The legacy profile: on demand, one CreateFleet.
    create(settings.profiles["default"])(), critical_path(ideal_clients, template, table)  # warm clients, connections
    model.reset(), reference.reset()
    ours, ideal = timed(
        runs, create(settings.profiles["default"]), lambda: critical_path(ideal_clients, template, table)
    )
    a, b = statistics.median(ours), statistics.median(ideal)
    rows.append(
        Row(
            "launcher: fleet create with instance (on demand)",
            f"{a * 1000:.0f} ms vs {b * 1000:.0f} ms critical path",
            "<= 1.3x",
            a / b,
            a <= 1.3 * b,
        )
    )
    details += [
        f"launcher: calls per fleet create {per_run(model, runs)}",
        f"launcher: calls on its critical path {per_run(reference, runs)}",
    ]

    # 2. Spot first with spot exhausted: one more CreateFleet, on demand.
    capacity.exhaust("spot"), ideal_capacity.exhaust("spot")
    model.reset(), reference.reset()
    capacity.fleet_calls.clear()
    fleet_calls = []

    def ours_spot():
        before = len(capacity.fleet_calls)
        answer = create(spot_first)()
        fleet_calls.append(capacity.fleet_calls[before:])
        assert answer["instances"][0]["market"] == "on-demand", answer["instances"]

    with redirect_stdout(io.StringIO()):  # each fallback prints its CapacityFallbacks metric
        ours, ideal = timed(runs, ours_spot, lambda: critical_path(ideal_clients, template, table, "spot-first"))
    a, b = statistics.median(ours), statistics.median(ideal)
    exact = all(calls == ["spot", "on-demand"] for calls in fleet_calls)
    rows += [
        Row(
            "launcher: spot fallback create (spot exhausted)",
            f"{a * 1000:.0f} ms vs {b * 1000:.0f} ms critical path + 1 CreateFleet",
            "<= 1.3x",
            a / b,
            a <= 1.3 * b,
        ),
        Row(
            "launcher: spot fallback fleet calls per create",
            f"{sum(map(len, fleet_calls)) / runs:g} (spot, then on-demand: {'every' if exact else 'NOT every'} create)",
            "== 2",
            None,
            exact,
        ),
    ]
    details += [
        f"launcher: calls per spot-first create on exhausted spot {per_run(model, runs)}",
        f"launcher: calls on its critical path {per_run(reference, runs)}",
    ]
    capacity.restore(), ideal_capacity.restore()
    return rows, details


def per_run(model: Model, runs: int) -> dict[str, float]:
    return {op: n / runs for op, n in sorted(model.attempts.items())}
