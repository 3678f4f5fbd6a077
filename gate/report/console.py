"""The console: the phase, a live line per wait with its countdown, a line per check, a table.

rich draws it on a terminal, with the matrix's progress (scenario n/total, elapsed, time
left); when stderr is not a TTY, or NO_COLOR or CI is set, the same lines come out plain
and without progress. Everything printed passes through the redactor.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console as RichConsole
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gate.checks import CheckRecord, Verdict
from gate.redact import Redactor
from gate.report.progress import Progress
from gate.report.stream import ReaderGone
from gate.waits import Attempt

STYLE = {
    Verdict.PASS: "green",
    Verdict.FAIL: "bold red",
    Verdict.INCONCLUSIVE: "yellow",
    Verdict.SKIP: "cyan",
}


class Console:
    """What a person watching the run sees."""

    def __init__(
        self, redactor: Redactor, stream: TextIO | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        out = ReaderGone(stream or sys.stderr)
        env = os.environ if env is None else env
        self.fancy = out.isatty() and not {"NO_COLOR", "CI"} & set(env)
        self.rich = RichConsole(
            file=out,  # type: ignore[arg-type]  # a TextIOBase: the IO[str] rich writes to
            no_color=not self.fancy,
            force_terminal=self.fancy,
            highlight=False,
            soft_wrap=not self.fancy,
        )
        self.redact = redactor
        self._live: Live | None = None
        self._progress: Progress | None = None
        self.marks: Callable[[dict[str, Any]], None] | None = None
        """Where phase starts and wait polls go for report.html's timeline (the run sets it
        to Artifacts.record_mark): the console is the one place that sees them all."""

    def _mark(self, kind: str, **details: Any) -> None:
        if self.marks is not None:
            self.marks({"t": time.time(), "kind": kind, **details})

    def line(self, text: str, style: str = "") -> None:
        self.rich.print(Text(self.redact(text), style=style if self.fancy else ""))

    def scenarios(
        self, names: Sequence[str], before: Mapping[str, float] | None = None, bound: float = 0.0
    ) -> None:
        """The matrix is about to walk these scenarios: a terminal shows the progress, with
        what each took last time (`before`) and the most its waits may take (`bound`)."""
        self._progress = Progress(names, time.monotonic(), before or {}, bound)

    def phase(self, name: str, detail: str = "") -> None:
        self.end_wait()
        self._mark("phase", name=name, detail=detail)
        progress = ""
        if self._progress is not None and name.startswith("scenario "):
            self._progress.scenario(time.monotonic())
            progress = f"  [{self._progress.text(time.monotonic())}]" if self.fancy else ""
        elif self._progress is not None:
            self._progress = None
        self.line(f"== {name}" + (f": {detail}" if detail else "") + progress, "bold")

    def check(self, record: CheckRecord) -> None:
        self.end_wait()
        where = f"[{record.scenario}] " if record.scenario else ""
        mark = f"{record.verdict.upper():<12}"
        tail = record.evidence or record.observed
        if record.verdict is Verdict.SKIP:
            tail = f"({record.skip_class}) {tail}"
        elif record.verdict is Verdict.FAIL and record.expected and record.expected not in tail:
            tail = f"{tail} (expected {record.expected})"
        self.line(f"  {mark} {where}{record.name}: {tail}", STYLE[record.verdict])

    def waiting(self, name: str, attempt: Attempt[Any], remaining: float) -> None:
        """Observer for readiness waits: one live line with a countdown."""
        seen = f"could not ask: {attempt.lost}" if attempt.lost else repr(attempt.value)
        self._mark("poll", name=name, remaining=round(remaining, 3), ready=attempt.ready,
                   lost=attempt.lost is not None, seen=seen[:120])  # fmt: skip
        text = self.redact(f"  waiting  {name}: {remaining:4.0f}s left, last seen {seen[:60]}")
        if self._progress is not None:
            text += f"  [{self._progress.text(time.monotonic())}]"
        if not self.fancy:
            return
        if self._live is None:
            self._live = Live(Text(text), console=self.rich, transient=True, auto_refresh=False)
            self._live.start()
        self._live.update(Text(text), refresh=True)

    def end_wait(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def final(self, records: Iterable[CheckRecord], verdict: str, exit_code: int) -> None:
        """A table of what did not pass (a TTY only), then one line with the counts."""
        self.end_wait()
        records = list(records)
        counts = ", ".join(f"{sum(r.verdict is v for r in records)} {v}" for v in Verdict)
        not_passed = [r for r in records if r.verdict is not Verdict.PASS]
        if self.fancy and not_passed:
            self.rich.print(self._table(not_passed))
        style = "bold green" if exit_code == 0 else "bold red"
        self.line(f"gate: {verdict} (exit {exit_code}): {counts}", style)

    def _table(self, records: list[CheckRecord]) -> Table:
        table = Table(title="what did not pass", show_lines=False)
        for column in ("verdict", "scenario", "check", "observed"):
            table.add_column(column)
        for record in records:
            table.add_row(
                Text(str(record.verdict), style=STYLE[record.verdict] if self.fancy else ""),
                escape(record.scenario or record.phase),
                escape(self.redact(record.name)),
                escape(self.redact(record.observed)[:60]),
            )
        return table
