"""Detached runs: the same gate run started on the box itself, surviving the link.

    gate/detach/checks.py    flag combinations and knobs (exit 2 before anything is sent)
    gate/detach/wheels.py    the runner's cached wheelhouse of gate and its dependencies
    gate/detach/link.py      the helper's verbs over the gate's SSH target; tar streams
    gate/detach/boxside.py   the box's side (stdlib only): venv, keeper, state, poll, stop
    gate/detach/onbox.py     the `gate --local ...` command and inventory for the box
    gate/detach/follow.py    heartbeat, summary, results fetched home
    gate/detach/verbs.py     --detach, --attach, --stop start to finish

docs/detached-runs.md says what a user types and sees.
"""
