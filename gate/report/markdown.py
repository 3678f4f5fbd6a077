"""summary.md: the verdict as a short markdown table for a CI job page ($GITHUB_STEP_SUMMARY).

Verdict, counts, each failed or inconclusive check with one line of evidence, the command
that reproduces the run, and where report.html is. Rendered from the run dir, redacted.
"""

from __future__ import annotations

from gate.report.html import MEANING, Redact
from gate.report.rundir import REPORT, RunDir

VERDICTS = ("pass", "fail", "inconclusive", "skip")
MOST_SHOWN = 20


def render(run: RunDir, redact: Redact) -> str:
    summary = run.summary or {}
    code = summary.get("exit_code")
    word = summary.get("verdict", "did not finish")
    counts = summary.get("counts", {})
    icon = {0: "✅", 1: "❌"}.get(code if isinstance(code, int) else -1, "⚠️")
    lines = [
        f"### {icon} gate {_cell(word)} (exit {code if code is not None else '?'}): "
        f"{_cell(run.manifest.get('host', '?'))}",
        "",
        f"{MEANING.get(code, '')}" if isinstance(code, int) else "The run left no summary.json.",
        "",
        "| verdict | exit | " + " | ".join(VERDICTS) + " |",
        "|---|---|" + "---|" * len(VERDICTS),
        f"| {_cell(word)} | {code} | " + " | ".join(str(counts.get(v, 0)) for v in VERDICTS) + " |",
        "",
    ]
    lines += _failed(run)
    reproduce = summary.get("reproduce")
    if reproduce:
        lines += ["Reproduce:", "", f"    {reproduce}", ""]
    lines += [f"Report: `{run.path.resolve() / REPORT}`", ""]
    return redact("\n".join(lines))


def _failed(run: RunDir) -> list[str]:
    bad = [c for c in run.checks if c.get("verdict") in ("fail", "inconclusive")]
    if not bad:
        return []
    lines = ["| verdict | where | check | evidence |", "|---|---|---|---|"]
    for check in bad[:MOST_SHOWN]:
        where = check.get("scenario") or check.get("phase") or ""
        evidence = check.get("evidence") or check.get("observed") or ""
        lines.append(
            f"| {check['verdict']} | {_cell(where)} | {_cell(check['name'])} | {_cell(evidence)} |"
        )
    if len(bad) > MOST_SHOWN:
        lines.append(f"| | | and {len(bad) - MOST_SHOWN} more | see report.html |")
    return [*lines, ""]


def _cell(value: object, limit: int = 160) -> str:
    """One line, no table breakers, at most `limit` characters."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."
