"""The tests' moto server: the project's one (``tools/moto_server.py``), in a child process, over real HTTP."""

from __future__ import annotations

from tools.moto_server import MotoServer

__all__ = ["MotoServer"]
