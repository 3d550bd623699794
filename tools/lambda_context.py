"""The one fake Lambda context: tests, the local runner, the demo, the smoke test and the benchmark all use it.

Stdlib only, on purpose: ``tools/smoke.py`` imports it inside a virtual
environment that holds nothing but boto3, as the Lambda runtime does, and
``bench/scale.py`` inside a collector process whose memory it measures.
The attributes are those of Powertools' ``LambdaContext`` (its typing
helper), with the same types, so handlers typed against it accept this one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class LambdaContext:
    """What Lambda passes as ``context``; ``get_remaining_time_in_millis`` counts down from ``timeout_seconds``."""

    function_name: str = "ec2-sessions-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:ec2-sessions-local"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/ec2-sessions-local"
    log_stream_name: str = "local"
    tenant_id: str | None = None
    identity: object | None = None  # Lambda passes None unless a mobile SDK invoked the function
    client_context: object | None = None
    timeout_seconds: float = 300.0
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))
