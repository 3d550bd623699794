"""``session_resources``: the launcher's release asks the layer what of one session may go, by the sweep's rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from session_naming import KEEP_TAG, SessionName, session_tags
from session_naming.resources import ORDER, session_resources

from tests.support.clients import client_factory
from tests.support.seed import ALL_KINDS, name_expiring, seed, utc

NOW = utc("2026-11-24T22:00:00")
REGION = "us-east-1"
BASE = "ec2-test-runner"
LIVE = timedelta(hours=1)


@pytest.fixture
def clients(aws):
    return client_factory(aws_rules=True)


def test_every_kind_of_a_live_session_is_deletable_and_nothing_of_another_session_is_listed(clients):
    session, neighbour = name_expiring(BASE, LIVE, NOW), name_expiring(BASE, LIVE, NOW)
    ids = seed(clients, REGION, session)
    seed(clients, REGION, neighbour)
    clients("ssm", REGION).put_parameter(
        Name=f"/{session}/runner-jitconfig", Value="x", Type="SecureString", Tags=session_tags(session)
    )

    by_region, kept = session_resources(clients, [REGION], session, (BASE,))

    assert kept == [] and list(by_region) == [REGION]
    deletable = by_region[REGION]
    assert {found.kind for found in deletable} == set(ALL_KINDS) == {kind.name for kind in ORDER}
    assert {found.name for found in deletable} == {session}
    assert {found.ident for found in deletable} == set(ids.values()) | {f"/{session}/runner-jitconfig"}


@pytest.mark.parametrize("kind", ["parameter", "snapshot", "key_pair"])
def test_a_keep_tag_in_any_letter_case_on_any_resource_keeps_the_whole_session(clients, kind):
    session = name_expiring(BASE, LIVE, NOW)
    ids = seed(clients, REGION, session)
    keep = [{"Key": KEEP_TAG, "Value": "True"}]
    ec2 = clients("ec2", REGION)
    if kind == "parameter":
        clients("ssm", REGION).add_tags_to_resource(ResourceType="Parameter", ResourceId=ids[kind], Tags=keep)
    elif kind == "key_pair":
        ec2.create_tags(Resources=[ec2.describe_key_pairs(KeyNames=[session])["KeyPairs"][0]["KeyPairId"]], Tags=keep)
    else:
        ec2.create_tags(Resources=[ids[kind]], Tags=keep)

    deletable, kept = session_resources(clients, [REGION], session, (BASE,))

    assert deletable == {}
    assert {k["reason"] for k in kept} == {"keep-tag"}
    assert {k["kind"] for k in kept} == set(ALL_KINDS)


def test_a_parameter_tagged_for_another_session_or_untagged_is_kept_with_its_reason(clients):
    session, other = name_expiring(BASE, LIVE, NOW), name_expiring(BASE, LIVE, NOW)
    ssm = clients("ssm", REGION)
    ssm.put_parameter(Name=f"/{session}/private-key", Value="x", Type="SecureString", Tags=session_tags(other))
    ssm.put_parameter(Name=f"/{session}/runner-jitconfig", Value="x", Type="SecureString")
    seed(clients, REGION, session, kinds=("key_pair",))

    deletable, kept = session_resources(clients, [REGION], SessionName(session), (BASE,))

    assert [found.kind for found in deletable[REGION]] == ["key_pair"]
    assert sorted(kept, key=lambda k: k["id"]) == [
        {"kind": "parameter", "id": f"/{session}/private-key", "reason": "tag-mismatch"},
        {"kind": "parameter", "id": f"/{session}/runner-jitconfig", "reason": "untagged-legacy"},
    ]


def test_a_keep_tag_in_another_region_keeps_the_session_in_every_region(clients):
    """Kept means kept everywhere the stack works: one region's listing alone cannot tell."""
    session, other_region = name_expiring(BASE, LIVE, NOW), "eu-west-1"
    seed(clients, REGION, session)
    seed(clients, other_region, session, kinds=("key_pair",), keep=True)

    deletable, kept = session_resources(clients, [REGION, other_region], session, (BASE,))
    alone, _ = session_resources(clients, [REGION], session, (BASE,))

    assert deletable == {} and {k["reason"] for k in kept} == {"keep-tag"}
    assert {found.kind for found in alone[REGION]} == set(ALL_KINDS)  # the region alone would have let it go
