"""What IAM evaluates for each AWS call the functions make: one row per API operation.

A row turns a call (its parameters, region, account) into the IAM requests
AWS would evaluate before it runs the call: the action, every resource the
call touches (per AWS's Service Authorization Reference; ``RunInstances`` and
``CreateFleet`` touch the instance, its volumes and interfaces, group, subnet,
key pair, image and launch template), and the context keys: ``aws:RequestTag``
and ``aws:TagKeys`` from what the call tags, the resource's own tags
(``ec2:ResourceTag``, ``ssm:resourceTag``) as it has them at that moment,
``ec2:CreateAction`` for the tagging a create does. A call is allowed when
every one of its requests is. An operation without a row fails the test that
made it: a new call is one row here.

``Look`` answers what a row must read from the account (a resource's tags,
a key pair's name, a launch template's data): the recorder asks moto with an
onlooker client, before the call is sent, and never records those reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tests.support.iam_simulator import Request


class Look(Protocol):
    """Reads of the account at the moment of a call (moto, through a client that is not recorded)."""

    def ec2_tags(self, region: str, ident: str) -> dict[str, str]: ...
    def ssm_tags(self, region: str, name: str) -> dict[str, str]: ...
    def key_pair_name(self, region: str, ident: str) -> str: ...
    def launch_template(self, region: str, ident: str | None, name: str | None) -> tuple[str, dict[str, Any]]: ...
    def default_vpc(self, region: str) -> str: ...
    def default_subnet(self, region: str) -> str: ...
    def secret_arn(self, region: str, secret: str) -> str: ...
    def group_id(self, region: str, name: str) -> str: ...


@dataclass(frozen=True)
class Call:
    """An AWS call as the code made it."""

    service: str  # botocore's service name: ec2, ssm, dynamodb, secretsmanager, resourcegroupstaggingapi
    operation: str  # CreateFleet
    params: Mapping[str, Any]
    region: str
    account: str


class NoMapping(LookupError):
    """An operation no row describes."""


def arn(call: Call, service: str, resource: str, *, account: bool = True, region: bool = True) -> str:
    return f"arn:aws:{service}:{call.region if region else ''}:{call.account if account else ''}:{resource}"


# EC2's identifiers say their resource type; images and snapshots have no account in their ARN.
EC2_PREFIXES = {
    "i-": "instance",
    "sg-": "security-group",
    "vol-": "volume",
    "eni-": "network-interface",
    "lt-": "launch-template",
    "ami-": "image",
    "snap-": "snapshot",
    "eipalloc-": "elastic-ip",
    "fleet-": "fleet",
    "subnet-": "subnet",
    "vpc-": "vpc",
    "key-": "key-pair",
}
NO_ACCOUNT = {"image", "snapshot"}


def ec2_arn(call: Call, look: Look, ident: str) -> str:
    kind = next((kind for prefix, kind in EC2_PREFIXES.items() if ident.startswith(prefix)), None)
    if kind is None:
        raise NoMapping(f"ec2 resource id {ident!r}: no ARN rule in tests/support/iam_calls.py EC2_PREFIXES")
    if kind == "key-pair":  # IAM names key pairs by name, whatever the call named them by
        ident = look.key_pair_name(call.region, ident)
    return arn(call, "ec2", f"{kind}/{ident}", account=kind not in NO_ACCOUNT)


def resource_tags(prefix: str, tags: Mapping[str, str]) -> dict[str, str]:
    """``<prefix>/<key>`` for each tag: what a policy's ResourceTag condition reads (the global key too)."""
    return {**{f"{prefix}/{k}": v for k, v in tags.items()}, **{f"aws:ResourceTag/{k}": v for k, v in tags.items()}}


def request_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    if not tags:
        return {}
    return {**{f"aws:RequestTag/{k}": v for k, v in tags.items()}, "aws:TagKeys": list(tags)}


def as_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or ()}


def specified(specifications: Iterable[Mapping[str, Any]] | None, kind: str) -> dict[str, str]:
    """The tags a ``TagSpecifications`` list gives one resource type."""
    found: dict[str, str] = {}
    for spec in specifications or ():
        if spec.get("ResourceType") == kind:
            found.update(as_dict(spec.get("Tags")))
    return found


def anything(action: str) -> Callable[[Call, Look], list[Request]]:
    """An action IAM authorises only on ``*`` (describes, lists)."""
    return lambda call, look: [Request(action, "*")]


def ec2_existing(action: str, *fields: str) -> Callable[[Call, Look], list[Request]]:
    """An EC2 action on existing resources named by ``fields`` (a string or a list), with their tags now."""

    def requests(call: Call, look: Look) -> list[Request]:
        idents: list[str] = []
        for field in fields:
            value = call.params.get(field)
            idents.extend([value] if isinstance(value, str) else value or [])
        return [
            Request(action, ec2_arn(call, look, i), resource_tags("ec2:ResourceTag", look.ec2_tags(call.region, i)))
            for i in idents
        ]

    return requests


def ec2_create_tags(call: Call, look: Look) -> list[Request]:
    added = as_dict(call.params.get("Tags"))
    return [
        Request(
            "ec2:CreateTags",
            ec2_arn(call, look, ident),
            {**request_tags(added), **resource_tags("ec2:ResourceTag", look.ec2_tags(call.region, ident))},
        )
        for ident in call.params["Resources"]
    ]


def tagging_on_create(call: Call, resource: str, tags: Mapping[str, str], create_action: str) -> list[Request]:
    """The implicit CreateTags of a create that tags its resource (TagSpecifications)."""
    if not tags:
        return []
    return [Request("ec2:CreateTags", resource, {**request_tags(tags), "ec2:CreateAction": create_action})]


def ec2_key_pair_create(action: str) -> Callable[[Call, Look], list[Request]]:
    def requests(call: Call, look: Look) -> list[Request]:
        resource = arn(call, "ec2", f"key-pair/{call.params['KeyName']}")
        tags = specified(call.params.get("TagSpecifications"), "key-pair")
        create = Request(f"ec2:{action}", resource, request_tags(tags))
        return [create, *tagging_on_create(call, resource, tags, action)]

    return requests


def ec2_create_security_group(call: Call, look: Look) -> list[Request]:
    tags = specified(call.params.get("TagSpecifications"), "security-group")
    group = arn(call, "ec2", "security-group/*")
    vpc = arn(call, "ec2", f"vpc/{call.params.get('VpcId') or look.default_vpc(call.region)}")
    return [
        Request("ec2:CreateSecurityGroup", group, request_tags(tags)),
        Request("ec2:CreateSecurityGroup", vpc),
        *tagging_on_create(call, group, tags, "CreateSecurityGroup"),
    ]


def ec2_security_group(action: str) -> Callable[[Call, Look], list[Request]]:
    """A call on one group by ``GroupId`` (or by ``GroupName`` in the default VPC)."""

    def requests(call: Call, look: Look) -> list[Request]:
        ident = call.params.get("GroupId") or look.group_id(call.region, call.params["GroupName"])
        return [
            Request(
                action, ec2_arn(call, look, ident), resource_tags("ec2:ResourceTag", look.ec2_tags(call.region, ident))
            )
        ]

    return requests


def ec2_delete_key_pair(call: Call, look: Look) -> list[Request]:
    name = call.params.get("KeyName") or look.key_pair_name(call.region, call.params["KeyPairId"])
    tags = look.ec2_tags(call.region, name)
    return [Request("ec2:DeleteKeyPair", arn(call, "ec2", f"key-pair/{name}"), resource_tags("ec2:ResourceTag", tags))]


def ec2_create_launch_template(call: Call, look: Look) -> list[Request]:
    tags = specified(call.params.get("TagSpecifications"), "launch-template")
    resource = arn(call, "ec2", "launch-template/*")
    return [
        Request("ec2:CreateLaunchTemplate", resource, request_tags(tags)),
        *tagging_on_create(call, resource, tags, "CreateLaunchTemplate"),
    ]


def ec2_delete_launch_template(call: Call, look: Look) -> list[Request]:
    ident, _ = look.launch_template(
        call.region, call.params.get("LaunchTemplateId"), call.params.get("LaunchTemplateName")
    )
    tags = look.ec2_tags(call.region, ident)
    return [Request("ec2:DeleteLaunchTemplate", ec2_arn(call, look, ident), resource_tags("ec2:ResourceTag", tags))]


# The resource types CreateFleet itself is authorised on (Service Authorization Reference); the group, key pair
# and interfaces are authorised by the RunInstances the fleet makes.
CREATE_FLEET_TAKES = {"fleet", "image", "instance", "launch-template", "subnet", "volume", "snapshot"}


def ec2_create_fleet(call: Call, look: Look) -> list[Request]:
    """An instant fleet: CreateFleet on all it touches, and RunInstances, which it makes with the caller's rights.

    An instant fleet needs no service-linked role (EC2 User Guide, "EC2 Fleet
    prerequisites"): it launches as the caller, so the caller's policy must
    allow ``ec2:RunInstances`` on the instance and everything it uses, and the
    tagging of what the launch template tags.
    """
    touched: dict[str, dict[str, Any]] = {}  # ARN → context
    tagged: dict[str, dict[str, str]] = {}
    for config in call.params["LaunchTemplateConfigs"]:
        spec = config["LaunchTemplateSpecification"]
        ident, data = look.launch_template(call.region, spec.get("LaunchTemplateId"), spec.get("LaunchTemplateName"))
        touched[ec2_arn(call, look, ident)] = resource_tags("ec2:ResourceTag", look.ec2_tags(call.region, ident))
        interfaces = data.get("NetworkInterfaces") or []
        groups = list(data.get("SecurityGroupIds") or []) + [g for i in interfaces for g in i.get("Groups") or []]
        subnets = [o["SubnetId"] for o in config.get("Overrides") or () if o.get("SubnetId")]
        subnets += [i["SubnetId"] for i in interfaces if i.get("SubnetId")]
        images = [o["ImageId"] for o in config.get("Overrides") or () if o.get("ImageId")] or [data.get("ImageId")]
        for group in groups:
            touched[ec2_arn(call, look, group)] = resource_tags("ec2:ResourceTag", look.ec2_tags(call.region, group))
        for subnet in subnets or [look.default_subnet(call.region)]:
            touched[ec2_arn(call, look, subnet)] = {}
        for image in images:
            if image and image.startswith("ami-"):
                touched[ec2_arn(call, look, image)] = {}
        if data.get("KeyName"):
            key = data["KeyName"]
            touched[arn(call, "ec2", f"key-pair/{key}")] = resource_tags(
                "ec2:ResourceTag", look.ec2_tags(call.region, key)
            )
        for kind in ("instance", "volume", "network-interface"):
            tags = specified(data.get("TagSpecifications"), kind) | specified(
                call.params.get("TagSpecifications"), kind
            )
            touched[arn(call, "ec2", f"{kind}/*")] = request_tags(tags)
            tagged[arn(call, "ec2", f"{kind}/*")] = tags
    fleet = arn(call, "ec2", "fleet/*")
    fleet_tags = specified(call.params.get("TagSpecifications"), "fleet")
    requests = [Request("ec2:CreateFleet", fleet, request_tags(fleet_tags))]
    requests += [
        Request("ec2:CreateFleet", resource, context)
        for resource, context in touched.items()
        if resource.split(":", 5)[5].split("/", 1)[0] in CREATE_FLEET_TAKES
    ]
    requests += [Request("ec2:RunInstances", resource, context) for resource, context in touched.items()]
    requests += tagging_on_create(call, fleet, fleet_tags, "CreateFleet")
    for resource, tags in tagged.items():
        requests += tagging_on_create(call, resource, tags, "CreateFleet")
    return requests


def ssm_parameter(call: Call, name: str) -> str:
    return arn(call, "ssm", f"parameter/{name.lstrip('/')}")


def ssm_existing(action: str, field: str) -> Callable[[Call, Look], list[Request]]:
    def requests(call: Call, look: Look) -> list[Request]:
        value = call.params[field]
        names = [value] if isinstance(value, str) else list(value)
        return [
            Request(action, ssm_parameter(call, n), resource_tags("ssm:resourceTag", look.ssm_tags(call.region, n)))
            for n in names
        ]

    return requests


def ssm_put_parameter(call: Call, look: Look) -> list[Request]:
    name = call.params["Name"]
    tags = as_dict(call.params.get("Tags"))
    existing = look.ssm_tags(call.region, name) if call.params.get("Overwrite") else {}  # else a new parameter
    context = {**request_tags(tags), **resource_tags("ssm:resourceTag", existing)}
    return [Request("ssm:PutParameter", ssm_parameter(call, name), context)]


def ssm_add_tags(call: Call, look: Look) -> list[Request]:
    if call.params["ResourceType"] != "Parameter":
        raise NoMapping(f"ssm:AddTagsToResource on {call.params['ResourceType']}: add it to tests/support/iam_calls.py")
    name = call.params["ResourceId"]
    context = {
        **request_tags(as_dict(call.params.get("Tags"))),
        **resource_tags("ssm:resourceTag", look.ssm_tags(call.region, name)),
    }
    return [Request("ssm:AddTagsToResource", ssm_parameter(call, name), context)]


def secret_value(call: Call, look: Look) -> list[Request]:
    return [Request("secretsmanager:GetSecretValue", look.secret_arn(call.region, call.params["SecretId"]))]


def table(call: Call, name: str) -> str:
    return arn(call, "dynamodb", f"table/{name}")


def dynamodb_item(action: str) -> Callable[[Call, Look], list[Request]]:
    return lambda call, look: [Request(action, table(call, call.params["TableName"]))]


def dynamodb_query(call: Call, look: Look) -> list[Request]:
    resource = table(call, call.params["TableName"])
    if call.params.get("IndexName"):
        resource += f"/index/{call.params['IndexName']}"
    return [Request("dynamodb:Query", resource)]


# Each item of a transaction is authorised as its own action on its table (DynamoDB developer guide, "Using IAM
# with DynamoDB transactions").
TRANSACTION_ITEMS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def dynamodb_transact_write(call: Call, look: Look) -> list[Request]:
    requests = []
    for item in call.params["TransactItems"]:
        [(kind, body)] = item.items()
        requests.append(Request(TRANSACTION_ITEMS[kind], table(call, body["TableName"])))
    return requests


def dynamodb_transact_get(call: Call, look: Look) -> list[Request]:
    return [Request("dynamodb:GetItem", table(call, item["Get"]["TableName"])) for item in call.params["TransactItems"]]


OPERATIONS: dict[tuple[str, str], Callable[[Call, Look], list[Request]]] = {
    # EC2 reads: IAM authorises describes on "*" only.
    **{
        ("ec2", operation): anything(f"ec2:{operation}")
        for operation in (
            "DescribeInstances",
            "DescribeKeyPairs",
            "DescribeSecurityGroups",
            "DescribeNetworkInterfaces",
            "DescribeVolumes",
            "DescribeImages",
            "DescribeSnapshots",
            "DescribeAddresses",
            "DescribeLaunchTemplates",
            "DescribeLaunchTemplateVersions",
            "DescribeSubnets",
            "DescribeVpcs",
            "DescribeInstanceStatus",
        )
    },
    ("ec2", "CreateKeyPair"): ec2_key_pair_create("CreateKeyPair"),
    ("ec2", "ImportKeyPair"): ec2_key_pair_create("ImportKeyPair"),
    ("ec2", "DeleteKeyPair"): ec2_delete_key_pair,
    ("ec2", "CreateSecurityGroup"): ec2_create_security_group,
    ("ec2", "AuthorizeSecurityGroupIngress"): ec2_security_group("ec2:AuthorizeSecurityGroupIngress"),
    ("ec2", "DeleteSecurityGroup"): ec2_security_group("ec2:DeleteSecurityGroup"),
    ("ec2", "CreateLaunchTemplate"): ec2_create_launch_template,
    ("ec2", "DeleteLaunchTemplate"): ec2_delete_launch_template,
    ("ec2", "CreateFleet"): ec2_create_fleet,
    ("ec2", "CreateTags"): ec2_create_tags,
    ("ec2", "TerminateInstances"): ec2_existing("ec2:TerminateInstances", "InstanceIds"),
    ("ec2", "StartInstances"): ec2_existing("ec2:StartInstances", "InstanceIds"),
    ("ec2", "StopInstances"): ec2_existing("ec2:StopInstances", "InstanceIds"),
    ("ec2", "DeleteVolume"): ec2_existing("ec2:DeleteVolume", "VolumeId"),
    ("ec2", "DeleteNetworkInterface"): ec2_existing("ec2:DeleteNetworkInterface", "NetworkInterfaceId"),
    ("ec2", "DeregisterImage"): ec2_existing("ec2:DeregisterImage", "ImageId"),
    ("ec2", "DeleteSnapshot"): ec2_existing("ec2:DeleteSnapshot", "SnapshotId"),
    ("ec2", "ReleaseAddress"): ec2_existing("ec2:ReleaseAddress", "AllocationId"),
    ("ssm", "DescribeParameters"): anything("ssm:DescribeParameters"),
    ("ssm", "GetParameter"): ssm_existing("ssm:GetParameter", "Name"),
    ("ssm", "GetParameters"): ssm_existing("ssm:GetParameters", "Names"),
    ("ssm", "PutParameter"): ssm_put_parameter,
    ("ssm", "AddTagsToResource"): ssm_add_tags,
    ("ssm", "DeleteParameter"): ssm_existing("ssm:DeleteParameter", "Name"),
    ("ssm", "DeleteParameters"): ssm_existing("ssm:DeleteParameters", "Names"),
    ("secretsmanager", "GetSecretValue"): secret_value,
    ("dynamodb", "GetItem"): dynamodb_item("dynamodb:GetItem"),
    ("dynamodb", "PutItem"): dynamodb_item("dynamodb:PutItem"),
    ("dynamodb", "UpdateItem"): dynamodb_item("dynamodb:UpdateItem"),
    ("dynamodb", "DeleteItem"): dynamodb_item("dynamodb:DeleteItem"),
    ("dynamodb", "Query"): dynamodb_query,
    ("dynamodb", "TransactWriteItems"): dynamodb_transact_write,
    ("dynamodb", "TransactGetItems"): dynamodb_transact_get,
    ("resourcegroupstaggingapi", "GetResources"): anything("tag:GetResources"),
}


def iam_requests(call: Call, look: Look) -> list[Request]:
    """The IAM requests of one call; ``NoMapping`` names the operation and where to add its row."""
    row = OPERATIONS.get((call.service, call.operation))
    if row is None:
        raise NoMapping(
            f"no IAM mapping for {call.service}:{call.operation}: add a row in tests/support/iam_calls.py OPERATIONS"
        )
    return row(call, look)
