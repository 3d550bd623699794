"""AWS clients, built lazily and reused for the life of the container.

Building an EC2 client costs more than importing boto3 (its service model),
so nothing is built at import time: a cold start that never touches a region
never pays for it, and tests can point everything at moto before the first
call. One client per service and region is shared by every thread, so
botocore's ``adaptive`` retry mode sees all of that region's throttling and
paces the whole sweep, instead of each thread backing off on its own.
"""

from __future__ import annotations

import threading
from functools import cache

import boto3
from botocore.config import Config

# EC2 refills mutating calls at 5 a second: adaptive mode slows the client
# down when it is throttled; max_attempts lets a burst drain the bucket and
# still finish.
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 10},
    max_pool_connections=50,
    connect_timeout=5,
    read_timeout=20,
)

_lock = threading.Lock()


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def _client(service: str, region: str):
    return _session().client(service, region_name=region, config=RETRY_CONFIG)


def client(service: str, region: str):
    """The shared client for a service in a region (``AWS_ENDPOINT_URL`` is honoured by boto3)."""
    with _lock:  # boto3 sessions are not safe for concurrent client creation
        return _client(service, region)


def reset() -> None:
    """Forget every client, so the next call reads the environment afresh (tests)."""
    with _lock:
        _client.cache_clear()
        _session.cache_clear()
