#!/bin/sh
# Provision a session instance's AMI (Ubuntu 24.04 or Amazon Linux 2023) for GitHub jobs; run as root by
# Packer (runner.pkr.hcl). What the launcher's user data needs, and nothing that holds a secret:
#   - the GitHub Actions runner RUNNER_VERSION for RUNNER_ARCH (x64 or arm64), its archive checked
#     against RUNNER_SHA256 before anything of it is unpacked, in /opt/actions-runner;
#   - a user `runner`, not root and without sudo, owning that folder: the job's steps run as it;
#   - curl, the AWS CLI v2 (at /usr/local/bin/aws or /usr/bin/aws, on cloud-init's PATH), runuser, getent.
#
#   provision.sh                     provision this machine
#   provision.sh fetch-runner FILE   only download the runner archive to FILE and check it (also for tests;
#                                    RUNNER_BASE_URL replaces the release download URL)
set -eu

RUNNER_DIR=/opt/actions-runner
RUNNER_USER=runner
RUNNER_BASE_URL=${RUNNER_BASE_URL:-https://github.com/actions/runner/releases/download}

die() {
  printf 'provision: %s\n' "$*" >&2
  exit 1
}

need_settings() {
  : "${RUNNER_VERSION:?RUNNER_VERSION is required, e.g. 2.337.0}"
  : "${RUNNER_SHA256:?RUNNER_SHA256 is required: the archive checksum from the release notes}"
  case ${RUNNER_ARCH:-} in
    x64 | arm64) ;;
    *) die "RUNNER_ARCH must be x64 or arm64" ;;
  esac
  case $RUNNER_SHA256 in
    *[!0-9a-f]*) die "RUNNER_SHA256 must be 64 lower-case hexadecimal digits" ;;
  esac
  [ ${#RUNNER_SHA256} -eq 64 ] || die "RUNNER_SHA256 must be 64 lower-case hexadecimal digits"
}

# Download the runner archive to $1 and keep it only if its SHA-256 is the pinned one.
fetch_runner() {
  need_settings
  url="$RUNNER_BASE_URL/v$RUNNER_VERSION/actions-runner-linux-$RUNNER_ARCH-$RUNNER_VERSION.tar.gz"
  curl -fsSL --retry 5 --retry-delay 2 -o "$1" "$url" || die "could not download $url"
  if ! printf '%s  %s\n' "$RUNNER_SHA256" "$1" | sha256sum -c - >/dev/null 2>&1; then
    rm -f "$1"
    die "checksum mismatch for $url: expected $RUNNER_SHA256; the archive is deleted"
  fi
}

os_id() {
  # shellcheck disable=SC1091 # the running system's own file
  . /etc/os-release
  printf '%s' "$ID"
}

install_packages() {
  case $(os_id) in
    ubuntu)
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q
      apt-get install -y -q --no-install-recommends ca-certificates curl git tar gzip util-linux
      snap wait system seed.loaded
      snap install aws-cli --classic
      ln -sf /snap/bin/aws /usr/local/bin/aws # cloud-init's PATH has no /snap/bin
      ;;
    amzn)
      # curl is curl-minimal on AL2023 (installing curl would conflict); the AWS CLI v2 is awscli-2.
      dnf install -y -q ca-certificates git tar gzip util-linux awscli-2 libicu krb5-libs openssl-libs zlib
      ;;
    *) die "unsupported system $(os_id): Ubuntu 24.04 or Amazon Linux 2023" ;;
  esac
}

install_runner() {
  if ! id "$RUNNER_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --comment "GitHub Actions runner" "$RUNNER_USER"
  fi
  archive=$(mktemp /tmp/actions-runner.XXXXXX)
  fetch_runner "$archive"
  mkdir -p "$RUNNER_DIR"
  tar -xzf "$archive" -C "$RUNNER_DIR"
  rm -f "$archive"
  if [ "$(os_id)" = ubuntu ]; then
    "$RUNNER_DIR/bin/installdependencies.sh" # the .NET libraries under their Ubuntu names
  fi
  chown -R "$RUNNER_USER:$RUNNER_USER" "$RUNNER_DIR"
}

# What runner_user_data.sh relies on, checked on the built machine so a bad image fails its build.
check() {
  for tool in curl runuser getent; do
    command -v "$tool" >/dev/null || die "$tool is missing"
  done
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin aws --version >/dev/null || die "aws is missing"
  [ "$(id -u "$RUNNER_USER")" -ne 0 ] || die "$RUNNER_USER must not be root"
  [ -x "$RUNNER_DIR/run.sh" ] || die "$RUNNER_DIR/run.sh is missing"
  [ "$(stat -c %U "$RUNNER_DIR")" = "$RUNNER_USER" ] || die "$RUNNER_DIR must belong to $RUNNER_USER"
  version=$(runuser -u "$RUNNER_USER" -- "$RUNNER_DIR/bin/Runner.Listener" --version) ||
    die "the runner does not start as $RUNNER_USER (a missing .NET library?)"
  case $version in
    *"$RUNNER_VERSION"*) ;;
    *) die "the runner says it is $version, not $RUNNER_VERSION" ;;
  esac
}

main() {
  need_settings
  [ "$(id -u)" -eq 0 ] || die "run as root (Packer's execute_command uses sudo)"
  case $(uname -m) in
    x86_64) [ "$RUNNER_ARCH" = x64 ] || die "an x86_64 machine needs RUNNER_ARCH=x64" ;;
    aarch64) [ "$RUNNER_ARCH" = arm64 ] || die "an arm64 machine needs RUNNER_ARCH=arm64" ;;
    *) die "unsupported machine $(uname -m)" ;;
  esac
  install_packages
  install_runner
  check
  echo "provision: runner $RUNNER_VERSION ($RUNNER_ARCH) in $RUNNER_DIR for $RUNNER_USER"
}

case ${1:-} in
  '') main ;;
  fetch-runner)
    [ $# -eq 2 ] || die "usage: provision.sh fetch-runner FILE"
    fetch_runner "$2"
    ;;
  *) die "usage: provision.sh [fetch-runner FILE]" ;;
esac
