"""The four kinds of resource a session owns: how to find them, how to delete them.

Each kind is one small unit, in the spirit of Cloud Custodian's actions: it
lists with server-side filters (one page at a time), deletes one resource by
the identifier AWS scopes IAM by, treats "already gone" as done, and leaves
throttling to botocore's retry mode. The collector and the launcher's
release both use these units, so there is one deletion code, not two.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from botocore.exceptions import ClientError

from session_naming.name import SessionName
from session_naming.tags import KEEP_TAG, SESSION_TAG, tags_of

PRIVATE_KEY_SUFFIX = "/private-key"
# EC2 filters take at most 200 values; group ids per in-use check stay below.
FILTER_BATCH = 200
NO_TAGS: Mapping[str, str] = MappingProxyType({})


class InUse(Exception):
    """The resource is still used by something else (AWS: DependencyViolation)."""


@dataclass(frozen=True)
class Found:
    """A resource met in a listing, with what the sweep needs to judge it."""

    kind: str
    name: str  # the session name it claims (unparsed text)
    ident: str  # what the delete call takes
    tags: Mapping[str, str] | None = field(default=None, compare=False)  # None: the listing shows no tags

    @property
    def session(self) -> SessionName | None:
        return SessionName.parse(self.name)


def _tag_filters(tags: Mapping[str, str]) -> list[dict]:
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Unknown")


@dataclass(frozen=True)
class Kind:
    """One kind of session resource. ``patterns`` are names, or ``<base>/*`` prefixes."""

    name: str
    service: str
    not_found: frozenset[str]
    batch: int = 1  # resources one delete call can take

    def pages(self, client, patterns: Iterable[str], tags: Mapping[str, str] = NO_TAGS) -> Iterator[list[Found]]:
        raise NotImplementedError

    def delete(self, client, found: Found) -> None:
        raise NotImplementedError

    def delete_batch(self, client, founds: list[Found]) -> set[str]:
        """Delete up to ``batch`` resources in one call; answer the identifiers it deleted."""
        raise NotImplementedError

    def delete_quietly(self, client, found: Found) -> None:
        """Delete; "already gone" is done, a dependency is ``InUse``, anything else raises."""
        try:
            self.delete(client, found)
        except ClientError as error:
            code = _error_code(error)
            if code == "DependencyViolation":
                raise InUse(code) from error
            if code not in self.not_found:
                raise


class _Instances(Kind):
    LIVE_STATES = ("pending", "running", "stopping", "stopped")

    def pages(self, client, patterns, tags=NO_TAGS):
        filters = [
            {"Name": "tag:Name", "Values": list(patterns)},
            {"Name": "instance-state-name", "Values": list(self.LIVE_STATES)},
            *_tag_filters(tags),
        ]
        for page in client.get_paginator("describe_instances").paginate(Filters=filters):
            yield [
                Found(self.name, tags_of(instance).get("Name", ""), instance["InstanceId"], tags_of(instance))
                for reservation in page["Reservations"]
                for instance in reservation["Instances"]
            ]

    def delete(self, client, found):
        client.terminate_instances(InstanceIds=[found.ident])


class _Parameters(Kind):
    def pages(self, client, patterns, tags=NO_TAGS):
        prefixes = [f"/{p[:-1]}" for p in patterns if p.endswith("/*")]
        exact = [f"/{p}{PRIVATE_KEY_SUFFIX}" for p in patterns if not p.endswith("/*")]
        tag_filters = [{"Key": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
        for option, values in (("BeginsWith", prefixes), ("Equals", exact)):
            if not values:
                continue
            filters = [{"Key": "Name", "Option": option, "Values": values}, *tag_filters]
            pages = client.get_paginator("describe_parameters").paginate(
                ParameterFilters=filters,
                PaginationConfig={"PageSize": 50},  # the API's maximum; default is 10
            )
            for page in pages:
                yield [Found(self.name, self.session_of(p["Name"]), p["Name"]) for p in page["Parameters"]]

    @staticmethod
    def session_of(parameter: str) -> str:
        """``/<session>/private-key`` → ``<session>``; anything else stays unparsable."""
        if parameter.startswith("/") and parameter.endswith(PRIVATE_KEY_SUFFIX):
            return parameter[1 : -len(PRIVATE_KEY_SUFFIX)]
        return parameter

    def delete(self, client, found):
        client.delete_parameter(Name=found.ident)

    def delete_batch(self, client, founds):
        answer = client.delete_parameters(Names=[found.ident for found in founds])
        return set(answer.get("DeletedParameters", ()))


class _KeyPairs(Kind):
    def pages(self, client, patterns, tags=NO_TAGS):
        # DescribeKeyPairs does not page: one answer holds every match.
        filters = [{"Name": "key-name", "Values": list(patterns)}, *_tag_filters(tags)]
        answer = client.describe_key_pairs(Filters=filters)
        yield [Found(self.name, k["KeyName"], k["KeyName"], tags_of(k)) for k in answer["KeyPairs"]]

    def delete(self, client, found):
        # By name: moto ignores KeyPairId on delete, and IAM can scope key-pair/<base>/*.
        client.delete_key_pair(KeyName=found.ident)


class _SecurityGroups(Kind):
    def pages(self, client, patterns, tags=NO_TAGS):
        filters = [{"Name": "group-name", "Values": list(patterns)}, *_tag_filters(tags)]
        for page in client.get_paginator("describe_security_groups").paginate(Filters=filters):
            yield [Found(self.name, g["GroupName"], g["GroupId"], tags_of(g)) for g in page["SecurityGroups"]]

    def delete(self, client, found):
        client.delete_security_group(GroupId=found.ident)


INSTANCES = _Instances("instance", "ec2", frozenset({"InvalidInstanceID.NotFound"}))
# DeleteParameters takes ten names: a tenth of the calls against SSM's rate limit.
PARAMETERS = _Parameters("parameter", "ssm", frozenset({"ParameterNotFound"}), batch=10)
KEY_PAIRS = _KeyPairs("key_pair", "ec2", frozenset({"InvalidKeyPair.NotFound"}))
SECURITY_GROUPS = _SecurityGroups(
    "security_group", "ec2", frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"})
)
# Instances first (they hold the groups), groups last (they wait for instances).
ORDER: tuple[Kind, ...] = (INSTANCES, PARAMETERS, KEY_PAIRS, SECURITY_GROUPS)


def groups_in_use(ec2, group_ids: list[str]) -> set[str]:
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
        if found.tags.get(KEEP_TAG, "").lower() == "true":
            return "keep-tag"
        tag = found.tags.get(SESSION_TAG)
        # Key pairs are IAM-scoped by name too, so legacy untagged ones can go.
        if tag is None and found.kind != KEY_PAIRS.name and not sweep_untagged:
            return "untagged-legacy"
        if tag is not None and tag != found.name:
            return "tag-mismatch"
    return None


def kept_sessions(listed: Iterable[Found], ssm, patterns: list[str]) -> set[str]:
    """Sessions with any resource tagged keep: keeping an instance keeps its key and group.

    EC2 listings carry their tags, so ``listed`` answers for them; SSM's
    listing does not, so parameters tagged keep are asked for by tag.
    """
    kept = {f.name for f in listed if f.tags and f.tags.get(KEEP_TAG, "").lower() == "true"}
    for page in PARAMETERS.pages(ssm, patterns, tags={KEEP_TAG: "true"}):
        kept.update(found.name for found in page)
    return kept


def error_code(error: Exception) -> str:
    """The AWS error code of a failure, or the exception's type: never its message."""
    return _error_code(error) if isinstance(error, ClientError) else type(error).__name__
