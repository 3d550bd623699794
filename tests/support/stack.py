"""The AWS side of a launcher stack, made on the moto server the way template.yaml makes it."""

from __future__ import annotations

REGION = "us-east-1"


def make_launcher_stack(clients, secret: str, region: str = REGION) -> dict[str, str]:
    """The webhook secret and idempotency table; answer the launcher's environment."""
    arn = clients("secretsmanager", region).create_secret(Name="ec2-sessions/webhook", SecretString=secret)["ARN"]
    dynamodb = clients("dynamodb", region)
    dynamodb.create_table(
        TableName="ec2-sessions-idempotency",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName="ec2-sessions-idempotency", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return {
        "SESSION_BASES": "ec2-test-runner",
        "AWS_REGION": region,
        "WEBHOOK_SECRET_ARN": arn,
        "IDEMPOTENCY_TABLE": "ec2-sessions-idempotency",
    }


def make_launch_template(clients, region: str = REGION) -> str:
    ec2 = clients("ec2", region)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return ec2.create_launch_template(
        LaunchTemplateName="ec2-sessions-runner", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
