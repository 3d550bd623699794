"""The summary's log line: one CloudWatch event (256 KB at most), whatever the run's size."""

from __future__ import annotations

import json

from sweep import LOG_BUDGET_BYTES, summary_for_log


def summary(regions: int, per_list: int, name_length: int = 60) -> dict:
    report = {
        "deleted": ["d" * name_length] * per_list,
        "kept": [{"name": "k" * name_length, "reason": "not-expired"}] * per_list,
        "failed": [],
    }
    return {
        "dry_run": False,
        "cut_short": None,
        "totals": {"deleted": regions * per_list, "kept": regions * per_list, "failed": 0},
        "regions": {f"r{i}": {"instance": report, "key_pair": report} for i in range(regions)},
    }


def size(value) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def test_a_summary_that_fits_is_logged_whole():
    small = summary(regions=2, per_list=5)

    assert summary_for_log(small) is small


def test_a_large_summary_keeps_every_total_region_and_kind_and_counts_what_it_cut():
    large = summary(regions=3, per_list=20_000)

    cut = summary_for_log(large)

    assert size(large) > LOG_BUDGET_BYTES >= size(cut)
    assert cut["totals"] == large["totals"]
    assert cut["lists_cut_to"] == 100
    report = cut["regions"]["r2"]["key_pair"]
    assert len(report["deleted"]) == len(report["kept"]) == 100
    assert report["more"] == {"deleted": 19_900, "kept": 19_900}
    assert report["failed"] == []


def test_names_as_long_as_aws_allows_in_every_region_still_fit_by_cutting_further():
    # Thirty regions of 2,048-character parameter names: a hundred each would be 24 MB.
    large = summary(regions=30, per_list=500, name_length=2048)

    cut = summary_for_log(large)

    assert size(cut) <= LOG_BUDGET_BYTES
    assert cut["lists_cut_to"] < 100
    assert set(cut["regions"]) == set(large["regions"])
    assert all(r["more"]["deleted"] + len(r["deleted"]) == 500 for k in cut["regions"].values() for r in k.values())
