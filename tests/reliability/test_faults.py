"""Faults injected through botocore hooks, against the moto server over HTTP.

The collector meets throttling, 5xx answers, dropped connections, read
timeouts, dependency races, resources vanishing between list and delete, and
one refused resource; it also runs out of Lambda time. The launcher dies
(a ``BaseException`` from an ``after-call`` hook, which its ``except
Exception`` rollback cannot catch) after each of its creation steps. In every
case: nothing live is touched, and whatever was due or left behind is gone
after the next sweep.

One or two injections per call, so botocore's adaptive back-off stays short.
"""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from session_naming import SESSION_TAG, SessionName, clients
from session_naming.settings import load_collector
from sweep import sweep

from tests.reliability.tally import TALLY
from tests.support.clients import client_factory
from tests.support.faults import Faults
from tests.support.function_url import url_event
from tests.support.handlers import LambdaContext, load_handler
from tests.support.responses import request_params
from tests.support.seed import ALL_KINDS, inventory, name_expiring, seed, utc
from tests.support.stack import REGION, make_launch_template

NOW = utc("2026-11-24T22:00:00")
BASE = "ec2-test-runner"
HOUR = timedelta(hours=1)
GRACE = timedelta(seconds=300)
NOTHING = {kind: set() for kind in ALL_KINDS}
DELETES = {
    "instance": ("ec2", "TerminateInstances"),
    "parameter": ("ssm", "DeleteParameters"),  # ten to a call
    "key_pair": ("ec2", "DeleteKeyPair"),
    "volume": ("ec2", "DeleteVolume"),
    "network_interface": ("ec2", "DeleteNetworkInterface"),
    "image": ("ec2", "DeregisterImage"),
    "snapshot": ("ec2", "DeleteSnapshot"),  # twice a session: its own and its AMI's
    "address": ("ec2", "ReleaseAddress"),
    "security_group": ("ec2", "DeleteSecurityGroup"),
}
# The identifier each tag-identified kind's delete names.
IDENT_PARAM = {
    "DeleteVolume": "VolumeId",
    "DeleteNetworkInterface": "NetworkInterfaceId",
    "DeregisterImage": "ImageId",
    "DeleteSnapshot": "SnapshotId",
    "ReleaseAddress": "AllocationId",
}


def named(params: dict) -> set[str]:
    """Every resource a request names: ``KeyName=x`` (EC2) or ``{"Names": [...]}`` (SSM)."""
    values = params.values()
    return {str(v) for v in values if not isinstance(v, list)} | {
        str(n) for v in values if isinstance(v, list) for n in v
    }


def run(clients, now=NOW, time_left=lambda: 900.0, dry_run=False, **env):
    settings = load_collector({"SESSION_BASES": BASE, "REGIONS": REGION, "GRACE_SECONDS": "300", **env})
    return sweep(clients, settings, now, time_left, dry_run)


def deleted(summary):
    return {kind: set(report["deleted"]) for kind, report in summary["regions"][REGION].items()}


def kept(summary):
    return {(kind, k["name"], k["reason"]) for kind, r in summary["regions"][REGION].items() for k in r["kept"]}


def check_account(look, expired, live):
    """Every live session whole, nothing expired left; counted before asserting."""
    have = inventory(look, REGION)
    missing = [(kind, name) for name in live for kind in ALL_KINDS if name not in have[kind]]
    leaked = [(kind, name) for name in expired for kind in ALL_KINDS if name in have[kind]]
    TALLY.add(wrongful_deletions=len(missing), leaked=len(leaked), checks=1)
    assert missing == []
    assert leaked == []


@pytest.fixture
def collector(aws):
    """Clients of one collector container (AWS's group and terminate rules modelled)."""
    return client_factory(aws_rules=True)


# -- the collector: transient faults on every delete ------------------------------------------------


TRANSIENT = [
    ("RequestLimitExceeded", 400),  # EC2's throttling answer
    ("InternalError", 500),
    ("ServiceUnavailable", 503),
    ("reset", 400),  # connection reset before the answer
    ("timeout", 400),  # read timeout
]


def test_transient_faults_on_every_delete_are_retried_and_every_expired_resource_still_goes(collector, look):
    """One expired session per fault; the first delete of each of its nine kinds meets that fault
    once, then succeeds (the second snapshot, the AMI's, goes at the first attempt)."""
    expired = [name_expiring(BASE, -HOUR * (i + 1), NOW) for i in range(len(TRANSIENT))]
    live = [name_expiring(BASE, -timedelta(seconds=299), NOW)]  # expired, but within the grace: must survive
    made = [seed(collector, REGION, name) for name in expired + live]
    faults = Faults()
    for ids, (fault, status) in zip(made, TRANSIENT, strict=False):
        ids = set(ids.values())
        # A throttle slows the adaptive client for the rest of its life: throttle the last delete only.
        targets = [DELETES["security_group"]] if fault == "RequestLimitExceeded" else DELETES.values()
        for service, operation in targets:
            faults.inject(
                collector(service, REGION),
                operation,
                fault,
                times=1,
                status=status,
                when=lambda params, ids=ids: bool(ids & named(params)),
            )

    try:
        summary = run(collector)
    finally:
        TALLY.add(faults=faults.total, examples=1)

    assert faults.injected == {fault: 1 if fault == "RequestLimitExceeded" else len(DELETES) for fault, _ in TRANSIENT}
    assert summary["totals"]["failed"] == 0, summary
    assert deleted(summary) == {kind: set(expired) for kind in ALL_KINDS}
    check_account(look, expired, live)


def test_dependency_violation_on_a_group_keeps_it_in_use_and_the_next_run_deletes_it(collector, look):
    session, live = name_expiring(BASE, -HOUR, NOW), name_expiring(BASE, HOUR, NOW)
    for name in (session, live):
        seed(collector, REGION, name, kinds=("parameter", "key_pair", "security_group"))
    faults = Faults()
    faults.inject(collector("ec2", REGION), "DeleteSecurityGroup", "DependencyViolation", times=1)

    first = run(collector)
    second = run(collector)
    TALLY.add(faults=faults.total, examples=1)

    assert faults.total == 1
    assert ("security_group", session, "in-use") in kept(first)
    assert first["totals"]["failed"] == 0
    assert deleted(first)["key_pair"] == {session}
    assert deleted(second)["security_group"] == {session}
    check_account(look, [session], [])
    assert inventory(look, REGION)["security_group"] == {live}


def test_resources_deleted_by_someone_else_between_list_and_delete_count_as_deleted(collector, look):
    """Every kind but instances is removed out of band just before the collector's own call
    (moto then answers its NotFound code, InvalidAMIID.Unavailable for a deregistered AMI, or
    lists the parameters as InvalidParameters, which the collector asks about one by one and
    meets ParameterNotFound); key pairs are answered InvalidKeyPair.NotFound by injection
    (moto deletes a missing key pair quietly)."""
    sessions = [name_expiring(BASE, -HOUR * (i + 1), NOW) for i in range(2)]
    live = name_expiring(BASE, HOUR, NOW)
    kinds = tuple(kind for kind in ALL_KINDS if kind != "instance")
    for name in (*sessions, live):
        seed(collector, REGION, name, kinds=kinds)
    side_ec2 = boto3.client("ec2", region_name=REGION)
    side_ssm = boto3.client("ssm", region_name=REGION)
    raced = []

    def vanish(operation, param, call):
        def before(request, **_):
            ident = request_params(request).get(param)
            if ident:
                call(**{param: ident})
                raced.append(ident)

        collector("ec2", REGION).meta.events.register(f"before-send.ec2.{operation}", before)

    vanish("DeleteSecurityGroup", "GroupId", side_ec2.delete_security_group)
    for operation, param in IDENT_PARAM.items():
        vanish(operation, param, getattr(side_ec2, boto3_name(operation)))

    def vanish_parameter(request, **_):
        for name in request_params(request)["Names"]:
            side_ssm.delete_parameter(Name=name)
            raced.append(name)

    collector("ssm", REGION).meta.events.register("before-send.ssm.DeleteParameters", vanish_parameter)
    asked_alone = []
    collector("ssm", REGION).meta.events.register(
        "before-send.ssm.DeleteParameter", lambda request, **_: asked_alone.append(request_params(request)["Name"])
    )
    faults = Faults()
    faults.inject(collector("ec2", REGION), "DeleteKeyPair", "InvalidKeyPair.NotFound", times=2)

    summary = run(collector)
    TALLY.add(faults=faults.total + len(raced), examples=1)

    # Per session: a group, a parameter, a volume, an interface, an AMI, two snapshots, an address.
    assert len(raced) == 2 * 8 and faults.total == 2
    assert sorted(asked_alone) == sorted(f"/{name}/private-key" for name in sessions)
    assert summary["totals"]["failed"] == 0, summary
    assert deleted(summary) == {kind: set(sessions) for kind in kinds} | {"instance": set()}
    have = inventory(look, REGION)
    assert all(have[kind] == {live} for kind in kinds if kind != "key_pair")
    assert live in have["key_pair"]


def boto3_name(operation: str) -> str:
    """``DeleteVolume`` → ``delete_volume``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def test_unauthorized_on_one_instance_fails_only_that_session_and_the_rest_are_swept(collector, look):
    refused, others = name_expiring(BASE, -HOUR, NOW), [name_expiring(BASE, -HOUR, NOW) for _ in range(2)]
    live = name_expiring(BASE, HOUR, NOW)
    ids = {name: seed(collector, REGION, name, kinds=("instance", "security_group")) for name in (refused, *others)}
    seed(collector, REGION, live, kinds=("instance", "security_group"))
    refused_id = ids[refused]["instance"]
    faults = Faults()
    faults.inject(
        collector("ec2", REGION),
        "TerminateInstances",
        "UnauthorizedOperation",
        when=lambda p: refused_id in p.values(),
    )

    summary = run(collector)
    TALLY.add(faults=faults.total, examples=1)

    report = summary["regions"][REGION]["instance"]
    assert faults.total >= 1
    assert report["failed"] == [{"name": refused, "error": "UnauthorizedOperation"}]
    assert set(report["deleted"]) == set(others)
    assert summary["totals"]["failed"] == 1
    have = inventory(look, REGION)
    assert have["instance"] == {refused, live}
    # the refused session's group is still used by its instance: kept, not failed
    assert ("security_group", refused, "in-use") in kept(summary)
    assert have["security_group"] == {refused, live}
    TALLY.add(wrongful_deletions=int(live not in have["instance"]), checks=1)


@pytest.mark.parametrize("ticks_before_running_out", [3])
def test_lambda_time_running_out_mid_sweep_stops_cleanly_and_the_next_run_finishes(
    collector, look, ticks_before_running_out
):
    expired = [name_expiring(BASE, -HOUR * (i + 1), NOW) for i in range(3)]
    live = [name_expiring(BASE, HOUR, NOW)]
    for name in expired + live:
        seed(collector, REGION, name, kinds=("parameter", "key_pair", "security_group"))
    ticks = iter([60.0] * ticks_before_running_out)

    first = run(collector, time_left=lambda: next(ticks, 9.9))
    second = run(collector)
    TALLY.add(examples=1)

    assert first["cut_short"] == "time"
    assert first["totals"]["deleted"] == ticks_before_running_out
    assert first["totals"]["failed"] == 0
    assert second["cut_short"] is None
    assert first["totals"]["deleted"] + second["totals"]["deleted"] == 9
    have = inventory(look, REGION)
    leaked = [(kind, n) for n in expired for kind in ("parameter", "key_pair", "security_group") if n in have[kind]]
    missing = [(kind, n) for n in live for kind in ("parameter", "key_pair", "security_group") if n not in have[kind]]
    TALLY.add(leaked=len(leaked), wrongful_deletions=len(missing), checks=1)
    assert leaked == [] and missing == []


# -- the launcher dying after each creation step -----------------------------------------------------


class LauncherDied(BaseException):
    """The process ending mid-request: not an ``Exception``, so no rollback runs."""


@pytest.fixture
def launcher(launcher_stack, look, monkeypatch):
    handler = load_handler("launcher")
    invoke = lambda event: handler.lambda_handler(event, LambdaContext())  # noqa: E731
    invoke.env = monkeypatch.setenv
    return invoke


@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("ec2", "CreateKeyPair"),
        ("ssm", "PutParameter"),
        ("ec2", "CreateSecurityGroup"),
        ("ec2", "AuthorizeSecurityGroupIngress"),
        ("ec2", "CreateLaunchTemplate"),
        ("ec2", "CreateFleet"),
    ],
)
def test_launcher_dying_after_a_creation_step_leaves_only_named_tagged_resources_the_collector_removes(
    launcher, look, service, operation
):
    died = []

    def die(**_):
        died.append(operation)
        raise LauncherDied(operation)

    instance = operation in ("CreateLaunchTemplate", "CreateFleet")  # the others die before an instance is asked for
    if instance:
        launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    clients.client(service, REGION).meta.events.register(f"after-call.{service}.{operation}", die)
    body = {"lifetime_minutes": 5, "instance": instance, "ingress_cidrs": ["203.0.113.0/24"]}
    event = url_event("POST", "/sessions", body)

    with pytest.raises(LauncherDied):
        launcher(event)
    TALLY.add(faults=len(died), examples=1)

    assert died == [operation]
    left = inventory(look, REGION)
    names = set().union(*left.values())
    assert len(names) == 1, left  # one session's resources, whatever step it reached
    [name] = names
    session = SessionName.parse(name)
    assert session is not None and session.base == BASE
    ec2, ssm = look("ec2", REGION), look("ssm", REGION)
    tag_sets = [k.get("Tags") for k in ec2.describe_key_pairs()["KeyPairs"]]
    tag_sets += [g.get("Tags") for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
    tag_sets += [
        i.get("Tags")
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    tag_sets += [
        t.get("Tags")
        for t in ec2.describe_launch_templates()["LaunchTemplates"]
        if t["LaunchTemplateName"] != "ec2-sessions-runner"
    ]
    for parameter in ssm.describe_parameters()["Parameters"]:
        assert parameter["Name"] == f"/{name}/private-key"
        tag_sets.append(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=parameter["Name"])["TagList"])
    untagged = [tags for tags in tag_sets if {t["Key"]: t["Value"] for t in tags or ()}.get(SESSION_TAG) != name]
    assert untagged == []
    expected_made = {
        "CreateKeyPair": {"key_pair"},
        "PutParameter": {"key_pair", "parameter"},
        "CreateSecurityGroup": {"security_group"},
        "AuthorizeSecurityGroupIngress": {"security_group"},
        "CreateLaunchTemplate": {"key_pair", "parameter", "security_group", "launch_template"},
        "CreateFleet": {"key_pair", "parameter", "security_group", "instance"},  # its template went in a finally
    }[operation]
    assert expected_made <= {kind for kind, have in left.items() if have}

    after = session.expires + GRACE + timedelta(seconds=1)
    first = run(client_factory(aws_rules=True), now=after)
    final = inventory(look, REGION)
    if final != NOTHING:  # a group held by the instance it outlived goes on the sweep after it ends
        run(client_factory(aws_rules=True), now=after)
        final = inventory(look, REGION)
    leaked = sum(len(v) for v in final.values())
    TALLY.add(leaked=leaked, checks=1)
    assert first["totals"]["failed"] == 0, first
    assert final == NOTHING
