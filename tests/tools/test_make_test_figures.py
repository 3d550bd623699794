"""docs/performance.md's make-test figures are the ones tools/make_test_figures.py writes, in its words."""

from __future__ import annotations

import pytest

from tools.make_test_figures import BEGIN, DOC, END, SENTENCE, Failed, Figures, pytest_summary, rewrite, written

FIGURES = Figures(total_seconds=424.4, tests=853, pytest_seconds=354.2, date="2026-12-06", cores=2, arch="x86_64")


def test_the_figures_come_from_pytests_last_summary_line():
    output = "suite\n==== 12 passed in 3.00s ====\nmore\n=== 853 passed, 2 warnings in 354.20s (0:05:54) ===\ndemo\n"

    assert pytest_summary(output) == (853, 354.2)


@pytest.mark.parametrize(
    "output",
    ["no summary at all\n", "==== 851 passed, 2 failed in 350.00s (0:05:50) ====\n", "=== 1 error in 2.00s ===\n"],
)
def test_a_run_that_did_not_pass_gives_no_figures(output):
    with pytest.raises(Failed):
        pytest_summary(output)


def test_the_figures_replace_only_the_marked_block():
    doc = DOC.read_text()

    rewritten = rewrite(doc, FIGURES)

    assert written(rewritten) == FIGURES.sentence()
    assert FIGURES.sentence() == (
        "On a 2-core x86_64 machine a fresh clone took 7 min 4 s for `make test` and `make demo` together "
        "(`.ci/run`, 2026-12-06): 853 tests, pytest 5 min 54 s of it."
    )
    assert outside(rewritten) == outside(doc)


def outside(doc: str) -> str:
    return doc[: doc.index(BEGIN)] + doc[doc.index(END) :]


def test_the_block_in_the_doc_is_in_the_tools_words():
    """A figure typed by hand in other words fails here; the tool's own sentence passes."""
    assert SENTENCE.fullmatch(written(DOC.read_text()))
