"""Render the first page of each paper of a sample filing, and of the parts inside them (the
declaration, exhibit A in both versions), to docs/images/ (PNG), so a reader of the README
sees what reliefdocs files. `python -m tools.docs_images`."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from pypdf import PdfReader

from tests.e2e.test_documents import batch, file_once

ROOT = Path(__file__).resolve().parent.parent
PARTS = {"Declaration": "declaration", "Exhibit A": None}  # bookmark prefix -> image name (None: exhibit-a[-public])


def page_png(pdf: Path, page: int, out: Path) -> None:
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-singlefile", "-f", str(page), "-l", str(page), str(pdf),
                    str(out)], check=True)
    print(f"wrote docs/images/{out.name}.png")


def main() -> None:
    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    manifest, store = file_once(Path(tempfile.mkdtemp()), batch(60))
    for paper in manifest["efiling"]:
        pdf = store / paper["key"]
        page_png(pdf, 1, out / Path(paper["key"]).stem)
        reader = PdfReader(pdf)
        for mark in reader.outline:
            for prefix, name in PARTS.items():
                if mark.title.startswith(prefix):
                    name = name or ("exhibit-a" if paper["confidential"] else "exhibit-a-public")
                    page_png(pdf, reader.get_destination_page_number(mark) + 1, out / name)


if __name__ == "__main__":
    main()
