"""The GitHub App's secret: read with clear errors that never repeat it; the key's libraries loaded late."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from session_naming.github import AppSecretError, load_app

from tests.support.github_fake import app_private_key

LAYER = Path(__file__).resolve().parents[2] / "layers" / "session_naming"
MARKER = "MIIEsecretMaterialThatMustNeverBeShown"
FAKE_PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{MARKER}\n-----END RSA PRIVATE KEY-----\n"
API = "https://api.github.com"


def test_the_secret_gives_an_app():
    app = load_app(json.dumps({"app_id": "123456", "private_key": FAKE_PEM}), API)
    assert (app.api_url, app.app_id) == (API, "123456")


def test_a_numeric_app_id_and_extra_fields_are_accepted():
    app = load_app(json.dumps({"app_id": 123456, "private_key": FAKE_PEM, "client_id": "Iv1.x"}), API + "/")
    assert (app.api_url, app.app_id) == (API, "123456")


def test_a_key_pasted_with_escaped_line_breaks_is_mended_and_signs():
    pem = app_private_key()
    app = load_app(json.dumps({"app_id": "1", "private_key": pem.replace("\n", "\\n")}), API)
    assert app.app_jwt().count(".") == 2


@pytest.mark.parametrize(
    "secret, names",
    [
        ("", ["JSON"]),
        ("not json " + MARKER, ["JSON"]),
        (json.dumps([FAKE_PEM]), ["JSON"]),
        (json.dumps(FAKE_PEM), ["JSON"]),
        (json.dumps({"private_key": FAKE_PEM}), ["app_id"]),
        (json.dumps({"app_id": "12a", "private_key": FAKE_PEM}), ["app_id"]),
        (json.dumps({"app_id": True, "private_key": FAKE_PEM}), ["app_id"]),
        (json.dumps({"app_id": "1"}), ["private_key"]),
        (json.dumps({"app_id": "1", "private_key": MARKER}), ["private_key"]),
        (json.dumps({"app_id": -1, "private_key": 42}), ["app_id", "private_key"]),
    ],
)
def test_a_bad_secret_names_every_problem_and_never_repeats_it(secret, names):
    with pytest.raises(AppSecretError) as refused:
        load_app(secret, API)
    message = str(refused.value)
    assert all(name in message for name in names)
    assert MARKER not in message and "BEGIN" not in message
    assert refused.value.__context__ is None  # no parser error carries the text along


def test_an_unreadable_key_is_refused_when_signing_without_showing_it():
    app = load_app(json.dumps({"app_id": "1", "private_key": FAKE_PEM}), API)
    with pytest.raises(AppSecretError) as refused:
        app.app_jwt()
    assert MARKER not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_an_ec_key_is_refused_for_rs256():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(AppSecretError, match="RSA"):
        load_app(json.dumps({"app_id": "1", "private_key": pem}), API).app_jwt()


def test_importing_the_client_loads_neither_jwt_nor_cryptography():
    """Cold starts: a launcher that meets no GitHub job never imports them."""
    probe = (
        "import sys, session_naming.github as g; "
        'g.load_app(\'{"app_id": "1", "private_key": "-----BEGIN RSA PRIVATE KEY-----x-----END"}\', \'https://h\'); '
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jwt', 'cryptography', 'cffi'}))"
    )
    out = subprocess.run(  # noqa: S603 (this interpreter, a fixed program)
        [sys.executable, "-c", probe], env={"PYTHONPATH": str(LAYER)}, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
