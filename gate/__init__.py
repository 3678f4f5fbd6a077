"""gate: a release gate for long-lived servers."""

__version__ = "0.1.0"
