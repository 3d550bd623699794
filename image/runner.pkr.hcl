# The AMI of a session's instance for GitHub jobs: what a workflow written for GitHub's hosted runners
# expects (Docker with buildx and compose, sudo, the common tools, the AWS CLI v2) and what the
# launcher's user data needs (the Actions runner, a non-root user to run it, cloud-init's per-boot
# scripts), plus the warm-up hook for pools.
#
#   packer init image/runner.pkr.hcl
#   packer build image/runner.pkr.hcl                                  # both, x86_64
#   packer build -var arch=arm64 -only='amazon-ebs.al2023' image/runner.pkr.hcl
#   packer build -var runner_sudo=false image/runner.pkr.hcl           # no sudo for jobs (docs/security.md)
#
# Two sources, Ubuntu 24.04 and Amazon Linux 2023, share one provisioning script (provision.sh, which
# lists what it installs and checks). Every download is pinned here and checked before use: the runner,
# buildx and compose by SHA-256 (each release's notes or checksums.txt list them), Docker's apt key and
# the AWS CLI's signing key by fingerprint. Put the AMI id where the launch template reads it, e.g. the
# SSM parameter named by LaunchTemplateImageParameter (docs/connect-ci.md).
#
# IMDSv2: the AMIs are registered with imds_support = "v2.0", so an instance launched from them
# requires IMDSv2 even when its launch template says nothing; EC2 then gives it a hop limit of 2,
# which lets containers reach the instance role's credentials. The launch template sets
# HttpPutResponseHopLimit 1 to keep them out; docs/connect-ci.md says how and when to raise it to 2.
#
# A runner older than GitHub's newest updates itself before its job, which costs the job a minute:
# move runner_version and both checksums to a new release regularly, and the other pins with it.
packer {
  required_version = ">= 1.10.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
  }
}

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region the AMIs are built in (copy them elsewhere with ami_regions)."
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "x86_64 or arm64: the architecture of the AMIs and of the runner they hold."
  validation {
    condition     = contains(["x86_64", "arm64"], var.arch)
    error_message = "The arch must be x86_64 or arm64."
  }
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "Build instance type; empty: t3.small for x86_64, t4g.small for arm64."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance (it needs to reach GitHub and the package mirrors); empty: the default VPC."
}

variable "runner_version" {
  type        = string
  default     = "2.337.0"
  description = "GitHub Actions runner release (github.com/actions/runner/releases), without the v."
}

variable "runner_sha256_x64" {
  type        = string
  default     = "70920811a4f8ad4328818682bca5c6469c1c942fab52448868071d0063816613"
  description = "SHA-256 of actions-runner-linux-x64-<runner_version>.tar.gz, from the release notes."
}

variable "runner_sha256_arm64" {
  type        = string
  default     = "9b1dc70626422526e3c94767cf024896beb15da5342a3f4819bf2feac13e0393"
  description = "SHA-256 of actions-runner-linux-arm64-<runner_version>.tar.gz, from the release notes."
}

variable "ami_prefix" {
  type        = string
  default     = "ec2-sessions-runner"
  description = "Start of the AMIs' names; the OS, architecture and build time follow."
}

variable "runner_sudo" {
  type        = bool
  default     = true
  description = "Whether the runner user may use sudo without a password, as on GitHub's hosted runners (docs/security.md)."
}

variable "docker_key_fingerprint" {
  type        = string
  default     = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
  description = "Fingerprint of Docker's apt repository key (Ubuntu), from Docker's install guide."
}

variable "buildx_version" {
  type        = string
  default     = "0.36.1"
  description = "docker/buildx release for Amazon Linux 2023 (Ubuntu takes Docker's apt package), without the v."
}

variable "buildx_sha256_x64" {
  type        = string
  default     = "48af8a397ebd60178778bf63611dbcebe5f5e7a9be90eb9147b24b9587455778"
  description = "SHA-256 of buildx-v<buildx_version>.linux-amd64, from the release's checksums.txt."
}

variable "buildx_sha256_arm64" {
  type        = string
  default     = "5d0cafd9d16afe1a0f0d9529885344ace2cc99efdd531b6c783c5455a6001569"
  description = "SHA-256 of buildx-v<buildx_version>.linux-arm64, from the release's checksums.txt."
}

variable "compose_version" {
  type        = string
  default     = "5.4.0"
  description = "docker/compose release for Amazon Linux 2023 (Ubuntu takes Docker's apt package), without the v."
}

variable "compose_sha256_x64" {
  type        = string
  default     = "837fd1d35bf6a494f41b5b5988269a7be79de337cf1a1a6ff0e45ab51bb4e9be"
  description = "SHA-256 of docker-compose-linux-x86_64 of compose_version, from the release's checksums.txt."
}

variable "compose_sha256_arm64" {
  type        = string
  default     = "fc5d1371f1ec7987e703da94ede49af3fbfb240b83f22991a98511de7bc4b93b"
  description = "SHA-256 of docker-compose-linux-aarch64 of compose_version, from the release's checksums.txt."
}

variable "aws_cli_version" {
  type        = string
  default     = "2.36.11"
  description = "AWS CLI v2 installer for Ubuntu (awscli.amazonaws.com; Amazon Linux 2023 has awscli-2), checked by its signature."
}

variable "aws_cli_key_fingerprint" {
  type        = string
  default     = "FB5DB77FD5C118B80511ADA8A6310ACC4672475C"
  description = "Fingerprint of the key that must have signed the AWS CLI installer (the key is image/aws-cli.asc)."
}

locals {
  stamp          = formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  ubuntu_arch    = var.arch == "x86_64" ? "amd64" : "arm64"
  runner_arch    = var.arch == "x86_64" ? "x64" : "arm64"
  runner_sha256  = var.arch == "x86_64" ? var.runner_sha256_x64 : var.runner_sha256_arm64
  buildx_sha256  = var.arch == "x86_64" ? var.buildx_sha256_x64 : var.buildx_sha256_arm64
  compose_sha256 = var.arch == "x86_64" ? var.compose_sha256_x64 : var.compose_sha256_arm64
  instance_type  = var.instance_type != "" ? var.instance_type : (var.arch == "x86_64" ? "t3.small" : "t4g.small")
  tags = {
    "ec2-sessions:image" = "runner"
    runner_version       = var.runner_version
    runner_sudo          = tostring(var.runner_sudo)
    architecture         = var.arch
  }
}

source "amazon-ebs" "ubuntu" {
  region        = var.region
  instance_type = local.instance_type
  subnet_id     = var.subnet_id != "" ? var.subnet_id : null
  ami_name      = "${var.ami_prefix}-ubuntu-24.04-${var.arch}-${local.stamp}"
  ssh_username  = "ubuntu"
  imds_support  = "v2.0"
  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${local.ubuntu_arch}-server-*"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720109477"] # Canonical
    most_recent = true
  }
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = 20
    volume_type           = "gp3"
    delete_on_termination = true
  }
  tags = merge(local.tags, { os = "ubuntu-24.04" })
}

source "amazon-ebs" "al2023" {
  region        = var.region
  instance_type = local.instance_type
  subnet_id     = var.subnet_id != "" ? var.subnet_id : null
  ami_name      = "${var.ami_prefix}-al2023-${var.arch}-${local.stamp}"
  ssh_username  = "ec2-user"
  imds_support  = "v2.0"
  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-kernel-*-${var.arch}"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 20
    volume_type           = "gp3"
    delete_on_termination = true
  }
  tags = merge(local.tags, { os = "al2023" })
}

build {
  sources = ["source.amazon-ebs.ubuntu", "source.amazon-ebs.al2023"]

  # The files provision.sh installs; /tmp is the build instance's own.
  provisioner "file" {
    source      = "${path.root}/warm-up"
    destination = "/tmp/ec2-sessions-warm-up"
  }

  provisioner "file" {
    source      = "${path.root}/aws-cli.asc"
    destination = "/tmp/ec2-sessions-aws-cli.asc"
  }

  provisioner "shell" {
    script          = "${path.root}/provision.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} sh {{ .Path }}"
    environment_vars = [
      "RUNNER_VERSION=${var.runner_version}",
      "RUNNER_ARCH=${local.runner_arch}",
      "RUNNER_SHA256=${local.runner_sha256}",
      "RUNNER_SUDO=${var.runner_sudo}",
      "DOCKER_KEY_FINGERPRINT=${var.docker_key_fingerprint}",
      "BUILDX_VERSION=${var.buildx_version}",
      "BUILDX_SHA256=${local.buildx_sha256}",
      "COMPOSE_VERSION=${var.compose_version}",
      "COMPOSE_SHA256=${local.compose_sha256}",
      "AWS_CLI_VERSION=${var.aws_cli_version}",
      "AWS_CLI_KEY=/tmp/ec2-sessions-aws-cli.asc",
      "AWS_CLI_KEY_FINGERPRINT=${var.aws_cli_key_fingerprint}",
      "WARM_UP=/tmp/ec2-sessions-warm-up",
    ]
  }

  post-processor "manifest" {
    output     = "image/manifest.json"
    strip_path = true
  }
}
