"""The kinds of resource a session owns: how to find them, how to delete them, and which may go.

Each kind is one small unit, in the spirit of Cloud Custodian's actions: it
lists with server-side filters (one page at a time), deletes one resource by
the identifier AWS scopes IAM by, treats "already gone" as done and "still
used" as ``InUse``, leaves throttling to botocore's retry mode, and declares
the IAM actions it needs, so the template's policy can be checked against
the code that calls them. ``judge`` decides which listed resources may go
and why the others stay; the collector and the launcher's release both use
it and these units, so there is one deletion code and one rule, not two.

Kinds named by their session (key pairs, groups, instances by their ``Name``
tag, parameters by their path) are listed by name. Kinds a session leaves
behind without naming them (volumes, network interfaces, snapshots, AMIs,
Elastic IPs) are listed by their ``ec2-sessions:session`` tag, whose value
is then their name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, overload

from botocore.exceptions import ClientError

from session_naming.name import SessionName, format_expires
from session_naming.tags import EXPIRES_TAG, SESSION_TAG, keeps, tags_of

if TYPE_CHECKING:  # the stubs are a development dependency; the layer never imports them
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient
    from mypy_boto3_ssm import SSMClient


class Clients(Protocol):
    """``clients(service, region)``: the shared client of a service in a region.

    ``session_naming.clients.client`` is one; tests pass moto-backed factories.
    """

    @overload
    def __call__(self, service: Literal["ec2"], region: str, /) -> EC2Client: ...
    @overload
    def __call__(self, service: Literal["ssm"], region: str, /) -> SSMClient: ...
    @overload
    def __call__(
        self, service: Literal["resourcegroupstaggingapi"], region: str, /
    ) -> ResourceGroupsTaggingAPIClient: ...


PRIVATE_KEY_SUFFIX = "/private-key"
RUNNER_CONFIG_SUFFIX = "/runner-jitconfig"
# Every parameter a session may own is /<session><suffix>.
PARAMETER_SUFFIXES = (PRIVATE_KEY_SUFFIX, RUNNER_CONFIG_SUFFIX)
# EC2 filters take at most 200 values; group ids per in-use check stay below.
FILTER_BATCH = 200
# The Resource Groups Tagging API answers at most 100 resources a page.
TAGGING_PAGE = 100
TAGGING: Final = "resourcegroupstaggingapi"
NO_TAGS: Mapping[str, str] = MappingProxyType({})
READ_PREFIXES = ("Describe", "Get", "List")
HOLDINGS_GONE = frozenset({"InvalidVolume.NotFound", "InvalidNetworkInterfaceID.NotFound"})


class InUse(Exception):
    """The resource is still used by something else (DependencyViolation, VolumeInUse, ...)."""


@dataclass(frozen=True)
class Found:
    """A resource met in a listing, with what judging and deleting it needs."""

    kind: str
    name: str  # the session name it claims (unparsed text): its name, or its session tag's value
    ident: str  # what the delete call takes
    tags: Mapping[str, str] | None = field(default=None, compare=False)  # None: the listing shows no tags
    in_use: bool = field(default=False, compare=False)  # the listing shows it in use (an associated address)
    uses: tuple[str, ...] = field(default=(), compare=False)  # an AMI's snapshots
    facts: Mapping[str, Any] | None = field(default=None, compare=False)  # an instance's type, market, launch

    @property
    def session(self) -> SessionName | None:
        return SessionName.parse(self.name)


def _tag_filters(tags: Mapping[str, str]) -> list[FilterTypeDef]:
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]


def _session_tag_filter(patterns: Iterable[str]) -> FilterTypeDef:
    """EC2 tag filters take ``*`` wildcards: ``<base>/*`` lists a base, an exact name one session."""
    return {"Name": f"tag:{SESSION_TAG}", "Values": list(patterns)}


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Unknown")


@dataclass(frozen=True)
class Kind[C]:
    """One kind of session resource. ``patterns`` are names, or ``<base>/*`` prefixes.

    ``C`` is the type of its service's client (``EC2Client``, ``SSMClient``).

    ``permissions`` are the IAM actions the unit calls (listing and
    deleting); ``scope`` says how the template must scope its deletes: by
    the ``session`` tag, or by name (``<base>/*`` in the resource ARN).
    """

    name: str
    service: str
    not_found: frozenset[str]
    permissions: frozenset[str]
    scope: str = "session-tag"  # or "name"
    in_use_codes: frozenset[str] = frozenset({"DependencyViolation"})
    batch: int = 1  # resources one delete call can take

    def client(self, clients: Clients, region: str) -> C:
        """Its service's client in ``region``: ``clients(self.service, region)``."""
        raise NotImplementedError

    def pages(self, client: C, patterns: list[str]) -> Iterator[list[Found]]:
        raise NotImplementedError

    def listing(self, clients: Clients, region: str, patterns: Iterable[str]) -> list[Found]:
        """Every match, to the listing's end: judging a session needs all of its resources."""
        return [found for page in self.pages(self.client(clients, region), list(patterns)) for found in page]

    def delete(self, client: C, found: Found) -> None:
        raise NotImplementedError

    def delete_batch(self, client: C, founds: list[Found]) -> set[str]:
        """Delete up to ``batch`` resources in one call; answer the identifiers it deleted."""
        raise NotImplementedError

    def delete_quietly(self, client: C, found: Found) -> None:
        """Delete; "already gone" is done, "still used" is ``InUse``, anything else raises.

        A resource its listing showed in use (an associated address) is ``InUse``
        without a call: EC2's mutating calls are the scarce ones, and moto
        releases an associated Elastic IP where AWS refuses.
        """
        if found.in_use:
            raise InUse("in use when listed")
        try:
            self.delete(client, found)
        except ClientError as error:
            code = _error_code(error)
            if code in self.in_use_codes:
                raise InUse(code) from error
            if code not in self.not_found:
                raise

    @property
    def deletes(self) -> frozenset[str]:
        """The mutating actions among ``permissions``: what IAM must scope."""
        return frozenset(a for a in self.permissions if not a.split(":", 1)[1].startswith(READ_PREFIXES))


def _by_tag(
    kind: str,
    ident: str,
    resource: Mapping[str, Any],
    *,
    in_use: bool = False,
    uses: tuple[str, ...] = (),
    facts: Mapping[str, Any] | None = None,
) -> Found:
    tags = tags_of(resource)
    return Found(kind, tags.get(SESSION_TAG, ""), ident, tags, in_use=in_use, uses=uses, facts=facts)


class _Ec2Kind(Kind["EC2Client"]):
    def client(self, clients: Clients, region: str) -> EC2Client:
        return clients("ec2", region)


class _SsmKind(Kind["SSMClient"]):
    def client(self, clients: Clients, region: str) -> SSMClient:
        return clients("ssm", region)


class _Instances(_Ec2Kind):
    LIVE_STATES = ("pending", "running", "stopping", "stopped")

    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        filters: list[FilterTypeDef] = [
            {"Name": "tag:Name", "Values": list(patterns)},
            {"Name": "instance-state-name", "Values": list(self.LIVE_STATES)},
        ]
        for page in client.get_paginator("describe_instances").paginate(Filters=filters):
            yield [
                Found(
                    self.name,
                    tags_of(instance).get("Name", ""),
                    instance["InstanceId"],
                    tags_of(instance),
                    facts={
                        "instance_type": instance.get("InstanceType", "unknown"),
                        "market": "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
                        "launched": instance.get("LaunchTime"),
                    },
                )
                for reservation in page["Reservations"]
                for instance in reservation["Instances"]
            ]

    def delete(self, client: EC2Client, found: Found) -> None:
        tag_holdings(client, found)
        client.terminate_instances(InstanceIds=[found.ident])


def tag_holdings(client: EC2Client, found: Found) -> None:
    """Tag what the instance made and no session claims (a volume a test created and attached, an interface a
    template added) with the instance's session, before it ends: nothing a session leaves is ever untagged.

    Two reads, and one write only when something lacks the tag. Left as
    they are: what another session's tag names, a volume older than the
    instance or attached to several (someone else's, lent to it), an
    interface another service manages. Tagging never stops the terminate:
    a failure here only leaves that resource untagged, as before.
    """
    session = found.session
    if session is None:
        return
    launched = (found.facts or {}).get("launched")
    attached: list[FilterTypeDef] = [{"Name": "attachment.instance-id", "Values": [found.ident]}]
    try:
        volumes = client.describe_volumes(Filters=attached)["Volumes"]
        interfaces = client.describe_network_interfaces(Filters=attached)["NetworkInterfaces"]
        held = [
            v["VolumeId"]
            for v in volumes
            if SESSION_TAG not in tags_of(v)
            and not v.get("MultiAttachEnabled")
            and not (isinstance(launched, datetime) and v.get("CreateTime", launched) < launched)
        ]
        held += [
            i["NetworkInterfaceId"]
            for i in interfaces
            if SESSION_TAG not in tags_of({"Tags": i.get("TagSet")}) and not i.get("RequesterManaged")
        ]
        if held:
            tags = [{"Key": k, "Value": v} for k, v in holding_tags(session).items()]
            client.create_tags(Resources=held, Tags=tags)  # type: ignore[arg-type]
    except ClientError as error:
        if _error_code(error) not in HOLDINGS_GONE:  # "deleted meanwhile" is done; anything else is worth a word
            logging.getLogger(__name__).warning(
                "what an ending instance holds was not tagged: %s (%s)", found.ident, _error_code(error)
            )


def holding_tags(session: SessionName) -> dict[str, str]:
    return {SESSION_TAG: str(session), EXPIRES_TAG: format_expires(session.expires)}


def instance_cost(found: Found, now: datetime) -> dict[str, Any] | None:
    """An ended instance's seconds, type and market, from its listing; ``None`` when the listing has no launch time."""
    facts = found.facts or {}
    launched = facts.get("launched")
    if not isinstance(launched, datetime):
        return None
    seconds = max(0.0, (now - launched).total_seconds())
    return {"instance_type": facts.get("instance_type", "unknown"), "market": facts.get("market"), "seconds": seconds}


class _LaunchTemplates(_Ec2Kind):
    """A session's own launch template, which the launcher deletes once its fleet has answered: one a crash
    left behind is swept like any kind (by name ``<base>/*``, judged by its tags)."""

    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        filters: list[FilterTypeDef] = [{"Name": "launch-template-name", "Values": list(patterns)}]
        for page in client.get_paginator("describe_launch_templates").paginate(Filters=filters):
            yield [
                Found(self.name, t["LaunchTemplateName"], t["LaunchTemplateId"], tags_of(t))
                for t in page["LaunchTemplates"]
            ]

    def delete(self, client: EC2Client, found: Found) -> None:
        client.delete_launch_template(LaunchTemplateId=found.ident)


class _Parameters(_SsmKind):
    def pages(self, client: SSMClient, patterns: list[str]) -> Iterator[list[Found]]:
        prefixes = [f"/{p[:-1]}" for p in patterns if p.endswith("/*")]
        exact = [f"/{p}{suffix}" for p in patterns if not p.endswith("/*") for suffix in PARAMETER_SUFFIXES]
        for option, values in (("BeginsWith", prefixes), ("Equals", exact)):
            if not values:
                continue
            pages = client.get_paginator("describe_parameters").paginate(
                ParameterFilters=[{"Key": "Name", "Option": option, "Values": values}],
                PaginationConfig={"PageSize": 50},  # the API's maximum; default is 10
            )
            for page in pages:
                yield [Found(self.name, self.session_of(p["Name"]), p["Name"]) for p in page["Parameters"]]

    def listing(self, clients: Clients, region: str, patterns: Iterable[str]) -> list[Found]:
        """The parameters with their tags: SSM's listing shows none, so ask the tagging API.

        One ``GetResources`` page answers a hundred parameters' tags, where
        ``ListTagsForResource`` would cost a call each. Only parameters ever
        tagged are in its answer: one that is not has no tags.
        """
        found = super().listing(clients, region, patterns)
        if not found:
            return found
        tags = parameter_tags(clients(TAGGING, region), wanted={f.ident for f in found})
        return [replace(f, tags=tags.get(f.ident, NO_TAGS)) for f in found]

    @staticmethod
    def session_of(parameter: str) -> str:
        """``/<session>/private-key`` or ``/<session>/runner-jitconfig`` → ``<session>``; anything else
        stays itself (and so unparsable)."""
        for suffix in PARAMETER_SUFFIXES:
            if parameter.startswith("/") and parameter.endswith(suffix):
                return parameter[1 : -len(suffix)]
        return parameter

    def delete(self, client: SSMClient, found: Found) -> None:
        client.delete_parameter(Name=found.ident)

    def delete_batch(self, client: SSMClient, founds: list[Found]) -> set[str]:
        answer = client.delete_parameters(Names=[found.ident for found in founds])
        return set(answer.get("DeletedParameters", ()))


def parameter_tags(
    tagging: ResourceGroupsTaggingAPIClient, wanted: set[str] | None = None
) -> dict[str, dict[str, str]]:
    """The tags of every tagged SSM parameter of the region (or of those ``wanted``), by name: pages of 100.

    The API answers by resource type, not by path, so it pages through the
    region's other tagged parameters too; only the wanted ones are held.
    """
    tags: dict[str, dict[str, str]] = {}
    pages = tagging.get_paginator("get_resources").paginate(
        ResourceTypeFilters=["ssm:parameter"], PaginationConfig={"PageSize": TAGGING_PAGE}
    )
    for page in pages:
        for mapping in page["ResourceTagMappingList"]:
            # arn:<partition>:ssm:<region>:<account>:parameter/<name without its leading "/">
            resource = mapping["ResourceARN"].split(":", 5)[-1]
            name = "/" + resource.removeprefix("parameter/")
            if resource.startswith("parameter/") and (wanted is None or name in wanted):
                tags[name] = tags_of(mapping)
    return tags


class _KeyPairs(_Ec2Kind):
    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        # DescribeKeyPairs does not page: one answer holds every match.
        answer = client.describe_key_pairs(Filters=[{"Name": "key-name", "Values": list(patterns)}])
        yield [Found(self.name, k["KeyName"], k["KeyName"], tags_of(k)) for k in answer["KeyPairs"]]

    def delete(self, client: EC2Client, found: Found) -> None:
        # By name: moto ignores KeyPairId on delete, and IAM can scope key-pair/<base>/*.
        client.delete_key_pair(KeyName=found.ident)


class _SecurityGroups(_Ec2Kind):
    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        filters: list[FilterTypeDef] = [{"Name": "group-name", "Values": list(patterns)}]
        for page in client.get_paginator("describe_security_groups").paginate(Filters=filters):
            yield [Found(self.name, g["GroupName"], g["GroupId"], tags_of(g)) for g in page["SecurityGroups"]]

    def delete(self, client: EC2Client, found: Found) -> None:
        client.delete_security_group(GroupId=found.ident)


class _Volumes(_Ec2Kind):
    """EBS volumes an instance left (``DeleteOnTermination: false``) or a test made.

    Only ``available`` ones are listed: an attached volume, a live
    instance's root volume among them, is not the collector's until it is
    detached; one attached between listing and delete answers ``VolumeInUse``.
    """

    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        filters: list[FilterTypeDef] = [_session_tag_filter(patterns), {"Name": "status", "Values": ["available"]}]
        for page in client.get_paginator("describe_volumes").paginate(Filters=filters):
            yield [_by_tag(self.name, v["VolumeId"], v, facts={"gib": v.get("Size", 0)}) for v in page["Volumes"]]

    def delete(self, client: EC2Client, found: Found) -> None:
        client.delete_volume(VolumeId=found.ident)


class _NetworkInterfaces(_Ec2Kind):
    """Interfaces in status ``available``, as volumes: an attached one is its instance's."""

    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        filters: list[FilterTypeDef] = [_session_tag_filter(patterns), {"Name": "status", "Values": ["available"]}]
        for page in client.get_paginator("describe_network_interfaces").paginate(Filters=filters):
            # An interface's tags are its TagSet.
            yield [
                _by_tag(self.name, i["NetworkInterfaceId"], {"Tags": i.get("TagSet")})
                for i in page["NetworkInterfaces"]
            ]

    def delete(self, client: EC2Client, found: Found) -> None:
        client.delete_network_interface(NetworkInterfaceId=found.ident)


class _Images(_Ec2Kind):
    """AMIs: deregistered. Their snapshots, tagged with the session, are the snapshot unit's,
    which runs after this one; ``uses`` lets the sweep see which snapshots an AMI still holds."""

    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        pages = client.get_paginator("describe_images").paginate(
            Owners=["self"], Filters=[_session_tag_filter(patterns)]
        )
        for page in pages:
            yield [
                _by_tag(
                    self.name,
                    image["ImageId"],
                    image,
                    uses=tuple(
                        m["Ebs"]["SnapshotId"]
                        for m in image.get("BlockDeviceMappings", ())
                        if m.get("Ebs", {}).get("SnapshotId")
                    ),
                )
                for image in page["Images"]
            ]

    def delete(self, client: EC2Client, found: Found) -> None:
        client.deregister_image(ImageId=found.ident)


class _Snapshots(_Ec2Kind):
    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        # OwnerIds=self: a public snapshot of another account may carry any tag. (moto ignores
        # it and answers the public AMIs' snapshots too; the tag filter keeps them out.)
        pages = client.get_paginator("describe_snapshots").paginate(
            OwnerIds=["self"], Filters=[_session_tag_filter(patterns)]
        )
        for page in pages:
            yield [
                _by_tag(self.name, s["SnapshotId"], s, facts={"gib": s.get("VolumeSize", 0)}) for s in page["Snapshots"]
            ]

    def delete(self, client: EC2Client, found: Found) -> None:
        client.delete_snapshot(SnapshotId=found.ident)


class _Addresses(_Ec2Kind):
    def pages(self, client: EC2Client, patterns: list[str]) -> Iterator[list[Found]]:
        # DescribeAddresses does not page. EC2-Classic addresses (no AllocationId) are gone from AWS.
        answer = client.describe_addresses(Filters=[_session_tag_filter(patterns)])
        yield [
            _by_tag(self.name, a["AllocationId"], a, in_use=bool(a.get("AssociationId")))
            for a in answer["Addresses"]
            if a.get("AllocationId")
        ]

    def delete(self, client: EC2Client, found: Found) -> None:
        client.release_address(AllocationId=found.ident)


def _actions(*actions: str) -> frozenset[str]:
    return frozenset(actions)


INSTANCES = _Instances(
    "instance",
    "ec2",
    frozenset({"InvalidInstanceID.NotFound"}),
    # Before a terminate: what the instance holds is read, and tagged where no session claims it.
    _actions(
        "ec2:DescribeInstances",
        "ec2:DescribeVolumes",
        "ec2:DescribeNetworkInterfaces",
        "ec2:CreateTags",
        "ec2:TerminateInstances",
    ),
)
LAUNCH_TEMPLATES = _LaunchTemplates(
    "launch_template",
    "ec2",
    frozenset({"InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFoundException"}),
    _actions("ec2:DescribeLaunchTemplates", "ec2:DeleteLaunchTemplate"),
)
# DeleteParameters takes ten names: a tenth of the calls against SSM's rate limit.
PARAMETERS = _Parameters(
    "parameter",
    "ssm",
    frozenset({"ParameterNotFound"}),
    _actions("ssm:DescribeParameters", "tag:GetResources", "ssm:DeleteParameter", "ssm:DeleteParameters"),
    scope="name",
    batch=10,
)
KEY_PAIRS = _KeyPairs(
    "key_pair",
    "ec2",
    frozenset({"InvalidKeyPair.NotFound"}),
    _actions("ec2:DescribeKeyPairs", "ec2:DeleteKeyPair"),
    scope="name",
)
SECURITY_GROUPS = _SecurityGroups(
    "security_group",
    "ec2",
    frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"}),
    # DescribeNetworkInterfaces: the in-use check before deleting (groups_in_use).
    _actions("ec2:DescribeSecurityGroups", "ec2:DescribeNetworkInterfaces", "ec2:DeleteSecurityGroup"),
)
VOLUMES = _Volumes(
    "volume",
    "ec2",
    frozenset({"InvalidVolume.NotFound"}),
    _actions("ec2:DescribeVolumes", "ec2:DeleteVolume"),
    in_use_codes=frozenset({"VolumeInUse"}),
)
NETWORK_INTERFACES = _NetworkInterfaces(
    "network_interface",
    "ec2",
    frozenset({"InvalidNetworkInterfaceID.NotFound"}),
    _actions("ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"),
    in_use_codes=frozenset({"InvalidNetworkInterface.InUse", "DependencyViolation"}),
)
IMAGES = _Images(
    "image",
    "ec2",
    # Unavailable: deregistered a moment ago (by a release, another run).
    frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"}),
    _actions("ec2:DescribeImages", "ec2:DeregisterImage"),
)
SNAPSHOTS = _Snapshots(
    "snapshot",
    "ec2",
    frozenset({"InvalidSnapshot.NotFound"}),
    _actions("ec2:DescribeSnapshots", "ec2:DeleteSnapshot"),
    in_use_codes=frozenset({"InvalidSnapshot.InUse"}),
)
ADDRESSES = _Addresses(
    "address",
    "ec2",
    frozenset({"InvalidAllocationID.NotFound"}),
    _actions("ec2:DescribeAddresses", "ec2:ReleaseAddress"),
    in_use_codes=frozenset({"InvalidIPAddress.InUse"}),
)
# Instances first: they hold volumes, interfaces, addresses and groups. AMIs before the
# snapshots they use. Interfaces before groups, which go last: they wait for everything.
ORDER: tuple[Kind[Any], ...] = (
    INSTANCES,
    LAUNCH_TEMPLATES,
    PARAMETERS,
    KEY_PAIRS,
    VOLUMES,
    NETWORK_INTERFACES,
    IMAGES,
    SNAPSHOTS,
    ADDRESSES,
    SECURITY_GROUPS,
)
KINDS: Mapping[str, Kind[Any]] = MappingProxyType({kind.name: kind for kind in ORDER})


def groups_in_use(ec2: EC2Client, group_ids: list[str]) -> set[str]:
    """The groups some network interface still uses: one non-mutating call per batch.

    Deleting such a group would only spend a mutating call on a
    DependencyViolation, and EC2's mutating bucket is the scarce one.
    """
    busy: set[str] = set()
    wanted = set(group_ids)
    for start in range(0, len(group_ids), FILTER_BATCH):
        batch = group_ids[start : start + FILTER_BATCH]
        paginator = ec2.get_paginator("describe_network_interfaces")
        for page in paginator.paginate(Filters=[{"Name": "group-id", "Values": batch}]):
            for interface in page["NetworkInterfaces"]:
                busy.update(g["GroupId"] for g in interface.get("Groups", ()) if g["GroupId"] in wanted)
    return busy


def refusal(found: Found, bases: Iterable[str], sweep_untagged: bool = False) -> str | None:
    """Why this resource must not be deleted whatever its expiry, or ``None``.

    The answer depends only on the resource: its name must parse, its base
    must be owned, it must carry the session tag naming itself (IAM scopes
    deletes by that tag, so an untagged legacy resource would only fail),
    and no operator may have tagged it keep.
    """
    session = found.session
    if session is None:
        return "unparsable"
    if session.base not in tuple(bases):
        return "other-base"
    if found.tags is not None:
        if keeps(found.tags):
            return "keep-tag"
        tag = found.tags.get(SESSION_TAG)
        # Key pairs are IAM-scoped by name too, so legacy untagged ones can go.
        if tag is None and found.kind != KEY_PAIRS.name and not sweep_untagged:
            return "untagged-legacy"
        if tag is not None and tag != found.name:
            return "tag-mismatch"
    return None


@dataclass
class Verdicts:
    """What ``judge`` decided: what may go (expiry aside), what stays and why, what could not be judged."""

    deletable: list[Found] = field(default_factory=list)
    kept: list[tuple[Found, str]] = field(default_factory=list)  # (resource, reason)
    failed: list[tuple[Found, str]] = field(default_factory=list)  # (resource, error code)


def kept_sessions(listed: Iterable[Found]) -> tuple[set[str], dict[int, str]]:
    """The sessions some listed resource keeps, and the resources whose tags could not be read (by ``id``).

    A resource tagged keep, in any letter case and of any kind, keeps the
    session it claims by name and the one its tag names, if another. One
    whose tags cannot be read cannot prove its session is not kept: its
    session is kept too, and the resource itself fails.
    """
    kept: set[str] = set()
    unreadable: dict[int, str] = {}  # id(found) -> error code
    for found in listed:
        try:
            tags = found.tags
            if tags is not None and keeps(tags):
                kept.update(s for s in (found.name, tags.get(SESSION_TAG)) if s)
        except Exception as error:
            unreadable[id(found)] = error_code(error)
            kept.add(found.name)
    return kept, unreadable


def judge(
    listed: Iterable[Found], bases: Iterable[str], sweep_untagged: bool = False, kept_elsewhere: Iterable[str] = ()
) -> Verdicts:
    """Split a listing into what may be deleted and what is kept, with why: one rule for sweep and release.

    A session with a resource tagged keep, here or in ``kept_elsewhere``
    (the sessions other regions' listings keep), is kept whole. Expiry is
    left to the caller (a release ignores it). A resource whose judging
    raises is that resource's failure alone, never the listing's.
    """
    listed = list(listed)
    bases = tuple(bases)
    kept_here, unreadable = kept_sessions(listed)
    kept_sessions_all = kept_here | set(kept_elsewhere)
    verdicts = Verdicts()
    for found in listed:
        if id(found) in unreadable:
            verdicts.failed.append((found, unreadable[id(found)]))
            continue
        try:
            reason = refusal(found, bases, sweep_untagged)
            if reason is None and found.name in kept_sessions_all:
                reason = "keep-tag"
        except Exception as error:  # one odd resource must not stop the judging of the others
            verdicts.failed.append((found, error_code(error)))
            continue
        if reason:
            verdicts.kept.append((found, reason))
        else:
            verdicts.deletable.append(found)
    return verdicts


def session_resources(
    clients: Clients, regions: Iterable[str], name: SessionName, bases: Iterable[str]
) -> tuple[dict[str, list[Found]], list[dict[str, str]]]:
    """Everything of one session in every region, split into what may be deleted (by region) and what is kept.

    The launcher's release: every kind is listed for this one session (by
    name, by ``Name`` tag, by path or by session tag) in every region the
    stack works in, before anything is deleted, and judged by the sweep's own
    rule: a keep tag on any resource, a parameter included, in any letter
    case and in any region, keeps the whole session here as in a sweep.
    """
    listed = {region: [f for kind in ORDER for f in kind.listing(clients, region, [name])] for region in regions}
    verdicts = judge([f for founds in listed.values() for f in founds], bases)
    may_go = {id(found) for found in verdicts.deletable}
    deletable = {region: [f for f in founds if id(f) in may_go] for region, founds in listed.items()}
    kept = [{"kind": f.kind, "id": f.ident, "reason": reason} for f, reason in verdicts.kept]
    kept += [{"kind": f.kind, "id": f.ident, "reason": "unjudged", "error": code} for f, code in verdicts.failed]
    return {region: founds for region, founds in deletable.items() if founds}, kept


def error_code(error: Exception) -> str:
    """The AWS error code of a failure, or the exception's type: never its message."""
    return _error_code(error) if isinstance(error, ClientError) else type(error).__name__
