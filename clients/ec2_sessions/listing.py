"""The live sessions of some bases, as an operator sees them: what their resources say, over kinds and regions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from session_naming import GITHUB_JOB_TAG, GITLAB_JOB_TAG, KEEP_TAG, PROFILE_TAG, SessionName
from session_naming.resources import INSTANCES, KEY_PAIRS, ORDER, SECURITY_GROUPS, Clients, Found, kept_sessions

from ec2_sessions.summary import table

# The kinds every create makes at once: a session with none of them left has been released.
LIVE_KINDS = frozenset({KEY_PAIRS.name, SECURITY_GROUPS.name, INSTANCES.name})


@dataclass
class Session:
    """One session as an operator sees it: what its resources say, merged over kinds and regions."""

    name: SessionName
    regions: set[str] = field(default_factory=set)
    tags: dict[str, str] = field(default_factory=dict)
    instances: list[dict[str, str]] = field(default_factory=list)
    live: bool = False
    kept: bool = False

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "session": str(self.name),
            "base": self.name.base,
            "expires_at": self.name.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expired": self.name.is_expired(now),
            "regions": sorted(self.regions),
            "profile": self.tags.get(PROFILE_TAG),
            "github_job": self.tags.get(GITHUB_JOB_TAG),
            "gitlab_job": self.tags.get(GITLAB_JOB_TAG),
            "instances": self.instances,
            "kept": self.kept,
        }


def list_sessions(client: Clients, regions: Iterable[str], bases: Sequence[str]) -> list[Session]:
    """The live sessions of ``bases``: those with a key pair, group or instance left, in name order.

    Every kind is listed (the collector's own listings, by ``<base>/*``), so
    a keep tag on any resource (a parameter, a snapshot) shows, by the
    layer's one rule (``kept_sessions``), as it would stop a release.
    """
    sessions: dict[str, Session] = {}
    patterns = [f"{base}/*" for base in bases]
    for region in regions:
        listed = [found for kind in ORDER for found in kind.listing(client, region, patterns)]
        kept, _ = kept_sessions(listed)
        for found in listed:
            name = found.session
            if name is None or name.base not in bases:
                continue
            session = sessions.setdefault(name, Session(name))
            session.regions.add(region)
            session.tags.update({k: v for k, v in (found.tags or {}).items() if k != KEEP_TAG})
            session.live |= found.kind in LIVE_KINDS
            session.kept |= name in kept
        session_instances(client, region, [f for f in listed if f.kind == INSTANCES.name], sessions)
    return [session for _, session in sorted(sessions.items()) if session.live]


def session_instances(client: Clients, region: str, instances: list[Found], sessions: Mapping[str, Session]) -> None:
    """Each listed instance's state, type and market (``InstanceLifecycle``: spot, or on-demand when absent)."""
    if not instances:
        return
    owner = {found.ident: found.name for found in instances}
    for page in client("ec2", region).get_paginator("describe_instances").paginate(InstanceIds=list(owner)):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                name = owner.get(instance["InstanceId"], "")
                if name in sessions:
                    sessions[name].instances.append(
                        {
                            "id": instance["InstanceId"],
                            "region": region,
                            "state": instance["State"]["Name"],
                            "type": instance.get("InstanceType", ""),
                            "market": instance.get("InstanceLifecycle", "on-demand"),
                        }
                    )


def sessions_table(sessions: list[Session], now: datetime) -> str:
    rows = [("session", "expires", "profile", "job", "instance", "kept", "regions")]
    for session in sessions:
        job = session.tags.get(GITHUB_JOB_TAG) or session.tags.get(GITLAB_JOB_TAG) or "-"
        ci = "github " if GITHUB_JOB_TAG in session.tags else "gitlab " if GITLAB_JOB_TAG in session.tags else ""
        instances = ", ".join(f"{i['id']} {i['state']} {i['market']}" for i in session.instances) or "-"
        rows.append(
            (
                session.name,
                _when(session.name.expires, now),
                session.tags.get(PROFILE_TAG, "-"),
                f"{ci}{job}",
                instances,
                "yes" if session.kept else "no",
                ",".join(sorted(session.regions)),
            )
        )
    return "\n".join([*table(rows), f"({len(sessions)} live session{'s' * (len(sessions) != 1)})"])


def _when(expires: datetime, now: datetime) -> str:
    minutes = int(abs((expires - now).total_seconds()) // 60)
    span = f"{minutes // 1440}d{minutes // 60 % 24}h" if minutes >= 1440 else f"{minutes // 60}h{minutes % 60:02d}m"
    return f"in {span}" if expires > now else f"expired {span} ago"
