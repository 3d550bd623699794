"""Session resources made directly through the EC2 and SSM APIs, for the collector to meet.

The collector's tests seed the account themselves rather than through the
launcher, so they can make what the launcher never would: old expiries,
malformed and legacy names, untagged and keep-tagged resources, and what a
session's tests leave behind (volumes, interfaces, snapshots, AMIs, Elastic
IPs), which only their session tag ties to the session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import boto3
from session_naming import KEEP_TAG, SESSION_TAG, SessionName, session_tags

# In the collector's order (session_naming.resources.ORDER).
NAMED_KINDS = ("instance", "launch_template", "parameter", "key_pair", "security_group")
TAGGED_KINDS = ("volume", "network_interface", "image", "snapshot", "address")
ALL_KINDS = ("instance", "launch_template", "parameter", "key_pair", *TAGGED_KINDS, "security_group")
MOTO_ACCOUNT = "123456789012"  # moto's account for the fake credentials


def name_expiring(base: str, delta: timedelta, now: datetime) -> SessionName:
    """A fresh session name of ``base`` expiring ``delta`` from ``now`` (negative: expired)."""
    return SessionName.make(base, timedelta(days=365), now=now + delta - timedelta(days=365))


@cache
def _catalogue_image(endpoint: str, region: str) -> str:
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
    return ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def catalogue_image(ec2) -> str:
    """An AMI of moto's catalogue, asked once per server and region (asking costs most of a second).

    The catalogue is moto's bundled data, the same after every reset, so the
    answer is kept across tests and client factories.
    """
    return _catalogue_image(ec2.meta.endpoint_url, ec2.meta.region_name)


def seed(
    clients, region: str, name: str, kinds=ALL_KINDS, *, tagged=True, keep=False, extra_tags=None, spot=False
) -> dict:
    """Create the resources of one session (``name`` need not parse); answer their ids by kind.

    The tag-identified kinds (volume, network interface, image, snapshot,
    address) exist for a session only through their session tag, so they
    are made only when ``tagged``. An image is made from the session's
    instance when one is seeded (``CreateImage``), otherwise registered;
    either way moto gives it a snapshot of its own, tagged here afterwards
    (moto cannot tag it at ``CreateImage``), as AWS's ``CreateImage`` with a
    ``snapshot`` tag specification would: ``ids["image_snapshot"]``. ``spot``
    asks for the instance on the spot market (its ``InstanceLifecycle`` is then ``spot``).
    """
    ec2, ssm = clients("ec2", region), clients("ssm", region)
    tags = session_tags(SessionName(name), extra_tags) if tagged else []
    if keep:
        tags = [*tags, {"Key": KEEP_TAG, "Value": "true"}]

    def spec(kind, more=()):
        both = [*tags, *more]
        return [{"ResourceType": kind, "Tags": both}] if both else []

    ids = {}
    if "key_pair" in kinds:
        ec2.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=spec("key-pair"))
        ids["key_pair"] = name
    if "security_group" in kinds:
        group = ec2.create_security_group(
            GroupName=name, Description="seeded", TagSpecifications=spec("security-group")
        )
        ids["security_group"] = group["GroupId"]
    if "launch_template" in kinds:  # what a create that died between template and fleet leaves
        template = ec2.create_launch_template(
            LaunchTemplateName=name,
            LaunchTemplateData={"ImageId": catalogue_image(ec2), "KeyName": name},
            TagSpecifications=spec("launch-template"),
        )
        ids["launch_template"] = template["LaunchTemplate"]["LaunchTemplateId"]
    if "parameter" in kinds:
        extra = {"Tags": tags} if tags else {}
        ssm.put_parameter(Name=f"/{name}/private-key", Value="seeded-secret", Type="SecureString", **extra)
        ids["parameter"] = f"/{name}/private-key"
    if "instance" in kinds:
        groups = {"SecurityGroupIds": [ids["security_group"]]} if "security_group" in ids else {}
        instance = ec2.run_instances(
            ImageId=catalogue_image(ec2),
            MinCount=1,
            MaxCount=1,
            TagSpecifications=spec("instance", [{"Key": "Name", "Value": name}]),
            **groups,
            **({"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}),
        )["Instances"][0]
        ids["instance"] = instance["InstanceId"]
    if tagged:
        ids.update(
            seed_left_behind(clients, region, tags, [k for k in kinds if k in TAGGED_KINDS], ids.get("instance"))
        )
    return ids


def seed_left_behind(clients, region: str, tags: list[dict], kinds, instance: str | None = None) -> dict:
    """What a session's tests leave: each of ``kinds`` once, carrying ``tags`` (any session tag at all)."""
    ec2 = clients("ec2", region)

    def spec(kind):
        return [{"ResourceType": kind, "Tags": tags}]

    ids = {}
    if "volume" in kinds:
        volume = ec2.create_volume(AvailabilityZone=f"{region}a", Size=1, TagSpecifications=spec("volume"))
        ids["volume"] = volume["VolumeId"]
    if "network_interface" in kinds:
        interface = ec2.create_network_interface(SubnetId=_subnet(ec2), TagSpecifications=spec("network-interface"))
        ids["network_interface"] = interface["NetworkInterface"]["NetworkInterfaceId"]
    if "image" in kinds:
        if instance:
            image = ec2.create_image(InstanceId=instance, Name=f"seeded-{len(tags)}", TagSpecifications=spec("image"))
            ids["image"] = image["ImageId"]
        else:
            ids["image"] = ec2.register_image(Name="seeded", RootDeviceName="/dev/sda1")["ImageId"]
            ec2.create_tags(Resources=[ids["image"]], Tags=tags)
        [described] = ec2.describe_images(ImageIds=[ids["image"]])["Images"]
        ids["image_snapshot"] = described["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        ec2.create_tags(Resources=[ids["image_snapshot"]], Tags=tags)
    if "snapshot" in kinds:
        source = ids.get("volume") or ec2.create_volume(AvailabilityZone=f"{region}a", Size=1)["VolumeId"]
        ids["snapshot"] = ec2.create_snapshot(VolumeId=source, TagSpecifications=spec("snapshot"))["SnapshotId"]
        if source != ids.get("volume"):
            ec2.delete_volume(VolumeId=source)
    if "address" in kinds:
        ids["address"] = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip"))["AllocationId"]
    return ids


def _subnet(ec2) -> str:
    return ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]["SubnetId"]


def inventory(clients, region: str) -> dict[str, set[str]]:
    """Every live resource in the region, by kind, named as the collector names them."""
    ec2, ssm = clients("ec2", region), clients("ssm", region)
    instances = {
        next((t["Value"] for t in i.get("Tags") or () if t["Key"] == "Name"), i["InstanceId"])
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
        )
        for r in page["Reservations"]
        for i in r["Instances"]
    }
    parameters = {
        p["Name"][1 : -len("/private-key")] if p["Name"].endswith("/private-key") else p["Name"]
        for page in ssm.get_paginator("describe_parameters").paginate()
        for p in page["Parameters"]
    }
    keys = {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    groups = {g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]} - {"default"}
    templates = {
        t["LaunchTemplateName"]
        for page in ec2.get_paginator("describe_launch_templates").paginate()
        for t in page["LaunchTemplates"]
    } - {"ec2-sessions-runner"}  # the profile's template (tests/support/stack.py) is the stack's, not a session's
    return {
        "instance": instances,
        "launch_template": templates,
        "parameter": parameters,
        "key_pair": keys,
        **left_behind(ec2),
        "security_group": groups,
    }


def left_behind(ec2, key: str = "name") -> dict[str, set[str]]:
    """The tag-identified kinds that carry a session tag, by the tag's value (``key="name"``, as the
    collector names them) or by their identifier (``key="ident"``). Attached volumes and interfaces
    are their instance's (the collector does not list them either) and are left out."""
    return {kind: {name if key == "name" else ident for name, ident in found} for kind, found in _tagged(ec2).items()}


def _tagged(ec2) -> dict[str, list[tuple[str, str]]]:
    tagged = [{"Name": "tag-key", "Values": [SESSION_TAG]}]
    available = [*tagged, {"Name": "status", "Values": ["available"]}]
    # moto ignores OwnerIds=["self"] and filters its 1,300 public snapshots by tag slowly: filter by owner.
    own = [{"Name": "owner-id", "Values": [MOTO_ACCOUNT]}]

    def session_of(tags) -> str | None:
        return next((t["Value"] for t in tags or () if t["Key"] == SESSION_TAG), None)

    listed = {
        "volume": [(v, v["VolumeId"]) for v in ec2.describe_volumes(Filters=available)["Volumes"]],
        "network_interface": [
            ({"Tags": i.get("TagSet")}, i["NetworkInterfaceId"])
            for i in ec2.describe_network_interfaces(Filters=available)["NetworkInterfaces"]
        ],
        "image": [(i, i["ImageId"]) for i in ec2.describe_images(Owners=["self"], Filters=tagged)["Images"]],
        "snapshot": [(s, s["SnapshotId"]) for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=own)["Snapshots"]],
        "address": [(a, a["AllocationId"]) for a in ec2.describe_addresses(Filters=tagged)["Addresses"]],
    }
    return {
        kind: [(session_of(r.get("Tags")), ident) for r, ident in found if session_of(r.get("Tags")) is not None]
        for kind, found in listed.items()
    }


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
