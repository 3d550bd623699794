"""The bodies the launcher accepts, as Powertools Parser (pydantic) models.

Shape and syntax are checked by the models; what depends on the stack's
configuration (owned bases, lifetime bound, world ingress, launch template)
is checked by ``session_request`` against the settings. Either way the
answer is a ``BadRequest`` naming the field and the rule, never repeating
the value sent, and nothing has been created.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import struct
from datetime import timedelta
from typing import Annotated

from aws_lambda_powertools.utilities.parser import parse
from http_errors import BadRequest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from session_naming.settings import LauncherSettings

MIN_LIFETIME_MINUTES = 5
MAX_LIFETIME_MINUTES = 7 * 24 * 60  # the most LauncherSettings ever allows
MIN_RSA_BITS = 2048
# Narrower prefixes than these reach a large part of the internet: 0.0.0.0/1 + 128.0.0.0/1 is the world.
MIN_PREFIX = {4: 8, 6: 32}
# IPv6 ranges that carry IPv4 addresses: any prefix inside them can stand for IPv4's whole space.
IPV4_IN_IPV6 = (ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("::/96"))
ID = Annotated[int, Field(gt=0, le=2**63 - 1)]
FULL_NAME = re.compile(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}", re.ASCII)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}", re.ASCII)


class GitLabJobRef(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    project_id: ID
    job_id: ID


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    base: str | None = Field(default=None, min_length=1, max_length=64)
    lifetime_minutes: int | None = Field(default=None, ge=MIN_LIFETIME_MINUTES, le=MAX_LIFETIME_MINUTES)
    public_key: str | None = Field(default=None, max_length=16_384)
    ingress_cidrs: list[str] = Field(default_factory=list, max_length=20)
    instance: bool = False
    profile: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,32}$")
    gitlab_job: GitLabJobRef | None = None

    @field_validator("public_key")
    @classmethod
    def _openssh_public_key(cls, value: str | None) -> str | None:
        if value is not None:
            check_public_key(value)
        return value

    @field_validator("ingress_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        """Each a CIDR with no host bits; answered in canonical form, once each (EC2 refuses a repeated rule)."""
        networks = []
        for value in values:
            try:
                networks.append(str(ipaddress.ip_network(value, strict=True)))
            except ValueError:
                raise ValueError("each must be an IPv4 or IPv6 CIDR with no host bits (e.g. 203.0.113.0/24)") from None
        return list(dict.fromkeys(networks))


class ReleaseRequest(BaseModel):
    """A release names its session in the signed body, so a signature cannot be reused on another."""

    model_config = ConfigDict(extra="forbid", strict=True)

    session: str = Field(max_length=200)


class WorkflowJob(BaseModel):
    """The fields the launcher reads, as GitHub's webhook schema has them (the body's 64 KiB bound them all).

    ``labels`` are any strings; ``head_sha`` any commit id (SHA-1's 40 hex
    digits or SHA-256's 64); ``runner_name``, ``created_at`` and
    ``started_at`` may be null or absent: no runner (no session found by
    name), the delivery's arrival, no queue latency.
    """

    id: ID
    labels: list[str] = Field(default_factory=list)
    status: str | None = Field(default=None, max_length=40)  # "waiting": held for a deployment's reviewer
    runner_name: str | None = Field(default=None, max_length=200)  # the runner that ran it (completed)
    created_at: AwareDatetime | None = None  # when the job was queued: an old queued is a replay
    started_at: AwareDatetime | None = None  # in_progress: when its runner took it
    run_id: ID | None = None
    head_sha: str | None = Field(default=None, min_length=1, max_length=64)
    conclusion: str | None = Field(default=None, max_length=40)


class Owner(BaseModel):
    login: str = Field(max_length=100)


class Repository(BaseModel):
    name: str = Field(max_length=100)
    full_name: str = Field(max_length=141)
    owner: Owner

    @field_validator("full_name")
    @classmethod
    def _github_name(cls, value: str) -> str:
        """GitHub's own rules, before the name is put into any API path: ``owner/..`` must never reach one."""
        if not FULL_NAME.fullmatch(value) or value.rpartition("/")[2] in (".", ".."):
            raise ValueError(
                "must be <owner>/<repo> by GitHub's rules: owner 1-39 of A-Z a-z 0-9 -, "
                "repository 1-100 of A-Z a-z 0-9 . _ -, neither . nor .."
            )
        return value


class Installation(BaseModel):
    id: ID


class WorkflowJobDelivery(BaseModel):
    """Only what the launcher reads from GitHub's ``workflow_job`` payload; the rest is GitHub's."""

    action: str = Field(max_length=40)
    workflow_job: WorkflowJob
    repository: Repository | None = None
    installation: Installation | None = None

    @property
    def waits_for_approval(self) -> bool:
        """Held for an environment's reviewer: ``action: waiting``, or ``queued`` with ``status: waiting``."""
        return self.action == "waiting" or (self.action == "queued" and self.workflow_job.status == "waiting")


class GitLabJobHook(BaseModel):
    """Only what the launcher reads from GitLab's Job Hook (``object_kind: build``)."""

    object_kind: str = Field(max_length=40)
    project_id: ID
    build_id: ID
    build_status: str = Field(max_length=40)


def check_public_key(text: str) -> None:
    """An OpenSSH ``ssh-ed25519`` or ``ssh-rsa`` (2048 bits or more) public key line."""
    parts = text.strip().split()
    if len(parts) < 2 or parts[0] not in ("ssh-ed25519", "ssh-rsa"):
        raise ValueError("must be an OpenSSH public key line: 'ssh-ed25519 AAAA...' or 'ssh-rsa AAAA...'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        fields, offset = [], 0
        while offset < len(blob):
            (size,) = struct.unpack_from(">I", blob, offset)
            fields.append(blob[offset + 4 : offset + 4 + size])
            if offset + 4 + size > len(blob):
                raise ValueError
            offset += 4 + size
    except (binascii.Error, struct.error, ValueError):
        raise ValueError("the key's base64 part is not a valid OpenSSH key blob") from None
    if not fields or fields[0] != parts[0].encode():
        raise ValueError("the key's blob does not match its type")
    if parts[0] == "ssh-ed25519" and (len(fields) != 2 or len(fields[1]) != 32):
        raise ValueError("an ssh-ed25519 key holds exactly 32 bytes")
    if parts[0] == "ssh-rsa" and (len(fields) != 3 or int.from_bytes(fields[2]).bit_length() < MIN_RSA_BITS):
        raise ValueError(f"an ssh-rsa key must have at least {MIN_RSA_BITS} bits")


def parse_body[Model: BaseModel](raw: bytes, model: type[Model]) -> Model:
    """JSON bytes into ``model``, or a ``BadRequest`` that names the first bad field."""
    try:
        data = json.loads(raw or b"{}")
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("body must be JSON (UTF-8), nested at most a few hundred levels") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    try:
        return parse(event=data, model=model)
    except ValidationError as error:
        raise BadRequest(describe(error, model)) from None
    except RecursionError:
        raise BadRequest("body is nested too deeply") from None


def describe(error: ValidationError, model: type[BaseModel]) -> str:
    """``field: what is wrong`` for the first problem, without echoing the value sent."""
    first = error.errors(include_url=False, include_input=False, include_context=False)[0]
    if first["type"] == "extra_forbidden":  # the unknown name is the sender's text: named only if it is a plain name
        unknown = str(first["loc"][-1])
        where = ".".join(str(part) for part in first["loc"][:-1][:4]) or "body"
        named = f"unknown field {unknown}" if _PLAIN_NAME.fullmatch(unknown) else "an unknown field"
        return f"{where}: {named}; accepted: {', '.join(model.model_fields)}"
    where = ".".join(str(part) for part in first["loc"][:4]) or "body"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def check_ingress(cidrs: list[str]) -> None:
    """Refuse what opens SSH to a large part of the internet (unless the stack allows the world)."""
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        if network.prefixlen < MIN_PREFIX[network.version]:
            raise BadRequest(
                f"ingress_cidrs: IPv{network.version} prefixes shorter than /{MIN_PREFIX[network.version]} "
                "open SSH to too much of the internet (ALLOW_WORLD_INGRESS=false)"
            )
        if isinstance(network, ipaddress.IPv6Network) and any(network.subnet_of(mapped) for mapped in IPV4_IN_IPV6):
            raise BadRequest(
                "ingress_cidrs: IPv4-mapped and IPv4-compatible IPv6 ranges are refused (ALLOW_WORLD_INGRESS=false)"
            )


def session_request(raw: bytes, settings: LauncherSettings) -> tuple[str, timedelta, SessionRequest]:
    """The request's base and lifetime, checked against what this stack allows."""
    request = parse_body(raw, SessionRequest)
    base = settings.session_bases[0] if request.base is None else request.base
    if base not in settings.session_bases:
        raise BadRequest(f"base: must be one of this stack's bases ({', '.join(settings.session_bases)})")
    lifetime = timedelta(minutes=request.lifetime_minutes) if request.lifetime_minutes else settings.default_lifetime
    if lifetime > settings.max_lifetime:
        raise BadRequest(
            f"lifetime_minutes: at most {int(settings.max_lifetime.total_seconds() // 60)} (MAX_LIFETIME_MINUTES)"
        )
    if not settings.allow_world_ingress:
        check_ingress(request.ingress_cidrs)
    if request.profile is not None and not request.instance:
        raise BadRequest("profile: names the instance's profile, so it needs instance: true")
    return base, lifetime, request
