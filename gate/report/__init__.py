"""What a person sees of a run: the live console, and report.html / summary.md rendered
from the artifacts a run leaves in results/<run-id>/ (a pure function of that directory)."""

from gate.report.console import STYLE, Console

__all__ = ["STYLE", "Console"]
