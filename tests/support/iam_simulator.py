"""AWS's decision on IAM requests, asked of @cloud-copilot/iam-simulate through one node process (iam_simulate.mjs).

moto enforces no IAM. The simulator carries AWS's own action, resource-type
and condition-key data, so a request it is given is judged as IAM would
judge it, statement by statement. One process serves the whole session (a
node start costs a few hundred milliseconds; a decision well under one), fed
JSON lines; it is started on first use and ends with the session.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("iam_simulate.mjs")
PACKAGE = ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate"
NODE = shutil.which("node")
MISSING = (
    None
    if NODE and PACKAGE.exists()
    else "the IAM simulator needs node (apt-get install nodejs npm) and `make install` (npm ci from package-lock.json)"
)


@dataclass(frozen=True)
class Request:
    """One request IAM evaluates: an action on one resource, with the request's context keys."""

    action: str
    resource: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    principal: str = "arn:aws:sts::123456789012:assumed-role/ec2-sessions-role/function"

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resource": self.resource,
            "context": dict(self.context),
            "principal": self.principal,
        }


@dataclass(frozen=True)
class Decision:
    result: str  # Allowed, ImplicitlyDenied, ExplicitlyDenied, Error
    allowed_by: tuple[str, ...] = ()
    error: str = ""
    resource_type: str = ""

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"


class Simulator:
    """A node process running iam_simulate.mjs; ``decide`` is safe to call from several threads."""

    def __init__(self) -> None:
        if MISSING:
            raise RuntimeError(MISSING)
        self._process = subprocess.Popen(  # noqa: S603 (node on the project's own driver)
            [NODE, str(DRIVER)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        self._defined: set[str] = set()
        self._next = 0

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin and self._process.stdout
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the IAM simulator ended (status {self._process.poll()})")
        return json.loads(line)

    def decide(
        self,
        requests: Sequence[Request],
        policies: Mapping[str, Mapping[str, Any]],
        resource_policy: Mapping[str, Any] | None = None,
    ) -> list[Decision]:
        """Each request judged against the principal's identity ``policies`` (name → document)."""
        key = json.dumps(policies, sort_keys=True)
        with self._lock:
            if key not in self._defined:
                listed = [{"name": name, "policy": document} for name, document in policies.items()]
                self._ask({"define": key, "policies": listed})
                self._defined.add(key)
            decisions = []
            for request in requests:
                self._next += 1
                message = {"id": self._next, "policies": key, "request": request.as_json()}
                if resource_policy is not None:
                    message["resourcePolicy"] = resource_policy
                answer = self._ask(message)
                decisions.append(
                    Decision(
                        answer["result"],
                        tuple(answer.get("allowedBy", ())),
                        answer.get("error", ""),
                        answer.get("resourceType") or "",
                    )
                )
            return decisions

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin
            self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()


_shared: Simulator | None = None
_shared_lock = threading.Lock()


def simulator() -> Simulator:
    """The session's one simulator process."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Simulator()
            atexit.register(_shared.close)
        return _shared
