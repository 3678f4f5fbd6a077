"""`invoke e2e BRANCH` / `gate e2e BRANCH`: gate a branch of the stack on the long-lived box,
then put the box's own (canonical) stack back and prove it (docs/e2e.md).

    cli.py       the command's flags -> E2EOptions (usage errors: one line, exit 2)
    spec.py      what a contract file declares for e2e (`E2E = BranchDeploy(...)`), the modes
    checkout.py  git on the box: the canonical checkout read (never written), the dedicated
                 checkout beside it made, seeded and removed
    inner.py     the gate run against the branch, a child process signals are forwarded to
    wrapper.py   the whole wrapper: lock, baseline, safety backup, deploy, gate, ALWAYS restore
"""

from gate.e2e.spec import BranchDeploy

__all__ = ["BranchDeploy"]
