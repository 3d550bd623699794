"""The sweep of GitHub runner registrations that expired sessions leave behind.

A just-in-time runner removes itself once it has run its job; one whose
instance never started, or died, stays registered and offline. Two ways
lead to those: the ``ec2-sessions:github-runner`` tag on a session's
resources names its registration, and a runner's name traces back to its
session (``<base[:30]>-<expires>-<token>``), which catches registrations
whose session's resources are already gone.

The rules are the collector's, applied to a resource that lives in GitHub:
only a registration of an owned base's session, expired plus the grace, not
kept and not live; and never one that GitHub shows online or busy, since
that runner may be running a job. A tag is written by whoever may tag EC2
resources, so its path must be a registration path in the allow-list, and
the registration it names must carry that session's runner name.

Everything is listed before anything is deleted, as in the EC2 sweep. Each
registration's failure is its own; a rate limit longer than the client's
budget ends this part of the run, and the next run picks up what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from session_naming import SessionName
from session_naming.github import (
    GitHubApp,
    GitHubError,
    RateLimited,
    Runner,
    parse_registration_path,
    scope_root,
    sessions_of_runner_name,
)
from session_naming.settings import GitHubSettings

KIND = "github_runner"
# What this part of the sweep asks AWS for (the template grants exactly it, on the App's secret only).
PERMISSIONS = frozenset({"secretsmanager:GetSecretValue"})
Outcome = tuple[str, str, str | None]  # (session, "deleted" | "kept" | "failed", detail)


class _Stop(Exception):
    """The run must make no more GitHub calls: the budget is spent or GitHub asks for a long wait."""


def targets(settings: GitHubSettings) -> list[tuple[str, str | None]]:
    """Where registrations are listed: ``(owner, repo)`` per exact repository (scope ``repo``), ``(owner, None)``
    per owner (scope ``org``). An empty or wildcard-only allow-list names no repository to list."""
    if settings.runner_scope == "org":
        return [(owner, None) for owner in dict.fromkeys(entry.split("/")[0] for entry in settings.repositories)]
    # Settings let only "owner/repo" and "owner/*" through: one "/" each.
    return [(owner, repo) for owner, _, repo in (e.partition("/") for e in settings.repositories) if repo != "*"]


def allowed(settings: GitHubSettings, scope: str, owner: str, repo: str | None) -> bool:
    """Is a registration in this repository or organisation one the stack may touch?"""
    if scope == "repo":
        return settings.allows(f"{owner}/{repo}")
    owners = {entry.split("/")[0] for entry in settings.repositories}
    return not settings.repositories or owner.lower() in owners


def sweep_registrations(
    app: GitHubApp,
    settings: GitHubSettings,
    bases: Iterable[str],
    now: datetime,
    grace: timedelta,
    *,
    tagged: Mapping[str, str],
    kept: set[str],
    live: set[str],
    dry_run: bool,
    take_budget: Callable[[], bool],
) -> list[Outcome]:
    """Delete the registrations of expired sessions; answer ``(name, outcome, detail)`` for each one met.

    ``tagged`` maps a session name to the registration path its resources
    carry; ``kept`` and ``live`` are session names never to touch. ``name``
    is the session (``<listing ROOT>`` for a listing that failed); ``detail``
    is the path when deleted, the reason when kept, the error code when
    failed. ``take_budget`` is asked before each delete, in a dry run too,
    so a dry run reports what a real one would do.
    """
    owned = tuple(bases)
    outcomes: list[Outcome] = []
    tokens = _Tokens(app)

    def judge(session: SessionName) -> str | None:
        if session.base not in owned:
            return "other-base"
        if session in kept:
            return "keep-tag"
        if session in live:
            return "live"
        try:
            if not session.is_expired(now, grace):
                return "not-expired"
        except OverflowError:  # year 9999 plus the grace
            return "not-expired"
        return None

    def delete(session: str, path: str) -> None:
        if not take_budget():
            raise _Stop
        if dry_run:
            outcomes.append((session, "deleted", path))
            return
        owner, repo = _place(path)
        try:
            app.delete_runner(tokens.get(owner, repo), path)
        except RateLimited:
            outcomes.append((session, "failed", "rate_limited"))
            raise _Stop from None
        except GitHubError as error:
            outcomes.append((session, "failed", error.code))
        else:
            outcomes.append((session, "deleted", path))

    try:
        listed, covered = _list(app, settings, tokens, outcomes)
        handled: set[str] = set()
        for name, path in sorted(tagged.items()):
            session = SessionName.parse(name)
            if session is None:
                continue
            handled.add(path.lower() if isinstance(path, str) else "")
            reason = judge(session)
            place = parse_registration_path(path)
            if reason is None and (place is None or not allowed(settings, *place)):
                reason = "path-refused"
            if reason:
                outcomes.append((session, "kept", reason))
                continue
            try:
                runner = _runner_at(app, tokens, path, listed, covered)
            except RateLimited:
                outcomes.append((session, "failed", "rate_limited"))
                raise _Stop from None
            except GitHubError as error:
                outcomes.append((session, "failed", error.code))
                continue
            if runner is None:  # gone already (a JIT runner removes itself after its job): done
                outcomes.append((session, "deleted", path))
                continue
            reason = _in_use(runner) or (None if session in sessions_of_runner_name(runner.name, owned) else "name")
            if reason:
                outcomes.append((session, "kept", reason))
            else:
                delete(session, path)
        for path, runner in sorted(listed.items()):
            if path in handled:
                continue
            sessions = sessions_of_runner_name(runner.name, owned)
            if not sessions:
                continue  # not ours: not even reported
            reason = next((r for r in map(judge, sessions) if r), None) or _in_use(runner)
            if reason:
                outcomes.append((sessions[0], "kept", reason))
            else:
                delete(sessions[0], runner.path)
    except _Stop:
        pass
    return outcomes


def _list(
    app: GitHubApp, settings: GitHubSettings, tokens: _Tokens, outcomes: list[Outcome]
) -> tuple[dict[str, Runner], set[str]]:
    """Every registration of every listed place, by lower-case path; and the roots listed in full."""
    listed: dict[str, Runner] = {}
    covered: set[str] = set()
    for owner, repo in targets(settings):
        root = scope_root(settings.runner_scope, owner, repo)
        try:
            runners = app.list_runners(tokens.get(owner, repo), settings.runner_scope, owner, repo)
        except RateLimited:
            outcomes.append((f"<listing {root}>", "failed", "rate_limited"))
            raise _Stop from None
        except GitHubError as error:
            outcomes.append((f"<listing {root}>", "failed", error.code))
            continue
        listed.update((runner.path.lower(), runner) for runner in runners)
        covered.add(root.lower())
    return listed, covered


def _runner_at(
    app: GitHubApp, tokens: _Tokens, path: str, listed: dict[str, Runner], covered: set[str]
) -> Runner | None:
    """The registration at ``path``: from a listing that covered its place, else asked for."""
    root = path.rsplit("/actions/runners/", 1)[0].lower()
    if root in covered:
        return listed.get(path.lower())
    owner, repo = _place(path)
    return app.get_runner(tokens.get(owner, repo), path)


def _place(path: str) -> tuple[str, str | None]:
    """The owner and repository of a registration path: one the caller checked, or that a listing built."""
    place = parse_registration_path(path)
    assert place is not None, "not a registration path"
    _, owner, repo = place
    return owner, repo


def _in_use(runner: Runner) -> str | None:
    """Why GitHub's view of the runner forbids deleting it: it may be running a job."""
    if runner.busy is not False:
        return "busy"
    if runner.status != "offline":
        return "online"
    return None


class _Tokens:
    """Installation tokens for this run, one lookup per repository or organisation (failures remembered)."""

    def __init__(self, app: GitHubApp):
        self._app = app
        self._known: dict[tuple[str, str | None], str | GitHubError] = {}

    def get(self, owner: str, repo: str | None) -> str:
        key = (owner.lower(), repo.lower() if repo else None)
        if key not in self._known:
            try:
                self._known[key] = self._app.installation_token(self._app.installation_for(owner, repo))
            except RateLimited:
                raise
            except GitHubError as error:
                self._known[key] = error
        known = self._known[key]
        if isinstance(known, GitHubError):
            raise known
        return known
