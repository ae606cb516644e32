"""The papers of a filing, as data: one row per kind of paper.

Everything that depends on the kind of a paper reads this table: render.plan (which papers,
in which order, their titles, footers and context), bundle (bookmarks, which filed paper each
part goes to), flush (the formats stored), manifest (the e-filing list), ops.verify (the
bookmarks each bundle must have), `reliefdocs preview --template`, `reliefdocs templates
check`, tools/make_templates.py and the role enum of schemas/manifest.v1.schema.json
(tests/unit/test_papers.py keeps it equal). A new kind of paper is one row here and its
template in templates/default/.

A kind is a PART; parts are filed as PAPERS (one e-filing document each, one PDF numbered
from its own page 1, CRC 3.1110(c)). A paper is led by the kind whose `filed_in` is its own
role, and holds the kinds whose `filed_in` names it, in the table's order: the motion holds
the declaration and the public redacted exhibits (the lead document); the record lodged
conditionally under seal holds its cover page and the complete exhibits (CRC 2.551(d)); the
proposed order and the proof of service are papers of their own. The table's order of the
leaders is the order of submission.

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
    filed_in: str  # the role of the paper (e-filing document) this part is filed in: its own when it leads one
    per_exhibit: bool = False  # one per relief present (exhibit A, B, C), with `exhibit` in its context
    with_cases: bool = False  # gets `cases`: every row of the batch
    lists_served: bool = False  # gets `documents`: the papers served (those in the complete bundle)
    formats: tuple[str, ...] = ("pdf",)  # stored formats; "docx" also stores the rendered DOCX
    by_default: bool = True  # in a court's papers when its court.json has no "documents"
    switch: str | None = None  # a court.json key that, when true, adds this paper
    efiling_type: str = ""  # a paper's leader: its e-filing document type (the manifest's efiling list)

    @property
    def is_exhibit(self) -> bool:
        return self.per_exhibit

    @property
    def leads(self) -> bool:
        """This part begins a paper of its own (and names it)."""
        return self.filed_in == self.role

    @property
    def is_public(self) -> bool:
        return not BY_ROLE[self.filed_in].confidential

    def goes_to(self, output: str) -> bool:
        """BUNDLE (the office's complete review copy): every part; BUNDLE_PUBLIC: the parts of
        the papers filed publicly; ALONE: a paper's leader (its paper is a PDF of its own)."""
        if output == BUNDLE:
            return True
        if output == BUNDLE_PUBLIC:
            return self.is_public
        return self.leads

    def name(self, letter: str | None = None) -> str:
        return self.stem.format(letter=(letter or "").lower())

    def text(self, which: str, letter: str | None = None, relief: str = "", count: int = 0) -> str:
        """The kind's title, footer or bookmark, filled in for one exhibit."""
        form = getattr(self, which)
        if not self.per_exhibit:
            return form
        return form.format(letter=letter, relief=relief, RELIEF=relief.upper(), count=count,
                           cases="case" if count == 1 else "cases")


_MOTION_ACT = "(HEALTH & SAF. CODE, \u00a7\u00a7 11361.8, 11361.9)"
_ORDER_FOOTER = f"[PROPOSED] ORDER GRANTING RELIEF {_MOTION_ACT}"
_EXHIBIT_TITLE = "EXHIBIT {letter}: CASES FOR {RELIEF}"
_EXHIBIT_BOOKMARK = "Exhibit {letter}: Cases for {relief}, {count} {cases}"
LEAD, PROPOSED_ORDER, PROOF, LODGED = ("lead_document", "proposed_order", "proof_of_service",
                                       "lodged_conditionally_under_seal")

KINDS: tuple[Kind, ...] = (
    Kind("motion", "motion", "motion",
         "NOTICE OF MOTION AND MOTION FOR RELIEF UNDER HEALTH AND SAFETY CODE SECTIONS 11361.8 AND 11361.9, "
         "AND TO SEAL THE RECORD LODGED CONDITIONALLY UNDER SEAL; MEMORANDUM OF POINTS AND AUTHORITIES; "
         "DECLARATION; EXHIBITS (PUBLIC REDACTED VERSIONS)",
         f"NOTICE OF MOTION AND MOTION FOR RELIEF {_MOTION_ACT}",
         "Notice of Motion and Motion; Memorandum of Points and Authorities; Index of Exhibits",
         confidential=False, public_context=True, filed_in="motion", efiling_type=LEAD),
    Kind("declaration", "declaration", "declaration",
         "DECLARATION IN SUPPORT OF THE MOTION FOR RELIEF AND TO SEAL",
         "DECLARATION IN SUPPORT OF THE MOTION FOR RELIEF AND TO SEAL", "Declaration in Support of the Motion",
         confidential=False, public_context=True, filed_in="motion"),
    Kind("exhibit_public", "exhibit_public", "exhibit-{letter}-public", _EXHIBIT_TITLE + " (PUBLIC REDACTED VERSION)",
         "EXHIBIT {letter} (PUBLIC REDACTED VERSION)", _EXHIBIT_BOOKMARK + " (public redacted version)",
         confidential=False, public_context=True, filed_in="motion", per_exhibit=True),
    Kind("order", "order", "order",
         "[PROPOSED] ORDER GRANTING RELIEF UNDER HEALTH AND SAFETY CODE SECTIONS 11361.8 AND 11361.9 AND "
         "SEALING THE RECORD LODGED CONDITIONALLY UNDER SEAL",
         _ORDER_FOOTER, "[Proposed] Order",
         confidential=False, public_context=True, filed_in="order", efiling_type=PROPOSED_ORDER,
         formats=("pdf", "docx")),  # the court edits and signs it (CRC 3.1312)
    Kind("lodged_record", "lodged_record", "lodged-under-seal",
         "RECORD LODGED CONDITIONALLY UNDER SEAL: COMPLETE EXHIBITS TO THE MOTION FOR RELIEF",
         "RECORD LODGED CONDITIONALLY UNDER SEAL", "Record Lodged Conditionally Under Seal",
         confidential=True, public_context=True, filed_in="lodged_record", efiling_type=LODGED),
    Kind("exhibit", "exhibit", "exhibit-{letter}", _EXHIBIT_TITLE,
         "EXHIBIT {letter} (CONDITIONALLY UNDER SEAL)", _EXHIBIT_BOOKMARK + " (conditionally under seal)",
         confidential=True, public_context=False, filed_in="lodged_record", per_exhibit=True),
    Kind("case_order", "case_order", "case-orders", "[PROPOSED] ORDER GRANTING RELIEF IN AN INDIVIDUAL CASE",
         _ORDER_FOOTER, "[Proposed] Orders in Individual Cases",
         confidential=True, public_context=False, filed_in="case_order", efiling_type=PROPOSED_ORDER,
         with_cases=True,
         by_default=False, switch="case_orders"),
    Kind("proof_of_service", "proof_of_service", "proof-of-service", "PROOF OF SERVICE", "PROOF OF SERVICE",
         "Proof of Service",
         confidential=False, public_context=True, filed_in="proof_of_service", efiling_type=PROOF,
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
    Variant(BUNDLE, "bundle.pdf", True, "{label}: the office's complete review copy (confidential)"),
    Variant(BUNDLE_PUBLIC, "bundle-public.pdf", False, "{label}: the papers filed publicly"),
)
ROLES = tuple(v.role for v in VARIANTS) + tuple(k.role for k in KINDS)  # every role a manifest may hold


def in_variant(role: str) -> tuple[str, ...]:
    """The roles of the papers a bundle variant holds (one top-level bookmark each)."""
    return tuple(k.role for k in KINDS if k.leads and k.goes_to(role))


def leaders() -> tuple[Kind, ...]:
    """The kinds that begin a paper, in the order of submission."""
    return tuple(k for k in KINDS if k.leads)


def default_documents() -> list[str]:
    return [k.template for k in KINDS if k.by_default]


def check(kinds: tuple[Kind, ...] = KINDS) -> list[str]:
    """What is wrong with the table (empty when nothing): each rule protects the redaction."""
    problems = []
    by_role = {k.role: k for k in kinds}
    for k in kinds:
        paper = by_role.get(k.filed_in)
        if paper is None or not paper.leads:
            problems.append(f"{k.role}: filed in {k.filed_in}, which is not a paper of the table")
            continue
        if not paper.confidential and (k.confidential or not k.public_context):
            problems.append(f"{k.role}: goes to the public paper {paper.role}, so it must be public and have a "
                            "public context")
        if k.leads != bool(k.efiling_type):
            problems.append(f"{k.role}: a paper's leader, and only one, has an e-filing document type")
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
