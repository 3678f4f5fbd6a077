"""Fleets: one `--host a,b,c` (or an inventory group) gates every box at once.

    hosts.py    which boxes: the list or group, expanded and checked (exit 2, nothing touched)
    runner.py   one child gate run per box, in parallel; consoles relayed, signals forwarded
    verdict.py  the worst exit code over the boxes, the per-box table, summary.json/.md

docs/fleets.md says what a user types and sees.
"""
