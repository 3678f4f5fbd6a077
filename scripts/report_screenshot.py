"""An annotated screenshot of a run's report.html, for docs/report.md.

    .venv/bin/python scripts/report_screenshot.py results/<run-id> docs/img/report-annotated.png

Numbers each section heading (pure CSS, the report's own policy allows inline styles) in a
copy of the report, then has headless Chromium (offline: every host name mapped to
nowhere) take the picture. The numbers match the list in docs/report.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BADGES = """<style>
body { counter-reset: section; }
h1::after { content: "0"; }
h1::after, h2::before {
  display: inline-block; min-width: 1.6em; margin: 0 .5em; padding: .1em .3em;
  border-radius: 1em; background: #f5a623; color: #000; font: bold 15px sans-serif;
  text-align: center;
}
h2::before { counter-increment: section; content: counter(section); }
</style>"""

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars",
)  # fmt: skip


def annotate(run_dir: Path, work: Path) -> Path:
    """A copy of the run dir whose report.html carries the section numbers."""
    copy = work / "run"
    shutil.copytree(run_dir, copy)
    page = copy / "report.html"
    page.write_text(page.read_text().replace("</head>", BADGES + "</head>", 1))
    return page


def shoot(page: Path, picture: Path, work: Path, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed: make sysdeps")
    command = [
        browser, *FLAGS, f"--user-data-dir={work / 'profile'}",
        f"--window-size=1200,{height}", f"--screenshot={picture.resolve()}", page.as_uri(),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=True)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    run_dir, picture = Path(argv[0]), Path(argv[1])
    if not (run_dir / "report.html").is_file():
        print(f"{run_dir}: no report.html (run `invoke report {run_dir}` first)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gate-shot-") as tmp:
        shoot(annotate(run_dir, Path(tmp)), picture, Path(tmp), int(argv[2]) if argv[2:] else 2000)
    print(f"wrote {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
