"""The manifest of a stored bundle (schemas/manifest.v1.schema.json): what was filed, where
each object is and its checksum. Built from the sealed batch, its planned papers and the
objects stored, so the same batch gives the same bytes; written last (service/flush.py).
"""

from __future__ import annotations

import json
from typing import Any

from service import __version__
from service.batching import SealedBatch
from service.bundle import Output
from service.papers import BY_ROLE, VARIANTS
from service.render import Document


def entry(output: Output, key: str, digest: str) -> dict[str, Any]:
    """One stored object, as the manifest lists it."""
    return {"role": output.role, "key": key, "media_type": output.media_type, "sha256": digest,
            "bytes": output.path.stat().st_size, "pages": output.pages,
            "confidential": output.confidential, "first_page": output.first_page}


def exhibit_letters(sb: SealedBatch, docs: list[Document]) -> dict[str, str | None]:
    """decision_id -> the letter of the complete exhibit that lists it (None if none does)."""
    letters: dict[str, str | None] = {d.decision_id: None for d in sb.decisions}
    for doc in docs:
        if doc.kind.is_exhibit and doc.kind.confidential:
            for chunk in doc.context["exhibit"]["chunks"]:
                for row in chunk:
                    letters[row["decision_id"]] = doc.letter
    return letters


def efiling(docs: list[Document], stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The papers as an e-filing system takes them, in order of submission: each paper's PDF
    with its e-filing document type, title, pages (numbered from 1) and `confidential`; the
    proposed order's editable DOCX (CRC 3.1312) as its `editable_key`."""
    titles = {d.role: d.title for d in docs if d.kind.leads}
    editable = {e["role"]: e["key"] for e in stored if e["media_type"] != "application/pdf"}
    papers = []
    for e in stored:
        kind = BY_ROLE.get(e["role"])
        if kind is None or not kind.leads or e["media_type"] != "application/pdf":
            continue
        paper = {"type": kind.efiling_type, "role": e["role"], "title": titles.get(e["role"], kind.title),
                 "key": e["key"], "pages": e["pages"], "first_page": 1, "confidential": e["confidential"]}
        if e["role"] in editable:
            paper["editable_key"] = editable[e["role"]]
        papers.append(paper)
    return papers


def build(sb: SealedBatch, bundle_id: str, docs: list[Document], stored: list[dict[str, Any]],
          templates: list[dict[str, str]]) -> dict[str, Any]:
    """stored: entry() of each object, bundles first; templates: render.template_digests."""
    letters = exhibit_letters(sb, docs)
    return {
        "bundle_id": bundle_id, "court_code": sb.court_code, "batch_id": sb.batch_id, "volume": sb.volume,
        "created_at": sb.created_at, "generator": {"name": "reliefdocs", "version": __version__},
        "decisions": [{"decision_id": d.decision_id, "case_number": d.data["case"]["number"], "relief": d.relief,
                       "exhibit": letters.get(d.decision_id)} for d in sb.decisions],
        "documents": stored,
        "efiling": efiling(docs, stored),
        "templates": templates,
        "expected_count": sb.expected_count,
        "closed_by": sb.closed_by,
        "source": {"partition": sb.partition, "first_offset": sb.first_offset, "closing_offset": sb.closing_offset},
    }


def encode(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")


def bundle_pages(manifest: dict[str, Any]) -> int:
    """The pages of the complete bundle (of the first bundle stored, if a court files no complete one)."""
    bundles = [d for d in manifest["documents"] if d["role"] in {v.role for v in VARIANTS}]
    complete = [d for d in bundles if d["role"] == VARIANTS[0].role] or bundles
    return (complete[0].get("pages") or 0) if complete else 0
