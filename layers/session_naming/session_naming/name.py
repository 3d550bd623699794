"""Session names: ``<base>/<expires>/<token>``.

A name carries its own expiry, so a collector can decide from the name alone
whether a resource may go, and 64 random bits, so two CI jobs that start in
the same second never share a key pair or a security group (the race that
Launchpad's ec2test fixed with the same idea).
"""

from __future__ import annotations

import math
import re
import secrets
from datetime import UTC, datetime, timedelta

BASE_PATTERN = r"[A-Za-z0-9._-]{1,64}"
EXPIRES_FORMAT = "%Y%m%dT%H%M%SZ"
_LEGACY_FORMAT = "%Y-%m-%d-%H%M"

# re.ASCII: `\d` must not match Arabic-Indic or other Unicode digits.
_CURRENT = re.compile(
    rf"(?P<base>{BASE_PATTERN})/(?P<expires>\d{{8}}T\d{{6}}Z)/(?P<token>[0-9a-f]{{16}})",
    re.ASCII,
)
# ec2test's form, read so that accounts migrating from it get cleaned, never
# written. ec2test wrote 8 hex digits; older copies may differ in length.
_LEGACY = re.compile(
    rf"(?P<base>{BASE_PATTERN})/(?P<expires>\d{{4}}-\d{{2}}-\d{{2}}-\d{{4}})/(?P<token>[0-9a-f]{{1,32}})",
    re.ASCII,
)
_BASE = re.compile(BASE_PATTERN, re.ASCII)


def format_expires(moment: datetime) -> str:
    """The expiry as it appears in names and in the expires tag."""
    return moment.astimezone(UTC).strftime(EXPIRES_FORMAT)


class SessionName(str):
    """A well-formed session name; a ``str``, so it goes straight to boto3.

    ``SessionName(text)`` raises ``ValueError`` for a malformed name;
    ``SessionName.parse(text)`` answers ``None`` instead, for sweeping code
    that meets arbitrary names in an account.
    """

    base: str
    expires: datetime
    token: str
    legacy: bool

    def __new__(cls, text: str) -> SessionName:
        parts = _split(text)
        if parts is None:
            raise ValueError(f"not a session name (want <base>/<YYYYMMDDTHHMMSSZ>/<16 hex digits>): {text!r:.120}")
        self = super().__new__(cls, text)
        self.base, self.expires, self.token, self.legacy = parts
        return self

    @classmethod
    def make(cls, base: str, lifetime: timedelta, now: datetime | None = None) -> SessionName:
        """A fresh name whose expiry is ``now + lifetime``, rounded up to the second.

        Rounding up means a session never expires before its caller asked.
        """
        if not isinstance(base, str) or not _BASE.fullmatch(base):
            raise ValueError(
                f"base must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-' (no '/'): got {base!r:.80}"
            )
        if not isinstance(lifetime, timedelta) or lifetime <= timedelta(0):
            raise ValueError(f"lifetime must be a positive timedelta: got {lifetime!r}")
        now = datetime.now(UTC) if now is None else now
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        moment = now.astimezone(UTC) + lifetime
        expires = moment.replace(microsecond=0) + timedelta(seconds=math.ceil(moment.microsecond / 1e6))
        return cls(f"{base}/{format_expires(expires)}/{secrets.token_hex(8)}")

    @classmethod
    def parse(cls, text: object) -> SessionName | None:
        """The name, or ``None`` for anything outside the grammar. Never raises."""
        if not isinstance(text, str) or _split(text) is None:
            return None
        return cls(text)

    def is_expired(self, now: datetime, grace: timedelta = timedelta(0)) -> bool:
        """True only once ``now`` has reached the expiry plus the grace for clock skew. Never raises.

        A name in an account is anyone's text: ``.../99991231T235959Z/...``
        parses, and its expiry plus any grace lies past the last moment a
        ``datetime`` can hold. Such a session is simply not expired (it ends
        after every ``now``); a negative grace that falls before the first
        moment makes it expired. Comparing ``now - grace`` instead would
        only move the overflow to a ``now`` near either end.
        """
        try:
            return now >= self.expires + grace
        except OverflowError:
            return grace < timedelta(0)

    def __reduce__(self) -> tuple[type[SessionName], tuple[str]]:
        return (SessionName, (str(self),))


def _split(text: str) -> tuple[str, datetime, str, bool] | None:
    if len(text) > 200:  # longer than any well-formed name; spare the regex
        return None
    for pattern, fmt, legacy in ((_CURRENT, EXPIRES_FORMAT, False), (_LEGACY, _LEGACY_FORMAT, True)):
        match = pattern.fullmatch(text)
        if match:
            try:
                expires = datetime.strptime(match["expires"], fmt).replace(tzinfo=UTC)
            except ValueError:  # month 13, second 60, year 0000 ...
                return None
            return match["base"], expires, match["token"], legacy
    return None
