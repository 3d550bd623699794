"""Create and release sessions: the launcher's domain, free of HTTP.

Functions take their clients (``clients(service, region)``), settings and
clock. A create either answers the whole session or deletes what it made
and raises ``LaunchFailed``; anything a crash leaves behind is already named
and tagged, so the collector removes it at expiry. Release uses the layer's
deletion units, the very code the collector runs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from session_naming import GITHUB_JOB_TAG, SessionName, session_tags, tag_specifications
from session_naming.resources import (
    KEY_PAIRS,
    ORDER,
    PARAMETERS,
    PRIVATE_KEY_SUFFIX,
    SECURITY_GROUPS,
    Found,
    InUse,
    error_code,
    refusal,
)
from session_naming.settings import LauncherSettings
from webhook import NotFound, TooManySessions

SSH = 22


class LaunchFailed(Exception):
    """A create failed half-way and was rolled back; ``code`` is the AWS error code only."""

    def __init__(self, code: str, left: list[str]):
        super().__init__(code)
        self.code, self.left = code, left


def live_sessions(ec2, base: str, now: datetime, besides: str) -> int:
    """Live sessions of ``base`` other than ``besides``: one per key pair (every session has exactly one)."""
    answer = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"{base}/*"]}])
    names = (SessionName.parse(k["KeyName"]) for k in answer["KeyPairs"] if k["KeyName"] != besides)
    return sum(1 for name in names if name is not None and not name.is_expired(now, timedelta(0)))


def create_session(
    clients,
    settings: LauncherSettings,
    base: str,
    lifetime: timedelta,
    now: datetime,
    *,
    public_key: str | None = None,
    ingress_cidrs: tuple[str, ...] = (),
    instance: bool = False,
    extra_tags: dict[str, str] | None = None,
    retry_of: str | None = None,
) -> dict:
    """Make a session's resources, or none of them.

    The live-session count runs beside the key pair and group rather than
    before them: a round trip less on every create (bench/, issue 6). The
    instance, the costly part, starts only once the count has allowed it. A
    create that finds the base full rolls back and tries once more, counting
    first: two creates racing for the last slot would otherwise each count
    the other's half-made session and both refuse. ``retry_of`` names the
    rolled-back attempt, which the retry does not count (its rollback may
    have failed, or EC2's listing may lag behind the delete).
    """
    ec2, ssm = clients("ec2", settings.region), clients("ssm", settings.region)
    if retry_of and live_sessions(ec2, base, now, besides=retry_of) >= settings.max_live_sessions:
        raise TooManySessions(
            f"base {base!r} has {settings.max_live_sessions} live sessions (MAX_LIVE_SESSIONS): release one first"
        )
    name = SessionName.make(base, lifetime, now)
    made: list[Found] = []

    def key_pair() -> dict:
        spec = tag_specifications(name, ["key-pair"], extra_tags)
        if public_key:
            answer = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public_key.encode(), TagSpecifications=spec)
            made.append(Found(KEY_PAIRS.name, name, name))
            return {"name": name, "id": answer["KeyPairId"], "parameter": None}
        answer = ec2.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=spec)
        made.append(Found(KEY_PAIRS.name, name, name))
        parameter = f"/{name}{PRIVATE_KEY_SUFFIX}"
        ssm.put_parameter(
            Name=parameter,
            Value=answer.pop("KeyMaterial"),
            Type="SecureString",
            Description="private key of an ec2-sessions key pair",
            Tags=session_tags(name, extra_tags),
        )
        made.append(Found(PARAMETERS.name, name, parameter))
        return {"name": name, "id": answer["KeyPairId"], "parameter": parameter}

    def security_group() -> dict:
        vpc = {"VpcId": settings.vpc_id} if settings.vpc_id else {}
        group = ec2.create_security_group(
            GroupName=name,
            Description="ec2-sessions session",
            TagSpecifications=tag_specifications(name, ["security-group"], extra_tags),
            **vpc,
        )["GroupId"]
        made.append(Found(SECURITY_GROUPS.name, name, group))
        if ingress_cidrs:
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[ssh_from(ingress_cidrs)])
        return {"name": name, "id": group}

    instances = []
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:  # none waits for another
            others = None if retry_of else pool.submit(live_sessions, ec2, base, now, name)
            key_future, group_future = pool.submit(key_pair), pool.submit(security_group)
        key, group = key_future.result(), group_future.result()
        full = others is not None and others.result() >= settings.max_live_sessions
        if instance and not full:
            instances = [run_instance(ec2, settings, name, group["id"], extra_tags, made)]
    except Exception as error:
        raise LaunchFailed(error_code(error), rollback(clients, settings.region, made)) from error
    if full:
        rollback(clients, settings.region, made)  # what escapes is tagged: the collector's at expiry
        again = dict(public_key=public_key, ingress_cidrs=ingress_cidrs, instance=instance, extra_tags=extra_tags)
        return create_session(clients, settings, base, lifetime, now, **again, retry_of=name)
    return {
        "session": name,
        "expires_at": name.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "key_pair": {"name": key["name"], "id": key["id"]},
        "security_group": group,
        "instances": instances,
        "private_key_parameter": key["parameter"],
    }


def ssh_from(cidrs) -> dict:
    v4 = [{"CidrIp": c, "Description": "ec2-sessions"} for c in cidrs if ":" not in c]
    v6 = [{"CidrIpv6": c, "Description": "ec2-sessions"} for c in cidrs if ":" in c]
    return {"IpProtocol": "tcp", "FromPort": SSH, "ToPort": SSH, "IpRanges": v4, "Ipv6Ranges": v6}


def run_instance(ec2, settings, name, group_id, extra_tags, made) -> dict:
    tags = tag_specifications(name, ["instance", "volume"], extra_tags)
    tags[0]["Tags"].append({"Key": "Name", "Value": name})
    answer = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": settings.launch_template_id},
        MinCount=1,
        MaxCount=1,
        KeyName=name,
        SecurityGroupIds=[group_id],
        InstanceInitiatedShutdownBehavior="terminate",
        TagSpecifications=tags,
    )["Instances"][0]
    made.append(Found("instance", name, answer["InstanceId"]))
    return {"id": answer["InstanceId"], "state": answer["State"]["Name"], "private_ip": answer.get("PrivateIpAddress")}


def delete_found(clients, region: str, found: list[Found]) -> dict:
    """Delete ``found`` in the collector's order with its deletion units; report by kind."""
    report = {"deleted": {}, "left_to_collector": [], "failed": []}
    for kind in ORDER:
        client = clients(kind.service, region)
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


def rollback(clients, region: str, made: list[Found]) -> list[str]:
    """Delete what a failed create made; answer what is left for the collector."""
    report = delete_found(clients, region, made)
    return [item["id"] for item in report["left_to_collector"] + report["failed"]]


def session_resources(clients, region: str, name: SessionName, bases) -> tuple[list[Found], list[dict]]:
    """Everything of one session, split into what may be deleted and what is kept (with why)."""
    deletable, kept = [], []
    for kind in ORDER:
        for page in kind.pages(clients(kind.service, region), [name]):
            for found in page:
                reason = refusal(found, bases)
                if reason:
                    kept.append({"kind": kind.name, "id": found.ident, "reason": reason})
                else:
                    deletable.append(found)
    if any(k["reason"] == "keep-tag" for k in kept):  # keeping one resource keeps the session, as in a sweep
        kept += [{"kind": f.kind, "id": f.ident, "reason": "keep-tag"} for f in deletable]
        deletable = []
    return deletable, kept


def release_session(clients, settings: LauncherSettings, name: SessionName) -> dict:
    deletable, kept = session_resources(clients, settings.region, name, settings.session_bases)
    if not deletable and not kept:
        raise NotFound(f"session {name} has no resources in {settings.region}")
    report = delete_found(clients, settings.region, deletable)
    report["kept"] = kept
    if report["left_to_collector"]:
        report["note"] = "a group still used by a terminating instance is left to the collector's next run"
    return {"session": name, **report}


def find_github_session(clients, settings: LauncherSettings, job_id: int) -> SessionName | None:
    """The session made for a GitHub job, found by its tag on the key pair."""
    answer = clients("ec2", settings.region).describe_key_pairs(
        Filters=[{"Name": f"tag:{GITHUB_JOB_TAG}", "Values": [str(job_id)]}]
    )
    for key in answer["KeyPairs"]:
        name = SessionName.parse(key["KeyName"])
        if name is not None and name.base in settings.session_bases:
            return name
    return None
