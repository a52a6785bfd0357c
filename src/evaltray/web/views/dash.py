"""The dashboards: one page a board (``/dash/NAME``) and its JSON twin (``/api/dash/NAME``), read by any
signed-in role. The figures are :mod:`evaltray.monitor.dashboards`'; this module only lays them out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from evaltray.core.errors import NotFound
from evaltray.core.registry import UnknownName
from evaltray.core.store import Workspace
from evaltray.evaluate.html import interval_chart
from evaltray.monitor import dashboards
from evaltray.monitor.drift_html import chart
from evaltray.web.accounts import Actor
from evaltray.web.auth import reader, workspace
from evaltray.web.render import page

router = APIRouter()


def fill_level(filled: int, target: int) -> str:
    """A coverage cell's colour class: ``none`` without a target, else ``fill-0`` (empty) to ``fill-4`` (met)."""
    if target <= 0:
        return "none"
    return f"fill-{min(4, 4 * filled // target)}"


def heatmap(cells: list[dict[str, Any]], grid: list[str]) -> tuple[list[str], list[tuple[str, list[Any]]]]:
    """Coverage cells laid out as a heatmap: the columns are the last grid axis's values, a row each value of
    the other axes (``a · b``); a slot is the cell, or None where the plan has no such cell."""
    if not grid:
        return [], []
    last = grid[-1]
    cols = list(dict.fromkeys(c["cell"][last] for c in cells))
    rows: dict[str, dict[str, Any]] = {}
    for c in cells:
        key = " · ".join(c["cell"][a] for a in grid[:-1]) or last
        rows.setdefault(key, {})[c["cell"][last]] = c
    return cols, [(key, [slots.get(col) for col in cols]) for key, slots in sorted(rows.items())]


def _figures(ws: Workspace, name: str, set_name: str | None) -> dict[str, Any]:
    try:
        return dashboards.board(ws, name, set_name)
    except UnknownName:
        raise NotFound(f"no dashboard {name!r}; there are: {', '.join(dashboards.BOARDS.names())}") from None


def _charts(figures: dict[str, Any]) -> dict[str, Markup]:
    """The pass-rate board's interval charts, one per run (the run report's SVG), or the drift board's trend
    charts, one per metric (the drift report's SVG); names and dates are escaped where the SVG is drawn."""
    if figures["board"] == "drift":
        return {
            name: Markup(chart(name, [tuple(p) for p in t["points"]], *t["bounds"]))  # noqa: S704 (escaped in chart)
            for name, t in figures["trend"].items()
        }
    if figures["board"] != "passrates":
        return {}
    return {r["run_id"]: Markup(interval_chart(sorted(r["slices"].items()))) for r in figures["runs"]}


@router.get("/dash")
def dash_index(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    boards = [(n, dashboards.title(n)) for n in dashboards.BOARDS.names()]
    return page(request, "dash_index.html", actor, boards=boards)


@router.get("/api/dash")
def dash_index_json(actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    return JSONResponse({n: dashboards.title(n) for n in dashboards.BOARDS.names()})


@router.get("/dash/{name}")
async def dash_page(
    request: Request, name: str, actor: Annotated[Actor, Depends(reader)], set: str | None = None
) -> Response:
    figures = await run_in_threadpool(_figures, workspace(request), name, set)
    return page(
        request,
        "dash.html",
        actor,
        f=figures,
        charts=_charts(figures),
        fill_level=fill_level,
        heat=heatmap(figures.get("cells", []), figures.get("grid", [])),
        boards=[(n, dashboards.title(n)) for n in dashboards.BOARDS.names()],
    )


@router.get("/api/dash/{name}")
async def dash_json(
    request: Request, name: str, actor: Annotated[Actor, Depends(reader)], set: str | None = None
) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(_figures, workspace(request), name, set))
