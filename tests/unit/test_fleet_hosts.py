"""Which boxes `--host` names: one box (None: today's run), a comma list, a group; every bad
fleet is one `gate:` line, exit 2, no results dir, no box touched, before any box starts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gate.cli import run_cli
from gate.cli.flags import table
from gate.errors import ExitCode, UsageError
from gate.fleet.hosts import plan_fleet
from gate.options import Options
from gate.testing.sshd import free_port, write_inventory

REPO = Path(__file__).resolve().parents[2]
DEFAULTS: dict[str, object] = {"bool": False, "text": "", "int": "", "path": "", "repeat": None}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """Boxes a, b, c (each its own port and stack dir), and groups.toml."""
    directory = tmp_path / "inventory"
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        write_inventory(
            directory, name, host="127.0.0.1", port=free_port(), dir=str(tmp_path / name)
        )
    groups(directory, 'both = ["a", "b"]\nall = ["a", "b", "c"]\n')
    return directory


def groups(directory: Path, body: str) -> None:
    (directory / "groups.toml").write_text("[groups]\n" + body)


def opts(inventory: Path, host: str, **more: object) -> Options:
    return Options(host=host, inventory_dir=inventory, **more)  # type: ignore[arg-type]


def refused(inventory: Path, host: str, **more: object) -> str:
    with pytest.raises(UsageError) as caught:
        plan_fleet(opts(inventory, host, **more))
    return str(caught.value)


def test_one_box_is_no_fleet(inventory: Path) -> None:
    assert plan_fleet(opts(inventory, "a")) is None
    assert plan_fleet(opts(inventory, "root@10.0.0.5:2222")) is None
    assert plan_fleet(opts(inventory, "an-ssh-alias")) is None  # one --host: as today


def test_a_comma_list_names_each_box_in_order(inventory: Path, tmp_path: Path) -> None:
    fleet = plan_fleet(opts(inventory, "b, a"))
    assert fleet is not None
    assert fleet.labels == ["b", "a"]
    assert [box.entry for box in fleet.boxes] == ["b", "a"]
    assert fleet.boxes[1].where.startswith("127.0.0.1:")
    assert fleet.boxes[1].where.endswith(str(tmp_path / "a"))
    assert fleet.source == "b, a"


def test_a_group_expands_in_the_files_order(inventory: Path) -> None:
    fleet = plan_fleet(opts(inventory, "all"))
    assert fleet is not None and fleet.labels == ["a", "b", "c"]
    assert fleet.source == "group all"
    mixed = plan_fleet(opts(inventory, "both,c"))
    assert mixed is not None and mixed.labels == ["a", "b", "c"]


def test_an_address_gets_a_safe_results_dir_name(inventory: Path) -> None:
    fleet = plan_fleet(opts(inventory, "a,root@10.0.0.5:2222,ssh://ops@[::1]:22", dir="/srv"))
    assert fleet is not None
    assert fleet.labels == ["a", "root_10.0.0.5_2222", "ops_1_22"]
    assert fleet.boxes[1].where == "root@10.0.0.5:2222 /srv"


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("a,nope", "unknown box 'nope'"),
        ("a,a", "'a' is named twice"),
        ("both,a", "'a' is named twice"),
        ("a,,b", "an empty name between commas"),
        ("a,", "an empty name between commas"),
        ("groups", "holds groups, not a box"),
    ],
)
def test_a_bad_list_is_refused(inventory: Path, host: str, says: str) -> None:
    assert says in refused(inventory, host)


def test_an_unknown_box_in_a_group_is_refused(inventory: Path) -> None:
    groups(inventory, 'g = ["a", "typo"]\n')
    assert "unknown box 'typo'" in refused(inventory, "g")


def test_one_box_under_two_names_is_refused(inventory: Path, tmp_path: Path) -> None:
    same = (inventory / "a.toml").read_text().replace('"127.0.0.1"', '"127.0.0.1"\nuser = "x"')
    (inventory / "a2.toml").write_text(same)
    said = refused(inventory, "a,a2")
    assert "'a' and 'a2' are the same box (127.0.0.1:" in said, said


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("g = []\n", "groups.g is empty"),
        ('g = ["both"]\nboth = ["a"]\n', "groups do not nest"),
        ('g = "a"\n', "must be a list of box names"),
        ('a = ["b"]\n', "is a box of that name: rename one"),
        ("g = [\n", "not valid TOML"),
    ],
)
def test_a_bad_groups_file_is_refused(inventory: Path, body: str, says: str) -> None:
    groups(inventory, body)
    assert says in refused(inventory, "g,a")


def test_a_groups_file_with_another_key_is_refused(inventory: Path) -> None:
    (inventory / "groups.toml").write_text('boxes = ["a"]\n')
    assert "unknown key 'boxes'" in refused(inventory, "a,b")


def test_local_with_several_boxes_is_refused(inventory: Path) -> None:
    assert "--local gates this machine, one box: not group both" in refused(
        inventory, "both", local=True
    )


# --- the whole command: one line, exit 2, nothing written, no box touched ---


def cli(tmp_path: Path, inventory: Path, **changes: object) -> tuple[int, str]:
    raw: dict[str, object] = {f.name: DEFAULTS[f.kind] for f in table()}
    raw.update(out=str(tmp_path / "results"), matrix=str(REPO / "matrix.py"))
    raw.update(inventory=str(inventory), check=True)
    raw.update(changes)
    stream = io.StringIO()
    return run_cli(raw, stream), stream.getvalue()


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"host": "a,nope"}, "unknown box 'nope'"),
        ({"host": "a,b,a"}, "named twice"),
        ({"host": "both", "local": True}, "--local gates this machine"),
        ({"host": "a,root@127.0.0.1:1"}, "no stack dir"),  # its own run's check, before any
        ({"host": "a,b", "scenario": ["no-such"]}, "--check runs no scenario"),
    ],
)
def test_a_bad_fleet_is_one_line_and_touches_nothing(
    tmp_path: Path, inventory: Path, changes: dict[str, object], says: str
) -> None:
    code, text = cli(tmp_path, inventory, **changes)
    assert code == ExitCode.USAGE, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gate: "), lines
    assert says in lines[0], lines[0]
    assert not (tmp_path / "results").exists(), "a usage error created a results dir"
    for name in ("a", "b", "c"):
        assert list((tmp_path / name).iterdir()) == [], f"a usage error touched box {name}"


def test_list_with_several_boxes_says_which_would_run(
    tmp_path: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = cli(tmp_path, inventory, host="all", list=True, check=False)
    out = capsys.readouterr().out.splitlines()
    assert code == ExitCode.PASSED
    assert out[0] == "fleet (group all): 3 boxes would run in parallel:"
    assert [line.split()[0] for line in out[1:4]] == ["a", "b", "c"]
    assert any(line.startswith("stack: ") for line in out), "the plan itself is listed too"
    assert not (tmp_path / "results").exists()


def test_list_with_a_bad_fleet_is_refused(tmp_path: Path, inventory: Path) -> None:
    code, text = cli(tmp_path, inventory, host="a,nope", list=True, check=False)
    assert code == ExitCode.USAGE and "unknown box 'nope'" in text
