"""A run's report as one self-contained HTML file: pass rate per slice with interval bars, the judge's
calibration, latency, and the failing cases with their reasons. Inline SVG, no JavaScript, no network."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write

from .report import run_report
from .run import read_results, run_dir
from .score import read_scores

__all__ = ["PAGE_STYLE", "json_block", "write_html_report", "write_page"]

PAGE_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff4e0;border-left:4px solid #e69500;padding:.4em .8em;margin:.4em 0}
.meta{color:#555}.fail{color:#b00020}svg text{font:12px system-ui,sans-serif}
"""
_BAR_W, _ROW_H, _LABEL_W = 420, 22, 180


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def interval_chart(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Pass rate per slice as a dot with its 95% interval as a bar, on a 0–100% axis."""
    shown = [(name, s) for name, s in rows if s["pass_rate"] is not None]
    height = _ROW_H * len(shown) + 30
    parts = [f'<svg role="img" aria-label="pass rate per slice" width="{_LABEL_W + _BAR_W + 60}" height="{height}">']
    for tick in range(0, 101, 25):
        x = _LABEL_W + _BAR_W * tick / 100
        parts.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{height - 20}" stroke="#eee"/>')
        parts.append(f'<text x="{x}" y="{height - 5}" text-anchor="middle">{tick}%</text>')
    for i, (name, s) in enumerate(shown):
        y = i * _ROW_H + 12
        lo, hi, p = (_LABEL_W + _BAR_W * s[k] for k in ("low", "high", "pass_rate"))
        parts.append(f'<text x="{_LABEL_W - 8}" y="{y + 4}" text-anchor="end">{escape(name)}</text>')
        parts.append(
            f'<line class="ci" x1="{lo:.1f}" y1="{y}" x2="{hi:.1f}" y2="{y}" stroke="#4a7bd0" stroke-width="6"/>'
        )
        parts.append(
            f'<circle cx="{p:.1f}" cy="{y}" r="5" fill="#1b3a73"><title>{escape(name)}: {_pct(s["pass_rate"])}</title></circle>'
        )
        parts.append(f'<text x="{_LABEL_W + _BAR_W + 8}" y="{y + 4}">{_pct(s["pass_rate"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _latency_chart(latencies: list[float]) -> str:
    """A histogram of answer latencies (ms), twenty bins."""
    if not latencies:
        return "<p class=meta>No answers with a latency.</p>"
    top = max(latencies) or 1.0
    bins = [0] * 20
    for v in latencies:
        bins[min(19, int(v / top * 20))] += 1
    peak = max(bins)
    parts = [f'<svg role="img" aria-label="latency histogram" width="{20 * 24 + 40}" height="140">']
    for i, n in enumerate(bins):
        h = 100 * n / peak
        parts.append(
            f'<rect x="{i * 24 + 20}" y="{110 - h:.1f}" width="20" height="{h:.1f}" fill="#6a9f58"><title>{n}</title></rect>'
        )
    parts.append(
        f'<text x="20" y="128">0 ms</text><text x="{20 * 24}" y="128" text-anchor="end">{top:,.0f} ms</text></svg>'
    )
    return "".join(parts)


def _slice_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    body = "".join(
        f"<tr><td>{escape(name)}</td><td class=num>{s['n']}</td><td class=num>{_pct(s['pass_rate'])}</td>"
        f"<td class=num>{_pct(s['low'])}–{_pct(s['high'])}</td><td class=num>{s['errors']}</td></tr>"
        for name, s in rows
    )
    return f"<table><tr><th>slice</th><th>cases</th><th>pass rate</th><th>95% interval</th><th>errors</th></tr>{body}</table>"


def _judge_section(judge: dict[str, Any] | None) -> str:
    if judge is None:
        return ""
    cal = judge.get("calibration")
    if not judge["calibrated"] or cal is None:
        return f"<h2>Judge</h2><p class=warn>Judge {escape(judge['name'])} is not calibrated: its verdicts are not corrected.</p>"
    corrected = judge.get("corrected") or {}
    line = f"Judge {escape(judge['name'])}: calibrated, agreement {_pct(cal['agreement'])} on {cal['n']} outputs."
    if "pass_rate" in corrected:
        line += f" Pass rate corrected for its TPR/TNR: {_pct(corrected['pass_rate'])} ({_pct(corrected['low'])}–{_pct(corrected['high'])})."
    return f"<h2>Judge</h2><p>{line}</p>"


def _failures(rows: list[dict[str, Any]], limit: int = 200) -> str:
    bad = [r for r in rows if r["status"] in ("fail", "error")][:limit]
    if not bad:
        return "<p>No failing case.</p>"
    body = "".join(
        f"<tr><td>{escape(r['case_id'])}</td><td>{escape(str(r.get('slice') or ''))}</td><td class=fail>{r['status']}</td>"
        f"<td>{escape(_why(r))}</td></tr>"
        for r in bad
    )
    return f"<table><tr><th>case</th><th>slice</th><th>status</th><th>why</th></tr>{body}</table>"


def _why(row: dict[str, Any]) -> str:
    if row["status"] == "error":
        return str(row.get("reason") or "")
    return "; ".join(f"{s['scorer']}: {s['reason']}" for s in row["scores"] if s["passed"] is False)


def json_block(data: dict[str, Any]) -> str:
    """The report's figures for machines, safe inside a script element (no ``</`` can close it)."""
    return orjson.dumps(data, default=str).decode().replace("</", "<\\/").replace("<!--", "<\\u0021--")


def write_html_report(ws: Workspace, run_id: str, path: Path) -> Path:
    """Write the report of scored run ``run_id`` to ``path`` as one HTML file; the path written."""
    data = run_report(ws, run_id)
    rows = [("(all)", data["overall"]), *data["slices"].items()]
    scores = read_scores(ws, run_id)
    latencies = [
        r["latency_ms"] for r in read_results(run_dir(ws, run_id) / "results.jsonl").values() if r.get("latency_ms")
    ]
    what = (
        "unreleased cases" if data["release"] == "unreleased" else f"release {data['release']} ({data['release_hash']})"
    )
    warnings = "".join(f"<p class=warn>{escape(w)}</p>" for w in data["warnings"])
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>evaltray run {escape(run_id)}</title>"
        f"<style>{PAGE_STYLE}</style></head><body>"
        f"<h1>{escape(data['target'])} on {escape(what)}</h1>"
        f"<p class=meta>run {escape(run_id)} · set {escape(str(data['set']))} · {escape(str(data['split']))} · "
        f"target hash {escape(data['target_hash'][:12])} · {data['overall']['n']} scored cases: {escape(data['advice'])}</p>"
        f"{warnings}<h2>Pass rate per slice</h2>{interval_chart(rows)}{_slice_table(rows)}"
        f"{_judge_section(data['judge'])}<h2>Latency</h2>{_latency_chart(latencies)}"
        f"<h2>Failing cases</h2>{_failures(scores)}"
        f"<script type=application/json id=report-data>{json_block(data)}</script>"
        "</body></html>"
    )
    return write_page(path, page)


def write_page(path: Path, page: str) -> Path:
    """Write one HTML page atomically; an unwritable path is an :class:`EvaltrayError` naming it."""
    try:
        atomic_write(path, page.encode("utf-8"))
    except OSError as exc:
        raise EvaltrayError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
