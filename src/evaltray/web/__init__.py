"""The web app (``evaltray serve``): review queue, labeling guide and trace viewer for the people who label.

Server-rendered pages (FastAPI, Jinja2, htmx vendored under ``static/``), one view module per page under
:mod:`.views`, one place where errors become pages (:mod:`.errors`). Every page calls the same typed API as
the CLI, so no rule (the blind rule, role checks, the gate) is written twice.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
