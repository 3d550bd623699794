"""Listing pages past the first: moto never pages DescribeSecurityGroups, so a Stubber answers here.

The Stubber checks each request's parameters too, so these tests also pin the
server-side filters every listing sends.
"""

from __future__ import annotations

import boto3
from botocore.stub import Stubber
from session_naming.resources import INSTANCES, KEY_PAIRS, PARAMETERS, SECURITY_GROUPS, groups_in_use

PATTERNS = ["ec2-test-runner/*"]


def stubbed(service: str):
    client = boto3.client(service, region_name="us-east-1")
    return client, Stubber(client)


def group(n: int) -> dict:
    return {"GroupName": f"ec2-test-runner/20261124T220000Z/{n:016x}", "GroupId": f"sg-{n:017x}", "Tags": []}


def test_security_groups_are_listed_page_by_page_with_the_name_filter():
    ec2, stub = stubbed("ec2")
    filters = [{"Name": "group-name", "Values": PATTERNS}]
    stub.add_response(
        "describe_security_groups", {"SecurityGroups": [group(1)], "NextToken": "two"}, {"Filters": filters}
    )
    stub.add_response(
        "describe_security_groups", {"SecurityGroups": [group(2)]}, {"Filters": filters, "NextToken": "two"}
    )

    with stub:
        pages = list(SECURITY_GROUPS.pages(ec2, PATTERNS))

    assert [[found.ident for found in page] for page in pages] == [["sg-00000000000000001"], ["sg-00000000000000002"]]
    stub.assert_no_pending_responses()


def test_instances_are_listed_page_by_page_live_states_only():
    ec2, stub = stubbed("ec2")
    filters = [
        {"Name": "tag:Name", "Values": PATTERNS},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ]
    reservation = {"Instances": [{"InstanceId": "i-1", "Tags": [{"Key": "Name", "Value": "n"}]}]}
    stub.add_response("describe_instances", {"Reservations": [reservation], "NextToken": "t"}, {"Filters": filters})
    stub.add_response("describe_instances", {"Reservations": [reservation]}, {"Filters": filters, "NextToken": "t"})

    with stub:
        assert sum(len(page) for page in INSTANCES.pages(ec2, PATTERNS)) == 2


def test_parameters_are_listed_by_prefix_page_by_page():
    ssm, stub = stubbed("ssm")
    filters = [{"Key": "Name", "Option": "BeginsWith", "Values": ["/ec2-test-runner/"]}]
    first = {
        "Parameters": [{"Name": "/ec2-test-runner/20261124T220000Z/0000000000000001/private-key"}],
        "NextToken": "t",
    }
    stub.add_response("describe_parameters", first, {"ParameterFilters": filters, "MaxResults": 50})
    stub.add_response(
        "describe_parameters", {"Parameters": []}, {"ParameterFilters": filters, "MaxResults": 50, "NextToken": "t"}
    )

    with stub:
        [page, empty] = list(PARAMETERS.pages(ssm, PATTERNS))

    assert [found.name for found in page] == ["ec2-test-runner/20261124T220000Z/0000000000000001"]
    assert empty == []


def test_key_pairs_are_listed_in_one_call_with_the_name_filter():
    ec2, stub = stubbed("ec2")
    stub.add_response("describe_key_pairs", {"KeyPairs": []}, {"Filters": [{"Name": "key-name", "Values": PATTERNS}]})

    with stub:
        assert list(KEY_PAIRS.pages(ec2, PATTERNS)) == [[]]


def test_in_use_check_sends_one_describe_per_two_hundred_groups():
    ec2, stub = stubbed("ec2")
    ids = [f"sg-{n:017x}" for n in range(250)]
    attached = {"NetworkInterfaces": [{"Groups": [{"GroupId": ids[3]}, {"GroupId": "sg-foreign"}]}]}
    stub.add_response("describe_network_interfaces", attached, {"Filters": [{"Name": "group-id", "Values": ids[:200]}]})
    stub.add_response(
        "describe_network_interfaces",
        {"NetworkInterfaces": []},
        {"Filters": [{"Name": "group-id", "Values": ids[200:]}]},
    )

    with stub:
        assert groups_in_use(ec2, ids) == {ids[3]}
    stub.assert_no_pending_responses()
