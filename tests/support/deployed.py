"""The stack CloudFormation would deploy: template.yaml through the locked SAM transform, resolved for parameters.

``tools/sam_transform.py`` runs in ``.venv-sam`` (the translator ``sam
deploy`` uses) and answers the CloudFormation the transform writes; here its
intrinsic functions are worked out for the parameters (``tools/cfn_template``)
with every resource named as a deployed stack names it, and resources whose
``Condition`` is false dropped. What the tests read is then what AWS would
hold: each function's role with its inline and managed policies, the
schedules' roles, the permissions in each function's resource policy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tools.cfn_template import PSEUDO_PARAMETERS, Resolver

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
TRANSFORM = ROOT / "tools" / "sam_transform.py"
ACCOUNT = PSEUDO_PARAMETERS["AWS::AccountId"]
FUNCTIONS = {"collector": "CollectorFunction", "launcher": "LauncherFunction"}

# AWS's managed policy that SAM attaches to every function's role, as IAM holds it
# (AWS Managed Policy Reference, "AWSLambdaBasicExecutionRole", version 1): the functions' own logs.
AWS_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    }
}

_lock = threading.Lock()
_transformed: dict[str, dict[str, Any]] = {}


def _key(parameters: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(parameters.items())))


def transform(*parameter_sets: Mapping[str, str], template: Path | None = None) -> list[dict[str, Any]]:
    """The SAM transform's CloudFormation for each parameter set; one translator process for all not yet made.

    ``template`` transforms another file than template.yaml (a test's deliberately broken copy), uncached.
    """
    if template is not None:
        return _run_transform([_key(p) for p in parameter_sets], [str(template)])
    with _lock:
        missing = list(dict.fromkeys(_key(p) for p in parameter_sets if _key(p) not in _transformed))
        if missing:
            _transformed.update(zip(missing, _run_transform(missing), strict=True))
        return [_transformed[_key(p)] for p in parameter_sets]


def _run_transform(parameter_sets: list[str], arguments: list[str] | None = None) -> list[dict[str, Any]]:
    if not SAM_PYTHON.exists():
        raise RuntimeError(f"{SAM_PYTHON} is missing: run make install (the SAM transform runs there)")
    done = subprocess.run(  # noqa: S603 (the project's own tool, in the project's own environment)
        [str(SAM_PYTHON), str(TRANSFORM), *(arguments or [])],
        input=f"[{','.join(parameter_sets)}]",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode:
        raise RuntimeError(f"the SAM transform failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


class DeployedNames(Mapping[str, Any]):
    """``Ref`` and ``Fn::GetAtt`` of every resource, as a stack named ``ec2-sessions`` would answer them."""

    ARNS = {
        "AWS::Lambda::Function": "arn:{p}:lambda:{r}:{a}:function:{n}",
        "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{n}",
        "AWS::IAM::ManagedPolicy": "arn:{p}:iam::{a}:policy/{n}",
        "AWS::SecretsManager::Secret": "arn:{p}:secretsmanager:{r}:{a}:secret:{n}-AbCdEf",
        "AWS::DynamoDB::Table": "arn:{p}:dynamodb:{r}:{a}:table/{n}",
        "AWS::SQS::Queue": "arn:{p}:sqs:{r}:{a}:{n}",
        "AWS::SNS::Topic": "arn:{p}:sns:{r}:{a}:{n}",
        "AWS::Events::Rule": "arn:{p}:events:{r}:{a}:rule/{n}",
        "AWS::Scheduler::Schedule": "arn:{p}:scheduler:{r}:{a}:schedule/default/{n}",
        "AWS::Logs::LogGroup": "arn:{p}:logs:{r}:{a}:log-group:{n}:*",
        "AWS::CloudWatch::Alarm": "arn:{p}:cloudwatch:{r}:{a}:alarm:{n}",
        "AWS::Lambda::LayerVersion": "arn:{p}:lambda:{r}:{a}:layer:{n}:1",
    }
    # Types whose Ref is the ARN (the others answer their name; a queue its URL).
    REF_IS_ARN = {
        "AWS::IAM::ManagedPolicy",
        "AWS::SecretsManager::Secret",
        "AWS::SNS::Topic",
        "AWS::Lambda::LayerVersion",
    }

    def __init__(self, resources: Mapping[str, Any], pseudo: Mapping[str, str]) -> None:
        self.types = {logical: resource["Type"] for logical, resource in resources.items()}
        self.pseudo = pseudo

    def name(self, logical: str) -> str:
        return f"{self.pseudo['AWS::StackName']}-{logical}-0ABCDEF1234"

    def arn(self, logical: str) -> str:
        kind = self.types[logical]
        pattern = self.ARNS.get(kind, "arn:{p}:cloudformation:{r}:{a}:stack/{n}")
        partition, region, account = (self.pseudo[k] for k in ("AWS::Partition", "AWS::Region", "AWS::AccountId"))
        return pattern.format(p=partition, r=region, a=account, n=self.name(logical))

    def __getitem__(self, key: str) -> Any:
        logical, _, attribute = key.partition(".")
        if logical not in self.types:
            raise KeyError(key)
        kind = self.types[logical]
        if not attribute:
            if kind in self.REF_IS_ARN:
                return self.arn(logical)
            if kind == "AWS::SQS::Queue":
                return f"https://sqs.{self.pseudo['AWS::Region']}.amazonaws.com/{self.pseudo['AWS::AccountId']}/{self.name(logical)}"
            return self.name(logical)
        if attribute == "Arn":
            return self.arn(logical)
        if attribute == "FunctionUrl":
            return "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/"
        return f"{self.name(logical)}.{attribute}"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.partition(".")[0] in self.types

    def __iter__(self) -> Iterator[str]:
        return iter(self.types)

    def __len__(self) -> int:
        return len(self.types)


@dataclass(frozen=True)
class Policy:
    """One policy of a role: its name (an inline policy's, or a managed policy's ARN) and its document."""

    name: str
    document: dict[str, Any]


class Stack:
    """The resources CloudFormation would create for one set of parameters, every value worked out."""

    def __init__(self, transformed: Mapping[str, Any], parameters: Mapping[str, str], pseudo: Mapping[str, str]):
        self.parameters = dict(parameters)
        self.pseudo = {**PSEUDO_PARAMETERS, **pseudo}
        self.names = DeployedNames(transformed["Resources"], self.pseudo)
        self.resolver = Resolver(transformed, parameters, self.pseudo, self.names)
        self.source = transformed

    @cached_property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Every resource the stack holds (a false ``Condition`` drops it), with its properties resolved."""
        held = {}
        for logical, resource in self.source["Resources"].items():
            if "Condition" in resource and not self.resolver.condition(resource["Condition"]):
                continue
            held[logical] = {"Type": resource["Type"], **self.resolver.resolve(resource.get("Properties") or {})}
        return held

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {logical: props for logical, props in self.resources.items() if props["Type"] == kind}

    def role_of(self, function: str) -> str:
        """The logical id of the role a function (``collector``, ``launcher`` or a logical id) runs as."""
        logical = FUNCTIONS.get(function, function)
        role_arn = self.resources[logical]["Role"]
        [role] = [name for name in self.of_type("AWS::IAM::Role") if self.names.arn(name) == role_arn]
        return role

    def policies(self, role: str) -> list[Policy]:
        """A role's identity policies as IAM holds them: inline, then managed (the stack's own and AWS's)."""
        properties = self.resources[role]
        found = [Policy(p["PolicyName"], p["PolicyDocument"]) for p in properties.get("Policies", [])]
        for arn in properties.get("ManagedPolicyArns", []):
            found.append(Policy(arn, self.managed_policy(arn)))
        return found

    def managed_policy(self, arn: str) -> dict[str, Any]:
        for logical, properties in self.of_type("AWS::IAM::ManagedPolicy").items():
            if self.names.arn(logical) == arn:
                return properties["PolicyDocument"]
        aws_arn = arn.replace(f"arn:{self.pseudo['AWS::Partition']}:", "arn:aws:", 1)
        if aws_arn not in AWS_MANAGED_POLICIES:
            raise KeyError(f"{arn}: an AWS managed policy the tests do not hold; add it to AWS_MANAGED_POLICIES")
        return AWS_MANAGED_POLICIES[aws_arn]

    def function_arn(self, function: str) -> str:
        return self.names.arn(FUNCTIONS.get(function, function))

    def permissions(self, function: str) -> dict[str, dict[str, Any]]:
        """The ``AWS::Lambda::Permission`` resources on a function (by logical id): its resource policy."""
        logical = FUNCTIONS.get(function, function)
        named = {self.names.name(logical), self.names.arn(logical)}
        return {k: p for k, p in self.of_type("AWS::Lambda::Permission").items() if p["FunctionName"] in named}

    def resource_policy(self, function: str) -> dict[str, Any]:
        """The function's resource-based policy, as Lambda writes it from the permissions (Sid: the logical id)."""
        arn = self.function_arn(function)
        statements = [permission_statement(sid, p, arn) for sid, p in self.permissions(function).items()]
        return {"Version": "2012-10-17", "Statement": statements}


def permission_statement(sid: str, permission: Mapping[str, Any], function_arn: str) -> dict[str, Any]:
    """One ``AWS::Lambda::Permission`` as the statement Lambda adds (AddPermission's documented mapping)."""
    principal = permission["Principal"]
    if principal != "*":
        principal = {"Service": principal} if "." in principal else {"AWS": principal}
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": permission["Action"],
        "Resource": function_arn,
    }
    condition: dict[str, dict[str, Any]] = {}
    if "SourceArn" in permission:
        condition.setdefault("ArnLike", {})["AWS:SourceArn"] = permission["SourceArn"]
    if "SourceAccount" in permission:
        condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = permission["SourceAccount"]
    if "FunctionUrlAuthType" in permission:
        condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = permission["FunctionUrlAuthType"]
    if permission.get("InvokedViaFunctionUrl") in (True, "true"):
        condition.setdefault("Bool", {})["lambda:InvokedViaFunctionUrl"] = "true"
    if condition:
        statement["Condition"] = condition
    return statement


_stacks: dict[str, Stack] = {}


def deployed(
    parameters: Mapping[str, str] | None = None,
    pseudo: Mapping[str, str] | None = None,
    transformed_for: Mapping[str, str] | None = None,
) -> Stack:
    """The stack for these parameters (the template's defaults for the rest), made once per session.

    ``transformed_for`` resolves the transform made for other parameters:
    SAM passes every parameter of this template through untouched (its
    output is the same for every sample: test_deployed.py), so the recorder,
    which meets many sets of bases, pays for one translator run, not one each.
    """
    parameters, pseudo = dict(parameters or {}), dict(pseudo or {})
    source = dict(parameters if transformed_for is None else transformed_for)
    key = _key(
        {**parameters, **{f"pseudo:{k}": v for k, v in pseudo.items()}, **{f"sam:{k}": v for k, v in source.items()}}
    )
    with _lock:
        found = _stacks.get(key)
    if found is None:
        [transformed] = transform(source)
        found = Stack(transformed, parameters, pseudo)
        found.resources  # noqa: B018 (worked out once, here, not by the threads that read it)
        with _lock:
            found = _stacks.setdefault(key, found)
    return found


def prepare(parameter_sets: Iterable[Mapping[str, str]]) -> None:
    """Transform several parameter sets in one translator process (each costs a second or two on its own)."""
    transform(*parameter_sets)


if __name__ == "__main__":  # a look at what CloudFormation would get: python -m tests.support.deployed [JSON]
    json.dump(deployed(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}).resources, sys.stdout, indent=1)
