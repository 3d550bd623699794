"""A moto server on loopback, in this process, talked to over real HTTP."""

from __future__ import annotations

import json
import logging
import urllib.request

from moto.server import ThreadedMotoServer


class MotoServer:
    def __init__(self):
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def __enter__(self) -> MotoServer:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every resource in every region (moto's own reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback only)
            json.loads(answer.read() or b"{}")
