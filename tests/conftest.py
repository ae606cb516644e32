import copy
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.events import Schemas  # noqa: E402
from tools import sample  # noqa: E402


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return Schemas(ROOT / "schemas")


@pytest.fixture
def decision_event():
    """A fresh valid decision CloudEvent (a dict) for each test."""
    import random

    def make(n=1, court="LA", batch_id="LA-B1", relief="dismiss_and_seal", **data):
        ev = sample.decision(random.Random(n), n, court, batch_id, relief)
        ev["data"].update(data)
        return copy.deepcopy(ev)

    return make


def encode(ev) -> bytes:
    return json.dumps(ev, ensure_ascii=False).encode("utf-8")
