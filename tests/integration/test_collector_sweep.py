"""The collector against a moto server over HTTP: what it deletes, what it keeps, and why."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from pacing import Pacer
from session_naming import KEEP_TAG, SESSION_TAG, SessionName, session_tags
from session_naming.settings import load_collector
from sweep import sweep

from tests.support.clients import client_factory
from tests.support.faults import Faults
from tests.support.responses import request_params
from tests.support.seed import (
    ALL_KINDS,
    NAMED_KINDS,
    TAGGED_KINDS,
    inventory,
    name_expiring,
    seed,
    seed_left_behind,
    utc,
)

NOW = utc("2026-11-24T22:00:00")
REGION = "us-east-1"
BASE = "ec2-test-runner"
HOUR = timedelta(hours=1)


def settings(**env):
    return load_collector({"SESSION_BASES": BASE, "REGIONS": REGION, "GRACE_SECONDS": "300", **env})


def run(clients, now=NOW, dry_run=False, time_left=lambda: 900.0, **env):
    return sweep(clients, settings(**env), now=now, time_left=time_left, dry_run=dry_run)


def deleted(summary, region=REGION):
    return {kind: set(report["deleted"]) for kind, report in summary["regions"][region].items()}


def kept(summary, region=REGION):
    return {(kind, k["name"], k["reason"]) for kind, r in summary["regions"][region].items() for k in r["kept"]}


@pytest.fixture
def clients(aws):
    """Clients of one collector container, with AWS's group and terminate rules modelled."""
    return client_factory(aws_rules=True)


@pytest.fixture
def pacer_waits(monkeypatch) -> list[int]:
    """The sweep's EC2 pacer, counted: one entry per turn a deletion waited for."""
    waits: list[int] = []

    class CountingPacer(Pacer):
        def wait(self):
            waits.append(1)
            super().wait()

    monkeypatch.setattr("sweep.Pacer", CountingPacer)
    return waits


def test_collector_deletes_every_kind_of_expired_session_resource(clients):
    expired = name_expiring(BASE, -HOUR, NOW)
    seed(clients, REGION, expired)

    summary = run(clients)

    assert deleted(summary) == {kind: {expired} for kind in ALL_KINDS}
    # Ten kinds, and the AMI's own snapshot, which carries the session tag too.
    assert summary["totals"] == {"deleted": 11, "kept": 0, "failed": 0}
    assert inventory(clients, REGION) == {kind: set() for kind in ALL_KINDS}


def test_collector_keeps_live_foreign_malformed_and_keep_tagged_resources(clients):
    expired = name_expiring(BASE, -HOUR, NOW)
    live = name_expiring(BASE, HOUR, NOW)
    within_grace = name_expiring(BASE, -timedelta(seconds=299), NOW)
    foreign = name_expiring("someone-else", -HOUR, NOW)
    look_alike = name_expiring(BASE + "-2", -HOUR, NOW)
    kept_by_hand = name_expiring(BASE, -HOUR, NOW)
    malformed = f"{BASE}/20261301T000000Z/0123456789abcdef"
    near_miss = f"{BASE}/20200101T000000Z/0123456789abcde"
    for name in (expired, live, within_grace, foreign, look_alike):
        seed(clients, REGION, name)
    seed(clients, REGION, kept_by_hand, keep=True)
    for name in (malformed, near_miss):
        seed(clients, REGION, name, kinds=("key_pair",), tagged=False)
    before = inventory(clients, REGION)

    summary = run(clients)

    assert deleted(summary) == {kind: {expired} for kind in ALL_KINDS}
    reasons = kept(summary)
    for kind in ALL_KINDS:
        assert (kind, live, "not-expired") in reasons
        assert (kind, within_grace, "not-expired") in reasons
        assert (kind, kept_by_hand, "keep-tag") in reasons
    assert ("key_pair", malformed, "unparsable") in reasons
    assert ("key_pair", near_miss, "unparsable") in reasons
    assert not [r for r in reasons if r[1] in (foreign, look_alike)]  # never even listed
    after = inventory(clients, REGION)
    assert after == {kind: names - {expired} for kind, names in before.items()}


def test_collector_keeps_whole_session_when_any_of_its_resources_is_tagged_keep(clients):
    session = name_expiring(BASE, -HOUR, NOW)
    seed(clients, REGION, session, kinds=("parameter", "key_pair", "security_group"))
    clients("ec2", REGION).create_tags(
        Resources=[seed(clients, REGION, session, kinds=("instance",))["instance"]],
        Tags=[{"Key": "ec2-sessions:keep", "Value": "true"}],
    )

    summary = run(clients)

    assert summary["totals"]["deleted"] == 0
    assert {reason for _, _, reason in kept(summary)} == {"keep-tag"}


def test_collector_keeps_group_still_in_use_then_deletes_it_once_free(clients):
    ec2 = clients("ec2", REGION)
    session = name_expiring(BASE, -HOUR, NOW)
    group = seed(clients, REGION, session, kinds=("security_group",))["security_group"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    interface = ec2.create_network_interface(SubnetId=subnet, Groups=[group])["NetworkInterface"]
    delete_calls = []
    ec2.meta.events.register("before-send.ec2.DeleteSecurityGroup", lambda **kw: delete_calls.append(1))

    first = run(clients)

    assert kept(first) == {("security_group", session, "in-use")}
    assert delete_calls == []  # found by DescribeNetworkInterfaces: no mutating call spent
    ec2.delete_network_interface(NetworkInterfaceId=interface["NetworkInterfaceId"])

    second = run(clients)

    assert deleted(second)["security_group"] == {session}


def test_collector_counts_dependency_violation_as_in_use(clients):
    ec2 = clients("ec2", REGION)
    session = name_expiring(BASE, -HOUR, NOW)
    group = seed(clients, REGION, session, kinds=("security_group",))["security_group"]
    live = name_expiring(BASE, HOUR, NOW)
    referencing = seed(clients, REGION, live, kinds=("security_group",))["security_group"]
    ec2.authorize_security_group_ingress(
        GroupId=referencing,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": group}]}],
    )

    summary = run(clients)

    assert ("security_group", session, "in-use") in kept(summary)
    assert summary["totals"]["failed"] == 0
    assert session in inventory(clients, REGION)["security_group"]


@pytest.mark.iam_refusal_tolerated(
    "ec2:CreateTags",
    "the second collector finds a volume the first just tagged, and IAM tags only untagged ones; in AWS the "
    "collector's reserved concurrency of 1 keeps two apart, and a refused tag never stops the terminate",
)
def test_two_collectors_at_once_delete_every_expired_resource_and_nothing_else(aws):
    seeding = client_factory(aws_rules=True)
    expired = [name_expiring(BASE, -HOUR * (i + 1), NOW) for i in range(6)]
    live = [name_expiring(BASE, HOUR * (i + 1), NOW) for i in range(4)]
    for name in expired + live:
        seed(seeding, REGION, name)
    summaries = []
    barrier = threading.Barrier(2)

    def collector():
        clients = client_factory(aws_rules=True)
        barrier.wait()
        summaries.append(run(clients))

    threads = [threading.Thread(target=collector) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [s["totals"]["failed"] for s in summaries] == [0, 0], [
        [r["failed"] for r in s["regions"][REGION].values() if r["failed"]] for s in summaries
    ]
    for kind in ALL_KINDS:
        assert set().union(*(deleted(s)[kind] for s in summaries)) == set(expired)
    assert inventory(seeding, REGION) == {kind: set(live) for kind in ALL_KINDS}


def test_dry_run_deletes_nothing_and_reports_what_a_real_run_then_deletes(clients):
    # Without instances: a rehearsal cannot free the groups an expired instance
    # holds (nor can a real run in AWS, where termination takes a minute).
    # With AMIs: a rehearsal counts the snapshots a due AMI would free.
    kinds = ("parameter", "key_pair", *TAGGED_KINDS, "security_group")
    for delta in (-HOUR, -2 * HOUR, HOUR):
        seed(clients, REGION, name_expiring(BASE, delta, NOW), kinds=kinds)
    seed(clients, REGION, name_expiring(BASE, -HOUR, NOW), kinds=kinds, keep=True)
    before = inventory(clients, REGION)

    rehearsal = run(clients, dry_run=True)

    assert rehearsal["dry_run"] is True
    assert inventory(clients, REGION) == before
    real = run(clients)
    assert deleted(real) == deleted(rehearsal)
    assert kept(real) == kept(rehearsal)


def test_throttled_calls_are_retried_and_the_sweep_completes(clients):
    faults = Faults()
    ec2, ssm = clients("ec2", REGION), clients("ssm", REGION)
    for operation in ("TerminateInstances", "DeleteKeyPair", "DeleteSecurityGroup", "DescribeKeyPairs"):
        faults.inject(ec2, operation, "RequestLimitExceeded", times=2)
    faults.inject(ssm, "DeleteParameters", "ThrottlingException", times=2)
    sessions = [name_expiring(BASE, -HOUR, NOW) for _ in range(3)]
    for name in sessions:
        seed(clients, REGION, name, kinds=NAMED_KINDS)

    summary = run(clients)

    assert faults.total == 10
    assert summary["totals"] == {"deleted": 15, "kept": 0, "failed": 0}  # five named kinds of three sessions


def test_unauthorized_resource_is_reported_and_the_rest_are_swept(clients):
    faults = Faults()
    refused, others = name_expiring(BASE, -HOUR, NOW), [name_expiring(BASE, -HOUR, NOW) for _ in range(2)]
    for name in (refused, *others):
        seed(clients, REGION, name, kinds=("key_pair",))
    faults.inject(
        clients("ec2", REGION), "DeleteKeyPair", "UnauthorizedOperation", when=lambda p: p.get("KeyName") == refused
    )

    summary = run(clients)

    report = summary["regions"][REGION]["key_pair"]
    assert report["failed"] == [{"name": refused, "error": "UnauthorizedOperation"}]
    assert set(report["deleted"]) == set(others)
    assert inventory(clients, REGION)["key_pair"] == {refused}


def test_parameters_go_ten_to_a_call_and_live_and_foreign_ones_stay(clients):
    expired = [name_expiring(BASE, -HOUR, NOW) for _ in range(25)]
    others = [name_expiring(BASE, HOUR, NOW) for _ in range(3)] + [name_expiring("someone-else", -HOUR, NOW)]
    for name in expired + others:
        seed(clients, REGION, name, kinds=("parameter",))
    calls = []
    clients("ssm", REGION).meta.events.register(
        "before-send.ssm.DeleteParameters", lambda request, **_: calls.append(request_params(request)["Names"])
    )

    summary = run(clients)

    assert sorted(len(names) for names in calls) == [5, 10, 10]
    assert deleted(summary)["parameter"] == set(expired)
    assert inventory(clients, REGION)["parameter"] == set(others)


def test_a_refused_parameter_fails_alone_and_the_rest_of_its_call_are_deleted(clients):
    expired = [name_expiring(BASE, -HOUR, NOW) for _ in range(12)]
    refused, live = expired[3], name_expiring(BASE, HOUR, NOW)
    for name in (*expired, live):
        seed(clients, REGION, name, kinds=("parameter",))
    path = f"/{refused}/private-key"
    ssm = clients("ssm", REGION)
    faults = Faults()
    faults.inject(ssm, "DeleteParameters", "AccessDeniedException", when=lambda p: path in p["Names"])
    faults.inject(ssm, "DeleteParameter", "AccessDeniedException", when=lambda p: p["Name"] == path)

    summary = run(clients)

    report = summary["regions"][REGION]["parameter"]
    assert report["failed"] == [{"name": refused, "error": "AccessDeniedException"}]
    assert set(report["deleted"]) == set(expired) - {refused}
    assert inventory(clients, REGION)["parameter"] == {refused, live}


def test_max_deletions_stops_cleanly_and_the_next_run_finishes(clients):
    for _ in range(3):
        seed(clients, REGION, name_expiring(BASE, -HOUR, NOW), kinds=("key_pair", "security_group"))

    first = run(clients, MAX_DELETIONS="4")

    assert first["cut_short"] == "max-deletions"
    assert first["totals"]["deleted"] == 4
    second = run(clients, MAX_DELETIONS="4")
    assert second["cut_short"] is None
    assert second["totals"]["deleted"] == 2
    assert inventory(clients, REGION)["security_group"] == set()


def test_a_run_cut_short_waits_for_no_more_ec2_tokens(clients, pacer_waits):
    # Paced at EC2's rate, thousands of queued deletions would otherwise wait out their turns unused.
    waits = pacer_waits
    for _ in range(30):
        seed(clients, REGION, name_expiring(BASE, -HOUR, NOW), kinds=("key_pair",))

    summary = run(clients, MAX_DELETIONS="2", DELETE_CONCURRENCY="4")

    assert summary["cut_short"] == "max-deletions"
    assert summary["totals"]["deleted"] == 2
    assert len(waits) <= 2 + 1 + 4  # the two deletions, the one that found the budget spent, the workers in flight


def test_running_out_of_lambda_time_stops_cleanly_and_the_next_run_finishes(clients):
    for _ in range(3):
        seed(clients, REGION, name_expiring(BASE, -HOUR, NOW), kinds=("key_pair",))
    clock = iter([60.0, 60.0, 9.0])

    first = run(clients, time_left=lambda: next(clock, 9.0))

    assert first["cut_short"] == "time"
    assert first["totals"]["deleted"] == 2
    second = run(clients)
    assert second["totals"]["deleted"] == 1
    assert inventory(clients, REGION)["key_pair"] == set()


def test_time_reserve_covers_the_longest_wait_for_an_ec2_token(clients):
    # 50 workers at 1 token a second: the last may sleep 50 s before its call, past a 10 s reserve.
    for _ in range(3):
        seed(clients, REGION, name_expiring(BASE, -HOUR, NOW), kinds=("key_pair",))

    slow = run(clients, time_left=lambda: 30.0, DELETE_CONCURRENCY="50", EC2_DELETE_RATE="1")
    paced = run(clients, time_left=lambda: 30.0)  # 8 workers at 5 a second: 11.6 s is enough

    assert (slow["cut_short"], slow["totals"]["deleted"]) == ("time", 0)
    assert (paced["cut_short"], paced["totals"]["deleted"]) == (None, 3)


def test_collector_sweeps_every_configured_region_in_one_run(clients):
    regions = ("us-east-1", "eu-west-1", "ap-southeast-2")
    names = {region: name_expiring(BASE, -HOUR, NOW) for region in regions}
    for region, name in names.items():
        seed(clients, region, name)
        seed(clients, region, name_expiring(BASE, HOUR, NOW))

    summary = run(clients, REGIONS=",".join(regions))

    for region, name in names.items():
        assert deleted(summary, region) == {kind: {name} for kind in ALL_KINDS}
    assert summary["totals"]["deleted"] == 3 * 11  # ten kinds and the AMI's snapshot in each region


def test_legacy_ec2test_names_are_swept_and_untagged_groups_wait_for_an_operator(clients):
    legacy = f"{BASE}/2009-10-01-1234/abcd1234"
    live_legacy = f"{BASE}/2099-10-01-1234/abcd1234"
    for name in (legacy, live_legacy):
        seed(clients, REGION, name, kinds=("key_pair", "security_group"), tagged=False)

    summary = run(clients)

    assert deleted(summary)["key_pair"] == {legacy}
    assert ("security_group", legacy, "untagged-legacy") in kept(summary)
    assert ("key_pair", live_legacy, "not-expired") in kept(summary)
    operator = run(clients, SWEEP_UNTAGGED="true")
    assert deleted(operator)["security_group"] == {legacy}
    assert inventory(clients, REGION)["security_group"] == {live_legacy}


def test_collector_keeps_resource_whose_session_tag_names_another_session(clients):
    session, other = name_expiring(BASE, -HOUR, NOW), name_expiring(BASE, HOUR, NOW)
    clients("ec2", REGION).create_key_pair(
        KeyName=session,
        KeyType="ed25519",
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "ec2-sessions:session", "Value": other}]}],
    )

    summary = run(clients)

    assert kept(summary) == {("key_pair", session, "tag-mismatch")}


def test_collector_deletes_every_expired_resource_listed_over_many_pages(clients):
    # DescribeParameters pages by position in moto: deleting while paging would skip what moves up.
    expired = [name_expiring(BASE, -HOUR, NOW) for _ in range(120)]
    live = [name_expiring(BASE, HOUR, NOW) for _ in range(15)]
    for name in expired + live:
        seed(clients, REGION, name, kinds=("parameter",))

    summary = run(clients)

    assert deleted(summary)["parameter"] == set(expired)
    assert inventory(clients, REGION)["parameter"] == set(live)


def test_a_kind_that_cannot_be_listed_stops_deletions_in_every_region(clients):
    # Without one region's key pairs' tags the sweep cannot prove that no resource of a session, in any
    # region, is tagged keep: a keep tag holds in every region the stack sweeps.
    blind, other = "us-east-1", "eu-west-1"
    for region in (blind, other):
        seed(clients, region, name_expiring(BASE, -HOUR, NOW), kinds=("parameter", "key_pair", "security_group"))
    Faults().inject(clients("ec2", blind), "DescribeKeyPairs", "UnauthorizedOperation")

    summary = run(clients, REGIONS=f"{blind},{other}")

    assert summary["regions"][blind]["key_pair"]["failed"] == [
        {"name": f"<listing {blind}>", "error": "UnauthorizedOperation"}
    ]
    assert summary["totals"]["deleted"] == 0
    for region in (blind, other):
        assert all(inventory(client_factory(), region)[kind] for kind in ("parameter", "key_pair", "security_group"))


def test_a_keep_tag_in_one_region_keeps_the_session_in_every_swept_region(clients):
    session, other = name_expiring(BASE, -HOUR, NOW), "eu-west-1"
    seed(clients, REGION, session)
    seed(clients, other, session, kinds=("key_pair",), keep=True)

    summary = run(clients, REGIONS=f"{REGION},{other}")

    assert summary["totals"]["deleted"] == 0
    assert {k["reason"] for k in summary["regions"][REGION]["instance"]["kept"]} == {"keep-tag"}
    assert all(names == {session} for names in inventory(client_factory(), REGION).values())


# -- a name whose arithmetic overflows ------------------------------------------------------------


def test_a_key_pair_expiring_in_year_9999_is_kept_and_the_region_is_still_swept(clients):
    # expires + grace is past datetime.max: once an OverflowError that ended the region's sweep.
    last_second = f"{BASE}/99991231T235959Z/0123456789abcdef"
    clients("ec2", REGION).create_key_pair(KeyName=last_second, KeyType="ed25519")
    expired = name_expiring(BASE, -HOUR, NOW)
    seed(clients, REGION, expired, kinds=NAMED_KINDS)

    summary = run(clients)

    assert ("key_pair", last_second, "not-expired") in kept(summary)
    assert deleted(summary) == {kind: {expired} if kind in NAMED_KINDS else set() for kind in ALL_KINDS}
    assert summary["totals"]["failed"] == 0
    assert inventory(clients, REGION)["key_pair"] == {last_second}


def test_a_resource_whose_judging_raises_fails_alone_and_the_rest_are_swept(clients, monkeypatch):
    poisoned, others = name_expiring(BASE, -HOUR, NOW), [name_expiring(BASE, -HOUR, NOW) for _ in range(2)]
    for name in (poisoned, *others):
        seed(clients, REGION, name, kinds=("key_pair", "volume"))
    is_expired = SessionName.is_expired

    def raising(self, now, grace=timedelta(0)):
        if self == poisoned:
            raise OverflowError("date value out of range")
        return is_expired(self, now, grace)

    monkeypatch.setattr(SessionName, "is_expired", raising)

    summary = run(clients)

    for kind in ("key_pair", "volume"):
        assert summary["regions"][REGION][kind]["failed"] == [{"name": poisoned, "error": "OverflowError"}]
        assert deleted(summary)[kind] == set(others)
    assert inventory(clients, REGION)["key_pair"] == {poisoned}


# -- one keep rule, one tag rule, for every kind --------------------------------------------------


def test_a_keep_tag_in_any_letter_case_on_any_kind_keeps_the_whole_session(clients):
    ec2, ssm = clients("ec2", REGION), clients("ssm", REGION)
    sessions = {}
    values = ("true", "True", "TRUE", "tRuE", "True", "TRUE", "true", "True", "tRUE", "TrUe")
    for kind, value in zip(ALL_KINDS, values, strict=True):
        name = name_expiring(BASE, -HOUR, NOW)
        ids = seed(clients, REGION, name)
        keep = [{"Key": KEEP_TAG, "Value": value}]
        if kind == "parameter":
            ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=ids[kind], Tags=keep)
        elif kind == "key_pair":  # tagged by id, deleted by name
            key_id = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]["KeyPairId"]
            ec2.create_tags(Resources=[key_id], Tags=keep)
        elif kind == "launch_template":  # moto's DescribeLaunchTemplates shows only the tags it was made with
            ec2.delete_launch_template(LaunchTemplateId=ids[kind])
            seed(clients, REGION, name, kinds=("launch_template",), extra_tags={KEEP_TAG: value})
        else:
            ec2.create_tags(Resources=[ids[kind]], Tags=keep)
        sessions[kind] = name
    before = inventory(clients, REGION)

    summary = run(clients)

    assert summary["totals"]["deleted"] == 0, deleted(summary)
    assert {reason for _, _, reason in kept(summary)} == {"keep-tag"}
    assert {name for _, name, _ in kept(summary)} == set(sessions.values())
    assert inventory(clients, REGION) == before


def test_parameters_are_held_to_the_tag_rules_of_every_other_kind_without_a_call_each(clients):
    ssm = clients("ssm", REGION)
    mismatched, untagged, runner, kept_by_hand = (name_expiring(BASE, -HOUR, NOW) for _ in range(4))
    live = name_expiring(BASE, HOUR, NOW)
    ssm.put_parameter(Name=f"/{mismatched}/private-key", Value="x", Type="SecureString", Tags=session_tags(live))
    ssm.put_parameter(Name=f"/{untagged}/private-key", Value="x", Type="SecureString")
    ssm.put_parameter(
        Name=f"/{runner}/runner-jitconfig", Value="x", Type="SecureString", Tags=session_tags(SessionName(runner))
    )
    seed(clients, REGION, kept_by_hand, kinds=("parameter", "key_pair"))
    ssm.add_tags_to_resource(
        ResourceType="Parameter", ResourceId=f"/{kept_by_hand}/private-key", Tags=[{"Key": KEEP_TAG, "Value": "True"}]
    )
    calls = Counter()
    for service in ("ssm", "resourcegroupstaggingapi"):
        clients(service, REGION).meta.events.register(
            "before-send", lambda event_name, **_: calls.update([event_name.rsplit(".", 1)[-1]])
        )

    summary = run(clients)

    assert deleted(summary)["parameter"] == {runner}
    assert kept(summary) == {
        ("parameter", mismatched, "tag-mismatch"),
        ("parameter", untagged, "untagged-legacy"),
        ("parameter", kept_by_hand, "keep-tag"),
        ("key_pair", kept_by_hand, "keep-tag"),
    }
    assert calls["GetResources"] == 1 and calls["ListTagsForResource"] == 0
    operator = run(clients, SWEEP_UNTAGGED="true")
    assert deleted(operator)["parameter"] == {untagged}
    assert inventory(clients, REGION)["parameter"] == {mismatched, kept_by_hand}


# -- what a session leaves behind: volumes, interfaces, AMIs, snapshots, Elastic IPs -----------------


def present(ec2) -> dict[str, set[str]]:
    """Every identifier of the tag-identified kinds in the region, whatever their tags."""
    return {
        "volume": {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]},
        "network_interface": {i["NetworkInterfaceId"] for i in ec2.describe_network_interfaces()["NetworkInterfaces"]},
        "image": {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]},
        "snapshot": {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]},
        "address": {a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]},
    }


def made(ids: dict) -> set[str]:
    return set(ids.values())


def test_only_the_expired_own_resources_of_the_left_behind_kinds_go_and_every_look_alike_stays(clients):
    ec2 = clients("ec2", REGION)
    expired, live, kept_by_hand = (name_expiring(BASE, d, NOW) for d in (-HOUR, HOUR, -HOUR))
    other_base = name_expiring("someone-else", -HOUR, NOW)
    named_expired_tagged_live = name_expiring(BASE, -HOUR, NOW)
    unparsable = f"{BASE}/not-a-session"

    def left(tags):
        return seed_left_behind(clients, REGION, tags, TAGGED_KINDS)

    own = left(session_tags(expired))
    look_alikes = [
        left(session_tags(live)),
        left(session_tags(other_base)),
        left([*session_tags(kept_by_hand), {"Key": KEEP_TAG, "Value": "true"}]),
        # The session tag decides: a Name naming an expired session does not make it that session's.
        left([{"Key": "Name", "Value": named_expired_tagged_live}, *session_tags(live)]),
        left([{"Key": "Name", "Value": named_expired_tagged_live}]),  # untagged: never even listed
        left([{"Key": SESSION_TAG, "Value": unparsable}]),
    ]
    before = present(ec2)

    summary = run(clients)

    assert deleted(summary) == {kind: {expired} if kind in TAGGED_KINDS else set() for kind in ALL_KINDS}
    assert summary["totals"] == {"deleted": 6, "kept": 4 * 6, "failed": 0}  # 5 kinds + the AMI's snapshot
    reasons = kept(summary)
    for kind in TAGGED_KINDS:
        expected = {(kind, live, "not-expired"), (kind, kept_by_hand, "keep-tag"), (kind, unparsable, "unparsable")}
        assert expected <= reasons
    after = present(ec2)
    assert all(before[kind] - after[kind] <= made(own) for kind in TAGGED_KINDS)
    assert made(own).isdisjoint(set().union(*after.values()))
    assert set().union(*map(made, look_alikes)) <= set().union(*after.values())


def test_attached_associated_and_ami_held_resources_stay_and_go_once_free(clients):
    ec2 = clients("ec2", REGION)
    session = name_expiring(BASE, -HOUR, NOW)
    ids = seed(clients, REGION, session, kinds=("volume", "network_interface", "snapshot", "address"))
    bystander = seed(clients, REGION, name_expiring(BASE, HOUR, NOW), kinds=("instance",))["instance"]
    # Attached: not listed (an instance's volumes and interfaces are its own). Associated: listed, in use.
    ec2.attach_volume(VolumeId=ids["volume"], InstanceId=bystander, Device="/dev/sdf")
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=ids["network_interface"], InstanceId=bystander, DeviceIndex=1
    )["AttachmentId"]
    association = ec2.associate_address(AllocationId=ids["address"], InstanceId=bystander)["AssociationId"]
    # A live session's AMI built on the expired session's snapshot (listed: no call spent), and an
    # untagged AMI of someone else built on another (not listed: DeleteSnapshot answers InUse).
    held_by_live = ec2.register_image(Name="live", RootDeviceName="/dev/sda1")["ImageId"]
    ec2.create_tags(Resources=[held_by_live], Tags=session_tags(name_expiring(BASE, HOUR, NOW)))
    [mapping] = ec2.describe_images(ImageIds=[held_by_live])["Images"][0]["BlockDeviceMappings"]
    ec2.create_tags(Resources=[mapping["Ebs"]["SnapshotId"]], Tags=session_tags(session))
    foreign_ami = ec2.register_image(Name="foreign", RootDeviceName="/dev/sda1")["ImageId"]
    [foreign_mapping] = ec2.describe_images(ImageIds=[foreign_ami])["Images"][0]["BlockDeviceMappings"]
    ec2.create_tags(Resources=[foreign_mapping["Ebs"]["SnapshotId"]], Tags=session_tags(session))
    calls = Counter()
    ec2.meta.events.register("before-send.ec2", lambda event_name, **_: calls.update([event_name.rsplit(".", 1)[-1]]))

    first = run(clients)

    assert ("address", session, "in-use") in kept(first)
    snapshots = first["regions"][REGION]["snapshot"]
    assert snapshots["kept"] == [{"name": session, "reason": "in-use"}] * 2
    assert snapshots["deleted"] == [session]  # its own, held by no AMI
    assert deleted(first)["volume"] == deleted(first)["network_interface"] == set()
    assert first["totals"]["failed"] == 0
    assert not {"DeleteVolume", "DeleteNetworkInterface", "ReleaseAddress"} & set(calls)
    assert calls["DeleteSnapshot"] == 2  # its own, and the one the unlisted AMI holds
    ec2.detach_volume(VolumeId=ids["volume"], InstanceId=bystander, Device="/dev/sdf")  # moto needs all three
    ec2.detach_network_interface(AttachmentId=attachment)
    ec2.disassociate_address(AssociationId=association)
    ec2.deregister_image(ImageId=foreign_ami)

    second = run(clients)

    assert {kind: len(names) for kind, names in deleted(second).items() if names} == {
        "volume": 1,
        "network_interface": 1,
        "snapshot": 1,
        "address": 1,
    }
    assert ("snapshot", session, "in-use") in kept(second)  # the live session's AMI still holds it


def test_a_volume_or_interface_attached_between_listing_and_delete_is_kept_in_use(clients):
    # moto refuses the volume itself (VolumeInUse); AWS's refusal of the interface is modelled (aws_rules).
    ec2 = clients("ec2", REGION)
    session = name_expiring(BASE, -HOUR, NOW)
    ids = seed(clients, REGION, session, kinds=("volume", "network_interface"))
    instance = seed(clients, REGION, name_expiring(BASE, HOUR, NOW), kinds=("instance",))["instance"]
    side = client_factory()("ec2", REGION)

    def right_after_the_listing(operation, attach):
        done = []

        def hook(**_):
            if not done:  # the listing; DescribeNetworkInterfaces runs again for the groups
                done.append(attach())

        ec2.meta.events.register(f"after-call.ec2.{operation}", hook)

    right_after_the_listing(
        "DescribeVolumes", lambda: side.attach_volume(VolumeId=ids["volume"], InstanceId=instance, Device="/dev/sdg")
    )
    right_after_the_listing(
        "DescribeNetworkInterfaces",
        lambda: side.attach_network_interface(
            NetworkInterfaceId=ids["network_interface"], InstanceId=instance, DeviceIndex=2
        ),
    )

    summary = run(clients)

    assert kept(summary) >= {("volume", session, "in-use"), ("network_interface", session, "in-use")}
    assert summary["totals"]["failed"] == 0


def test_an_address_associated_after_the_listing_is_refused_by_aws_and_kept_in_use(clients):
    # moto releases an associated Elastic IP; AWS answers InvalidIPAddress.InUse (tests/support/aws_rules.py).
    ec2 = clients("ec2", REGION)
    session = name_expiring(BASE, -HOUR, NOW)
    allocation = seed(clients, REGION, session, kinds=("address",))["address"]
    instance = seed(clients, REGION, name_expiring(BASE, HOUR, NOW), kinds=("instance",))["instance"]
    side = client_factory()("ec2", REGION)
    ec2.meta.events.register(
        "after-call.ec2.DescribeAddresses",
        lambda **_: side.associate_address(AllocationId=allocation, InstanceId=instance),
    )

    summary = run(clients)

    assert kept(summary) >= {("address", session, "in-use")}
    assert summary["totals"]["failed"] == 0
    assert inventory(clients, REGION)["address"] == {session}


def test_every_kind_is_listed_once_a_region_and_every_ec2_deletion_is_paced(clients, pacer_waits):
    waits = pacer_waits
    seed(clients, REGION, name_expiring(BASE, -HOUR, NOW))
    seed(clients, REGION, name_expiring(BASE, HOUR, NOW))
    calls = Counter()
    for service in ("ec2", "ssm", "resourcegroupstaggingapi"):
        clients(service, REGION).meta.events.register(
            "before-send", lambda event_name, **_: calls.update([event_name.rsplit(".", 1)[-1]])
        )

    summary = run(clients)

    listings = {op: n for op, n in calls.items() if op.startswith(("Describe", "Get"))}
    assert listings == {
        "DescribeInstances": 1,
        "DescribeParameters": 1,
        "GetResources": 1,
        "DescribeKeyPairs": 1,
        "DescribeLaunchTemplates": 1,
        "DescribeVolumes": 2,  # the volumes, then what the ending instance holds
        "DescribeNetworkInterfaces": 3,  # the interfaces, what the instance holds, the groups' in-use check
        "DescribeImages": 1,
        "DescribeSnapshots": 1,
        "DescribeAddresses": 1,
        "DescribeSecurityGroups": 1,
    }
    ec2_deletions = summary["totals"]["deleted"] - len(deleted(summary)["parameter"])
    assert len(waits) == ec2_deletions == 10  # 9 kinds, and the AMI's snapshot
