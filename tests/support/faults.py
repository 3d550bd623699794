"""Fault injection through botocore's ``before-send`` event.

One small helper for every suite: it answers chosen calls with an AWS error,
an HTTP 5xx, a connection reset or a read timeout, before the request leaves
the process. Everything else (parsing, retries, adaptive rate limiting) runs
as it does against AWS. It counts what it injected, for the reliability
summary.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from tests.support.responses import error_response, request_params


class Faults:
    def __init__(self):
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def inject(
        self,
        client,
        operation: str,
        fault: str,
        *,
        times: int | None = None,
        when: Callable[[dict], bool] = lambda params: True,
        status: int = 400,
    ) -> None:
        """Answer ``operation`` with ``fault`` (an AWS error code, ``reset``, ``timeout`` or ``lost``).

        ``times`` bounds how often (``None``: always); ``when`` picks requests
        by their parameters, e.g. one resource's id. ``lost`` lets the call
        through (AWS does what it asks) and loses its answer: the caller sees
        a read timeout after botocore's own retries.
        """
        left = [times]
        service = client.meta.service_model.service_id.hyphenize()

        def answer(request, **_):
            if not when(request_params(request)):
                return None
            with self._lock:
                if left[0] is not None:
                    if left[0] <= 0:
                        return None
                    left[0] -= 1
                self.injected[fault] += 1
            if fault == "reset":
                raise ConnectionClosedError(endpoint_url=request.url)
            if fault == "timeout":
                raise ReadTimeoutError(endpoint_url=request.url)
            return error_response(client, fault, status=status)

        def lose(http_response, **_):
            with self._lock:
                if left[0] is not None:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                self.injected[fault] += 1
            raise ReadTimeoutError(endpoint_url=getattr(http_response, "url", "") or "")

        if fault == "lost":
            client.meta.events.register(f"after-call.{service}.{operation}", lose)
            return
        client.meta.events.register(f"before-send.{service}.{operation}", answer)

    @property
    def total(self) -> int:
        return sum(self.injected.values())
