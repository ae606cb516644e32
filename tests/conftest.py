import copy
import random

import pytest

from service.events import Schemas
from tests.helpers import ROOT
from tools import sample


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return Schemas(ROOT / "schemas")


@pytest.fixture
def decision_event():
    """A fresh valid decision CloudEvent (a dict) for each test."""

    def make(n=1, court="LA", batch_id="LA-B1", relief="dismiss_and_seal", **data):
        ev = sample.decision(random.Random(n), n, court, batch_id, relief)
        ev["data"].update(data)
        return copy.deepcopy(ev)

    return make
