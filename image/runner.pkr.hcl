# The AMI of a session's instance for GitHub jobs: the Actions runner, a user to run it, the AWS CLI.
#
#   packer init image/runner.pkr.hcl
#   packer build image/runner.pkr.hcl                                  # both, x86_64
#   packer build -var arch=arm64 -only='amazon-ebs.al2023' image/runner.pkr.hcl
#
# Two sources, Ubuntu 24.04 and Amazon Linux 2023, share one provisioning script (provision.sh):
# the runner at a pinned version, its archive checked against the SHA-256 that actions/runner
# publishes, unpacked into /opt/actions-runner owned by the non-root user `runner`, plus curl, the
# AWS CLI v2, runuser and getent: what the launcher's user data (functions/launcher/
# runner_user_data.sh) needs. Put the AMI id where the launch template reads it, e.g. the SSM
# parameter named by LaunchTemplateImageParameter (docs/connect-ci.md).
#
# A runner older than GitHub's newest updates itself before its job, which costs the job a minute:
# move runner_version and both checksums to a new release (its notes list the checksums) regularly.
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

locals {
  stamp         = formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  ubuntu_arch   = var.arch == "x86_64" ? "amd64" : "arm64"
  runner_arch   = var.arch == "x86_64" ? "x64" : "arm64"
  runner_sha256 = var.arch == "x86_64" ? var.runner_sha256_x64 : var.runner_sha256_arm64
  instance_type = var.instance_type != "" ? var.instance_type : (var.arch == "x86_64" ? "t3.small" : "t4g.small")
  tags = {
    "ec2-sessions:image" = "runner"
    runner_version       = var.runner_version
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

  provisioner "shell" {
    script          = "${path.root}/provision.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} sh {{ .Path }}"
    environment_vars = [
      "RUNNER_VERSION=${var.runner_version}",
      "RUNNER_ARCH=${local.runner_arch}",
      "RUNNER_SHA256=${local.runner_sha256}",
    ]
  }

  post-processor "manifest" {
    output     = "image/manifest.json"
    strip_path = true
  }
}
