"""What CloudFormation would deploy: the SAM transform's output, read for every parameter value that changes resources.

moto never sees the SAM transform, and what it writes depends on the
parameters: with ``AuthType: !Ref FunctionUrlAuthType`` it writes no URL
permission at all, and every webhook would have been ``403 Forbidden``. So
these tests read the CloudFormation of ``tools/sam_transform.py`` (the locked
translator of ``.venv-sam``) resolved for each sample (tests/support/deployed.py),
and ask AWS's IAM simulator who may invoke what.
"""

from __future__ import annotations

import pytest

from tests.support.deployed import FUNCTIONS, deployed, prepare, transform
from tests.support.iam_simulator import MISSING, Request, simulator
from tools.cfn_template import Resolver, load_template

pytestmark = pytest.mark.template

SOURCE = load_template()
ACCOUNT = "123456789012"
# Each value of a parameter that flips a Condition (test_samples_flip_every_condition_both_ways).
SAMPLES = {
    "defaults": {},
    "url-with-iam-auth": {"FunctionUrlAuthType": "AWS_IAM"},
    "launch-template": {"LaunchTemplateId": "lt-0123456789abcdef0"},
    "profiles-in-ssm": {"Profiles": "ssm:/ec2-sessions/profiles"},
    "profiles-as-json": {"Profiles": '{"small": {"labels": ["ec2-session"], "launch_template_id": "lt-0abc1234"}}'},
    "everything": {
        "SessionBases": "ec2-test-runner,ci.other-base",
        "Regions": "us-east-1,eu-west-1",
        "LaunchTemplateId": "lt-0123456789abcdef0",
        "LaunchTemplateImageParameter": "aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
        "VpcId": "vpc-0123456789abcdef0",
        "InstanceRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ec2-sessions-instance",
        "AlarmTopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:operators",
    },
}
needs_node = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module", autouse=True)
def transformed_once():
    """Every sample through one translator process."""
    prepare(SAMPLES.values())


def test_samples_flip_every_condition_both_ways():
    for condition in SOURCE["Conditions"]:
        values = {Resolver(SOURCE, sample).condition(condition) for sample in SAMPLES.values()}
        assert values == {True, False}, condition


def test_the_transform_passes_every_parameter_through_untouched():
    """What lets the recorder resolve one transform for every configuration it meets (tests/support/deployed.py)."""
    [first, *others] = transform(*SAMPLES.values())
    assert all(other == first for other in others)


def test_the_transform_writes_the_url_with_the_auth_type_the_parameter_names():
    for sample in SAMPLES.values():
        [url] = deployed(sample).of_type("AWS::Lambda::Url").values()
        assert url["AuthType"] == sample.get("FunctionUrlAuthType", "NONE")
        assert url["TargetFunctionArn"] == deployed(sample).names.name("LauncherFunction")


def anonymous(stack, action: str, **context: str):
    [decision] = simulator().decide(
        [Request(action, stack.function_arn("launcher"), context, principal="*")], {}, stack.resource_policy("launcher")
    )
    return decision


@needs_node
def test_a_public_url_lets_anyone_call_the_launcher_through_it_and_only_through_it():
    """Lambda (October 2025) needs both: InvokeFunctionUrl for NONE, and InvokeFunction when invoked via the URL."""
    stack = deployed({})
    statements = {(p["Action"], p["Principal"]): p for p in stack.permissions("launcher").values()}

    assert statements[("lambda:InvokeFunctionUrl", "*")]["FunctionUrlAuthType"] == "NONE"
    assert statements[("lambda:InvokeFunction", "*")]["InvokedViaFunctionUrl"] is True
    assert anonymous(stack, "lambda:InvokeFunctionUrl", **{"lambda:FunctionUrlAuthType": "NONE"}).allowed
    assert anonymous(stack, "lambda:InvokeFunction", **{"lambda:InvokedViaFunctionUrl": "true"}).allowed
    # Straight to the function, with a forged scheduled or interruption event: refused.
    assert not anonymous(stack, "lambda:InvokeFunction").allowed
    assert not anonymous(stack, "lambda:InvokeFunction", **{"lambda:InvokedViaFunctionUrl": "false"}).allowed


@needs_node
def test_an_iam_authenticated_url_has_neither_public_statement():
    stack = deployed(SAMPLES["url-with-iam-auth"])

    assert [p for p in stack.permissions("launcher").values() if p["Principal"] == "*"] == []
    assert not anonymous(stack, "lambda:InvokeFunctionUrl", **{"lambda:FunctionUrlAuthType": "AWS_IAM"}).allowed
    assert not anonymous(stack, "lambda:InvokeFunction", **{"lambda:InvokedViaFunctionUrl": "true"}).allowed


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_schedule_invokes_its_function_through_a_role_that_may_do_only_that(sample):
    stack = deployed(SAMPLES[sample])
    schedules = stack.of_type("AWS::Scheduler::Schedule")
    targets = {schedule["Target"]["Arn"] for schedule in schedules.values()}

    assert targets == {stack.function_arn("collector"), stack.function_arn("launcher")}
    for schedule in schedules.values():
        target = schedule["Target"]
        [role] = [name for name in stack.of_type("AWS::IAM::Role") if stack.names.arn(name) == target["RoleArn"]]
        trust = stack.resources[role]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": ["scheduler.amazonaws.com"]}}
        ]
        granted = sorted(
            (statement["Action"], statement["Resource"])
            for policy in stack.policies(role)
            for statement in policy.document["Statement"]
        )
        expected = [("lambda:InvokeFunction", target["Arn"])]
        if "DeadLetterConfig" in target:  # the collector's failed runs go to its dead-letter queue
            expected.append(("sqs:SendMessage", target["DeadLetterConfig"]["Arn"]))
        assert granted == sorted(expected)


@needs_node
@pytest.mark.parametrize("sample", SAMPLES)
def test_only_the_interruption_rule_and_the_url_may_invoke_a_function(sample):
    stack = deployed(SAMPLES[sample])
    [(rule_id, rule)] = stack.of_type("AWS::Events::Rule").items()
    [target] = rule["Targets"]
    rule_arn = stack.names.arn(rule_id)
    public = SAMPLES[sample].get("FunctionUrlAuthType", "NONE") == "NONE"

    assert rule["EventPattern"] == {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
    assert target["Arn"] == stack.function_arn("launcher")
    assert stack.permissions("collector") == {}  # the collector's schedule calls it through its role
    kinds = sorted((p["Principal"], p["Action"]) for p in stack.permissions("launcher").values())
    assert kinds == sorted(
        [("events.amazonaws.com", "lambda:InvokeFunction")]
        + ([("*", "lambda:InvokeFunction"), ("*", "lambda:InvokeFunctionUrl")] if public else [])
    )
    policy = stack.resource_policy("launcher")
    for source, allowed in ((rule_arn, True), (rule_arn.replace("SpotInterruptions", "SomeoneElses"), False)):
        [decision] = simulator().decide(
            [
                Request(
                    "lambda:InvokeFunction",
                    stack.function_arn("launcher"),
                    {"aws:SourceArn": source},
                    principal="events.amazonaws.com",
                )
            ],
            {},
            policy,
        )
        assert decision.allowed is allowed, source


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_runs_as_a_role_of_its_own_with_the_templates_policy_and_its_logs(function, sample):
    stack = deployed(SAMPLES[sample])
    role = stack.role_of(function)
    [written] = Resolver(SOURCE, SAMPLES[sample], resources=stack.names).resolve(
        SOURCE["Resources"][FUNCTIONS[function]]["Properties"]["Policies"]
    )

    assert stack.resources[role]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}}
    ]
    inline, logs = stack.policies(role)
    assert inline.document == written
    assert logs.name == "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    assert [other for other in FUNCTIONS if stack.role_of(other) == role] == [function]
