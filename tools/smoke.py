"""Import and invoke both built handlers with only boto3 installed, as in the Lambda runtime.

Run by tools/check_build.py in a fresh virtual environment: argv[1] is the
``sam build`` folder, ``AWS_ENDPOINT_URL`` a moto server. Stdlib and boto3 only.
"""

import base64
import hashlib
import hmac
import importlib
import json
import os
import sys
from pathlib import Path

build = Path(sys.argv[1])
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.lambda_context import LambdaContext  # noqa: E402 (stdlib only)
from tools.offline import FAKE_AWS  # noqa: E402 (stdlib only)

endpoint = os.environ["AWS_ENDPOINT_URL"]
os.environ.update(FAKE_AWS, AWS_ENDPOINT_URL=endpoint, SESSION_BASES="ec2-test-runner")
sys.path.insert(0, str(build / "SessionNamingLayer" / "python"))


def context() -> LambdaContext:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:smoke"
    return LambdaContext(function_name="smoke", invoked_function_arn=arn, timeout_seconds=60)


def handler(function):
    """``app.lambda_handler`` imported as Lambda imports it: by module name, the function's folder first on the path."""
    sys.path.insert(0, str(build / function))
    sys.modules.pop("app", None)  # both functions' handler modules are ``app``; module names are otherwise distinct
    return importlib.import_module("app").lambda_handler


import boto3  # noqa: E402

summary = handler("CollectorFunction")({"dry_run": True}, context())
assert summary["dry_run"] is True and summary["totals"]["failed"] == 0, summary

secret = "smoke-secret-0123456789abcdef0123456789"
arn = boto3.client("secretsmanager").create_secret(Name="smoke", SecretString=secret)["ARN"]
boto3.client("dynamodb").create_table(
    TableName="smoke",
    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    BillingMode="PAY_PER_REQUEST",
)
os.environ.update(WEBHOOK_SECRET_ARN=arn, IDEMPOTENCY_TABLE="smoke")
body = json.dumps({"lifetime_minutes": 30}).encode()
event = {
    "version": "2.0",
    "rawPath": "/sessions",
    "rawQueryString": "",
    "headers": {
        "content-type": "application/json",
        "x-request-id": "smoke-1",
        "x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    },
    "requestContext": {"http": {"method": "POST", "path": "/sessions", "sourceIp": "127.0.0.1"}, "stage": "$default"},
    "body": base64.b64encode(body).decode(),
    "isBase64Encoded": True,
}
launcher = handler("LauncherFunction")
answer = launcher(event, context())
assert answer["statusCode"] == 201, answer
unsigned = launcher({**event, "headers": {"content-type": "application/json"}}, context())
assert unsigned["statusCode"] == 401, unsigned
print("smoke: collector summary and launcher 201/401 from the built artifact, with only boto3 installed")
