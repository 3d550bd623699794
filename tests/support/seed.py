"""Session resources made directly through the EC2 and SSM APIs, for the collector to meet.

The collector's tests seed the account themselves rather than through the
launcher, so they can make what the launcher never would: old expiries,
malformed and legacy names, untagged and keep-tagged resources.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

from session_naming import KEEP_TAG, SessionName, session_tags

ALL_KINDS = ("instance", "parameter", "key_pair", "security_group")


def name_expiring(base: str, delta: timedelta, now: datetime) -> SessionName:
    """A fresh session name of ``base`` expiring ``delta`` from ``now`` (negative: expired)."""
    return SessionName.make(base, timedelta(days=365), now=now + delta - timedelta(days=365))


@cache
def _image(endpoint: str, region: str, ec2) -> str:
    return ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def seed(clients, region: str, name: str, kinds=ALL_KINDS, *, tagged=True, keep=False, extra_tags=None) -> dict:
    """Create the resources of one session (``name`` need not parse); answer their ids by kind."""
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
    if "parameter" in kinds:
        extra = {"Tags": tags} if tags else {}
        ssm.put_parameter(Name=f"/{name}/private-key", Value="seeded-secret", Type="SecureString", **extra)
        ids["parameter"] = f"/{name}/private-key"
    if "instance" in kinds:
        groups = {"SecurityGroupIds": [ids["security_group"]]} if "security_group" in ids else {}
        instance = ec2.run_instances(
            ImageId=_image(ec2.meta.endpoint_url, region, ec2),
            MinCount=1,
            MaxCount=1,
            TagSpecifications=spec("instance", [{"Key": "Name", "Value": name}]),
            **groups,
        )["Instances"][0]
        ids["instance"] = instance["InstanceId"]
    return ids


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
    return {"instance": instances, "parameter": parameters, "key_pair": keys, "security_group": groups}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
