"""Suspected label errors: reviewed outputs whose human label a calibrated judge confidently disputes, and
labels that disagree with their nearest labelled neighbours. Listed and ranked for a person to look at
again — never relabelled here.

The judge's side comes from its stored calibration (the outputs it judged against the reviews): each
disagreement counts as much as the judge's measured agreement with people. The neighbours' side compares a
reviewed candidate's behaviour code with those of the most similar reviewed inputs (TF-IDF cosine): a label
most of whose close neighbours chose another code is suspect in proportion. A judge that gives only
pass/fail has no probabilities, so cleanlab's confident learning does not apply; the ranking is the sum of
the two signals.

:func:`send_to_review` sends suspects back to the review queue: a golden row as a ``revalidate`` task on its
case (it counts as a candidate until re-signed), a label not promoted yet as a ``label`` task on its candidate
(done once somebody reviews it again). The label itself is never changed here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.store import Workspace
from evaltray.tray.candidates import PROMOTED, get, list_candidates
from evaltray.tray.review import latest_review
from evaltray.tray.tasks import open_task

from .calibrate import find_calibration

__all__ = ["SuspectedLabel", "send_to_review", "suspected_labels"]


@dataclass
class SuspectedLabel:
    """One reviewed candidate whose label may be wrong, why, and how strongly (higher first)."""

    candidate_id: str
    score: float
    reasons: list[str] = field(default_factory=list)


def _judge_side(ws: Workspace, judge_hash: str | None, out: dict[str, SuspectedLabel]) -> None:
    if judge_hash is None:
        return
    cal = find_calibration(ws, judge_hash)
    if cal is None:
        raise EvaltrayError("that judge was never calibrated here: run `evaltray judge calibrate` first")
    if not cal["calibrated"]:
        raise EvaltrayError(f"judge {cal['judge']} is not calibrated: its disagreements prove nothing")
    weight = float(cal["agreement"]["agreement"]["estimate"])
    for d in cal["disagreements"]:
        entry = out.setdefault(d["id"], SuspectedLabel(d["id"], 0.0))
        entry.score += weight
        why = f"the calibrated judge ({weight:.0%} agreement) says {d['judge']}, the reviewer said {d['human']}"
        entry.reasons.append(why + (f": {d['critique']}" if d.get("critique") else ""))


def _neighbour_side(
    labelled: list[tuple[str, str, str]], k: int, min_similarity: float, out: dict[str, SuspectedLabel]
) -> None:
    """``labelled``: (candidate id, input text, behaviour code)."""
    if len(labelled) < 3:
        return
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        x = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)).fit_transform([t for _, t, _ in labelled])
    except ValueError:  # no words at all
        return
    sims = (x @ x.T).toarray()
    np.fill_diagonal(sims, -1.0)
    for i, (cid, _, code) in enumerate(labelled):
        near = [j for j in np.argsort(-sims[i])[:k] if sims[i, j] >= min_similarity]
        if len(near) < 2:
            continue
        votes = Counter(labelled[j][2] for j in near)
        other, n_other = votes.most_common(1)[0]
        if other != code and n_other > len(near) / 2:
            entry = out.setdefault(cid, SuspectedLabel(cid, 0.0))
            entry.score += n_other / len(near)
            entry.reasons.append(
                f"{n_other} of its {len(near)} nearest reviewed inputs have behaviour {other!r}, not {code!r}"
            )


def suspected_labels(
    ws: Workspace, judge_hash: str | None = None, k: int = 5, min_similarity: float = 0.5
) -> list[SuspectedLabel]:
    """Suspected label errors, most suspect first (see the module docstring)."""
    out: dict[str, SuspectedLabel] = {}
    _judge_side(ws, judge_hash, out)
    labelled = []
    for cand in list_candidates(ws):
        review = latest_review(ws, cand.id)
        code = (review.expected or {}).get("behavior_code") if review is not None else None
        if code:
            text = " ".join(
                str(m.get("content") or "") for m in cand.input.get("messages", []) if m.get("role") == "user"
            )
            labelled.append((cand.id, text, str(code)))
    _neighbour_side(labelled, k, min_similarity, out)
    return sorted(out.values(), key=lambda s: (-s.score, s.candidate_id))


def send_to_review(ws: Workspace, suspects: list[SuspectedLabel], actor: str) -> dict[str, str | None]:
    """Open a re-validation task for each suspect (see the module docstring): the task id by candidate id, None
    for a suspect that is no candidate here (a judge calibrated from files may name outside ids)."""
    opened: dict[str, str | None] = {}
    for s in suspects:
        try:
            cand = get(ws, s.candidate_id)
        except NotFound:
            opened[s.candidate_id] = None
            continue
        kind, ref = ("revalidate", cand.case_id) if cand.status == PROMOTED and cand.case_id else ("label", cand.id)
        payload = {"candidate_id": cand.id, "score": round(s.score, 4), "reasons": s.reasons}
        opened[cand.id] = open_task(
            ws,
            kind,
            str(ref),
            reason=f"suspected label error: {'; '.join(s.reasons)}",
            actor=actor,
            payload=payload,
            priority=1,
        )
    return opened
