"""Local runner: invoke a handler with an event file the way ``sam local invoke`` does, without Docker.

    make invoke FUNCTION=collector|launcher EVENT=events/<file>.json [ENV_VARS=<file>.json]

The environment is the template's (parameters at their defaults), overridden
by an env-vars file in SAM's ``--env-vars`` format. Calls go to
``AWS_ENDPOINT_URL`` when it is set (the demo's moto server), otherwise to the
account of the caller's credentials; the runner says which before it starts.

Standard output carries the handler's answer as JSON and nothing else, so it
can be piped (``| jq``): the handler's logs and metrics, which Powertools
writes to standard output as Lambda expects, go to standard error here, as
do this runner's own lines and a collector summary's table. Exit status: 0
when the answer is a 2xx (or has no status: the collector's summary); 1 when
the handler answered a 4xx or 5xx or raised; 2 on bad usage: arguments, or
an event or env-vars file that cannot be used (one line naming it). ``make
invoke`` runs this and exits non-zero whenever it does (make's own 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "clients")]

from ec2_sessions.summary import summary_table  # noqa: E402

from tools.lambda_runtime import LOGICAL_IDS, LambdaContext, env_vars_file, load_handler, template_environment  # noqa: E402


def invoke(
    function: str,
    event: object,
    env: dict[str, str],
    build_dir: Path | None = None,
    timeout: float = 300.0,
    log: IO[str] | None = None,
):
    """Set ``env``, import the handler fresh, call it; answer its response (exceptions propagate).

    The handler is imported and called with standard output pointing at
    ``log`` (standard error unless given): Powertools' Logger binds its
    stream when it is made (at import) and Metrics prints when the handler
    returns, both to standard output as Lambda expects.
    """
    os.environ.update(env)
    with contextlib.redirect_stdout(log or sys.stderr):
        handler = load_handler(function, build_dir)
        return handler.lambda_handler(
            event, LambdaContext(function_name=f"ec2-sessions-{function}", timeout_seconds=timeout)
        )


def target() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return f"endpoint {endpoint} (AWS_ENDPOINT_URL)"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "the default region"
    return f"the AWS account of your current credentials, region {region}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--function", choices=sorted(LOGICAL_IDS), required=True)
    parser.add_argument("--event", type=Path, required=True)
    parser.add_argument("--env-vars", type=Path, help="SAM --env-vars JSON file")
    parser.add_argument("--build-dir", type=Path, help="sam build output (default: the source folders)")
    args = parser.parse_args(argv)

    try:
        event = read_json(args.event, "event")
        env_vars = read_env_vars(args.env_vars, args.function) if args.env_vars else {}
    except ValueError as error:
        print(f"make invoke: {error}", file=sys.stderr)
        return 2
    from tools.cfn_template import load_template  # cfn-lint's decoder: 0.7 s, paid only once the files are good

    template = load_template()
    env = template_environment(args.function, template)
    env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon outside Lambda
    env.update(env_vars)
    timeout = float(template["Resources"][LOGICAL_IDS[args.function]]["Properties"].get("Timeout", 300))
    os.environ.update(env)
    print(f"invoking {args.function} with {args.event} against {target()}", file=sys.stderr)
    try:
        response = invoke(args.function, event, env, args.build_dir, timeout)
    except Exception as error:  # the handler raised: say what, exit non-zero, like Lambda's error answer
        print(json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}))
        return 1
    print(json.dumps(response, indent=2))
    if args.function == "collector" and isinstance(response, dict) and "regions" in response:
        print(summary_table(response), file=sys.stderr)
    status = response.get("statusCode") if isinstance(response, dict) else None
    if isinstance(status, int) and not 200 <= status < 300:
        print(f"make invoke: the handler answered {status}", file=sys.stderr)
        return 1
    return 0


def read_json(path: Path, what: str) -> object:
    """The JSON in ``path``, or ``ValueError`` naming the file in one line."""
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"{path}: cannot read the {what} file ({error.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: the {what} file is not JSON ({error})") from None


def read_env_vars(path: Path, function: str) -> dict[str, str]:
    """SAM's ``--env-vars`` file, checked: an object whose ``Parameters`` and function entries are objects."""
    data = read_json(path, "env-vars")
    sections = ("Parameters", LOGICAL_IDS[function])
    if not isinstance(data, dict) or any(not isinstance(data.get(name, {}), dict) for name in sections):
        raise ValueError(f'{path}: the env-vars file must be {{"Parameters": {{...}}, "{sections[1]}": {{...}}}}')
    return env_vars_file(path, function)


if __name__ == "__main__":
    sys.exit(main())
