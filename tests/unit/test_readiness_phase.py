"""`--readiness` on the scripted double: every item green on a healthy box and each one red
on a box broken the way an operator would break it, read-only throughout.

The fake sample stack (fakestack.py) answers `boxtool fitness` through one extra rule here,
from its in-memory files (their modes and sizes) plus the knobs of `Fitness` (free space,
the backup dir, tools); boxtool's own verb is tested on real files in
test_readiness_fitness.py.
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakestack import FakeFile, FakeStack, default_config

from gate.box import Kind
from gate.cli import run_cli
from gate.engine.run import Run
from gate.options import Flag
from gate.phases import Phase, register, unregister
from gate.testing.double import Lost, Reply

UNIT = Path(__file__).resolve().parent
REPO = UNIT.parents[1]
GIB = 1024**3

ITEMS = (
    "box: not left dirty by an earlier run",
    "readiness: healthy (status exit 0, every check green)",
    "readiness: secrets found for the baseline to fingerprint",
    "readiness: disk headroom for a backup",
    "readiness: .env mode 0600 or stricter",
    "readiness: secrets/node.key mode 0600 or stricter",
    "readiness: dashboard-port bound to loopback only",
    "readiness: node-rpc bound to loopback only",
    "readiness: backup dir backups writable",
    "readiness: tools on PATH",
)


@dataclass
class Fitness:
    """What `boxtool fitness` reports beyond the fake's files: the knobs a test turns."""

    stack: FakeStack
    free: int = 50 * GIB
    backup_kind: str = "dir"
    writable: bool = True
    archive: int | None = None
    """The size of the newest archive in the backup dir (None: no archive yet)."""
    asked: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stack.target.on(re.compile(r"boxtool\.py fitness "), self.answer)

    def answer(self, match: re.Match[str], stdin: str) -> Reply:
        words = shlex.split(self.stack.target.calls[-1].command)
        wanted = json.loads(words[words.index("fitness") + 1])
        self.asked.append(wanted)
        spec = json.loads(self.stack.files[".gate/spec-" + self._run_id() + ".json"].text)
        secret = [p for p in self.stack.files if any(fnmatch.fnmatch(p, g) for g in spec["files"])]
        files = {p: self._facts(p) for p in [spec["env_file"], *sorted(secret)]}
        sized = [spec["config_file"], spec["env_file"], *wanted["data_paths"]]
        facts = {
            "files": files,
            "sizes": {p: self._size(p) for p in sized},
            "stack_free": self.free,
            "backup_dir": self._backup(wanted["backup_dir"]),
            "tools": {t: t not in self.stack.missing_tools for t in wanted["tools"]},
        }
        return Reply(stdout=json.dumps(facts) + "\n")

    def _run_id(self) -> str:
        found = re.search(r"GATE_SPEC=\S*spec-([^.\s']+)\.json", self.stack.target.calls[-1].raw)
        assert found, self.stack.target.calls[-1].raw
        return found.group(1)

    def _facts(self, path: str) -> dict[str, Any]:
        found = self.stack.files.get(path)
        if found is None:
            return {"exists": False}
        return {"exists": True, "regular": True, "link": False, "mode": f"{int(found.mode, 8):04o}"}

    def _size(self, path: str) -> int | None:
        inside = [
            f.text for p, f in self.stack.files.items() if p == path or p.startswith(path + "/")
        ]
        return sum(len(t.encode()) for t in inside) if inside else None

    def _backup(self, path: str | None) -> dict[str, Any] | None:
        if path is None:
            return None
        if self.backup_kind != "dir":
            return {"path": path, "kind": self.backup_kind}
        newest = None if self.archive is None else {"name": "backup-1.tar.gz", "size": self.archive}
        return {"path": path, "kind": "dir", "writable": self.writable, "newest": newest,
                "free": self.free}  # fmt: skip


def contract_file(tmp_path: Path, extra: str = "") -> Path:
    """The repo's contract (wait windows cut short, see fakestack.quick), plus `extra`."""
    path = tmp_path / "quick_contract.py"
    path.write_text(
        "import dataclasses, importlib.util, sys\n"
        f"sys.path.insert(0, {str(UNIT)!r})\n"
        "from fakestack import load_contract, quick\n"
        "from gate.contract import Readiness\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(REPO / 'matrix.py')!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "CONTRACT = quick(load_contract())\n"
        "MATRIX = module.MATRIX\n" + extra
    )
    return path


def with_readiness(changes: str) -> str:
    """Contract-file lines replacing fields of the sample's Readiness."""
    return (
        "CONTRACT = dataclasses.replace(\n"
        f"    CONTRACT, readiness=dataclasses.replace(CONTRACT.readiness, {changes}))\n"
    )


class Outcome:
    def __init__(self, code: int, console: str, out: Path) -> None:
        self.code, self.console, self.out = code, console, out

    @property
    def run_dir(self) -> Path:
        (found,) = [p for p in self.out.iterdir() if p.is_dir()]
        return found

    @property
    def said(self) -> str:
        """The console's words, however it wrapped them."""
        return " ".join(self.console.split())

    @property
    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "summary.json").read_text()))

    def kinds(self) -> set[str]:
        lines = (self.run_dir / "events.jsonl").read_text().splitlines()
        return {json.loads(line)["kind"] for line in lines}

    def verdicts(self) -> dict[str, str]:
        return {c["name"]: c["verdict"] for c in self.summary["checks"]}

    def record(self, name: str) -> dict[str, Any]:
        found = [c for c in self.summary["checks"] if c["name"] == name]
        assert len(found) == 1, (name, sorted(self.verdicts()))
        return dict(found[0])

    def failed(self) -> list[str]:
        return sorted(n for n, v in self.verdicts().items() if v == "fail")


def gate(stack: FakeStack, contract: Path, tmp_path: Path, **flags: Any) -> Outcome:
    out = tmp_path / "results"
    raw = {"local": True, "dir": stack.dir, "matrix": str(contract), "out": str(out)}
    raw.update({"readiness": True, **flags})
    console = io.StringIO()
    code = run_cli(raw, console, target=lambda _host, _accept: stack.target)
    stack.target.verify()
    return Outcome(code, console.getvalue(), out)


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    return contract_file(tmp_path)


def lone_failure(run: Outcome, name: str) -> dict[str, Any]:
    """The run is unfit (exit 1) for exactly this item, which says how to fix it in a line."""
    assert run.code == 1, run.console
    assert run.failed() == [name], run.console
    found = run.record(name)
    assert found["phase"] == "readiness"
    assert "\n" not in found["evidence"] and found["evidence"], found
    assert "NOT fit for gating: 1 item(s) to fix" in run.console
    return found


# --- green ----------------------------------------------------------------------------------


def test_a_healthy_box_is_fit_and_nothing_is_changed(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    fitness = Fitness(stack, archive=20_000)
    before = {p: (f.text, f.mode) for p, f in stack.files.items() if not p.startswith(".gate/")}
    pids = stack.pids()
    run = gate(stack, contract, tmp_path)
    assert run.code == 0, run.console
    assert run.verdicts() == dict.fromkeys(ITEMS, "pass"), run.console
    assert run.summary["verdict"] == "passed"
    assert run.summary["mode"] == "readiness"
    assert Kind.MUTATE not in run.kinds()
    after = {p: (f.text, f.mode) for p, f in stack.files.items() if not p.startswith(".gate/")}
    assert after == before
    assert stack.pids() == pids
    assert not stack.applies
    assert fitness.asked == [
        {
            "backup_dir": "backups",
            "data_paths": ["secrets"],
            "tools": ["python3", "sha256sum", "cp", "mv", "cat"],
        }
    ]
    health = json.loads((run.run_dir / "readiness" / "health.json").read_text())
    assert {r["name"] for r in health} >= {"status: exit code 0", "api: proxy admitting workers"}
    assert "readiness: fit for gating" in run.console
    assert not (run.run_dir / "captures").exists()


def test_with_no_archive_yet_the_headroom_is_sized_from_what_a_backup_holds(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    held = sum(len(stack.files[p].text) for p in ("config.json", ".env", "secrets/node.key"))
    Fitness(stack, free=2 * held)
    run = gate(stack, contract, tmp_path)
    assert run.code == 0, run.console
    evidence = run.record("readiness: disk headroom for a backup")["evidence"]
    assert "no archive yet; config.json + .env + secrets" in evidence, evidence


# --- each item red --------------------------------------------------------------------------


def test_a_world_readable_env_file_is_unfit(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    Fitness(stack)
    stack.files[".env"].mode = "644"
    found = lone_failure(gate(stack, contract, tmp_path), "readiness: .env mode 0600 or stricter")
    assert found["observed"] == "0644"
    assert found["evidence"] == ".env is mode 0644, readable beyond its owner: chmod 600 .env"


@pytest.mark.parametrize("mode", ["640", "700", "4600"])
def test_a_secret_file_any_wider_than_0600_is_unfit(
    contract: Path, tmp_path: Path, mode: str
) -> None:
    stack = FakeStack()
    Fitness(stack)
    stack.files["secrets/node.key"].mode = mode
    name = "readiness: secrets/node.key mode 0600 or stricter"
    found = lone_failure(gate(stack, contract, tmp_path), name)
    assert found["evidence"].endswith("chmod 600 secrets/node.key"), found


def test_a_stricter_mode_is_fit(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    Fitness(stack)
    stack.files["secrets/node.key"].mode = "400"
    assert gate(stack, contract, tmp_path).code == 0


def test_every_file_the_secret_globs_match_is_held_to_it(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    Fitness(stack)
    stack.files["secrets/extra.key"] = FakeFile("another-key-material-0001\n", "664")
    lone_failure(
        gate(stack, contract, tmp_path), "readiness: secrets/extra.key mode 0600 or stricter"
    )


def test_an_api_bound_to_every_address_is_unfit_though_its_check_is_green(
    contract: Path, tmp_path: Path
) -> None:
    cfg = default_config()
    cfg["node"]["lan_access"] = True  # the node binds 0.0.0.0 as configured: the battery agrees
    stack = FakeStack(cfg)
    Fitness(stack)
    run = gate(stack, contract, tmp_path)
    found = lone_failure(run, "readiness: node-rpc bound to loopback only")
    assert found["observed"] == "0.0.0.0"
    assert "listens on 0.0.0.0: bind it to 127.0.0.1 only" in found["evidence"]
    assert run.record("readiness: healthy (status exit 0, every check green)")["verdict"] == "pass"


def test_a_port_probe_the_config_does_not_use_is_a_by_design_skip(
    contract: Path, tmp_path: Path
) -> None:
    cfg = default_config()
    cfg["node"]["mode"], cfg["node"]["remote_url"] = "remote", "http://10.0.0.9:8332"
    stack = FakeStack(cfg)  # (the fake's remote mode fails one API check: not judged here)
    Fitness(stack)
    run = gate(stack, contract, tmp_path)
    found = run.record("readiness: node-rpc bound to loopback only")
    assert (found["verdict"], found["skip_class"]) == ("skip", "by-design")
    assert found["evidence"] == "probe node-rpc does not apply to this box's config"
    assert run.verdicts()["readiness: dashboard-port bound to loopback only"] == "pass"


def test_a_big_last_archive_on_a_small_disk_is_unfit(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    Fitness(stack, free=3 * GIB, archive=2 * GIB)
    found = lone_failure(gate(stack, contract, tmp_path), "readiness: disk headroom for a backup")
    assert found["observed"] == "3.0 GiB free, 2 x 2.0 GiB = 4.0 GiB needed"
    assert "free 1.0 GiB there, or move the backups to a bigger disk" in found["evidence"]
    assert "newest archive backups/backup-1.tar.gz" in found["evidence"]


def test_a_full_disk_is_unfit_before_any_archive_exists(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    Fitness(stack, free=1000)
    found = lone_failure(gate(stack, contract, tmp_path), "readiness: disk headroom for a backup")
    assert "no archive yet" in found["evidence"]


def test_the_headroom_factor_is_the_contracts(tmp_path: Path) -> None:
    extra = with_readiness("headroom=10.0")
    stack = FakeStack()
    Fitness(stack, free=5 * GIB, archive=1 * GIB)
    found = lone_failure(
        gate(stack, contract_file(tmp_path, extra), tmp_path),
        "readiness: disk headroom for a backup",
    )
    assert found["expected"] == ">= 10 x a backup"


@pytest.mark.parametrize(
    ("knobs", "observed", "fix"),
    [
        ({"writable": False}, "not writable", "not writable by the user gate logs in as"),
        ({"backup_kind": "missing"}, "missing", "mkdir -p backups"),
        ({"backup_kind": "not a directory"}, "not a directory", "replace it with a directory"),
    ],
)
def test_a_backup_dir_gate_cannot_write_into_is_unfit(
    contract: Path, tmp_path: Path, knobs: dict[str, Any], observed: str, fix: str
) -> None:
    stack = FakeStack()
    Fitness(stack, **knobs)
    run = gate(stack, contract, tmp_path)
    found = lone_failure(run, "readiness: backup dir backups writable")
    assert found["observed"] == observed
    assert fix in found["evidence"], found


def test_a_missing_tool_is_unfit_naming_it(tmp_path: Path) -> None:
    extra = with_readiness("tools=('tar', 'gzip')")
    stack = FakeStack()
    Fitness(stack)
    stack.missing_tools = ["gzip"]  # preflight asks only for gate's own tools
    found = lone_failure(
        gate(stack, contract_file(tmp_path, extra), tmp_path), "readiness: tools on PATH"
    )
    assert found["observed"] == "missing gzip"
    assert found["evidence"].startswith("missing gzip: install them on the box")


def test_an_unhealthy_box_is_unfit_naming_the_failed_checks_and_the_check_to_run(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    Fitness(stack)
    stack.stop("worker-2")
    run = gate(stack, contract, tmp_path)
    found = lone_failure(run, "readiness: healthy (status exit 0, every check green)")
    assert "--check` passes: failed services: every expected service running" in found["evidence"]
    assert "--local --dir /srv/stack" in found["evidence"]
    health = {
        r["name"]: r["verdict"]
        for r in json.loads((run.run_dir / "readiness" / "health.json").read_text())
    }
    assert health["status: exit code 0"] == "fail"
    assert (run.run_dir / "captures" / "readiness" / "status.txt").is_file()
    assert Kind.MUTATE not in run.kinds()


def test_a_box_an_earlier_run_left_dirty_is_unfit_with_the_recover_to_run(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    Fitness(stack)
    state = {"state": "dirty", "run_id": "r-old", "phase": "matrix"}
    stack.files[".gate/state.json"] = FakeFile(json.dumps(state), "600")
    found = lone_failure(gate(stack, contract, tmp_path), "box: not left dirty by an earlier run")
    assert "--recover" in found["evidence"]


def test_a_lost_link_is_inconclusive_never_unfit(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    Fitness(stack)
    stack.target.on(re.compile(r"boxtool\.py fitness "), Lost("link reset", drops=False))
    run = gate(stack, contract, tmp_path)
    assert run.code == 3, run.console
    assert run.summary["counts"]["fail"] == 0
    assert run.verdicts()["readiness: disk headroom for a backup"] == "inconclusive"
    assert "readiness: could not judge 4 item(s): run it again" in run.said


# --- an undeclared Readiness --------------------------------------------------------------------


def test_an_undeclared_readiness_is_named_skips_that_strict_fails(tmp_path: Path) -> None:
    extra = "CONTRACT = dataclasses.replace(CONTRACT, readiness=Readiness())\n"
    stack = FakeStack()
    Fitness(stack)
    path = contract_file(tmp_path, extra)
    run = gate(stack, path, tmp_path)
    assert run.code == 0, run.console
    for name in (
        "readiness: APIs bound to loopback only",
        "readiness: backup dir (undeclared) writable",
    ):
        found = run.record(name)
        assert (found["verdict"], found["skip_class"]) == ("skip", "missing"), found
        assert "declare Readiness(" in found["evidence"]
    assert "readiness: fit for gating (2 item(s) skipped)" in run.said
    strict = gate(stack, path, tmp_path / "strict", strict=True)
    assert strict.code == 1, strict.console


def test_no_backup_action_makes_the_backup_dir_a_by_design_skip(tmp_path: Path) -> None:
    extra = (
        "CONTRACT = dataclasses.replace(\n"
        "    CONTRACT, readiness=Readiness(loopback_ports=('dashboard-port',)),\n"
        "    actions=dataclasses.replace(CONTRACT.actions, backup=None))\n"
    )
    stack = FakeStack()
    Fitness(stack)
    run = gate(stack, contract_file(tmp_path, extra), tmp_path, strict=True)
    assert run.code == 0, run.console
    found = run.record("readiness: backup dir (undeclared) writable")
    assert (found["verdict"], found["skip_class"]) == ("skip", "by-design")


# --- how it combines with other flags ------------------------------------------------------------


def usage_line(run: Outcome) -> str:
    assert run.code == 2, run.console
    lines = [line for line in run.console.splitlines() if line.startswith("gate: ")]
    assert len(lines) == 1, run.console
    return lines[0]


def test_readiness_with_check_is_a_usage_error_touching_nothing(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    run = gate(stack, contract, tmp_path, check=True)
    assert "runs alone: drop --readiness" in usage_line(run)
    assert stack.target.calls == []


@pytest.mark.parametrize("flags", [{"scenario": ["local-defaults"]}, {"keep": True}])
def test_readiness_runs_no_scenario(contract: Path, tmp_path: Path, flags: dict[str, Any]) -> None:
    stack = FakeStack()
    run = gate(stack, contract, tmp_path, **flags)
    assert usage_line(run) == (
        "gate: --readiness runs no scenario: drop --scenario/--shard/--keep/--recover"
    )
    assert stack.target.calls == []


class Mutator(Phase):
    name = "mutator"
    mutates = True
    flag = Flag("mutator", "a throwaway mutating phase")

    def run(self, run: Run) -> None:
        raise AssertionError("a mutating phase ran beside --readiness")


def test_readiness_with_a_mutating_phase_is_a_usage_error_touching_nothing(
    contract: Path, tmp_path: Path
) -> None:
    register(Mutator())
    try:
        stack = FakeStack()
        run = gate(stack, contract, tmp_path, mutator=True)
    finally:
        unregister("mutator")
    assert usage_line(run) == "gate: --readiness changes nothing and runs alone: drop --mutator"
    assert stack.target.calls == []


def test_a_loopback_port_that_is_no_port_probe_is_refused_before_the_box(tmp_path: Path) -> None:
    extra = (
        "CONTRACT = dataclasses.replace(CONTRACT, readiness=Readiness(loopback_ports=('api',)))\n"
    )
    stack = FakeStack()
    run = gate(stack, contract_file(tmp_path, extra), tmp_path)
    line = usage_line(run)
    assert "Readiness.loopback_ports names 'api', which is not a Port probe" in line
    assert "(Port probes: dashboard-port, node-rpc)" in line
    assert stack.target.calls == []
