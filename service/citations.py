"""The citations the default papers may make, each with the source its sentence was checked
against (docs/templates.md, "Where each sentence of law comes from"). The e2e tests read every
citation out of the filed motion and order (find()) and require it to be one of these: a
citation added to a template without checking its source fails them.
"""

from __future__ import annotations

import re

CITATIONS = {
    "Health & Saf. Code, § 11361.8": "AB 1793 and AB 1706, Legislative Counsel's digests (existing law: petition for "
                                     "recall or dismissal of sentence, dismissal and sealing, or redesignation); "
                                     "People v. Samra (2018), on section 11361.8 redesignation",
    "Health & Saf. Code, § 11361.9": "AB 1793 (Stats. 2018, ch. 993), chaptered text and digest; AB 1706 "
                                     "(Stats. 2022, ch. 387), enrolled text and digest",
    "Health & Saf. Code, §§ 11361.8, 11361.9": "as the two above",
    "Cal. Rules of Court, rule 2.550(d)": "rule 2.550 (courts.ca.gov / casetext, as amended through 2024): the five findings",
    "Cal. Rules of Court, rule 2.550(e)(1)": "rule 2.550(e)(1): the order states the facts and seals only those documents",
    "Cal. Rules of Court, rules 2.550(b)(3), 2.551(b)(1)": "rule 2.550(b)(3) (a lodged record is not filed); "
                                                           "rule 2.551(b)(1) (motion, memorandum, declaration)",
    "Cal. Rules of Court, rule 2.551(b)(1)": "rule 2.551 (courts.ca.gov, 2024 rules)",
    "Cal. Rules of Court, rule 2.551(a), (b)(1)": "rule 2.551 (courts.ca.gov, 2024 rules)",
    "Cal. Rules of Court, rules 2.550, 2.551": "rules 2.550-2.551 (courts.ca.gov, 2024 rules): sealed records; "
                                               "the exhibit notices",
    "Cal. Rules of Court, rule 2.551(b)(2)": "rule 2.551(b)(2) (courts.ca.gov, 2024 rules): who is served which version",
}
_CITE = re.compile(r"\((?:Health & Saf\. Code|Cal\. Rules of Court), [^()]*(?:\([^()]*\)[^()]*)*\)")


def prose(layout_text: str) -> str:
    """A pleading's text as `pdftotext -layout` gives it, without the line numbers of the
    pleading paper (a number opening a line), whitespace as one space."""
    text = " ".join(re.sub(r"^\s*\d{1,2}(?=\s|$)", "", line) for line in layout_text.splitlines())
    return " ".join(text.split())


def find(layout_text: str) -> list[str]:
    """Every parenthesised citation in a paper's text, as `pdftotext -layout` gives it."""
    text = prose(layout_text)
    return [m.group(0)[1:-1].rstrip(".") for m in _CITE.finditer(text)]
