#!/bin/sh
# Provision a session instance's AMI (Ubuntu 24.04 or Amazon Linux 2023) for GitHub jobs; run as root by
# Packer (runner.pkr.hcl). What a workflow written for GitHub's hosted runners expects, what the
# launcher's user data needs, and nothing that holds a secret:
#   - the GitHub Actions runner RUNNER_VERSION for RUNNER_ARCH (x64 or arm64), its archive checked
#     against RUNNER_SHA256 before anything of it is unpacked, in /opt/actions-runner;
#   - a user `runner`, not root, owning that folder: the job's steps run as it. It is in the group
#     docker, and may use sudo without a password unless RUNNER_SUDO=false (docs/security.md);
#   - Docker Engine with the buildx and compose plugins: on Ubuntu from Docker's apt repository, whose
#     key must have the fingerprint DOCKER_KEY_FINGERPRINT; on Amazon Linux 2023 the distribution's
#     docker, and buildx BUILDX_VERSION and compose COMPOSE_VERSION from their GitHub releases, each
#     checked against BUILDX_SHA256 and COMPOSE_SHA256;
#   - git, curl, jq, unzip, zip, python3 with pip and venv, gcc, g++ and make, fio, runuser, getent;
#   - the AWS CLI v2 at /usr/local/bin/aws or /usr/bin/aws (on cloud-init's PATH): on Ubuntu AWS's
#     installer AWS_CLI_VERSION, kept only if its signature is by the key with the fingerprint
#     AWS_CLI_KEY_FINGERPRINT (the key itself is the file AWS_CLI_KEY); Amazon Linux 2023 has awscli-2;
#   - the warm-up hook (the file WARM_UP) as /usr/local/libexec/ec2-sessions/warm-up, and its folder
#     /etc/ec2-sessions/warm-up.d for the image's own warm-up steps;
#   - cloud-init running /var/lib/cloud/scripts/per-boot/ on every boot with no time limit: a pool
#     instance's boot script lives there (docs/connect-ci.md).
# Every download is checked before use: a SHA-256 (fetch_verified), a key fingerprint (fetch_key) or
# a signature (fetch_aws_cli). The versions and checksums are pinned in runner.pkr.hcl.
#
#   provision.sh                        provision this machine
#   provision.sh fetch-runner FILE      only download the runner archive to FILE and check it
#   provision.sh fetch-docker-key FILE  only download Docker's apt key to FILE and check it
#   provision.sh fetch-aws-cli DIR      only download the AWS CLI installer into DIR and check it
# (the fetch commands are for tests too: RUNNER_BASE_URL, DOCKER_APT_URL and AWS_CLI_BASE_URL replace
# the download sites)
set -eu

RUNNER_DIR=/opt/actions-runner
RUNNER_USER=runner
RUNNER_BASE_URL=${RUNNER_BASE_URL:-https://github.com/actions/runner/releases/download}
DOCKER_APT_URL=${DOCKER_APT_URL:-https://download.docker.com/linux/ubuntu}
AWS_CLI_BASE_URL=${AWS_CLI_BASE_URL:-https://awscli.amazonaws.com}
DOCKER_PLUGINS=/usr/local/lib/docker/cli-plugins
WARM_UP_HOOK=/usr/local/libexec/ec2-sessions/warm-up
WARM_UP_DIR=/etc/ec2-sessions/warm-up.d
SUDOERS=/etc/sudoers.d/90-ec2-sessions-runner
CLOUD_FINAL_DROP_IN=/etc/systemd/system/cloud-final.service.d/ec2-sessions.conf

die() {
  printf 'provision: %s\n' "$*" >&2
  exit 1
}

# Each named setting must match its rule; every one that does not is named before the script stops.
bad=""
require() { # NAME RULE: version, sha256, fingerprint, arch, bool or file
  eval "value=\${$1-}"
  # shellcheck disable=SC2154 # value is set by the eval above
  case $2 in
    version) made_of "$value" 0-9. 0 && case $value in .* | *. | *..*) false ;; *.*.*) ;; *) false ;; esac ;;
    sha256) made_of "$value" 0-9a-f 64 ;;
    fingerprint) made_of "$value" 0-9A-F 40 ;;
    arch) [ "$value" = x64 ] || [ "$value" = arm64 ] ;;
    bool) [ "$value" = true ] || [ "$value" = false ] ;;
    file) [ -f "$value" ] ;;
  esac || bad="$bad $1 ($2)"
}
made_of() { # VALUE CHARACTERS LENGTH (0: any)
  case $1 in '' | *[!$2]*) return 1 ;; esac
  [ "$3" -eq 0 ] || [ ${#1} -eq "$3" ]
}
settings_ok() {
  [ -z "$bad" ] || die "these settings are missing or malformed:$bad; runner.pkr.hcl passes them all"
}

runner_settings() {
  require RUNNER_VERSION version
  require RUNNER_SHA256 sha256
  require RUNNER_ARCH arch
}

all_settings() {
  runner_settings
  require RUNNER_SUDO bool
  require DOCKER_KEY_FINGERPRINT fingerprint
  require BUILDX_VERSION version
  require BUILDX_SHA256 sha256
  require COMPOSE_VERSION version
  require COMPOSE_SHA256 sha256
  require AWS_CLI_VERSION version
  require AWS_CLI_KEY file
  require AWS_CLI_KEY_FINGERPRINT fingerprint
  require WARM_UP file
}

# Download $1 to $3 and keep it only if its SHA-256 is $2.
fetch_verified() {
  curl -fsSL --retry 5 --retry-delay 2 -o "$3" "$1" || die "could not download $1"
  if ! printf '%s  %s\n' "$2" "$3" | sha256sum -c - >/dev/null 2>&1; then
    rm -f "$3"
    die "checksum mismatch for $1: expected $2; the download is deleted"
  fi
}

# Download the OpenPGP key at $1 to $3 and keep it only if it holds one key, whose fingerprint is $2.
fetch_key() {
  curl -fsSL --retry 5 --retry-delay 2 -o "$3" "$1" || die "could not download $1"
  home=$(mktemp -d)
  found=$(gpg --batch --homedir "$home" --no-keyring --show-keys --with-colons "$3" 2>/dev/null |
    awk -F: '$1 == "pub" { keys++; primary = 1; next } $1 == "fpr" && primary { print $10; primary = 0 }
      $1 == "sub" { primary = 0 } END { if (keys != 1) print "more than one key" }') || found=""
  rm -rf "$home"
  if [ "$found" != "$2" ]; then
    rm -f "$3"
    die "the key at $1 is not the one with the fingerprint $2; the download is deleted"
  fi
}

# Download the AWS CLI installer AWS_CLI_VERSION for RUNNER_ARCH into $1 (awscliv2.zip) and keep it only
# if its signature (AWS's .sig) is good and made by the key whose fingerprint is AWS_CLI_KEY_FINGERPRINT.
fetch_aws_cli() {
  case $RUNNER_ARCH in
    x64) machine=x86_64 ;;
    *) machine=aarch64 ;;
  esac
  url="$AWS_CLI_BASE_URL/awscli-exe-linux-$machine-$AWS_CLI_VERSION.zip"
  curl -fsSL --retry 5 --retry-delay 2 -o "$1/awscliv2.zip" "$url" || die "could not download $url"
  curl -fsSL --retry 5 --retry-delay 2 -o "$1/awscliv2.sig" "$url.sig" || die "could not download $url.sig"
  home=$(mktemp -d)
  # gpgv reads a binary keyring and starts no agent; VALIDSIG's last field is the primary key's fingerprint.
  gpg --batch --homedir "$home" --dearmor -o "$home/aws-cli.gpg" "$AWS_CLI_KEY" || die "$AWS_CLI_KEY is not an OpenPGP key"
  verdict=$(gpgv --keyring "$home/aws-cli.gpg" --status-fd 1 "$1/awscliv2.sig" "$1/awscliv2.zip" 2>/dev/null) || true
  rm -rf "$home"
  if ! printf '%s\n' "$verdict" | awk -v want="$AWS_CLI_KEY_FINGERPRINT" '$2 == "REVKEYSIG" { revoked = 1 }
      $2 == "VALIDSIG" && $NF == want { valid = 1 } END { exit !(valid && !revoked) }'; then
    rm -f "$1/awscliv2.zip" "$1/awscliv2.sig"
    die "the signature of $url is not good or not by the key $AWS_CLI_KEY_FINGERPRINT; the download is deleted"
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
      apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends ca-certificates curl gnupg gpgv git tar gzip util-linux \
        sudo jq unzip zip python3 python3-pip python3-venv build-essential fio
      install_docker_ubuntu
      install_aws_cli
      ;;
    amzn)
      # curl is curl-minimal on AL2023 (installing curl would conflict); the AWS CLI v2 is awscli-2.
      dnf install -y -q ca-certificates git tar gzip util-linux sudo jq unzip zip python3 python3-pip \
        gcc gcc-c++ make glibc-devel fio awscli-2 docker libicu krb5-libs openssl-libs zlib
      install_docker_plugins
      ;;
    *) die "unsupported system $(os_id): Ubuntu 24.04 or Amazon Linux 2023" ;;
  esac
  systemctl enable --now docker.service
}

install_docker_ubuntu() {
  install -m 0755 -d /etc/apt/keyrings
  fetch_key "$DOCKER_APT_URL/gpg" "$DOCKER_KEY_FINGERPRINT" /etc/apt/keyrings/docker.asc
  chmod a+r /etc/apt/keyrings/docker.asc
  codename=$(
    # shellcheck disable=SC1091
    . /etc/os-release
    printf '%s' "$VERSION_CODENAME"
  )
  printf 'deb [arch=%s signed-by=/etc/apt/keyrings/docker.asc] %s %s stable\n' \
    "$(dpkg --print-architecture)" "$DOCKER_APT_URL" "$codename" >/etc/apt/sources.list.d/docker.list
  apt-get update -q
  apt-get install -y -q -o DPkg::Lock::Timeout=600 docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
}

install_docker_plugins() {
  case $RUNNER_ARCH in
    x64) buildx_arch=amd64 compose_arch=x86_64 ;;
    *) buildx_arch=arm64 compose_arch=aarch64 ;;
  esac
  mkdir -p "$DOCKER_PLUGINS"
  fetch_verified "https://github.com/docker/buildx/releases/download/v$BUILDX_VERSION/buildx-v$BUILDX_VERSION.linux-$buildx_arch" \
    "$BUILDX_SHA256" "$DOCKER_PLUGINS/docker-buildx"
  fetch_verified "https://github.com/docker/compose/releases/download/v$COMPOSE_VERSION/docker-compose-linux-$compose_arch" \
    "$COMPOSE_SHA256" "$DOCKER_PLUGINS/docker-compose"
  chmod 0755 "$DOCKER_PLUGINS/docker-buildx" "$DOCKER_PLUGINS/docker-compose"
}

install_aws_cli() {
  work=$(mktemp -d)
  fetch_aws_cli "$work"
  unzip -q "$work/awscliv2.zip" -d "$work"
  "$work/aws/install" --bin-dir /usr/local/bin --install-dir /usr/local/aws-cli --update
  rm -rf "$work"
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
  usermod -aG docker "$RUNNER_USER"
}

fetch_runner() {
  fetch_verified "$RUNNER_BASE_URL/v$RUNNER_VERSION/actions-runner-linux-$RUNNER_ARCH-$RUNNER_VERSION.tar.gz" \
    "$RUNNER_SHA256" "$1"
}

# Passwordless sudo for the runner, as on GitHub's hosted runners, unless RUNNER_SUDO=false.
configure_sudo() {
  if [ "$RUNNER_SUDO" = true ]; then
    rule=$(mktemp)
    printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$RUNNER_USER" >"$rule"
    visudo -cf "$rule" >/dev/null || die "the sudoers rule for $RUNNER_USER does not parse"
    install -m 0440 -o root -g root "$rule" "$SUDOERS"
    rm -f "$rule"
  else
    rm -f "$SUDOERS"
  fi
}

install_warm_up() {
  install -D -m 0755 -o root -g root "$WARM_UP" "$WARM_UP_HOOK"
  install -d -m 0755 -o root -g root "$WARM_UP_DIR"
}

# A pool instance's boot script is a cloud-init per-boot script that may run a job for hours or wait
# for one: cloud-final, which runs it, must have no start time limit (cloud-init's own unit says
# TimeoutSec=0; this keeps it so whatever the distribution ships).
configure_boot() {
  mkdir -p "${CLOUD_FINAL_DROP_IN%/*}"
  printf '[Service]\nTimeoutStartSec=infinity\n' >"$CLOUD_FINAL_DROP_IN"
  systemctl daemon-reload
}

# cloud-init runs the per-boot scripts on every boot: its final modules, as configured (cloud.cfg, then
# cloud.cfg.d in name order, the last list wins), hold scripts_per_boot at its default frequency, always.
per_boot_configured() {
  python3 - <<'EOF'
import glob, sys, yaml
modules = []
for path in ["/etc/cloud/cloud.cfg", *sorted(glob.glob("/etc/cloud/cloud.cfg.d/*.cfg"))]:
    with open(path) as file:
        config = yaml.safe_load(file) or {}
    modules = config.get("cloud_final_modules", modules)
for entry in modules:
    name, frequency = (entry, "always") if isinstance(entry, str) else (entry[0], (list(entry) + ["always"])[1])
    if name.replace("-", "_") == "scripts_per_boot" and frequency == "always":
        sys.exit(0)
sys.exit(1)
EOF
}

# What jobs and the launcher's user data rely on, checked on the built machine so a bad image fails its build.
check() {
  for tool in curl runuser getent git jq unzip zip gcc g++ make python3 fio; do
    command -v "$tool" >/dev/null || die "$tool is missing"
  done
  aws_version=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin aws --version) || die "aws is missing"
  case $(os_id):$aws_version in
    ubuntu:aws-cli/"$AWS_CLI_VERSION"\ * | amzn:aws-cli/2.*) ;;
    *) die "aws says it is $aws_version, not the AWS CLI v2 pinned for $(os_id)" ;;
  esac
  venv=$(mktemp -d)
  if ! python3 -m venv "$venv/check" || ! "$venv/check/bin/pip" --version >/dev/null; then
    die "python3 cannot make a venv with pip"
  fi
  rm -rf "$venv"

  [ "$(id -u "$RUNNER_USER")" -ne 0 ] || die "$RUNNER_USER must not be root"
  [ -x "$RUNNER_DIR/run.sh" ] || die "$RUNNER_DIR/run.sh is missing"
  [ "$(stat -c %U "$RUNNER_DIR")" = "$RUNNER_USER" ] || die "$RUNNER_DIR must belong to $RUNNER_USER"
  version=$(runuser -u "$RUNNER_USER" -- "$RUNNER_DIR/bin/Runner.Listener" --version) ||
    die "the runner does not start as $RUNNER_USER (a missing .NET library?)"
  case $version in
    *"$RUNNER_VERSION"*) ;;
    *) die "the runner says it is $version, not $RUNNER_VERSION" ;;
  esac

  id -nG "$RUNNER_USER" | tr ' ' '\n' | grep -qx docker || die "$RUNNER_USER is not in the group docker"
  systemctl is-enabled --quiet docker.service || die "docker does not start at boot"
  runuser -u "$RUNNER_USER" -- docker version >/dev/null || die "$RUNNER_USER cannot use docker"
  buildx=$(runuser -u "$RUNNER_USER" -- docker buildx version) || die "docker buildx is missing"
  compose=$(runuser -u "$RUNNER_USER" -- docker compose version) || die "docker compose is missing"
  if [ "$(os_id)" = amzn ]; then
    case $buildx in *"v$BUILDX_VERSION"*) ;; *) die "buildx says $buildx, not $BUILDX_VERSION" ;; esac
    case $compose in *"v$COMPOSE_VERSION"*) ;; *) die "compose says $compose, not $COMPOSE_VERSION" ;; esac
  fi

  if runuser -u "$RUNNER_USER" -- sudo -n true 2>/dev/null; then
    [ "$RUNNER_SUDO" = true ] || die "$RUNNER_USER may use sudo although RUNNER_SUDO=false"
  else
    [ "$RUNNER_SUDO" = false ] || die "$RUNNER_USER may not use sudo without a password although RUNNER_SUDO=true"
  fi

  [ -x "$WARM_UP_HOOK" ] && [ -d "$WARM_UP_DIR" ] || die "the warm-up hook or $WARM_UP_DIR is missing"
  root_device=$("$WARM_UP_HOOK" device) && [ -b "$root_device" ] ||
    die "the warm-up hook finds no block device for / (it said '$root_device')"

  [ ! -e /etc/cloud/cloud-init.disabled ] || die "cloud-init is disabled (/etc/cloud/cloud-init.disabled)"
  systemctl is-enabled --quiet cloud-final.service || die "cloud-final.service is not enabled"
  per_boot_configured || die "cloud-init's cloud_final_modules do not run scripts_per_boot on every boot"
  [ "$(systemctl show --property TimeoutStartUSec --value cloud-final.service)" = infinity ] ||
    die "cloud-final.service has a start time limit: a job in a per-boot script would be killed"
}

main() {
  all_settings
  settings_ok
  [ "$(id -u)" -eq 0 ] || die "run as root (Packer's execute_command uses sudo)"
  case $(uname -m) in
    x86_64) [ "$RUNNER_ARCH" = x64 ] || die "an x86_64 machine needs RUNNER_ARCH=x64" ;;
    aarch64) [ "$RUNNER_ARCH" = arm64 ] || die "an arm64 machine needs RUNNER_ARCH=arm64" ;;
    *) die "unsupported machine $(uname -m)" ;;
  esac
  cloud-init status --wait >/dev/null || true # the first boot's own package runs hold apt's and dnf's locks
  install_packages
  install_runner
  configure_sudo
  install_warm_up
  configure_boot
  check
  echo "provision: runner $RUNNER_VERSION ($RUNNER_ARCH) in $RUNNER_DIR for $RUNNER_USER, sudo $RUNNER_SUDO"
}

case ${1:-}:$# in
  :0) main ;;
  fetch-runner:2)
    runner_settings
    settings_ok
    fetch_runner "$2"
    ;;
  fetch-docker-key:2)
    require DOCKER_KEY_FINGERPRINT fingerprint
    settings_ok
    fetch_key "$DOCKER_APT_URL/gpg" "$DOCKER_KEY_FINGERPRINT" "$2"
    ;;
  fetch-aws-cli:2)
    require RUNNER_ARCH arch
    require AWS_CLI_VERSION version
    require AWS_CLI_KEY file
    require AWS_CLI_KEY_FINGERPRINT fingerprint
    settings_ok
    fetch_aws_cli "$2"
    ;;
  *) die "usage: provision.sh [fetch-runner FILE | fetch-docker-key FILE | fetch-aws-cli DIR]" ;;
esac
