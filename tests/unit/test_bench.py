"""tools/bench.py's pure parts: the statewide county, its court folders, throughput over time,
and the conversions of the warm reference (the same calls as the service makes)."""

import pytest

from tools import bench

pytestmark = pytest.mark.unit


def test_statewide_spreads_decisions_over_58_courts_with_la_about_a_quarter():
    events = bench.statewide(6000, 58, seed=3)
    decided = [e for e in events if e["type"].endswith("decided.v1")]
    courts = {e["data"]["court"]["code"] for e in decided}
    assert len(decided) == 6000 and courts == set(bench.statewide_courts(58))
    la = sum(1 for e in decided if e["data"]["court"]["code"] == "LA")
    assert 0.22 < la / 6000 < 0.28
    closed = [e["data"] for e in events if e["type"].endswith("closed.v1")]
    assert sum(c["expected_count"] for c in closed) == la  # every LA batch is closed, with its count
    assert all(e["data"].get("batch_id") is None for e in decided if e["data"]["court"]["code"] != "LA")


def test_every_statewide_court_gets_a_templates_folder(tmp_path):
    from service.render import Court, Courts

    root = bench.court_templates(bench.statewide_courts(58), tmp_path)
    courts = Courts(root)
    assert all(courts.known(code) for code in bench.statewide_courts(58))
    assert Court(root, "C07").settings["short_name"] == "County C07"
    assert Court(root, "LA").settings["short_name"] == "Los Angeles"  # the real courts keep theirs


def test_throughput_by_tenth_and_last_against_first():
    history = [(float(t), 10.0 * t) for t in range(0, 101)]  # 10 decisions a second, steadily
    t = bench.over_time(history, 0.0, 100.0)
    assert t["decisions_per_second_by_tenth"] == [10.0] * 10 and t["last_to_first_tenth"] == 1.0
    slowing = [(float(t), 10.0 * t if t <= 50 else 500 + 5.0 * (t - 50)) for t in range(0, 101)]
    assert bench.over_time(slowing, 0.0, 100.0)["last_to_first_tenth"] == 0.5


def test_the_warm_reference_converts_as_the_service_does(tmp_path):
    events = bench.county(120, seed=4)
    (batch,) = bench.reference_batches(events, 1, tmp_path)
    calls = bench.service_conversions(batch, tmp_path)
    combined = [docx for docx, marks in calls if marks]
    assert len(combined) == 2 and all(len(c) == 1 for c in combined)  # sealed papers as one, public as another
    motion = [d for d, _ in batch if d.role == "motion"]
    assert calls[-1] == ([p for d, p in batch if d.role == "motion"], False) and len(motion) == 1


def test_worker_rss_by_tenth():
    history = [(float(t), 10.0 * t) for t in range(0, 101)]
    rss = [(float(t), (100 + t) * 2**20) for t in range(0, 101)]
    t = bench.over_time(history, 0.0, 100.0, rss)
    assert t["peak_worker_rss_mib_by_tenth"] == [109, 119, 129, 139, 149, 159, 169, 179, 189, 199]
    assert "peak_worker_rss_mib_by_tenth" not in bench.over_time(history, 0.0, 100.0)
