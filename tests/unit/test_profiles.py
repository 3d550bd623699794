"""Profiles: a document checked whole at load, and a job matched to exactly one profile by its labels."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from session_naming.profiles import ProfileError, legacy_profiles, match, parse_profiles
from session_naming.settings import ConfigError, load_launcher

LABEL = "ec2-session"
DAY = timedelta(days=1)
WORKED_EXAMPLE = {
    "small": {
        "labels": ["ec2-session"],
        "launch_template_id": "lt-0abc12345",
        "instance_types": ["t3.small", "t3a.small", "m6i.large"],
        "subnet_ids": ["subnet-0aaa1111", "subnet-0bbb2222"],
        "market": "spot-first",
        "max_live": 20,
        "lifetime_minutes": 120,
    },
    "arm": {"labels": ["ec2-session", "arm-large"], "launch_template_id": "lt-0abc12346", "market": "spot"},
    "gpu": {
        "labels": ["ec2-session", "gpu"],
        "launch_template_id": "lt-0def45678",
        "instance_types": ["g5.xlarge", "g6.xlarge"],
        "market": "on-demand",
    },
}


def profiles(document=WORKED_EXAMPLE):
    return parse_profiles(json.dumps(document), LABEL, DAY)


def test_the_worked_example_loads_with_its_defaults():
    loaded = profiles()

    assert loaded["small"].market == "spot-first" and loaded["small"].max_live == 20
    assert loaded["small"].lifetime == timedelta(minutes=120)
    assert loaded["gpu"].launch_template_version == "$Default" and loaded["gpu"].max_live is None
    assert loaded["arm"].instance_types == () and loaded["arm"].subnet_ids == ()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["self-hosted", "linux", "x64", "ec2-session"], "small"),
        (["EC2-Session", "GPU"], "gpu"),
        (["self-hosted", "linux", "arm64", "ec2-session", "arm-large"], "arm"),
        (["ec2-session", "gpu", "extra"], None),  # a superset matches nothing
        (["gpu"], None),  # a subset of a profile takes none of its runners
        (["self-hosted", "linux"], None),
    ],
)
def test_a_job_matches_the_profile_whose_labels_equal_its_own_in_any_case(labels, expected):
    found = match(profiles(), labels, LABEL)

    assert (found.name if found else None) == expected


def test_the_runner_gets_the_profiles_labels_and_only_the_default_labels_the_job_asked_for():
    gpu = profiles()["gpu"]

    assert gpu.runner_labels(["self-hosted", "Linux", "x64", "ec2-session", "GPU"]) == [
        "self-hosted",
        "ec2-session",
        "gpu",
        "Linux",
        "x64",
    ]


def test_without_profiles_one_legacy_profile_takes_any_job_with_the_label_and_its_labels():
    [legacy] = legacy_profiles("lt-0abc12345", LABEL).values()

    assert match({"default": legacy}, ["self-hosted", "ec2-session", "anything"], LABEL) is legacy
    assert legacy.runner_labels(["self-hosted", "ec2-session", "anything"]) == [
        "self-hosted",
        "ec2-session",
        "anything",
    ]
    assert legacy_profiles(None, LABEL) == {}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"small": {**WORKED_EXAMPLE["small"], "colour": "red"}}, "profile small: unknown field(s) colour"),
        ({"small": {**WORKED_EXAMPLE["small"], "labels": []}}, "profile small: labels"),
        ({"small": {**WORKED_EXAMPLE["small"], "labels": ["gpu"]}}, "profile small: labels: must include GITHUB_LABEL"),
        ({"small": {**WORKED_EXAMPLE["small"], "market": "cheap"}}, "profile small: market"),
        ({"small": {**WORKED_EXAMPLE["small"], "instance_types": ["not a type"]}}, "profile small: instance_types"),
        ({"small": {**WORKED_EXAMPLE["small"], "subnet_ids": ["sub-1"]}}, "profile small: subnet_ids"),
        ({"small": {**WORKED_EXAMPLE["small"], "launch_template_id": "x"}}, "profile small: launch_template_id"),
        ({"small": {**WORKED_EXAMPLE["small"], "max_live": 0}}, "profile small: max_live"),
        ({"small": {**WORKED_EXAMPLE["small"], "lifetime_minutes": 2000}}, "profile small: lifetime_minutes"),
        ({"twin": {**WORKED_EXAMPLE["gpu"], "labels": ["GPU", "ec2-session"]}}, "profile twin: labels: the same set"),
        ({"Big One": WORKED_EXAMPLE["gpu"]}, "a profile name must be"),
    ],
)
def test_a_bad_document_names_the_profile_and_the_field(change, named):
    with pytest.raises(ProfileError) as refused:
        profiles({**WORKED_EXAMPLE, **change})

    assert named in str(refused.value)


def test_every_problem_of_a_document_is_named_at_once():
    bad = {"a": {**WORKED_EXAMPLE["small"], "market": "x"}, "b": {**WORKED_EXAMPLE["gpu"], "max_live": -1}}

    with pytest.raises(ProfileError) as refused:
        profiles(bad)

    assert "profile a: market" in str(refused.value) and "profile b: max_live" in str(refused.value)


@pytest.mark.parametrize("text", ["", "[]", "{}", "not json", '{"a": 1}'])
def test_profiles_that_are_not_a_document_of_profiles_are_a_configuration_error(text):
    with pytest.raises(ConfigError, match="PROFILES"):
        load_launcher(
            {"AWS_REGION": "us-east-1", "WEBHOOK_SECRET_ARN": "arn", "IDEMPOTENCY_TABLE": "t", "PROFILES": text or " x"}
        )


def test_profiles_in_ssm_are_named_by_a_path():
    env = {"AWS_REGION": "us-east-1", "WEBHOOK_SECRET_ARN": "arn", "IDEMPOTENCY_TABLE": "t"}

    assert (
        load_launcher({**env, "PROFILES": "ssm:/ec2-sessions/profiles"}).profiles_parameter == "/ec2-sessions/profiles"
    )
    with pytest.raises(ConfigError, match="PROFILES: ssm:"):
        load_launcher({**env, "PROFILES": "ssm:no-slash"})
