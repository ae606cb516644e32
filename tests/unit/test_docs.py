"""The configuration reference and the schemas agree with the code."""

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from tools.gen_docs import configuration_md

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current():
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == configuration_md(), \
        "run: python -m tools.gen_docs"


def test_schemas_are_valid_2020_12():
    for p in (ROOT / "schemas").glob("*.schema.json"):
        Draft202012Validator.check_schema(json.loads(p.read_text()))


def test_readme_names_every_dlq_reason():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    from service.errors import DLQ_REASONS

    for reason in DLQ_REASONS:
        assert f"`{reason}`" in readme, reason
