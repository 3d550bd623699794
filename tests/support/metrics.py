"""The CloudWatch metrics a handler wrote, read back from its output (Powertools writes EMF to stdout)."""

from __future__ import annotations

import json


def emitted(output: str) -> list[dict]:
    """Every metric in ``output`` as ``{"namespace", "name", "dimensions": {..}, "value"}``."""
    found = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        for directive in record["_aws"]["CloudWatchMetrics"]:
            names = directive["Dimensions"][0] if directive["Dimensions"] else []
            dimensions = {name: record[name] for name in names}
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                found.append(
                    {
                        "namespace": directive["Namespace"],
                        "name": metric["Name"],
                        "dimensions": dimensions,
                        "value": value,
                    }
                )
    return found


def total(output: str, name: str) -> float:
    """The sum of every value written for the metric ``name``."""
    values = [m["value"] for m in emitted(output) if m["name"] == name]
    return sum(sum(v) if isinstance(v, list) else v for v in values)
