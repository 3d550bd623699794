#!/bin/bash
# ec2-sessions: run this session's GitHub Actions runner for one job, then power off.
#
# The launcher fills in the three quoted placeholders below (functions/launcher/
# user_data.py, which lets no quote into them) and gives the result to the
# instance as its user data. The runner's just-in-time configuration is not in
# here: the instance role reads it from SSM, the script keeps it in one variable
# and hands it to the runner. It is never written to disk or printed, which is
# why tracing is switched off and never on.
#
# The image must hold: the GitHub Actions runner in RUNNER_DIR (run.sh), owned by
# RUNNER_USER, a user other than root; curl; the AWS CLI; runuser and getent.
# The instance role must allow ssm:GetParameter (with decryption) on the
# parameter, and the instance must allow IMDSv2.
set +x
set -euo pipefail

PARAMETER_NAME='@{parameter_name}'
RUNNER_DIR='@{runner_dir}'
RUNNER_USER='@{runner_user}'
IMDS=http://169.254.169.254/latest

# However the script ends, the instance powers off; its shutdown behaviour is
# "terminate", so the session's instance goes and the collector has less to do.
power_off() {
  local status=$?
  echo "ec2-sessions: runner script ended with status $status; powering off"
  poweroff || shutdown -h now
}
trap power_off EXIT

# IMDSv2: a session token first, then the region the instance runs in.
imds_token=$(curl -sSf --retry 5 --retry-connrefused -X PUT "$IMDS/api/token" \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
region=$(curl -sSf --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: $imds_token" \
  "$IMDS/meta-data/placement/region")

# The launcher writes the parameter once this instance exists (it names the instance
# allowed to read it), so it may not be there yet: ask again for up to two minutes.
# The instance role's grant is by the parameter's tags, so a read before the write is
# refused (AccessDenied), not "not found": both are asked again. Any other error is final.
errors=$(mktemp)
jitconfig=""
for attempt in $(seq 1 24); do
  if jitconfig=$(aws ssm get-parameter --region "$region" --name "$PARAMETER_NAME" \
    --with-decryption --query Parameter.Value --output text 2>"$errors"); then
    break
  fi
  jitconfig=""
  if ! grep -qE 'ParameterNotFound|AccessDenied' "$errors"; then
    cat "$errors" >&2
    exit 1
  fi
  echo "ec2-sessions: runner configuration not written yet (attempt $attempt); retrying"
  sleep 5
done
rm -f "$errors"
if [ -z "$jitconfig" ]; then
  echo "ec2-sessions: $PARAMETER_NAME holds no runner configuration" >&2
  exit 1
fi

if ! runner_home=$(getent passwd "$RUNNER_USER" | cut -d: -f6) || [ -z "$runner_home" ]; then
  echo "ec2-sessions: the image has no user $RUNNER_USER to run the runner as" >&2
  exit 1
fi

# Never as root: the job's steps run as this user.
cd "$RUNNER_DIR"
echo "ec2-sessions: starting the runner as $RUNNER_USER"
runuser -u "$RUNNER_USER" -- env HOME="$runner_home" "$RUNNER_DIR/run.sh" --jitconfig "$jitconfig"
