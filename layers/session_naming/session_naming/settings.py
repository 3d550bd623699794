"""The one place that reads configuration.

Every variable is checked at once and every bad one is named in a single
message, before any AWS call, so a broken deployment fails loudly on its
first invocation instead of half-sweeping. Secrets are never read here: the
launcher reads its webhook secret through Powertools Parameters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache
from typing import overload

from session_naming.name import _BASE
from session_naming.profiles import Profile, ProfileError, legacy_profiles, parse_profiles

_SSM_NAME = re.compile(r"/[A-Za-z0-9_.\-/]{1,1010}", re.ASCII)
_REPOSITORY = re.compile(r"[a-z0-9._-]{1,100}/([a-z0-9._-]{1,100}|\*)", re.ASCII)


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class GitHubSettings:
    """Where JIT runners are registered, for the launcher and the collector alike.

    ``app_secret_arn`` is ``None`` when no GitHub App is configured: the
    launcher then makes sessions without runners, and the collector has no
    registrations to clean. The App's private key itself is never read here.
    """

    app_secret_arn: str | None
    api_url: str
    runner_scope: str  # "repo" or "org"
    runner_group_id: int
    repositories: tuple[str, ...]  # lower-case "owner/repo" or "owner/*"; empty: any repository

    def allows(self, full_name: str) -> bool:
        """Is ``owner/repo`` in the allow-list? GitHub compares names in any letter case."""
        if not self.repositories:
            return True
        owner, _, _ = full_name.lower().partition("/")
        return full_name.lower() in self.repositories or f"{owner}/*" in self.repositories


@dataclass(frozen=True)
class CollectorSettings:
    session_bases: tuple[str, ...]
    regions: tuple[str, ...]
    dry_run: bool
    grace: timedelta
    max_deletions: int
    concurrency: int
    ec2_delete_rate: int
    sweep_untagged: bool
    github: GitHubSettings


@dataclass(frozen=True)
class LauncherSettings:
    session_bases: tuple[str, ...]
    region: str
    regions: tuple[str, ...]  # where the stack works: a keep tag in any of them keeps the session
    default_lifetime: timedelta
    max_lifetime: timedelta
    max_live_sessions: int
    allow_world_ingress: bool
    github_label: str
    launch_template_id: str | None
    vpc_id: str | None
    webhook_secret_arn: str
    idempotency_table: str
    max_body_bytes: int
    github: GitHubSettings
    # PROFILES as JSON (checked here), or the SSM parameter that holds it (read per request, cached 60 s).
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    profiles_parameter: str | None = None
    spot_breaker_interruptions: int = 3


class _Reader:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    @overload
    def raw(self, name: str) -> str | None: ...
    @overload
    def raw(self, name: str, default: str) -> str: ...
    @overload
    def raw(self, name: str, default: str | None) -> str | None: ...
    def raw(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name, "").strip()
        return value or default

    def required(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            self.problems.append(f"{name} is required")
        return value or ""

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name, str(default).lower()).lower()
        if value not in ("true", "false"):
            self.problems.append(f"{name} must be 'true' or 'false', not {value!r}")
        return value == "true"

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name, str(default))
        try:
            number = int(value)
        except ValueError:
            self.problems.append(f"{name} must be a whole number, not {value!r}")
            return default
        if not low <= number <= high:
            self.problems.append(f"{name} must be between {low} and {high}, not {number}")
        return number

    def bases(self) -> tuple[str, ...]:
        value = self.raw("SESSION_BASES", "ec2-test-runner")
        bases = tuple(dict.fromkeys(part.strip() for part in value.split(",")))
        bad = [base for base in bases if not _BASE.fullmatch(base)]
        if bad:
            self.problems.append(
                f"SESSION_BASES must be a comma-separated list of bases of 1 to 64 characters "
                f"A-Z a-z 0-9 . _ - (no '/', no empty entry); bad: {', '.join(map(repr, bad))}"
            )
        reserved = [base for base in bases if base.lower().startswith(("aws", "ssm"))]
        if reserved:
            self.problems.append(
                f"SESSION_BASES must not start with 'aws' or 'ssm' (SSM reserves those parameter paths): "
                f"{', '.join(map(repr, reserved))}"
            )
        return bases

    def regions(self, name: str, default: str | None) -> tuple[str, ...]:
        value = self.raw(name, default)
        if value is None:
            self.problems.append(f"{name} is not set and neither is AWS_REGION")
            return ()
        regions = tuple(dict.fromkeys(part.strip() for part in value.split(",")))
        unknown = [region for region in regions if region not in _known_regions()]
        if unknown:
            self.problems.append(f"{name} names unknown region(s): {', '.join(map(repr, unknown))}")
        return regions

    def github(self) -> GitHubSettings:
        api_url = self.raw("GITHUB_API_URL", "https://api.github.com").rstrip("/")
        if not api_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            self.problems.append(
                "GITHUB_API_URL must be an https:// URL (GitHub Enterprise Server: https://HOST/api/v3)"
            )
        scope = self.raw("GITHUB_RUNNER_SCOPE", "repo")
        if scope not in ("repo", "org"):
            self.problems.append("GITHUB_RUNNER_SCOPE must be 'repo' or 'org'")
        entries = (part.strip().lower() for part in self.raw("GITHUB_REPOSITORIES", "").split(","))
        repositories = tuple(dict.fromkeys(entry for entry in entries if entry))
        bad = [r for r in repositories if not _REPOSITORY.fullmatch(r)]
        if bad:
            self.problems.append(
                "GITHUB_REPOSITORIES must be comma-separated 'owner/repo' or 'owner/*' entries "
                f"(letters, digits, '.', '_', '-'); {len(bad)} entry(ies) are not"
            )
        return GitHubSettings(
            app_secret_arn=self.raw("GITHUB_APP_SECRET_ARN"),
            api_url=api_url,
            runner_scope=scope,
            runner_group_id=self.integer("GITHUB_RUNNER_GROUP_ID", 1, 1, 2**31 - 1),
            repositories=repositories,
        )

    def done(self) -> None:
        if self.problems:
            raise ConfigError("configuration error: " + "; ".join(self.problems))


@cache
def _known_regions() -> frozenset[str]:
    """Every EC2 region botocore knows, from its bundled endpoint data (no network)."""
    import boto3

    session = boto3.session.Session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ec2", partition_name=partition)
    )


def _own_region(env: Mapping[str, str]) -> str | None:
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def load_collector(env: Mapping[str, str] = os.environ) -> CollectorSettings:
    read = _Reader(env)
    settings = CollectorSettings(
        session_bases=read.bases(),
        regions=read.regions("REGIONS", _own_region(env)),
        dry_run=read.boolean("DRY_RUN", False),
        grace=timedelta(seconds=read.integer("GRACE_SECONDS", 300, 0, 86_400)),
        max_deletions=read.integer("MAX_DELETIONS", 1000, 1, 100_000),
        concurrency=read.integer("DELETE_CONCURRENCY", 8, 1, 50),
        ec2_delete_rate=read.integer("EC2_DELETE_RATE", 5, 1, 1000),
        sweep_untagged=read.boolean("SWEEP_UNTAGGED", False),
        github=read.github(),
    )
    if settings.sweep_untagged and env.get("AWS_LAMBDA_FUNCTION_NAME"):
        read.problems.append(
            "SWEEP_UNTAGGED=true is refused inside Lambda: run the one-off legacy clean-up "
            "with operator credentials through the local runner"
        )
    read.done()
    return settings


def load_launcher(env: Mapping[str, str] = os.environ) -> LauncherSettings:
    read = _Reader(env)
    max_minutes = read.integer("MAX_LIFETIME_MINUTES", 1440, 5, 7 * 24 * 60)
    default_minutes = read.integer("DEFAULT_LIFETIME_MINUTES", 360, 5, 7 * 24 * 60)
    if default_minutes > max_minutes:
        read.problems.append(
            f"DEFAULT_LIFETIME_MINUTES ({default_minutes}) must not exceed MAX_LIFETIME_MINUTES ({max_minutes})"
        )
    region = read.regions("AWS_REGION", _own_region(env))
    own = region[0] if region else ""
    regions = read.regions("REGIONS", own or None)
    label = read.raw("GITHUB_LABEL", "ec2-session")
    settings = LauncherSettings(
        session_bases=read.bases(),
        region=own,
        regions=tuple(dict.fromkeys((own, *regions))) if own else regions,
        default_lifetime=timedelta(minutes=default_minutes),
        max_lifetime=timedelta(minutes=max_minutes),
        # At most 2,000: every live session of a base is an entry of one DynamoDB item (400 KB at most).
        max_live_sessions=read.integer("MAX_LIVE_SESSIONS", 50, 1, 2_000),
        allow_world_ingress=read.boolean("ALLOW_WORLD_INGRESS", False),
        github_label=label,
        launch_template_id=read.raw("LAUNCH_TEMPLATE_ID"),
        vpc_id=read.raw("VPC_ID"),
        webhook_secret_arn=read.required("WEBHOOK_SECRET_ARN"),
        idempotency_table=read.required("IDEMPOTENCY_TABLE"),
        max_body_bytes=read.integer("MAX_BODY_BYTES", 65_536, 1_024, 1_048_576),
        github=read.github(),
        spot_breaker_interruptions=read.integer("SPOT_BREAKER_INTERRUPTIONS", 3, 1, 100),
    )
    source = read.raw("PROFILES")
    if source is None:
        settings = replace(settings, profiles=legacy_profiles(settings.launch_template_id, label))
    elif source.startswith("ssm:"):
        name = source.removeprefix("ssm:")
        if not _SSM_NAME.fullmatch(name):
            read.problems.append(
                "PROFILES: ssm:<parameter name>, the name starting with '/' (ssm:/ec2-sessions/profiles)"
            )
        settings = replace(settings, profiles_parameter=name)
    else:
        try:
            profiles = parse_profiles(source, label, settings.max_lifetime, settings.max_live_sessions)
            settings = replace(settings, profiles=profiles)
        except ProfileError as error:
            read.problems.append(str(error))
    read.done()
    return settings
