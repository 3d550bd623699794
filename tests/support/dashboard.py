"""The operators' dashboard read back from template.yaml: its body as CloudFormation would write it, and its metrics.

The body is a ``!Sub`` of JSON; it is resolved with the repository's one
template evaluator (``tools/cfn_template.Resolver``), each resource standing
in by its logical id (an alarm's ``Arn`` by an alarm ARN of that name), so
what the tests parse is the JSON CloudWatch would receive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tools.cfn_template import PSEUDO_PARAMETERS, Resolver

DASHBOARD = "AWS::CloudWatch::Dashboard"
# SEARCH('{"namespace",dimension,...} MetricName="Name"', ...): the schema is the exact set of dimensions.
_SEARCH = re.compile(r"""SEARCH\(\s*'\s*\{(?P<schema>[^}]*)\}\s*MetricName\s*=\s*"(?P<name>[^"]+)"\s*'""")


def stand_ins(template: Mapping[str, Any]) -> dict[str, str]:
    """A value for every ``Ref`` and ``Fn::GetAtt ...Arn`` of the template's resources."""
    region, account = PSEUDO_PARAMETERS["AWS::Region"], PSEUDO_PARAMETERS["AWS::AccountId"]
    values = {}
    for logical in template["Resources"]:
        values[logical] = logical
        values[f"{logical}.Arn"] = f"arn:aws:cloudwatch:{region}:{account}:alarm:{logical}"
    return values


def dashboard_body(template: Mapping[str, Any]) -> dict[str, Any]:
    """The one dashboard's body, resolved and parsed (a ``ValueError`` if it is not JSON)."""
    [dashboard] = [r for r in template["Resources"].values() if r["Type"] == DASHBOARD]
    body = Resolver(template, resources=stand_ins(template)).resolve(dashboard["Properties"]["DashboardBody"])
    return json.loads(body)


def widget_metrics(widget: Mapping[str, Any]) -> set[tuple[str, str, frozenset[str]]]:
    """``(namespace, metric name, dimension names)`` of every metric a widget names or searches for."""
    found = set()
    for entry in widget.get("properties", {}).get("metrics", []):
        options = entry[-1] if entry and isinstance(entry[-1], dict) else {}
        if "expression" in options:
            for search in _SEARCH.finditer(options["expression"]):
                namespace, *dimensions = (part.strip().strip('"') for part in search["schema"].split(","))
                found.add((namespace, search["name"], frozenset(dimensions)))
            continue
        namespace, name, *pairs = (item for item in entry if not isinstance(item, dict))
        found.add((namespace, name, frozenset(pairs[0::2])))
    return found


def dashboard_metrics(template: Mapping[str, Any]) -> set[tuple[str, str, frozenset[str]]]:
    """Every metric the dashboard shows: ``(namespace, metric name, frozenset(dimension names))``.

    A widget's metric is ``[namespace, name, dimension, value, ..., {options}]``;
    a ``SEARCH`` expression counts as the metric its schema and ``MetricName``
    match (the schema is an exact dimension set). Expressions over other
    entries (``SUM(METRICS())``) name no metric of their own.
    """
    return {metric for widget in dashboard_body(template)["widgets"] for metric in widget_metrics(widget)}
