"""template.yaml as CloudFormation receives it: the SAM transform of the locked translator, for given parameters.

moto never sees what the SAM transform writes (the roles, the schedules'
roles, the permissions of event sources and of the Function URL), and what
it writes depends on the parameters: a Function URL whose ``AuthType`` is a
``!Ref`` gets no permission at all. So the tests read the transform's output,
made by the translator of ``.venv-sam`` (the one ``sam build`` and ``sam
deploy`` use), not the SAM source.

Run it with ``.venv-sam/bin/python tools/sam_transform.py [TEMPLATE]``: standard input
is a JSON list of parameter sets (``{"Name": "value"}``), standard output the
JSON list of transformed templates, in the same order. Local ``CodeUri`` and
``ContentUri`` folders become ``s3://`` addresses, as ``sam package`` makes
them; nothing else is changed. ``tests/support/deployed.py`` calls it.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


class NoManagedPolicies:
    """The translator asks IAM for managed policy names only when a policy is named, not given by ARN; ours are not."""

    def load(self) -> dict[str, str]:
        return {}


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """The template as ``sam package`` uploads it: code folders replaced by S3 addresses."""
    template = copy.deepcopy(template)
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://ec2-sessions-artifacts/{properties[key]}"
    return template


def main() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator asks boto3 for a partition
    from cfnlint.decode import decode
    from samtranslator.translator.transform import transform

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE
    source, errors = decode(str(path))
    if errors or source is None:
        sys.exit(f"{path}: {'; '.join(str(error) for error in errors)}")
    template = packaged(json.loads(json.dumps(source)))
    parameter_sets = json.load(sys.stdin)
    answers = [transform(copy.deepcopy(template), parameters, NoManagedPolicies()) for parameters in parameter_sets]
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
