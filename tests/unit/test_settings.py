"""Configuration: every bad variable named at once, before any AWS call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from session_naming.settings import ConfigError, load_collector, load_launcher

LAUNCHER = {"AWS_REGION": "us-east-1", "WEBHOOK_SECRET_ARN": "arn:secret", "IDEMPOTENCY_TABLE": "t"}


def test_collector_defaults_follow_the_design():
    settings = load_collector({"AWS_REGION": "eu-west-1"})

    assert settings.session_bases == ("ec2-test-runner",)
    assert settings.regions == ("eu-west-1",)
    assert (settings.dry_run, settings.grace, settings.max_deletions) == (False, timedelta(seconds=300), 1000)
    assert settings.concurrency == 8
    assert settings.ec2_delete_rate == 5  # EC2's documented refill per second


def test_collector_reports_every_bad_variable_in_one_message():
    with pytest.raises(ConfigError) as error:
        load_collector(
            {
                "SESSION_BASES": "good,bad/base,",
                "REGIONS": "us-east-1,mars-north-1",
                "DRY_RUN": "yes",
                "GRACE_SECONDS": "-1",
                "MAX_DELETIONS": "many",
                "EC2_DELETE_RATE": "0",
            }
        )

    message = str(error.value)
    for variable in ("SESSION_BASES", "REGIONS", "DRY_RUN", "GRACE_SECONDS", "MAX_DELETIONS", "EC2_DELETE_RATE"):
        assert variable in message
    assert "'bad/base'" in message and "mars-north-1" in message


def test_sweeping_untagged_legacy_groups_is_refused_inside_lambda():
    env = {"AWS_REGION": "us-east-1", "SWEEP_UNTAGGED": "true"}

    assert load_collector(env).sweep_untagged
    with pytest.raises(ConfigError, match="refused inside Lambda"):
        load_collector({**env, "AWS_LAMBDA_FUNCTION_NAME": "collector"})


def test_launcher_requires_its_secret_and_table():
    with pytest.raises(ConfigError) as error:
        load_launcher({"AWS_REGION": "us-east-1"})

    assert "WEBHOOK_SECRET_ARN is required" in str(error.value)
    assert "IDEMPOTENCY_TABLE is required" in str(error.value)


def test_launcher_refuses_a_default_lifetime_beyond_the_maximum():
    with pytest.raises(ConfigError, match="DEFAULT_LIFETIME_MINUTES"):
        load_launcher({**LAUNCHER, "DEFAULT_LIFETIME_MINUTES": "600", "MAX_LIFETIME_MINUTES": "300"})


def test_launcher_reads_its_settings():
    settings = load_launcher({**LAUNCHER, "LAUNCH_TEMPLATE_ID": "lt-0123456789abcdef0", "ALLOW_WORLD_INGRESS": "true"})

    assert settings.launch_template_id == "lt-0123456789abcdef0"
    assert settings.allow_world_ingress and settings.vpc_id is None
    assert settings.max_body_bytes == 65_536
    assert settings.default_lifetime == timedelta(hours=6) and settings.max_lifetime == timedelta(hours=24)


def test_secret_values_never_appear_in_configuration_errors():
    with pytest.raises(ConfigError) as error:
        load_launcher({"AWS_REGION": "us-east-1", "WEBHOOK_SECRET_ARN": "arn:secret", "MAX_LIVE_SESSIONS": "0"})

    assert "arn:secret" not in str(error.value)


def test_bases_that_ssm_reserves_are_refused():
    with pytest.raises(ConfigError, match="'aws-tests'"):
        load_collector({"AWS_REGION": "us-east-1", "SESSION_BASES": "aws-tests"})


def test_github_settings_default_to_no_app_and_the_public_api():
    github = load_launcher(LAUNCHER).github

    assert github.app_secret_arn is None
    assert (github.api_url, github.runner_scope, github.runner_group_id) == ("https://api.github.com", "repo", 1)
    assert github.allows("Anyone/Anything")


def test_github_allow_list_compares_owner_and_repository_in_any_letter_case():
    github = load_collector(
        {"AWS_REGION": "us-east-1", "GITHUB_REPOSITORIES": "Codertocat/Hello-World, octo-org/*"}
    ).github

    assert github.allows("codertocat/hello-world") and github.allows("CODERTOCAT/HELLO-WORLD")
    assert github.allows("Octo-Org/anything")
    assert not github.allows("codertocat/other") and not github.allows("octo-org-2/x")


def test_bad_github_settings_are_named_without_their_values():
    with pytest.raises(ConfigError) as error:
        load_launcher(
            {
                **LAUNCHER,
                "GITHUB_API_URL": "ftp://example",
                "GITHUB_RUNNER_SCOPE": "enterprise",
                "GITHUB_RUNNER_GROUP_ID": "zero",
                "GITHUB_REPOSITORIES": "no-slash-here",
            }
        )

    message = str(error.value)
    for variable in ("GITHUB_API_URL", "GITHUB_RUNNER_SCOPE", "GITHUB_RUNNER_GROUP_ID", "GITHUB_REPOSITORIES"):
        assert variable in message
    assert "no-slash-here" not in message
