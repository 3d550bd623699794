"""What AWS does and moto 5.2.5 does not (DESIGN.md, "Where moto differs").

``model_aws_rules(ec2)`` attaches five AWS rules to a boto3 EC2 client that
talks to a moto server, through botocore's own event hooks (no patched
internals). Not under in-process ``mock_aws``: moto answers from its own
``before-send`` handler there, so the request has already acted when ours runs.

- ``DeleteSecurityGroup`` answers ``DependencyViolation`` while a network
  interface uses the group or another group's rule references it;
- ``TerminateInstances`` removes the instances' network interfaces, as AWS
  does once an instance is terminated;
- ``ReleaseAddress`` answers ``InvalidIPAddress.InUse`` while the Elastic IP
  is associated (moto releases it);
- ``DeleteNetworkInterface`` answers ``InvalidNetworkInterface.InUse`` while
  the interface is attached (moto deletes it);
- ``RunInstances`` from a launch template that defines network interfaces
  answers ``InvalidParameterCombination`` when the request also names
  instance-level ``SecurityGroupIds`` (moto merges them).

moto already refuses, as AWS does, an attached volume (``VolumeInUse``) and
a snapshot an AMI uses (``InvalidSnapshot.InUse``).

Tests that depend on these rules call this helper; none assumes moto's
behaviour is AWS's.
"""

from __future__ import annotations

import boto3

from tests.support.responses import error_response, request_params


def model_aws_rules(ec2) -> None:
    side = boto3.client("ec2", region_name=ec2.meta.region_name, endpoint_url=ec2.meta.endpoint_url)

    def refuse_group_in_use(request, **_):
        group_id = request_params(request).get("GroupId")
        if not group_id:
            return None
        interfaces = side.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group_id]}])
        referencing = side.describe_security_groups(Filters=[{"Name": "ip-permission.group-id", "Values": [group_id]}])[
            "SecurityGroups"
        ]
        if interfaces["NetworkInterfaces"] or [g for g in referencing if g["GroupId"] != group_id]:
            return error_response(ec2, "DependencyViolation", f"resource {group_id} has a dependent object")
        return None

    def drop_interfaces(parsed, **_):
        ids = [i["InstanceId"] for i in parsed.get("TerminatingInstances", ())]
        if not ids:
            return
        interfaces = side.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": ids}])[
            "NetworkInterfaces"
        ]
        for interface in interfaces:
            try:
                side.delete_network_interface(NetworkInterfaceId=interface["NetworkInterfaceId"])
            except side.exceptions.ClientError as error:  # a concurrent terminate got there first
                if error.response["Error"]["Code"] != "InvalidNetworkInterfaceID.NotFound":
                    raise

    def refuse_associated_address(request, **_):
        allocation = request_params(request).get("AllocationId")
        if not allocation:
            return None
        try:
            addresses = side.describe_addresses(AllocationIds=[allocation])["Addresses"]
        except side.exceptions.ClientError:  # unknown: let moto answer NotFound
            return None
        if any(address.get("AssociationId") for address in addresses):
            return error_response(ec2, "InvalidIPAddress.InUse", f"Address {allocation} is in use.")
        return None

    def refuse_attached_interface(request, **_):
        interface_id = request_params(request).get("NetworkInterfaceId")
        if not interface_id:
            return None
        try:
            interfaces = side.describe_network_interfaces(NetworkInterfaceIds=[interface_id])["NetworkInterfaces"]
        except side.exceptions.ClientError:  # unknown: let moto answer NotFound
            return None
        if any(i.get("Status") != "available" or i.get("Attachment") for i in interfaces):
            return error_response(
                ec2, "InvalidNetworkInterface.InUse", f"The network interface {interface_id} is currently in use."
            )
        return None

    def refuse_groups_beside_template_interfaces(request, **_):
        params = request_params(request)
        template = params.get("LaunchTemplate.LaunchTemplateId")
        if not template or not any(key.startswith("SecurityGroupId.") for key in params):
            return None
        versions = side.describe_launch_template_versions(LaunchTemplateId=template, Versions=["$Default"])
        if versions["LaunchTemplateVersions"][0]["LaunchTemplateData"].get("NetworkInterfaces"):
            message = (
                "Network interfaces and an instance-level security groups may not be specified on the same request"
            )
            return error_response(ec2, "InvalidParameterCombination", message)
        return None

    ec2.meta.events.register("before-send.ec2.RunInstances", refuse_groups_beside_template_interfaces)
    ec2.meta.events.register("before-send.ec2.DeleteSecurityGroup", refuse_group_in_use)
    ec2.meta.events.register("after-call.ec2.TerminateInstances", drop_interfaces)
    ec2.meta.events.register("before-send.ec2.ReleaseAddress", refuse_associated_address)
    ec2.meta.events.register("before-send.ec2.DeleteNetworkInterface", refuse_attached_interface)
