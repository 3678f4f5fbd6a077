"""Which config change the lifecycle makes, chosen from the matrix the team already wrote.

The one-service change is the first axis whose `touches` names exactly one service (no
glob) that the box's config runs, set to the first of its values that differs from the
box's. A value the matrix only ever sets together with a Fact (a requirement such as a
spare data dir) is never used: the matrix says it is not safe on its own. Pure functions:
no box, no run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gate.contract import Config, lookup
from gate.matrix import Axis, Fact, Matrix, with_value

GLOB = set("*?[")


@dataclass(frozen=True)
class Change:
    """One axis set to one value; `service` is the one service it touches, if it is that."""

    path: str
    value: Any
    service: str | None = None

    def applied(self, cfg: Config) -> Config:
        """`cfg` with the change made (in memory, as boxtool render does it on the box)."""
        return with_value(cfg, self.path, self.value)

    def __str__(self) -> str:
        return f"{self.path}={json.dumps(self.value)}"


def same(left: Any, right: Any) -> bool:
    """Equal and of one type: True is not 1, "8000" is not 8000."""
    return type(left) is type(right) and left == right


def fact_only(matrix: Matrix, path: str, value: Any) -> bool:
    """Whether every scenario that sets `path` to `value` also needs a Fact."""
    setting = [s for s in matrix.scenarios if same(s.overrides.get(path, Fact("")), value)]
    return bool(setting) and all(s.facts() for s in setting)


def other_value(matrix: Matrix, axis: Axis, cfg: Config) -> Any | None:
    """The first value of the axis that differs from the config's and is safe alone, as a
    one-item list (None when there is none: a value may itself be null)."""
    try:
        current = lookup(cfg, axis.path)
    except KeyError:
        return None
    for value in axis.values:
        if not same(value, current) and not fact_only(matrix, axis.path, value):
            return [value]
    return None


def one_service_change(matrix: Matrix, cfg: Config, running: frozenset[str]) -> Change | None:
    """The first axis touching exactly one service the config runs, with another value."""
    for axis in matrix.axes:
        touches = axis.touches or ()
        if len(touches) != 1 or GLOB & set(touches[0]) or touches[0] not in running:
            continue
        found = other_value(matrix, axis, cfg)
        if found is not None:
            return Change(axis.path, found[0], touches[0])
    return None


def any_change(matrix: Matrix, cfg: Config) -> Change | None:
    """The first axis with another value that is safe alone (whatever it touches)."""
    for axis in matrix.axes:
        found = other_value(matrix, axis, cfg)
        if found is not None:
            return Change(axis.path, found[0])
    return None


NEEDED = (
    "an Axis whose touches name exactly one service this config runs (no glob), with a "
    "value other than the box's that some scenario sets without a Fact, e.g. "
    'Axis("pool.tier", ("mini", "main"), touches=("pool",))'
)
"""What a team declares to get the one-service change (said in the skip)."""
