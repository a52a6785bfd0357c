"""Templates: every value is escaped (autoescape on for every template), trace text included."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse

from .accounts import Actor

HERE = Path(str(resources.files("evaltray") / "web"))
STATIC_DIR = HERE / "static"

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=True,  # every template, whatever its name: trace text is untrusted
    trim_blocks=True,
    lstrip_blocks=True,
)


def pretty(value: Any) -> str:
    """JSON laid out for reading (tool arguments, metadata); escaped by the template like any text."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode("utf-8")


ENV.filters["pretty"] = pretty


def page(request: Request, template: str, actor: Actor | None, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered for ``actor`` (None before sign-in)."""
    html = ENV.get_template(template).render(request=request, actor=actor, **context)
    return HTMLResponse(html, status_code=status)


def fragment(template: str, **context: Any) -> str:
    """A partial rendered on its own, for an htmx swap."""
    return ENV.get_template(template).render(**context)


def capped(n: int, cap: int) -> str:
    """A count made up to ``cap`` (``cap + 1`` meaning more): ``1,234``, or ``over 1,000``."""
    return f"over {cap:,}" if n > cap else f"{n:,}"


ENV.filters["capped"] = capped
