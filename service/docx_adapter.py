"""Everything reliefdocs needs from docxtpl and python-docx beyond their documented API, in
one place (issue 13: upgrading either is a one-file change). tests/unit/test_adapters.py pins
each behaviour against the libraries' own public results, so an upgrade that changes one
fails there first.

- `template_class()`: DocxTemplate with two results kept (subclassing its `patch_xml` and
  `resolve_listing` hooks, not monkeypatching): the regex patching of a template part (a pure
  function of the part's XML, kept by that XML), and `resolve_listing` skipped when the XML
  holds none of the four characters it rewrites (tab, BEL, newline, form feed), and
  `fix_tables` skipped when its tables already fit their grids (`tables_fit`). docxtpl is
  pinned <0.21 because these hooks are its internals; the adapter test says when a newer one
  still behaves the same.
- `save(document, path, stamp)`: python-docx's save written straight into a normalised zip
  (same entries, order and bytes as `document.save()`, every entry dated `stamp`), in one pass
  through python-docx's PackageWriter steps instead of save-then-rezip (render is 1.8x faster).
- `template_parts(path)`: the Jinja source of each part of a template, as docxtpl sees it.
"""

from __future__ import annotations

import threading
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

_BUILD = threading.Lock()
_CLASS: Any = None


def template_class(cache_get: Callable[[str], str | None], cache_put: Callable[[str, str], str]) -> Any:
    """The DocxTemplate subclass, built once (on first use: commands that render nothing never
    import docxtpl). `cache_get`/`cache_put` keep patched template parts by their XML."""
    global _CLASS
    with _BUILD:
        if _CLASS is None:
            from docxtpl import DocxTemplate

            class Template(DocxTemplate):
                def patch_xml(self, src_xml: str) -> str:
                    return cache_get(src_xml) or cache_put(src_xml, super().patch_xml(src_xml))

                def resolve_listing(self, xml: str) -> str:
                    if "\t" in xml or "\a" in xml or "\n" in xml or "\f" in xml:
                        return super().resolve_listing(xml)
                    return xml

                def fix_tables(self, xml: str) -> Any:
                    tree = parse_recovering(xml)
                    return tree if tables_fit(tree) else super().fix_tables(xml)

            _CLASS = Template
        return _CLASS


def parse_recovering(xml: str) -> Any:
    """The rendered body parsed as docxtpl's fix_tables parses it."""
    from lxml import etree

    return etree.fromstring(xml, parser=etree.XMLParser(recover=True))


def tables_fit(tree: Any) -> bool:
    """True when docxtpl's fix_tables would change nothing: every table has a grid, at least one
    row, and every row in it (nested ones too, as fix_tables counts them) has exactly as many
    cells as its grid has columns, none spanning columns. fix_tables counts that per row in
    Python (0.1-0.2 s for the exhibits of a 500-case batch); XPath counts it in C."""
    w = tree.nsmap.get("w")
    if w is None:
        return False
    ns, names = "{" + w + "}", {"w": w}
    for table in tree.iter(f"{{{w}}}tbl"):
        grid = table.find(ns + "tblGrid")
        if grid is None:
            return False
        columns = len(grid.findall(ns + "gridCol"))
        if (not table.xpath("count(.//w:tr)", namespaces=names)
                or table.xpath("count(.//w:tr[count(w:tc) != $n])", namespaces=names, n=columns)
                or table.xpath("boolean(.//w:tc/w:tcPr/w:gridSpan)", namespaces=names)):
            return False
    return True


def save(document: Any, path: Path, stamp: datetime) -> None:
    from docx.opc.pkgwriter import PackageWriter

    package = document.part.package
    for part in package.parts:
        part.before_marshal()

    class Entries:
        def __init__(self) -> None:
            self.items: list[tuple[str, bytes]] = []

        def write(self, pack_uri: Any, blob: bytes) -> None:
            self.items.append((pack_uri.membername, blob))

    entries = Entries()
    parts = package.parts
    PackageWriter._write_content_types_stream(entries, parts)
    PackageWriter._write_pkg_rels(entries, package.rels)
    PackageWriter._write_parts(entries, parts)
    write_zip(path, entries.items, stamp)


def write_zip(path: Path, entries: list[tuple[str, bytes]], stamp: datetime) -> None:
    """The entries, in order, deflated, each dated `stamp` (midnight): the same bytes for the same document."""
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(stamp.year, stamp.month, stamp.day, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    tmp.replace(path)


def template_parts(path: Path) -> list[tuple[str, str]]:
    """(part name, Jinja source) of the body, headers and footers of a template, as docxtpl patches them."""
    from docxtpl import DocxTemplate

    tpl = DocxTemplate(str(path))
    tpl.init_docx()
    parts = [("body", tpl.patch_xml(tpl.get_xml()))]
    for rel in tpl.docx.part.rels.values():
        if rel.reltype in (tpl.HEADER_URI, tpl.FOOTER_URI):
            parts.append((rel.target_part.partname.split("/")[-1], tpl.patch_xml(rel.target_part.blob.decode("utf-8"))))
    return parts
