"""Generate docs/configuration.md from the settings table in service/config.py
(`python -m tools.gen_docs`); a test keeps the two equal."""

from __future__ import annotations

from pathlib import Path

from service.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def configuration_md() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `service/config.py` by `python -m tools.gen_docs`; a test fails if this page and the code",
        "disagree. Every setting is an environment variable and, for the commands that use it, a flag of the same",
        "name (`RELIEFDOCS_BATCH_MAX_CASES` is `--batch-max-cases`); a flag wins over the variable. A bad value",
        "exits 2 with a message naming the variable or flag.",
        "",
        "| variable | flag | default | commands | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        default = "(none)" if s.default is None else f"`{s.default}`"
        if s.name in ("templates_dir", "schemas_dir"):
            default = f"`<repo>/{s.name.split('_')[0]}`"
        if s.name == "converters":
            default = "number of CPUs, at most 2"
        lines.append(f"| `{s.env}` | `{s.flag}` | {default} | {', '.join(s.commands)} | {s.help} |")
    lines += [
        "",
        "## Kafka client settings",
        "",
        "Any kafka-python client setting can be given as `RELIEFDOCS_KAFKA_<SETTING>` (upper case), for example",
        "`RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS=b1:9092,b2:9092` (default `127.0.0.1:9092`),",
        "`RELIEFDOCS_KAFKA_SESSION_TIMEOUT_MS=6000`, `RELIEFDOCS_KAFKA_SECURITY_PROTOCOL=SASL_SSL`,",
        "`RELIEFDOCS_KAFKA_SASL_MECHANISM=SCRAM-SHA-512`, `RELIEFDOCS_KAFKA_SASL_PLAIN_USERNAME`,",
        "`RELIEFDOCS_KAFKA_SASL_PLAIN_PASSWORD`, `RELIEFDOCS_KAFKA_SSL_CAFILE`. The value takes the type of",
        "kafka-python's default for that setting; each client (consumer, producer, admin) gets the settings it knows.",
        "A name kafka-python does not know exits 2.",
        "",
        "## Object storage",
        "",
        "S3 endpoint and credentials come from the standard AWS variables and files (`AWS_ENDPOINT_URL`,",
        "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_PROFILE`, instance",
        "and pod roles), exactly as boto3 reads them.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    (ROOT / "docs" / "configuration.md").write_text(configuration_md(), encoding="utf-8")
    print("wrote docs/configuration.md")
