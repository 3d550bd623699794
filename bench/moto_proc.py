"""A moto server on loopback in its own process.

The benchmark times the collector's own work, so the server must not share
the collector's interpreter (and its GIL): ThreadedMotoServer runs in a child
process that prints its URL and stops when its stdin closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

# moto answers every resource's tags by scanning every tag in the region, so
# a describe of n tagged resources costs n x (all tags): 5,000 tagged key
# pairs took over a minute per DescribeKeyPairs, where AWS takes well under a
# second. The benchmark's moto looks one resource's tags up by its id instead:
# the same entries in the same order (moto's scan keeps insertion order and a
# wildcard-free id filter matches exactly one id), without the scan.
INDEXED_TAGS = """
from moto.ec2.models.tags import TagBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
_scan = TagBackend.describe_tags
def describe_tags(self, filters=None):
    ids = (filters or {}).get("resource-id", [])
    if set(filters or ()) != {"resource-id"} or len(ids) != 1 or any(c in ids[0] for c in "*?["):
        return _scan(self, filters)
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(ids[0]), "")
    return [
        {"resource_id": ids[0], "key": key, "value": value, "resource_type": kind}
        for key, value in self.tags.get(ids[0], {}).items()
    ]
TagBackend.describe_tags = describe_tags
"""

CHILD = (
    """
import logging, sys
from moto.server import ThreadedMotoServer
"""
    + INDEXED_TAGS
    + """
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()
server.stop()
"""
)


class MotoProcess:
    def __enter__(self) -> MotoProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.url = self._proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"moto server did not start: {self.url!r}")
        return self

    def __exit__(self, *exc) -> None:
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def reset(self) -> None:
        """Forget every resource in every region (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback only)
            json.loads(answer.read() or b"{}")
