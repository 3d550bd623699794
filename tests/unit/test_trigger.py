"""What may start a sweep: a schedule, or a direct invoke that can only turn dry-run on."""

from __future__ import annotations

import pytest
from trigger import InvalidTrigger, requested_dry_run

from tests.support.handlers import load_event


@pytest.mark.parametrize(
    ("event", "dry_run"),
    [
        (load_event("collector-scheduled.json"), False),
        (load_event("collector-schedule-input.json"), False),
        (load_event("collector-dry-run.json"), True),
        ({}, False),
    ],
)
def test_collector_accepts_schedule_and_direct_invokes(event, dry_run):
    assert requested_dry_run(event) is dry_run


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"bases": ["someone-else"]}, "unknown field"),
        ({"dry_run": True, "regions": ["us-west-2"]}, "unknown field"),
        ({"dry_run": "false"}, "must be true or false"),
        ({"dry_run": 0}, "must be true or false"),
        ([], "JSON object"),
        ("sweep", "JSON object"),
        (None, "JSON object"),
    ],
)
def test_collector_refuses_any_other_event_saying_what_it_takes(event, message):
    with pytest.raises(InvalidTrigger, match=message):
        requested_dry_run(event)
