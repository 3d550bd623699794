"""A pytest plugin: every AWS call the functions make in the integration and reliability suites, judged by IAM.

moto enforces no IAM, so a call the deployed role does not allow passes
every test and fails in AWS. This plugin wraps botocore's one entry point
for calls (``BaseClient._make_api_call``) and, for each call made by code
under ``functions/`` or ``layers/``, builds the IAM requests AWS would
evaluate (tests/support/iam_calls.py: one row per operation, the resource's
tags read from moto before the call is sent) and evaluates them, when the
test's body has run, against the role SAM deploys for that function
(tests/support/deployed.py) with AWS's IAM simulator
(tests/support/iam_simulator.py). A denied call fails the test that made it,
naming the call, the resource and the keys the policy was given.

Who makes a call: code under ``functions/launcher/`` runs as the launcher's
role, under ``functions/collector/`` as the collector's; layer code as
whichever function called it. A call whose nearest project caller is a
test, a test helper or a tool (``tests/``, ``tools/``: onlookers, seeds, the
operator's command, which runs with the operator's own credentials) is not
recorded.

Which stack: the role is the one deployed with the parameters the test's
configuration stands for (the settings' bases, ``PROFILES`` in SSM, the VPC),
with a launch template configured (the instance statements present); the
webhook secret, the App's secret and the idempotency table the test made
stand for the stack's own.

The runner instance's read of its configuration is judged too: each
``/<session>/runner-jitconfig`` the launcher writes is read, as the instance
would read it, against ``RunnerInstancePolicy`` with the instance's ARN as
``ec2:SourceInstanceARN``.

At the end of the session the plugin lists each statement's action ×
resource type that no recorded call used (``-p no:tests.support.iam_recorder`` turns the
whole check off; without node it is skipped, and says so).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import botocore.client
import pytest
from botocore.exceptions import ClientError

from tests.support.iam_calls import Call, NoMapping, iam_requests
from tests.support.iam_simulator import MISSING, Decision, Request, simulator
from tools.local_stack import TABLE  # the table the tests' launcher stack makes

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"
LAYERS_DIR = ROOT / "layers"
NOT_RECORDED = (ROOT / "tests", ROOT / "tools", ROOT / "bench")
SUITES = (ROOT / "tests" / "integration", ROOT / "tests" / "reliability")
ACCOUNT = "123456789012"
# Stand-ins: the test's own resource → the stack's (a placeholder resolved against the deployed stack).
STACK_NAMES = {"WEBHOOK_SECRET_ARN": "WebhookSecret", "GITHUB_APP_SECRET_ARN": "GitHubAppSecret"}
SAMPLE_LAUNCH_TEMPLATE = "lt-0123456789abcdef0"
ROLES = {"collector": "CollectorFunction", "launcher": "LauncherFunction", "instance": "RunnerInstancePolicy"}


@dataclass
class Recorded:
    """One call and the requests IAM would evaluate for it."""

    test: str
    role: str  # collector, launcher, instance
    call: Call
    requests: list[Request]
    parameters: dict[str, str]
    region: str
    problem: str = ""
    policies: list[str] = field(default_factory=list)
    decisions: list[Future[Decision]] = field(default_factory=list)


@dataclass
class Ledger:
    """What the session recorded, judged so far, and which grants were used."""

    calls: list[Recorded] = field(default_factory=list)
    judged: int = 0
    requests: int = 0
    denied: int = 0
    used: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    stacks: dict[str, tuple[str, dict[str, str], str]] = field(default_factory=dict)  # key → (role, params, region)
    lock: threading.Lock = field(default_factory=threading.Lock)


LEDGER = Ledger()
_active = threading.local()
_item: list[pytest.Item | None] = [None]
_original = botocore.client.BaseClient._make_api_call


def within(path: str, folder: Path) -> bool:
    return path.startswith(str(folder) + os.sep)


def caller_role(frame: FrameType | None) -> str | None:
    """``launcher`` or ``collector`` for a call the functions make; ``None`` for tests' and tools' own calls."""
    role = None
    while frame is not None:
        path = frame.f_code.co_filename
        if role is None:
            if within(path, FUNCTIONS_DIR):
                role = Path(path).relative_to(FUNCTIONS_DIR).parts[0]
            elif any(within(path, folder) for folder in NOT_RECORDED):
                return None
        elif within(path, ROOT / "tools"):
            return None  # the operator's command or another tool drives the function's code with its own rights
        frame = frame.f_back
    return role


_last_settings: list[list[Any]] = [[]]


def settings_in(frame: FrameType | None) -> Iterator[Any]:
    """The settings objects on the stack, innermost first (the function's configuration for this call).

    A worker thread (the collector deletes in a pool) holds none on its own
    stack: it works for the settings last seen on the thread that started it.
    """
    found = []
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if hasattr(value, "session_bases") and not isinstance(value, type):
                found.append(value)
        frame = frame.f_back
    if found:
        _last_settings[0] = found
    yield from found or _last_settings[0]


def first(found: list[Any], attribute: str) -> Any:
    """The innermost settings' value of ``attribute`` (collector and launcher settings hold different ones)."""
    return next((getattr(s, attribute) for s in found if getattr(s, attribute, None)), None)


def operators_own(frame: FrameType | None) -> bool:
    """The one-off legacy clean-up (``SWEEP_UNTAGGED=true``, refused inside Lambda) runs with the operator's rights."""
    return bool(first(list(settings_in(frame)), "sweep_untagged"))


def configuration(role: str, frame: FrameType | None) -> tuple[dict[str, str], str, dict[str, str]]:
    """The stack parameters, region and stand-ins the test's configuration means for this call."""
    found = list(settings_in(frame))
    settings = found[0] if found else None
    bases = ",".join(settings.session_bases) if settings else os.environ.get("SESSION_BASES", "ec2-test-runner")
    parameters = {"SessionBases": bases}
    region = getattr(settings, "region", "") or os.environ.get("AWS_REGION") or "us-east-1"
    if role == "launcher":
        parameters["LaunchTemplateId"] = SAMPLE_LAUNCH_TEMPLATE
        if os.environ.get("PROFILES", "").startswith("ssm:"):
            parameters["Profiles"] = os.environ["PROFILES"]
        vpc = getattr(settings, "vpc_id", None) or os.environ.get("VPC_ID", "")
        if vpc:
            parameters["VpcId"] = vpc
    stand_ins = {os.environ[var]: logical for var, logical in STACK_NAMES.items() if os.environ.get(var)}
    github = first(found, "github")
    if getattr(github, "app_secret_arn", None):
        stand_ins[github.app_secret_arn] = "GitHubAppSecret"
    for table in (first(found, "idempotency_table"), os.environ.get("IDEMPOTENCY_TABLE"), TABLE):
        if table:
            stand_ins.setdefault(f"table/{table}", "IdempotencyTable")
    return parameters, region, stand_ins


class MotoLook:
    """The account as moto holds it, read through an onlooker's clients (never recorded)."""

    def __init__(self) -> None:
        from tests.support.clients import client_factory

        self.clients = client_factory()
        self.defaults: dict[tuple[str, str], str] = {}  # the default VPC and subnet of a region, for one test

    def _quietly(self, read, default):
        try:
            return read()
        except (ClientError, KeyError, IndexError):
            return default

    def ec2_tags(self, region: str, ident: str) -> dict[str, str]:
        ec2 = self.clients("ec2", region)
        if "/" in ident or not any(
            ident.startswith(p)
            for p in ("i-", "sg-", "vol-", "eni-", "lt-", "ami-", "snap-", "eipalloc-", "key-", "subnet-", "vpc-")
        ):
            pairs = self._quietly(lambda: ec2.describe_key_pairs(KeyNames=[ident])["KeyPairs"], [])
            return {t["Key"]: t["Value"] for pair in pairs for t in pair.get("Tags") or ()}
        filters = [{"Name": "resource-id", "Values": [ident]}]
        found = self._quietly(lambda: ec2.describe_tags(Filters=filters)["Tags"], [])
        return {t["Key"]: t["Value"] for t in found}

    def ssm_tags(self, region: str, name: str) -> dict[str, str]:
        ssm = self.clients("ssm", region)
        found = self._quietly(
            lambda: ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"], []
        )
        return {t["Key"]: t["Value"] for t in found}

    def key_pair_name(self, region: str, ident: str) -> str:
        ec2 = self.clients("ec2", region)
        return self._quietly(lambda: ec2.describe_key_pairs(KeyPairIds=[ident])["KeyPairs"][0]["KeyName"], ident)

    def launch_template(self, region: str, ident: str | None, name: str | None) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2", region)
        named = {"LaunchTemplateId": ident} if ident else {"LaunchTemplateName": name}
        versions = self._quietly(
            lambda: ec2.describe_launch_template_versions(**named, Versions=["$Latest"])["LaunchTemplateVersions"], []
        )
        if not versions:
            return ident or f"lt-unknown-{name}", {}
        return versions[0]["LaunchTemplateId"], versions[0].get("LaunchTemplateData", {})

    def default_vpc(self, region: str) -> str:
        """A group made with no ``VpcId`` goes to the default VPC, which only ``vpc/*`` (no ``VpcId``
        parameter) grants: a stand-in id is as good as the real one (moto takes 0.1 s to describe it), and a
        stack with ``VpcId`` still refuses a create that forgot to name it."""
        return "vpc-default"

    def default_subnet(self, region: str) -> str:
        if ("subnet", region) not in self.defaults:
            ec2 = self.clients("ec2", region)
            filters = [{"Name": "default-for-az", "Values": ["true"]}]
            subnets = self._quietly(lambda: ec2.describe_subnets(Filters=filters)["Subnets"], [])
            self.defaults["subnet", region] = subnets[0]["SubnetId"] if subnets else "subnet-*"
        return self.defaults["subnet", region]

    def secret_arn(self, region: str, secret: str) -> str:
        if secret.startswith("arn:"):
            return secret
        client = self.clients("secretsmanager", region)
        return self._quietly(lambda: client.describe_secret(SecretId=secret)["ARN"], secret)

    def group_id(self, region: str, name: str) -> str:
        ec2 = self.clients("ec2", region)
        return self._quietly(
            lambda: ec2.describe_security_groups(GroupNames=[name])["SecurityGroups"][0]["GroupId"], name
        )


_looks: dict[str, MotoLook] = {}


def onlooker() -> MotoLook:
    """One onlooker per moto server (clients cost tens of milliseconds to build)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint not in _looks:
        _looks[endpoint] = MotoLook()
    return _looks[endpoint]


def stand_in(request: Request, stand_ins: Mapping[str, str]) -> Request:
    """The request with the test's own secret or table replaced by the stack's (``{{Logical}}``, ``{{Logical}}/…``)."""
    for own, logical in stand_ins.items():
        if request.resource == own:
            return replace(request, resource=f"{{{{{logical}}}}}")
        if own.startswith("table/") and request.resource.endswith(":" + own) or (":" + own + "/") in request.resource:
            rest = request.resource.split(":" + own, 1)[1]
            return replace(request, resource=f"{{{{{logical}}}}}{rest}")
    return request


def instance_reads(call: Call, look: MotoLook, region: str) -> list[Request]:
    """The runner instance's own read of the configuration the launcher just wrote (RunnerInstancePolicy)."""
    name = call.params.get("Name", "")
    if call.operation not in ("PutParameter", "AddTagsToResource") or not str(
        call.params.get("Name") or call.params.get("ResourceId")
    ).endswith("/runner-jitconfig"):
        return []
    name = name or call.params["ResourceId"]
    tags = look.ssm_tags(region, name)
    instance = tags.get("ec2-sessions:instance")
    if not instance:
        return []  # written before its instance exists: the instance reads it once tagged
    parameter = f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/{name.lstrip('/')}"
    context = {
        **{f"ssm:resourceTag/{k}": v for k, v in tags.items()},
        **{f"aws:ResourceTag/{k}": v for k, v in tags.items()},
        "ec2:SourceInstanceARN": instance,
    }
    return [Request("ssm:GetParameter", parameter, context)]


def _recording_call(self: Any, operation_name: str, api_params: Mapping[str, Any]) -> Any:
    item = _item[0]
    if item is None or getattr(_active, "busy", False):
        return _original(self, operation_name, api_params)
    frame = sys._getframe(1)
    role = caller_role(frame)
    if role is None or operators_own(frame):
        return _original(self, operation_name, api_params)
    _active.busy = True
    try:
        call = Call(
            self.meta.service_model.service_name, operation_name, dict(api_params), self.meta.region_name, ACCOUNT
        )
        parameters, region, stand_ins = configuration(role, frame)
        look = onlooker()
        problem, requests = "", []
        try:
            requests = [stand_in(request, stand_ins) for request in iam_requests(call, look)]
        except NoMapping as error:
            problem = str(error)
        recorded = Recorded(item.nodeid, role, call, requests, parameters, region, problem)
    finally:
        _active.busy = False
    try:
        return _original(self, operation_name, api_params)
    finally:
        _active.busy = True
        try:
            reads = instance_reads(call, look, region)
        finally:
            _active.busy = False
        found = [recorded]
        if reads:
            found.append(Recorded(item.nodeid, "instance", call, reads, parameters, region))
        for each in found:
            submit(each)
        with LEDGER.lock:
            LEDGER.calls.extend(found)


def submit(recorded: Recorded, policies_of: Any = None) -> None:
    """Send the call's requests to the simulator now; the test's end collects the decisions.

    ``policies_of(role, parameters, region)`` answers the policies and their
    stack (the deployed template.yaml's unless a test gives another).
    """
    if recorded.problem or not recorded.requests:
        return
    policies, stack = (policies_of or policies_for)(recorded.role, recorded.parameters, recorded.region)
    recorded.requests = [resolved(request, stack, recorded.role) for request in recorded.requests]
    recorded.policies = list(policies)
    recorded.decisions = simulator().submit(recorded.requests, policies)


_policies: dict[str, tuple[dict[str, Any], Any]] = {}


def policies_for(role: str, parameters: Mapping[str, str], region: str) -> tuple[dict[str, Any], Any]:
    """The role's policies (name → document) in the stack these parameters deploy, and that stack."""
    key = f"{role}|{sorted(parameters.items())}|{region}"
    if key not in _policies:
        _policies[key] = _policies_of(role, parameters, region)
    return _policies[key]


def _policies_of(role: str, parameters: Mapping[str, str], region: str) -> tuple[dict[str, Any], Any]:
    from tests.support.deployed import deployed

    stack = deployed(parameters, {"AWS::Region": region}, transformed_for={})
    if role == "instance":
        return {"RunnerInstancePolicy": stack.resources["RunnerInstancePolicy"]["PolicyDocument"]}, stack
    logical = stack.role_of(role)
    return {policy.name: policy.document for policy in stack.policies(logical)}, stack


def resolved(request: Request, stack: Any, role: str) -> Request:
    resource = request.resource
    if resource.startswith("{{"):
        logical, rest = resource[2:].split("}}", 1)
        kind = stack.names.types[logical]
        resource = (stack.names.arn(logical) if kind != "AWS::DynamoDB::Table" else stack.names.arn(logical)) + rest
    principal = (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/ec2-sessions-instance/i-0123456789abcdef0"
        if role == "instance"
        else f"arn:aws:sts::{ACCOUNT}:assumed-role/{stack.names.name(stack.role_of(role))}/{role}"
    )
    return replace(request, resource=resource, principal=principal)


def judge(calls: list[Recorded], ledger: Ledger = LEDGER) -> list[str]:
    """The messages of the calls IAM would refuse (or that no row describes); the grants used, counted in ``ledger``."""
    failures = []
    for recorded in calls:
        name = f"{recorded.role}: {recorded.call.service}:{recorded.call.operation} in {recorded.call.region}"
        if recorded.problem:
            failures.append(f"{name}: {recorded.problem}")
            continue
        decisions = [future.result(timeout=120) for future in recorded.decisions]
        with ledger.lock:
            ledger.judged += 1
            ledger.requests += len(decisions)
            key = f"{recorded.role}|{sorted(recorded.parameters.items())}|{recorded.region}"
            ledger.stacks[key] = (recorded.role, recorded.parameters, recorded.region)
            for request, decision in zip(recorded.requests, decisions, strict=True):
                if decision.allowed:
                    for sid in decision.allowed_by:
                        ledger.used[(recorded.role, sid)].add((request.action, decision.resource_type or "*"))
                else:
                    ledger.denied += 1
        for request, decision in zip(recorded.requests, decisions, strict=True):
            if decision.allowed:
                continue
            keys = ", ".join(f"{k}={v}" for k, v in sorted(request.context.items())) or "no context keys"
            why = decision.error or (
                f"{decision.result}: no statement of the {recorded.role}'s policies "
                f"({', '.join(recorded.policies)}) allows {request.action} on this "
                f"{decision.resource_type or 'resource'} with {keys}"
            )
            failures.append(f"{name} denied {request.action} on {request.resource}: {why}")
    return failures


def pytest_configure(config: pytest.Config) -> None:
    if MISSING is None:
        botocore.client.BaseClient._make_api_call = _recording_call


def pytest_unconfigure(config: pytest.Config) -> None:
    botocore.client.BaseClient._make_api_call = _original


def in_suites(item: pytest.Item) -> bool:
    return any(within(str(item.path), folder) for folder in SUITES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _item[0] = item if MISSING is None and in_suites(item) else None
    _last_settings[0] = []
    for look in _looks.values():
        look.defaults.clear()  # moto is reset between tests: new default VPC, new subnets
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    if _item[0] is item:
        with LEDGER.lock:
            mine = [recorded for recorded in LEDGER.calls if recorded.test == item.nodeid]
            LEDGER.calls = [recorded for recorded in LEDGER.calls if recorded.test != item.nodeid]
        failures = judge(mine)
        for marker in item.iter_markers("iam_refusal_tolerated"):  # a refusal the code survives, and why
            failures = [failure for failure in failures if f" denied {marker.args[0]} on " not in failure]
        if failures:
            shown = "\n".join(f"  - {failure}" for failure in dict.fromkeys(failures))
            raise AssertionError(f"AWS would refuse {len(failures)} call(s) this test made:\n{shown}")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        return (yield)
    finally:
        _item[0] = None
        with LEDGER.lock:  # calls of the teardown itself (a fixture releasing what it made) are not judged
            LEDGER.calls = [recorded for recorded in LEDGER.calls if recorded.test != item.nodeid]


def pytest_report_header(config: pytest.Config) -> str:
    if MISSING:
        return f"IAM check of recorded AWS calls: skipped ({MISSING})"
    return "IAM check of recorded AWS calls: on (tests/support/iam_recorder.py)"


def resource_type(arn: str) -> str:
    """The IAM resource type an ARN pattern of a policy names (``*`` for every resource)."""
    if arn == "*":
        return "*"
    service, resource = arn.split(":")[2], arn.split(":", 5)[5]
    if service == "dynamodb":
        return "index" if "/index/" in resource else "table"
    return resource.split("/", 1)[0].split(":", 1)[0]


def takes(action: str) -> set[str]:
    """The resource types an action is authorised on, by AWS's Service Authorization Reference (iam-data)."""
    import json

    service, name = action.split(":", 1)
    data = ROOT / "node_modules" / "@cloud-copilot" / "iam-data" / "data" / "actions" / f"{service}.json"
    entry = json.loads(data.read_text()).get(name.lower(), {})
    return {found["name"] for found in entry.get("resourceTypes", [])} or {"*"}


def unused_grants() -> list[tuple[str, str, str, str]]:
    """(role, statement, action, resource type) that some statement allows and no judged call used."""
    unused = set()
    for role, parameters, region in LEDGER.stacks.values():
        policies, _ = policies_for(role, parameters, region)
        for document in policies.values():
            for statement in document["Statement"]:
                sid = statement.get("Sid")
                if not sid or statement.get("Effect") != "Allow":
                    continue  # AWS's managed logs policy: the Lambda service writes the logs, not our code
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                for action in actions:
                    for kind in {resource_type(resource) for resource in resources} & (takes(action) | {"*"}):
                        if (action, kind) not in LEDGER.used.get((role, sid), set()):
                            unused.add((role, sid, action, kind))
    return sorted(unused)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MISSING or not LEDGER.judged:
        return
    write = terminalreporter.write_line
    write(
        f"IAM: {LEDGER.judged} recorded calls judged ({LEDGER.requests} requests), {LEDGER.denied} denied; "
        "grants no recorded call used (docs/security.md says why each stays):"
    )
    for role, sid, action, kind in unused_grants():
        write(f"  {role} {sid}: {action} on {kind}")
