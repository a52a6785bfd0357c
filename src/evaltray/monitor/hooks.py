"""The monitors that run by themselves: on ``promote`` (for the rows being promoted), ``release create`` and the
CI ``gate``. Each is registered in :data:`MONITORS` (the one registry) and into the tray's check lists, which
``promote`` and ``release create`` call; tray imports no monitor.

- ``duplicates``: a row whose input (normalized, scrub placeholders neutral; same tools and context) is
  already a tray row's. On promote it is refused with the id it duplicates; in a release it is a warning.
- ``do-not-use``: a row whose input is a prompt example tagged do-not-use-in-eval is refused on promote
  (release and export refuse it in the tray's own loaders).
- ``contamination``: rows against the registered corpora, by the verbatim methods (exact, n-gram,
  near-verbatim; ``evaltray contamination`` adds paraphrase). A warning, or refused with ``--strict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evaltray.core.registry import Registry
from evaltray.core.store import Workspace
from evaltray.core.util import content_hash
from evaltray.curate.dedup import canonical
from evaltray.tray.casefile import load_cases
from evaltray.tray.gate import PROMOTE_CHECKS, RELEASE_CHECKS, Finding, do_not_use, user_text

from .contamination import Scanner, probes_of, scan
from .registered import list_corpora

__all__ = ["MONITORS", "Monitor", "run_monitors"]

#: A monitor over cases (a tray, a release): ``(ws, cases, strict) -> findings`` (case id, sentence, refuses?).
Monitor = Callable[[Workspace, list[dict[str, Any]], bool], list[Finding]]
MONITORS: Registry[Monitor] = Registry("monitor")
#: The methods the automatic checks run: the verbatim ones, which stream a corpus at tens of MB/s.
HOOK_METHODS = ("exact", "ngram", "lcs")


def input_key(case: dict[str, Any]) -> str:
    """What makes two cases the same case: the user's words (canonical), the tools and the context."""
    inp = case.get("input") or {}
    return content_hash([canonical(user_text(case)), inp.get("tools") or [], inp.get("context") or []])


def duplicate_findings(tray: dict[str, dict[str, Any]], rows: list[dict[str, Any]], refuse: bool) -> list[Finding]:
    """Each of ``rows`` whose input is that of another tray row (or of an earlier one of ``rows``)."""
    new = {r["id"] for r in rows}
    first: dict[str, str] = {}
    for cid in sorted(tray):
        if cid not in new:
            first.setdefault(input_key(tray[cid]), cid)
    out = []
    for row in rows:
        key = input_key(row)
        if key in first:
            out.append((row["id"], f"duplicates {first[key]} (the same input, normalized)", refuse))
        else:
            first[key] = row["id"]
    return out


def contamination_findings(ws: Workspace, rows: list[dict[str, Any]], refuse: bool) -> list[Finding]:
    """Rows found in the registered corpora by the verbatim methods, one finding per case and method."""
    corpora = list_corpora(ws)
    if not corpora or not rows:
        return []
    report = scan(Scanner(probes_of(rows, "tray"), methods=HOOK_METHODS), corpora)
    out = []
    for case_id, matches in report.contaminated().items():
        seen = set()
        for m in matches:
            if m.method not in seen:
                seen.add(m.method)
                out.append((case_id, f"contaminated: {m.method} match ({m.score:.0%}) in {m.source}:{m.line}", refuse))
    return out


def _promote_duplicates(
    ws: Workspace, set_name: str, tray: dict[str, dict[str, Any]], rows: list[dict[str, Any]], strict: bool
) -> list[Finding]:
    return duplicate_findings(tray, rows, True)


def _promote_do_not_use(
    ws: Workspace, set_name: str, tray: dict[str, dict[str, Any]], rows: list[dict[str, Any]], strict: bool
) -> list[Finding]:
    return [
        (cid, f"a prompt example tagged do-not-use-in-eval ({src})", True) for cid, src in do_not_use(ws, rows).items()
    ]


def _promote_contamination(
    ws: Workspace, set_name: str, tray: dict[str, dict[str, Any]], rows: list[dict[str, Any]], strict: bool
) -> list[Finding]:
    return contamination_findings(ws, rows, strict)


PROMOTE_CHECKS.add("duplicates", _promote_duplicates)
PROMOTE_CHECKS.add("do-not-use", _promote_do_not_use)
PROMOTE_CHECKS.add("contamination", _promote_contamination)


@MONITORS.register("duplicates")
def case_duplicates(ws: Workspace, cases: list[dict[str, Any]], strict: bool) -> list[Finding]:
    """Cases that duplicate an earlier one (by id)."""
    return duplicate_findings({}, sorted(cases, key=lambda c: str(c["id"])), strict)


@MONITORS.register("contamination")
def case_contamination(ws: Workspace, cases: list[dict[str, Any]], strict: bool) -> list[Finding]:
    """Cases against the registered corpora."""
    return contamination_findings(ws, cases, strict)


def _on_tray(monitor: Monitor) -> Callable[[Workspace, str, bool], list[Finding]]:
    def check(ws: Workspace, set_name: str, strict: bool) -> list[Finding]:
        return monitor(ws, list(load_cases(ws, set_name).values()), strict)

    return check


for _name, _monitor in MONITORS.items():
    RELEASE_CHECKS.add(_name, _on_tray(_monitor))


def run_monitors(ws: Workspace, cases: list[dict[str, Any]], strict: bool = False) -> list[tuple[str, str, str, bool]]:
    """Every registered monitor on ``cases``: (monitor, case id, sentence, refuses?)."""
    return [
        (name, cid, msg, refuse)
        for name, monitor in MONITORS.items()
        for cid, msg, refuse in monitor(ws, cases, strict)
    ]
