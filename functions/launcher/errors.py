"""What can go wrong in the launcher's domain, free of HTTP; the app maps each to a status code."""

from __future__ import annotations

NO_PROFILE = "none"  # the profile dimension of a session without an instance


class DomainError(Exception):
    """A refusal the caller can act on; the message says what to do and repeats nothing sent."""


class SessionNotFound(DomainError):
    """No resource of the session exists here (released already, expired and swept, or never made)."""


class SessionKept(DomainError):
    """A resource of the session carries the keep tag: an operator holds it, so nothing is released."""


class TooManySessions(DomainError):
    """The base has ``MAX_LIVE_SESSIONS`` live sessions."""


class NoCapacity(DomainError):
    """Every market the profile allows answered with capacity errors only: try again later (503, Retry-After)."""

    def __init__(self, message: str, profile: str):
        super().__init__(message)
        self.profile = profile


class JobOver(DomainError):
    """The CI job that asks for a session has already ended: nothing is made for it."""


class JobBusy(DomainError):
    """Another delivery for the same job is making its session right now."""


class OutOfTime(Exception):
    """The invocation's time would run out before the create could finish: it stopped and was rolled back."""


class LaunchFailed(Exception):
    """A create failed half-way and was rolled back; ``code`` is the AWS error code only."""

    def __init__(self, code: str, left: list[str], base: str = "", profile: str = NO_PROFILE):
        super().__init__(code)
        self.code, self.left, self.base, self.profile = code, left, base, profile
