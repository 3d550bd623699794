"""Client factories shaped like ``session_naming.clients.client``.

Each call to ``client_factory()`` is a separate set of clients, as two
Lambda containers would have; all honour ``AWS_ENDPOINT_URL`` (the moto
server) and use the production retry configuration.
"""

from __future__ import annotations

import threading
from functools import cache

import boto3

from session_naming.clients import RETRY_CONFIG


def client_factory(*, config=RETRY_CONFIG):
    session = boto3.session.Session()
    lock = threading.Lock()

    @cache
    def build(service, region):
        return session.client(service, region_name=region, config=config)

    def clients(service: str, region: str):
        with lock:
            return build(service, region)

    return clients
