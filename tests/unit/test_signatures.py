"""The three ways of proving the webhook secret, against the published test vectors."""

from __future__ import annotations

import pytest
from http_errors import Unauthorized
from signatures import (
    SecretNotBase64,
    authenticate,
    github_signature,
    standard_signature,
    verify_github,
    verify_standard,
)

# Standard Webhooks' reference libraries' vector.
KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID, STAMP, BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
VECTOR = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def standard_headers(signature=VECTOR, msg_id=MSG_ID, stamp=STAMP):
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_standard_webhooks_reference_vector():
    assert standard_signature(MSG_ID, STAMP, BODY, KEY) == VECTOR
    verify_standard(standard_headers(), BODY, KEY, now=STAMP + 10)


def test_the_standardwebhooks_library_signs_as_we_do():
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    for msg_id, stamp, body in [(MSG_ID, STAMP, BODY), ("msg_2", 1795557600, b'{"session": "b/x/1"}')]:
        theirs = Webhook(KEY).sign(msg_id, datetime.fromtimestamp(stamp, tz=UTC), body.decode())
        assert theirs == standard_signature(msg_id, stamp, body, KEY)


def test_any_one_of_several_signatures_may_match():
    verify_standard(standard_headers(f"v1,bm90IGl0 v2,xyz {VECTOR}"), BODY, KEY, now=STAMP)


@pytest.mark.parametrize("offset", [-301, 301, 10**6])
def test_a_timestamp_more_than_five_minutes_away_is_refused_either_way(offset):
    with pytest.raises(Unauthorized, match="5 minutes"):
        verify_standard(standard_headers(), BODY, KEY, now=STAMP - offset)


@pytest.mark.parametrize(
    "headers",
    [
        standard_headers(msg_id="msg_other"),  # the id is signed
        standard_headers(stamp=STAMP + 1),  # so is the timestamp
        standard_headers("v1," + VECTOR[4:-2] + "A="),
        standard_headers("v2," + VECTOR[3:]),
        standard_headers(stamp="1614265330.0"),
        {"webhook-id": MSG_ID, "webhook-signature": VECTOR},
    ],
)
def test_anything_but_the_signed_id_timestamp_and_body_is_refused(headers):
    with pytest.raises(Unauthorized):
        verify_standard(headers, BODY, KEY, now=STAMP)


def test_a_secret_that_is_not_base64_cannot_verify_standard_webhooks():
    with pytest.raises(SecretNotBase64):
        verify_standard(standard_headers(), BODY, "not-base64!", now=STAMP)


def test_github_documented_vector():
    vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(b"Hello, World!", "It's a Secret to Everybody") == vector
    verify_github(b"Hello, World!", vector, "It's a Secret to Everybody")


def test_every_scheme_a_request_carries_must_verify():
    secret = "AnotherSecretAnotherSecret012345"
    good_github = {"x-hub-signature-256": github_signature(BODY, secret)}
    forged_standard = standard_headers()  # signed under the vector's key, not this one

    authenticate(good_github, BODY, secret, ("github", "standard"), now=STAMP)
    with pytest.raises(Unauthorized):
        authenticate({**good_github, **forged_standard}, BODY, secret, ("github", "standard"), now=STAMP)
    with pytest.raises(Unauthorized, match="X-Gitlab-Token or webhook"):
        authenticate(good_github, BODY, secret, ("gitlab", "standard"), now=STAMP)  # GitHub's is not taken there
