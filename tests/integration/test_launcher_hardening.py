"""What an attacker tried against the launcher, each answered as it must be now.

Every case here was reproduced against the moto server before the fix: a
release signature reused on another session, replayed creates, world
ingress through split prefixes, 500s for huge numbers and deep nesting,
error messages that echoed input, a keep tag on a parameter ignored by
release.
"""

from __future__ import annotations

import json

import pytest
from session_naming import KEEP_TAG

from tests.support.function_url import SECRET, release_event, url_event
from tests.support.seed import ALL_KINDS, inventory
from tests.support.stack import REGION

NOTHING = {kind: set() for kind in ALL_KINDS}


def create(launcher, body=None, **kwargs):
    return launcher(url_event("POST", "/sessions", body or {}, **kwargs))


def test_a_release_signature_cannot_release_another_session(launcher, look):
    _, a = create(launcher)
    _, b = create(launcher)
    observed = release_event(a["session"])
    forged = url_event("DELETE", f"/sessions/{b['session']}", b"", secret=None)
    forged["headers"].update({k: v for k, v in observed["headers"].items() if k.startswith(("x-hub", "webhook"))})
    forged["body"] = observed["body"]  # the observed signed body names A

    status, body = launcher(forged)

    assert (status, body["error"]) == (400, "bad_request")
    assert "session" in body["message"]
    assert b["session"] in inventory(look, REGION)["key_pair"]


@pytest.mark.parametrize("body", [b"", b"{}", b'{"session": 7}', b"not json", b'{"session": "x", "more": 1}'])
def test_a_release_without_its_session_in_the_body_is_400_and_deletes_nothing(launcher, look, body):
    _, made = create(launcher)

    status, answer_body = launcher(url_event("DELETE", f"/sessions/{made['session']}", body))

    assert status == 400, answer_body
    assert inventory(look, REGION)["key_pair"] == {made["session"]}


def test_a_standard_webhooks_create_replayed_acts_once_and_later_not_at_all(launcher, look):
    event = url_event("POST", "/sessions", {"lifetime_minutes": 60}, scheme="standard")
    first = launcher(event)
    again = launcher(event)  # inside the window: the first answer, nothing new

    stale = url_event("POST", "/sessions", {"lifetime_minutes": 60}, scheme="standard", now=0)
    late = launcher(stale)

    assert first[0] == 201 and again == first
    assert late[0] == 401 and "5 minutes" in late[1]["message"]
    assert inventory(look, REGION)["key_pair"] == {first[1]["session"]}


def test_a_standard_webhooks_release_replayed_against_another_session_does_nothing(launcher, look):
    _, a = create(launcher)
    _, b = create(launcher)
    signed = release_event(a["session"], scheme="standard")
    assert launcher(signed)[0] == 200

    replay = json.loads(json.dumps(signed))
    replay["rawPath"] = replay["requestContext"]["http"]["path"] = f"/sessions/{b['session']}"
    status, _ = launcher(replay)

    assert status in (200, 400)  # the first answer (same message id) or a body naming another session
    assert b["session"] in inventory(look, REGION)["key_pair"]


def test_the_shell_client_signs_as_the_launcher_verifies(launcher):
    """clients/ec2-session's Standard Webhooks headers, made by /bin/sh, openssl and od, verify in the launcher."""
    import subprocess
    from pathlib import Path

    body = '{"lifetime_minutes": 30}'
    client = Path(__file__).resolve().parents[2] / "clients" / "ec2-session"
    out = subprocess.run(  # noqa: S603 (our own script)
        ["/bin/sh", str(client), "sign", body],
        env={"EC2_SESSIONS_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    headers = dict(line.split(": ", 1) for line in out)
    event = url_event("POST", "/sessions", body, headers, secret=None)

    status, made = launcher(event)

    assert status == 201, made
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}


@pytest.mark.parametrize(
    "cidrs",
    [["0.0.0.0/1", "128.0.0.0/1"], ["::/1", "8000::/1"], ["2000::/3"], ["10.0.0.0/7"], ["2001:db8::/31"]],
)
def test_world_ingress_split_into_prefixes_is_refused(launcher, look, cidrs):
    status, body = create(launcher, {"ingress_cidrs": cidrs})

    assert status == 400 and body["message"].startswith("ingress_cidrs:")
    assert inventory(look, REGION) == NOTHING


@pytest.mark.parametrize("cidr", ["::ffff:0.0.0.0/96", "::ffff:10.0.0.0/120", "::/96", "::a00:0/120"])
def test_ipv4_mapped_and_compatible_ranges_are_refused_at_any_length(launcher, look, cidr):
    status, body = create(launcher, {"ingress_cidrs": [cidr]})

    assert status == 400 and "IPv4-mapped" in body["message"]
    assert inventory(look, REGION) == NOTHING


def test_allow_world_ingress_lifts_every_prefix_rule(launcher):
    launcher.env("ALLOW_WORLD_INGRESS", "true")

    status, _ = create(launcher, {"ingress_cidrs": ["0.0.0.0/1", "128.0.0.0/1", "2000::/3"]})

    assert status == 201


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"lifetime_minutes": 99999999999999}', "lifetime_minutes"),
        (b'{"lifetime_minutes": 1e400}', "lifetime_minutes"),
        (b"[" * 30_000 + b"]" * 30_000, "JSON"),
        (b'{"base": "' + "\u202eevil".encode() + b'"}', "base"),
        (b'{"base": "\\ud800"}', "base"),
        (b'{"public_key": "ssh-ed25519 \\ud800"}', "public_key"),
        (b'{"gitlab_job": {"project_id": 0, "job_id": 1}}', "gitlab_job.project_id"),
        (b'{"gitlab_job": {"project_id": 1, "job_id": 99999999999999999999}}', "gitlab_job.job_id"),
        (b'{"gitlab_job": {"project_id": "1", "job_id": 2}}', "gitlab_job.project_id"),
    ],
)
def test_hostile_bodies_are_400_naming_the_field_and_never_500(launcher, look, raw, field):
    status, body = launcher(url_event("POST", "/sessions", raw))

    assert status == 400, body
    assert field in body["message"]
    assert inventory(look, REGION) == NOTHING


def test_deep_nesting_on_the_github_route_is_400_too(launcher):
    event = url_event("POST", "/github", b"[" * 30_000 + b"]" * 30_000, {"X-GitHub-Event": "workflow_job"})

    assert launcher(event)[0] == 400


@pytest.mark.parametrize(
    "body",
    [
        {"base": "attacker-controlled-base-XYZZY"},
        {"ingress_cidrs": ["XYZZY-not-a-cidr"]},
        {"<XYZZY> no field is named so": 1},
        {"public_key": "ssh-ed25519 XYZZY"},
    ],
)
def test_error_messages_name_the_field_and_the_rule_never_the_value(launcher, body):
    status, answer_body = create(launcher, body)

    assert status == 400
    assert "XYZZY" not in answer_body["message"]


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_a_keep_tag_on_the_private_key_parameter_alone_keeps_the_session_from_release(launcher, look, value):
    _, made = create(launcher)
    look("ssm", REGION).add_tags_to_resource(
        ResourceType="Parameter", ResourceId=made["private_key_parameter"], Tags=[{"Key": KEEP_TAG, "Value": value}]
    )
    before = inventory(look, REGION)

    status, body = launcher(release_event(made["session"]))

    assert (status, body["error"]) == (409, "kept")
    assert inventory(look, REGION) == before


def test_a_keep_tag_in_any_letter_case_on_the_group_keeps_the_session_from_release(launcher, look):
    _, made = create(launcher)
    look("ec2", REGION).create_tags(Resources=[made["security_group"]["id"]], Tags=[{"Key": KEEP_TAG, "Value": "True"}])

    status, body = launcher(release_event(made["session"]))

    assert (status, body["error"]) == (409, "kept")
    assert made["session"] in inventory(look, REGION)["key_pair"]


def test_a_released_session_frees_its_slot_for_the_next_create(launcher):
    launcher.env("MAX_LIVE_SESSIONS", "1")
    _, made = create(launcher)
    assert create(launcher)[0] == 429

    assert launcher(release_event(made["session"]))[0] == 200

    assert create(launcher)[0] == 201


def test_a_release_whose_instance_would_not_terminate_keeps_its_slot_until_expiry(launcher, look):
    from session_naming import clients

    from tests.support.faults import Faults
    from tests.support.stack import make_launch_template

    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    launcher.env("MAX_LIVE_SESSIONS", "1")
    _, made = create(launcher, {"instance": True})
    Faults().inject(clients.client("ec2", REGION), "TerminateInstances", "UnauthorizedOperation")

    status, body = launcher(release_event(made["session"]))

    assert status == 200 and [f["kind"] for f in body["failed"]] == ["instance"]
    assert create(launcher)[0] == 429  # the instance still runs, so the session still counts


def test_a_release_that_keeps_a_running_instance_keeps_its_slot_too(launcher, look):
    from session_naming import SESSION_TAG

    from tests.support.stack import make_launch_template

    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    launcher.env("MAX_LIVE_SESSIONS", "1")
    _, made = create(launcher, {"instance": True})
    [instance] = made["instances"]
    other = made["session"][:-1] + ("0" if made["session"][-1] != "0" else "1")
    look("ec2", REGION).create_tags(Resources=[instance["id"]], Tags=[{"Key": SESSION_TAG, "Value": other}])

    status, body = launcher(release_event(made["session"]))

    assert status == 200 and [(k["kind"], k["reason"]) for k in body["kept"]] == [("instance", "tag-mismatch")]
    assert create(launcher)[0] == 429  # the kept instance still runs, so the session still counts


def test_repeated_or_equivalent_cidrs_make_one_rule(launcher, look):
    """EC2 refuses the same permission twice; "2001:0db8::/32" is "2001:db8::/32"."""
    status, made = create(
        launcher, {"ingress_cidrs": ["2001:db8::/32", "2001:0db8::/32", "203.0.113.0/24", "203.0.113.0/24"]}
    )

    assert status == 201, made
    group = look("ec2", REGION).describe_security_groups(GroupIds=[made["security_group"]["id"]])["SecurityGroups"][0]
    [rule] = group["IpPermissions"]
    assert [r["CidrIpv6"] for r in rule["Ipv6Ranges"]] == ["2001:db8::/32"]
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["203.0.113.0/24"]
