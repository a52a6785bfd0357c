"""Error analysis (seeds 000–002: let the failure modes emerge, then rank them).

The failing answers of a scored run are grouped by what was said about them — the scorers' reasons, the
judge's critiques, and the failure tags and critiques reviewers gave the same cases — into proposed
failure categories (named by what was said, or by their heaviest words when the reasons differ), then ranked by frequency × severity (a case's risk
level, else its case type). The categories are proposals for a person to name and keep; nothing here
changes a label.

A person keeps a proposal as a category of the workspace's failure taxonomy (:func:`keep_category`), renames
it (:func:`rename_category`) and merges categories (:func:`merge_categories`). A kept category remembers the
proposal's failure tags and heaviest words (one group of words per proposal it was kept or merged from); a
later run's failing answer that carries one of its tags, or two words of one group (all, if the group has
fewer), falls under it by name, and only what no kept category takes is proposed
anew. :func:`failure_matrix` counts each category's cases by severity level; :func:`top_by_release` gives the
top five categories of each release's latest scored run; :func:`send_failing` puts failing cases in the review
queue.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.records import LABEL_ROLES
from evaltray.core.store import Workspace
from evaltray.core.util import dumps, loads, now_iso
from evaltray.tray.tasks import open_task

from .run import RUNS_DIR, read_results, run_dir
from .score import load_run, read_scores, run_cases

__all__ = [
    "SEVERITY",
    "FailureCategory",
    "failure_categories",
    "failure_matrix",
    "keep_category",
    "merge_categories",
    "rename_category",
    "send_failing",
    "TaxonomyError",
    "taxonomy",
    "top_by_release",
]

#: Weight of a failure by the case's risk level, else by its case type.
SEVERITY = {"high": 3.0, "medium": 2.0, "low": 1.0, "safety": 3.0, "adversarial": 2.5, "edge": 1.5, "typical": 1.0}
_CASE_ID = re.compile(r"\bc-[0-9a-f]{10}\b")
KEPT, MERGED = "kept", "merged"
LEVELS = ("high", "medium", "low")
#: A failing case's task priority in the review queue, by its severity level.
_PRIORITY = {"high": 2, "medium": 1, "low": 0}


class TaxonomyError(EvaltrayError):
    """A failure category that does not exist, or a name already taken."""


@dataclass
class FailureCategory:
    """One failure mode, proposed or kept: its words, how often and how badly it fails, and example cases."""

    name: str
    cases: list[str]
    severity: float  # mean weight of its cases
    score: float  # frequency × severity
    examples: list[str] = field(default_factory=list)  # the reasons, as said
    tags: dict[str, int] = field(default_factory=dict)
    kept: bool = False  # a category of the workspace's taxonomy, not a proposal
    terms: list[str] = field(default_factory=list)  # its heaviest words
    levels: dict[str, int] = field(default_factory=dict)  # its cases by severity level (high, medium, low)


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


def _level(case: dict[str, Any]) -> str:
    weight = _severity(case)
    return "high" if weight >= 3 else "medium" if weight >= 2 else "low"


def _category(
    name: str | None,
    idx: list[int],
    failing: list[dict[str, Any]],
    cases: dict[str, dict[str, Any]],
    evidence: list[tuple[str, list[str]]],
    terms: list[str],
) -> FailureCategory:
    """The category of the failing answers ``idx``: named ``name`` (kept), else by what was said (proposed)."""
    ids = [failing[i]["case_id"] for i in idx]
    sev = float(np.mean([_severity(cases.get(cid, {})) for cid in ids]))
    said = Counter(evidence[i][0] for i in idx).most_common()
    if name is None:
        words = ", ".join(terms) or "(no reason given)"
        name = said[0][0][:80] if len(said) == 1 else f"{words} (e.g. {said[0][0][:60]})"
    return FailureCategory(
        name=name,
        cases=ids,
        severity=round(sev, 3),
        score=round(len(ids) * sev, 3),
        examples=[text for text, _ in said[:3]],
        tags=dict(Counter(t for i in idx for t in evidence[i][1]).most_common()),
        terms=terms,
        levels=dict(Counter(_level(cases.get(cid, {})) for cid in ids)),
    )


def _matches(kept: dict[str, Any], text: str, tags: list[str]) -> bool:
    """Whether a failing answer (what was said, its tags) falls under a kept category."""
    if set(tags) & set(kept["tags"]):
        return True
    text = text.lower()
    return any(group and sum(t in text for t in group) >= min(2, len(group)) for group in kept["terms"])


def failure_categories(ws: Workspace, run_id: str, max_categories: int = 12) -> list[FailureCategory]:
    """The failure categories of a scored run, most important (frequency × severity) first: the taxonomy's kept
    categories its failing answers fall under, and proposals for the rest."""
    manifest = load_run(ws, run_id)
    cases = run_cases(ws, manifest)
    failing = [r for r in read_scores(ws, run_id) if r["status"] in ("fail", "error") and r["trial"] == 0]
    if not failing:
        return []
    evidence = [_evidence(r, cases.get(r["case_id"], {})) for r in failing]
    kept = [k for k in taxonomy(ws) if k["status"] == KEPT]
    under: dict[str, list[int]] = {}
    rest = []
    for i, (text, tags) in enumerate(evidence):
        home = next((k["name"] for k in kept if _matches(k, text, tags)), None)
        if home is None:
            rest.append(i)
        else:
            under.setdefault(home, []).append(i)
    out = []
    for k in kept:
        if k["name"] in under:
            words = list(dict.fromkeys(t for group in k["terms"] for t in group))
            cat = _category(k["name"], under[k["name"]], failing, cases, evidence, words)
            cat.kept = True
            out.append(cat)
    if rest:
        labels, terms = _group([evidence[i][0] for i in rest], max_categories)
        for label in sorted(set(labels)):
            idx = [rest[j] for j, lab in enumerate(labels) if lab == label]
            out.append(_category(None, idx, failing, cases, evidence, terms[label]))
    return sorted(out, key=lambda c: (-c.score, c.name))


def _group(texts: list[str], max_categories: int) -> tuple[list[int], dict[int, list[str]]]:
    """Texts grouped by their words (TF-IDF, agglomerative with cosine distance), with each group's three
    heaviest words; texts with no words share one group (no words)."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        vec = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), min_df=1, sublinear_tf=True)
        x = vec.fit_transform(texts)
    except ValueError:  # no words at all
        return [0] * len(texts), {0: []}
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
        names[int(label)] = top
    return [int(v) for v in labels], names


# ----------------------------------------------------------------------------- the taxonomy a person keeps


def taxonomy(ws: Workspace) -> list[dict[str, Any]]:
    """Every category of the workspace's failure taxonomy (kept, and merged into another), oldest first."""
    tax = ws.t["failure_taxonomy"]
    with ws.tx() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(tax).order_by(tax.c.id))]
    for r in rows:
        r["tags"], r["terms"] = loads(r["tags"]), loads(r.pop("keywords"))
        r.pop("id")
    return rows


def _kept_named(ws: Workspace, name: str) -> dict[str, Any]:
    found = {k["name"]: k for k in taxonomy(ws)}.get(name)
    if found is None or found["status"] != KEPT:
        known = ", ".join(k["name"] for k in taxonomy(ws) if k["status"] == KEPT) or "none yet"
        raise TaxonomyError(f"no failure category {name!r} in the taxonomy (kept: {known})")
    return found


def _free_name(ws: Workspace, name: str) -> str:
    name = name.strip()
    if not name:
        raise TaxonomyError("a failure category needs a name")
    if name in {k["name"] for k in taxonomy(ws)}:
        raise TaxonomyError(f"failure category {name!r} exists already; merge into it instead")
    return name


def keep_category(ws: Workspace, run_id: str, number: int, name: str, actor: str) -> dict[str, Any]:
    """Keep proposal ``number`` (1-based, as :func:`failure_categories` ranks them) of ``run_id`` in the taxonomy
    as ``name``, with its failure tags and heaviest words; later runs' failing answers fall under it."""
    ws.require(actor, LABEL_ROLES, "keeping a failure category")
    found = failure_categories(ws, run_id)
    if not 1 <= number <= len(found):
        raise TaxonomyError(f"run {run_id} has {len(found)} failure categories; there is no number {number}")
    cat = found[number - 1]
    if cat.kept:
        raise TaxonomyError(f"category {number} of run {run_id} is {cat.name!r}, already in the taxonomy")
    row: dict[str, Any] = {"name": _free_name(ws, name), "tags": sorted(cat.tags), "terms": [cat.terms], "status": KEPT}
    tax = ws.t["failure_taxonomy"]
    with ws.tx() as conn:
        conn.execute(
            tax.insert().values(
                name=row["name"],
                tags=dumps(row["tags"]),
                keywords=dumps(row["terms"]),
                status=KEPT,
                created_by=actor,
                created_at=now_iso(),
            )
        )
        ws.audit(conn, actor, "failures.keep", row["name"], run_id=run_id, proposal=cat.name, cases=len(cat.cases))
    return row


def rename_category(ws: Workspace, old: str, new: str, actor: str) -> None:
    """Give kept category ``old`` the name ``new``."""
    ws.require(actor, LABEL_ROLES, "naming a failure category")
    _kept_named(ws, old)
    new = _free_name(ws, new)
    tax = ws.t["failure_taxonomy"]
    with ws.tx() as conn:
        conn.execute(tax.update().where(tax.c.name == old).values(name=new))
        conn.execute(tax.update().where(tax.c.merged_into == old).values(merged_into=new))
        ws.audit(conn, actor, "failures.rename", new, old=old)


def merge_categories(ws: Workspace, names: list[str], into: str, actor: str) -> dict[str, Any]:
    """Merge kept categories ``names`` into ``into`` (one of them, or a new name): it takes their tags and words,
    they are kept on record as merged into it."""
    ws.require(actor, LABEL_ROLES, "merging failure categories")
    merged = [_kept_named(ws, n) for n in dict.fromkeys(names) if n != into]
    if not merged:
        raise TaxonomyError("nothing to merge: name two categories, or one and a different --into")
    target = _kept_named(ws, into) if into in {k["name"] for k in taxonomy(ws)} else None
    parts = merged + ([target] if target else [])
    tags = sorted({t for k in parts for t in k["tags"]})
    terms = [group for k in parts for group in k["terms"]]
    tax = ws.t["failure_taxonomy"]
    with ws.tx() as conn:
        if target is None:
            values = dict(status=KEPT, created_by=actor, created_at=now_iso())
            conn.execute(tax.insert().values(name=_free_name(ws, into), **values, tags="[]", keywords="[]"))
        conn.execute(tax.update().where(tax.c.name == into).values(tags=dumps(tags), keywords=dumps(terms)))
        for k in merged:
            conn.execute(tax.update().where(tax.c.name == k["name"]).values(status=MERGED, merged_into=into))
        ws.audit(conn, actor, "failures.merge", into, merged=[k["name"] for k in merged])
    return {"name": into, "tags": tags, "terms": terms, "merged": [k["name"] for k in merged]}


# ----------------------------------------------------------------------------- ranking and sending


def failure_matrix(categories: list[FailureCategory]) -> dict[str, dict[str, int]]:
    """Frequency × severity: each category's failing cases counted by severity level (high, medium, low)."""
    return {c.name: {level: c.levels.get(level, 0) for level in LEVELS} for c in categories}


def top_by_release(ws: Workspace, top: int = 5) -> dict[str, dict[str, Any]]:
    """For each release with a scored run: its latest scored run and that run's ``top`` failure categories."""
    latest: dict[str, tuple[str, str]] = {}
    for path in sorted((ws.root / RUNS_DIR).glob("r-*/scores.jsonl")):
        manifest = orjson.loads((path.parent / "run.json").read_bytes())
        version = manifest["source"].get("release")
        if version is not None and (manifest["created_at"], path.parent.name) > latest.get(version, ("", "")):
            latest[version] = (manifest["created_at"], path.parent.name)
    return {
        version: {"run_id": run_id, "categories": failure_categories(ws, run_id)[:top]}
        for version, (_, run_id) in sorted(latest.items())
    }


def send_failing(ws: Workspace, run_id: str, actor: str, category: str | None = None) -> dict[str, str]:
    """Open a ``failing_case`` task (ref ``run_id/case_id``) for each failing case of the run (of one category,
    when named), more urgent the more severe; the task id by case id."""
    found = failure_categories(ws, run_id)
    if category is not None:
        found = [c for c in found if c.name == category]
        if not found:
            raise NotFound(f"run {run_id} has no failure category {category!r}")
    cases = run_cases(ws, load_run(ws, run_id))
    answers = read_results(run_dir(ws, run_id) / "results.jsonl")
    opened = {}
    for cat in found:
        for cid in cat.cases:
            level = _level(cases.get(cid, {}))
            payload: dict[str, Any] = {"run_id": run_id, "case_id": cid, "category": cat.name, "severity": level}
            answer = answers.get((cid, 0), {})
            payload["output"] = answer.get("output") if answer.get("status") == "ok" else answer.get("error")
            opened[cid] = open_task(
                ws,
                "failing_case",
                f"{run_id}/{cid}",
                reason=f"fails in run {run_id}: {cat.name}",
                actor=actor,
                payload=payload,
                priority=_PRIORITY[level],
            )
    return opened
