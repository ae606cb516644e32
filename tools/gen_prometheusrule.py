"""deploy/k8s/prometheusrule.yaml from deploy/prometheus/alerts.yml: the same rules, wrapped in
a PrometheusRule for the Prometheus Operator (tests/unit/test_deploy.py keeps the two equal).

    python -m tools.gen_prometheusrule          # writes the file
    python -m tools.gen_prometheusrule --check  # exit 1 if it is not current
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
TARGET = ROOT / "deploy" / "k8s" / "prometheusrule.yaml"
HEADER = ("# Generated from deploy/prometheus/alerts.yml by `python -m tools.gen_prometheusrule`: edit that\n"
          "# file and run it again. For the Prometheus Operator; the label `release` (or whatever your\n"
          "# Prometheus' ruleSelector matches) may need adjusting.\n")


def rule() -> dict:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "reliefdocs", "namespace": "reliefdocs",
                         "labels": {"app.kubernetes.io/name": "reliefdocs"}},
            "spec": {"groups": groups}}


def render() -> str:
    return HEADER + yaml.safe_dump(rule(), sort_keys=False, allow_unicode=True, width=120)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        return 0 if TARGET.exists() and TARGET.read_text() == text else 1
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
