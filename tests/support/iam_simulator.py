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
from concurrent.futures import Future
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
    """A node process running iam_simulate.mjs, fed without waiting: it decides on the other core while tests run.

    ``submit`` writes the requests and answers futures at once; a reader
    thread fills them in as node answers. An identical request (same policies,
    action, resource and context keys) is decided once.
    """

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
        self._keys: dict[int, tuple[Mapping[str, Any], str]] = {}  # id → (the documents, kept alive; their key)
        self._pending: dict[int, Future[Decision]] = {}
        self._known: dict[tuple[str, str, str], Future[Decision]] = {}
        self._next = 0
        self._reader = threading.Thread(target=self._read, name="iam-simulator", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout
        for line in self._process.stdout:
            answer = json.loads(line)
            if "id" not in answer:
                continue
            decision = Decision(
                answer["result"],
                tuple(answer.get("allowedBy", ())),
                answer.get("error", ""),
                answer.get("resourceType") or "",
            )
            with self._lock:
                future = self._pending.pop(answer["id"])
            future.set_result(decision)
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(RuntimeError(f"the IAM simulator ended (status {self._process.poll()})"))

    def _write(self, message: dict[str, Any]) -> None:
        assert self._process.stdin
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def submit(
        self,
        requests: Sequence[Request],
        policies: Mapping[str, Mapping[str, Any]],
        resource_policy: Mapping[str, Any] | None = None,
    ) -> list[Future[Decision]]:
        """Each request sent to be judged against the principal's identity ``policies`` (name → document)."""
        if id(policies) not in self._keys:  # the same documents come again and again: written out once
            self._keys[id(policies)] = (policies, json.dumps(policies, sort_keys=True))
        key = self._keys[id(policies)][1]
        scope = json.dumps(resource_policy, sort_keys=True)
        futures = []
        with self._lock:
            if key not in self._defined:
                listed = [{"name": name, "policy": document} for name, document in policies.items()]
                self._write({"define": key, "policies": listed})
                self._defined.add(key)
            for request in requests:
                asked = request.as_json()
                known = (key, scope, json.dumps(asked, sort_keys=True))
                if known not in self._known:
                    self._next += 1
                    future: Future[Decision] = Future()
                    self._pending[self._next] = future
                    self._known[known] = future
                    message = {"id": self._next, "policies": key, "request": asked}
                    if resource_policy is not None:
                        message["resourcePolicy"] = resource_policy
                    self._write(message)
                futures.append(self._known[known])
        return futures

    def decide(
        self,
        requests: Sequence[Request],
        policies: Mapping[str, Mapping[str, Any]],
        resource_policy: Mapping[str, Any] | None = None,
    ) -> list[Decision]:
        """Each request judged, waiting for the answers."""
        return [future.result(timeout=120) for future in self.submit(requests, policies, resource_policy)]

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
