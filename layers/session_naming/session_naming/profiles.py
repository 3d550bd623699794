"""Runner profiles: which machine a job gets, chosen from its labels.

A profile names one kind of session instance: its launch template, the
instance types and subnets to choose from, its market (``on-demand``,
``spot``, or ``spot-first``: spot, then on-demand), an exact cap on its live
sessions and a default lifetime. ``PROFILES`` holds them as JSON, or names
an SSM parameter that does (``ssm:<name>``), so an operator changes them
without a deploy. Every document is checked whole, and every problem is
named with its profile and field, before any job is served with it.

Without ``PROFILES`` one implicit profile, ``default``, holds
``LAUNCH_TEMPLATE_ID`` on demand and matches any job with ``GITHUB_LABEL``,
as before profiles existed (the legacy mode, whose runner gets the job's own
labels).

Matching is exact: a job's labels, less ``self-hosted`` and GitHub's own OS
and architecture labels, must equal a profile's labels (any letter case).
A job whose labels are a subset of a bigger profile's never takes its
runner, and a workflow author can never register a runner with labels of
their choosing: the runner gets the profile's labels, ``self-hosted`` and
whichever of GitHub's default labels the job asked for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from session_naming.pools import Pool, parse_pool

MARKETS = ("on-demand", "spot", "spot-first")
# GitHub's default labels of self-hosted runners: a job may ask for them beside ours.
DEFAULT_LABELS = frozenset({"self-hosted", "linux", "windows", "macos", "x64", "arm64", "arm"})
# GitHub folds label case in ASCII only: str.lower would make the Kelvin sign (U+212A) a "k".
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(label: str) -> str:
    """A label in the case GitHub compares it in: ASCII letters lowered, every other character as it is."""
    return label.translate(_ASCII_LOWER)


FIELDS = frozenset(
    {
        "labels",
        "launch_template_id",
        "launch_template_version",
        "instance_types",
        "subnet_ids",
        "market",
        "max_live",
        "lifetime_minutes",
        "pool",
    }
)
LEGACY = "default"
_NAME = re.compile(r"[a-z0-9-]{1,32}", re.ASCII)
_LABEL = re.compile(r"[A-Za-z0-9._-]{1,100}", re.ASCII)
_TEMPLATE = re.compile(r"lt-[0-9a-f]{8,17}", re.ASCII)
_VERSION = re.compile(r"\$Default|\$Latest|[1-9][0-9]{0,9}", re.ASCII)
_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+", re.ASCII)
_SUBNET = re.compile(r"subnet-[0-9a-f]{8,17}", re.ASCII)


class ProfileError(ValueError):
    """A profile document cannot be used; the message names every bad profile and field."""


@dataclass(frozen=True)
class Profile:
    name: str
    labels: frozenset[str]  # folded (ASCII lower case)
    launch_template_id: str
    launch_template_version: str = "$Default"
    instance_types: tuple[str, ...] = ()  # empty: the template's type
    subnet_ids: tuple[str, ...] = ()  # empty: the template's, else the VPC's, else the default VPC's
    market: str = "on-demand"
    max_live: int | None = None
    lifetime: timedelta | None = None
    legacy: bool = False  # the implicit profile of a stack without PROFILES
    pool: Pool | None = None  # instances kept made ahead (always on demand), or none

    def runner_labels(self, job_labels: Iterable[str]) -> list[str]:
        """The labels its JIT runner is registered with: a fixed set, so that GitHub gives it this job."""
        asked = [label for label in job_labels if isinstance(label, str)]
        if self.legacy:
            return list(dict.fromkeys(asked))
        defaults = [label for label in asked if fold(label) in DEFAULT_LABELS - {"self-hosted"}]
        return list(dict.fromkeys(["self-hosted", *sorted(self.labels), *defaults]))


def own_labels(job_labels: Iterable[str]) -> frozenset[str]:
    """A job's labels that pick a profile: folded, less ``self-hosted`` and GitHub's OS/architecture labels."""
    return frozenset(fold(label) for label in job_labels if fold(label) not in DEFAULT_LABELS)


def has_label(job_labels: Iterable[str], label: str) -> bool:
    """Does the job ask for ``label``, in GitHub's (ASCII) case folding?"""
    return fold(label) in {fold(asked) for asked in job_labels}


def match(profiles: Mapping[str, Profile], job_labels: Iterable[str], github_label: str) -> Profile | None:
    """The profile whose labels equal the job's own, or ``None``; the legacy profile takes any job with the label."""
    labels = list(job_labels)
    wanted = own_labels(labels)
    for profile in profiles.values():
        if profile.legacy:
            return profile if has_label(labels, github_label) else None
        if profile.labels == wanted:
            return profile
    return None


def legacy_profiles(launch_template_id: str | None, github_label: str) -> dict[str, Profile]:
    """Without ``PROFILES``: ``default`` holds ``LAUNCH_TEMPLATE_ID`` (none: sessions have no instance)."""
    if not launch_template_id:
        return {}
    return {LEGACY: Profile(LEGACY, frozenset({fold(github_label)}), launch_template_id, legacy=True)}


def parse_profiles(
    text: str, github_label: str, max_lifetime: timedelta, max_live_sessions: int | None = None
) -> dict[str, Profile]:
    """The profiles of a JSON document, or ``ProfileError`` naming every bad profile and field at once.

    Every session of the stack holds a slot of its base, so the pools together must fit
    ``max_live_sessions`` (``MAX_LIVE_SESSIONS``) and leave it room for jobs that launch cold.
    """
    try:
        document = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise ProfileError("PROFILES must be a JSON object of profiles (or ssm:<parameter name>)") from None
    if not isinstance(document, dict) or not document:
        raise ProfileError('PROFILES must be a non-empty JSON object: {"<name>": {"labels": [...], ...}}')
    problems: list[str] = []
    profiles: dict[str, Profile] = {}
    for name, spec in document.items():
        profile = _profile(name, spec, github_label, max_lifetime, problems)
        if profile is not None:
            profiles[name] = profile
    seen: dict[frozenset[str], str] = {}
    for name, profile in profiles.items():
        if profile.labels in seen:
            problems.append(f"profile {name}: labels: the same set as profile {seen[profile.labels]}")
        seen.setdefault(profile.labels, name)
    pooled = sum(profile.pool.most for profile in profiles.values() if profile.pool is not None)
    if max_live_sessions is not None and pooled >= max_live_sessions:
        problems.append(
            f"pools: stopped + hot of every profile ({pooled} at most) must stay under MAX_LIVE_SESSIONS "
            f"({max_live_sessions}), which holds for pooled and cold sessions alike"
        )
    if problems:
        raise ProfileError("PROFILES: " + "; ".join(problems))
    return profiles


def _profile(
    name: object, spec: object, github_label: str, max_lifetime: timedelta, problems: list[str]
) -> Profile | None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append("a profile name must be 1-32 of a-z 0-9 -")
        return None
    where = f"profile {name}"
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a JSON object")
        return None
    before = len(problems)
    unknown = sorted(str(key) for key in spec if key not in FIELDS)
    if unknown:
        plain = [key for key in unknown if _NAME.fullmatch(key.replace("_", "-"))]
        problems.append(
            f"{where}: unknown field(s) {', '.join(plain) or '(not shown)'}; accepted: {', '.join(sorted(FIELDS))}"
        )
    labels = _strings(spec.get("labels"), where, "labels", _LABEL, 1, 10, problems, required=True)
    lowered = frozenset(fold(label) for label in labels)
    if labels and fold(github_label) not in lowered:
        problems.append(f"{where}: labels: must include GITHUB_LABEL ({github_label})")
    if lowered & DEFAULT_LABELS:
        problems.append(
            f"{where}: labels: self-hosted and GitHub's OS/architecture labels are added by the job, not here"
        )
    template = spec.get("launch_template_id")
    if not isinstance(template, str) or not _TEMPLATE.fullmatch(template):
        problems.append(f"{where}: launch_template_id: required, lt- and 8-17 hex digits")
    version = spec.get("launch_template_version", "$Default")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        problems.append(f"{where}: launch_template_version: $Default, $Latest or a version number")
    types = _strings(spec.get("instance_types"), where, "instance_types", _TYPE, 1, 20, problems)
    subnets = _strings(spec.get("subnet_ids"), where, "subnet_ids", _SUBNET, 1, 16, problems)
    market = spec.get("market", "on-demand")
    if market not in MARKETS:
        problems.append(f"{where}: market: one of {', '.join(MARKETS)}")
    max_live = spec.get("max_live")
    if max_live is not None and (not _whole(max_live) or not 1 <= max_live <= 2000):
        problems.append(f"{where}: max_live: a whole number from 1 to 2000")
    minutes = spec.get("lifetime_minutes")
    limit = int(max_lifetime.total_seconds() // 60)
    if minutes is not None and (not _whole(minutes) or not 5 <= minutes <= limit):
        problems.append(f"{where}: lifetime_minutes: a whole number from 5 to {limit} (MAX_LIFETIME_MINUTES)")
    pool = None
    if spec.get("pool") is not None:
        pool = parse_pool(spec["pool"], where, max_live if _whole(max_live) else None, problems)
    if len(problems) > before:
        return None
    return Profile(
        name,
        lowered,
        str(template),
        str(version),
        tuple(dict.fromkeys(types)),
        tuple(dict.fromkeys(subnets)),
        str(market),
        max_live,
        timedelta(minutes=minutes) if minutes is not None else None,
        pool=pool,
    )


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(
    value: Any,
    where: str,
    field: str,
    pattern: re.Pattern[str],
    low: int,
    high: int,
    problems: list[str],
    *,
    required: bool = False,
) -> list[str]:
    if value is None and not required:
        return []
    if (
        not isinstance(value, list)
        or not low <= len(value) <= high
        or not all(isinstance(item, str) and pattern.fullmatch(item) for item in value)
    ):
        problems.append(f"{where}: {field}: {'required, ' if required else ''}a list of {low}-{high} valid values")
        return []
    return value
