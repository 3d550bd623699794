"""The one fake Lambda context matches what Powertools types handlers against, and counts its deadline down."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import time
from pathlib import Path

from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsContext

from tests.support.handlers import LambdaContext as SuitesContext
from tools.lambda_context import LambdaContext
from tools.lambda_runtime import LambdaContext as RuntimeContext


def test_it_has_every_attribute_of_powertools_lambda_context_with_its_type():
    ours = {f.name: f.type for f in dataclasses.fields(LambdaContext)}
    theirs = {
        name: inspect.signature(member.fget).return_annotation
        for name, member in inspect.getmembers(PowertoolsContext)
        if isinstance(member, property)
    }

    assert set(theirs) <= set(ours), set(theirs) - set(ours)
    for name in ("function_name", "function_version", "invoked_function_arn", "aws_request_id", "log_stream_name"):
        assert ours[name] == "str" and theirs[name] in ("str", str), name
    assert ours["memory_limit_in_mb"] == "int"
    assert callable(LambdaContext().get_remaining_time_in_millis)


def test_remaining_time_counts_down_from_the_timeout_and_stops_at_zero():
    context = LambdaContext(timeout_seconds=2)
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)

    assert 1900 < first <= 2000
    assert context.get_remaining_time_in_millis() < first
    assert LambdaContext(timeout_seconds=0, started=time.monotonic() - 5).get_remaining_time_in_millis() == 0


def test_there_is_one_context_and_its_module_imports_only_the_standard_library():
    """tools/smoke.py runs where only boto3 is installed and imports it from there."""
    source = Path(inspect.getfile(LambdaContext))
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }

    assert SuitesContext is LambdaContext and RuntimeContext is LambdaContext
    assert imported <= {"__future__", "dataclasses", "time"}, imported
