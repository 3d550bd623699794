"""The one way to start a moto server: on loopback, a free port, over real HTTP; in this process or in a child.

In this process (the demo, the build check) it is moto's
``ThreadedMotoServer`` on a thread. In a child process (``child=True``: the
tests, the benchmark) it is the same server in an interpreter of its own, so
the code under test or being timed does not share its GIL or its heap with
the server (moto 5.2.5 keeps about 20,000 objects of every reset's EC2
backends, which a long test run would otherwise carry and garbage-collect
over and over); the child prints its URL and stops when its stdin closes,
and answers DynamoDB's calls one at a time, as DynamoDB's own isolation
would (see ``serialize_dynamodb``). ``indexed_tags=True`` makes moto look a
resource's tags up by its id (see ``index_tag_lookups``). Either way the
server is reached at ``url`` and emptied with ``reset()``.

Run as a script, this file is that child.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request
from typing import IO, Any


class MotoServer:
    """A moto server for a ``with`` block (or ``start()``/``stop()``); ``url`` is set once it is up."""

    def __init__(self, *, child: bool = False, indexed_tags: bool = False) -> None:
        self.child = child
        self.indexed_tags = indexed_tags
        self.url = ""
        self._server: Any = None
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> MotoServer:
        if self.child:
            self._process = subprocess.Popen(  # noqa: S603 (this interpreter running this file)
                [sys.executable, __file__, *(["--indexed-tags"] if self.indexed_tags else [])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.url = _pipe(self._process.stdout).readline().strip()
            if not self.url.startswith("http://127.0.0.1:"):
                self.stop()
                raise RuntimeError(f"moto server did not start: {self.url!r}")
            return self
        from moto.server import ThreadedMotoServer

        if self.indexed_tags:
            index_tag_lookups()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._process is not None:
            _pipe(self._process.stdin).close()
            try:
                # A server that held many resets frees millions of objects on its way out (seconds):
                # it is a throw-away, so it gets a moment to stop by itself and is then killed.
                self._process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every resource in every region (moto's own reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback only)
            json.loads(answer.read() or b"{}")


def index_tag_lookups() -> None:
    """Make moto answer one resource's tags by its id instead of scanning every tag in the region.

    moto answers every resource's tags by scanning every tag in the region,
    so a describe of n tagged resources costs n x (all tags): 5,000 tagged
    key pairs took over a minute per DescribeKeyPairs, where AWS takes well
    under a second. This answers the same entries in the same order (moto's
    scan keeps insertion order, and a wildcard-free id filter matches exactly
    one id), without the scan. The benchmark's scale case needs it; it
    changes no answer, so the tests do not.
    """
    from moto.ec2.models.tags import TagBackend
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    scan = TagBackend.describe_tags
    if getattr(scan, "indexed", False):
        return

    def describe_tags(self: TagBackend, filters: dict[str, list[str]] | None = None) -> list[dict[str, str]]:
        ids = (filters or {}).get("resource-id", [])
        if set(filters or ()) != {"resource-id"} or len(ids) != 1 or any(c in ids[0] for c in "*?["):
            return scan(self, filters)
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(ids[0]), "")
        return [
            {"resource_id": ids[0], "key": key, "value": value, "resource_type": kind}
            for key, value in self.tags.get(ids[0], {}).items()
        ]

    describe_tags.indexed = True  # type: ignore[attr-defined]
    TagBackend.describe_tags = describe_tags  # type: ignore[method-assign]


def serialize_dynamodb() -> None:
    """Make the server answer DynamoDB's operations one at a time, so that they are isolated as DynamoDB's are.

    DynamoDB makes every conditional write atomic and its transactions
    serializable. moto checks a condition, then writes, with nothing between
    its server's threads; and a transaction that fails a condition restores a
    copy of each table taken before it began, undoing whatever another
    thread wrote meanwhile. Under the bench's ten launcher containers that
    lost live-session slots (61 sessions under a cap of 60, once the slots
    became a transaction). One request at a time is at least the isolation
    DynamoDB promises; it changes no answer.
    """
    import threading

    from moto.dynamodb.responses import DynamoHandler

    answer = DynamoHandler.call_action
    if getattr(answer, "serialized", False):
        return
    lock = threading.Lock()

    def one_at_a_time(self: DynamoHandler) -> Any:
        with lock:
            return answer(self)

    one_at_a_time.serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign]


def _pipe(stream: IO[str] | None) -> IO[str]:
    assert stream is not None, "started with pipes"
    return stream


def _child(argv: list[str]) -> None:
    """The child process: serve until stdin closes."""
    serialize_dynamodb()
    with MotoServer(indexed_tags="--indexed-tags" in argv) as server:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    _child(sys.argv[1:])
