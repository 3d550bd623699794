"""One row per measure: its value, its target and the ratio the target is on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    measure: str
    value: str
    target: str = ""
    ratio: float | None = None
    ok: bool | None = None  # None: reported, no target

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: ""}[self.ok]


def table(rows: list[Row]) -> str:
    header = ("measure", "value", "target", "ratio", "")
    lines = [(r.measure, r.value, r.target, "" if r.ratio is None else f"{r.ratio:.2f}x", r.verdict) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(5)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*header), rule, *(fmt.format(*line).rstrip() for line in lines)])
