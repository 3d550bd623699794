"""AWS clients, built lazily and reused for the life of the container.

Building an EC2 client costs more than importing boto3 (its service model),
so nothing is built at import time: a cold start that never touches a region
never pays for it, and tests can point everything at moto before the first
call. One client per service and region is shared by every thread, so
when something else spends a region's EC2 bucket, botocore's ``adaptive``
retry mode sees all of that region's throttling at once, instead of each
thread backing off on its own. The sweep's own pace comes from the
collector's ``pacing.Pacer``, which spends the bucket at EC2's documented
rate from the first call; adaptive retries are what catches the rest.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Literal, overload

import boto3
from botocore.config import Config

if TYPE_CHECKING:  # the stubs are a development dependency; the layer never imports them
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient

# The services the functions call.
Service = Literal["ec2", "ssm", "dynamodb", "secretsmanager", "resourcegroupstaggingapi"]

# When EC2 throttles anyway (another tool shares the bucket), adaptive mode
# slows the client down; max_attempts lets a drained bucket refill and the call finish.
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
def _client(
    service: Service, region: str
) -> EC2Client | SSMClient | DynamoDBClient | SecretsManagerClient | ResourceGroupsTaggingAPIClient:
    return _session().client(service, region_name=region, config=RETRY_CONFIG)


@overload
def client(service: Literal["ec2"], region: str) -> EC2Client: ...
@overload
def client(service: Literal["ssm"], region: str) -> SSMClient: ...
@overload
def client(service: Literal["dynamodb"], region: str) -> DynamoDBClient: ...
@overload
def client(service: Literal["secretsmanager"], region: str) -> SecretsManagerClient: ...
@overload
def client(service: Literal["resourcegroupstaggingapi"], region: str) -> ResourceGroupsTaggingAPIClient: ...
def client(
    service: Service, region: str
) -> EC2Client | SSMClient | DynamoDBClient | SecretsManagerClient | ResourceGroupsTaggingAPIClient:
    """The shared client for a service in a region (``AWS_ENDPOINT_URL`` is honoured by boto3)."""
    with _lock:  # boto3 sessions are not safe for concurrent client creation
        return _client(service, region)


def reset() -> None:
    """Forget every client, so the next call reads the environment afresh (tests)."""
    with _lock:
        _client.cache_clear()
        _session.cache_clear()
