"""Local runner: invoke a handler with an event file the way ``sam local invoke`` does, without Docker.

    make invoke FUNCTION=collector|launcher EVENT=events/<file>.json [ENV_VARS=<file>.json]

The environment is the template's (parameters at their defaults), overridden
by an env-vars file in SAM's ``--env-vars`` format. Calls go to
``AWS_ENDPOINT_URL`` when it is set (the demo's moto server), otherwise to the
account of the caller's credentials; the runner says which before it starts.
The response is printed as JSON on stdout; a collector summary also as a
table on stderr. The exit status is 1 when the handler raised.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.cfn_template import load_template  # noqa: E402
from tools.lambda_runtime import LOGICAL_IDS, LambdaContext, env_vars_file, load_handler, template_environment  # noqa: E402
from tools.report import summary_table  # noqa: E402


def invoke(function: str, event: object, env: dict[str, str], build_dir: Path | None = None, timeout: float = 300.0):
    """Set ``env``, import the handler fresh, call it; answer its response (exceptions propagate)."""
    os.environ.update(env)
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

    template = load_template()
    env = template_environment(args.function, template)
    env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon outside Lambda
    if args.env_vars:
        env.update(env_vars_file(args.env_vars, args.function))
    timeout = float(template["Resources"][LOGICAL_IDS[args.function]]["Properties"].get("Timeout", 300))
    event = json.loads(args.event.read_text())
    os.environ.update(env)
    print(f"invoking {args.function} with {args.event} against {target()}", file=sys.stderr)
    try:
        response = invoke(args.function, event, env, args.build_dir, timeout)
    except Exception as error:  # the handler raised: say what, exit non-zero, like Lambda's error answer
        print(json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}))
        return 1
    print(json.dumps(response, indent=2))
    if args.function == "collector":
        print(summary_table(response), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
