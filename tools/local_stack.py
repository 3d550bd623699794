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
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return {"AWS_REGION": region, "WEBHOOK_SECRET_ARN": arn, "IDEMPOTENCY_TABLE": TABLE}
