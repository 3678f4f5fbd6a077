"""Waits: poll a real signal until a deadline on a monotonic clock, fast then backing off.

A wait never asserts; it reports whether the signal arrived, every attempt it made and the
last value it saw, so the check that follows can say what it waited for and what it got.
A probe that could not ask (a dropped link) ends the wait at once, inconclusive: polling a
box the gate cannot reach until the deadline only delays the verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay
from tenacity.wait import wait_base

from gate.errors import Unreachable

T = TypeVar("T")


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """One poll: when it ran, what it saw, and whether that was the signal."""

    elapsed: float
    value: T | None
    ready: bool
    lost: Unreachable | None = None
    """Set when the probe could not ask: the wait ends at once, inconclusive."""


@dataclass
class WaitResult(Generic[T]):
    """What a wait saw: satisfied, timed out, or could not ask."""

    name: str
    timeout: float
    attempts: list[Attempt[T]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def satisfied(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ready

    @property
    def inconclusive(self) -> bool:
        return not self.satisfied and bool(self.attempts) and self.attempts[-1].lost is not None

    @property
    def last(self) -> T | None:
        return self.attempts[-1].value if self.attempts else None

    def describe(self) -> str:
        if self.satisfied:
            return f"{self.name}: ready after {self.elapsed:.1f}s ({len(self.attempts)} polls)"
        lost = self.attempts[-1].lost if self.attempts else None
        seen = f"could not ask: {lost}" if lost is not None else repr(self.last)
        return f"{self.name}: not ready after {self.elapsed:.1f}s; last seen {seen}"


Observer = Callable[[str, Attempt[T], float], None]


class wait_backoff(wait_base):  # a tenacity strategy, named as tenacity names them
    """Poll fast first, doubling up to `cap`; past that, pause a `share` of the time already
    waited, up to `ceiling`. A short wait sees its signal within `cap`; a long one costs
    few polls and adds at most `share` of its length as lag."""

    def __init__(self, first: float, cap: float, share: float = 0.0, ceiling: float = 0.0):
        self.first, self.cap, self.share = first, cap, share
        self.ceiling = max(cap, ceiling)

    def __call__(self, retry_state: RetryCallState) -> float:
        doubling = min(self.cap, self.first * 2.0 ** (retry_state.attempt_number - 1))
        elapsed = retry_state.seconds_since_start or 0.0
        return min(self.ceiling, max(doubling, self.share * elapsed))


def wait_until(
    name: str,
    probe: Callable[[], T],
    ready: Callable[[T], bool],
    *,
    timeout: float,
    first_interval: float = 0.1,
    max_interval: float = 2.0,
    observe: Observer[T] | None = None,
    share: float = 0.0,
    ceiling: float = 0.0,
) -> WaitResult[T]:
    """Poll `probe` until `ready(value)` or `timeout` seconds, recording every attempt
    (the cadence: wait_backoff(first_interval, max_interval, share, ceiling))."""
    result: WaitResult[T] = WaitResult(name=name, timeout=timeout)
    start = time.monotonic()

    def attempt() -> Attempt[T]:
        elapsed = time.monotonic() - start
        try:
            value = probe()
        except Unreachable as exc:
            return Attempt(elapsed, None, False, exc)
        return Attempt(elapsed, value, ready(value))

    def record(state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            seen: Attempt[T] = outcome.result()
            result.attempts.append(seen)
            if observe is not None:
                observe(name, seen, max(0.0, timeout - (time.monotonic() - start)))

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_backoff(first_interval, max_interval, share, ceiling),
        retry=retry_if_result(lambda seen: not seen.ready and seen.lost is None),
        after=record,
        retry_error_callback=lambda _state: None,
    )
    final = retrying(attempt)
    if final is not None and (not result.attempts or result.attempts[-1] is not final):
        result.attempts.append(final)
        if observe is not None:
            observe(name, final, max(0.0, timeout - (time.monotonic() - start)))
    result.elapsed = time.monotonic() - start
    return result


def sample_throughout(
    sample: Callable[[], T],
    holds: Callable[[T], bool],
    elapsed: Callable[[T], float],
    window: float,
    *,
    min_samples: int,
    max_interval: float,
) -> list[T]:
    """Read again and again until `window` seconds are covered by at least `min_samples`
    reads, or until one read does not hold. Not a wait for an event: a state asserted
    THROUGHOUT a window (a fault's hold) is read at a cadence, so the pause is the cadence."""
    interval = min(max_interval, window / (min_samples + 1))
    samples: list[T] = []
    while True:
        value = sample()
        samples.append(value)
        at = elapsed(value)
        if not holds(value) or (at >= window and len(samples) >= min_samples):
            return samples
        time.sleep(min(interval, max(0.0, window - at)))  # sleep-ok: the sampling cadence itself
