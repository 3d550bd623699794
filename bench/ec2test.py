"""The original ec2test garbage collector, for comparison.

Launchpad's ``delete_previous_key_pairs`` / ``delete_previous_security_groups``:
one unfiltered describe, parse every name, delete each expired one in turn,
sequentially, with no retry (its client made one attempt). It knew nothing
of tags, so keep-tagged and untagged legacy resources go too. SSM parameters
did not exist in ec2test; they are swept the same way here so both sides do
the same work (DescribeParameters pages at most 50, so it pages).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from botocore.exceptions import ClientError
from session_naming import SessionName


def collect_garbage(clients, region: str, bases, now: datetime) -> dict:
    ec2, ssm = clients("ec2", region), clients("ssm", region)
    deleted: Counter[str] = Counter()
    failures: Counter[str] = Counter()

    def expired(text: str) -> bool:
        name = SessionName.parse(text)
        return name is not None and name.base in bases and name.is_expired(now, timedelta(0))

    def attempt(kind, call, **params):
        try:
            call(**params)
        except ClientError as error:
            failures[error.response["Error"]["Code"]] += 1
        else:
            deleted[kind] += 1

    for key in ec2.describe_key_pairs()["KeyPairs"]:
        if expired(key["KeyName"]):
            attempt("key_pair", ec2.delete_key_pair, KeyName=key["KeyName"])
    for group in ec2.describe_security_groups()["SecurityGroups"]:
        if expired(group["GroupName"]):
            attempt("security_group", ec2.delete_security_group, GroupId=group["GroupId"])
    for page in ssm.get_paginator("describe_parameters").paginate(PaginationConfig={"PageSize": 50}):
        for parameter in page["Parameters"]:
            text = parameter["Name"]
            if text.startswith("/") and text.endswith("/private-key") and expired(text[1 : -len("/private-key")]):
                attempt("parameter", ssm.delete_parameter, Name=text)
    return {"deleted": deleted, "failures": failures}
