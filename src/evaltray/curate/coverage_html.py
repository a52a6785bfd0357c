"""The coverage report as front ends ask for it, and its self-contained HTML page (no JavaScript, no network):
a picture where a person would rather look."""

from __future__ import annotations

from html import escape
from pathlib import Path

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write

from .derived import curation_maps
from .plan import Coverage, Plan, coverage, load_plan


def coverage_report(
    ws: Workspace, plan: Plan | Path | None = None, set_name: str | None = None, *, html: Path | None = None
) -> Coverage:
    """Coverage of a set against a plan (the workspace's ``plan.yaml`` by default), with the cluster names of
    the last clustering run; with ``html``, the heatmap page is written there too."""
    if not isinstance(plan, Plan):
        plan = load_plan(ws, plan)
    cov = coverage(ws, plan, set_name, clusters=curation_maps(ws).clusters)
    if html is not None:
        try:
            atomic_write(html, coverage_page(cov, plan, f"Coverage of {ws.settings.name}").encode("utf-8"))
        except OSError as exc:
            raise EvaltrayError(f"cannot write {html}: {exc.strerror or exc}") from None
    return cov


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:center}
th{background:#f4f4f4;font-weight:600}
td.cell{min-width:5.5em}
td small{display:block;color:#555}
.legend span{display:inline-block;width:1.2em;height:1em;vertical-align:middle;margin:0 .3em}
"""


def _color(filled: int, target: int) -> str:
    """Red (empty) through amber to green (target met); grey when the cell has no target."""
    if target <= 0:
        return "#eeeeee"
    r = min(1.0, filled / target)
    red, green = (int(230 - 120 * r), int(90 + 120 * r)) if r < 1 else (110, 200)
    return f"rgb({red},{green},110)" if r < 1 else "rgb(110,200,120)"


def coverage_page(cov: Coverage, plan: Plan, title: str) -> str:
    """A heatmap per value of the first grid axis (rows × columns of the other two), then the gaps."""
    by_cell = {tuple(c.cell[a] for a in plan.grid): c for c in cov.cells}
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title><style>{_STYLE}</style>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{sum(c.filled for c in cov.cells)} cases; {sum(1 for c in cov.cells if c.target and not c.gap)} of "
        f"{sum(1 for c in cov.cells if c.target)} cells with a target are at target; {len(cov.gaps)} below; "
        f"{cov.unmapped_cases} cases outside the grid.</p>",
        "<p class='legend'>filled / target:<span style='background:rgb(230,90,110)'></span>empty"
        "<span style='background:rgb(170,150,110)'></span>partly<span style='background:rgb(110,200,120)'></span>met"
        "<span style='background:#eeeeee'></span>no target</p>",
    ]
    axes = plan.grid
    outer = plan.dimensions[axes[0]]
    rows_axis = axes[1] if len(axes) > 1 else None
    cols_axis = axes[2] if len(axes) > 2 else None
    for value in outer:
        parts.append(f"<h2>{escape(axes[0])}: {escape(value)}</h2><table>")
        cols = plan.dimensions[cols_axis] if cols_axis else [""]
        rows = plan.dimensions[rows_axis] if rows_axis else [""]
        corner = f"{rows_axis} \\ {cols_axis}" if cols_axis else (rows_axis or "")
        parts.append(
            f"<tr><th>{escape(corner)}</th>"
            + "".join(f"<th>{escape(c or 'filled / target')}</th>" for c in cols)
            + "</tr>"
        )
        for r in rows:
            parts.append(f"<tr><th>{escape(r)}</th>")
            for c in cols:
                key = tuple(x for x in (value, r, c) if x != "")[: len(axes)]
                cell = by_cell.get(key)
                if cell is None:
                    parts.append("<td></td>")
                    continue
                tip = f"traffic {cell.traffic}, complaints {cell.complaints}, pending {cell.pending}"
                parts.append(
                    f"<td class='cell' title='{escape(tip)}' style='background:{_color(cell.filled, cell.target)}'>"
                    f"{cell.filled}/{cell.target}<small>{cell.traffic} traces</small></td>"
                )
            parts.append("</tr>")
        parts.append("</table>")
    if cov.marginals:
        parts.append(
            "<h2>Other dimensions</h2><table><tr><th>dimension</th><th>value</th><th>filled</th>"
            "<th>minimum</th><th>share</th><th>target share</th></tr>"
        )
        for axis, values in cov.marginals.items():
            for v, m in values.items():
                parts.append(
                    f"<tr><td>{escape(axis)}</td><td>{escape(v)}</td>"
                    f"<td style='background:{_color(m['filled'], m['minimum']) if m['minimum'] else 'none'}'>"
                    f"{m['filled']}</td><td>{m['minimum'] or ''}</td><td>{m['share']:.0%}</td>"
                    f"<td>{'' if m['target_share'] is None else format(m['target_share'], '.0%')}</td></tr>"
                )
        parts.append("</table>")
    parts.append(
        "<h2>Gaps, most used first</h2><table><tr>"
        + "".join(f"<th>{escape(a)}</th>" for a in axes)
        + "<th>filled/target</th><th>traffic</th><th>complaints</th><th>traces that could fill it</th></tr>"
    )
    for cell in cov.gaps[:200]:
        parts.append(
            "<tr>"
            + "".join(f"<td>{escape(cell.cell[a])}</td>" for a in axes)
            + f"<td>{cell.filled}/{cell.target}</td><td>{cell.traffic}</td><td>{cell.complaints}</td>"
            f"<td>{escape(', '.join(cell.fillable) or _no_rule(cell.unruled))}</td></tr>"
        )
    parts.append("</table>")
    return "\n".join(parts)


def _no_rule(unruled: list[str]) -> str:
    """Why no trace can be aimed at a cell: the axis values no rule of the plan sets."""
    return f"no rule sets {', '.join(unruled)}: write these cases by hand or add a rule" if unruled else ""
