"""The configuration reference and the schemas agree with the code."""

import json
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


def test_readme_names_every_dlq_reason():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    from service.errors import DLQ_REASONS

    for reason in DLQ_REASONS:
        assert f"`{reason}`" in readme, reason
