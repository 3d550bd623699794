"""The stack's AWS side (webhook secret, idempotency table) made on a moto server, as template.yaml makes it.

Used by the demo, by the local runner's users through an env-vars file, and by the tests.
"""

from __future__ import annotations

TABLE = "ec2-sessions-idempotency"


def make_launcher_stack(clients, secret: str, region: str = "us-east-1") -> dict[str, str]:
    """Create the secret and the table; answer the launcher's environment for them."""
    arn = clients("secretsmanager", region).create_secret(Name="ec2-sessions/webhook", SecretString=secret)["ARN"]
    dynamodb = clients("dynamodb", region)
    dynamodb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "awaiting", "AttributeType": "S"},
            {"AttributeName": "due_at", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        # The jobs the reconcile pass serves: only items that await something are in it (a sparse index).
        GlobalSecondaryIndexes=[
            {
                "IndexName": "due",
                "KeySchema": [
                    {"AttributeName": "awaiting", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return {"AWS_REGION": region, "WEBHOOK_SECRET_ARN": arn, "IDEMPOTENCY_TABLE": TABLE}
