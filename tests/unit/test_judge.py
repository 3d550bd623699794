"""``judge``: the one rule, shared by the sweep and the launcher's release, on listings made by hand."""

from __future__ import annotations

from collections.abc import Mapping

from session_naming.resources import Found, judge

BASES = ("ec2-test-runner",)
A = "ec2-test-runner/20261124T220000Z/000000000000000a"
B = "ec2-test-runner/20261124T220000Z/000000000000000b"


def tagged(session: str, **more: str) -> dict[str, str]:
    return {"ec2-sessions:session": session, **{f"ec2-sessions:{k}": v for k, v in more.items()}}


def reasons(verdicts) -> dict[tuple[str, str], str]:
    return {(found.kind, found.ident): reason for found, reason in verdicts.kept}


def test_a_keep_tag_on_a_left_behind_snapshot_keeps_every_kind_of_its_session():
    listed = [
        Found("key_pair", A, A, tagged(A)),
        Found("parameter", A, f"/{A}/private-key", tagged(A)),
        Found("snapshot", A, "snap-1", tagged(A, keep="TRUE")),
        Found("key_pair", B, B, tagged(B)),
    ]

    verdicts = judge(listed, BASES)

    assert [found.ident for found in verdicts.deletable] == [B]
    assert set(reasons(verdicts).values()) == {"keep-tag"} and len(verdicts.kept) == 3


def test_a_keep_tag_on_a_resource_whose_tag_names_another_session_keeps_that_session_too():
    key_pair = Found("key_pair", A, A, {**tagged(B), "ec2-sessions:keep": "true"})
    listed = [key_pair, Found("volume", B, "vol-1", tagged(B))]

    verdicts = judge(listed, BASES)

    assert verdicts.deletable == []
    assert reasons(verdicts) == {("key_pair", A): "keep-tag", ("volume", "vol-1"): "keep-tag"}


def test_parameters_are_held_to_the_tag_rules_once_their_tags_are_known():
    listed = [
        Found("parameter", A, f"/{A}/private-key", tagged(B)),
        Found("parameter", B, f"/{B}/runner-jitconfig", {}),
    ]

    assert reasons(judge(listed, BASES)) == {
        ("parameter", f"/{A}/private-key"): "tag-mismatch",
        ("parameter", f"/{B}/runner-jitconfig"): "untagged-legacy",
    }
    assert [f.ident for f in judge(listed[1:], BASES, sweep_untagged=True).deletable] == [f"/{B}/runner-jitconfig"]


class Unreadable(Mapping):
    """Tags no one can read: judging this one resource raises."""

    def __getitem__(self, key):
        raise RuntimeError("unreadable")

    def __iter__(self):
        raise RuntimeError("unreadable")

    def __len__(self):
        return 1


def test_a_resource_that_cannot_be_judged_fails_alone_and_its_session_is_kept():
    listed = [
        Found("volume", A, "vol-odd", Unreadable()),
        Found("key_pair", A, A, tagged(A)),  # its session might be tagged keep: unproven, so kept
        Found("volume", B, "vol-1", tagged(B)),
    ]

    verdicts = judge(listed, BASES)

    assert [(found.ident, code) for found, code in verdicts.failed] == [("vol-odd", "RuntimeError")]
    assert reasons(verdicts) == {("key_pair", A): "keep-tag"}
    assert [found.ident for found in verdicts.deletable] == ["vol-1"]
