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
) -> SessionTemplate:
    """Create the session's own launch template from the profile's data and the session's."""
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=profile.launch_template_id, Versions=[profile.launch_template_version]
    )
    data: dict[str, Any] = dict(versions["LaunchTemplateVersions"][0].get("LaunchTemplateData", {}))
    for key in SESSION_OWNED:
        data.pop(key, None)
    interfaces = data.get("NetworkInterfaces") or []
    if interfaces:  # a template that defines interfaces takes groups on them, never beside them
        data["NetworkInterfaces"] = [
            {**i, "Groups": [group_id]} if i.get("DeviceIndex", 0) == 0 else i for i in interfaces
        ]
    else:
        data["SecurityGroupIds"] = [group_id]
    spec = tag_specifications(name, ["instance", "volume", "network-interface"], tags)
    spec[0] = {"ResourceType": "instance", "Tags": [*spec[0].get("Tags", ()), {"Key": "Name", "Value": name}]}
    data.update(
        KeyName=str(name),
        InstanceInitiatedShutdownBehavior="terminate",
        TagSpecifications=spec,
    )
    if user_data:
        data["UserData"] = base64.b64encode(user_data.encode()).decode()  # a template takes it encoded
    created = ec2.create_launch_template(
        LaunchTemplateName=str(name),
        LaunchTemplateData=data,  # type: ignore[arg-type]  # the described data, as the create takes it
        TagSpecifications=tag_specifications(name, ["launch-template"], tags),
    )["LaunchTemplate"]
    account = str(created.get("CreatedBy", "")).split(":")[4:5] or [""]
    return SessionTemplate(created["LaunchTemplateId"], account[0], any(i.get("SubnetId") for i in interfaces))


def overrides(profile: Profile, subnets: list[str]) -> list[dict[str, str]]:
    """Every instance type × subnet of the profile (either may be the template's own: then it is left out)."""
    types = list(profile.instance_types) or [""]
    places = subnets or [""]
    pairs = [{**({"InstanceType": t} if t else {}), **({"SubnetId": s} if s else {})} for t in types for s in places]
    return [pair for pair in pairs if pair][:MAX_OVERRIDES]


def ask(ec2: EC2Client, template_id: str, pairs: list[dict[str, str]], market: str) -> tuple[dict | None, list[str]]:
    """One instant fleet of one instance in ``market``: the instance entry, or ``None`` and the error codes."""
    config: dict[str, Any] = {"LaunchTemplateSpecification": {"LaunchTemplateId": template_id, "Version": "$Latest"}}
    if pairs:
        config["Overrides"] = pairs
    request: dict[str, Any] = {
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
        entry, errors = ask(ec2, template.id, pairs, market)
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
