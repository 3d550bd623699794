#!/bin/bash
# ec2-sessions: the boot script of a session's instance. It runs the session's GitHub Actions runner
# for one job, then powers the instance off; the instance is never reused.
#
# The launcher fills in the four quoted placeholders below (functions/launcher/user_data.py, which
# lets no quote into them) and gives the result to the instance as its user data. On its first boot
# the script installs itself as a cloud-init per-boot script, so it runs on every boot, and POOL says
# what the instance is for:
#   none     made for its job: wait (two minutes at most) for the job's configuration, run, power off;
#   stopped  a stopped pool's: on the first boot, run the image's warm-up and power off (the shutdown
#            behaviour is "stop"); the job that claims it writes its configuration and starts it,
#            and that boot waits for it, runs, powers off;
#   hot      a hot pool's: wait for the configuration of the job that claims it, however long,
#            warming up meanwhile, then run and power off.
# An instance whose job ran powers off on any later boot. A configuration of "none" is a session
# claimed without a runner (curl, GitLab): the instance stays up and this script is done.
#
# The runner's just-in-time configuration is not in here: the instance role reads it from SSM, the
# script keeps it in one variable and hands it to the runner. It is never written to disk or
# printed, which is why tracing is switched off and never on.
#
# The image must hold: the GitHub Actions runner in RUNNER_DIR (run.sh), owned by RUNNER_USER, a user
# other than root; curl; the AWS CLI; runuser and getent; optionally the warm-up hook
# (image/warm-up). The instance role must allow ssm:GetParameter (with decryption) on the
# parameter, and the instance must allow IMDSv2.
set +x
set -euo pipefail

PARAMETER_NAME='@{parameter_name}'
RUNNER_DIR='@{runner_dir}'
RUNNER_USER='@{runner_user}'
POOL='@{pool}'
IMDS=http://169.254.169.254/latest
# Where the boot keeps its state and where cloud-init looks for per-boot scripts (a test points them
# at a folder of its own).
STATE_DIR=${EC2_SESSIONS_STATE_DIR:-/var/lib/ec2-sessions}
PER_BOOT_DIR=${EC2_SESSIONS_PER_BOOT_DIR:-/var/lib/cloud/scripts/per-boot}
WARM_UP=${EC2_SESSIONS_WARM_UP:-/usr/local/libexec/ec2-sessions/warm-up}

# However the script ends, the instance powers off: a session's instance terminates, a stopped
# pool's stops (until the job that claims it starts it), so nothing runs on unattended.
power_off() {
  local status=$?
  echo "ec2-sessions: boot script ended with status $status; powering off"
  poweroff || shutdown -h now
}
trap power_off EXIT

mkdir -p "$STATE_DIR"
if [ -e "$STATE_DIR/job-started" ]; then
  echo "ec2-sessions: this instance ran its job already and is never reused"
  exit 0
fi
first_boot=false
if [ ! -e "$STATE_DIR/booted" ]; then
  first_boot=true
  mkdir -p "$PER_BOOT_DIR"
  install -m 0700 "$0" "$PER_BOOT_DIR/ec2-sessions-runner"
  touch "$STATE_DIR/booted"
fi

warm_up() {
  if [ -x "$WARM_UP" ]; then
    "$WARM_UP" || true # it never fails a boot; a hook that did is no reason to lose the instance
  fi
}

if [ "$POOL" = stopped ] && $first_boot; then
  warm_up
  echo "ec2-sessions: warmed; powering off until a job claims this instance"
  exit 0
fi

# IMDSv2: a session token first, then the region the instance runs in.
imds_token=$(curl -sSf --retry 5 --retry-connrefused -X PUT "$IMDS/api/token" \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
region=$(curl -sSf --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: $imds_token" \
  "$IMDS/meta-data/placement/region")

# A hot pool's first boot warms up while it waits; the warm-up stops once the job has come.
warming=""
if [ "$POOL" = hot ] && $first_boot && [ -x "$WARM_UP" ]; then
  "$WARM_UP" &
  warming=$!
fi

# The launcher writes the parameter once the instance exists (it names the instance allowed to read
# it), so it may not be there yet: ask again, every 5 s for two minutes, or every second without end
# on a hot pool's instance (on any boot: a maintenance reboot must not lose it), which waits for
# whatever job claims it. The grant is by the parameter's tags, so a read before the write is
# refused (AccessDenied), not "not found": both are asked again. Any other error is final, but for
# a hot pool's instance, which asks again after a pause (a throttled or unreachable SSM, hours into
# its wait, is no reason to lose it).
tries=24
pause=5
if [ "$POOL" = hot ]; then
  tries=0 # no end: the pool retires the instance when it is too old
  pause=1
fi
errors=$(mktemp)
jitconfig=""
attempt=0
while [ "$tries" -eq 0 ] || [ "$attempt" -lt "$tries" ]; do
  attempt=$((attempt + 1))
  if jitconfig=$(aws ssm get-parameter --region "$region" --name "$PARAMETER_NAME" \
    --with-decryption --query Parameter.Value --output text 2>"$errors"); then
    break
  fi
  jitconfig=""
  if ! grep -qE 'ParameterNotFound|AccessDenied' "$errors"; then
    cat "$errors" >&2
    if [ "$POOL" != hot ]; then
      exit 1
    fi
    sleep 10 # a hot pool's instance outwaits an SSM that throttles or cannot be reached
  fi
  echo "ec2-sessions: runner configuration not written yet (attempt $attempt); retrying"
  sleep "$pause"
done
rm -f "$errors"
if [ -n "$warming" ]; then
  kill "$warming" 2>/dev/null || true
fi
if [ -z "$jitconfig" ]; then
  echo "ec2-sessions: $PARAMETER_NAME holds no runner configuration" >&2
  exit 1
fi
if [ "$jitconfig" = none ]; then
  echo "ec2-sessions: claimed without a runner; the instance is its session's"
  trap - EXIT
  exit 0
fi

if ! runner_home=$(getent passwd "$RUNNER_USER" | cut -d: -f6) || [ -z "$runner_home" ]; then
  echo "ec2-sessions: the image has no user $RUNNER_USER to run the runner as" >&2
  exit 1
fi

# One job, ever: from here on, any boot powers the instance off.
touch "$STATE_DIR/job-started"
# Never as root: the job's steps run as this user.
cd "$RUNNER_DIR"
echo "ec2-sessions: starting the runner as $RUNNER_USER"
runuser -u "$RUNNER_USER" -- env HOME="$runner_home" "$RUNNER_DIR/run.sh" --jitconfig "$jitconfig"
