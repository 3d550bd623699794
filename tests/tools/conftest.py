"""Fixtures of the tools' tests."""

from __future__ import annotations

import pytest

from tests.support.local_server import start_local_server


@pytest.fixture(scope="session")
def local_server():
    """One ``make local`` server for the client's and the examples' tests (it starts in about 2 s)."""
    server = start_local_server()
    yield server
    server.stop()
