"""The dashboard and the alerts use only metrics the worker exports, and every alert has a
runbook entry."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def exported() -> set[str]:
    text = generate_latest(Metrics().registry).decode()
    names = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    return names | {n + s for n in names for s in ("_total", "_bucket", "_sum", "_count")}


def used(expr: str) -> set[str]:
    return set(re.findall(r"\b(reliefdocs_\w+)", expr))


def test_dashboard_uses_exported_metrics():
    dash = json.loads((ROOT / "deploy/grafana/dashboards/reliefdocs.json").read_text())
    names = exported()
    for panel in dash["panels"]:
        for t in panel["targets"]:
            assert used(t["expr"]) <= names, (panel["title"], used(t["expr"]) - names)


def test_alerts_use_exported_metrics_and_have_runbook_entries():
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    runbook = (ROOT / "docs/runbook.md").read_text()
    names = exported()
    for r in rules:
        assert used(r["expr"]) <= names, (r["alert"], used(r["expr"]) - names)
        assert f"## {r['alert']}" in runbook, r["alert"]
        assert r["annotations"]["runbook_url"].endswith("#" + r["alert"].lower())
