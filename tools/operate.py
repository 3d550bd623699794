"""The ``ec2-sessions`` command: operators list, keep, release and expire sessions, and read a sweep's summary.

It works against the account and region of the usual AWS variables (boto3's
own chain; ``AWS_ENDPOINT_URL`` is honoured, which is how the tests point it
at moto). It is thin on purpose: it parses arguments, builds the layer's
clients, calls the code the functions run (the deletion units' listings,
the one keep rule, the launcher's judged ``release_session``) and prints, so
an operator can never release what the launcher would refuse, or keep a
session the collector would still sweep.

Exit status: 0 done, 1 something could not be done, 2 bad usage. Every
error is one line on standard error naming what to fix, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

# The layer and the launcher's folder, as Lambda puts them on the path (tools/sign.py does the same).
ROOT = Path(__file__).resolve().parents[1]
for _folder in (ROOT / "functions" / "launcher", ROOT / "layers" / "session_naming"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError  # noqa: E402
from errors import SessionKept, SessionNotFound  # noqa: E402
from session_naming import GITHUB_JOB_TAG, GITLAB_JOB_TAG, KEEP_TAG, PROFILE_TAG, SessionName, clients  # noqa: E402
from session_naming.resources import (  # noqa: E402
    INSTANCES,
    KEY_PAIRS,
    ORDER,
    SECURITY_GROUPS,
    Clients,
    Found,
    kept_sessions,
)
from session_naming.settings import ConfigError, LauncherSettings, load_launcher  # noqa: E402

from tools.report import summary_table, table  # noqa: E402

PROG = "ec2-sessions"
USAGE = 2
FAILED = 1
# The kinds every create makes at once: a session with none of them left has been released.
LIVE_KINDS = frozenset({KEY_PAIRS.name, SECURITY_GROUPS.name, INSTANCES.name})
# The launcher-only settings a release never reads; load_launcher still requires them, and keeps doing so.
NOT_READ_HERE = "not-read-by-the-ec2-sessions-command"


class Refused(Exception):
    """Something could not be done (exit 1); the message says what, and what to do."""


class UsageError(Exception):
    """The command line or the environment is wrong (exit 2); the message names what to fix."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the fix, not a usage block (subcommands' parsers too)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


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


# ---- domain: what the subcommands do, given clients ------------------------------------------------------------


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


def set_keep(client: Clients, regions: Iterable[str], name: SessionName, keep: bool) -> dict[str, int]:
    """Tag (or untag) every resource of the session, of every kind, in every region; answer how many, by kind."""
    tagged: dict[str, int] = {}
    for region in regions:
        for kind in ORDER:
            found = kind.listing(client, region, [name])
            if not found:
                continue
            if kind.service == "ssm":
                ssm = client("ssm", region)
                for parameter in found:
                    if keep:
                        ssm.add_tags_to_resource(
                            ResourceType="Parameter", ResourceId=parameter.ident, Tags=[_keep_tag()]
                        )
                    else:
                        ssm.remove_tags_from_resource(
                            ResourceType="Parameter", ResourceId=parameter.ident, TagKeys=[KEEP_TAG]
                        )
            else:
                ec2 = client("ec2", region)
                ids = _ec2_ids(ec2, kind.name, [f.ident for f in found])
                if keep:
                    ec2.create_tags(Resources=ids, Tags=[_keep_tag()])
                else:
                    ec2.delete_tags(Resources=ids, Tags=[{"Key": KEEP_TAG}])
            tagged[kind.name] = tagged.get(kind.name, 0) + len(found)
    if not tagged:
        raise Refused(f"session {name} has no resources in {', '.join(regions)}: check its name and --regions")
    return tagged


def _keep_tag() -> Any:
    """``ec2-sessions:keep=true`` in the shape EC2's and SSM's tagging calls both take."""
    return {"Key": KEEP_TAG, "Value": "true"}


def _ec2_ids(ec2: Any, kind: str, idents: list[str]) -> list[str]:
    """What CreateTags takes: the deletion units name key pairs by name, tags want their ``key-...`` id."""
    if kind != KEY_PAIRS.name:
        return idents
    return [pair["KeyPairId"] for pair in ec2.describe_key_pairs(KeyNames=idents)["KeyPairs"]]


def release(client: Clients, settings: LauncherSettings, name: SessionName, slots: Any | None) -> dict[str, Any]:
    """The launcher's judged release, deleting in every region given (an operator may delete everywhere)."""
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the release's metric lines are Lambda's, not the user's
            return launcher_release()(client, settings, name, slots, delete_regions=settings.regions)
    except SessionKept as kept:
        raise Refused(f"{kept}; or: {PROG} unkeep {name}") from None
    except SessionNotFound as missing:
        raise Refused(f"{missing}: check the name and --regions") from None


def find_summary(text: str) -> dict[str, Any]:
    """The collector summary in ``text``: its result, its ``sweep finished`` log line, or log events holding it.

    Log events may come as ``aws logs filter-log-events`` answers them
    (``{"events": [{"message": ...}]}``), as a subscription delivers them
    (``{"awslogs": {"data": <gzip, base64>}}``), or as lines of ``sam logs``
    (a prefix, then the JSON). The last summary found wins: the latest sweep.
    """
    try:
        documents = [json.loads(text)]
    except ValueError:
        documents = [doc for line in text.splitlines() if (doc := _json_in_line(line)) is not None]
    found = [summary for doc in documents for summary in _summaries(doc)]
    if not found:
        raise Refused(
            "standard input holds no collector summary: pipe in the collector's result, "
            'its "sweep finished" log line, or log events holding that line'
        )
    return found[-1]


def _json_in_line(line: str) -> Any:
    start = line.find("{")
    if start < 0:
        return None
    try:
        return json.loads(line[start:])
    except ValueError:
        return None


def _summaries(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [summary for item in value for summary in _summaries(item)]
    if isinstance(value, str):
        return _summaries(_json_in_line(value))
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("regions"), dict) and "dry_run" in value and "cut_short" in value:
        return [value]
    if isinstance(value.get("awslogs"), dict):
        try:
            return _summaries(json.loads(gzip.decompress(base64.b64decode(value["awslogs"]["data"]))))
        except (ValueError, OSError, KeyError):
            return []
    for key in ("summary", "message", "events", "logEvents"):
        if key in value:
            return _summaries(value[key])
    return []


# ---- the edge: arguments, settings, printing -------------------------------------------------------------------


def parser() -> Parser:
    top = Parser(prog=PROG, description="List, keep, release and expire ec2-sessions sessions; read a sweep summary.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    regions = Parser(add_help=False)
    regions.add_argument("--regions", help="comma-separated regions (default: REGIONS, else AWS_REGION)")

    listing = commands.add_parser("list", parents=[regions], help="live sessions: expiry, profile, job, kept")
    listing.add_argument("--base", help="comma-separated bases (default: SESSION_BASES)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    for command, what in (("keep", "tag every resource of a session keep"), ("unkeep", "remove the keep tag")):
        commands.add_parser(command, parents=[regions], help=what).add_argument("name", metavar="NAME")
    commands.add_parser("release", parents=[regions], help="release a session now").add_argument("name", metavar="NAME")
    expire = commands.add_parser("expire", parents=[regions], help="release every session of a base")
    expire.add_argument("--base", required=True)
    expire.add_argument("--yes", action="store_true", help="really release (without it: list, change nothing)")
    commands.add_parser("summary", help="a collector summary on standard input, as a table")
    return top


def settings_for(args: argparse.Namespace, env: Mapping[str, str], bases: str | None) -> LauncherSettings:
    """The launcher's settings for this command, through its one loader (every bad value named at once).

    The regions the command works in are the launcher's ``regions``, the
    first standing for its own; the webhook secret and the idempotency table
    are the launcher's alone and never read here (the table only when
    ``IDEMPOTENCY_TABLE`` is set: ``slots_for``).
    """
    regions = args.regions or env.get("REGIONS") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    regions = regions or _profile_region()
    if not regions:
        raise UsageError("no region: pass --regions or set AWS_REGION (or REGIONS)")
    try:
        return load_launcher(
            {
                "SESSION_BASES": bases or env.get("SESSION_BASES", ""),
                "REGIONS": regions,
                "AWS_REGION": regions.split(",")[0].strip(),
                "WEBHOOK_SECRET_ARN": NOT_READ_HERE,
                "IDEMPOTENCY_TABLE": env.get("IDEMPOTENCY_TABLE") or NOT_READ_HERE,
            }
        )
    except ConfigError as error:
        # AWS_REGION is the first of REGIONS here: a problem with it is REGIONS's, said once.
        problems = str(error).removeprefix("configuration error: ").split("; ")
        problems = [p for p in problems if not p.startswith("AWS_REGION ")] or problems
        raise UsageError(
            f"configuration error: {'; '.join(problems)} (--regions sets REGIONS, --base SESSION_BASES)"
        ) from None


def _profile_region() -> str | None:
    """The region of the AWS profile in use, when no variable names one."""
    import boto3

    return boto3.session.Session().region_name


def slots_for(settings: LauncherSettings, env: Mapping[str, str]) -> Any | None:
    """The stack's live-session slots when ``IDEMPOTENCY_TABLE`` names its table, so a release frees its slot.

    The table is the stack's, in the region of the usual AWS variables,
    whichever regions ``--regions`` names.
    """
    if settings.idempotency_table == NOT_READ_HERE:
        return None
    from slots import Slots

    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or _profile_region() or settings.region
    return Slots(clients.client("dynamodb", region), settings.idempotency_table)


def session_name(text: str) -> SessionName:
    name = SessionName.parse(text)
    if name is None:
        raise UsageError(f"not a session name: {text!r:.120} (want <base>/<YYYYMMDDTHHMMSSZ>/<16 hex digits>)")
    return name


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


def _counts(by_kind: Mapping[str, Any]) -> str:
    return ", ".join(f"{kind} {len(v) if isinstance(v, list) else v}" for kind, v in by_kind.items()) or "nothing"


def release_line(report: Mapping[str, Any]) -> str:
    line = f"released {report['session']}: deleted {_counts(report['deleted'])}"
    left = [f"{item['kind']} {item['id']} ({item['reason']})" for item in report["left_to_collector"] + report["kept"]]
    failed = [f"{item['kind']} {item['id']} ({item['error']})" for item in report["failed"]]
    if left:
        line += f"; left to the collector: {', '.join(left)}"
    if failed:
        line += f"; FAILED: {', '.join(failed)}"
    return line


def owned_only(base: str | None, env: Mapping[str, str]) -> None:
    """A release deletes only a base the stack owns: ``SESSION_BASES`` says which (the template's parameter).

    An operator's credentials usually reach everything; the name typed is no
    proof that its base is this stack's (ec2test's or another stack's
    sessions share the shape).
    """
    owned = [part.strip() for part in env.get("SESSION_BASES", "").split(",") if part.strip()]
    if not owned:
        raise UsageError("set SESSION_BASES to the stack's bases (its SessionBases parameter) before releasing")
    if base not in owned:
        raise UsageError(f"base {base!r:.70} is not one of SESSION_BASES ({', '.join(owned)}): not this stack's")


def run(args: argparse.Namespace, env: Mapping[str, str], stdin: Any, out: Any) -> int:
    """One subcommand; raises ``Refused`` or ``UsageError`` for the edge to print."""
    now = datetime.now(UTC)
    if args.command == "summary":
        print(summary_table(find_summary(stdin.read())), file=out)
        return 0
    name = session_name(args.name) if "name" in args else None
    asked = name.base if name else getattr(args, "base", None)
    if args.command in ("release", "expire"):
        owned_only(asked, env)
    settings = settings_for(args, env, asked)
    if args.command == "list":
        sessions = list_sessions(clients.client, settings.regions, settings.session_bases)
        if args.json:
            print(json.dumps([session.as_json(now) for session in sessions], indent=2), file=out)
        else:
            print(sessions_table(sessions, now), file=out)
        return 0
    if args.command in ("keep", "unkeep"):
        assert name is not None
        tagged = set_keep(clients.client, settings.regions, name, keep=args.command == "keep")
        done = "kept: tagged" if args.command == "keep" else "no longer kept: untagged"
        print(f"{name} {done} {_counts(tagged)} in {', '.join(settings.regions)}", file=out)
        return 0
    if args.command == "release":
        assert name is not None
        report = release(clients.client, settings, name, slots_for(settings, env))
        print(release_line(report), file=out)
        return FAILED if report["failed"] else 0
    return expire(args, settings, env, now, out)


def expire(
    args: argparse.Namespace, settings: LauncherSettings, env: Mapping[str, str], now: datetime, out: Any
) -> int:
    """Release every live session of the base; without ``--yes`` list them and change nothing."""
    sessions = list_sessions(clients.client, settings.regions, settings.session_bases)
    if not args.yes:
        print(sessions_table(sessions, now), file=out)
        print(f"would release {len(sessions)} session(s); nothing changed (add --yes to release)", file=out)
        return 0
    slots, refused, failed = slots_for(settings, env), 0, 0
    for session in sessions:
        try:
            report = release(clients.client, settings, session.name, slots)
        except Refused as why:
            print(f"not released: {why}", file=out)
            refused += 1
            continue
        print(release_line(report), file=out)
        failed += bool(report["failed"])
    released = len(sessions) - refused - failed
    print(f"{released} released, {refused} refused, {failed} with failures", file=out)
    return FAILED if refused or failed else 0


def launcher_release():
    """The launcher's ``release_session``, its logger made at warning level (imported here, first, for that).

    The launcher logs JSON lines as Lambda does; the command shows only its
    warnings (on standard error), so standard output holds what it prints.
    The environment is put back: nothing else in the process sees the change.
    """
    from unittest import mock

    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_NAMESPACE": "ec2-sessions"}
    with mock.patch.dict(os.environ, {key: value for key, value in quiet.items() if key not in os.environ}):
        from launch import release_session
    return release_session


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parser().parse_args(argv), os.environ, sys.stdin, sys.stdout)
    except UsageError as error:
        return _fail(USAGE, str(error))
    except Refused as error:
        return _fail(FAILED, str(error))
    except ClientError as error:
        info = error.response.get("Error", {})
        return _fail(FAILED, f"AWS refused {error.operation_name}: {info.get('Code')}: {info.get('Message', '')}")
    except NoCredentialsError:
        return _fail(FAILED, "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    except BotoCoreError as error:  # no endpoint, a bad profile: botocore's message names the fix
        return _fail(FAILED, f"AWS: {error}")
    except BrokenPipeError:  # the reader stopped early (| head): say nothing more, not even at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except Exception as error:  # never a traceback to an operator; the type names what broke
        return _fail(FAILED, f"unexpected {type(error).__name__}: {error}")


def _fail(status: int, message: str) -> int:
    print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
