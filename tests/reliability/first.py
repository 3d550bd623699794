"""Run a test helper's botocore hooks ahead of in-process moto's own.

Under ``mock_aws`` moto answers requests from a ``before-send`` handler that
botocore calls *before* handlers registered later with ``register``: a hook
added by ``tests.support.aws_rules.model_aws_rules`` or ``Faults.inject``
then sees a request moto has already carried out (a group "refused" with
DependencyViolation is in fact deleted). ``first(client)`` hands such a
helper a view of the client whose ``meta.events.register`` is botocore's
``register_first``, so its answer comes before moto's, as it does against
the moto server. Against the server this changes nothing.
"""

from __future__ import annotations


class _Events:
    def __init__(self, events):
        self._events = events

    def register(self, name, handler, *args, **kwargs):
        self._events.register_first(name, handler, *args, **kwargs)


class _Meta:
    def __init__(self, meta):
        self._meta = meta
        self.events = _Events(meta.events)

    def __getattr__(self, name):
        return getattr(self._meta, name)


class _First:
    def __init__(self, client):
        self.meta = _Meta(client.meta)


def first(client):
    return _First(client)


def client_factory_first():
    """``tests.support.clients.client_factory(aws_rules=True)``, with the rules ahead of moto."""
    import threading
    from functools import cache

    import boto3

    from session_naming.clients import RETRY_CONFIG
    from tests.support.aws_rules import model_aws_rules

    session = boto3.session.Session()
    lock = threading.Lock()

    @cache
    def build(service, region):
        client = session.client(service, region_name=region, config=RETRY_CONFIG)
        if service == "ec2":
            model_aws_rules(first(client))
        return client

    def clients(service: str, region: str):
        with lock:
            return build(service, region)

    return clients
