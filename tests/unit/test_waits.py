"""Waits poll a real signal, record every attempt, and report the last value seen."""

from __future__ import annotations

import pytest
from tenacity import RetryCallState, Retrying

from gate.errors import Unreachable
from gate.waits import sample_throughout, wait_backoff, wait_until


def test_wait_is_satisfied_when_the_signal_arrives() -> None:
    values = iter([1, 2, 3, 4, 5])
    result = wait_until(
        "count", lambda: next(values), lambda v: v >= 3, timeout=5, first_interval=0.01
    )
    assert result.satisfied
    assert [a.value for a in result.attempts] == [1, 2, 3]
    assert result.last == 3


def test_wait_times_out_with_the_last_value() -> None:
    result = wait_until("never", lambda: 7, lambda v: v > 100, timeout=0.3, first_interval=0.01)
    assert not result.satisfied
    assert not result.inconclusive
    assert result.last == 7
    assert len(result.attempts) >= 2
    assert "last seen 7" in result.describe()


def test_could_not_ask_is_inconclusive() -> None:
    def probe() -> int:
        raise Unreachable("connection lost")

    result = wait_until("lost", probe, lambda v: True, timeout=0.2, first_interval=0.01)
    assert result.inconclusive
    assert not result.satisfied
    assert "connection lost" in str(result.attempts[-1].lost)
    assert len(result.attempts) == 1, "a wait went on polling a box it could not ask"


def test_observer_sees_every_attempt_with_a_countdown() -> None:
    seen: list[float] = []
    values = iter([0, 0, 1])
    wait_until(
        "obs",
        lambda: next(values),
        lambda v: v == 1,
        timeout=5,
        first_interval=0.01,
        observe=lambda _n, _a, remaining: seen.append(remaining),
    )
    assert len(seen) == 3
    assert all(0 < r <= 5 for r in seen)


def test_sampling_throughout_stops_at_the_first_read_that_breaks_the_hold() -> None:
    reads = iter([(True, 0.0), (True, 0.1), (False, 0.2), (True, 0.3)])
    got = sample_throughout(
        lambda: next(reads), lambda r: r[0], lambda r: r[1], 5.0, min_samples=3, max_interval=0.001
    )
    assert got == [(True, 0.0), (True, 0.1), (False, 0.2)]


def test_sampling_throughout_covers_the_window_with_at_least_the_minimum_reads() -> None:
    reads = iter([(True, 0.0), (True, 2.0), (True, 2.0), (True, 2.0)])
    got = sample_throughout(
        lambda: next(reads), lambda r: r[0], lambda r: r[1], 1.0, min_samples=3, max_interval=0.001
    )
    assert got == [(True, 0.0), (True, 2.0), (True, 2.0)]  # past the window, but 3 reads


def pause_after(strategy: wait_backoff, attempt: int, elapsed: float) -> float:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.start_time, state.outcome_timestamp = 100.0, 100.0 + elapsed
    return float(strategy(state))


def test_backoff_doubles_to_its_cap_then_grows_with_the_wait_to_its_ceiling() -> None:
    ready = wait_backoff(0.02, 0.2, share=0.05, ceiling=2.0)
    pauses = [pause_after(ready, n, elapsed=0.1 * n) for n in range(1, 6)]
    assert pauses == pytest.approx([0.02, 0.04, 0.08, 0.16, 0.2])
    assert pause_after(ready, 30, elapsed=3.0) == pytest.approx(0.2)  # 5% of 3 s is less
    assert pause_after(ready, 40, elapsed=20.0) == pytest.approx(1.0)  # 5% of 20 s
    assert pause_after(ready, 60, elapsed=300.0) == pytest.approx(2.0)  # the ceiling


def test_backoff_without_a_share_stays_at_its_cap() -> None:
    plain = wait_backoff(0.1, 2.0)
    assert pause_after(plain, 3, elapsed=1.0) == pytest.approx(0.4)
    assert pause_after(plain, 50, elapsed=600.0) == pytest.approx(2.0)
