"""template.yaml read as data: the contract's resources, and least privilege proved statement by statement."""

from __future__ import annotations

import re

import pytest
from runners import KIND as RUNNERS_KIND
from runners import PERMISSIONS as RUNNERS_NEED
from session_naming.resources import ORDER

from tools.cfn_template import load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FUNCTIONS = {"collector": "CollectorFunction", "launcher": "LauncherFunction"}

# The collector may do what its deletion units and its GitHub part declare they call, and nothing else.
COLLECTOR_UNITS_NEED = frozenset().union(*(kind.permissions for kind in ORDER), RUNNERS_NEED)
# Where a unit scoped by name finds its resources in an ARN.
NAME_SCOPED_ARN = {"key_pair": ":key-pair/", "parameter": ":parameter/"}
# A release deletes a session's every kind with the same units, one resource a call (no batch delete).
LAUNCHER_RELEASE_NEEDS = frozenset().union(*(kind.permissions for kind in ORDER)) - {"ssm:DeleteParameters"}
ALLOWED = {
    "collector": set(COLLECTOR_UNITS_NEED),
    "launcher": set(LAUNCHER_RELEASE_NEEDS)
    | {
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeInstances",
        "ec2:DescribeKeyPairs",
        "ec2:DescribeSecurityGroups",
        "ssm:DescribeParameters",
        "ec2:CreateKeyPair",
        "ec2:ImportKeyPair",
        "ec2:CreateSecurityGroup",
        "ec2:RunInstances",
        "ec2:CreateTags",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:DeleteSecurityGroup",
        "ec2:TerminateInstances",
        "ec2:DeleteKeyPair",
        "ssm:PutParameter",
        "ssm:AddTagsToResource",
        "ssm:DeleteParameter",
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "iam:PassRole",
        "ssm:GetParameters",
        "ec2:DescribeSubnets",
        "ec2:CreateFleet",
        "ec2:CreateLaunchTemplate",
        "iam:CreateServiceLinkedRole",
        "ssm:GetParameter",
        "dynamodb:Query",
        "ec2:StartInstances",  # a claim starts a stopped pool instance
        "ec2:DescribeInstanceStatus",  # a hot pool instance is ready when its status checks are ok
    },
}
# What a warm pool's upkeep and claims may tag after creation: only on a session's pool instance (its pool tag
# present), naming such a session, only these keys.
POOL_TAG_KEYS = {
    "ec2-sessions:session",
    "ec2-sessions:github-job",
    "ec2-sessions:github-runner",
    "ec2-sessions:gitlab-job",
    "ec2-sessions:pool-state",
}
# Tagging after creation: what an ending instance holds and no session claims, with the session's tags only.
HOLDINGS_CONDITION = {
    "Null": {"ec2:ResourceTag/ec2-sessions:session": "true"},
    "StringLike": {"aws:RequestTag/ec2-sessions:session": "SessionBases"},
    "ForAllValues:StringEquals": {"aws:TagKeys": ["ec2-sessions:session", "ec2-sessions:expires"]},
}
READ_ONLY = re.compile(r"^[a-z0-9]+:(Describe|Get|List)")
SESSION_TAG_KEYS = {"ec2:ResourceTag/ec2-sessions:session", "aws:RequestTag/ec2-sessions:session"}
DESIGN_VARIABLES = {
    "SESSION_BASES": "SessionBases",
    "REGIONS": "Regions",
    "DRY_RUN": "DryRun",
    "GRACE_SECONDS": "GraceSeconds",
    "MAX_DELETIONS": "MaxDeletions",
    "DEFAULT_LIFETIME_MINUTES": "DefaultLifetimeMinutes",
    "MAX_LIFETIME_MINUTES": "MaxLifetimeMinutes",
    "MAX_LIVE_SESSIONS": "MaxLiveSessions",
    "ALLOW_WORLD_INGRESS": "AllowWorldIngress",
    "GITHUB_LABEL": "GithubLabel",
    "LAUNCH_TEMPLATE_ID": "LaunchTemplateId",
    "VPC_ID": "VpcId",
    "PROFILES": "Profiles",
    "SPOT_BREAKER_INTERRUPTIONS": "SpotBreakerInterruptions",
}


def statements(function: str) -> list[dict]:
    """Every statement of the function's inline policies, each branch of an ``Fn::If`` included."""
    found = []
    for policy in RESOURCES[FUNCTIONS[function]]["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, "only inline statements: no managed policies"
        for statement in policy["Statement"]:
            if "Fn::If" in statement:
                found += [branch for branch in statement["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
            else:
                found.append(statement)
    return found


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def resources_text(statement: dict) -> str:
    return repr(statement["Resource"])


def tags_only_holdings(statement: dict) -> bool:
    """``ec2:CreateTags`` on volumes and interfaces no session claims, only with the session tag of an owned base."""
    condition = statement.get("Condition", {})
    return (
        as_list(statement["Action"]) == ["ec2:CreateTags"]
        and set(condition) == set(HOLDINGS_CONDITION)
        and condition["Null"] == HOLDINGS_CONDITION["Null"]
        and set(condition["StringLike"]) == set(HOLDINGS_CONDITION["StringLike"])
        and "SessionBases" in repr(condition["StringLike"])
        and condition["ForAllValues:StringEquals"] == HOLDINGS_CONDITION["ForAllValues:StringEquals"]
        and all(":volume/" in repr(r) or ":network-interface/" in repr(r) for r in as_list(statement["Resource"]))
    )


def retags_only_sessions(statement: dict) -> bool:
    """``ec2:CreateTags`` after creation: on a session's resources, naming such a session, its job key only."""
    condition = statement.get("Condition", {})
    return (
        as_list(statement["Action"]) == ["ec2:CreateTags"]
        and set(condition) == {"StringLike", "ForAllValues:StringEquals"}
        and set(condition["StringLike"]) == SESSION_TAG_KEYS
        and all("SessionBases" in repr(value) for value in condition["StringLike"].values())
        and condition["ForAllValues:StringEquals"]
        == {"aws:TagKeys": ["ec2-sessions:session", "ec2-sessions:github-job"]}
    )


def tags_only_pool_sessions(statement: dict) -> bool:
    """``ec2:CreateTags`` on a session's pool resources (pool tag present), naming such a session, pool keys only."""
    condition = statement.get("Condition", {})
    return (
        as_list(statement["Action"]) == ["ec2:CreateTags"]
        and set(condition) == {"StringLike", "Null", "ForAllValues:StringEquals"}
        and set(condition["StringLike"]) == SESSION_TAG_KEYS
        and all("SessionBases" in repr(value) for value in condition["StringLike"].values())
        and condition["Null"] == {"ec2:ResourceTag/ec2-sessions:pool": "false"}
        and set(condition["ForAllValues:StringEquals"]["aws:TagKeys"]) <= POOL_TAG_KEYS
    )


def scoped_by_base_name(statement: dict, prefix: str) -> bool:
    """Resources built from ``<prefix><base>/*`` for every owned base (the Split/Join of SessionBases)."""
    text = resources_text(statement)
    return prefix in text and "SessionBases" in text and "/*" in text


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_has_its_own_role_with_only_the_allowed_actions(function):
    actions = {action for s in statements(function) for action in as_list(s["Action"])}

    assert statements(function), f"{function} has no policy of its own"
    assert "Role" not in RESOURCES[FUNCTIONS[function]]["Properties"]
    assert actions <= ALLOWED[function], actions - ALLOWED[function]
    assert all(s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s for s in statements(function))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_write_action_is_granted_on_everything(function):
    for statement in statements(function):
        writes = [a for a in as_list(statement["Action"]) if not READ_ONLY.match(a)]
        if writes:
            assert statement["Resource"] != "*" and "*" not in as_list(statement["Resource"]), statement["Sid"]
            assert not any(str(r).endswith(":*") for r in as_list(statement["Resource"])), statement["Sid"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_deletes_and_terminations_are_scoped_to_session_resources(function):
    for statement in statements(function):
        actions = set(as_list(statement["Action"]))
        tag_condition = set(statement.get("Condition", {}).get("StringLike", {})) & SESSION_TAG_KEYS
        if actions & {"ec2:TerminateInstances", "ec2:DeleteSecurityGroup", "ec2:AuthorizeSecurityGroupIngress"}:
            assert tag_condition == {"ec2:ResourceTag/ec2-sessions:session"}, statement["Sid"]
            assert "SessionBases" in repr(statement["Condition"]), statement["Sid"]
        if "ec2:DeleteKeyPair" in actions:
            assert scoped_by_base_name(statement, ":key-pair/"), statement["Sid"]
        if actions & {"ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:PutParameter"}:
            assert scoped_by_base_name(statement, ":parameter/"), statement["Sid"]


def test_collector_policy_grants_exactly_the_actions_its_deletion_units_declare():
    granted = {action for s in statements("collector") for action in as_list(s["Action"])}

    need = COLLECTOR_UNITS_NEED
    assert granted == need, {"not granted": need - granted, "granted beyond the units": granted - need}


@pytest.mark.parametrize("kind", ORDER, ids=lambda kind: kind.name)
def test_each_collector_delete_is_scoped_as_its_unit_declares(kind):
    granting = [s for s in statements("collector") if kind.deletes & set(as_list(s["Action"]))]

    assert kind.deletes and granting, kind.name
    for statement in granting:
        if as_list(statement["Action"]) == ["ec2:CreateTags"]:
            assert tags_only_holdings(statement), statement["Sid"]
        elif kind.scope == "session-tag":
            condition = statement.get("Condition", {}).get("StringLike", {})
            assert set(condition) == {"ec2:ResourceTag/ec2-sessions:session"}, statement["Sid"]
            assert "SessionBases" in repr(condition) and "/*" in repr(condition), statement["Sid"]
            assert all("/*" in repr(r) and "${Bases}" not in repr(r) for r in as_list(statement["Resource"]))
        else:
            assert scoped_by_base_name(statement, NAME_SCOPED_ARN[kind.name]), statement["Sid"]


def test_launcher_creates_only_with_the_session_tag_and_tags_only_while_creating():
    for statement in statements("launcher"):
        actions = set(as_list(statement["Action"]))
        conditions = statement.get("Condition", {})
        if actions & {"ec2:CreateKeyPair", "ec2:ImportKeyPair"}:
            assert "aws:RequestTag/ec2-sessions:session" in conditions["StringLike"]
        if "ec2:CreateTags" in actions and not any(
            allowed(statement) for allowed in (tags_only_holdings, retags_only_sessions, tags_only_pool_sessions)
        ):
            assert set(conditions["StringEquals"]["ec2:CreateAction"]) == {
                "CreateKeyPair",
                "ImportKeyPair",
                "CreateSecurityGroup",
                "RunInstances",
                "CreateFleet",
                "CreateLaunchTemplate",
            }
        if actions == {"ec2:CreateSecurityGroup"} and "security-group/" in resources_text(statement):
            assert "aws:RequestTag/ec2-sessions:session" in conditions["StringLike"]
        if actions == {"ec2:RunInstances"} and ":instance/" in resources_text(statement):
            assert "aws:RequestTag/ec2-sessions:session" in conditions["StringLike"]
        if "secretsmanager:GetSecretValue" in actions:
            assert statement["Resource"] == [{"Ref": "WebhookSecret"}, {"Ref": "GitHubAppSecret"}]
        if actions == {"dynamodb:Query"}:  # the reconcile pass reads the index of waiting jobs, never the table
            assert statement["Resource"] == {"Fn::Sub": "${IdempotencyTable.Arn}/index/due"}
        elif any(a.startswith("dynamodb:") for a in actions):
            assert statement["Resource"] == {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
        if "iam:PassRole" in actions:
            assert statement["Resource"] == {"Ref": "InstanceRoleArn"}
            assert conditions["StringEquals"]["iam:PassedToService"] == "ec2.amazonaws.com"


def test_instance_statements_exist_only_when_a_launch_template_or_profiles_are_configured():
    policy = RESOURCES["LauncherFunction"]["Properties"]["Policies"][0]["Statement"]
    conditional = [s["Fn::If"] for s in policy if "Fn::If" in s]

    assert {branch[0] for branch in conditional} == {
        "LaunchesInstances",
        "HasInstanceRole",
        "ResolvesImageFromSsm",
        "ProfilesInSsm",
    }
    for action in ("ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate", "iam:CreateServiceLinkedRole"):
        assert all(action not in as_list(s["Action"]) for s in policy if "Fn::If" not in s)
    assert TEMPLATE["Conditions"]["LaunchesInstances"] == {
        "Fn::Or": [{"Condition": "HasLaunchTemplate"}, {"Condition": "HasProfiles"}]
    }
    assert TEMPLATE["Conditions"]["ResolvesImageFromSsm"]["Fn::And"][0] == {"Condition": "LaunchesInstances"}


def test_launcher_reads_only_the_parameter_its_launch_template_resolves_its_image_from():
    """RunInstances resolves a ``resolve:ssm:`` AMI with the caller's ``ssm:GetParameters``: that one name, no other."""
    readers = [s for s in statements("launcher") if "ssm:GetParameters" in as_list(s["Action"])]
    policy = RESOURCES["LauncherFunction"]["Properties"]["Policies"][0]["Statement"]
    [branches] = [s["Fn::If"] for s in policy if "Fn::If" in s and s["Fn::If"][0] == "ResolvesImageFromSsm"]

    assert [s["Sid"] for s in readers] == ["ResolveTheTemplatesImageParameter"]
    assert branches[1] == readers[0] and branches[2] == {"Ref": "AWS::NoValue"}
    assert as_list(readers[0]["Action"]) == ["ssm:GetParameters"]
    assert readers[0]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:*:parameter/${LaunchTemplateImageParameter}"
    }
    assert TEMPLATE["Parameters"]["LaunchTemplateImageParameter"]["Default"] == ""


def test_every_design_variable_is_a_parameter_passed_to_a_function():
    environment = {}
    for logical_id in FUNCTIONS.values():
        environment.update(RESOURCES[logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
    environment.update(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])

    for variable, parameter in DESIGN_VARIABLES.items():
        assert parameter in TEMPLATE["Parameters"], parameter
        assert parameter in repr(environment[variable]), variable
    assert environment["WEBHOOK_SECRET_ARN"] == {"Ref": "WebhookSecret"}
    assert environment["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}


def test_collector_runs_on_a_scheduler_with_retries_a_dead_letter_queue_and_one_at_a_time():
    collector = RESOURCES["CollectorFunction"]["Properties"]
    [event] = collector["Events"].values()

    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert TEMPLATE["Parameters"]["ScheduleExpression"]["Default"] == "rate(15 minutes)"
    assert event["Properties"]["Input"] == '{"dry_run": false}'
    assert event["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert "Arn" in event["Properties"]["DeadLetterConfig"]
    assert collector["ReservedConcurrentExecutions"] == 1


def test_layer_and_globals_target_python_3_13_with_the_architecture_a_parameter():
    layer = RESOURCES["SessionNamingLayer"]
    globals_ = TEMPLATE["Globals"]["Function"]

    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Properties"]["ContentUri"] == "layers/session_naming"
    assert set(layer["Properties"]["CompatibleArchitectures"]) == {"arm64", "x86_64"}
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == [{"Ref": "Architecture"}]
    assert TEMPLATE["Parameters"]["Architecture"]["Default"] == "arm64"
    assert {k for k in globals_["Environment"]["Variables"] if k.startswith("POWERTOOLS_")} >= {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }


def test_webhook_secret_is_generated_long_enough_and_its_arn_is_an_output():
    secret = RESOURCES["WebhookSecret"]["Properties"]["GenerateSecretString"]

    assert secret["PasswordLength"] >= 32
    assert "SecretStringTemplate" not in secret  # plain text, the HMAC key itself
    assert TEMPLATE["Outputs"]["WebhookSecretArn"]["Value"] == {"Ref": "WebhookSecret"}


def test_outputs_name_the_url_and_both_functions():
    assert {"LauncherUrl", "LauncherFunctionName", "CollectorFunctionName"} <= set(TEMPLATE["Outputs"])


def test_alarms_watch_collector_errors_failed_deletions_and_the_dead_letter_queue():
    alarms = {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}

    assert {"CollectorErrorsAlarm", "CollectorFailedDeletionsAlarm", "ScheduleDeadLetterAlarm"} <= set(alarms)
    metrics = alarms["CollectorFailedDeletionsAlarm"]["Metrics"]
    watched = {m["MetricStat"]["Metric"]["Dimensions"][1]["Value"]: m["Id"] for m in metrics if "MetricStat" in m}
    [summed] = [m["Expression"] for m in metrics if m.get("ReturnData")]
    assert set(watched) == {kind.name for kind in ORDER}
    assert all(f"FILL({ident}, 0)" in summed for ident in watched.values())
    assert len(watched) <= 10  # CloudWatch's limit for a metric-math alarm
    registrations = alarms["CollectorFailedRegistrationsAlarm"]
    assert (registrations["MetricName"], registrations["Dimensions"][1]["Value"]) == ("Failed", RUNNERS_KIND)
    for alarm in alarms.values():  # the stack's topic, and the AlarmTopicArn parameter's when given (test_operate.py)
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}], [{"Ref": "AlarmTopic"}]]
        }


def test_the_launcher_may_list_and_delete_every_kind_a_release_meets():
    """A release judges and deletes a session's resources of every kind, as the collector does (moto checks no IAM)."""
    granted = {action for s in statements("launcher") for action in as_list(s["Action"])}

    assert granted >= LAUNCHER_RELEASE_NEEDS, LAUNCHER_RELEASE_NEEDS - granted
    for statement in statements("launcher"):
        if tags_only_holdings(statement) or retags_only_sessions(statement):
            continue
        deletes = {a for a in as_list(statement["Action"]) if a in LAUNCHER_RELEASE_NEEDS and not READ_ONLY.match(a)}
        deletes -= {"ec2:CreateTags"}  # tagging while creating, or what an instance holds: checked above
        if deletes - {"ec2:DeleteKeyPair", "ssm:DeleteParameter"}:  # those two are scoped by name (checked above)
            assert set(statement["Condition"]["StringLike"]) == {"ec2:ResourceTag/ec2-sessions:session"}, statement[
                "Sid"
            ]


def test_the_launcher_retags_only_session_resources_with_a_session_tag_and_the_job_key():
    [statement] = [s for s in statements("launcher") if s.get("Sid") == "RebindASessionToTheJobItsRunnerTook"]

    assert retags_only_sessions(statement)
