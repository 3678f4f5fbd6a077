"""The phases, registered in the one fixed order the engine runs them (see base.py)."""

from gate.phases.auth_fail_closed import AuthFailClosedPhase
from gate.phases.base import Phase, register, registered, select, unregister
from gate.phases.check import CheckPhase
from gate.phases.fault_injection import FaultInjectionPhase
from gate.phases.lifecycle import LifecyclePhase
from gate.phases.matrix import MatrixPhase
from gate.phases.readiness import ReadinessPhase
from gate.phases.safety_backup import SafetyBackupPhase

register(CheckPhase())
register(ReadinessPhase())
register(SafetyBackupPhase())  # after the baseline, before every other mutating phase
register(LifecyclePhase())  # destructive: after the safety backup, before the matrix
register(FaultInjectionPhase())  # destructive: after lifecycle
register(AuthFailClosedPhase())  # destructive: after lifecycle and fault_injection
register(MatrixPhase())

__all__ = ["Phase", "register", "registered", "select", "unregister"]
