"""Inventory files and host specs: parsing, loading, and every way they can be wrong."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

from gate.errors import UsageError
from gate.inventory import (
    HostSpec,
    inventory_path,
    load_inventory,
    local_spec,
    resolve_host,
)

FULL = """
host = "127.0.0.1"
port = 2222
user = "root"
identity = "~/.ssh/id_ed25519"
dir = "/srv/stack"
control = "sudo ./stackctl"
known_hosts = "inventory/known_hosts"
transport = "exec"
reconnect_s = 90

[requirements]
remote_node_url = "http://10.0.0.5:18081"
alt_data_dir = "/srv/node-compact"
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    folder = tmp_path / "inventory"
    folder.mkdir()
    return folder


def write(inventory: Path, name: str, text: str) -> Path:
    path = inventory / f"{name}.toml"
    path.write_text(text)
    return path


def usage_error(spec: str, inventory: Path) -> str:
    """The one-line message resolve_host fails with."""
    with pytest.raises(UsageError) as raised:
        resolve_host(spec, inventory)
    message = str(raised.value)
    assert "\n" not in message.strip()
    return message


# --- loading ---------------------------------------------------------------------------


def test_full_inventory_file_loads_every_field(inventory: Path) -> None:
    write(inventory, "box", FULL)
    spec = resolve_host("box", inventory)
    assert spec == HostSpec(
        name="box",
        host="127.0.0.1",
        port=2222,
        user="root",
        identity=Path("~/.ssh/id_ed25519").expanduser(),
        dir="/srv/stack",
        control="sudo ./stackctl",
        known_hosts=inventory.parent / "inventory" / "known_hosts",
        requirements={
            "remote_node_url": "http://10.0.0.5:18081",
            "alt_data_dir": "/srv/node-compact",
        },
        local=False,
        transport="exec",
        reconnect_s=90,
    )


def test_minimal_inventory_file_gets_defaults(inventory: Path) -> None:
    write(inventory, "tiny", 'dir = "/srv/stack"\n')
    spec = resolve_host("tiny", inventory)
    assert (spec.host, spec.port, spec.user, spec.identity) == ("tiny", None, None, None)
    assert spec.control == ""  # the contract's own control command
    assert spec.known_hosts == inventory / "known_hosts"
    assert dict(spec.requirements) == {}
    assert spec.transport == "persistent"


def test_absolute_known_hosts_is_kept(inventory: Path, tmp_path: Path) -> None:
    write(inventory, "box", f'dir = "/s"\nknown_hosts = "{tmp_path}/kh"\n')
    assert resolve_host("box", inventory).known_hosts == tmp_path / "kh"


def test_requirements_are_read_only(inventory: Path) -> None:
    write(inventory, "box", FULL)
    spec = resolve_host("box", inventory)
    with pytest.raises(TypeError):
        spec.requirements["new"] = "x"  # type: ignore[index]


def test_explicit_file_forms_resolve_to_the_same_spec(inventory: Path) -> None:
    write(inventory, "box", FULL)
    by_name = resolve_host("box", inventory)
    assert resolve_host("box.toml", inventory) == by_name
    assert resolve_host(f"{inventory}/box.toml", inventory) == by_name


def test_overrides_are_applied_with_replace(inventory: Path) -> None:
    write(inventory, "box", FULL)
    spec = dataclasses.replace(resolve_host("box", inventory), dir="/elsewhere")
    assert spec.dir == "/elsewhere" and spec.port == 2222


def test_local_spec() -> None:
    spec = local_spec("/srv/stack")
    assert (spec.local, spec.dir, spec.name, spec.known_hosts) == (
        True,
        "/srv/stack",
        "local",
        None,
    )


# --- ad hoc specs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("root@10.0.0.5:2222", "root", "10.0.0.5", 2222),
        ("deploy@box.example.org", "deploy", "box.example.org", None),
        ("10.0.0.5:22", None, "10.0.0.5", 22),
        ("ssh://root@10.0.0.5:2222", "root", "10.0.0.5", 2222),
        ("root@[::1]:2200", "root", "::1", 2200),
        ("[fe80::1%eth0]", None, "fe80::1%eth0", None),
    ],
)
def test_user_host_port_specs(
    inventory: Path, text: str, user: str | None, host: str, port: int | None
) -> None:
    spec = resolve_host(text, inventory)
    assert (spec.user, spec.host, spec.port, spec.name) == (user, host, port, text)
    assert (spec.dir, spec.local) == ("", False)
    assert spec.known_hosts == inventory / "known_hosts"


def test_bare_word_without_a_file_is_an_ssh_alias(inventory: Path) -> None:
    spec = resolve_host("stackbox", inventory)
    assert (spec.host, spec.user, spec.port) == ("stackbox", None, None)


def test_inventory_file_wins_over_an_alias_of_the_same_name(inventory: Path) -> None:
    write(inventory, "stackbox", 'host = "10.9.9.9"\ndir = "/s"\n')
    assert resolve_host("stackbox", inventory).host == "10.9.9.9"


def test_ad_hoc_spec_requires_dir_until_given(inventory: Path) -> None:
    spec = resolve_host("root@box", inventory)
    with pytest.raises(UsageError, match="pass --dir"):
        spec.require_dir()
    assert dataclasses.replace(spec, dir="/srv/stack").require_dir() == "/srv/stack"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty host spec"),
        ("   ", "empty host spec"),
        ("root@box:0", "bad port 0"),
        ("root@box:65536", "bad port 65536"),
        ("root@box:ssh", "bad port 'ssh'"),
        ("root@box:", "bad port ''"),
        ("root@box:22:33", "bad host spec"),
        ("ro ot@box", "bad user 'ro ot'"),
        ("@box", "bad host spec"),
        ("root@bo x", "bad host 'bo x'"),
        ("root@box;rm", "bad host 'box;rm'"),
    ],
)
def test_bad_ad_hoc_specs(inventory: Path, text: str, problem: str) -> None:
    assert problem in usage_error(text, inventory)


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["../secrets.toml", "inventory/../../etc/passwd.toml", "/etc/box.toml", "sub/box"]
)
def test_paths_outside_the_inventory_are_refused(inventory: Path, text: str) -> None:
    message = usage_error(text, inventory)
    assert "inventory files must live directly in" in message or "bad inventory name" in message


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "", "box name", "-flag"])
def test_inventory_path_refuses_bad_names(inventory: Path, name: str) -> None:
    with pytest.raises(UsageError, match="bad inventory name"):
        inventory_path(name, inventory)


def test_missing_named_file_names_the_file(inventory: Path) -> None:
    message = usage_error("ghost.toml", inventory)
    assert message == f"{inventory / 'ghost.toml'}: no such inventory file"


# --- file validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('dir = "/s"\nhots = "typo"\n', "unknown key 'hots'"),
        ('dir = "/s"\n[extra]\na = "b"\n', "unknown key 'extra'"),
        ('host = "h"\n', "missing required key 'dir'"),
        ('dir = ""\n', "dir must not be empty"),
        ('dir = "/s"\ncontrol = "  "\n', "control must not be empty"),
        ("dir = 5\n", "dir must be a string, got 5"),
        ('dir = "/s"\nport = "2222"\n', "port must be an integer, got '2222'"),
        ('dir = "/s"\nport = 22.5\n', "port must be an integer, got 22.5"),
        ('dir = "/s"\nport = true\n', "port must be an integer, got True"),
        ('dir = "/s"\nport = 0\n', "bad port 0"),
        ('dir = "/s"\nport = 70000\n', "bad port 70000"),
        ('dir = "/s"\nworkers = 2\n', "'workers' is no inventory key any more: run-wide"),
        ('dir = "/s"\nuser = ["root"]\n', "user must be a string"),
        ('dir = "/s"\nrequirements = "x"\n', "requirements must be a table"),
        ('dir = "/s"\n[requirements]\npeers = 3\n', "requirements.peers must be a string, got 3"),
        ('dir = "/s"\nhost = \n', "not valid TOML"),
        ('dir = "/s"\ndir = "/t"\n', "not valid TOML"),
        ('dir = "/s"\ntransport = "ssh"\n', "transport: 'ssh' is not one of persistent, exec"),
        ('dir = "/s"\nreconnect_s = -1\n', "reconnect_s must be 0 or more seconds, got -1"),
        ('dir = "/s"\nreconnect_s = "60"\n', "reconnect_s must be an integer"),
    ],
)
def test_invalid_inventory_files(inventory: Path, text: str, problem: str) -> None:
    path = write(inventory, "box", text)
    message = usage_error("box", inventory)
    assert message.startswith(f"{path}: "), message
    assert problem in message


def test_unreadable_bytes_are_a_usage_error(inventory: Path) -> None:
    (inventory / "box.toml").write_bytes(b'dir = "/s\xff"\n')
    assert str(inventory / "box.toml") in usage_error("box", inventory)


def test_a_valid_file_passes_the_same_checks(inventory: Path) -> None:
    """Positive control for the table above: the same keys, right types, load fine."""
    write(inventory, "box", 'dir = "/s"\nport = 2222\n[requirements]\nworkers = "0"\n')
    spec = resolve_host("box", inventory)
    assert (spec.port, dict(spec.requirements)) == (2222, {"workers": "0"})


@pytest.mark.parametrize("doc", ["docs/inventory.md", "docs/quickstart.md"])
def test_every_inventory_example_in_the_docs_loads(inventory: Path, doc: str) -> None:
    """A user copies these blocks as they are: each must pass the checks a real file passes."""
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, f"{doc} has no toml example"
    for number, block in enumerate(blocks):
        write(inventory, f"doc{number}", textwrap.dedent(block))
        assert load_inventory(f"doc{number}", inventory).dir
