"""Start a session's one instance where capacity exists: one EC2 Fleet call, spot first when the profile allows.

CreateFleet takes no security group, user data, shutdown behaviour or
volume tags of its own, so each session gets a launch template of its own,
named by the session and tagged like its other resources: the profile
template's data plus the session's key pair, group, user data, ``terminate``
on shutdown and tag specifications for the instance, its volumes and its
network interfaces. Everything the instance holds is tagged at creation.
The template is deleted once the fleet has answered, whatever it answered;
one a crash leaves behind is the collector's kind ``launch_template``.

One ``instant`` fleet of total capacity 1 asks every instance type × subnet
of the profile at once (``price-capacity-optimized`` for spot,
``lowest-price`` for on-demand). ``spot-first`` asks on-demand once more
when, and only when, the spot call returned no instance on capacity errors
alone; a configuration error is never followed by another ask.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from errors import NoCapacity
from session_naming import SessionName, tag_specifications
from session_naming.profiles import Profile

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# EC2 Fleet's errors that mean "not here, not now": any other is the configuration's fault.
CAPACITY_ERRORS = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "MaxSpotInstanceCountExceeded",
        "SpotMaxPriceTooLow",
        "UnfulfillableCapacity",
        "InsufficientFreeAddressesInSubnet",
    }
)
MAX_OVERRIDES = 300  # instance types × subnets one fleet call may weigh
# Data of the profile's template that the session's own template sets itself.
SESSION_OWNED = ("KeyName", "SecurityGroupIds", "SecurityGroups", "UserData", "InstanceInitiatedShutdownBehavior")


class FleetRefused(Exception):
    """The fleet call returned no instance for a configuration reason; ``code`` is EC2's error code only."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class SessionTemplate:
    id: str
    account: str  # of its creator's ARN: the instance ARN's account, without a call of its own
    has_subnet: bool  # the profile's template places its interface in a subnet itself


@dataclass(frozen=True)
class Started:
    id: str
    instance_type: str
    market: str  # "spot" or "on-demand"
    arn: str
    fleet_calls: int


def session_template(
    ec2: EC2Client,
    profile: Profile,
    name: SessionName,
    group_id: str,
    tags: dict[str, str],
    user_data: str | None,
    shutdown: str = "terminate",
    instance_tags: dict[str, str] | None = None,
) -> SessionTemplate:
    """Create the session's own launch template from the profile's data and the session's.

    ``shutdown`` is what the instance's own power-off does: ``terminate``
    (a session's instance serves one job), or ``stop`` (a stopped pool's,
    which powers off once warmed and is started by the job that claims it).
    """
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=profile.launch_template_id, Versions=[profile.launch_template_version]
    )
    described = versions["LaunchTemplateVersions"][0].get("LaunchTemplateData", {})
    request_shape: Any = ec2.meta.service_model.operation_model("CreateLaunchTemplate").input_shape
    data: dict[str, Any] = as_request(described, request_shape.members["LaunchTemplateData"])
    own_user_data = data.pop("UserData", None)  # the template's own boot script, when the session has none
    own_tags = data.pop("TagSpecifications", [])
    for key in SESSION_OWNED:
        data.pop(key, None)
    interfaces = data.get("NetworkInterfaces") or []
    if interfaces:  # a template that defines interfaces takes groups on them, never beside them
        data["NetworkInterfaces"] = [
            {**i, "Groups": [group_id]} if i.get("DeviceIndex", 0) == 0 else i for i in interfaces
        ]
    else:
        data["SecurityGroupIds"] = [group_id]
    # IMDSv2 only, one hop: a job's containers cannot reach the instance's credentials. A profile template that
    # sets either (a hop limit of 2 for jobs that need the role inside containers) keeps its own.
    metadata = data.setdefault("MetadataOptions", {})
    metadata.setdefault("HttpTokens", "required")
    metadata.setdefault("HttpPutResponseHopLimit", 1)
    data.update(
        KeyName=str(name),
        InstanceInitiatedShutdownBehavior=shutdown,
        TagSpecifications=session_tag_specifications(name, tags, own_tags, instance_tags or {}),
    )
    if user_data:
        data["UserData"] = base64.b64encode(user_data.encode()).decode()  # a template takes it encoded
    elif own_user_data:
        data["UserData"] = own_user_data
    created = ec2.create_launch_template(
        LaunchTemplateName=str(name),
        LaunchTemplateData=data,  # type: ignore[arg-type]  # the described data, as the create takes it
        TagSpecifications=tag_specifications(name, ["launch-template"], tags),
    )["LaunchTemplate"]
    account = str(created.get("CreatedBy", "")).split(":")[4:5] or [""]
    return SessionTemplate(created["LaunchTemplateId"], account[0], any(i.get("SubnetId") for i in interfaces))


def as_request(described: Any, shape: Any) -> Any:
    """A described value cut to what the request shape takes, recursively.

    DescribeLaunchTemplateVersions answers fields CreateLaunchTemplate
    refuses (``MetadataOptions.State``, ``Operator``...): passing them back
    would fail every launch of a template that sets them.
    """
    if shape.type_name == "structure" and isinstance(described, dict):
        return {key: as_request(value, shape.members[key]) for key, value in described.items() if key in shape.members}
    if shape.type_name == "list" and isinstance(described, list):
        return [as_request(item, shape.member) for item in described]
    return described


def session_tag_specifications(
    name: SessionName, tags: dict[str, str], own: list[dict[str, Any]], instance_tags: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The session's tags on the instance (with ``Name`` and ``instance_tags``), its volumes and interfaces,
    beside the template's own."""
    specs = {
        spec["ResourceType"]: {t["Key"]: t["Value"] for t in spec.get("Tags", ())}
        for spec in own
        if spec.get("ResourceType")
    }
    ours: list[dict[str, Any]] = [
        dict(spec) for spec in tag_specifications(name, ["instance", "volume", "network-interface"], tags)
    ]
    for spec in ours:
        merged = {**specs.pop(spec["ResourceType"], {}), **{t["Key"]: t["Value"] for t in spec["Tags"]}}
        if spec["ResourceType"] == "instance":
            merged |= {"Name": str(name), **(instance_tags or {})}
        spec["Tags"] = [{"Key": key, "Value": value} for key, value in merged.items()]
    return [
        *ours,
        *({"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in t.items()]} for kind, t in specs.items()),
    ]


def overrides(profile: Profile, subnets: list[str]) -> list[dict[str, str]]:
    """Every instance type × subnet of the profile (either may be the template's own: then it is left out)."""
    types = list(profile.instance_types) or [""]
    places = subnets or [""]
    pairs = [{**({"InstanceType": t} if t else {}), **({"SubnetId": s} if s else {})} for t in types for s in places]
    return [pair for pair in pairs if pair][:MAX_OVERRIDES]


def ask(
    ec2: EC2Client, template_id: str, pairs: list[dict[str, str]], market: str, token: str
) -> tuple[dict | None, list[str]]:
    """One instant fleet of one instance in ``market``: the instance entry, or ``None`` and the error codes.

    ``token`` makes the call idempotent: a retry after a lost answer starts no second instance.
    """
    config: dict[str, Any] = {"LaunchTemplateSpecification": {"LaunchTemplateId": template_id, "Version": "$Latest"}}
    if pairs:
        config["Overrides"] = pairs
    request: dict[str, Any] = {
        "ClientToken": token,
        "Type": "instant",
        "TargetCapacitySpecification": {"TotalTargetCapacity": 1, "DefaultTargetCapacityType": market},
        "LaunchTemplateConfigs": [config],
    }
    if market == "spot":
        request["SpotOptions"] = {"AllocationStrategy": "price-capacity-optimized"}
    else:
        request["OnDemandOptions"] = {"AllocationStrategy": "lowest-price"}
    answer = ec2.create_fleet(**request)
    for entry in answer.get("Instances") or ():  # botocore may leave Instances out when there are Errors
        if entry.get("InstanceIds"):
            return dict(entry), []
    return None, [str(error.get("ErrorCode", "Unknown")) for error in answer.get("Errors") or ()] or ["NoInstance"]


def markets(profile: Profile, breaker_open: bool) -> list[str]:
    """The markets to ask, in order: ``spot-first`` goes straight to on-demand while its breaker is open."""
    if profile.market == "spot-first":
        return ["on-demand"] if breaker_open else ["spot", "on-demand"]
    return [profile.market]


def launch(
    ec2: EC2Client, template: SessionTemplate, profile: Profile, subnets: list[str], breaker_open: bool
) -> Started:
    """Ask each allowed market in turn, the next only after capacity errors alone; ``NoCapacity`` when all are full."""
    pairs = overrides(profile, subnets)
    for calls, market in enumerate(markets(profile, breaker_open), start=1):
        entry, errors = ask(ec2, template.id, pairs, market, f"{template.id}-{market}")
        if entry is not None:
            ident = entry["InstanceIds"][0]
            arn = f"arn:{ec2.meta.partition}:ec2:{ec2.meta.region_name}:{template.account}:instance/{ident}"
            return Started(
                ident,
                str(entry.get("InstanceType") or ""),
                "spot" if entry.get("Lifecycle") == "spot" else "on-demand",
                arn,  # as ${ec2:SourceInstanceARN} spells it
                calls,
            )
        if not set(errors) <= CAPACITY_ERRORS:
            raise FleetRefused(next(code for code in errors if code not in CAPACITY_ERRORS))
    raise NoCapacity(
        f"profile {profile.name}: no capacity for any of its instance types and subnets: retry later", profile.name
    )


def subnets_of(ec2: EC2Client, profile: Profile, vpc_id: str | None, template: SessionTemplate) -> list[str]:
    """The profile's subnets, else the template's own (none to name), else ``VPC_ID``'s, else the default VPC's."""
    if profile.subnet_ids:
        return list(profile.subnet_ids)
    if template.has_subnet:
        return []
    vpc = [{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id else [{"Name": "default-for-az", "Values": ["true"]}]
    return sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=vpc)["Subnets"])  # type: ignore[arg-type]
