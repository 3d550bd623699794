"""Listing pages past the first: moto never pages DescribeSecurityGroups, so a Stubber answers here.

The Stubber checks each request's parameters too, so these tests also pin the
server-side filters every listing sends.
"""

from __future__ import annotations

import boto3
from botocore.stub import Stubber
from session_naming.resources import (
    ADDRESSES,
    IMAGES,
    INSTANCES,
    KEY_PAIRS,
    NETWORK_INTERFACES,
    PARAMETERS,
    SECURITY_GROUPS,
    SNAPSHOTS,
    VOLUMES,
    groups_in_use,
    parameter_tags,
)

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


SESSION = "ec2-test-runner/20261124T220000Z/0000000000000001"
BY_TAG = {"Name": "tag:ec2-sessions:session", "Values": PATTERNS}
TAGS = [{"Key": "ec2-sessions:session", "Value": SESSION}]


def test_volumes_are_listed_by_session_tag_available_ones_only_page_by_page():
    ec2, stub = stubbed("ec2")
    filters = [BY_TAG, {"Name": "status", "Values": ["available"]}]
    first = {"Volumes": [{"VolumeId": "vol-1", "State": "available", "Tags": TAGS}], "NextToken": "t"}
    stub.add_response("describe_volumes", first, {"Filters": filters})
    second = {"Volumes": [{"VolumeId": "vol-2", "State": "available", "Tags": TAGS}]}
    stub.add_response("describe_volumes", second, {"Filters": filters, "NextToken": "t"})

    with stub:
        found = [f for page in VOLUMES.pages(ec2, PATTERNS) for f in page]

    assert [(f.ident, f.name) for f in found] == [("vol-1", SESSION), ("vol-2", SESSION)]


def test_network_interfaces_are_listed_available_only_and_named_by_the_session_tag_of_their_tag_set():
    ec2, stub = stubbed("ec2")
    filters = [BY_TAG, {"Name": "status", "Values": ["available"]}]
    interface = {"NetworkInterfaceId": "eni-1", "Status": "available", "TagSet": TAGS}
    stub.add_response("describe_network_interfaces", {"NetworkInterfaces": [interface]}, {"Filters": filters})

    with stub:
        [[found]] = list(NETWORK_INTERFACES.pages(ec2, PATTERNS))

    assert (found.ident, found.name, found.tags) == ("eni-1", SESSION, {"ec2-sessions:session": SESSION})


def test_images_and_snapshots_are_listed_as_the_accounts_own_by_session_tag():
    ec2, stub = stubbed("ec2")
    mapping = [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-1"}}, {"DeviceName": "/dev/sdb"}]
    image = {"ImageId": "ami-1", "Tags": TAGS, "BlockDeviceMappings": mapping}
    stub.add_response("describe_images", {"Images": [image]}, {"Owners": ["self"], "Filters": [BY_TAG]})
    snapshot = {"SnapshotId": "snap-1", "Tags": TAGS}
    stub.add_response("describe_snapshots", {"Snapshots": [snapshot]}, {"OwnerIds": ["self"], "Filters": [BY_TAG]})

    with stub:
        [[ami]] = list(IMAGES.pages(ec2, PATTERNS))
        [[snap]] = list(SNAPSHOTS.pages(ec2, PATTERNS))

    assert (ami.ident, ami.name, ami.uses) == ("ami-1", SESSION, ("snap-1",))
    assert (snap.ident, snap.name) == ("snap-1", SESSION)


def test_addresses_are_listed_in_one_call_and_associated_ones_are_marked_in_use():
    ec2, stub = stubbed("ec2")
    addresses = [
        {"AllocationId": "eipalloc-1", "AssociationId": "eipassoc-1", "Tags": TAGS},
        {"AllocationId": "eipalloc-2", "Tags": TAGS},
        {"PublicIp": "198.51.100.7", "Tags": TAGS},  # EC2-Classic: no allocation id, nothing to release by
    ]
    stub.add_response("describe_addresses", {"Addresses": addresses}, {"Filters": [BY_TAG]})

    with stub:
        [page] = list(ADDRESSES.pages(ec2, PATTERNS))

    assert [(f.ident, f.in_use) for f in page] == [("eipalloc-1", True), ("eipalloc-2", False)]


def test_parameter_tags_come_a_hundred_parameters_a_page_from_the_tagging_api():
    tagging, stub = stubbed("resourcegroupstaggingapi")
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/"
    request = {"ResourceTypeFilters": ["ssm:parameter"], "ResourcesPerPage": 100}
    first = {
        "ResourceTagMappingList": [{"ResourceARN": f"{arn}{SESSION}/private-key", "Tags": TAGS}],
        "PaginationToken": "two",
    }
    second = {"ResourceTagMappingList": [{"ResourceARN": f"{arn}other", "Tags": []}], "PaginationToken": ""}
    stub.add_response("get_resources", first, request)
    stub.add_response("get_resources", second, {**request, "PaginationToken": "two"})

    with stub:
        tags = parameter_tags(tagging)

    assert tags == {f"/{SESSION}/private-key": {"ec2-sessions:session": SESSION}, "/other": {}}
    stub.assert_no_pending_responses()


def test_a_sessions_own_parameters_are_asked_for_by_both_names():
    ssm, stub = stubbed("ssm")
    names = [f"/{SESSION}/private-key", f"/{SESSION}/runner-jitconfig"]
    filters = [{"Key": "Name", "Option": "Equals", "Values": names}]
    found = {"Parameters": [{"Name": name} for name in names]}
    stub.add_response("describe_parameters", found, {"ParameterFilters": filters, "MaxResults": 50})

    with stub:
        [page] = list(PARAMETERS.pages(ssm, [SESSION]))

    assert [(f.name, f.ident) for f in page] == [(SESSION, name) for name in names]
