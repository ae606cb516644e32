"""The `reliefdocs` command. Every option also reads its RELIEFDOCS_* environment variable
(flags win). Exit codes: 0 success, 2 bad usage or configuration (naming the setting),
anything else a failure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service import __version__, papers
from service import config as cfg
from service.errors import ConfigError


def _add_settings(p: argparse.ArgumentParser, command: str) -> None:
    for s in cfg.SETTINGS:
        if command in s.commands:
            p.add_argument(s.flag, dest=s.name, default=None, metavar=s.name.upper(),
                           help=f"{s.help} [env {s.env}; default {s.default}]")
    p.add_argument("--bootstrap-servers", dest="bootstrap_servers", default=None,
                   help="Kafka brokers, comma-separated [env RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS; default 127.0.0.1:9092]")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reliefdocs", description="Eligibility decisions in, court-ready filing bundles out.")
    p.add_argument("--version", action="version", version=f"reliefdocs {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="consume, batch, render, bundle, store, notify")
    _add_settings(w, "worker")
    pub = sub.add_parser("publish", help="publish CloudEvents from a JSON-lines file, keyed by court code")
    pub.add_argument("file", type=Path)
    pub.add_argument("--binary", action="store_true", help="use the CloudEvents binary content mode")
    _add_settings(pub, "publish")
    t = sub.add_parser("templates", help="tools for template authors")
    tsub = t.add_subparsers(dest="templates_command", required=True)
    chk = tsub.add_parser("check", help="every template compiles and uses only known fields")
    _add_settings(chk, "templates")
    pv = sub.add_parser("preview", help="render a PDF from a template and a sample events file, to look at")
    pv.add_argument("events", type=Path, help="JSON lines of relief.eligibility.decided.v1 CloudEvents (one court)")
    pv.add_argument("--template", choices=papers.TEMPLATES, help="one template (default: the whole bundle)")
    pv.add_argument("--out", type=Path, default=Path("preview.pdf"), help="the PDF to write (default preview.pdf)")
    _add_settings(pv, "preview")
    lg = sub.add_parser("lag", help="per partition: committed offset, end offset, lag and member (like kafka-consumer-groups --describe)")
    lg.add_argument("--json", action="store_true")
    _add_settings(lg, "lag")
    dlq = sub.add_parser("dlq", help="dead letters: list them, replay them after a fix")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True)
    dl = dsub.add_parser("list", help="reasons, counts and examples (positions and messages, never content)")
    dl.add_argument("--json", action="store_true")
    dl.add_argument("--examples", type=int, default=3)
    _add_settings(dl, "dlq")
    dr = dsub.add_parser("replay", help="re-publish chosen dead letters, once per record, to their source topic; "
                                        "a second run replays only what is new")
    dr.add_argument("--reason", action="append", default=[],
                    help="replay new dead letters with this reason (repeatable)")
    dr.add_argument("--position", action="append", default=[], metavar="PARTITION:OFFSET",
                    help="replay this dead letter (DLQ position, repeatable) even if replayed before or "
                         "RELIEFDOCS_DLQ_MAX_REPLAYS times; records nothing")
    dr.add_argument("--all", action="store_true", help="replay every new dead letter")
    dr.add_argument("--dry-run", action="store_true", help="show what would be replayed, send and record nothing")
    dr.add_argument("--to", metavar="TOPIC", help="replay to this topic instead of each record's source topic")
    _add_settings(dr, "dlq")
    _campaign_parsers(sub)
    vf = sub.add_parser("verify", help="check a stored bundle: objects present, checksums, pages, bookmarks")
    vf.add_argument("manifest_uri")
    _add_settings(vf, "verify")
    return p


def _campaign_parsers(sub) -> None:
    rc = sub.add_parser("reconcile", help="account for every decision of the campaign: filed, pending, not filed, "
                                          "dead-lettered; exit 1 naming what is missing or doubled")
    rp = sub.add_parser("report", help="the same accounting as one self-contained HTML page (charts, CSV)")
    for p in (rc, rp):
        p.add_argument("--since", metavar="TIME", help="only records from this log time (ISO 8601); default: the beginning")
        p.add_argument("--until", metavar="TIME", help="only records before this log time (ISO 8601); default: the end")
        _add_settings(p, p.prog.split()[-1])
    rc.add_argument("--json", action="store_true", help="per court and in total, with the decision ids of every problem")
    rp.add_argument("--out", type=Path, default=Path("reconciliation.html"), help="the page to write")
    fd = sub.add_parser("find", help="where a decision is filed (bundle, paper, page, manifest), or why it is not")
    fd.add_argument("decision_id", nargs="?")
    fd.add_argument("--case", metavar="CASE_NUMBER", help="find by case number instead")
    fd.add_argument("--json", action="store_true")
    _add_settings(fd, "find")


def _campaign(args: argparse.Namespace) -> int:
    from service import campaign

    settings = cfg.load(overrides=_overrides(args), required=("storage_url",))
    if args.command == "find":
        from service import find

        if bool(args.decision_id) == bool(args.case):
            raise ConfigError("DECISION_ID/--case", "give a decision id or --case CASE_NUMBER (one of them)")
        return find.find(settings, args.decision_id, args.case, as_json=args.json)
    rng = campaign.Range(campaign.parse_time("--since", args.since), campaign.parse_time("--until", args.until))
    if args.command == "reconcile":
        return campaign.reconcile_command(settings, args.json, rng)
    return campaign.report_command(settings, args.out, rng)


def _overrides(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if v is not None and (k in cfg.BY_NAME or k == "bootstrap_servers")}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "worker":
            settings = cfg.load(overrides=_overrides(args), required=("storage_url",))
            from service import logs, worker

            logs.setup(settings.log_level)
            return worker.run(settings)
        if args.command == "publish":
            settings = cfg.load(overrides=_overrides(args))
            from service import publish

            if not args.file.is_file():
                raise ConfigError("FILE", f"{args.file} does not exist")
            try:
                return publish.publish(settings, args.file, binary=args.binary)
            except publish.BadLine as exc:
                print(f"reliefdocs publish: {exc}; nothing was published", file=sys.stderr)
                return 1
        if args.command == "templates":
            settings = cfg.load(overrides=_overrides(args))
            from service import templates

            return templates.check(settings, out=sys.stdout)
        if args.command == "preview":
            settings = cfg.load(overrides=_overrides(args))
            from service import templates

            if not args.events.is_file():
                raise ConfigError("EVENTS", f"{args.events} does not exist")
            return templates.preview(settings, args.events, args.out, args.template)
        if args.command == "lag":
            from service import ops

            return ops.lag(cfg.load(overrides=_overrides(args)), as_json=args.json)
        if args.command == "dlq":
            from service import dlq

            settings = cfg.load(overrides=_overrides(args))
            if args.dlq_command == "list":
                return dlq.dlq_list(settings, as_json=args.json, examples=args.examples)
            if not (args.reason or args.position or args.all):
                raise ConfigError("--reason/--position/--all", "say which dead letters to replay")
            return dlq.dlq_replay(settings, args.reason, args.position, args.dry_run, to=args.to)
        if args.command in ("reconcile", "report", "find"):
            return _campaign(args)
        if args.command == "verify":
            from service import ops

            return ops.verify(cfg.load(overrides=_overrides(args)), args.manifest_uri)
    except ConfigError as exc:
        print(f"reliefdocs: configuration error: {exc}", file=sys.stderr)
        return 2
    return 2
