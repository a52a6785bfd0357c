"""Error analysis (seeds 000–002: let the failure modes emerge, then rank them).

The failing answers of a scored run are grouped by what was said about them — the scorers' reasons, the
judge's critiques, and the failure tags and critiques reviewers gave the same cases — into proposed
failure categories (named by what was said, or by their heaviest words when the reasons differ), then ranked by frequency × severity (a case's risk
level, else its case type). The categories are proposals for a person to name and keep; nothing here
changes a label.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaltray.core.store import Workspace

from .score import load_run, read_scores, run_cases

__all__ = ["SEVERITY", "FailureCategory", "failure_categories"]

#: Weight of a failure by the case's risk level, else by its case type.
SEVERITY = {"high": 3.0, "medium": 2.0, "low": 1.0, "safety": 3.0, "adversarial": 2.5, "edge": 1.5, "typical": 1.0}
_CASE_ID = re.compile(r"\bc-[0-9a-f]{10}\b")


@dataclass
class FailureCategory:
    """One proposed failure mode: its words, how often and how badly it fails, and example cases."""

    name: str
    cases: list[str]
    severity: float  # mean weight of its cases
    score: float  # frequency × severity
    examples: list[str] = field(default_factory=list)  # the reasons, as said
    tags: dict[str, int] = field(default_factory=dict)


def _evidence(row: dict[str, Any], case: dict[str, Any]) -> tuple[str, list[str]]:
    """What was said about one failing answer, and the reviewers' failure tags on its case."""
    parts = [row.get("reason") or ""]
    parts += [str(s.get("reason") or "") for s in row.get("scores") or [] if s.get("passed") is False]
    review = case.get("review") or {}
    tags = [str(t) for t in review.get("failure_tags") or []]
    parts += [review.get("critique") or "", *tags]
    said = _CASE_ID.sub(" ", " ".join(p for p in parts if p)).strip()
    return said or "no reason given", tags


def _severity(case: dict[str, Any]) -> float:
    return SEVERITY.get(str(case.get("risk_level") or ""), SEVERITY.get(str(case.get("case_type") or ""), 1.0))


def failure_categories(ws: Workspace, run_id: str, max_categories: int = 12) -> list[FailureCategory]:
    """Proposed failure categories of a scored run, most important (frequency × severity) first."""
    manifest = load_run(ws, run_id)
    cases = run_cases(ws, manifest)
    failing = [r for r in read_scores(ws, run_id) if r["status"] in ("fail", "error") and r["trial"] == 0]
    if not failing:
        return []
    evidence = [_evidence(r, cases.get(r["case_id"], {})) for r in failing]
    labels, names = _group([text for text, _ in evidence], max_categories)
    out = []
    for label in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        ids = [failing[i]["case_id"] for i in idx]
        sev = float(np.mean([_severity(cases.get(cid, {})) for cid in ids]))
        tags = Counter(t for i in idx for t in evidence[i][1])
        said = Counter(evidence[i][0] for i in idx).most_common()
        out.append(
            FailureCategory(
                name=said[0][0][:80] if len(said) == 1 else f"{names[label]} (e.g. {said[0][0][:60]})",
                cases=ids,
                severity=round(sev, 3),
                score=round(len(ids) * sev, 3),
                examples=[text for text, _ in said[:3]],
                tags=dict(tags.most_common()),
            )
        )
    return sorted(out, key=lambda c: (-c.score, c.name))


def _group(texts: list[str], max_categories: int) -> tuple[list[int], dict[int, str]]:
    """Texts grouped by their words (TF-IDF, agglomerative with cosine distance), each group named by its
    three heaviest words; texts with no words share one group."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        vec = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), min_df=1, sublinear_tf=True)
        x = vec.fit_transform(texts)
    except ValueError:  # no words at all
        return [0] * len(texts), {0: "(no reason given)"}
    if len(texts) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        k = min(max_categories, len(texts))
        model = AgglomerativeClustering(n_clusters=None, distance_threshold=0.9, metric="cosine", linkage="average")
        labels = model.fit_predict(x.toarray())
        if labels.max() + 1 > k:
            labels = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(x.toarray())
    vocab = np.asarray(vec.get_feature_names_out())
    names = {}
    for label in set(labels.tolist()):
        weights = np.asarray(x[labels == label].sum(axis=0)).ravel()
        top = [str(vocab[i]) for i in np.argsort(-weights)[:3] if weights[i] > 0]
        names[int(label)] = ", ".join(top) or "(no reason given)"
    return [int(v) for v in labels], names
