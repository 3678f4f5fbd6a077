"""report.html: one self-contained page per run, rendered from its artifacts alone.

No network: inline CSS, the timeline as inline SVG, no script, and a Content-Security-Policy
of `default-src 'none'` so a browser fetches nothing even if a value slipped in. Every
value is redacted, then HTML-escaped; links are relative to the run dir (captures,
artifacts), so the page still works when the directory is moved or attached to a CI run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html import escape
from typing import Any
from urllib.parse import quote

from gate.report import svg
from gate.report.compare import Comparison
from gate.report.rundir import RunDir
from gate.report.timeline import build

Redact = Callable[[str], str]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

MEANING = {
    0: "passed: every check passed and the box was restored; the release may proceed",
    1: "failed: a check saw something other than expected; the release is blocked",
    2: "usage error: the run was refused before anything was touched",
    3: "inconclusive: gate could not ask the box (a dropped link, a timeout); not a pass",
    4: "BOX DIRTY: the box was not proven back to its baseline; recover it before anything",
    75: "box locked: another gate run holds the box; nothing was touched",
    129: "interrupted (SIGHUP): the run was stopped; see the restore below",
    130: "interrupted (SIGINT): the run was stopped; see the restore below",
    143: "interrupted (SIGTERM): the run was stopped; see the restore below",
}

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ddd;padding:2px 6px;
vertical-align:top;text-align:left}th{background:#f4f4f4}code,pre{font:12px monospace}
pre{white-space:pre-wrap;background:#f8f8f8;padding:4px;margin:0}
.verdict{padding:.6em 1em;border-radius:4px;color:#fff}.v-pass{background:#2e7d32}
.v-fail{background:#c62828}.v-inconclusive{background:#ef6c00}.v-other{background:#6a1b9a}
td.pass{color:#2e7d32}td.fail{color:#c62828;font-weight:bold}td.inconclusive{color:#ef6c00}
td.skip{color:#00838f}details{margin:.3em 0}summary{cursor:pointer}
svg.timeline{border:1px solid #ddd;background:#fff}
svg .grid{stroke:#eee}svg .axis,svg .lane-name{font:11px sans-serif;fill:#555}
svg .bar rect{fill:#90a4ae}svg .bar.pass rect{fill:#66bb6a}svg .bar.fail rect{fill:#e53935}
svg .bar.inconclusive rect{fill:#fb8c00}svg .bar.skip rect{fill:#4dd0e1}
svg .bar.phase rect{fill:#b0bec5}svg .bar-label{font:11px sans-serif;fill:#111}
svg .tick line{stroke:#455a64;stroke-width:1}svg .tick.pass line{stroke:#2e7d32}
svg .tick.fail line,svg .tick.check.fail line{stroke:#b71c1c;stroke-width:2}
svg .tick.inconclusive line{stroke:#ef6c00;stroke-width:2}
svg .tick.inject line{stroke:#000;stroke-width:2}
.muted{color:#777}
"""

Section = Callable[[RunDir, Redact], str]


def render(run: RunDir, redact: Redact, extra: Iterable[str] = ()) -> str:
    """The page; `extra` are further sections, already rendered (e.g. the comparison)."""
    body = [section(run, redact) for section in SECTIONS]
    body[2:2] = list(extra)  # after the verdict and the manifest: what changed
    title = f"gate run {run.run_id}: {_verdict_word(run)}"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="referrer" content="no-referrer"><title>{escape(redact(title))}</title>'
        f"<style>{STYLE}</style></head><body>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )
    return redact(page)


def _verdict_word(run: RunDir) -> str:
    if run.summary is None:
        return "did not finish"
    return str(run.summary.get("verdict", "?"))


def _e(redact: Redact, value: Any) -> str:
    """Redacted, then escaped: the order matters (escaping can hide a secret's shape)."""
    return escape(redact("" if value is None else str(value)))


def verdict(run: RunDir, redact: Redact) -> str:
    summary = run.summary
    if summary is None:
        return (
            '<h1 id="verdict" class="verdict v-other">did not finish</h1><p>This run left no '
            "summary.json: it was killed before its end. What it did is below, from its "
            "events and timeline; the box may be dirty: run gate with <code>--recover</code>.</p>"
        )
    code = int(summary.get("exit_code", -1))
    word = str(summary.get("verdict", ""))
    css = {0: "v-pass", 1: "v-fail", 3: "v-inconclusive"}.get(code, "v-other")
    meaning = MEANING.get(code, f"exit {code}")
    counts = summary.get("counts", {})
    shown = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("pass", "fail", "inconclusive", "skip"))
    error = summary.get("error")
    lines = [
        f'<h1 id="verdict" class="verdict {css}">gate {_e(redact, word)} '
        f'(exit {code})</h1><p id="meaning"><b>{_e(redact, meaning)}</b></p>',
        f'<p id="counts">{_e(redact, shown)} &middot; run {_e(redact, run.run_id)} &middot; '
        f"{_duration(summary)}</p>",
    ]
    if error:
        lines.append(f'<p id="error"><b>Why it ended:</b> {_e(redact, error)}</p>')
    for reason in summary.get("strict_failures", []):
        lines.append(f"<p>--strict: {_e(redact, reason)}</p>")
    return "\n".join(lines)


def _duration(summary: dict[str, Any]) -> str:
    started, ended = summary.get("started"), summary.get("ended")
    if isinstance(started, int | float) and isinstance(ended, int | float):
        return f"took {ended - started:.1f}s"
    return ""


MANIFEST_KEYS = (
    ("host", "box"),
    ("target", "target"),
    ("stack_dir", "stack dir"),
    ("mode", "mode"),
    ("phases", "phases"),
    ("stack", "stack version"),
    ("gate_version", "gate version"),
    ("gate_git", "gate revision"),
    ("contract", "contract"),
)


def manifest(run: RunDir, redact: Redact) -> str:
    data = run.manifest
    if not data:
        return "<h2>What was under test</h2><p>No manifest.json: the box never answered.</p>"
    rows = [
        f"<tr><th>{label}</th><td>{_value(redact, data.get(key))}</td></tr>"
        for key, label in MANIFEST_KEYS
        if key in data
    ]
    given = {
        k: v
        for k, v in data.get("options", {}).items()
        if v not in ("None", "False", "()", "{}", "frozenset()")
    }
    rows.append(f"<tr><th>options</th><td>{_value(redact, given)}</td></tr>")
    return '<h2 id="manifest">What was under test</h2><table>' + "".join(rows) + "</table>"


def _value(redact: Redact, value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{_e(redact, k)}={_value(redact, v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_value(redact, v) for v in value)
    return _e(redact, value)


def timeline(run: RunDir, redact: Redact) -> str:
    drawn = svg.draw(build(run))
    return (
        '<h2 id="timeline">Timeline</h2><p class="muted">One time axis: phases, scenarios (by '
        "worst verdict), commands that changed the stack, waits (a tick per poll), fault "
        "steps (black tick: injected), failed checks (red ticks), the restore. Hover for "
        "details.</p>" + drawn
    )


def attention(run: RunDir, redact: Redact) -> str:
    """Every failed or inconclusive check with its evidence and the captures it left."""
    bad = [c for c in run.checks if c.get("verdict") in ("fail", "inconclusive")]
    if not bad:
        return '<h2 id="attention">Failed and inconclusive</h2><p>None.</p>'
    items = []
    for check in bad:
        links = " ".join(
            f'<a class="capture" href="{quote(path)}">{escape(path.split("/", 2)[-1])}</a>'
            for path in run.captures_for(check)
        )
        items.append(
            f'<div class="failed-check"><h3>{_e(redact, check["verdict"]).upper()}: '
            f"{_e(redact, _where(check))}{_e(redact, check['name'])}</h3><table>"
            f"<tr><th>expected</th><td>{_e(redact, check.get('expected'))}</td></tr>"
            f"<tr><th>observed</th><td>{_e(redact, check.get('observed'))}</td></tr>"
            f'<tr><th>evidence</th><td class="evidence"><pre>{_e(redact, check.get("evidence"))}'
            "</pre></td></tr>"
            f"<tr><th>captures</th><td>{links or 'none'}</td></tr></table></div>"
        )
    return '<h2 id="attention">Failed and inconclusive</h2>' + "\n".join(items)


def _where(check: dict[str, Any]) -> str:
    return f"[{check.get('scenario') or check.get('phase')}] "


def skips(run: RunDir, redact: Redact) -> str:
    skipped = [c for c in run.checks if c.get("verdict") == "skip"]
    if not skipped:
        return ""
    rows = "".join(
        f"<tr><td>{_e(redact, c.get('skip_class'))}</td><td>{_e(redact, _where(c))}"
        f"{_e(redact, c['name'])}</td><td>{_e(redact, c.get('evidence'))}</td></tr>"
        for c in skipped
    )
    return (
        '<h2 id="skips">Skipped</h2><table><tr><th>class</th><th>what</th><th>why</th></tr>'
        + rows
        + "</table>"
    )


def groups(run: RunDir, redact: Redact) -> str:
    """A table per scenario (and per other phase) of its checks."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for check in run.checks:
        key = f"scenario {check['scenario']}" if check.get("scenario") else str(check.get("phase"))
        grouped.setdefault(key, []).append(check)
    reproduce = {
        s.get("scenario"): s.get("reproduce") for s in (run.summary or {}).get("scenarios", [])
    }
    parts = ['<h2 id="checks">Checks</h2>']
    for name, checks in grouped.items():
        failing = any(c.get("verdict") in ("fail", "inconclusive") for c in checks)
        counts = ", ".join(
            f"{n} {v}"
            for v in ("pass", "fail", "inconclusive", "skip")
            if (n := sum(c.get("verdict") == v for c in checks))
        )
        rows = "".join(_check_row(redact, c) for c in checks)
        repro = reproduce.get(name.removeprefix("scenario "))
        again = f"<p>reproduce: <code>{_e(redact, repro)}</code></p>" if repro else ""
        parts.append(
            f'<details class="group"{" open" if failing else ""}><summary><b>{_e(redact, name)}'
            f"</b>: {counts}</summary>{again}<table><tr><th>verdict</th><th>check</th>"
            f"<th>expected</th><th>observed</th><th>evidence</th><th>s</th></tr>{rows}</table>"
            "</details>"
        )
    return "\n".join(parts)


def _check_row(redact: Redact, check: dict[str, Any]) -> str:
    verdict = str(check.get("verdict"))
    return (
        f'<tr><td class="{escape(verdict)}">{escape(verdict)}</td><td>{_e(redact, check["name"])}'
        f"</td><td>{_e(redact, check.get('expected'))}</td><td>{_e(redact, check.get('observed'))}"
        f"</td><td>{_e(redact, check.get('evidence'))}</td>"
        f"<td>{float(check.get('duration', 0)):.2f}</td></tr>"
    )


def coverage(run: RunDir, redact: Redact) -> str:
    observers = (run.summary or {}).get("axes_observed_by") or {}
    if not observers:
        return ""
    rows = "".join(
        f'<tr><td>{_e(redact, axis)}</td><td class="{"pass" if names else "fail"}">'
        f"{_e(redact, '; '.join(names)) if names else 'UNOBSERVED'}</td></tr>"
        for axis, names in observers.items()
    )
    return (
        '<h2 id="coverage">Axis coverage</h2><table><tr><th>axis</th>'
        f"<th>checks that observe it</th></tr>{rows}</table>"
    )


def faults(run: RunDir, redact: Redact) -> str:
    found = (run.summary or {}).get("faults") or []
    if not found:
        return ""
    keys = (
        "phase",
        "fault",
        "service",
        "inject",
        "verdict",
        "detect_s",
        "hold_s",
        "hold_samples",
        "recover_s",
    )
    head = "".join(f"<th>{k}</th>" for k in keys)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(redact, f.get(k))}</td>" for k in keys) + "</tr>" for f in found
    )
    return f'<h2 id="faults">Faults</h2><table><tr>{head}</tr>{rows}</table>'


def restore(run: RunDir, redact: Redact) -> str:
    """The restore proof: its checks, and the note that says whether it was proven."""
    records = [c for c in run.checks if c.get("phase") in ("restore", "rollback")]
    notes = [n for n in (run.summary or {}).get("notes", []) if "restor" in n or "rollback" in n]
    if not records and not notes:
        return (
            '<h2 id="restore">Restore</h2><p>No restore ran (a read-only run, or one refused '
            "before any change).</p>"
        )
    bad = [c for c in records if c.get("verdict") in ("fail", "inconclusive")]
    proven = any(n.startswith("restore proven") for n in notes)
    said = "proven" if proven else "NOT proven"
    rows = "".join(_check_row(redact, c) for c in records)
    lines = "".join(f"<li>{_e(redact, n)}</li>" for n in notes)
    return (
        f'<h2 id="restore">Restore: {said}</h2><ul>{lines}</ul>'
        f"<details{' open' if bad else ''}><summary>{len(records)} checks</summary><table>"
        "<tr><th>verdict</th><th>check</th><th>expected</th><th>observed</th><th>evidence</th>"
        f"<th>s</th></tr>{rows}</table></details>"
    )


def notes(run: RunDir, redact: Redact) -> str:
    found = (run.summary or {}).get("notes") or []
    if not found:
        return ""
    return (
        '<h2 id="notes">Notes</h2><ul>'
        + "".join(f"<li>{_e(redact, n)}</li>" for n in found)
        + "</ul>"
    )


def files(run: RunDir, redact: Redact) -> str:
    shown = [f for f in run.files if not f.startswith("captures/") and f != "report.html"]
    links = "".join(f'<li><a href="{quote(f)}">{escape(f)}</a></li>' for f in shown)
    return f'<h2 id="files">Artifacts</h2><ul>{links}</ul>'


SECTIONS: tuple[Section, ...] = (
    verdict,
    manifest,
    timeline,
    attention,
    skips,
    groups,
    coverage,
    faults,
    restore,
    notes,
    files,
)


def comparison(result: Comparison | None, redact: Redact) -> str:
    """What changed since the last passing run on the same box."""
    head = '<section id="since"><h2>Since the last passing run on this box</h2>'
    if result is None:
        return head + "<p>No earlier passing run on this box next to this one.</p></section>"
    rows = [f"<p>compared with run {_e(redact, result.before)}</p>"]
    if result.empty:
        rows.append("<p>No verdict, skip, timing or stack version changed.</p>")
    items = []
    if result.stack:
        items.append(
            f"<li>stack version: {_value(redact, result.stack[0])} &rarr; "
            f"{_value(redact, result.stack[1])}</li>"
        )
    for (where, name), was, now in result.verdicts:
        items.append(
            f'<li class="changed">[{_e(redact, where)}] {_e(redact, name)}: '
            f'<span class="{escape(was)}">{escape(was)}</span> &rarr; '
            f'<b class="{escape(now)}">{escape(now)}</b></li>'
        )
    for (where, name), skip_class in result.new_skips:
        items.append(
            f"<li>new skip ({_e(redact, skip_class)}): [{_e(redact, where)}] "
            f"{_e(redact, name)}</li>"
        )
    for moved in result.timings:
        items.append(
            f"<li>timing: {_e(redact, moved.what)}: {moved.before:.2f}s &rarr; "
            f"{moved.after:.2f}s</li>"
        )
    listed = f"<ul>{''.join(items)}</ul>" if items else ""
    return head + "".join(rows) + listed + "</section>"
