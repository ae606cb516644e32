"""Render the first page of each document of a sample bundle to docs/images/ (PNG), so a
reader of the README sees what reliefdocs files. `python -m tools.docs_images`."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tests.e2e.test_documents import batch, file_once

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    manifest, store = file_once(Path(tempfile.mkdtemp()), batch(60))
    for d in manifest["documents"]:
        if d["media_type"] != "application/pdf" or d["role"].startswith("bundle"):
            continue
        name = Path(d["key"]).stem
        subprocess.run(["pdftoppm", "-r", "60", "-png", "-singlefile", "-f", "1", "-l", "1", str(store / d["key"]),
                        str(out / name)], check=True)
        print(f"wrote docs/images/{name}.png")


if __name__ == "__main__":
    main()
