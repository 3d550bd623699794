"""GitHub jobs run on their session: a JIT runner registered per job, against the fake GitHub over loopback.

The deliveries are octokit's real payloads (tests/events/github), signed as
GitHub signs them; the fake checks the App's JWT, its installation tokens,
headers and bodies as GitHub does.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from session_naming import GITHUB_JOB_TAG, GITHUB_RUNNER_TAG, INSTANCE_TAG, SESSION_TAG, clients, github
from session_naming.github import runner_name

from tests.support.deliveries import github_event, workflow_job
from tests.support.faults import Faults
from tests.support.function_url import release_event, url_event
from tests.support.metrics import total
from tests.support.seed import ALL_KINDS, inventory
from tests.support.stack import REGION, make_launch_template

JOB = 289782451
ROOT = "repos/codertocat/hello-world"
NOTHING = {kind: set() for kind in ALL_KINDS}


@pytest.fixture
def launcher(launcher, look, github_fake):
    """The launcher with a GitHub App (the fake's), installed on Codertocat, and a launch template."""
    github_fake.install("Codertocat")
    launcher.env("GITHUB_APP_SECRET_ARN", github_fake.app_secret(look("secretsmanager", REGION)))
    launcher.env("GITHUB_API_URL", github_fake.url)
    launcher.env("LAUNCH_TEMPLATE_ID", make_launch_template(look))
    launcher.env("GITHUB_REPOSITORIES", "codertocat/*")
    launcher.github = github_fake
    return launcher


def delivery(
    action: str,
    delivery_id: str,
    labels=("self-hosted", "ec2-session"),
    repository=None,
    *,
    job=JOB,
    installation=3456996,
    **job_fields,
):
    payload = workflow_job(action, job, labels=labels, **job_fields)
    if installation is None:
        payload.pop("installation", None)  # a repository or organisation webhook sends none
    else:
        payload["installation"] = {"id": installation}
    if repository:
        payload["repository"]["full_name"] = repository
    return github_event(payload, delivery_id)


def instance_of(look, session):
    reservations = look("ec2", REGION).describe_instances(Filters=[{"Name": "tag:Name", "Values": [session]}])
    return reservations["Reservations"][0]["Instances"][0]


def test_queued_registers_a_jit_runner_and_starts_the_instance_with_it(launcher, look):
    status, made = launcher(delivery("queued", "d-1"))

    assert status == 201, made
    session = made["session"]
    registration = f"{ROOT}/actions/runners/{made['runner']['id']}"
    assert made["runner"]["name"] == runner_name(__import__("session_naming").SessionName(session))
    assert launcher.github.runner_names(ROOT) == {made["runner"]["name"]}
    [config] = launcher.github.jit_configs
    parameter = look("ssm", REGION).get_parameter(Name=f"/{session}/runner-jitconfig", WithDecryption=True)
    assert parameter["Parameter"]["Value"] == config and parameter["Parameter"]["Type"] == "SecureString"
    assert len(config) > 4096  # as GitHub's are: a Standard parameter cannot hold it
    described = look("ssm", REGION).describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [f"/{session}/runner-jitconfig"]}]
    )["Parameters"][0]
    assert described["Tier"] == "Intelligent-Tiering"
    instance = instance_of(look, session)
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags[GITHUB_RUNNER_TAG].lower() == registration
    assert tags[GITHUB_JOB_TAG] == str(JOB) and tags[SESSION_TAG] == session
    user_data = look("ec2", REGION).describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    script = base64.b64decode(user_data["UserData"]["Value"]).decode()
    assert f"/{session}/runner-jitconfig" in script and config not in script
    assert config not in json.dumps(made)


def test_completed_releases_the_session_and_deletes_its_registration(launcher, look):
    _, made = launcher(delivery("queued", "d-1"))

    status, body = launcher(delivery("completed", "d-2"))

    assert (status, body) == (200, {"released": [made["session"]], "kept": []})
    assert launcher.github.runner_names(ROOT) == set()
    assert inventory(look, REGION) == NOTHING


def test_completed_with_an_instance_that_would_not_terminate_reports_it_and_still_deletes_its_registration(
    launcher, look
):
    _, made = launcher(delivery("queued", "d-1"))
    Faults().inject(clients.client("ec2", REGION), "TerminateInstances", "UnauthorizedOperation")

    status, body = launcher(delivery("completed", "d-2"))

    assert (status, body) == (200, {"released": [], "kept": [], "failed": [made["session"]]})
    assert launcher.github.runner_names(ROOT) == set()  # the job is over: its one-job runner is not needed
    assert inventory(look, REGION)["instance"] == {made["session"]}  # left to the collector at expiry


def test_a_second_queued_delivery_for_the_job_answers_the_same_session(launcher, look):
    first = launcher(delivery("queued", "d-1"))
    second = launcher(delivery("queued", "another-hook"))

    assert first[0] == 201 and second == (200, first[1])
    assert len(launcher.github.runner_names(ROOT)) == 1
    assert len(inventory(look, REGION)["key_pair"]) == 1


@pytest.mark.parametrize("label", ["EC2-Session", "EC2-SESSION"])
def test_labels_match_in_any_letter_case(launcher, label):
    assert launcher(delivery("queued", "d-1", labels=("self-hosted", label)))[0] == 201


def test_a_repository_outside_the_allow_list_is_ignored_before_any_call(launcher, look):
    status, _ = launcher(delivery("queued", "d-1", repository="someone-else/Hello-World"))

    assert status == 202
    assert launcher.github.calls == [] and inventory(look, REGION) == NOTHING


@pytest.mark.parametrize("failing", ["CreateFleet", "PutParameter"])
def test_a_failure_after_the_registration_rolls_back_everything_the_registration_included(launcher, look, failing):
    service = "ssm" if failing == "PutParameter" else "ec2"
    Faults().inject(clients.client(service, REGION), failing, "InternalError", status=400)

    status, _ = launcher(delivery("queued", "d-1"))

    assert status == 500
    assert launcher.github.runner_names(ROOT) == set()
    assert inventory(look, REGION) == NOTHING
    Faults().inject(clients.client(service, REGION), failing, "InternalError", times=0)


def test_too_many_live_sessions_rolls_back_the_registration_too(launcher, look):
    launcher.env("MAX_LIVE_SESSIONS", "1")
    launcher(url_event("POST", "/sessions", {}))

    status, body = launcher(delivery("queued", "d-1"))

    assert (status, body["error"]) == (429, "too_many_sessions")
    assert launcher.github.runner_names(ROOT) == set()
    assert launcher.github.calls_to("generate-jitconfig") == []  # the cap is checked before GitHub is asked
    assert len(inventory(look, REGION)["key_pair"]) == 1


def test_completed_before_queued_makes_nothing_and_registers_nothing(launcher, look):
    assert launcher(delivery("completed", "d-2")) == (200, {"released": [], "kept": []})

    status, _ = launcher(delivery("queued", "d-1"))

    assert status == 202
    assert launcher.github.runner_names(ROOT) == set() and inventory(look, REGION) == NOTHING


def test_the_jit_config_and_the_app_key_never_reach_the_logs(launcher):
    logger, stream = launcher.module.logger, io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    logger.setLevel("DEBUG")
    try:
        launcher(delivery("queued", "d-1"))
        launcher(delivery("completed", "d-2"))
    finally:
        logger.removeHandler(capture)
    logs = stream.getvalue()

    assert '"session created"' in logs
    for secret in [*launcher.github.jit_configs, launcher.github.private_key_pem.splitlines()[1]]:
        assert secret not in logs


@pytest.mark.parametrize(
    ("service", "step"),
    [("ec2", "CreateKeyPair"), ("ssm", "PutParameter"), ("ec2", "CreateSecurityGroup"), ("ec2", "CreateFleet")],
)
def test_a_job_completed_between_two_creation_steps_leaves_nothing_anywhere(launcher, look, service, step):
    """The completed delivery lands while queued is creating: either it or the create releases everything."""
    ended, fired = [], threading.Event()

    def complete_the_job(**_):
        if not fired.is_set():
            fired.set()
            ended.append(launcher(delivery("completed", f"end-{step}")))

    clients.client(service, REGION).meta.events.register(f"after-call.{service}.{step}", complete_the_job)

    status, body = launcher(delivery("queued", "d-1"))

    assert ended and ended[0][0] == 200
    assert status == 202 and "ended" in body["ignored"], body
    assert inventory(look, REGION) == NOTHING
    assert launcher.github.runner_names(ROOT) == set()
    assert launcher(delivery("queued", "d-late"))[0] == 202  # and the job stays over


def test_a_kept_session_stays_with_its_runner_when_the_job_completes(launcher, look):
    _, made = launcher(delivery("queued", "d-1"))
    look("ec2", REGION).create_tags(
        Resources=[made["security_group"]["id"]], Tags=[{"Key": "ec2-sessions:keep", "Value": "true"}]
    )

    status, body = launcher(delivery("completed", "d-2"))

    assert (status, body) == (200, {"released": [], "kept": [made["session"]]})
    assert launcher.github.runner_names(ROOT) == {made["runner"]["name"]}
    assert made["session"] in inventory(look, REGION)["key_pair"]


def test_a_runner_tag_pointing_at_another_runner_deletes_nothing_of_it(launcher, look):
    """Anyone who may tag EC2 resources can write the tag: the runner at its path must carry the session's name."""
    _, made = launcher(delivery("queued", "d-1"))
    stranger = launcher.github.add_runner(ROOT, "someone-elses-runner", status="offline")
    forged = f"repos/Codertocat/Hello-World/actions/runners/{stranger.id}"
    ec2 = look("ec2", REGION)
    ec2.create_tags(Resources=[made["security_group"]["id"]], Tags=[{"Key": GITHUB_RUNNER_TAG, "Value": forged}])
    key_tags = [{"Key": GITHUB_RUNNER_TAG, "Value": forged}]
    key_id = ec2.describe_key_pairs(KeyNames=[made["session"]])["KeyPairs"][0]["KeyPairId"]
    ec2.create_tags(Resources=[key_id], Tags=key_tags)

    launcher(delivery("completed", "d-2"))

    assert "someone-elses-runner" in launcher.github.runner_names(ROOT)


def test_a_sessions_runner_busy_with_another_job_keeps_it_running_until_that_job_completes(launcher, look):
    """JIT runners take any queued job with their labels: job 1's session may be running job 2."""
    _, made = launcher(delivery("queued", "d-1"))
    [runner] = launcher.github.runners[ROOT].values()
    runner.status, runner.busy = "online", True  # it picked up another job

    status, body = launcher(delivery("completed", "d-2"))

    assert (status, body) == (200, {"released": [], "kept": [], "busy": [made["session"]]})
    assert instance_of(look, made["session"])["State"]["Name"] == "running"
    assert launcher.github.runner_names(ROOT) == {made["runner"]["name"]}

    other = json.loads(delivery("completed", "d-3")["body"])  # the job it ran ends: its runner names the session
    other["workflow_job"].update(id=JOB + 1, runner_name=made["runner"]["name"])
    runner.busy = False
    event = url_event(
        "POST", "/github", json.dumps(other), {"X-GitHub-Event": "workflow_job", "X-GitHub-Delivery": "d-4"}
    )
    status, body = launcher(event)

    assert (status, body["released"]) == (200, [made["session"]])
    assert inventory(look, REGION) == NOTHING and launcher.github.runner_names(ROOT) == set()


def test_a_retry_after_429_with_the_same_delivery_id_is_served_afresh(launcher, look):
    launcher.env("MAX_LIVE_SESSIONS", "1")
    _, first = launcher(url_event("POST", "/sessions", {}))
    assert launcher(delivery("queued", "same-delivery"))[0] == 429

    launcher(release_event(first["session"]))
    status, _ = launcher(delivery("queued", "same-delivery"))

    assert status == 201


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p["workflow_job"].update(labels=["self-hosted", "ec2-session", 7]),
        lambda p: p["repository"].update(full_name="no-slash-here"),
        lambda p: p["repository"].update(full_name="a/b/c"),
    ],
    ids=["label-not-a-string", "no-slash", "two-slashes"],
)
def test_a_malformed_delivery_is_400_and_makes_nothing(launcher, look, tamper):
    payload = json.loads(delivery("queued", "d-1")["body"])
    tamper(payload)
    event = url_event(
        "POST", "/github", json.dumps(payload), {"X-GitHub-Event": "workflow_job", "X-GitHub-Delivery": "x"}
    )

    status, _ = launcher(event)

    assert status == 400
    assert inventory(look, REGION) == NOTHING and launcher.github.calls == []


# -- who may release what ---------------------------------------------------------------------------


def test_a_runner_name_from_another_repository_releases_nothing(launcher, look):
    """Anyone who administers an allow-listed repository can register a runner under any name."""
    _, made = launcher(delivery("queued", "d-1"))
    forged = delivery(
        "completed", "d-2", repository="Codertocat/other-repo", job=JOB + 7, runner_name=made["runner"]["name"]
    )

    status, body = launcher(forged)

    assert (status, body) == (200, {"released": [], "kept": []})
    assert instance_of(look, made["session"])["State"]["Name"] == "running"
    assert launcher.github.runner_names(ROOT) == {made["runner"]["name"]}


def test_a_session_without_a_registration_is_never_found_by_runner_name(launcher, look):
    """A curl session's runner name can be computed from its session name: it proves nothing."""
    _, made = launcher(url_event("POST", "/sessions", {}))
    name = runner_name(__import__("session_naming").SessionName(made["session"]))

    status, body = launcher(delivery("completed", "d-2", job=JOB + 8, runner_name=name))

    assert (status, body) == (200, {"released": [], "kept": []})
    assert made["session"] in inventory(look, REGION)["key_pair"]


def test_a_release_reads_every_region_and_a_keep_tag_in_another_one_keeps_the_session(launcher, look):
    launcher.env("REGIONS", f"{REGION},eu-west-1")
    _, made = launcher(url_event("POST", "/sessions", {}))
    look("ec2", "eu-west-1").create_key_pair(
        KeyName=made["session"],
        KeyType="ed25519",
        TagSpecifications=[
            {
                "ResourceType": "key-pair",
                "Tags": [
                    {"Key": SESSION_TAG, "Value": made["session"]},
                    {"Key": "ec2-sessions:keep", "Value": "true"},
                ],
            }
        ],
    )

    status, body = launcher(release_event(made["session"]))

    assert (status, body["error"]) == (409, "kept")
    assert made["session"] in inventory(look, REGION)["key_pair"]


def test_a_delivery_without_an_installation_looks_it_up_once_and_registers_the_runner(launcher):
    """A repository webhook sends no ``installation``: the runner is registered all the same."""
    first = launcher(delivery("queued", "d-1", installation=None))
    second = launcher(delivery("queued", "d-3", installation=None, job=JOB + 1))

    assert first[0] == second[0] == 201 and "runner" in first[1] and "runner" in second[1]
    assert len(launcher.github.calls_to("get-installation")) == 1  # cached for the container's life
    assert len(launcher.github.runner_names(ROOT)) == 2


@pytest.mark.parametrize("refusal", [401, 403])
def test_completed_while_github_refuses_the_app_still_releases_every_aws_resource(launcher, look, capsys, refusal):
    _, made = launcher(delivery("queued", "d-1"))
    github.reset()  # a new container: no installation token cached
    launcher.github.fail(times=20, status=refusal)
    capsys.readouterr()

    status, body = launcher(delivery("completed", "d-2"))

    assert (status, body) == (200, {"released": [made["session"]], "kept": []})
    assert inventory(look, REGION) == NOTHING
    assert total(capsys.readouterr().out, "RunnerDeletesFailed") == 1
    assert launcher.github.runner_names(ROOT) == {made["runner"]["name"]}  # left to the collector and GitHub


def test_a_queued_job_older_than_72_hours_is_a_replay_and_makes_nothing(launcher, look):
    stale = datetime.now(UTC) - timedelta(hours=72, minutes=1)

    status, body = launcher(delivery("queued", "d-1", created_at=stale))

    assert status == 202 and "72 hours" in body["ignored"]
    assert inventory(look, REGION) == NOTHING and launcher.github.calls == []
    assert launcher(delivery("queued", "d-2", created_at=stale + timedelta(minutes=2)))[0] == 201


def test_on_github_an_unverified_webhook_id_does_not_deduplicate(launcher, look):
    """GitHub's signature covers the body only: a header it does not sign must not merge two jobs."""
    one, two = delivery("queued", "d-1"), delivery("queued", "d-2", job=JOB + 1)
    for event in (one, two):
        event["headers"]["webhook-id"] = "msg_same"

    assert launcher(one)[0] == launcher(two)[0] == 201
    assert len(inventory(look, REGION)["key_pair"]) == 2


@pytest.mark.parametrize("full_name", ["Codertocat/..", "Codertocat/.", "-" * 40 + "/x", "a_b/repo"])
def test_a_repository_name_github_would_refuse_is_400_before_any_call(launcher, look, full_name):
    launcher.env("GITHUB_REPOSITORIES", "")

    status, body = launcher(delivery("queued", "d-1", repository=full_name))

    assert status == 400 and body["message"].startswith("repository.full_name:")
    assert full_name not in body["message"]
    assert launcher.github.calls == [] and inventory(look, REGION) == NOTHING


def test_the_runner_configuration_names_the_one_instance_allowed_to_read_it(launcher, look):
    _, made = launcher(delivery("queued", "d-1"))
    instance = instance_of(look, made["session"])
    ssm = look("ssm", REGION)
    parameter = ssm.get_parameter(Name=f"/{made['session']}/runner-jitconfig")["Parameter"]

    tags = {
        t["Key"]: t["Value"]
        for t in ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=parameter["Name"])["TagList"]
    }

    assert tags[INSTANCE_TAG] == f"arn:aws:ec2:{REGION}:123456789012:instance/{instance['InstanceId']}"
    assert tags[SESSION_TAG] == made["session"]
