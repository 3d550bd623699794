#!/usr/bin/env bash
# Standard Webhooks signature headers for one request body, in pure shell (bash + openssl).
# Usage: SECRET=<webhook secret> tools/sign-request.sh '<exact body>'   -> three -H options for curl
# The signature covers a fresh id, the current time and the body: it cannot be replayed after 5 minutes.
set -euo pipefail
body=$1
id="msg_$(openssl rand -hex 12)"
ts="$(date +%s)"
key_hex="$(printf '%s' "${SECRET#whsec_}" | openssl base64 -d -A | od -An -vtx1 | tr -d ' \n')"
sig="$(printf '%s.%s.%s' "$id" "$ts" "$body" \
  | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | openssl base64 -A)"
printf -- '-H\nwebhook-id: %s\n-H\nwebhook-timestamp: %s\n-H\nwebhook-signature: v1,%s\n' "$id" "$ts" "$sig"
