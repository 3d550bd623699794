"""A collector summary as a short table for people (the JSON stays the record)."""

from __future__ import annotations

from collections import Counter


def summary_table(summary: dict) -> str:
    """One row per kind, in the sweep's order (the summary's), summed over regions."""
    rows = [("kind", "deleted", "kept (by reason)", "failed")]
    kinds = dict.fromkeys(kind for region in summary["regions"].values() for kind in region)
    for kind in kinds:
        deleted, failed, reasons = 0, 0, Counter()
        for region in summary["regions"].values():
            report = region.get(kind, {"deleted": [], "kept": [], "failed": []})
            deleted += len(report["deleted"])
            failed += len(report["failed"])
            reasons.update(k["reason"] for k in report["kept"])
        kept = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items())) or "-"
        rows.append((kind, str(deleted), kept, str(failed)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    mode = "dry run: nothing deleted, 'deleted' is what would go" if summary["dry_run"] else "real run"
    cut = f"; cut short ({summary['cut_short']}), the next run continues" if summary["cut_short"] else ""
    return "\n".join([*lines, f"({mode}{cut})"])
