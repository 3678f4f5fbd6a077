"""The phases, registered in the one fixed order the engine runs them (see base.py)."""

from gate.phases.base import Phase, register, registered, select, unregister
from gate.phases.check import CheckPhase
from gate.phases.matrix import MatrixPhase

register(CheckPhase())
register(MatrixPhase())

__all__ = ["Phase", "register", "registered", "select", "unregister"]
