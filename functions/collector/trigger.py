"""What may start a sweep, and what it may ask for.

A trigger may turn dry-run on, never off, and may never widen what the
stack owns: any field beyond ``dry_run`` is refused, not ignored, so a
caller who believes ``{"bases": [...]}`` did something learns it did not.
"""

from __future__ import annotations


class InvalidTrigger(ValueError):
    """The event is not one the collector accepts; the message says which it takes."""


def requested_dry_run(event: object) -> bool:
    """Accepts an EventBridge scheduled event, ``{}``, or ``{"dry_run": bool}``."""
    if not isinstance(event, dict):
        raise InvalidTrigger(f"event must be a JSON object, not {type(event).__name__}")
    if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
        return False
    unknown = sorted(set(event) - {"dry_run"})
    if unknown:
        raise InvalidTrigger(
            f"unknown field(s) {', '.join(map(repr, unknown))}: a direct invoke may only carry "
            '"dry_run" (true or false); bases, regions and limits come from the stack\'s configuration'
        )
    dry_run = event.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidTrigger(f'"dry_run" must be true or false, not {dry_run!r:.40}')
    return dry_run
