"""The live progress: scenarios done/total, elapsed, an estimate of what is left, on a
terminal only; plain lines when the output is not a terminal or CI is set."""

from __future__ import annotations

import io

import pytest

from gate.redact import Redactor
from gate.report.console import Console
from gate.report.progress import Progress
from gate.waits import Attempt


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_estimate_is_the_mean_scenario_so_far_times_what_is_left() -> None:
    progress = Progress(total=4, began=100.0)
    progress.scenario(100.0)
    assert progress.text(110.0) == "scenario 1/4, 0:10 elapsed"
    progress.scenario(130.0)  # the first took 30 s
    progress.scenario(150.0)  # the second 20 s: 25 s a scenario
    assert progress.text(155.0) == "scenario 3/4, 0:55 elapsed, ~0:45 left"  # 2 x 25 - 5


@pytest.mark.parametrize(("stream", "env", "shown"), [
    (Terminal(), {}, True),
    (Terminal(), {"CI": "true"}, False),
    (Terminal(), {"NO_COLOR": "1"}, False),
    (io.StringIO(), {}, False),
])  # fmt: skip
def test_progress_shows_on_a_terminal_only(
    stream: io.StringIO, env: dict[str, str], shown: bool
) -> None:
    console = Console(Redactor(), stream, env=env)
    console.scenarios(3)
    console.phase("scenario first", "a note")
    console.waiting("ready", Attempt(0.1, {"status": 1}, False), 9.0)
    console.end_wait()
    text = stream.getvalue()
    assert "== scenario first: a note" in text
    assert ("scenario 1/3" in text) is shown, text
