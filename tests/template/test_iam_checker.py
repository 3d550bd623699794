"""The IAM check of recorded calls fails, naming the call, when the deployed policy lacks what a call needs.

The suites pass only because the checker finds nothing to refuse; that proves
something only if it refuses what AWS would. Here it judges recorded calls
against template.yaml as it is and against a copy with one statement removed,
and against the runner instance's policy for its own and another's instance.
"""

from __future__ import annotations

import re

import pytest

from tests.support.deployed import Stack, transform
from tests.support.iam_calls import Call, NoMapping, iam_requests
from tests.support.iam_recorder import Ledger, Recorded, judge, policies_for, submit
from tests.support.iam_simulator import MISSING
from tools.cfn_template import TEMPLATE

pytestmark = [pytest.mark.template, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]

ACCOUNT = "123456789012"
SESSION = "ec2-test-runner/20261208T120000Z/0123456789abcdef"
PARAMETERS = {"SessionBases": "ec2-test-runner", "LaunchTemplateId": "lt-0123456789abcdef0"}
INSTANCE = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"


class Account:
    """What the checker reads of the account: one session's instance and its runner configuration."""

    def ec2_tags(self, region, ident):
        return {"ec2-sessions:session": SESSION, "Name": SESSION}

    def ssm_tags(self, region, name):
        return {"ec2-sessions:session": SESSION, "ec2-sessions:instance": INSTANCE}


def terminate(role: str = "launcher") -> Recorded:
    call = Call("ec2", "TerminateInstances", {"InstanceIds": ["i-0123456789abcdef0"]}, "us-east-1", ACCOUNT)
    return Recorded("test", role, call, iam_requests(call, Account()), dict(PARAMETERS), "us-east-1")


def without_statement(sid: str, tmp_path) -> Stack:
    """template.yaml with one statement of a policy cut out, through the SAM transform."""
    text = TEMPLATE.read_text()
    cut = re.sub(rf"\n( +)- Sid: {sid}\n(?:\1  .*\n)+", "\n", text, count=1)
    assert cut != text, sid
    copy = tmp_path / "template.yaml"
    copy.write_text(cut)
    [transformed] = transform(PARAMETERS, template=copy)
    return Stack(transformed, PARAMETERS, {})


def policies_in(stack: Stack):
    def policies_of(role, parameters, region):
        return {policy.name: policy.document for policy in stack.policies(stack.role_of(role))}, stack

    return policies_of


def test_a_call_the_deployed_role_allows_passes():
    recorded = terminate()
    submit(recorded)

    assert judge([recorded], Ledger()) == []


def test_a_policy_without_the_statement_a_call_needs_fails_naming_the_call_and_the_resource(tmp_path):
    broken = without_statement("ChangeAndEndOnlySessionResources", tmp_path)
    recorded = terminate()
    submit(recorded, policies_in(broken))

    [failure] = judge([recorded], Ledger())
    assert failure.startswith("launcher: ec2:TerminateInstances in us-east-1 denied ec2:TerminateInstances on ")
    assert INSTANCE in failure
    assert "ImplicitlyDenied" in failure and "ec2:ResourceTag/ec2-sessions:session=" + SESSION in failure


def test_an_operation_without_a_row_fails_loudly():
    with pytest.raises(NoMapping, match=r"no IAM mapping for ec2:RebootInstances: add a row in"):
        iam_requests(Call("ec2", "RebootInstances", {"InstanceIds": ["i-1"]}, "us-east-1", ACCOUNT), Account())


@pytest.mark.parametrize(("reader", "allowed"), [(INSTANCE, True), (INSTANCE.replace("0123", "9999"), False)])
def test_the_runner_instance_reads_only_the_configuration_that_names_it(reader, allowed):
    call = Call("ssm", "GetParameter", {"Name": f"/{SESSION}/runner-jitconfig"}, "us-east-1", ACCOUNT)
    [read] = iam_requests(call, Account())
    recorded = Recorded("test", "instance", call, [read], dict(PARAMETERS), "us-east-1")
    recorded.requests = [type(read)(read.action, read.resource, {**read.context, "ec2:SourceInstanceARN": reader})]
    submit(recorded)

    assert (judge([recorded], Ledger()) == []) is allowed
    assert "RunnerInstancePolicy" in policies_for("instance", PARAMETERS, "us-east-1")[0]
