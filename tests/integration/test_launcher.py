"""The launcher through its handler, with Function URL events, against a moto server over HTTP."""

from __future__ import annotations

import io
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from session_naming import GITHUB_JOB_TAG, PROFILE_TAG, SESSION_TAG, SessionName, clients
from session_naming.settings import load_collector
from sweep import sweep

from tests.support import deliveries
from tests.support.capacity import Capacity
from tests.support.clients import client_factory
from tests.support.deliveries import iso
from tests.support.faults import Faults
from tests.support.function_url import SECRET, answer, release_event, url_event
from tests.support.handlers import LambdaContext, load_fixture, load_handler
from tests.support.seed import ALL_KINDS, catalogue_image, inventory
from tests.support.stack import REGION, make_launch_template

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXUrIo9NsoKq3aFL6HE3Wh7cUQUtuXI2nm3AIyZeLJu ci@example"
NOTHING = {kind: set() for kind in ALL_KINDS}


def create(launcher, body=None, headers=None):
    return launcher(url_event("POST", "/sessions", body or {}, headers))


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or ()}


def test_create_session_makes_tagged_key_group_and_secure_private_key(launcher, look):
    status, body = create(launcher, {"lifetime_minutes": 60, "ingress_cidrs": ["203.0.113.0/24", "2001:db8::/32"]})

    assert status == 201
    name = SessionName.parse(body["session"])
    assert name.base == "ec2-test-runner"
    assert body["expires_at"] == name.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    ec2, ssm = look("ec2", REGION), look("ssm", REGION)
    key = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
    group = ec2.describe_security_groups(GroupIds=[body["security_group"]["id"]])["SecurityGroups"][0]
    assert body["key_pair"] == {"name": name, "id": key["KeyPairId"]}
    assert group["GroupName"] == name
    assert tags(key)[SESSION_TAG] == tags(group)[SESSION_TAG] == name
    rule = group["IpPermissions"][0]
    assert (rule["FromPort"], rule["ToPort"]) == (22, 22)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["203.0.113.0/24"]
    assert [r["CidrIpv6"] for r in rule["Ipv6Ranges"]] == ["2001:db8::/32"]
    parameter = ssm.get_parameter(Name=body["private_key_parameter"], WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert body["private_key_parameter"] == f"/{name}/private-key"
    assert "PRIVATE KEY" in parameter["Value"]
    assert parameter["Value"] not in json.dumps(body)
    assert body["instances"] == []


def test_create_session_imports_callers_public_key_and_stores_no_private_key(launcher, look):
    status, body = create(launcher, {"public_key": ED25519})

    assert status == 201
    assert body["private_key_parameter"] is None
    assert inventory(look, REGION)["parameter"] == set()
    assert inventory(look, REGION)["key_pair"] == {body["session"]}


def test_create_session_runs_an_instance_from_a_launch_template_of_its_own(launcher, look):
    """CreateFleet takes no group, user data or shutdown behaviour: the session's own template holds them."""
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    capacity = Capacity().attach(clients.client("ec2", REGION))

    status, body = create(launcher, {"instance": True})

    assert status == 201
    [instance] = body["instances"]
    assert instance["market"] == "on-demand" and instance["profile"] == "default"
    ec2 = look("ec2", REGION)
    described = ec2.describe_instances(InstanceIds=[instance["id"]])["Reservations"][0]["Instances"][0]
    assert tags(described)["Name"] == tags(described)[SESSION_TAG] == body["session"]
    assert tags(described)[PROFILE_TAG] == "default"
    assert described["KeyName"] == body["session"] and instance["instance_type"] == described["InstanceType"]
    [template] = capacity.templates
    data = template["LaunchTemplateData"]
    assert template["LaunchTemplateName"] == body["session"]
    assert data["SecurityGroupIds"] == [body["security_group"]["id"]] and data["KeyName"] == body["session"]
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert {spec["ResourceType"] for spec in data["TagSpecifications"]} == {"instance", "volume", "network-interface"}
    for spec in [*data["TagSpecifications"], *template["TagSpecifications"]]:
        assert {"Key": SESSION_TAG, "Value": body["session"]} in spec["Tags"]
    assert capacity.fleet_calls == ["on-demand"]
    assert ec2.describe_launch_templates()["LaunchTemplates"] == [
        t for t in ec2.describe_launch_templates()["LaunchTemplates"] if t["LaunchTemplateName"] != body["session"]
    ]  # deleted once the fleet answered
    assert inventory(look, REGION)["launch_template"] == set()


def test_release_deletes_every_resource_of_the_session_and_nothing_else(launcher, look):
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    _, mine = create(launcher, {"instance": True})
    _, other = create(launcher, {"instance": True})

    status, body = launcher(release_event(mine["session"]))

    assert status == 200
    assert body["deleted"]["key_pair"] == [mine["session"]]
    assert body["deleted"]["instance"] == [mine["instances"][0]["id"]]
    assert body["deleted"]["parameter"] == [mine["private_key_parameter"]]
    assert inventory(look, REGION)["key_pair"] == {other["session"]}
    assert inventory(look, REGION)["instance"] == {other["session"]}
    assert other["session"] in inventory(look, REGION)["security_group"]


def test_release_leaves_a_group_still_in_use_to_the_collector(launcher, look):
    _, session = create(launcher)
    Faults().inject(clients.client("ec2", REGION), "DeleteSecurityGroup", "DependencyViolation")

    status, body = launcher(release_event(session["session"]))

    assert status == 200
    assert body["left_to_collector"] == [
        {"kind": "security_group", "id": session["security_group"]["id"], "reason": "in-use"}
    ]
    assert "collector" in body["note"]


@pytest.mark.parametrize(
    "path",
    [
        "/sessions/ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f60",  # well-formed, never made
        "/sessions/ec2-test-runner/20261324T223400Z/3f9a1c2b7d4e5f60",  # month 13
        "/sessions/someone-else/20261124T223400Z/3f9a1c2b7d4e5f60",  # not our base
        "/nowhere",
    ],
)
def test_unknown_session_or_route_is_404(launcher, path):
    name = path.removeprefix("/sessions/")
    status, body = launcher(url_event("DELETE", path, {"session": name}))

    assert status == 404
    assert body["error"] == "not_found" and body["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sessions"),
        ("PUT", "/sessions"),
        ("POST", "/sessions/ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f60"),
        ("DELETE", "/sessions/ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f60/extra"),
        ("POST", "/sessions/"),
        ("POST", "/Sessions"),
        ("DELETE", "/github"),
        ("GET", "/gitlab"),
        ("POST", "/gitlab/"),  # a trailing slash: the path is wrong, not the secret
        ("POST", "/github/"),
    ],
)
def test_a_route_answers_only_its_own_method_and_exact_path(launcher, look, method, path):
    # Signed as the route the path names asks (authentication comes first), a trailing slash or not.
    scheme = "gitlab" if path.rstrip("/") == "/gitlab" else "github"

    status, body = launcher(url_event(method, path, {}, scheme=scheme))

    assert (status, body["error"]) == (404, "not_found")
    assert inventory(look, REGION) == NOTHING


def test_release_refuses_a_session_of_a_base_this_stack_does_not_own(launcher, look):
    _, session = create(launcher)
    launcher.env("SESSION_BASES", "another-base")

    status, _ = launcher(release_event(session["session"]))

    assert status == 404
    assert inventory(look, REGION)["key_pair"] == {session["session"]}


def test_github_signature_test_vector_is_accepted():
    from signatures import github_signature, verify_github

    vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(b"Hello, World!", "It's a Secret to Everybody") == vector
    verify_github(b"Hello, World!", vector, "It's a Secret to Everybody")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: e["headers"].pop("x-hub-signature-256"),
        lambda e: e["headers"].update({"x-hub-signature-256": e["headers"]["x-hub-signature-256"][:-1]}),
        lambda e: e["headers"].update({"x-hub-signature-256": "sha256=" + "0" * 64}),
        lambda e: e["headers"].update({"x-hub-signature-256": "sha1=" + "0" * 40}),
        lambda e: e.update({"body": e["body"].replace("60", "61")}),
    ],
    ids=["missing", "truncated", "wrong", "other-scheme", "other-body"],
)
def test_bad_signature_is_401_and_creates_nothing(launcher, look, tamper):
    event = url_event("POST", "/sessions", {"lifetime_minutes": 60})
    tamper(event)

    status, body = launcher(event)

    assert (status, body["error"]) == (401, "unauthorized")
    assert inventory(look, REGION) == NOTHING


def test_signature_under_another_secret_is_401(launcher, look):
    status, _ = launcher(url_event("POST", "/sessions", {}, secret="not-the-secret"))

    assert status == 401
    assert inventory(look, REGION) == NOTHING


def test_base64_encoded_body_is_verified_over_its_decoded_bytes(launcher):
    status, body = launcher(url_event("POST", "/sessions", {"lifetime_minutes": 30}, base64_encode=True))

    assert status == 201, body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", "JSON object"),
        ({"colour": "blue"}, "colour"),
        ({"lifetime_minutes": 4}, "lifetime_minutes"),
        ({"lifetime_minutes": 1441}, "lifetime_minutes"),
        ({"lifetime_minutes": "60"}, "lifetime_minutes"),
        ({"ingress_cidrs": ["10.0.0.1/24"]}, "ingress_cidrs"),
        ({"ingress_cidrs": ["0.0.0.0/0"]}, "ingress_cidrs"),
        ({"ingress_cidrs": ["::/0"]}, "ingress_cidrs"),
        ({"public_key": "ssh-ed25519 AAAA"}, "public_key"),
        ({"public_key": "ssh-dss AAAAB3NzaC1kc3MAAACBAP"}, "public_key"),
        ({"base": "someone-else"}, "base"),
        ({"base": "a/b"}, "base"),
        ({"base": ""}, "base"),  # found by make soak: an empty base once meant "the default"
        ({"instance": True}, "instance"),
    ],
)
def test_bad_body_is_400_naming_the_field_and_creates_nothing(launcher, look, body, field):
    status, answer_body = launcher(url_event("POST", "/sessions", body))

    assert status == 400
    assert answer_body["error"] == "bad_request"
    assert field in answer_body["message"]
    assert inventory(look, REGION) == NOTHING


def test_world_ingress_is_accepted_when_the_stack_allows_it(launcher):
    launcher.env("ALLOW_WORLD_INGRESS", "true")

    status, _ = create(launcher, {"ingress_cidrs": ["0.0.0.0/0"]})

    assert status == 201


def test_body_over_64_kib_is_413_before_parsing(launcher, look):
    status, body = launcher(url_event("POST", "/sessions", b"{" + b" " * 65_536 + b"}"))

    assert (status, body["error"]) == (413, "payload_too_large")
    assert inventory(look, REGION) == NOTHING


def test_more_live_sessions_than_allowed_is_429_and_leaves_nothing_behind(launcher, look):
    launcher.env("MAX_LIVE_SESSIONS", "2")
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    assert [create(launcher)[0] for _ in range(2)] == [201, 201]
    before = inventory(look, REGION)

    status, body = create(launcher, {"instance": True})

    assert (status, body["error"]) == (429, "too_many_sessions")
    assert "MAX_LIVE_SESSIONS" in body["message"]
    assert inventory(look, REGION) == before


def test_redelivered_request_returns_the_first_answer_and_creates_nothing_new(launcher, look):
    headers = {"X-Request-Id": "job-42-attempt-1"}

    first = create(launcher, {"lifetime_minutes": 60}, headers)
    again = create(launcher, {"lifetime_minutes": 60}, headers)

    assert first == again
    assert inventory(look, REGION)["key_pair"] == {first[1]["session"]}


def test_reused_delivery_id_with_another_body_is_refused(launcher, look):
    create(launcher, {"lifetime_minutes": 60}, {"X-Request-Id": "reused"})

    status, body = create(launcher, {"lifetime_minutes": 90}, {"X-Request-Id": "reused"})

    assert (status, body["error"]) == (409, "conflict")
    assert len(inventory(look, REGION)["key_pair"]) == 1


def test_identical_requests_without_delivery_id_make_two_sessions(launcher, look):
    first, second = create(launcher, {"lifetime_minutes": 60}), create(launcher, {"lifetime_minutes": 60})

    assert first[1]["session"] != second[1]["session"]
    assert len(inventory(look, REGION)["key_pair"]) == 2


def test_twenty_concurrent_creates_make_twenty_distinct_tagged_sessions(launcher, look):
    barrier, answers = threading.Barrier(20), []

    def one(container):  # one handler module each, as concurrent invocations get separate containers
        event = url_event("POST", "/sessions", {"lifetime_minutes": 60})
        barrier.wait()
        answers.append(answer(container.lambda_handler(event, LambdaContext())))

    threads = [threading.Thread(target=one, args=(load_handler("launcher"),)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [status for status, _ in answers] == [201] * 20
    names = {body["session"] for _, body in answers}
    assert len(names) == 20
    ec2 = look("ec2", REGION)
    for key in ec2.describe_key_pairs()["KeyPairs"]:
        assert tags(key)[SESSION_TAG] == key["KeyName"]
    for group in ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["ec2-test-runner/*"]}])[
        "SecurityGroups"
    ]:
        assert tags(group)[SESSION_TAG] == group["GroupName"]
    assert inventory(look, REGION)["key_pair"] == inventory(look, REGION)["security_group"] == names


@pytest.mark.parametrize(
    "failing", ["CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "CreateLaunchTemplate", "CreateFleet"]
)
def test_create_failing_half_way_deletes_what_it_made_and_answers_500(launcher, look, failing):
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    Faults().inject(clients.client("ec2", REGION), failing, "InsufficientInstanceCapacity")

    status, body = create(launcher, {"instance": True, "ingress_cidrs": ["203.0.113.0/24"]})

    assert status == 500
    assert body == {"error": "internal", "message": body["message"]}
    assert "InsufficientInstanceCapacity" not in body["message"]
    assert inventory(look, REGION) == NOTHING


def test_what_escapes_a_failed_rollback_is_tagged_and_the_collector_removes_it_at_expiry(launcher, look):
    ec2 = clients.client("ec2", REGION)
    faults = Faults()
    faults.inject(ec2, "AuthorizeSecurityGroupIngress", "InvalidPermission.Malformed")
    faults.inject(ec2, "DeleteKeyPair", "UnauthorizedOperation")
    faults.inject(ec2, "DeleteSecurityGroup", "UnauthorizedOperation")

    status, _ = create(launcher, {"lifetime_minutes": 5, "ingress_cidrs": ["203.0.113.0/24"]})

    assert status == 500
    left = inventory(look, REGION)
    [name] = left["key_pair"]
    assert left["security_group"] == {name} and left["parameter"] == set()
    key = look("ec2", REGION).describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
    assert tags(key)[SESSION_TAG] == name
    later = SessionName.parse(name).expires + timedelta(seconds=301)
    sweep(client_factory(), load_collector({"REGIONS": REGION}), now=later, time_left=lambda: 900.0, dry_run=False)
    assert inventory(look, REGION) == NOTHING


def github_event(fixture: str, event_type: str, delivery: str, labels=("ec2-session",), job_id=None):
    payload = json.loads(load_fixture(f"github/{fixture}"))
    payload["workflow_job"]["labels"] = list(labels)
    payload["workflow_job"]["created_at"] = iso(datetime.now(UTC))
    if job_id:
        payload["workflow_job"]["id"] = job_id
    return deliveries.github_event(payload, delivery, event_type)


def test_github_queued_job_with_the_label_creates_a_session_and_completed_releases_it(launcher, look):
    status, created = launcher(github_event("workflow_job-queued.payload.json", "workflow_job", "d-1"))

    assert status == 201
    key = look("ec2", REGION).describe_key_pairs(KeyNames=[created["session"]])["KeyPairs"][0]
    assert tags(key)[GITHUB_JOB_TAG] == "289782451"
    status, released = launcher(
        github_event(
            "workflow_job-completed.success.with-organization.payload.json", "workflow_job", "d-2", job_id=289782451
        )
    )
    assert status == 200
    assert released == {"released": [created["session"]], "kept": []}
    assert inventory(look, REGION) == NOTHING


def test_github_redelivery_of_queued_job_creates_one_session(launcher, look):
    delivery = github_event("workflow_job-queued.payload.json", "workflow_job", "same")  # one body: its date once
    first = launcher(delivery)
    again = launcher(delivery)

    assert first == again
    assert len(inventory(look, REGION)["key_pair"]) == 1


def test_github_real_fixture_is_accepted_as_signed_bytes(launcher, look):
    # Byte for byte as octokit recorded it, but for its date: a job queued in 2021 is a replay now.
    raw = load_fixture("github/workflow_job-queued.payload.json")
    raw = raw.replace(b'"created_at": "2021-09-13T02:21:13Z"', f'"created_at": "{iso(datetime.now(UTC))}"'.encode())
    launcher.env("GITHUB_LABEL", "ubuntu-latest")

    status, _ = launcher(
        url_event("POST", "/github", raw, {"X-GitHub-Event": "workflow_job", "X-GitHub-Delivery": "r"})
    )

    assert status == 201


@pytest.mark.parametrize(
    ("fixture", "event_type", "labels", "status"),
    [
        ("ping-payload.json", "ping", (), 200),
        ("workflow_job-queued.payload.json", "workflow_job", ("ubuntu-latest",), 202),
        ("workflow_job-in_progress.payload.json", "workflow_job", ("ec2-session",), 200),  # binds nothing
        ("workflow_job-waiting.payload.json", "workflow_job", ("ec2-session",), 202),
        ("ping-payload.json", "push", (), 202),
    ],
)
def test_github_deliveries_that_ask_for_nothing_create_nothing(launcher, look, fixture, event_type, labels, status):
    raw = json.loads(load_fixture(f"github/{fixture}"))
    if "workflow_job" in raw:
        raw["workflow_job"]["labels"] = list(labels)
    headers = {"X-GitHub-Event": event_type, "X-GitHub-Delivery": "x"}

    got, _ = launcher(url_event("POST", "/github", json.dumps(raw), headers))

    assert got == status
    assert inventory(look, REGION) == NOTHING


def test_github_completed_before_queued_records_the_job_over_and_the_late_queued_makes_nothing(launcher, look):
    completed = "workflow_job-completed.success.with-organization.payload.json"

    status, body = launcher(github_event(completed, "workflow_job", "c", job_id=289782451))
    late_status, late = launcher(github_event("workflow_job-queued.payload.json", "workflow_job", "q"))

    assert (status, body) == (200, {"released": [], "kept": []})
    assert late_status == 202 and "over" in late["ignored"]
    assert inventory(look, REGION) == NOTHING


def test_launcher_misconfigured_answers_500_without_details(launcher, monkeypatch):
    monkeypatch.delenv("IDEMPOTENCY_TABLE")

    status, body = create(launcher)

    assert status == 500
    assert "IDEMPOTENCY_TABLE" not in body["message"]


def test_no_secret_private_key_or_body_appears_in_logs_or_answers(launcher, look):
    logger, stream = launcher.module.logger, io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    logger.setLevel("DEBUG")
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    body = {"instance": True, "lifetime_minutes": 60, "ingress_cidrs": ["198.51.100.0/24"]}
    answers = [create(launcher, body, {"X-Request-Id": "one"}), create(launcher, body, {"X-Request-Id": "one"})]
    Faults().inject(clients.client("ec2", REGION), "CreateFleet", "InsufficientInstanceCapacity")
    answers += [create(launcher, body), launcher(url_event("POST", "/sessions", body, secret="wrong"))]
    answers.append(launcher(release_event(answers[0][1]["session"])))
    answers.append(launcher(github_event("workflow_job-queued.payload.json", "workflow_job", "g")))

    logger.removeHandler(capture)
    logs = stream.getvalue()
    private_keys = [
        p["Value"]
        for p in look("ssm", REGION).get_parameters_by_path(Path="/", Recursive=True, WithDecryption=True)["Parameters"]
    ]
    assert json.dumps(body) not in logs
    assert '"session created"' in logs and '"session released"' in logs  # the capture works
    for text in (logs, json.dumps(answers)):
        assert SECRET not in text
        assert "BEGIN OPENSSH PRIVATE KEY" not in text and "PRIVATE KEY" not in text
        for key in private_keys:
            assert key not in text


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        {},
        {"requestContext": "x", "rawPath": "/sessions"},
        {"requestContext": {"http": "POST"}, "rawPath": "/sessions"},
        {"requestContext": {"http": {"method": "POST"}}, "rawPath": "sessions"},
        {"requestContext": {"http": {"method": "POST"}}, "rawPath": "/sessions", "headers": {"a": 1}},
        {"requestContext": {"http": {"method": "POST"}}, "rawPath": "/sessions", "headers": {1: "a"}},
        {"requestContext": {"http": {"method": "POST"}}, "rawPath": "/sessions", "body": 7},
        {"requestContext": {"http": {"method": "POST"}}, "rawPath": "/sessions", "body": "%%", "isBase64Encoded": True},
    ],
)
def test_event_that_is_not_a_function_url_request_is_400_and_touches_nothing(launcher, look, event):
    status, body = launcher(event)

    assert (status, body["error"]) == (400, "bad_request") and body["message"]
    assert inventory(look, REGION) == NOTHING


def test_a_launch_template_with_network_interfaces_gets_the_sessions_group_on_its_interface(launcher, look):
    """AWS refuses instance-level SecurityGroupIds beside a template's interfaces: the group goes on the interface.

    moto's CreateFleet ignores a template's groups, so the session's own template is what is checked.
    """
    ec2 = look("ec2", REGION)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    image = catalogue_image(ec2)
    data = {
        "ImageId": image,
        "InstanceType": "t3.micro",
        "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet, "AssociatePublicIpAddress": True}],
    }
    template = ec2.create_launch_template(LaunchTemplateName="with-interfaces", LaunchTemplateData=data)
    launcher.env("LAUNCH_TEMPLATE_ID", template["LaunchTemplate"]["LaunchTemplateId"])
    capacity = Capacity().attach(clients.client("ec2", REGION))
    overrides = []
    clients.client("ec2", REGION).meta.events.register(
        "before-parameter-build.ec2.CreateFleet",
        lambda params, **_: overrides.extend(params["LaunchTemplateConfigs"][0].get("Overrides", [])),
    )

    status, body = create(launcher, {"instance": True})

    assert status == 201, body
    [session_template] = capacity.templates
    [interface] = session_template["LaunchTemplateData"]["NetworkInterfaces"]
    assert interface["Groups"] == [body["security_group"]["id"]] and interface["SubnetId"] == subnet
    assert "SecurityGroupIds" not in session_template["LaunchTemplateData"]
    assert all("SubnetId" not in override for override in overrides)  # the template's own subnet


def test_the_instances_volumes_and_interfaces_are_tagged_at_creation_by_the_sessions_template(launcher, look):
    """moto tags the volumes but drops a network-interface TagSpecification: the request itself is checked too."""
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    capacity = Capacity().attach(clients.client("ec2", REGION))

    _, body = create(launcher, {"instance": True})

    by_session = [{"Name": f"tag:{SESSION_TAG}", "Values": [body["session"]]}]
    assert look("ec2", REGION).describe_volumes(Filters=by_session)["Volumes"]
    [template] = capacity.templates
    specs = {spec["ResourceType"]: spec["Tags"] for spec in template["LaunchTemplateData"]["TagSpecifications"]}
    assert set(specs) == {"instance", "volume", "network-interface"}
    for kind, spec in specs.items():
        assert {"Key": SESSION_TAG, "Value": body["session"]} in spec, kind


def emf(text: str) -> list[dict]:
    return [line for line in map(json.loads, (x for x in text.splitlines() if x.startswith("{"))) if "_aws" in line]


def test_metrics_count_creates_releases_refusals_by_status_and_failed_creates(launcher, look, capsys):
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    _, made = create(launcher)
    launcher(release_event(made["session"]))
    launcher(url_event("POST", "/sessions", {}, secret="wrong"))
    Faults().inject(clients.client("ec2", REGION), "CreateFleet", "InsufficientInstanceCapacity", times=1)
    create(launcher, {"instance": True})

    lines = emf(capsys.readouterr().out)

    def count(name, **dimensions):
        return sum(
            line[name][0] if isinstance(line[name], list) else line[name]
            for line in lines
            if name in line and all(line.get(k) == v for k, v in dimensions.items())
        )

    assert count("SessionsCreated") == 1
    assert count("SessionsReleased") == 1
    assert count("RequestsRefused", status="401") == 1
    assert count("CreatesFailed") == 1
    assert all(line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ec2-sessions" for line in lines)


def test_every_log_line_of_a_request_carries_its_delivery_id_and_then_its_session(launcher):
    logger, stream = launcher.module.logger, io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    try:
        _, made = create(launcher, {}, {"X-Request-Id": "job-7"})
    finally:
        logger.removeHandler(capture)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all(line["delivery"] == "POST /sessions x-request-id:job-7" for line in lines)
    assert [line["session"] for line in lines if line["message"] == "session created"] == [made["session"]]
