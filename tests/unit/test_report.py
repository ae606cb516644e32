"""The report page (service/report.py), from a plain accounting: every table and chart, its CSV,
everything escaped, no script and nothing fetched. (It is opened in Chromium in tests/e2e.)"""

import re
from urllib.parse import unquote

from service.reconcile import Bundle, Letter, Read, account
from service.report import html_page


def sample_accounting():
    reads = [Read(0, i, 0, "LA", "decision", f"d{i}", "dismiss_and_seal", "B<1>", ("felony",)) for i in range(4)]
    reads += [Read(0, 4, 0, "SF", "decision", "n1", "not_eligible", None, ("misdemeanor",)),
              Read(0, 5, 0, "LA", "unreadable"), Read(0, 6, 0, "LA", "closed", batch_id="B<1>", expected_count=5)]
    letters = [Letter("t:0:5", (0, 5), "invalid_json", "record value is not JSON", "LA")]
    bundles = [Bundle("B1", "LA", "B<1>", 1, "2026-11-24T10:00:00Z", "k", (("d0", "dismiss_and_seal", "A"),
                                                                           ("d1", "dismiss_and_seal", "A")))]
    return account(reads, letters, {0: 3}, bundles, [])


def test_the_page_has_every_section_chart_and_csv():
    page = html_page(sample_accounting())
    for section in ("Per court", "Per relief type", "Per count level", "Filed over time", "Dead letters by reason",
                    "Batches whose expected count differed", "Problems", "Pending"):
        assert f"<h2>{section}</h2>" in page
    assert page.count("<svg") == 5 and page.count('class="bar"') >= 6
    csvs = re.findall(r'download="([^"]+)" href="data:text/csv;charset=utf-8,([^"]*)"', page)
    assert [n for n, _ in csvs] == ["courts.csv", "reliefs.csv", "levels.csv", "filed_over_time.csv",
                                    "dead_letters.csv", "expected_counts.csv", "problems.csv", "pending.csv"]
    courts = unquote(dict(csvs)["courts.csv"]).splitlines()
    assert courts[0].startswith("court,received,granted,filed,pending") and courts[-1].startswith("total,")
    assert "missing,LA,d2" in unquote(dict(csvs)["problems.csv"])
    assert "FAILED" in page and "expected_absent" in page


def test_everything_is_escaped_and_nothing_runs_or_is_fetched():
    page = html_page(sample_accounting())
    assert "B&lt;1&gt;" in page and "B<1>" not in page.replace("%3C", "")
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "default-src 'none'" in page


def test_an_empty_campaign_still_renders():
    page = html_page(account([], [], {}, [], []))
    assert "OK: every decision is accounted for" in page and "No dead letters" in page
