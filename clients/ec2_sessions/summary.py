"""A collector summary found in what an operator pipes in, and shown as a table (the JSON stays the record)."""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ec2_sessions import Refused


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


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart, the first row being the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def counts(by_kind: Mapping[str, Any]) -> str:
    """``kind n, kind m``: how many of each kind (a list counts its items)."""
    return ", ".join(f"{kind} {len(v) if isinstance(v, list) else v}" for kind, v in by_kind.items()) or "nothing"


def summary_table(summary: dict) -> str:
    """One row per kind, in the sweep's order (the summary's), summed over regions, then what it removed.

    A logged summary too large for one log event keeps the first entries of
    each list and counts the rest under ``"more"`` (collector ``summary_for_log``):
    those count here too, so the table of a cut summary still adds up to its totals.
    """
    rows = [("kind", "deleted", "kept (by reason)", "failed")]
    kinds = dict.fromkeys(kind for region in summary["regions"].values() for kind in region)
    for kind in kinds:
        deleted, failed, reasons = 0, 0, Counter[str]()
        for region in summary["regions"].values():
            report = region.get(kind, {"deleted": [], "kept": [], "failed": []})
            more = report.get("more", {})
            deleted += len(report["deleted"]) + more.get("deleted", 0)
            failed += len(report["failed"]) + more.get("failed", 0)
            reasons.update(k["reason"] for k in report["kept"])
            reasons.update({"reason not logged": more.get("kept", 0)} if more.get("kept") else {})
        kept = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items())) or "-"
        rows.append((kind, str(deleted), kept, str(failed)))
    mode = "dry run: nothing deleted, 'deleted' is what would go" if summary["dry_run"] else "real run"
    cut = f"; cut short ({summary['cut_short']}), the next run continues" if summary["cut_short"] else ""
    return "\n".join([*table(rows), *removed_line(summary), f"({mode}{cut})"])


def removed_line(summary: dict) -> list[str]:
    """What the sweep removed, to price it: GiB of volumes and snapshots, and Elastic IP addresses."""
    removed = summary.get("removed")
    if not isinstance(removed, dict):
        return []
    verb = "would remove" if summary["dry_run"] else "removed"
    return [
        f"{verb} {removed.get('volume_gib', 0):g} GiB of volumes, {removed.get('snapshot_gib', 0):g} GiB of snapshots, "
        f"{removed.get('addresses', 0)} Elastic IP addresses"
    ]
