"""Open a page in headless Chromium (Debian's `chromium`, installed by `make deps`): its DOM
after loading, the console messages it logged, and a screenshot. Used by the report's e2e test
and to refresh docs/images/reconciliation-report.png:

    python -m tools.chromium reconciliation.html docs/images/reconciliation-report.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1"]


def executable() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("chromium is not installed: run `make deps` (it installs Debian's chromium)")
    return found


def run(page: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="reliefdocs-chromium-") as profile:
        return subprocess.run([executable(), *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout)


def load(page: Path) -> tuple[str, list[str]]:
    """The DOM after loading, and every console message the page logged (none, for a clean page)."""
    r = run(page, "--dump-dom", "--enable-logging=stderr", "--v=0")
    if r.returncode != 0:
        raise RuntimeError(f"chromium exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout, [line for line in r.stderr.splitlines() if "CONSOLE" in line]


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 1800) -> Path:
    r = run(page, f"--screenshot={png.resolve()}", f"--window-size={width},{height}")
    if r.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium made no screenshot (exit {r.returncode}): {r.stderr[-2000:]}")
    return png


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"wrote {sys.argv[2]}")
