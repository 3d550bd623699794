"""Profiles and capacity: the machine a job gets, spot first, and what a user sees when EC2 has none.

moto never runs out of capacity; ``Capacity`` (tests/support/capacity.py)
answers EC2 Fleet's capacity errors for chosen pools in front of it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from session_naming import PROFILE_TAG, SESSION_TAG, clients

from tests.support.capacity import Capacity
from tests.support.deliveries import github_event, workflow_job
from tests.support.faults import Faults
from tests.support.function_url import url_event
from tests.support.handlers import LambdaContext, load_event
from tests.support.metrics import total
from tests.support.seed import ALL_KINDS, catalogue_image, inventory
from tests.support.stack import REGION, make_launch_template

NOTHING = {kind: set() for kind in ALL_KINDS}


@pytest.fixture
def launcher(launcher, look):
    """A launcher with three profiles: small (spot-first), arm (spot), gpu (on-demand, one live at most)."""
    template = make_launch_template(look)
    profiles = {
        "small": {
            "labels": ["ec2-session"],
            "launch_template_id": template,
            "instance_types": ["t3.small", "t3a.small"],
            "market": "spot-first",
            "lifetime_minutes": 90,
        },
        "arm": {"labels": ["ec2-session", "arm-large"], "launch_template_id": template, "market": "spot"},
        "gpu": {
            "labels": ["ec2-session", "gpu"],
            "launch_template_id": template,
            "instance_types": ["g5.xlarge"],
            "max_live": 1,
        },
    }
    launcher.env("PROFILES", json.dumps(profiles))
    launcher.capacity = Capacity().attach(clients.client("ec2", REGION))
    launcher.template = template
    return launcher


def instance_tags(look, instance_id):
    [reservation] = look("ec2", REGION).describe_instances(InstanceIds=[instance_id])["Reservations"]
    return {t["Key"]: t["Value"] for t in reservation["Instances"][0]["Tags"]}


def queued(job, labels, delivery=None):
    return github_event(workflow_job("queued", job, labels=labels), delivery or f"d-{job}")


def test_a_job_gets_the_profile_its_labels_name_spot_first_when_the_profile_says_so(launcher, look):
    status, body = launcher(queued(1, ["self-hosted", "linux", "x64", "ec2-session"]))

    assert status == 201
    [instance] = body["instances"]
    assert (instance["profile"], instance["market"], instance["instance_type"]) == ("small", "spot", "t3.small")
    assert body["expires_at"] <= f"{datetime.now(UTC) + timedelta(minutes=91):%Y-%m-%dT%H:%M:%SZ}"
    assert instance_tags(look, instance["id"])[PROFILE_TAG] == "small"
    key = look("ec2", REGION).describe_key_pairs(KeyNames=[body["session"]])["KeyPairs"][0]
    assert {t["Key"]: t["Value"] for t in key["Tags"]}[PROFILE_TAG] == "small"
    assert launcher.capacity.fleet_calls == ["spot"]


def test_a_job_whose_labels_match_no_profile_is_202_counted_and_makes_nothing(launcher, look, capsys):
    capsys.readouterr()

    status, body = launcher(queued(2, ["self-hosted", "ec2-session", "gpu", "huge"]))

    assert (status, body) == (202, {"ignored": "no profile matches the job's labels"})
    assert total(capsys.readouterr().out, "JobsUnmatched") == 1
    assert inventory(look, REGION) == NOTHING


def test_spot_exhausted_falls_back_to_on_demand_with_exactly_one_more_fleet_call(launcher, capsys):
    launcher.capacity.exhaust("spot")
    capsys.readouterr()

    status, body = launcher(queued(3, ["ec2-session"]))

    assert status == 201 and body["instances"][0]["market"] == "on-demand"
    assert launcher.capacity.fleet_calls == ["spot", "on-demand"]
    assert total(capsys.readouterr().out, "CapacityFallbacks") == 1


def test_one_exhausted_type_is_skipped_within_the_same_fleet_call(launcher):
    launcher.capacity.exhaust("spot", "t3.small")

    status, body = launcher(queued(4, ["ec2-session"]))

    assert status == 201 and body["instances"][0]["instance_type"] == "t3a.small"
    assert launcher.capacity.fleet_calls == ["spot"]


def test_all_capacity_gone_is_503_with_retry_after_and_leaves_nothing(launcher, look, capsys):
    launcher.capacity.exhaust("spot")
    launcher.capacity.exhaust("on-demand")
    capsys.readouterr()

    response = launcher.module.lambda_handler(queued(5, ["ec2-session"], "same-delivery"), LambdaContext())

    assert response["statusCode"] == 503 and response["headers"]["Retry-After"] == "60"
    assert json.loads(response["body"])["error"] == "no_capacity"
    assert total(capsys.readouterr().out, "CapacityExhausted") == 1
    assert inventory(look, REGION) == NOTHING  # key pair, group, parameter and the session's template rolled back
    launcher.capacity.restore()
    status, _ = launcher(queued(5, ["ec2-session"], "same-delivery"))  # a 503 is not the delivery's answer
    assert status == 201


def test_a_configuration_error_is_never_followed_by_another_ask(launcher, look):
    launcher.capacity.refuse_with = "InvalidParameterValue"

    status, body = launcher(queued(6, ["ec2-session"]))

    assert (status, body["error"]) == (500, "internal")
    assert launcher.capacity.fleet_calls == ["spot"]
    assert inventory(look, REGION) == NOTHING


def test_a_profile_cap_is_exact_and_names_the_profile(launcher):
    first = launcher(url_event("POST", "/sessions", {"instance": True, "profile": "gpu"}))
    second = launcher(url_event("POST", "/sessions", {"instance": True, "profile": "gpu"}))
    other = launcher(url_event("POST", "/sessions", {"instance": True, "profile": "arm"}))

    assert first[0] == 201 and first[1]["instances"][0]["instance_type"] == "g5.xlarge"
    assert second[0] == 429 and "profile gpu" in second[1]["message"] and "max_live" in second[1]["message"]
    assert other[0] == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [({"instance": True, "profile": "nope"}, "profile:"), ({"profile": "gpu"}, "profile:")],
)
def test_an_unknown_profile_or_one_without_an_instance_is_400(launcher, look, body, field):
    status, answer = launcher(url_event("POST", "/sessions", body))

    assert status == 400 and answer["message"].startswith(field)
    assert inventory(look, REGION) == NOTHING


def test_the_breaker_sends_spot_first_straight_to_on_demand_after_enough_interruptions(launcher, look, capsys):
    for job in (11, 12, 13):
        _, made = launcher(queued(job, ["ec2-session"]))
        interruption(launcher, made["instances"][0]["id"])
    launcher.capacity.fleet_calls.clear()
    capsys.readouterr()

    status, body = launcher(queued(14, ["ec2-session"]))

    assert status == 201 and body["instances"][0]["market"] == "on-demand"
    assert launcher.capacity.fleet_calls == ["on-demand"]
    assert total(capsys.readouterr().out, "SpotBreakerOpen") == 1


def interruption(launcher, instance_id):
    event = load_event("spot-interruption.json")
    event["detail"]["instance-id"] = instance_id
    return launcher.module.lambda_handler(event, LambdaContext())


def test_an_interruption_releases_its_session_at_once_and_counts_it_by_profile(launcher, look, capsys):
    _, made = launcher(queued(21, ["ec2-session"]))
    _, other = launcher(queued(22, ["ec2-session"]))
    capsys.readouterr()

    answer = interruption(launcher, made["instances"][0]["id"])

    assert answer["released"] == [made["session"]] and answer["profile"] == "small"
    assert total(capsys.readouterr().out, "SpotInterruptions") == 1
    assert made["session"] not in inventory(look, REGION)["key_pair"]
    assert other["session"] in inventory(look, REGION)["key_pair"]


def test_an_interruption_of_an_instance_that_is_no_sessions_changes_nothing(launcher, look):
    _, made = launcher(queued(23, ["ec2-session"]))
    image = catalogue_image(look("ec2", REGION))
    stranger = look("ec2", REGION).run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "ec2-test-runner/x/y"}]}],
    )["Instances"][0]["InstanceId"]
    before = inventory(look, REGION)

    assert interruption(launcher, stranger) == {"ignored": "not a session's instance"}
    assert interruption(launcher, "i-0000000000000000f") == {"ignored": "not a session's instance"}
    assert inventory(look, REGION) == before and made["session"] in before["key_pair"]


def test_a_release_tags_a_volume_a_test_attached_before_it_ends_the_instance(launcher, look):
    _, made = launcher(url_event("POST", "/sessions", {"instance": True, "profile": "arm"}))
    ec2 = look("ec2", REGION)
    [reservation] = ec2.describe_instances(InstanceIds=[made["instances"][0]["id"]])["Reservations"]
    zone = reservation["Instances"][0]["Placement"]["AvailabilityZone"]
    volume = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]  # untagged, as a test would make it
    ec2.attach_volume(VolumeId=volume, InstanceId=made["instances"][0]["id"], Device="/dev/sdf")

    status, _ = launcher(url_event("DELETE", f"/sessions/{made['session']}", {"session": made["session"]}))

    assert status == 200
    tags = {t["Key"]: t["Value"] for t in ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0].get("Tags", [])}
    assert tags[SESSION_TAG] == made["session"]  # the collector removes it at expiry, like any of the session's


def test_profiles_from_an_ssm_parameter_are_read_and_a_bad_document_there_launches_nothing(launcher, look):
    ssm = look("ssm", REGION)
    document = {"ssm-one": {"labels": ["ec2-session"], "launch_template_id": launcher.template}}
    ssm.put_parameter(Name="/ec2-sessions/profiles", Value=json.dumps(document), Type="String")
    launcher.env("PROFILES", "ssm:/ec2-sessions/profiles")

    status, body = launcher(url_event("POST", "/sessions", {"instance": True}))

    assert status == 201 and body["instances"][0]["profile"] == "ssm-one"
    ssm.put_parameter(Name="/ec2-sessions/bad", Value='{"x": {"labels": []}}', Type="String")
    launcher.env("PROFILES", "ssm:/ec2-sessions/bad")
    before = inventory(look, REGION)
    assert launcher(url_event("POST", "/sessions", {"instance": True}))[0] == 500
    assert inventory(look, REGION) == before


def test_the_sessions_template_keeps_the_profile_templates_boot_script_and_tags_and_drops_what_create_refuses(
    launcher, look
):
    """DescribeLaunchTemplateVersions answers fields CreateLaunchTemplate refuses (MetadataOptions.State...)."""
    ec2 = look("ec2", REGION)
    data = {
        "ImageId": catalogue_image(ec2),
        "InstanceType": "t3.micro",
        "UserData": "IyEvYmluL3NoCmVjaG8gaGVsbG8K",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "cost-centre", "Value": "ci"}]}],
    }
    template = ec2.create_launch_template(LaunchTemplateName="hardened", LaunchTemplateData=data)
    launcher.env(
        "PROFILES",
        json.dumps(
            {"hard": {"labels": ["ec2-session"], "launch_template_id": template["LaunchTemplate"]["LaunchTemplateId"]}}
        ),
    )
    clients.client("ec2", REGION).meta.events.register(
        "after-call.ec2.DescribeLaunchTemplateVersions",
        lambda parsed, **_: parsed["LaunchTemplateVersions"][0]["LaunchTemplateData"]["MetadataOptions"].update(
            State="applied"  # as AWS answers it
        ),
    )

    status, body = launcher(url_event("POST", "/sessions", {"instance": True}))

    assert status == 201, body
    [made] = launcher.capacity.templates
    sent = made["LaunchTemplateData"]
    # State dropped (CreateLaunchTemplate refuses it); the hop limit the template left out filled in as 1.
    expected = {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1}
    assert sent["MetadataOptions"] == expected
    assert sent["UserData"] == data["UserData"]  # no runner: the template's own boot script
    [instance] = [spec for spec in sent["TagSpecifications"] if spec["ResourceType"] == "instance"]
    assert {"Key": "cost-centre", "Value": "ci"} in instance["Tags"]
    assert {"Key": SESSION_TAG, "Value": body["session"]} in instance["Tags"]


def test_a_volume_older_than_the_instance_is_not_claimed_and_a_tagging_failure_never_stops_the_terminate(
    launcher, look
):
    ec2 = look("ec2", REGION)
    borrowed = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]  # someone's, lent to the session
    _, made = launcher(url_event("POST", "/sessions", {"instance": True, "profile": "arm"}))
    instance = made["instances"][0]["id"]
    ec2.attach_volume(VolumeId=borrowed, InstanceId=instance, Device="/dev/sdg")
    Faults().inject(clients.client("ec2", REGION), "CreateTags", "UnauthorizedOperation")

    status, body = launcher(url_event("DELETE", f"/sessions/{made['session']}", {"session": made["session"]}))

    assert status == 200 and body["deleted"]["instance"] == [instance]
    assert ec2.describe_volumes(VolumeIds=[borrowed])["Volumes"][0].get("Tags") in (None, [])


def test_a_sessions_instance_requires_imdsv2_with_one_hop_unless_its_profile_template_says_otherwise(launcher, look):
    raised = look("ec2", REGION).create_launch_template(
        LaunchTemplateName="two-hops",
        LaunchTemplateData={
            "ImageId": catalogue_image(look("ec2", REGION)),
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
        },
    )["LaunchTemplate"]["LaunchTemplateId"]

    launcher(url_event("POST", "/sessions", {"instance": True, "profile": "gpu"}))
    launcher.env("PROFILES", json.dumps({"two": {"labels": ["ec2-session"], "launch_template_id": raised}}))
    launcher(url_event("POST", "/sessions", {"instance": True}))

    [default, two] = [t["LaunchTemplateData"]["MetadataOptions"] for t in launcher.capacity.templates]
    assert default == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}
    assert two["HttpPutResponseHopLimit"] == 2  # the documented way to raise it: the profile's own template
