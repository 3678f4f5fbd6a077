"""The pattern redactor catches secret shapes; known values are masked wherever they appear."""

from __future__ import annotations

from gate.redact import MASK, Redactor


def test_known_values_are_masked() -> None:
    redact = Redactor(["canary-value-123"])
    assert redact("token is canary-value-123.") == f"token is {MASK}."


def test_shapes_are_masked() -> None:
    redact = Redactor()
    assert "abc123" not in redact("Authorization: Bearer abc123")
    assert "hunter22" not in redact("PROXY_AUTH_TOKEN=hunter22")
    assert "pw9" not in redact("http://user:pw9@10.0.0.5:8080/x")
    assert "s3cr3t" not in redact('{"remote_token": "s3cr3t"}')
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEabc\n-----END PRIVATE KEY-----"
    assert "MIIEabc" not in redact(pem)


def test_innocent_text_is_untouched() -> None:
    redact = Redactor()
    text = "pool tier mini, 2 workers, POOL_TIER=mini, http://127.0.0.1:8000/api/state"
    assert redact(text) == text


def test_short_values_are_not_registered() -> None:
    redact = Redactor(["ab"])
    assert redact("tab") == "tab"
