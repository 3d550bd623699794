"""The session name: the grammar of DESIGN.md, as properties over generated input."""

from __future__ import annotations

import pickle
import re
import string
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from session_naming import SessionName
from session_naming import name as name_module

BASE_ALPHABET = string.ascii_letters + string.digits + "._-"
bases = st.text(BASE_ALPHABET, min_size=1, max_size=64)
lifetimes = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650))
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
# EC2-VPC security group names: a-z A-Z 0-9 spaces and ._-:/()#,@[]+=&;{}!$*
EC2_VPC_GROUP_NAME = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{1,255}")
SSM_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_.\-/]+")


@given(bases, lifetimes, moments)
def test_make_then_parse_round_trips_and_never_expires_early(base, lifetime, now):
    name = SessionName.make(base, lifetime, now)
    parsed = SessionName.parse(str(name))

    assert parsed == name and isinstance(parsed, SessionName)
    assert (parsed.base, parsed.expires, parsed.token) == (base, name.expires, name.token)
    assert name.expires >= now + lifetime
    assert name.expires - (now + lifetime) < timedelta(seconds=1)
    assert name.expires.tzinfo is not None and name.expires.utcoffset() == timedelta(0)


@given(bases, lifetimes, moments)
def test_every_generated_name_is_legal_for_ec2_tags_and_ssm(base, lifetime, now):
    name = SessionName.make(base, lifetime, now)

    assert len(name) <= 255  # key pair names, group names, tag values
    assert name.isascii() and name.isprintable()
    assert EC2_VPC_GROUP_NAME.fullmatch(name)
    assert not name.lower().startswith("sg-")  # reserved for group ids
    assert SSM_PATH_SEGMENT.fullmatch(f"/{name}/private-key")
    assert len(f"/{name}/private-key") <= 1011  # SSM parameter name limit


@given(st.text())
def test_parse_never_raises_and_answers_none_outside_the_grammar(text):
    parsed = SessionName.parse(text)

    assert parsed is None or (isinstance(parsed, SessionName) and str(parsed) == text)


@given(st.text(alphabet="/0123456789abcdefTZ-", max_size=300))
def test_parse_survives_slash_heavy_and_digit_heavy_text(text):
    SessionName.parse(text)


@given(st.text(min_size=201, max_size=5000))
def test_parse_refuses_very_long_text(text):
    assert SessionName.parse(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "ec2-test-runner/20261324T223400Z/3f9a1c2b7d4e5f60",  # month 13
        "ec2-test-runner/20260230T223400Z/3f9a1c2b7d4e5f60",  # 30 February
        "ec2-test-runner/20261124T246000Z/3f9a1c2b7d4e5f60",  # hour 24
        "ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f6",  # 15-digit token
        "ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f600",  # 17-digit token
        "ec2-test-runner/20261124T223400Z/3F9A1C2B7D4E5F60",  # upper-case token
        "ec2-test-runner/20261124T223400/3f9a1c2b7d4e5f60",  # no Z
        "ec2-test-runner/2026-11-24T22:34:00Z/3f9a1c2b7d4e5f60",  # extended ISO form
        "/20261124T223400Z/3f9a1c2b7d4e5f60",  # empty base
        "a/b/20261124T223400Z/3f9a1c2b7d4e5f60",  # slash in base
        "ec2 test/20261124T223400Z/3f9a1c2b7d4e5f60",  # space in base
        "x" * 65 + "/20261124T223400Z/3f9a1c2b7d4e5f60",  # base too long
        "prefix ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f60",  # ec2test searched; we match whole
        "ec2-test-runner/20261124T223400Z/3f9a1c2b7d4e5f60 ",
        "ec2-test-runner/٢٠٢٦١١٢٤T223400Z/3f9a1c2b7d4e5f60",  # Arabic-Indic digits
        "ec2-test-runner/2026-13-01-1200/abcd1234",  # legacy, month 13
        "",
    ],
)
def test_near_misses_do_not_parse(text):
    assert SessionName.parse(text) is None
    with pytest.raises(ValueError, match="not a session name"):
        SessionName(text)


def test_legacy_ec2test_names_are_read_with_minute_resolution():
    name = SessionName.parse("ec2-test-runner/2009-10-01-1234/abcd1234")

    assert name.legacy
    assert (name.base, name.token) == ("ec2-test-runner", "abcd1234")
    assert name.expires == datetime(2009, 10, 1, 12, 34, tzinfo=UTC)


def test_is_expired_only_once_now_reaches_expiry_plus_grace():
    name = SessionName("b/20261124T220000Z/0123456789abcdef")
    grace = timedelta(seconds=300)

    assert not name.is_expired(datetime(2026, 11, 24, 22, 4, 59, tzinfo=UTC), grace)
    assert name.is_expired(datetime(2026, 11, 24, 22, 5, 0, tzinfo=UTC), grace)
    assert name.is_expired(datetime(2026, 11, 24, 22, 0, 0, tzinfo=UTC))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# Every expiry the grammar can carry, from the first second of year 1 to the last of year 9999.
# Half the draws sit in the first or last weeks of the calendar, where arithmetic overflows.
LAST = datetime(9999, 12, 31, 23, 59, 59)
expiries = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=LAST),
    st.datetimes(min_value=LAST - timedelta(days=7), max_value=LAST),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 8)),
)
any_now = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime.max, timezones=st.just(UTC))
graces = st.one_of(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),  # what GRACE_SECONDS allows
    st.timedeltas(min_value=-timedelta(days=3650), max_value=timedelta(days=3650)),
)


def spelled(moment: datetime, legacy: bool, token: str) -> str:
    """A name of base ``b`` expiring at ``moment``, zero-padded by hand (strftime drops year zeros)."""
    m = moment
    if legacy:
        return f"b/{m.year:04d}-{m.month:02d}-{m.day:02d}-{m.hour:02d}{m.minute:02d}/{token[:8]}"
    return f"b/{m.year:04d}{m.month:02d}{m.day:02d}T{m.hour:02d}{m.minute:02d}{m.second:02d}Z/{token}"


@given(expiries, st.booleans(), st.text("0123456789abcdef", min_size=16, max_size=16), any_now, graces)
def test_is_expired_never_raises_over_the_whole_parsable_range_and_agrees_with_integer_arithmetic(
    moment, legacy, token, now, grace
):
    name = SessionName.parse(spelled(moment, legacy, token))
    assert name is not None, spelled(moment, legacy, token)

    expired = name.is_expired(now, grace)

    # The oracle counts microseconds from the epoch in Python integers, which cannot overflow.
    expires_at = (name.expires - EPOCH) // MICROSECOND + grace // MICROSECOND
    assert expired is ((now - EPOCH) // MICROSECOND >= expires_at)


@pytest.mark.parametrize("text", ["b/99991231T235959Z/0123456789abcdef", "b/9999-12-31-2359/0123abcd"])
def test_an_expiry_so_late_that_adding_the_grace_overflows_is_not_expired(text):
    name = SessionName(text)

    assert not name.is_expired(datetime.max.replace(tzinfo=UTC), timedelta(seconds=300))
    assert not name.is_expired(datetime(2026, 11, 24, tzinfo=UTC), timedelta(days=1))


def test_a_hundred_thousand_names_have_a_hundred_thousand_tokens():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    tokens = {SessionName.make("b", timedelta(hours=1), now).token for _ in range(100_000)}

    assert len(tokens) == 100_000


def test_tokens_come_from_secrets():
    with mock.patch.object(name_module.secrets, "token_hex", return_value="00000000deadbeef") as token_hex:
        name = SessionName.make("b", timedelta(hours=1))

    token_hex.assert_called_once_with(8)
    assert name.token == "00000000deadbeef"


@pytest.mark.parametrize(
    ("base", "lifetime", "message"),
    [
        ("", timedelta(hours=1), "base must be 1 to 64"),
        ("x" * 65, timedelta(hours=1), "base must be 1 to 64"),
        ("a/b", timedelta(hours=1), "no '/'"),
        ("a b", timedelta(hours=1), "base must be"),
        ("café", timedelta(hours=1), "base must be"),
        ("ok", timedelta(0), "lifetime must be a positive"),
        ("ok", timedelta(seconds=-1), "lifetime must be a positive"),
        ("ok", 60, "lifetime must be a positive timedelta"),
    ],
)
def test_make_refuses_bad_base_or_lifetime_saying_what_is_wrong(base, lifetime, message):
    with pytest.raises(ValueError, match=message):
        SessionName.make(base, lifetime)


def test_make_refuses_a_naive_clock():
    with pytest.raises(ValueError, match="timezone-aware"):
        SessionName.make("ok", timedelta(hours=1), datetime(2026, 11, 24))


def test_a_name_survives_pickling_with_its_parts():
    name = SessionName.make("ok", timedelta(hours=1))

    assert pickle.loads(pickle.dumps(name)).expires == name.expires  # noqa: S301 (our own bytes)
