"""The one moto server, both ways it starts: in this process (demo, build check) and as a child (tests, bench)."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from tests.support.moto_server import MotoServer as SuitesServer
from tools.moto_server import MotoServer

NO_RETRIES = Config(retries={"max_attempts": 1}, connect_timeout=1)


def key_pairs(url: str) -> list[str]:
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=url)
    return [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]


@pytest.mark.parametrize("child", [False, True], ids=["in-process", "child-process"])
def test_it_serves_over_http_forgets_on_reset_and_stops(child):
    with MotoServer(child=child, indexed_tags=child) as server:
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=server.url)
        ec2.create_key_pair(
            KeyName="ec2-test-runner/20300101T000000Z/0123456789abcdef",
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "ec2-sessions:keep", "Value": "true"}]}],
        )
        [described] = ec2.describe_key_pairs()["KeyPairs"]
        assert described["Tags"] == [{"Key": "ec2-sessions:keep", "Value": "true"}]
        server.reset()
        assert key_pairs(server.url) == []
        url = server.url

    with pytest.raises(EndpointConnectionError):
        boto3.client("ec2", region_name="us-east-1", endpoint_url=url, config=NO_RETRIES).describe_key_pairs()


def test_the_suites_server_is_the_tools_one():
    assert SuitesServer is MotoServer
