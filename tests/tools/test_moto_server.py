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


def test_the_child_answers_dynamodb_one_request_at_a_time_so_transactions_lose_no_update(aws):
    """Racers add to one counter as the live-session slots do: read its version, then a transaction whose write is
    conditioned on it. DynamoDB's transactions are serializable, so the counter ends at the number that succeeded;
    moto, answering them alongside, let two succeed on one version (the bench's burst lost a slot so)."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import ClientError

    db = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=aws.url)
    db.create_table(
        TableName="t",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, 300, 25):  # a table of some size, as the launcher's: moto copies it for each transaction
        filler = [{"PutRequest": {"Item": {"id": {"S": f"item-{n}"}}}} for n in range(start, start + 25)]
        db.batch_write_item(RequestItems={"t": filler})
    counter = {"id": {"S": "counter"}}
    db.put_item(TableName="t", Item={**counter, "version": {"N": "0"}})

    def racer(name: str) -> int:
        own = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=aws.url)
        added = 0
        for _ in range(20):
            seen = own.get_item(TableName="t", Key=counter, ConsistentRead=True)["Item"]["version"]["N"]
            write = {
                "TableName": "t",
                "Item": {**counter, "version": {"N": str(int(seen) + 1)}},
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":seen": {"N": seen}},
            }
            mark = {"TableName": "t", "Item": {"id": {"S": name}, "version": {"N": seen}}}
            try:
                own.transact_write_items(TransactItems=[{"Put": write}, {"Put": mark}])
                added += 1
            except ClientError as error:
                assert error.response["Error"]["Code"] == "TransactionCanceledException"
        return added

    with ThreadPoolExecutor(max_workers=8) as pool:
        added = sum(pool.map(racer, [f"racer-{n}" for n in range(8)]))

    assert db.get_item(TableName="t", Key=counter, ConsistentRead=True)["Item"]["version"]["N"] == str(added)
