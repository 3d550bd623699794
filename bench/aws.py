"""Clients for the benchmark: fake credentials, the loopback moto server, the model.

Everything the benchmark builds goes through ``factory``: nothing can reach
a real account (fake keys, ``AWS_ENDPOINT_URL`` on loopback, no config files).
"""

from __future__ import annotations

import os
import threading
from functools import cache

import boto3
from botocore.config import Config
from session_naming.clients import RETRY_CONFIG

from tools.offline import FAKE_AWS

# ec2test's client: one attempt, no retry. (``max_attempts`` in botocore's
# config counts retries, not attempts, so the exact knob is total_max_attempts.)
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=50)
# Seeding and checking: patient, never throttled by the model.
PATIENT = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=50)

FAKE_ENV = {**FAKE_AWS, "POWERTOOLS_SERVICE_NAME": "ec2-sessions-bench", "POWERTOOLS_LOG_LEVEL": "WARNING"}


def fake_environment(endpoint: str | None = None) -> dict[str, str]:
    """The environment every benchmark process runs with (no profile, no real keys)."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_ENDPOINT_URL")}
    env.update(FAKE_ENV)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def use_fake_environment(endpoint: str) -> None:
    os.environ.clear()
    os.environ.update(fake_environment(endpoint))


# region -> moto server URL; regions not listed use AWS_ENDPOINT_URL.
ENDPOINTS: dict[str, str] = {}


def factory(model=None, config: Config = RETRY_CONFIG):
    """A ``clients(service, region)`` like the product's: one client per service and region.

    Each swept region has its own moto server (``ENDPOINTS``), as each AWS
    region has its own endpoints: one moto process serving both would make
    the regions wait on each other's describes, which AWS never does.
    """
    session = boto3.session.Session()
    lock = threading.Lock()

    @cache
    def build(service, region):
        endpoint = {"endpoint_url": ENDPOINTS[region]} if region in ENDPOINTS else {}
        client = session.client(service, region_name=region, config=config, **endpoint)
        if model is not None:
            model.install(client)
        return client

    def clients(service: str, region: str):
        with lock:
            return build(service, region)

    return clients
