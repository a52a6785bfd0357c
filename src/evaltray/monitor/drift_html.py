"""``evaltray drift --html FILE``: the drift report, the trend of each metric over the kept reports, and the
synthetic-case checks, as one self-contained HTML file (inline SVG, no script or stylesheet fetched)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from evaltray.core.store import Workspace
from evaltray.evaluate.html import PAGE_STYLE, json_block, write_page

from .drift import THRESHOLDS, DriftReport, drift_history
from .synthetic import SyntheticReport

__all__ = ["bounds", "chart", "trend", "write_drift_html"]

_W, _H, _PAD = 440, 120, 36
_COLOUR = {"green": "#2e7d32", "amber": "#e69500", "red": "#b00020", "unknown": "#888"}


def trend(history: list[dict[str, Any]]) -> dict[str, list[tuple[str, float, str]]]:
    """Each metric's (report time, value, level) over the kept reports, oldest first; reports that did not
    measure a metric (too small a window, no clusters) leave a gap rather than a zero."""
    out: dict[str, list[tuple[str, float, str]]] = {}
    for h in history:
        for name, m in h.get("metrics", {}).items():
            if m.get("value") is not None:
                out.setdefault(name, []).append((str(h["created_at"]), float(m["value"]), str(m["level"])))
    return out


def bounds(name: str, history: list[dict[str, Any]]) -> tuple[float, float]:
    """A metric's amber and red thresholds: as kept with the newest report, else today's defaults."""
    for h in reversed(history):
        m = h.get("metrics", {}).get(name, {})
        if "amber" in m and "red" in m:
            return float(m["amber"]), float(m["red"])
    return THRESHOLDS["new_values" if name.startswith("new:") else name]


def chart(name: str, points: list[tuple[str, float, str]], amber: float, red: float) -> str:
    """One metric over time: a line through its values, the amber and red thresholds dashed."""
    top = max(red * 1.25, *(v for _, v, _ in points)) or 1.0

    def y(v: float) -> float:
        return _H - 20 - (_H - 30) * v / top

    def x(i: int) -> float:
        return _PAD + (_W - _PAD - 10) * (i / (len(points) - 1) if len(points) > 1 else 0.5)

    parts = [f'<svg role="img" aria-label="{escape(name)} over time" width="{_W}" height="{_H}">']
    for level, bound in (("amber", amber), ("red", red)):
        parts.append(
            f'<line x1="{_PAD}" y1="{y(bound):.1f}" x2="{_W - 10}" y2="{y(bound):.1f}" stroke="{_COLOUR[level]}"'
            f' stroke-dasharray="4 3"/><text x="{_PAD - 4}" y="{y(bound) + 4:.1f}" text-anchor="end">{bound:g}</text>'
        )
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v, _) in enumerate(points))
    parts.append(f'<polyline points="{line}" fill="none" stroke="#1b3a73" stroke-width="1.5"/>')
    for i, (at, v, level) in enumerate(points):
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="{_COLOUR.get(level, "#888")}">'
            f"<title>{escape(at[:16])}: {v:.4g} ({escape(level)})</title></circle>"
        )
    first, last = points[0][0][:10], points[-1][0][:10]
    parts.append(f'<text x="{_PAD}" y="{_H - 4}">{escape(first)}</text>')
    parts.append(f'<text x="{_W - 10}" y="{_H - 4}" text-anchor="end">{escape(last)}</text></svg>')
    return "".join(parts)


def _metrics_table(report: DriftReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(m.name)}</td><td class=num>{'–' if m.value is None else f'{m.value:.4g}'}</td>"
        f"<td class=num>{m.amber:g} / {m.red:g}</td><td style='color:{_COLOUR[m.level]}'>{m.level}</td>"
        f"<td>{escape(m.detail)}</td></tr>"
        for m in report.metrics
    )
    head = "<tr><th>metric</th><th>value</th><th>amber / red</th><th>level</th><th>detail</th></tr>"
    return f"<table>{head}{rows}</table>" if rows else ""


def _clusters(report: DriftReport) -> str:
    parts = []
    for c in report.new_clusters:
        examples = "".join(f"<li>{escape(e['trace_id'])}: {escape(e['text'][:160])}</li>" for e in c.examples[:5])
        parts.append(
            f"<h3>{escape(c.name)}: {c.size} traces ({c.share:.1%}), suggested slice {escape(c.suggested_slice)}</h3>"
            f"<ul>{examples}</ul>"
        )
    return f"<h2>New intents</h2>{''.join(parts)}" if parts else ""


def _synthetic(rep: SyntheticReport | None) -> str:
    if rep is None:
        return ""
    note = f"<p class=warn>{escape(rep.note)}</p>" if rep.note else ""
    rows = "".join(
        f"<tr><td>{escape(c.case_id)}</td><td class=num>{'–' if c.novelty is None else f'{c.novelty:.3f}'}</td>"
        f"<td>{'uncovered' if c.uncovered else ''}</td><td class=num>{c.style_distance:.2f}</td>"
        f"<td>{'off-style' if c.off_style else ''}</td></tr>"
        for c in rep.cases
    )
    cuts = (
        f"<p class=meta>against {rep.n_traffic} traces; novelty cutoff {rep.novelty_cutoff or 0:.3f}, "
        f"style cutoff {rep.style_cutoff or 0:.2f}</p>"
    )
    head = "<tr><th>case</th><th>novelty</th><th></th><th>style distance</th><th></th></tr>"
    return f"<h2>Synthetic cases</h2>{note}{cuts}<table>{head}{rows}</table>"


def write_drift_html(ws: Workspace, report: DriftReport, path: Path, synthetic: SyntheticReport | None = None) -> Path:
    """Write ``report``, the trend of every metric over the kept reports and ``synthetic`` to ``path``."""
    history = drift_history(ws)
    charts = "".join(
        f"<h3>{escape(name)}</h3>{chart(name, points, *bounds(name, history))}"
        for name, points in sorted(trend(history).items())
    )
    note = f"<p class=warn>{escape(report.note)}</p>" if report.note else ""
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>evaltray drift</title>"
        f"<style>{PAGE_STYLE}</style></head><body>"
        f"<h1>Drift: <span style='color:{_COLOUR[report.level]}'>{report.level}</span></h1>"
        f"<p class=meta>{escape(report.window)}, {report.n_window:,} traces · {escape(report.baseline)}, "
        f"{report.n_baseline:,}</p>{note}{_metrics_table(report)}{_clusters(report)}"
        f"<h2>Trend over {len(history)} kept reports</h2>{charts or '<p>no metric measured yet</p>'}"
        f"{_synthetic(synthetic)}"
        f"<script type=application/json id=drift-data>{json_block({'history': history})}</script>"
        "</body></html>"
    )
    return write_page(path, page)
