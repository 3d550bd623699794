"""The stack's AWS side made on a moto server as template.yaml makes it, and what an operator adds to it.

Used by the demo, by ``make local``, by the local runner's users through an
env-vars file, and by the tests.
"""

from __future__ import annotations

import json

TABLE = "ec2-sessions-idempotency"
DEMO_PROFILE = "demo"


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


def make_launch_template(clients, region: str, name: str, image: str) -> str:
    """A profile's launch template, as an operator makes it (its name is not a session's); answer its id."""
    data = {"ImageId": image, "InstanceType": "t3.micro"}
    template = clients("ec2", region).create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
    return template["LaunchTemplate"]["LaunchTemplateId"]


def make_demo_profile(clients, region: str = "us-east-1") -> str:
    """A launch template (an AMI of moto's catalogue) and the profile ``demo`` naming it; answer ``PROFILES``.

    Its labels are the GitHub label alone, so ``{"instance": true}`` and a
    job labelled ``ec2-session`` get it; ``spot-first`` over two types, as
    the README's ``small`` profile.
    """
    image = clients("ec2", region).describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = make_launch_template(clients, region, "ec2-sessions-demo", image)
    profile = {
        "labels": ["ec2-session"],
        "launch_template_id": template,
        "instance_types": ["t3.micro", "t3a.micro"],
        "market": "spot-first",
    }
    return json.dumps({DEMO_PROFILE: profile})
