"""Expectations: what a check's observed value must be, possibly derived from the config.

An expected value may be a constant or a `Ref` (a function of the config under test and
the run's facts), so one check follows every scenario. Comparisons are type-exact: `true`
is not `1`, "8000" is not 8000, and `false` is not missing (only `Absent` accepts missing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Context:
    """What an expectation may depend on: the config under test and the run's facts."""

    config: Mapping[str, Any]
    facts: Mapping[str, str]


Ref = Callable[[Context], Any]


def resolve(value: Any, ctx: Context) -> Any:
    return value(ctx) if callable(value) else value


def same(observed: Any, expected: Any) -> bool:
    """Exact equality, types included, all the way down (a list of bools is not of ints)."""
    if type(observed) is not type(expected):
        return False
    if isinstance(expected, Mapping):
        return observed.keys() == expected.keys() and all(
            same(observed[k], expected[k]) for k in expected
        )
    if isinstance(expected, list | tuple):
        return len(observed) == len(expected) and all(map(same, observed, expected))
    return bool(observed == expected)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Equals:
    """The observed value is exactly the expected one (type included)."""

    value: Any

    def expected(self, ctx: Context) -> Any:
        return resolve(self.value, ctx)

    def holds(self, observed: Any, ctx: Context) -> bool:
        return observed is not None and same(observed, self.expected(ctx))

    def describe(self, ctx: Context) -> str:
        return f"== {self.expected(ctx)!r}"


@dataclass(frozen=True)
class AtLeast:
    """The observed value is a number no smaller than the expected one."""

    value: Any

    def expected(self, ctx: Context) -> Any:
        return resolve(self.value, ctx)

    def holds(self, observed: Any, ctx: Context) -> bool:
        return _number(observed) and bool(observed >= self.expected(ctx))

    def describe(self, ctx: Context) -> str:
        return f">= {self.expected(ctx)!r}"


@dataclass(frozen=True)
class OneOf:
    """The observed value is exactly one of the expected values."""

    values: Any

    def expected(self, ctx: Context) -> Any:
        return list(resolve(self.values, ctx))

    def holds(self, observed: Any, ctx: Context) -> bool:
        return observed is not None and any(same(observed, v) for v in self.expected(ctx))

    def describe(self, ctx: Context) -> str:
        return f"one of {self.expected(ctx)!r}"


@dataclass(frozen=True)
class Matches:
    """The observed value is a string the regular expression matches (re.search)."""

    pattern: Any

    def expected(self, ctx: Context) -> Any:
        return str(resolve(self.pattern, ctx))

    def holds(self, observed: Any, ctx: Context) -> bool:
        return isinstance(observed, str) and re.search(self.expected(ctx), observed) is not None

    def describe(self, ctx: Context) -> str:
        return f"matches /{self.expected(ctx)}/"


@dataclass(frozen=True)
class Absent:
    """The expression finds nothing (missing or null): `false` and `0` are present."""

    def expected(self, ctx: Context) -> Any:
        return None

    def holds(self, observed: Any, ctx: Context) -> bool:
        return observed is None

    def describe(self, ctx: Context) -> str:
        return "absent"


Expectation = Equals | AtLeast | OneOf | Matches | Absent


def unfit(expect: Expectation, ctx: Context) -> str:
    """Why an expectation cannot fail on the values it will see, or cannot be judged at all
    ('' when it is fit to assert)."""
    if isinstance(expect, AtLeast):
        threshold = expect.expected(ctx)
        if not _number(threshold):
            return f"AtLeast needs a number, got {threshold!r}"
        if threshold <= 0:
            return f"AtLeast({threshold!r}) holds for any count: assert a threshold above 0"
    if isinstance(expect, OneOf) and not expect.expected(ctx):
        return "OneOf() of nothing can never hold"
    if isinstance(expect, Matches):
        try:
            re.compile(expect.expected(ctx))
        except re.error as exc:
            return f"Matches({expect.expected(ctx)!r}) is no regular expression: {exc}"
    return ""
