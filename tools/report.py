"""Tables for people: a collector summary, or any rows (the JSON stays the record)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart, the first row being the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def summary_table(summary: dict) -> str:
    """One row per kind, in the sweep's order (the summary's), summed over regions.

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
    return "\n".join([*table(rows), f"({mode}{cut})"])
