"""Keep a session (or stop keeping it): the keep tag on every resource it owns, of every kind, in every region.

What a session owns is what its name or its session tag names, in any
state: the collector's listings of volumes and network interfaces show only
detached ones (an attached one is not the collector's to delete until its
instance lets it go), but the session's launch template tags its instance's
volumes and interfaces at creation, and those are kept with the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from session_naming import KEEP_TAG, SESSION_TAG, SessionName
from session_naming.resources import KEY_PAIRS, NETWORK_INTERFACES, ORDER, VOLUMES, Clients, Kind

from ec2_sessions import Refused

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import FilterTypeDef


def set_keep(client: Clients, regions: Iterable[str], name: SessionName, keep: bool) -> dict[str, int]:
    """Tag (or untag) every resource of the session, of every kind, in every region; answer how many, by kind."""
    tagged: dict[str, int] = {}
    for region in regions:
        for kind in ORDER:
            found = owned(client, region, kind, name)
            if not found:
                continue
            if kind.service == "ssm":
                ssm = client("ssm", region)
                for parameter in found:
                    if keep:
                        ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=parameter, Tags=[_keep_tag()])
                    else:
                        ssm.remove_tags_from_resource(
                            ResourceType="Parameter", ResourceId=parameter, TagKeys=[KEEP_TAG]
                        )
            else:
                ec2 = client("ec2", region)
                ids = _ec2_ids(ec2, kind.name, found)
                if keep:
                    ec2.create_tags(Resources=ids, Tags=[_keep_tag()])
                else:
                    ec2.delete_tags(Resources=ids, Tags=[{"Key": KEEP_TAG}])
            tagged[kind.name] = tagged.get(kind.name, 0) + len(found)
    if not tagged:
        raise Refused(f"session {name} has no resources in {', '.join(regions)}: check its name and --regions")
    return tagged


def owned(client: Clients, region: str, kind: Kind[Any], name: SessionName) -> list[str]:
    """The identifiers of the session's resources of ``kind`` in ``region``, in any state.

    The deletion units list volumes and interfaces only once detached; here
    they are listed by their session tag whatever their state.
    """
    if kind.name not in (VOLUMES.name, NETWORK_INTERFACES.name):
        return [found.ident for found in kind.listing(client, region, [name])]
    ec2 = client("ec2", region)
    by_tag: list[FilterTypeDef] = [{"Name": f"tag:{SESSION_TAG}", "Values": [str(name)]}]
    if kind.name == VOLUMES.name:
        volumes = ec2.get_paginator("describe_volumes").paginate(Filters=by_tag)
        return [volume["VolumeId"] for page in volumes for volume in page["Volumes"]]
    interfaces = ec2.get_paginator("describe_network_interfaces").paginate(Filters=by_tag)
    return [interface["NetworkInterfaceId"] for page in interfaces for interface in page["NetworkInterfaces"]]


def _keep_tag() -> Any:
    """``ec2-sessions:keep=true`` in the shape EC2's and SSM's tagging calls both take."""
    return {"Key": KEEP_TAG, "Value": "true"}


def _ec2_ids(ec2: Any, kind: str, idents: list[str]) -> list[str]:
    """What CreateTags takes: the deletion units name key pairs by name, tags want their ``key-...`` id."""
    if kind != KEY_PAIRS.name:
        return idents
    return [pair["KeyPairId"] for pair in ec2.describe_key_pairs(KeyNames=idents)["KeyPairs"]]
