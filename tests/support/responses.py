"""AWS-shaped HTTP answers for botocore's ``before-send`` hook.

A response returned there goes through botocore's parsing and retry logic
exactly as one from the network would, so a throttling answer is retried by
the client's retry mode and an error code surfaces as a ``ClientError``.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from botocore.awsrequest import AWSResponse


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


def error_response(client, code: str, message: str = "injected", status: int = 400) -> AWSResponse:
    """An error answer in the client's protocol (EC2 XML or JSON)."""
    if client.meta.service_model.protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}
    return AWSResponse("https://injected.invalid/", status, headers, _Raw(body))


def request_params(request) -> dict:
    """The parameters of a prepared request, for query (EC2) and JSON (SSM) protocols."""
    body = request.body or b""
    if isinstance(body, bytes):
        body = body.decode()
    if body.startswith("{"):
        return json.loads(body)
    return dict(parse_qsl(body))
