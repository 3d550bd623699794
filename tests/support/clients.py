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

from tests.support.aws_rules import model_aws_rules


def client_factory(*, config=RETRY_CONFIG, aws_rules=False):
    """``aws_rules=True`` adds ``model_aws_rules`` to every EC2 client made."""
    session = boto3.session.Session()
    lock = threading.Lock()

    @cache
    def build(service, region):
        client = session.client(service, region_name=region, config=config)
        if aws_rules and service == "ec2":
            model_aws_rules(client)
        return client

    def clients(service: str, region: str):
        with lock:
            return build(service, region)

    return clients
