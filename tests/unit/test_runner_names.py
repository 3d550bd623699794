"""Runner names and registration paths: what GitHub holds that the collector reads back."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from session_naming import SessionName
from session_naming.github import parse_registration_path, runner_name, sessions_of_runner_name

BASE_ALPHABET = string.ascii_letters + string.digits + "._-"
bases = st.text(BASE_ALPHABET, min_size=1, max_size=64)
lifetimes = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3650))
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def test_a_runner_name_is_the_base_the_expiry_and_the_token():
    session = SessionName("ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f60")
    assert runner_name(session) == "ec2-test-runner-20261124T223400Z-3f9a1c2b7d4e5f60"
    assert sessions_of_runner_name(runner_name(session), ["ec2-test-runner"]) == [session]


def test_a_long_base_is_cut_to_thirty_characters_and_still_traces_back():
    base = "a-very-long-base-for-ci-sessions-of-the-nightly-build-farm"
    session = SessionName(f"{base}/20261124T223400Z/3f9a1c2b7d4e5f60")
    name = runner_name(session)
    assert name == f"{base[:30]}-20261124T223400Z-3f9a1c2b7d4e5f60"
    assert sessions_of_runner_name(name, ["ec2-test-runner", base]) == [session]


def test_bases_sharing_their_first_thirty_characters_are_both_candidates():
    one, two = "x" * 30 + "-one", "x" * 30 + "-two"
    session = SessionName(f"{one}/20261124T223400Z/3f9a1c2b7d4e5f60")
    candidates = sessions_of_runner_name(runner_name(session), [one, two])
    assert [c.base for c in candidates] == [one, two]
    assert {(c.expires, c.token) for c in candidates} == {(session.expires, session.token)}


@pytest.mark.parametrize(
    "text",
    [
        "GitHub Actions 5",
        "ec2-test-runner",
        "ec2-test-runner-20261124T223400Z-3F9A1C2B7D4E5F60",  # upper-case token
        "ec2-test-runner-20261124T223400Z-3f9a1c2b7d4e5f6",  # short token
        "ec2-test-runner-20261324T223400Z-3f9a1c2b7d4e5f60",  # month 13
        "ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f60",  # a session name, not a runner name
        "other-base-20261124T223400Z-3f9a1c2b7d4e5f60",  # not an owned base
        "ec2-test-runne-20261124T223400Z-3f9a1c2b7d4e5f60",  # a prefix of an owned base is not it
        " ec2-test-runner-20261124T223400Z-3f9a1c2b7d4e5f60",
        "ec2-test-runner-20261124T223400Z-3f9a1c2b7d4e5f60\n",
        "ec2-test-runner-٢٠٢٦١١٢٤T223400Z-3f9a1c2b7d4e5f60",  # Arabic-Indic digits
    ],
)
def test_anything_else_traces_back_to_nothing(text):
    assert sessions_of_runner_name(text, ["ec2-test-runner"]) == []


def test_a_legacy_session_gets_no_runner_name():
    with pytest.raises(ValueError):
        runner_name(SessionName("ec2-test-runner/2026-11-24-2234/3f9a1c2b"))


@given(bases, lifetimes, moments, st.lists(bases, max_size=3))
def test_every_runner_name_fits_githubs_limit_and_traces_back_to_its_session(base, lifetime, now, others):
    session = SessionName.make(base, lifetime, now)
    name = runner_name(session)
    assert len(name) <= 64
    candidates = sessions_of_runner_name(name, [*others, base])
    assert session in candidates
    assert all(
        c.base[:30] == base[:30] and (c.expires, c.token) == (session.expires, session.token) for c in candidates
    )
    assert sessions_of_runner_name(name, [base]) == [session]


@given(st.one_of(st.text(), st.text(alphabet="-0123456789abcdefTZ", max_size=80)), st.lists(st.text(max_size=70)))
def test_tracing_never_raises_and_answers_only_owned_sessions(text, owned):
    candidates = sessions_of_runner_name(text, owned)
    assert isinstance(candidates, list)
    assert all(isinstance(c, SessionName) and c.base in owned for c in candidates)


@pytest.mark.parametrize("thing", [None, 42, b"ec2-test-runner-20261124T223400Z-3f9a1c2b7d4e5f60", ["x"]])
def test_tracing_anything_but_text_is_nothing(thing):
    assert sessions_of_runner_name(thing, ["ec2-test-runner"]) == []


@pytest.mark.parametrize(
    "path, expected",
    [
        ("repos/Codertocat/Hello-World/actions/runners/23", ("repo", "Codertocat", "Hello-World")),
        ("orgs/Octocoders/actions/runners/23", ("org", "Octocoders", None)),
        ("repos/Codertocat/Hello-World", None),
        ("repos/Codertocat/Hello-World/hooks/23", None),
        ("repos/Codertocat/../actions/runners/23", None),
        ("orgs/./actions/runners/23", None),
        ("repos/Codertocat/Hello-World/actions/runners/023", None),
        ("repos/Codertocat/Hello-World/actions/runners/23/", None),
        ("/repos/Codertocat/Hello-World/actions/runners/23", None),
        ("repos/Codertocat/Hello%2FWorld/actions/runners/23", None),
        ("enterprises/e/actions/runners/23", None),
    ],
)
def test_only_the_two_registration_shapes_are_paths(path, expected):
    assert parse_registration_path(path) == expected


@given(st.text())
def test_parsing_a_path_never_raises(text):
    parsed = parse_registration_path(text)
    assert parsed is None or parsed[0] in ("repo", "org")
