"""`reliefdocs report`: the campaign's accounting (service/reconcile.py) as one self-contained
HTML page: no script, no network, charts as inline SVG drawn here, each table also as a CSV
link (a data: URI). Only counts and ids (decision, batch, bundle), court codes, reliefs,
conviction levels and dead-letter reasons and messages, which name fields, never values:
no personal data. Every text is escaped (html.escape)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from html import escape
from urllib.parse import quote

from service.reconcile import FAILING, Accounting

COLORS = {"filed": "#2e7d32", "pending": "#f9a825", "missing": "#c62828", "not_filed": "#78909c",
          "dead_lettered": "#6a1b9a", "doubled": "#ad1457", "received": "#1565c0"}
TOTALS = ("received", "granted", "filed", "pending", "not_filed", "dead_lettered", "missing", "doubled",
          "expected_mismatch", "filed_not_granted", "duplicates", "replayed")
STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.ok{color:#2e7d32}.bad{color:#c62828}
.csv{font-size:.85em}svg{display:block;margin:.5em 0}svg text{font:12px system-ui,sans-serif}"""


# -- charts -------------------------------------------------------------------------------------
def stacked_bars(rows: list[tuple[str, dict[str, int]]], segments: tuple[str, ...], title: str) -> str:
    """One horizontal bar per row, its segments stacked, with a legend."""
    width, label_w, bar_h = 780, 170, 22
    top = max([sum(v.get(s, 0) for s in segments) for _, v in rows] + [1])
    scale = (width - label_w - 60) / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{len(rows) * (bar_h + 6) + 40}"><title>{escape(title)}</title>']
    for i, (label, values) in enumerate(rows):
        y, x = 30 + i * (bar_h + 6), label_w
        parts.append(f'<text x="0" y="{y + 15}">{escape(label)}</text>')
        for s in segments:
            w = values.get(s, 0) * scale
            if w > 0:
                parts.append(f'<rect class="bar" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                             f'fill="{COLORS.get(s, "#1565c0")}"><title>{escape(s)}: {values.get(s, 0)}</title></rect>')
                x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}">{sum(values.get(s, 0) for s in segments)}</text>')
    for j, s in enumerate(segments):
        parts.append(f'<rect x="{label_w + j * 120}" y="4" width="12" height="12" fill="{COLORS.get(s, "#1565c0")}"/>'
                     f'<text x="{label_w + j * 120 + 16}" y="15">{escape(s)}</text>')
    return "".join(parts) + "</svg>"


def columns(points: list[tuple[str, int]], title: str) -> str:
    """A column per point (filed over time)."""
    width, height = 760, 220
    n, top = max(len(points), 1), max([v for _, v in points] + [1])
    step = (width - 60) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height + 40}">'
             f'<title>{escape(title)}</title><line x1="40" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>'
             f'<text x="0" y="14">{top}</text><text x="0" y="{height}">0</text>']
    for i, (label, v) in enumerate(points):
        h = v / top * (height - 20)
        x = 45 + i * step
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{height - h:.1f}" width="{min(max(step - 4, 1), 60):.1f}" '
                     f'height="{h:.1f}" fill="{COLORS["filed"]}"><title>{escape(label)}: {v}</title></rect>')
        if n <= 12 or i % max(1, n // 12) == 0:
            parts.append(f'<text x="{x:.1f}" y="{height + 16}">{escape(label[5:] or label)}</text>')
    return "".join(parts) + "</svg>"


# -- tables -------------------------------------------------------------------------------------
def table(name: str, header: list[str], rows: list[list]) -> str:
    """An HTML table and a link to the same rows as CSV."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    link = (f'<a class="csv" download="{escape(name)}.csv" href="data:text/csv;charset=utf-8,'
            f'{quote(buf.getvalue())}">{escape(name)}.csv</a>')
    return f'<table id="{escape(name)}"><tr>{head}</tr>{body}</table>{link}'


def _totals(acc: Accounting) -> str:
    rows = [[c, *(getattr(t, k) for k in TOTALS)] for c, t in sorted(acc.courts.items())]
    rows.append(["total", *(getattr(acc.total, k) for k in TOTALS)])
    chart = stacked_bars([(c, {k: getattr(t, k) for k in COLORS}) for c, t in sorted(acc.courts.items())],
                         ("filed", "pending", "missing", "not_filed", "dead_lettered"), "decisions per court")
    return "<h2>Per court</h2>" + chart + table("courts", ["court", *TOTALS], rows)


def _reliefs(acc: Accounting) -> str:
    keys = ("received", "filed", "pending", "missing", "not_filed")
    rows = [[c, r, *(n.get(k, 0) for k in keys)] for (c, r), n in sorted(acc.reliefs.items())]
    by_relief: dict[str, dict[str, int]] = {}
    for (_, r), n in acc.reliefs.items():
        for k in keys:
            by_relief.setdefault(r, {}).setdefault(k, 0)
            by_relief[r][k] += n.get(k, 0)
    chart = stacked_bars(sorted(by_relief.items()), ("filed", "pending", "missing", "not_filed"), "decisions per relief")
    return "<h2>Per relief type</h2>" + chart + table("reliefs", ["court", "relief", *keys], rows)


def _levels(acc: Accounting) -> str:
    keys = ("received", "filed", "pending", "missing", "not_filed")
    rows = [[lv, *(n.get(k, 0) for k in keys)] for lv, n in sorted(acc.levels.items())]
    chart = stacked_bars([(lv, dict(n)) for lv, n in sorted(acc.levels.items())],
                         ("filed", "pending", "missing", "not_filed"), "counts (convictions) per level")
    return ("<h2>Per count level</h2><p>Each conviction of a decision is a count.</p>" + chart
            + table("levels", ["level", *keys], rows))


def _over_time(acc: Accounting) -> str:
    points = sorted(acc.filed_at.items())
    return ("<h2>Filed over time</h2><p>Decisions per hour of their bundle's creation (UTC).</p>"
            + columns(points, "decisions filed per hour") + table("filed_over_time", ["hour", "decisions"],
                                                                  [[h, n] for h, n in points]))


def _dead(acc: Accounting) -> str:
    from service.reconcile import dead_letters

    by_reason = dead_letters(acc.dead.values())
    chart = stacked_bars([(r, {"dead_lettered": v["records"]}) for r, v in by_reason.items()], ("dead_lettered",),
                         "dead letters per reason") if by_reason else "<p>No dead letters.</p>"
    rows = [[r, v["records"], v["message"], " ".join(v["decision_ids"][:50])] for r, v in by_reason.items()]
    return ("<h2>Dead letters by reason</h2><p>Records, counted once however many times they were "
            "dead-lettered.</p>" + chart + table("dead_letters", ["reason", "records", "example message",
                                                                  "decision ids"], rows))


def _batches_and_problems(acc: Accounting) -> str:
    batches = table("expected_counts", ["court", "batch", "expected", "received"],
                    [[b["court"], b["batch_id"], b["expected"], b["received"]] for b in acc.batches])
    problems = table("problems", ["kind", "court", "decision id", "detail"],
                     [[p.kind, p.court, p.decision_id or "-",
                       "; ".join(f"{k}: {v}" for k, v in p.detail.items() if v is not None)] for p in acc.problems])
    pending = table("pending", ["decision id", "court", "batch", "position"],
                    [[p["decision_id"] or "-", p["court"], p.get("batch_id") or "-", p["position"]]
                     for p in acc.pending[:1000]])
    return ("<h2>Batches whose expected count differed</h2>" + batches + "<h2>Problems</h2>" + problems
            + f"<h2>Pending</h2><p>{len(acc.pending)} (first 1,000 listed).</p>" + pending)


def html_page(acc: Accounting, now: datetime | None = None) -> str:
    t = acc.total
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    verdict = ('<p class="ok">OK: every decision is accounted for.</p>' if acc.ok else
               f'<p class="bad">FAILED: {len(acc.problems)} problem(s): '
               + escape(", ".join(f"{sum(1 for p in acc.problems if p.kind == k)} {k}" for k in FAILING
                                  if any(p.kind == k for p in acc.problems))) + "</p>")
    scope = "the whole decisions topic" if acc.complete else "a time range of the decisions topic"
    summary = (f"<p>Reconciled {scope} on {when}: {t.received} decision records received; {t.granted} granted = "
               f"{t.filed} filed + {t.pending} pending + {t.missing} missing; {t.not_filed} not eligible or review "
               f"required; {t.dead_lettered} dead-lettered records.</p>")
    body = "".join([verdict, summary, _totals(acc), _reliefs(acc), _levels(acc), _over_time(acc), _dead(acc),
                    _batches_and_problems(acc)])
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
            'img-src data:">'
            '<link rel="icon" href="data:,"><title>reliefdocs reconciliation</title>'
            f"<style>{STYLE}</style></head><body><h1>reliefdocs: campaign reconciliation</h1>{body}</body></html>\n")
