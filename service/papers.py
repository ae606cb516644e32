"""The papers of a filing, as data: one row per kind of paper.

Everything that depends on the kind of a paper reads this table: render.plan (which papers,
in which order, their titles, footers and context), bundle (bookmarks, which bundle each
paper goes to), flush (the formats stored), ops.verify (the bookmarks each bundle must
have), `reliefdocs preview --template`, `reliefdocs templates check`, tools/make_templates.py
and the role enum of schemas/manifest.v1.schema.json (tests/unit/test_papers.py keeps it equal).
A new kind of paper is one row here and its template in templates/default/.

Titles, footers and bookmarks of a paper made once per exhibit (per_exhibit) are formats
with the fields `letter` (A, B, C), `relief` ("Dismissal and Sealing"), `RELIEF` (the same in
capitals), `count` (its number of cases) and `cases` ("case" or "cases").

Redaction is by data: a paper with `public_context` is rendered from rows without the
personal fields (PERSONAL: the keys are absent, not empty), so a public template that asks
for a name fails `reliefdocs templates check` instead of printing it.
"""

from __future__ import annotations

from dataclasses import dataclass

BUNDLE, BUNDLE_PUBLIC, ALONE = "bundle", "bundle_public", "alone"
PERSONAL = ("name", "date_of_birth", "cii")  # row fields a public paper never gets


@dataclass(frozen=True)
class Kind:
    role: str  # the manifest's role of the paper's PDF (and of its other formats)
    template: str  # templates/default/<template>.docx, overridable per court
    stem: str  # file name without extension; "{letter}" is the lower-case letter of a per_exhibit paper
    title: str  # the full title (caption, PDF metadata, the proof of service's list)
    footer: str  # the footer title (CRC 2.110)
    bookmark: str  # its bookmark in the bundles
    confidential: bool  # names people: lodged conditionally under seal, never in the public bundle
    public_context: bool  # rendered without the personal fields of its rows
    outputs: frozenset[str]  # BUNDLE, BUNDLE_PUBLIC, ALONE (a PDF of its own)
    per_exhibit: bool = False  # one per relief present (exhibit A, B, C), with `exhibit` in its context
    with_cases: bool = False  # gets `cases`: every row of the batch
    lists_served: bool = False  # gets `documents`: the papers served (those in the complete bundle)
    formats: tuple[str, ...] = ("pdf",)  # stored formats; "docx" also stores the rendered DOCX
    by_default: bool = True  # in a court's papers when its court.json has no "documents"
    switch: str | None = None  # a court.json key that, when true, adds this paper

    @property
    def is_exhibit(self) -> bool:
        return self.per_exhibit

    @property
    def is_public(self) -> bool:
        return BUNDLE_PUBLIC in self.outputs

    def goes_to(self, output: str) -> bool:
        return output in self.outputs

    def name(self, letter: str | None = None) -> str:
        return self.stem.format(letter=(letter or "").lower())

    def text(self, which: str, letter: str | None = None, relief: str = "", count: int = 0) -> str:
        """The kind's title, footer or bookmark, filled in for one exhibit."""
        form = getattr(self, which)
        if not self.per_exhibit:
            return form
        return form.format(letter=letter, relief=relief, RELIEF=relief.upper(), count=count,
                           cases="case" if count == 1 else "cases")


_MOTION_ACT = "(HS 11361.8, 11361.9)"
_ORDER_FOOTER = f"[PROPOSED] ORDER GRANTING RELIEF {_MOTION_ACT}"
_EXHIBIT_TITLE = "EXHIBIT {letter}: CASES FOR {RELIEF}"
_EXHIBIT_BOOKMARK = "Exhibit {letter}: Cases for {relief}, {count} {cases}"

KINDS: tuple[Kind, ...] = (
    Kind("motion", "motion", "motion",
         "NOTICE OF MOTION AND MOTION FOR RELIEF UNDER HEALTH AND SAFETY CODE SECTIONS 11361.8 AND 11361.9; "
         "MEMORANDUM OF POINTS AND AUTHORITIES",
         f"NOTICE OF MOTION AND MOTION FOR RELIEF {_MOTION_ACT}",
         "Notice of Motion and Motion; Memorandum of Points and Authorities",
         confidential=False, public_context=True, outputs=frozenset({BUNDLE, BUNDLE_PUBLIC, ALONE})),
    Kind("order", "order", "order",
         "[PROPOSED] ORDER GRANTING RELIEF UNDER HEALTH AND SAFETY CODE SECTIONS 11361.8 AND 11361.9",
         _ORDER_FOOTER, "[Proposed] Order",
         confidential=False, public_context=True, outputs=frozenset({BUNDLE, BUNDLE_PUBLIC, ALONE}),
         formats=("pdf", "docx")),  # the court edits and signs it (CRC 3.1312)
    Kind("exhibit", "exhibit", "exhibit-{letter}", _EXHIBIT_TITLE,
         "EXHIBIT {letter} (CONDITIONALLY UNDER SEAL)", _EXHIBIT_BOOKMARK + " (conditionally under seal)",
         confidential=True, public_context=False, outputs=frozenset({BUNDLE, ALONE}), per_exhibit=True),
    Kind("exhibit_public", "exhibit_public", "exhibit-{letter}-public", _EXHIBIT_TITLE + " (PUBLIC REDACTED VERSION)",
         "EXHIBIT {letter} (PUBLIC REDACTED VERSION)", _EXHIBIT_BOOKMARK + " (public redacted version)",
         confidential=False, public_context=True, outputs=frozenset({BUNDLE_PUBLIC, ALONE}), per_exhibit=True),
    Kind("case_order", "case_order", "case-orders", "[PROPOSED] ORDER GRANTING RELIEF IN AN INDIVIDUAL CASE",
         _ORDER_FOOTER, "[Proposed] Orders in Individual Cases",
         confidential=True, public_context=False, outputs=frozenset({BUNDLE, ALONE}), with_cases=True,
         by_default=False, switch="case_orders"),
    Kind("proof_of_service", "proof_of_service", "proof-of-service", "PROOF OF SERVICE", "PROOF OF SERVICE",
         "Proof of Service",
         confidential=False, public_context=True, outputs=frozenset({BUNDLE, BUNDLE_PUBLIC, ALONE}),
         lists_served=True),
)
BY_ROLE = {k.role: k for k in KINDS}
BY_TEMPLATE = {k.template: k for k in KINDS}
TEMPLATES = tuple(k.template for k in KINDS)


@dataclass(frozen=True)
class Variant:
    """One of the two bundles: the complete filing, and the public filing."""

    role: str
    file: str
    confidential: bool
    title: str  # "{label}" is the batch's label


VARIANTS = (
    Variant(BUNDLE, "bundle.pdf", True, "{label}: complete filing"),
    Variant(BUNDLE_PUBLIC, "bundle-public.pdf", False, "{label}: public filing (redacted exhibits)"),
)
ROLES = tuple(v.role for v in VARIANTS) + tuple(k.role for k in KINDS)  # every role a manifest may hold


def in_variant(role: str) -> tuple[str, ...]:
    """The roles of the papers a bundle variant holds (one bookmark each)."""
    return tuple(k.role for k in KINDS if k.goes_to(role))


def default_documents() -> list[str]:
    return [k.template for k in KINDS if k.by_default]


def check(kinds: tuple[Kind, ...] = KINDS) -> list[str]:
    """What is wrong with the table (empty when nothing): each rule protects the redaction."""
    problems = []
    for k in kinds:
        if k.goes_to(BUNDLE_PUBLIC) and (k.confidential or not k.public_context):
            problems.append(f"{k.role}: goes to the public bundle, so it must be public and have a public context")
        if not k.confidential and not k.public_context:
            problems.append(f"{k.role}: not confidential, so it must be rendered from the public context")
        if k.per_exhibit != ("{letter}" in k.stem):
            problems.append(f"{k.role}: a per-exhibit paper, and only one, has {{letter}} in its file name")
    for field in ("role", "template", "stem"):
        values = [getattr(k, field) for k in kinds]
        if len(set(values)) != len(values):
            problems.append(f"two kinds have the same {field}")
    return problems


if check():
    raise ValueError("service/papers.py: " + "; ".join(check()))
