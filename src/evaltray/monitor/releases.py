"""A release's cases against corpora, and what follows from leakage found: the exclusion list for
fine-tuning data, and contaminated cases retired (never moved into the holdout, which must stay clean)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError, GateError, NotFound
from evaltray.core.records import COMPOSE_ROLES
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, sha256_hex
from evaltray.curate.dedup import normalize
from evaltray.tray.gate import ACTIVE, case_registry, retire
from evaltray.tray.release import select_cases

from .contamination import (
    DEFAULT_N,
    METHODS,
    PARA_COS_BY_BACKEND,
    STANDOUT,
    STANDOUT_BY_BACKEND,
    ContaminationReport,
    Corpus,
    Scanner,
    Verifier,
    probes_of,
    provenance_matches,
    scan,
)

__all__ = ["Retired", "release_cases", "release_contamination", "retire_contaminated", "write_exclusions"]

SPLITS = ("dev", "holdout")


def release_cases(ws: Workspace, version: str, set_name: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """A release's cases of one set, by split (dev, holdout)."""
    return {split: select_cases(ws, version, set_name, split) for split in SPLITS}


def release_contamination(
    ws: Workspace,
    version: str,
    corpora: Sequence[Corpus],
    *,
    set_name: str | None = None,
    n: int = DEFAULT_N,
    methods: Sequence[str] = METHODS,
    backend: str = "wordllama",
    model_path: str | None = None,
    verify: Verifier | None = None,
    cutoff: str | None = None,
) -> ContaminationReport:
    """Every case of release ``version`` (dev and holdout apart) against ``corpora``, streamed once; with
    ``cutoff`` (an ISO date), cases whose source predates it are reported too."""
    if not corpora and cutoff is None:
        raise EvaltrayError(
            "nothing to check against: give a corpus (--corpus, --judge) or a training cutoff (--cutoff)"
        )
    by_split = release_cases(ws, version, set_name)
    probes = [p for split, cases in by_split.items() for p in probes_of(cases, split)]
    embed = None
    if "paraphrase" in methods:
        from evaltray.curate.embed import get_embedder

        embed = get_embedder(backend, model_path).embed
    bar = PARA_COS_BY_BACKEND.get(backend)  # None: the default backend's PARA_COS
    standout = STANDOUT_BY_BACKEND.get(backend, STANDOUT)
    scanner = Scanner(probes, n=n, methods=methods, embed=embed, verify=verify, para_cos=bar, standout=standout)
    report = scan(scanner, corpora, release=version)
    report.cases = {split: len(cases) for split, cases in by_split.items()}
    if cutoff is not None:
        for split, cases in by_split.items():
            report.matches += provenance_matches(cases, split, cutoff)
    return report


def write_exclusions(ws: Workspace, version: str, to: Path, actor: str, set_name: str | None = None) -> int:
    """Write every case of ``version`` (both splits) as JSONL lines ``{id, set, split, field, text, key}`` to
    ``to``, for filtering fine-tuning data (``key``: sha256 of the normalized text); the number of lines."""
    actor = ws.authorize(actor, COMPOSE_ROLES, "exporting exclusions")
    set_name = ws.check_set(set_name)
    lines = [
        orjson.dumps(
            {
                "id": p.case_id,
                "set": set_name,
                "split": p.split,
                "field": p.field,
                "text": p.text,
                "key": sha256_hex(normalize(p.text)),
            }
        )
        + b"\n"
        for split, cases in release_cases(ws, version, set_name).items()
        for p in probes_of(cases, split)
    ]
    atomic_write(to, lines)
    ws.record(actor, "exclusions", version, set=set_name, to=str(to), lines=len(lines))
    return len(lines)


@dataclass(frozen=True)
class Retired:
    case_id: str
    reason: str
    done: bool  # False: already retired, or a dry run
    note: str | None = None


def retire_contaminated(
    ws: Workspace, actor: str, report: ContaminationReport, *, dry_run: bool = False
) -> list[Retired]:
    """Retire every contaminated case of ``report`` through the tray's lifecycle, with the reason
    ``contaminated: <method> in <file:line>``. Fresh cases replace them through review and promote; a
    retired id never comes back, in the holdout or anywhere."""
    active = {r["id"] for r in case_registry(ws) if r["status"] == ACTIVE}
    out = []
    for case_id, matches in report.contaminated().items():
        first = matches[0]
        reason = f"contaminated: {first.method} match in {first.source}:{first.line}"
        if case_id not in active:
            out.append(Retired(case_id, reason, False, "not an active case (already retired)"))
            continue
        try:
            retire(ws, case_id, reason, actor, dry_run=dry_run)
        except (GateError, NotFound) as exc:
            out.append(Retired(case_id, reason, False, str(exc)))
            continue
        out.append(Retired(case_id, reason, not dry_run))
    return out
