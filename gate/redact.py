"""The pattern redactor: the last filter on everything that leaves the gate.

Secret *values* are scrubbed on the box by boxtool before output is read back; this module
catches the shapes a secret takes when a value the box did not know about slips through
(a bearer header, a KEY=value line, credentials in a URL, a PEM private key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|PRIVATE_?KEY)[A-Za-z0-9_]*"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
            re.DOTALL,
        ),
        "-----PRIVATE KEY " + MASK + "-----",
    ),
    (re.compile(r"(?i)(\bbearer\s+)[^\s\"']+"), r"\1" + MASK),
    (re.compile(r"(://[^/\s:@]*:)[^@\s/]+@"), r"\1" + MASK + "@"),
    (re.compile(r"(?i)\b(" + _SECRET_NAME + r")(\s*=\s*)[^\s\"']+"), r"\1\2" + MASK),
    (
        re.compile(r"(?i)(\"" + _SECRET_NAME + r"\"\s*:\s*\")[^\"]*(\")"),
        r"\1" + MASK + r"\2",
    ),
)


class Redactor:
    """Scrubs known secret values and secret-shaped text from strings."""

    def __init__(self, known_values: Iterable[str] = ()) -> None:
        self._values = sorted({v for v in known_values if len(v) >= 4}, key=len, reverse=True)

    def add(self, value: str) -> None:
        """Remember a value that must never be shown (e.g. a canary, a local token)."""
        if len(value) >= 4 and value not in self._values:
            self._values = sorted([*self._values, value], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


redact = Redactor()
