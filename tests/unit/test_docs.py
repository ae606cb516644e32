"""The configuration reference and the schemas agree with the code."""

import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator

from tests.helpers import ROOT
from tools.gen_docs import configuration_md


def test_configuration_reference_is_current():
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == configuration_md(), \
        "run: python -m tools.gen_docs"


def test_schemas_are_valid_2020_12():
    found = sorted((ROOT / "schemas").glob("*.schema.json"))
    assert found, "no schemas/*.schema.json found: the check would pass on nothing"
    for p in found:
        Draft202012Validator.check_schema(json.loads(p.read_text()))


# -- the documentation stays inside the repository and in step with the code ------------------

DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def anchors(page: Path):
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCE.sub("", page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        yield slug if n == 0 else f"{slug}-{n}"


def test_every_link_of_the_docs_points_to_a_file_of_the_repository():
    for page in DOC_PAGES:
        for target in links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            where = f"{page.relative_to(ROOT)} links {target}"
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.is_relative_to(ROOT), f"{where}: outside the repository"
            assert resolved.exists(), f"{where}: no such file"
            if anchor and resolved.suffix == ".md":
                assert anchor in set(anchors(resolved)), f"{where}: no such heading"


def test_nothing_points_outside_the_repository_to_the_shared_notes():
    files = [*DOC_PAGES, ROOT / "docs" / "asyncapi.yaml", *sorted((ROOT / "service").glob("*.py"))]
    for f in files:
        text = f.read_text(encoding="utf-8")
        for outside in ("../shared", "shared/contract.md", "shared/testing.md"):
            assert outside not in text, f"{f.relative_to(ROOT)} points to {outside}, outside the repository"


def test_contract_links_every_schema():
    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    for p in sorted((ROOT / "schemas").glob("*.json")):
        assert f"](../schemas/{p.name})" in contract, f"docs/contract.md does not link schemas/{p.name}"


def test_contract_names_every_dlq_reason():
    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    from service import broker
    from service.errors import DLQ_REASONS

    for reason in DLQ_REASONS:
        assert f"`{reason}`" in contract, reason
    for header in (broker.DLQ_REASON, broker.DLQ_MESSAGE, broker.DLQ_TOPIC, broker.DLQ_PAYLOAD,
                   broker.REPLAY_OF, broker.REPLAY_COUNT):
        assert f"`{header}`" in contract, header
    assert "`.partition`" in contract and "`.offset`" in contract  # after `reliefdocs.source.topic`
    assert (broker.DLQ_PARTITION, broker.DLQ_OFFSET) == ("reliefdocs.source.partition", "reliefdocs.source.offset")


def test_readme_is_an_entry_not_a_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = "\n".join(readme.splitlines()[:40])
    assert "make run" in first_screen and "make test" in first_screen
    assert len(readme.splitlines()) <= 220, "move detail to docs/"
    from tools import bench

    assert bench.HISTORY_MARKER not in readme, "the benchmark history lives in docs/performance.md"


def test_bench_adds_its_history_line_to_docs_performance_only(tmp_path):
    from tools import bench

    assert bench.HISTORY_PAGE == ROOT / "docs" / "performance.md"
    assert bench.HISTORY_MARKER in bench.HISTORY_PAGE.read_text(encoding="utf-8")
    assert "README.md" not in (ROOT / "tools" / "bench.py").read_text(encoding="utf-8")
    page = tmp_path / "performance.md"
    page.write_text(f"# P\n\n{bench.HISTORY_MARKER}\n| a | b |\n| --- | --- |\n| old | 1 |\n\nNotes.\n", encoding="utf-8")
    assert bench.add_history_line("| new | 2 |", page)
    assert page.read_text(encoding="utf-8").splitlines()[3:7] == ["| a | b |", "| --- | --- |", "| new | 2 |", "| old | 1 |"]
    no_marker = tmp_path / "other.md"
    no_marker.write_text("# nothing\n", encoding="utf-8")
    assert not bench.add_history_line("| new | 2 |", no_marker)
    assert no_marker.read_text(encoding="utf-8") == "# nothing\n"
