"""``make deploy``'s first step: AWS credentials are found, or one line says so before anything is built or asked.

boto3's own chain resolves them as SAM will (the variables, the shared
files, SSO, a credential process, a container's or an instance's role),
without a call to AWS: with none, the guided deploy would otherwise ask its
25 questions first and fail at the end. The instance metadata service is
asked last, with botocore's one-second timeout and one attempt, so the check
never hangs. Exit status 0 when credentials are found, 1 otherwise.
"""

from __future__ import annotations

import sys

NONE = (
    "make deploy: no AWS credentials: set AWS_PROFILE (after aws configure or aws sso login), "
    "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; nothing was built or deployed"
)


def main() -> int:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        credentials = boto3.session.Session().get_credentials()
        found = credentials is not None and credentials.get_frozen_credentials().access_key
    except BotoCoreError as error:  # a profile that does not exist, an SSO login that expired: botocore says which
        print(f"make deploy: AWS credentials cannot be used: {error}; nothing was built or deployed", file=sys.stderr)
        return 1
    if not found:
        print(NONE, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
