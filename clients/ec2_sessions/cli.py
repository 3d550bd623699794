"""The edge of ``ec2-sessions``: arguments, settings, one function per subcommand, exit status, error lines.

It works against the account and region of the usual AWS variables (boto3's
own chain; ``AWS_ENDPOINT_URL`` is honoured, which is how the tests and
``make local`` point it at moto). A subcommand is a parser added in
``parser()`` whose ``run`` default is a function here taking the arguments,
the environment, standard input and standard output; it imports its domain
module when it runs (``--help`` imports neither boto3 nor the layer).

Exit status: 0 done, 1 something could not be done, 2 bad usage. Every
error is one line on standard error naming what to fix, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, NoReturn

from ec2_sessions import PROG, Refused, UsageError

if TYPE_CHECKING:
    from session_naming import SessionName
    from session_naming.settings import LauncherSettings

    from ec2_sessions.release import StackTable

USAGE = 2
FAILED = 1
# The launcher-only settings a release never reads; load_launcher still requires them, and keeps doing so.
NOT_READ_HERE = "not-read-by-the-ec2-sessions-command"


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the fix, not a usage block (subcommands' parsers too)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def parser() -> Parser:
    top = Parser(
        prog=PROG,
        description="List, keep, release and expire ec2-sessions sessions; list warm pools; read a sweep summary.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    regions = Parser(add_help=False)
    regions.add_argument("--regions", help="comma-separated regions (default: REGIONS, else AWS_REGION)")

    listing = commands.add_parser("list", parents=[regions], help="live sessions: expiry, profile, job, kept")
    listing.add_argument("--base", help="comma-separated bases (default: SESSION_BASES)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(run=run_list)
    for command, what in (("keep", "tag every resource of a session keep"), ("unkeep", "remove the keep tag")):
        keeping = commands.add_parser(command, parents=[regions], help=what)
        keeping.add_argument("name", metavar="NAME")
        keeping.set_defaults(run=run_keep)
    release = commands.add_parser("release", parents=[regions], help="release a session now")
    release.add_argument("name", metavar="NAME")
    release.set_defaults(run=run_release)
    expire = commands.add_parser("expire", parents=[regions], help="release every session of a base")
    expire.add_argument("--base", required=True)
    expire.add_argument("--yes", action="store_true", help="really release (without it: list, change nothing)")
    expire.set_defaults(run=run_expire)
    commands.add_parser("summary", help="a collector summary on standard input, as a table").set_defaults(
        run=run_summary
    )
    pool = commands.add_parser(
        "pool", parents=[regions], help="warm pools' instances: state, age, spec, EC2 state, stopped volumes' cost"
    )
    pool.add_argument("--profile", help="this profile's pool only (default: every pool)")
    pool.add_argument(
        "--gib-month-price",
        type=_price,
        metavar="USD",
        help="price of a GiB-month of the stopped instances' volumes (default: EBS_GIB_MONTH_PRICE, else 0.08)",
    )
    pool.add_argument("--json", action="store_true", help="JSON instead of a table")
    pool.set_defaults(run=run_pool)
    return top


def _price(text: str) -> float:
    from ec2_sessions.pool import price

    try:
        return price(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a price in USD per GiB-month, e.g. 0.08, not {text!r:.40}") from None


# ---- the subcommands -------------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[str], out: IO[str]) -> int:
    import json

    from session_naming import clients

    from ec2_sessions.listing import list_sessions, sessions_table

    settings = settings_for(args, env, args.base)
    sessions = list_sessions(clients.client, settings.regions, settings.session_bases)
    now = datetime.now(UTC)
    if args.json:
        print(json.dumps([session.as_json(now) for session in sessions], indent=2), file=out)
    else:
        print(sessions_table(sessions, now), file=out)
    return 0


def run_keep(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[str], out: IO[str]) -> int:
    from session_naming import clients

    from ec2_sessions.keep import set_keep
    from ec2_sessions.summary import counts

    name = session_name(args.name)
    owned_only(name.base, env)
    settings = settings_for(args, env, name.base)
    tagged = set_keep(clients.client, settings.regions, name, keep=args.command == "keep")
    done = "kept: tagged" if args.command == "keep" else "no longer kept: untagged"
    print(f"{name} {done} {counts(tagged)} in {', '.join(settings.regions)}", file=out)
    return 0


def run_release(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[str], out: IO[str]) -> int:
    from session_naming import clients

    from ec2_sessions.release import release, release_line

    name = session_name(args.name)
    owned_only(name.base, env)
    settings = settings_for(args, env, name.base)
    report = release(clients.client, settings, name, stack_table(settings, env))
    print(release_line(report), file=out)
    return FAILED if report["failed"] else 0


def run_expire(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[str], out: IO[str]) -> int:
    """Release every live session of the base; without ``--yes`` list them and change nothing."""
    from session_naming import clients

    from ec2_sessions.listing import list_sessions, sessions_table
    from ec2_sessions.release import release_all

    owned_only(args.base, env)
    settings = settings_for(args, env, args.base)
    sessions = list_sessions(clients.client, settings.regions, settings.session_bases)
    if not args.yes:
        print(sessions_table(sessions, datetime.now(UTC)), file=out)
        print(f"would release {len(sessions)} session(s); nothing changed (add --yes to release)", file=out)
        return 0
    names = [session.name for session in sessions]
    released, refused, failed = release_all(clients.client, settings, names, stack_table(settings, env), out)
    print(f"{released} released, {refused} refused, {failed} with failures", file=out)
    return FAILED if refused or failed else 0


def run_summary(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[str], out: IO[str]) -> int:
    from ec2_sessions.summary import find_summary, summary_table

    print(summary_table(find_summary(stdin.read())), file=out)
    return 0


def run_pool(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[str], out: IO[str]) -> int:
    """Each pool's instances; their states from the job table when ``IDEMPOTENCY_TABLE`` names it, their specs
    judged against the profiles when ``PROFILES`` holds them (the stack's ``Profiles``)."""
    import json

    from session_naming import clients

    from ec2_sessions.pool import gib_month_price, list_pools, pool_profiles, pools_json, pools_table

    price = gib_month_price(args.gib_month_price, env)
    settings = settings_for(args, env, None, profiles=env.get("PROFILES"))
    profiles = pool_profiles(settings) if env.get("PROFILES", "").strip() else None
    table = stack_table(settings, env)
    records = table.pools() if table is not None else None
    found = list_pools(clients.client, settings, records, profiles, args.profile)
    now = datetime.now(UTC)
    if args.json:
        print(json.dumps(pools_json(found, price, records is not None, now), indent=2), file=out)
    else:
        print(pools_table(found, price, records is not None, now), file=out)
    return 0


# ---- settings --------------------------------------------------------------------------------------------------


def settings_for(
    args: argparse.Namespace, env: Mapping[str, str], bases: str | None, profiles: str | None = None
) -> LauncherSettings:
    """The launcher's settings for this command, through its one loader (every bad value named at once).

    The regions the command works in are the launcher's ``regions``, the
    first standing for its own; the webhook secret and the idempotency table
    are the launcher's alone and never read here (the table only when
    ``IDEMPOTENCY_TABLE`` is set: ``slots_for``). ``profiles`` is
    ``PROFILES``, for the commands that read the profiles.
    """
    from session_naming.settings import ConfigError, load_launcher

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
                **({"PROFILES": profiles} if profiles else {}),
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


def stack_table(settings: LauncherSettings, env: Mapping[str, str]) -> StackTable | None:
    """The stack's table when ``IDEMPOTENCY_TABLE`` names it, so a release frees its slots and re-pends its job.

    The table is the stack's, in the region of the usual AWS variables,
    whichever regions ``--regions`` names.
    """
    if settings.idempotency_table == NOT_READ_HERE:
        return None
    from session_naming import clients

    from ec2_sessions.release import StackTable

    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or _profile_region() or settings.region
    return StackTable(clients.client("dynamodb", region), settings.idempotency_table)


def session_name(text: str) -> SessionName:
    from session_naming import SessionName

    name = SessionName.parse(text)
    if name is None:
        raise UsageError(f"not a session name: {text!r:.120} (want <base>/<YYYYMMDDTHHMMSSZ>/<16 hex digits>)")
    return name


def owned_only(base: str | None, env: Mapping[str, str]) -> None:
    """Only a base the stack owns is released, kept or unkept: ``SESSION_BASES`` says which (its parameter).

    An operator's credentials usually reach everything; the name typed is no
    proof that its base is this stack's (ec2test's or another stack's
    sessions share the shape, and a keep tag would stop their collector).
    """
    owned = [part.strip() for part in env.get("SESSION_BASES", "").split(",") if part.strip()]
    if not owned:
        raise UsageError("set SESSION_BASES to the stack's bases (its SessionBases parameter)")
    if base not in owned:
        raise UsageError(f"base {base!r:.70} is not one of SESSION_BASES ({', '.join(owned)}): not this stack's")


# ---- the process -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        return args.run(args, os.environ, sys.stdin, sys.stdout)
    except UsageError as error:
        return _fail(USAGE, str(error))
    except Refused as error:
        return _fail(FAILED, str(error))
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except BrokenPipeError:  # the reader stopped early (| head): say nothing more, not even at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except Exception as error:  # noqa: BLE001 - never a traceback to an operator: AWS's words, or the type
        return _fail(FAILED, _aws_error(error) or f"unexpected {type(error).__name__}: {error}")


def _aws_error(error: Exception) -> str | None:
    """botocore's failures as one line naming the fix; ``None`` for anything else (botocore is loaded by then)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"AWS refused {error.operation_name}: {info.get('Code')}: {info.get('Message', '')}"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(error, BotoCoreError):  # no endpoint, a bad profile: botocore's message names the fix
        return f"AWS: {error}"
    return None


def _fail(status: int, message: str) -> int:
    print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr)
    return status
