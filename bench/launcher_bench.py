"""Measure 3: creating a session with an instance, against its critical path, under the latency model.

The baseline is the critical path itself, run in this process with the same
clients and the same calls: key pair (then its SSM put), group (then its
ingress rule) and the live-session slot (read, then conditional write) side
by side, then the instance. Anything ``create_session``
adds beyond that (extra round trips, serial steps) shows in the ratio.
The handler's secret and idempotency calls are not in either side.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from aws import factory
from launch import create_session, ssh_from
from report import Row
from session_naming import SessionName, session_tags, tag_specifications
from session_naming.settings import load_launcher
from slots import Slots
from throttle import Model

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


def critical_path(clients, template: str, table: str) -> None:
    ec2, ssm, dynamodb = clients("ec2", REGION), clients("ssm", REGION), clients("dynamodb", REGION)
    name = SessionName.make("ec2-test-runner", timedelta(hours=1))

    with ThreadPoolExecutor(max_workers=3) as pool:
        k = pool.submit(key_pair, ec2, ssm, name)
        g = pool.submit(group, ec2, name, CIDRS)
        s = pool.submit(slot, dynamodb, table, f"slots#bench-critical-path#{name.token}")
    k.result(), s.result()
    ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": template},
        MinCount=1,
        MaxCount=1,
        KeyName=name,
        SecurityGroupIds=[g.result()],
        TagSpecifications=tag_specifications(name, ["instance"]),
    )


def measure(latency: float, runs: int, log) -> tuple[list[Row], list[str]]:
    log(f"launcher: {runs} creates with an instance, {latency * 1000:g} ms per call")
    template = make_launch_template(factory(), REGION)
    stack = make_launcher_stack(factory(), "BenchWebhookSecret0123456789abcdefghijklmnopqr", REGION)
    settings = load_launcher({"LAUNCH_TEMPLATE_ID": template, "MAX_LIVE_SESSIONS": "2000", **stack})
    model, reference = Model(latency=latency, throttle=False), Model(latency=latency, throttle=False)
    clients, ideal_clients = factory(model), factory(reference)
    slots = Slots(clients("dynamodb", REGION), settings.idempotency_table)
    create = lambda: create_session(  # noqa: E731
        clients,
        settings,
        "ec2-test-runner",
        timedelta(hours=1),
        datetime.now(UTC),  # noqa: E731
        slots=slots,
        ingress_cidrs=CIDRS,
        profile=settings.profiles["default"],
    )
    table = settings.idempotency_table
    (
        create(),
        critical_path(ideal_clients, template, table),
    )  # warm the clients and connections: not a cold-start measure
    model.reset(), reference.reset()
    ours, ideal = [], []
    for _ in range(runs):
        start = time.perf_counter()
        create()
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        critical_path(ideal_clients, template, table)
        ideal.append(time.perf_counter() - start)
    a, b = statistics.median(ours), statistics.median(ideal)
    calls = {op: n / runs for op, n in sorted(model.attempts.items())}
    path = {op: n / runs for op, n in sorted(reference.attempts.items())}
    row = Row(
        "launcher: create with instance",
        f"{a * 1000:.0f} ms vs {b * 1000:.0f} ms critical path",
        "<= 1.3x",
        a / b,
        a <= 1.3 * b,
    )
    return [row], [f"launcher: calls per create_session {calls}", f"launcher: calls on the critical path {path}"]
