"""Git on the box: the canonical checkout is read, never written; the dedicated checkout
beside it is cloned (`git clone --shared`: objects borrowed through alternates, nothing
written into the canonical repository), seeded on the box and removed.

Every git read runs with GIT_OPTIONAL_LOCKS=0, so not even `git status` refreshes the
canonical index. Branch names are checked here before they reach a shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gate.box import APPLY_TIMEOUT, Box, Kind, answered
from gate.errors import PreflightError, UsageError
from gate.result import Result
from gate.target import quote

BRANCH_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]*")
SUFFIX = ".e2e-"
"""The dedicated checkout is `<canonical checkout>.e2e-<branch slug>`, beside it."""
READ_GIT = "GIT_OPTIONAL_LOCKS=0 git"
STATE_KEYS = ("head", "branch", "index", "staged", "status", "refs")


@dataclass(frozen=True)
class Canonical:
    """The canonical checkout: its work tree's top, and the stack dir's place inside it."""

    top: str
    prefix: str
    """The stack dir relative to `top` ("" when the stack dir is the top)."""


def check_branch_name(branch: str) -> None:
    """A plain ref name (no option, no `..`, no shell words), else a usage error."""
    if not BRANCH_RE.fullmatch(branch) or ".." in branch or branch.endswith((".", "/", ".lock")):
        raise UsageError(
            f"branch {branch!r}: give a branch name (letters, digits, . _ / + -; no `..`)"
        )


def slug(branch: str) -> str:
    """A branch name as one path component: claude/x -> claude-x."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", branch)


def checkout_path(canonical: Canonical, branch: str) -> str:
    return f"{canonical.top}{SUFFIX}{slug(branch)}"


def stack_dir_in(checkout: str, canonical: Canonical) -> str:
    """The checkout's stack dir: at the same place inside it as in the canonical one."""
    return f"{checkout}/{canonical.prefix}".rstrip("/")


def find_canonical(box: Box) -> Canonical:
    """The git work tree holding the stack dir, or a usage error (absent, not a repo, or
    with uncommitted changes to tracked files)."""
    where = quote(box.host.dir)
    probe = answered(
        box.run(
            f"test -d {where} || {{ echo no-dir; exit 0; }}; cd {where} && "
            f"{READ_GIT} rev-parse --show-toplevel --show-prefix 2>/dev/null || echo not-git",
            in_dir=False,
            scrub=False,
        )
    )
    lines = probe.stdout.splitlines()
    if not lines or lines[0] == "no-dir":
        raise UsageError(f"stack dir {box.host.dir} not found on {box.host.name}")
    if lines[-1] == "not-git" or not lines[0].startswith("/"):
        raise UsageError(
            f"stack dir {box.host.dir} on {box.host.name} is not in a git checkout: e2e "
            "needs the canonical stack deployed from a git repository"
        )
    canonical = Canonical(top=lines[0], prefix=lines[1].rstrip("/") if len(lines) > 1 else "")
    dirty = git_read(box, canonical, "status --porcelain --untracked-files=no")
    if dirty.stdout.strip():
        changed = ", ".join(line[3:] for line in dirty.stdout.splitlines()[:3])
        raise UsageError(
            f"canonical checkout {canonical.top} has uncommitted changes ({changed}): commit "
            "or stash them first (e2e never touches it)"
        )
    return canonical


def resolve_branch(box: Box, canonical: Canonical, branch: str) -> str:
    """The commit BRANCH names in the canonical repository (a local branch, else
    origin/BRANCH, else a tag); a usage error when it names none."""
    for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}", f"refs/tags/{branch}"):
        found = git_read(box, canonical, f"rev-parse --verify --quiet {quote(ref + '^{commit}')}")
        if found.ok and re.fullmatch(r"[0-9a-f]{40,64}", found.stdout.strip()):
            return found.stdout.strip()
    raise UsageError(
        f"branch {branch!r}: no such branch in the canonical checkout's repository "
        f"{canonical.top} (local, origin/ or tag)"
    )


def refuse_existing(box: Box, path: str) -> None:
    """A checkout left by `--keep` or a killed e2e is never reused or overwritten."""
    found = answered(box.run(f"test -e {quote(path)} && echo exists || true"))
    if "exists" in found.stdout.split():
        raise UsageError(
            f"{path} already exists (an e2e kept with --keep, or interrupted): stop the stack "
            "there with its down action and remove it, then run e2e again"
        )


def refuse_canonical_control(control: str, canonical: Canonical, stack_dir: str) -> None:
    """e2e runs the control command in the branch's checkout; one that names the canonical
    checkout's path (`/srv/stack/stackctl`, `ctl --box /srv/stack`) drives the canonical
    stack from there: the branch never runs and its gate passes on the canonical's code."""
    paths = [canonical.top, *([stack_dir.rstrip("/")] if stack_dir.startswith("/") else [])]
    for path in paths:
        if path and re.search(re.escape(path) + r"(?=$|[/\s'\"])", control):
            raise UsageError(
                f"the control command {control!r} names the canonical checkout ({path}): "
                "e2e runs it in the branch's checkout, where it would drive the canonical "
                "stack; give it relative to the stack dir (e.g. --control ./stackctl)"
            )


def git_state(box: Box, canonical: Canonical) -> dict[str, str]:
    """What must not change in the canonical checkout: HEAD, the branch, the index file's
    bytes, the staged entries, the status of tracked files, every ref (hashes)."""
    top = quote(canonical.top)
    script = (
        f"cd {top} && export GIT_OPTIONAL_LOCKS=0 && "
        'echo "head $(git rev-parse HEAD)"; '
        'echo "branch $(git symbolic-ref -q HEAD || echo detached)"; '
        'echo "index $(sha256sum < "$(git rev-parse --git-path index)" | cut -c1-64)"; '
        'echo "staged $(git ls-files --stage | sha256sum | cut -c1-64)"; '
        'echo "status $(git status --porcelain --untracked-files=no | sha256sum | cut -c1-64)"; '
        'echo "refs $(git for-each-ref | sha256sum | cut -c1-64)"'
    )
    result = answered(box.run(script))
    state = dict(line.partition(" ")[::2] for line in result.stdout.splitlines() if " " in line)
    if not result.ok or set(STATE_KEYS) - set(state):
        raise PreflightError(f"cannot read the canonical checkout's git state: {result.stderr}")
    return {key: state[key] for key in STATE_KEYS}


def git_read(box: Box, canonical: Canonical, args: str) -> Result:
    return answered(box.run(f"cd {quote(canonical.top)} && {READ_GIT} {args}"))


def clone(box: Box, canonical: Canonical, path: str, commit: str) -> Result:
    """`git clone --shared --no-checkout` beside the canonical, then the commit checked out
    detached (written only under `path`)."""
    command = (
        f"git clone --quiet --shared --no-checkout {quote(canonical.top, path)} && "
        f"git -C {quote(path)} -c advice.detachedHead=false checkout --quiet --detach "
        f"{quote(commit)}"
    )
    return answered(box.run(command, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))


SEED_PY = (
    "import glob, os, shutil, sys\n"
    "src, dst, pats = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
    "os.chdir(src)\n"
    "for pat in pats:\n"
    "    for name in sorted(glob.glob(pat)):\n"
    "        if os.path.isfile(name):\n"
    "            target = os.path.join(dst, name)\n"
    "            os.makedirs(os.path.dirname(target) or dst, mode=0o700, exist_ok=True)\n"
    "            shutil.copy2(name, target)\n"
    "            print(name)\n"
)


def seed(box: Box, source: str, dest: str, patterns: list[str]) -> list[str]:
    """Copy the files `patterns` match in `source` to the same places under `dest`, on the
    box (bytes never leave it; mode and times kept); the names copied."""
    command = f"python3 -c {quote(SEED_PY)} {quote(source, dest, *patterns)}"
    copied = answered(box.run(command, kind=Kind.MUTATE, timeout=120))
    if not copied.ok:
        raise PreflightError(f"seeding {dest} failed: {copied.stderr.strip()[-200:]}")
    return copied.stdout.split()


def remove(box: Box, canonical: Canonical, path: str) -> Result:
    """Remove the dedicated checkout: only ever a path of the form e2e made."""
    if not path.startswith(canonical.top + SUFFIX) or "/" in path[len(canonical.top) :]:
        raise ValueError(f"refusing to remove {path}: not an e2e checkout of {canonical.top}")
    return answered(box.run(f"rm -rf -- {quote(path)}", kind=Kind.MUTATE))
