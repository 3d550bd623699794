"""Create and release sessions: the launcher's domain, free of HTTP.

Functions take their clients (``clients(service, region)``), settings and
clock, and raise the domain errors of ``errors.py``. A create either answers
the whole session or deletes what it made and raises ``LaunchFailed``;
anything a crash leaves behind is already named and tagged, so the collector
removes it at expiry. Release uses the layer's deletion units, the very code
the collector runs, and the layer's one rule for what a session keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from errors import DomainError, LaunchFailed, SessionKept, SessionNotFound
from session_naming import INSTANCE_TAG, SESSION_TAG, SessionName, session_tags, tag_specifications
from session_naming.resources import (
    KEY_PAIRS,
    ORDER,
    PARAMETERS,
    SECURITY_GROUPS,
    Clients,
    Found,
    InUse,
    error_code,
    session_resources,
)
from session_naming.settings import LauncherSettings
from slots import Slots

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        CreateSecurityGroupRequestTypeDef,
        FilterTypeDef,
        IpPermissionTypeDef,
        IpRangeTypeDef,
        Ipv6RangeTypeDef,
        LaunchTemplateInstanceNetworkInterfaceSpecificationTypeDef,
    )

SSH = 22
PRIVATE_KEY = "private-key"


@dataclass(frozen=True)
class Extras:
    """What a CI system adds to a session: tags on every resource, secrets, the instance's user data."""

    tags: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)  # parameter suffix -> SecureString value
    user_data: str | None = None


def create_session(
    clients: Clients,
    settings: LauncherSettings,
    base: str,
    lifetime: timedelta,
    now: datetime,
    *,
    slots: Slots | None,
    public_key: str | None = None,
    ingress_cidrs: tuple[str, ...] = (),
    instance: bool = False,
    extras: Extras = Extras(),
    name: SessionName | None = None,
) -> dict[str, Any]:
    """Make a session's resources, or none of them.

    The live-session slot is taken beside the key pair and the group rather
    than before them, a round trip less on every create (bench/); the
    instance, the costly part, starts only once the slot is held. Requests
    always pass ``slots``; ``None`` (no cap) is for tools and tests that
    drive the domain directly.
    """
    ec2, ssm = clients("ec2", settings.region), clients("ssm", settings.region)
    name = name or SessionName.make(base, lifetime, now)
    made: list[Found] = []
    tags = dict(extras.tags)
    # An instance is asked for only with a template: payloads refuses one without, and GitHub
    # jobs ask for one only when the stack has a template.
    template_id = settings.launch_template_id if instance else None
    assert not instance or template_id is not None

    def secure(suffix: str, value: str, description: str, **tier) -> str:
        parameter = f"/{name}/{suffix}"
        ssm.put_parameter(
            Name=parameter,
            Value=value,
            Type="SecureString",
            Description=description,
            Tags=session_tags(name, tags),
            **tier,
        )
        made.append(Found(PARAMETERS.name, name, parameter))
        return parameter

    def key_pair() -> dict[str, Any]:
        spec = tag_specifications(name, ["key-pair"], tags)
        if public_key:
            answer = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public_key.encode(), TagSpecifications=spec)
            made.append(Found(KEY_PAIRS.name, name, name))
            return {"name": name, "id": answer["KeyPairId"], "parameter": None}
        created = ec2.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=spec)
        made.append(Found(KEY_PAIRS.name, name, name))
        ident, material = created["KeyPairId"], created["KeyMaterial"]
        del created  # the private key is held no longer than it takes to store it
        parameter = secure(PRIVATE_KEY, material, "private key of an ec2-sessions key pair")
        return {"name": name, "id": ident, "parameter": parameter}

    def security_group() -> dict[str, str]:
        request: CreateSecurityGroupRequestTypeDef = {
            "GroupName": name,
            "Description": "ec2-sessions session",
            "TagSpecifications": tag_specifications(name, ["security-group"], tags),
        }
        if settings.vpc_id:
            request["VpcId"] = settings.vpc_id
        group = ec2.create_security_group(**request)["GroupId"]
        made.append(Found(SECURITY_GROUPS.name, name, group))
        if ingress_cidrs:
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[ssh_from(ingress_cidrs)])
        return {"name": name, "id": group}

    def secrets(instance_arn: str | None) -> None:
        """After the instance: the runner configuration names the one instance allowed to read it."""
        if instance_arn is not None:
            tags[INSTANCE_TAG] = instance_arn
        for suffix, value in extras.secrets.items():
            # GitHub's JIT configuration passes the Standard tier's 4 KB: SSM picks Advanced when it must.
            secure(suffix, value, "ec2-sessions runner configuration", Tier="Intelligent-Tiering")

    slot = None
    try:
        with ThreadPoolExecutor(max_workers=5) as pool:  # none waits for another
            if slots is not None:
                slot = pool.submit(slots.take, name, settings.max_live_sessions, now)
            key_future, group_future = pool.submit(key_pair), pool.submit(security_group)
            template = pool.submit(template_interfaces, ec2, template_id) if template_id is not None else None
        for future in (key_future, group_future, slot):
            if future is not None:
                future.result()  # TooManySessions from the slot: roll back below, start no instance
        key, group = key_future.result(), group_future.result()
        instances = []
        if template is not None and template_id is not None:  # both or neither: an instance was asked for
            instances = [run_instance(ec2, template_id, name, group["id"], tags, extras.user_data, template.result())]
            made.append(Found("instance", name, instances[0]["id"]))
        secrets(instances[0].pop("arn") if instances else None)
    except Exception as error:
        left = rollback(clients, settings.region, made)
        if slots is not None and slot is not None and slot.done() and slot.exception() is None:
            slots.give_back(name)
        if isinstance(error, DomainError):
            raise
        raise LaunchFailed(error_code(error), left) from error
    return {
        "session": name,
        "expires_at": name.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "key_pair": {"name": key["name"], "id": key["id"]},
        "security_group": group,
        "instances": instances,
        "private_key_parameter": key["parameter"],
    }


def ssh_from(cidrs: Sequence[str]) -> IpPermissionTypeDef:
    v4: list[IpRangeTypeDef] = [{"CidrIp": c, "Description": "ec2-sessions"} for c in cidrs if ":" not in c]
    v6: list[Ipv6RangeTypeDef] = [{"CidrIpv6": c, "Description": "ec2-sessions"} for c in cidrs if ":" in c]
    return {"IpProtocol": "tcp", "FromPort": SSH, "ToPort": SSH, "IpRanges": v4, "Ipv6Ranges": v6}


def template_interfaces(
    ec2: EC2Client, template_id: str
) -> list[LaunchTemplateInstanceNetworkInterfaceSpecificationTypeDef]:
    """The network interfaces the launch template's default version defines (often none).

    A template that defines interfaces refuses a top-level ``SecurityGroupIds``
    in RunInstances: the session's group then goes on the interfaces instead.
    """
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=["$Default"])
    data = versions["LaunchTemplateVersions"][0].get("LaunchTemplateData", {})
    return data.get("NetworkInterfaces", [])


def run_instance(
    ec2: EC2Client,
    template_id: str,
    name: SessionName,
    group_id: str,
    tags: Mapping[str, str],
    user_data: str | None,
    interfaces: list[LaunchTemplateInstanceNetworkInterfaceSpecificationTypeDef],
) -> dict[str, Any]:
    spec = tag_specifications(name, ["instance", "volume", "network-interface"], tags)
    spec[0] = {"ResourceType": "instance", "Tags": [*spec[0].get("Tags", ()), {"Key": "Name", "Value": name}]}
    placement: dict[str, Any] = {"SecurityGroupIds": [group_id]}
    if interfaces:
        placement = {
            "NetworkInterfaces": [
                {**_interface_override(i), "Groups": [group_id]} if i.get("DeviceIndex", 0) == 0 else i
                for i in interfaces
            ]
        }
    more: dict[str, Any] = {"UserData": user_data} if user_data else {}  # botocore base64-encodes it
    answer = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": template_id},
        MinCount=1,
        MaxCount=1,
        KeyName=name,
        InstanceInitiatedShutdownBehavior="terminate",
        TagSpecifications=spec,
        **placement,
        **more,
    )
    instance = answer["Instances"][0]
    arn = instance_arn(ec2.meta.region_name, answer["OwnerId"], instance["InstanceId"])
    return {
        "id": instance["InstanceId"],
        "state": instance["State"]["Name"],
        "private_ip": instance.get("PrivateIpAddress"),
        "arn": arn,
    }


def instance_arn(region: str, account: str, instance_id: str) -> str:
    """``arn:<partition>:ec2:<region>:<account>:instance/<id>``, as ``${ec2:SourceInstanceARN}`` spells it."""
    import boto3

    partition = boto3.session.Session().get_partition_for_region(region)
    return f"arn:{partition}:ec2:{region}:{account}:instance/{instance_id}"


def _interface_override(interface: Mapping[str, Any]) -> dict[str, Any]:
    """A launch template's interface as RunInstances takes it (the fields both APIs share)."""
    keep = ("DeviceIndex", "SubnetId", "AssociatePublicIpAddress", "DeleteOnTermination", "Description")
    return {key: interface[key] for key in keep if key in interface}


def delete_found(clients: Clients, region: str, found: list[Found]) -> dict[str, Any]:
    """Delete ``found`` in the collector's order with its deletion units; report by kind."""
    report: dict[str, Any] = {"deleted": {}, "left_to_collector": [], "failed": []}
    for kind in ORDER:
        client = kind.client(clients, region)
        for item in (f for f in found if f.kind == kind.name):
            try:
                kind.delete_quietly(client, item)
            except InUse:
                report["left_to_collector"].append({"kind": kind.name, "id": item.ident, "reason": "in-use"})
            except Exception as error:
                report["failed"].append({"kind": kind.name, "id": item.ident, "error": error_code(error)})
            else:
                report["deleted"].setdefault(kind.name, []).append(item.ident)
    return report


def rollback(clients: Clients, region: str, made: list[Found]) -> list[str]:
    """Delete what a failed create made; answer what is left for the collector."""
    report = delete_found(clients, region, made)
    return [item["id"] for item in report["left_to_collector"] + report["failed"]]


def release_session(
    clients: Clients,
    settings: LauncherSettings,
    name: SessionName,
    slots: Slots | None = None,
    delete_regions: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Delete the session now; ``SessionKept`` (nothing deleted) if any resource, in any region, carries the keep tag.

    Every region of ``settings.regions`` is read before anything is deleted.
    Deleting happens in ``delete_regions`` (the launcher's own region, where
    it makes sessions and where its IAM lets it delete); what lies in
    another region is left to the collector, which sweeps every region.
    """
    deletable, kept = session_resources(clients, settings.regions, name, settings.session_bases)
    if any(k["reason"] == "keep-tag" for k in kept):
        raise SessionKept(f"session {name} is kept (tag ec2-sessions:keep=true): remove the tag to release it")
    if not deletable and not kept:
        raise SessionNotFound(f"session {name} has no resources in {', '.join(settings.regions)}")
    report: dict[str, Any] = {"deleted": {}, "left_to_collector": [], "failed": []}
    targets = set(delete_regions or (settings.region,))
    for region, found in deletable.items():
        if region not in targets:
            report["left_to_collector"] += [{"kind": f.kind, "id": f.ident, "reason": "other-region"} for f in found]
            continue
        done = delete_found(clients, region, found)
        for kind, idents in done["deleted"].items():
            report["deleted"].setdefault(kind, []).extend(idents)
        report["left_to_collector"] += done["left_to_collector"]
        report["failed"] += done["failed"]
    still_running = any(item["kind"] == "instance" for item in report["failed"] + kept)  # listed: not terminated
    if slots is not None and not still_running:
        slots.give_back(name)  # an instance left running keeps its session's slot until expiry
    report["kept"] = kept
    if any(item["reason"] == "in-use" for item in report["left_to_collector"]):
        report["note"] = "a group still used by a terminating instance is left to the collector's next run"
    return {"session": name, **report}


def sessions_tagged(
    clients: Clients, settings: LauncherSettings, key: str, value: str
) -> dict[SessionName, dict[str, str]]:
    """The owned sessions whose key pair or group carries ``key=value``, with those resources' tags.

    Every create makes the key pair and the group at once, so one of them is
    there for any session a crash left half-made.
    """
    ec2: EC2Client = clients("ec2", settings.region)
    wanted: list[FilterTypeDef] = [{"Name": f"tag:{key}", "Values": [value]}]
    tagged = [k.get("Tags") for k in ec2.describe_key_pairs(Filters=wanted)["KeyPairs"]]
    for page in ec2.get_paginator("describe_security_groups").paginate(Filters=wanted):
        tagged += [g.get("Tags") for g in page["SecurityGroups"]]
    found: dict[SessionName, dict[str, str]] = {}
    for tags in tagged:
        as_dict = {t["Key"]: t["Value"] for t in tags or ()}
        name = SessionName.parse(as_dict.get(SESSION_TAG))
        if name is not None and name.base in settings.session_bases:
            found.setdefault(name, {}).update(as_dict)
    return dict(sorted(found.items()))


def release_job(
    clients: Clients, settings: LauncherSettings, sessions: Iterable[SessionName], slots: Slots
) -> dict[str, list[str]]:
    """Release a CI job's sessions; a kept one stays, and one with a resource that would not go is ``failed``."""
    released: list[str] = []
    kept: list[str] = []
    failed: list[str] = []
    for name in sessions:
        try:
            report = release_session(clients, settings, name, slots)
        except SessionKept:
            kept.append(str(name))
        except SessionNotFound:  # released meanwhile by another delivery
            continue
        else:
            (failed if report["failed"] else released).append(str(name))
    answer = {"released": released, "kept": kept}
    if failed:  # the collector deletes what is left at expiry
        answer["failed"] = failed
    return answer
