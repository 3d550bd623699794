"""The template's IAM policies checked against AWS's IAM database, resolved as CloudFormation would resolve them.

IAM accepts a policy naming an action, a resource type or a condition key
that does not exist, and grants nothing by it: a typo shows only as an
AccessDenied in production. test_template.py proves least privilege by
reading the template; it cannot know what exists. Here each function's
inline policy is resolved to plain JSON (tools/cfn_template.py) for sample
parameters that take every ``Fn::If`` branch both ways (one base and two;
with and without a launch template, its image parameter, a VPC, an instance
role; the aws and aws-cn partitions) and audited with parliament, whose
database is AWS's Service Authorization Reference: unknown actions, unknown
condition keys for an action, malformed statements.

Parliament checks one statement at a time that an action's required
resource types are all there; IAM authorises each resource of a request on
its own, and the template splits RunInstances and CreateSecurityGroup on
purpose (the new, tagged resources under a tag condition; the image, subnet
and VPC they use without). So that check is made across the whole policy
instead, and a stricter one added: every resource a statement names must be
of a type that one of its actions takes. The negative tests give the same
audit a deliberately wrong statement of each kind, so it is known to fail.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # parliament imports pkg_resources, deprecated
    from parliament import analyze_policy_string, expand_action, is_arn_strictly_valid
    from parliament.statement import get_arn_format, get_privilege_info

from tools.cfn_template import Resolver, load_template

TEMPLATE = load_template()
FUNCTIONS = {"collector": "CollectorFunction", "launcher": "LauncherFunction"}
ACCOUNT = "123456789012"
# Resources the policies name, as the deployed stack would name them.
STACK_RESOURCES = {
    "WebhookSecret": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ec2-sessions-webhook-AbCdEf",
    "GitHubAppSecret": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ec2-sessions-github-app-AbCdEf",
    "IdempotencyTable.Arn": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/ec2-sessions-IdempotencyTable-0ABC",
}
TWO_BASES = "ec2-test-runner,ci.other-base"
EVERYTHING = {
    "SessionBases": TWO_BASES,
    "LaunchTemplateId": "lt-0123456789abcdef0",
    "LaunchTemplateImageParameter": "aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
    "VpcId": "vpc-0123456789abcdef0",
    "InstanceRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ec2-sessions-instance",
}
SAMPLES = {
    "defaults": ({}, {}),
    "two-bases-everything": (EVERYTHING, {}),
    "template-without-image-parameter-or-role": ({"SessionBases": TWO_BASES, "LaunchTemplateId": "lt-0abc12345"}, {}),
    "china-partition": (EVERYTHING, {"AWS::Partition": "aws-cn", "AWS::Region": "cn-north-1"}),
    "profiles-in-ssm": ({"Profiles": "ssm:/ec2-sessions/profiles"}, {}),
    "profiles-as-json": (
        {"Profiles": '{"small": {"labels": ["ec2-session"], "launch_template_id": "lt-0abc1234"}}'},
        {},
    ),
}
# Findings of parliament's community auditors that the template means: (issue, the actions it names).
# PassOnlyTheInstanceRole lets the launcher start instances with the launch template's role: that one
# role, to EC2 only (test_template.py).
# LetSpotMakeItsRole lets the launcher create spot's service-linked role, only that one.
ACCEPTED = {
    ("PERMISSIONS_MANAGEMENT_ACTIONS", frozenset({"iam:passrole"})),
    ("PERMISSIONS_MANAGEMENT_ACTIONS", frozenset({"iam:createservicelinkedrole"})),
    ("PERMISSIONS_MANAGEMENT_ACTIONS", frozenset({"iam:passrole", "iam:createservicelinkedrole"})),
    ("PRIVILEGE_ESCALATION", frozenset({"iam:passrole", "ec2:runinstances"})),
}


def policy(function: str, sample: str) -> dict[str, Any]:
    """The function's one inline policy, every function evaluated for the sample."""
    parameters, pseudo = SAMPLES[sample]
    resolver = Resolver(TEMPLATE, parameters, pseudo, STACK_RESOURCES)
    [document] = resolver.resolve(TEMPLATE["Resources"][FUNCTIONS[function]]["Properties"]["Policies"])
    return document


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def privileges(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """Each action of the statement, wildcards expanded, with its database entry."""
    found = []
    for action in as_list(statement["Action"]):
        for expanded in expand_action(action, raise_exceptions=False) or []:
            found.append({"name": f"{expanded['service']}:{expanded['action']}", **expanded})
    for entry in found:
        entry["info"] = get_privilege_info(entry["service"], entry["action"])
    return found


def resource_types(privilege: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """``(type, ARN pattern, required)`` of each resource type the action takes."""
    info = privilege["info"]
    types = []
    for entry in info["resource_types"]:
        name = entry["resource_type"].rstrip("*")
        if name:
            arn = get_arn_format(name, info["service_resources"])
            types.append((name, arn, entry["resource_type"].endswith("*")))
    return types


def matches(name: str, arn_format: str, resources: list[str]) -> bool:
    return any(resource == "*" or is_arn_strictly_valid(name, arn_format, resource) for resource in resources)


def resource_condition(finding: Any) -> bool:
    """Is an "unknown condition for action" a key the action's resource type takes (parliament checks only actions)?

    AWS's database lists SSM's ``ssm:resourceTag/tag-key`` on the parameter
    resource, not on the actions; IAM evaluates it for every action on a
    parameter, and SSM's documentation recommends it.
    """
    found = re.search(r"Unknown condition (\S+) for action (\w+):(\w+)", f"{finding.title} {finding.detail or ''}")
    if finding.issue != "UNKNOWN_CONDITION_FOR_ACTION" or found is None:
        return False
    key, service, action = found.groups()
    info = get_privilege_info(service, action)
    types = {entry["resource_type"].rstrip("*") for entry in info["resource_types"]}
    for resource in info["service_resources"]:
        if resource["resource"] in types:
            for pattern in resource["condition_keys"]:
                prefix = pattern.split("/", 1)[0] + "/"
                if pattern.endswith(("/tag-key", "/${TagKey}")) and key.lower().startswith(prefix.lower()):
                    return True
                if pattern.lower() == key.lower():
                    return True
    return False


def audit(document: dict[str, Any]) -> list[str]:
    """Everything wrong with an Allow policy, by AWS's IAM database; empty when nothing is."""
    problems = []
    analyzed = analyze_policy_string(json.dumps(document), include_community_auditors=True)
    for finding in analyzed.findings:
        if finding.issue == "RESOURCE_MISMATCH":
            continue  # made across the policy below
        named = frozenset(action.lower() for action in (finding.location or {}).get("actions", ()))
        if (finding.issue, named) in ACCEPTED or resource_condition(finding):
            continue
        where = {key: value for key, value in (finding.location or {}).items() if key != "filepath"}
        problems.append(f"{finding.issue}: {finding.title} {finding.detail or ''} {where}")
    granted: dict[str, list[str]] = {}
    for statement in document["Statement"]:
        known = [p for p in privileges(statement) if p["info"] is not None]
        if not known:
            continue  # an unknown action, reported above
        resources = as_list(statement["Resource"])
        for privilege in known:
            granted.setdefault(privilege["name"], []).extend(resources)
        for resource in resources:
            takes = [(p["name"], t) for p in known for t in resource_types(p)]
            if resource != "*" and not any(matches(name, arn, [resource]) for _, (name, arn, _) in takes):
                problems.append(f"RESOURCE_OF_NO_ACTION: {statement.get('Sid')}: no action of it takes {resource}")
    for statement in document["Statement"]:
        for privilege in privileges(statement):
            if privilege["info"] is None:
                continue
            for name, arn, required in resource_types(privilege):
                if required and not matches(name, arn, granted[privilege["name"]]):
                    problems.append(f"RESOURCE_MISSING: {privilege['name']} needs {arn}, which no statement grants")
    return sorted(set(problems))


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_policies_name_only_actions_resources_and_condition_keys_that_exist(function, sample):
    assert audit(policy(function, sample)) == []


def test_samples_take_every_branch_both_ways():
    """Each conditional statement is in some sample's policy and missing from another's."""
    branches = 0
    for function, logical_id in FUNCTIONS.items():
        [document] = TEMPLATE["Resources"][logical_id]["Properties"]["Policies"]
        sids = [{s["Sid"] for s in policy(function, sample)["Statement"]} for sample in SAMPLES]
        for condition, branch, _ in (s["Fn::If"] for s in document["Statement"] if "Fn::If" in s):
            branches += 1
            assert any(branch["Sid"] in found for found in sids), condition
            assert any(branch["Sid"] not in found for found in sids), condition
    assert branches >= 3


def test_per_base_resources_and_tag_patterns_name_every_base_and_nothing_else():
    """The per-base expressions, written once in the template, give one entry per base wherever they are used."""
    collector = {s["Sid"]: s for s in policy("collector", "two-bases-everything")["Statement"]}
    launcher = {s["Sid"]: s for s in policy("launcher", "two-bases-everything")["Statement"]}
    patterns = ["ec2-test-runner/*", "ci.other-base/*"]

    assert collector["DeleteSessionKeyPairsByName"]["Resource"] == [
        f"arn:aws:ec2:*:{ACCOUNT}:key-pair/ec2-test-runner/*",
        f"arn:aws:ec2:*:{ACCOUNT}:key-pair/ci.other-base/*",
    ]
    assert collector["DeleteSessionParameters"]["Resource"] == [
        f"arn:aws:ssm:*:{ACCOUNT}:parameter/ec2-test-runner/*",
        f"arn:aws:ssm:*:{ACCOUNT}:parameter/ci.other-base/*",
    ]
    for sid in ("CreateOnlyTaggedKeyPairs", "DeleteSessionKeyPairsByName"):
        assert launcher[sid]["Resource"] == [
            f"arn:aws:ec2:us-east-1:{ACCOUNT}:key-pair/ec2-test-runner/*",
            f"arn:aws:ec2:us-east-1:{ACCOUNT}:key-pair/ci.other-base/*",
        ]
    assert launcher["KeepPrivateKeysUnderTheBases"]["Resource"] == [
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/ec2-test-runner/*",
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/ci.other-base/*",
    ]
    tagged = [s for s in [*collector.values(), *launcher.values()] if "StringLike" in s.get("Condition", {})]
    # Every delete scoped by the session tag, the leftover kinds and templates included (both functions); the
    # holdings' tagging (both); creating and running from the session's own template, re-tagging (the launcher);
    # a warm pool's tagging and start (the launcher).
    assert len(tagged) == 14
    for statement in tagged:
        for key, value in statement["Condition"]["StringLike"].items():
            assert key.endswith("Tag/ec2-sessions:session") and value == patterns, statement["Sid"]


def test_launcher_reads_the_image_parameter_by_its_arn_in_any_account():
    """AWS's public parameters carry no account in their ARN; the name is the whole scope."""
    [reader] = [
        s for s in policy("launcher", "two-bases-everything")["Statement"] if s["Action"] == "ssm:GetParameters"
    ]

    assert reader["Resource"] == (
        "arn:aws:ssm:us-east-1:*:parameter/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    )


def wrong(function: str, **change: Any) -> dict[str, Any]:
    """The launcher's or collector's real policy with one statement added, as a typo would add it."""
    document = copy.deepcopy(policy(function, "two-bases-everything"))
    document["Statement"].append({"Sid": "Deliberate", "Effect": "Allow", **change})
    return document


@pytest.mark.parametrize(
    ("mistake", "function", "statement", "issue"),
    [
        (
            "an action that does not exist",
            "collector",
            {"Action": "ec2:TerminateInstance", "Resource": f"arn:aws:ec2:*:{ACCOUNT}:instance/*"},
            "UNKNOWN_ACTION",
        ),
        (
            "a condition key the action does not know",
            "collector",
            {
                "Action": "ec2:TerminateInstances",
                "Resource": f"arn:aws:ec2:*:{ACCOUNT}:instance/*",
                "Condition": {"StringLike": {"ec2:ResourceTags/ec2-sessions:session": "ec2-test-runner/*"}},
            },
            "UNKNOWN_CONDITION_FOR_ACTION",
        ),
        (
            "a resource type the action does not take",
            "collector",
            {"Action": "ec2:DeleteKeyPair", "Resource": f"arn:aws:ec2:*:{ACCOUNT}:instance/ec2-test-runner/*"},
            "RESOURCE_OF_NO_ACTION",
        ),
        (
            "a misspelt resource type",
            "launcher",
            {
                "Action": "ssm:DeleteParameter",
                "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameters/ec2-test-runner/*",
            },
            "RESOURCE_OF_NO_ACTION",
        ),
        (
            "a required resource type no statement grants",
            "launcher",
            {"Action": "ec2:AttachVolume", "Resource": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"},
            "RESOURCE_MISSING",
        ),
        (
            "an unknown global condition key",
            "launcher",
            {
                "Action": "ec2:CreateTags",
                "Resource": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*",
                "Condition": {"StringEquals": {"aws:RequestedTag/ec2-sessions:session": "x"}},
            },
            "UNKNOWN_CONDITION_FOR_ACTION",
        ),
        (
            "a sensitive action the template does not mean",
            "launcher",
            {"Action": "iam:CreateAccessKey", "Resource": f"arn:aws:iam::{ACCOUNT}:user/*"},
            ("CREDENTIALS_EXPOSURE", "PERMISSIONS_MANAGEMENT_ACTIONS", "PRIVILEGE_ESCALATION"),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else None,
)
def test_the_audit_fails_a_policy_with(mistake, function, statement, issue):
    problems = audit(wrong(function, **statement))

    assert problems, mistake
    assert all(problem.startswith(issue) for problem in problems), problems


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_runner_instance_policy_reads_only_the_configuration_that_names_its_own_instance(sample):
    """A session's instance role reads ``/<session>/runner-jitconfig`` only where the parameter names it."""
    parameters, pseudo = SAMPLES[sample]
    resolver = Resolver(TEMPLATE, parameters, pseudo, STACK_RESOURCES)
    document = resolver.resolve(TEMPLATE["Resources"]["RunnerInstancePolicy"]["Properties"]["PolicyDocument"])

    assert audit(document) == []
    [statement] = document["Statement"]
    assert statement["Action"] == "ssm:GetParameter"
    assert statement["Condition"]["StringEquals"] == {
        "ssm:resourceTag/ec2-sessions:instance": "${ec2:SourceInstanceARN}"
    }
