"""The coverage plan: which situations the tray must contain, with a target count per cell.

``plan.yaml`` lives in the workspace beside ``sets/`` and is versioned with the tray. Its grid is
feature × scenario × persona by default (seed 002: 1–3 examples per cell); difficulty, case type and
failure mode are further dimensions with their own minimums and mix. Traces are mapped to cells by
rules (conditions on trace columns, rendered with bound parameters; or a SQL predicate a person wrote,
checked as ``--where`` is), by cluster name, or by the labels a curator gave them.
"""

from __future__ import annotations

import io
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evaltray.core.errors import EvaltrayError, QueryError
from evaltray.core.store import ADMIN_ROLES, CURATE_ROLES, KEYED_ROLES, Workspace
from evaltray.core.traces import COLUMNS, DERIVED_COLUMNS, conjunction
from evaltray.core.untrusted import InputTooLarge, load_yaml, read_yaml_file
from evaltray.core.util import atomic_write
from evaltray.tray.oversight import Handover, deactivate_user

PLAN_FILE = "plan.yaml"
#: The largest ``plan.yaml`` read, in bytes, before and after its YAML aliases are expanded, and the aliases
#: it may use (a plan is a page of settings: anchors for a shared mapping, not thousands).
MAX_PLAN_BYTES = 1 << 20
MAX_PLAN_ALIASES = 100
AXES = ("feature", "scenario", "persona", "difficulty", "case_type", "failure_mode")
ANY = "*"

#: Seed vocabularies for ``plan init`` (seeds 002 and 003); the user edits them.
SEED_SCENARIOS = ["happy-path", "no-results", "ambiguous-query", "conflicting-docs", "irate-user", "out-of-scope"]
SEED_PERSONAS = ["first-time-visitor", "returning-customer", "power-user", "admin", "attacker"]
SEED_DIFFICULTY = ["easy", "medium", "hard"]
SEED_CASE_TYPES = ["typical", "edge", "adversarial", "safety"]


class PlanError(EvaltrayError):
    """``plan.yaml`` is missing or says something that cannot be used."""


#: What a rule's condition may compare with, and the SQL each renders to: ``{c}`` the (checked, quoted)
#: column, ``{p}`` the bound parameter that carries the value. ``in``/``not in`` take a list of values,
#: ``contains`` asks a list column (tags, retrieved_doc_ids) for one value, the null tests take none.
OPERATORS = {
    "=": "{c} = {p}",
    "!=": "{c} <> {p}",
    "<": "{c} < {p}",
    "<=": "{c} <= {p}",
    ">": "{c} > {p}",
    ">=": "{c} >= {p}",
    "in": "list_contains({p}, {c})",
    "not in": "NOT list_contains({p}, {c})",
    "contains": "list_contains({c}, {p})",
    "is null": "{c} IS NULL",
    "is not null": "{c} IS NOT NULL",
}
_NO_VALUE = ("is null", "is not null")
_LIST_VALUE = ("in", "not in")
#: The columns a condition may name: those of the ``traces`` view.
RULE_COLUMNS = (*COLUMNS, "ingest_date", *(col for cols in DERIVED_COLUMNS.values() for col, _ in cols))


@dataclass(frozen=True)
class Condition:
    """One test on a trace column, e.g. ``feature = "x' OR 1=1"``; its value is bound, never pasted into SQL."""

    column: str
    op: str = "="
    value: Any = None

    def problem(self) -> str | None:
        """What makes this condition unusable, or None."""
        if self.column not in RULE_COLUMNS:
            return f"unknown column {self.column!r}"
        if self.op not in OPERATORS:
            return f"unknown op {self.op!r} (one of: {', '.join(OPERATORS)})"
        scalar = (str, int, float, bool)
        if self.op in _NO_VALUE:
            return None if self.value is None else f"op {self.op!r} takes no value"
        if self.op in _LIST_VALUE:
            ok = isinstance(self.value, list) and all(isinstance(v, scalar) for v in self.value)
            return None if ok else f"op {self.op!r} needs a list of values"
        return None if isinstance(self.value, scalar) else f"op {self.op!r} needs one value (text or number)"

    def sql(self, param: str) -> str:
        """The condition as SQL, its value as the parameter ``$param``."""
        return OPERATORS[self.op].format(c=f'"{self.column}"', p=f"${param}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"column": self.column, "op": self.op}
        if self.op not in _NO_VALUE:
            d["value"] = self.value
        return d


@dataclass
class Rule:
    """Map traces to a cell: conditions on trace columns (all must hold), a SQL predicate a person wrote, or a
    cluster name, sets some axes."""

    set: dict[str, str]
    where: str | None = None
    cluster: str | None = None
    when: list[Condition] = field(default_factory=list)
    #: axes to take from the nearest labelled exemplars (pool and tray candidates whose labels set them):
    #: the majority of the ``k`` most similar with cosine >= ``min_similarity``
    nearest: list[str] = field(default_factory=list)
    k: int = 5
    min_similarity: float = 0.6

    def predicate(self) -> tuple[str, dict[str, Any]] | None:
        """The rule's SQL predicate and the values bound to its parameters; None for a cluster rule."""
        parts = [c.sql(f"rule_{i}") for i, c in enumerate(self.when)]
        params = {f"rule_{i}": c.value for i, c in enumerate(self.when) if c.op not in _NO_VALUE}
        if self.where:
            parts.append(self.where)  # a person wrote it: checked alone, as --where is
        return (conjunction(*parts), params) if parts else None

    def describe(self) -> str:
        """The rule's test, for people: conditions as written, the predicate, or the cluster."""
        tests = [f"{c.column} {c.op}" + ("" if c.op in _NO_VALUE else f" {c.value!r}") for c in self.when]
        tests += [self.where] if self.where else []
        if self.nearest:
            return (
                f"nearest {self.k} labelled exemplars (cosine >= {self.min_similarity:g}) for {', '.join(self.nearest)}"
            )
        return " AND ".join(tests) if tests else f"cluster = {self.cluster!r}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.when:
            d["when"] = [c.to_dict() for c in self.when]
        if self.where:
            d["where"] = self.where
        if self.cluster:
            d["cluster"] = self.cluster
        if self.nearest:
            d.update(nearest=self.nearest, k=self.k, min_similarity=self.min_similarity)
        if self.set:
            d["set"] = self.set
        return d


_RULE_TESTS = ("when", "where", "cluster")


def _rules(path: Path, raw: list[Any]) -> list[Rule]:
    """The rules of a plan read from YAML; a PlanError names the first one that cannot be used."""
    rules = []
    for i, r in enumerate(raw, 1):
        if isinstance(r, dict) and "nearest" in r:
            rules.append(_nearest_rule(path, i, r))
            continue
        if not isinstance(r, dict) or not isinstance(r.get("set"), dict) or not any(map(r.get, _RULE_TESTS)):
            raise PlanError(f"{path}: rule {i} needs `set:` and one of `when:`, `where:`, `cluster:` (or `nearest:`)")
        when = r.get("when") or []
        if isinstance(when, dict):
            when = [when]
        if not isinstance(when, list) or not all(isinstance(c, dict) for c in when):
            raise PlanError(f"{path}: rule {i}: `when` must be a condition or a list of them")
        conditions = []
        for c in when:
            unknown = sorted(set(c) - {"column", "op", "value"})
            cond = Condition(str(c.get("column")), str(c.get("op", "=")).lower(), c.get("value"))
            problem = f"unknown key(s) {', '.join(unknown)}" if unknown else cond.problem()
            if problem:
                raise PlanError(f"{path}: rule {i}: {problem}")
            conditions.append(cond)
        where = r.get("where")
        if where is not None and not isinstance(where, str):
            raise PlanError(f"{path}: rule {i}: `where` must be text (a SQL predicate over trace columns)")
        set_ = {str(k): str(v) for k, v in r["set"].items()}
        if not set_:
            raise PlanError(f"{path}: rule {i}: `set:` names no axis")
        rules.append(Rule(set=set_, where=where, cluster=r.get("cluster"), when=conditions))
    return rules


def _nearest_rule(path: Path, i: int, r: dict[str, Any]) -> Rule:
    """``nearest: [scenario, persona]`` (with ``k:`` and ``min_similarity:``): axes from labelled exemplars."""
    axes = r["nearest"] if isinstance(r["nearest"], list) else [r["nearest"]]
    unknown = sorted(set(r) - {"nearest", "k", "min_similarity"})
    if unknown or not axes or not all(isinstance(a, str) and a for a in axes):
        why = f"unknown key(s) {', '.join(unknown)}" if unknown else "`nearest` names the axes to set, e.g. [scenario]"
        raise PlanError(f"{path}: rule {i}: {why}")
    k, sim = r.get("k", 5), r.get("min_similarity", 0.6)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise PlanError(f"{path}: rule {i}: k must be a positive integer, got {k!r}")
    if not isinstance(sim, (int, float)) or isinstance(sim, bool) or not 0 < sim <= 1:
        raise PlanError(f"{path}: rule {i}: min_similarity must lie in (0, 1], got {sim!r}")
    return Rule(set={}, nearest=[str(a) for a in axes], k=k, min_similarity=float(sim))


#: The plan's keys that hold a mapping of mappings or lists, and those that hold a list of mappings.
_NESTED_MAPPINGS = ("dimensions", "minimums", "mix", "slices")
_LISTS_OF_MAPPINGS = ("cells", "oversample")


def _shape_problem(raw: dict[str, Any]) -> str | None:
    """What is of the wrong kind in a plan read from YAML, or None."""
    for key in _NESTED_MAPPINGS:
        value = raw.get(key)
        if value is not None and not isinstance(value, dict):
            return f"`{key}` must be a mapping"
        inner = list if key == "dimensions" else dict
        for name, entry in (value or {}).items():
            if entry is not None and not isinstance(entry, inner):
                return f"`{key}.{name}` must be a {'list' if inner is list else 'mapping'}"
    for key in (*_LISTS_OF_MAPPINGS, "grid", "rules"):
        value = raw.get(key)
        if value is not None and not isinstance(value, list):
            return f"`{key}` must be a list"
        if key in _LISTS_OF_MAPPINGS and any(not isinstance(e, dict) for e in value or []):
            return f"every entry of `{key}` must be a mapping"
    return None


@dataclass
class Plan:
    """A coverage plan: dimensions, the grid and its targets, minimums, floors, owners and rules."""

    dimensions: dict[str, list[str]]
    grid: list[str] = field(default_factory=lambda: ["feature", "scenario", "persona"])
    target_per_cell: int = 2
    cells: list[dict[str, Any]] = field(default_factory=list)
    minimums: dict[str, dict[str, int]] = field(default_factory=dict)
    mix: dict[str, dict[str, float]] = field(default_factory=dict)
    oversample: list[dict[str, Any]] = field(default_factory=list)
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    version: int = 1

    # ----------------------------------------------------------------- I/O

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls.from_raw(_read_yaml(path), path)

    @classmethod
    def loads(cls, text: str, where: str) -> Plan:
        """A plan from ``text`` (a proposed ``plan.yaml``), within the same limits as a file; errors name ``where``."""
        size = len(text.encode("utf-8"))
        if size > MAX_PLAN_BYTES:
            raise PlanError(f"{where}: {size:,} bytes, past the {MAX_PLAN_BYTES:,} a plan may hold")
        try:
            raw = load_yaml(text, MAX_PLAN_ALIASES, MAX_PLAN_BYTES)[1]
        except yaml.YAMLError as exc:
            raise PlanError(f"{where}: not valid YAML ({exc})") from None
        except InputTooLarge as exc:
            raise PlanError(f"{where}: {exc}") from None
        return cls.from_raw(raw, Path(where))

    @classmethod
    def from_raw(cls, raw: Any, path: Path) -> Plan:
        if not isinstance(raw, dict):
            raise PlanError(f"{path}: expected a mapping at the top")
        known = {
            "version",
            "dimensions",
            "grid",
            "target_per_cell",
            "cells",
            "minimums",
            "mix",
            "oversample",
            "slices",
            "rules",
            "source_mix",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise PlanError(f"{path}: unknown key(s) {', '.join(unknown)}")
        problem = _shape_problem(raw)
        if problem:
            raise PlanError(f"{path}: {problem}")
        rules = _rules(path, raw.get("rules") or [])
        try:
            plan = cls._from_mapping(raw, rules)
        except (TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"{path}: a value has the wrong type ({exc})") from None
        plan.check(path)
        return plan

    @classmethod
    def _from_mapping(cls, raw: dict[str, Any], rules: list[Rule]) -> Plan:
        return cls(
            dimensions={str(k): [str(v) for v in (vals or [])] for k, vals in (raw.get("dimensions") or {}).items()},
            grid=[str(g) for g in raw.get("grid") or ["feature", "scenario", "persona"]],
            target_per_cell=int(raw.get("target_per_cell", 2)),
            cells=list(raw.get("cells") or []),
            minimums={
                str(k): {str(a): int(b) for a, b in (v or {}).items()} for k, v in (raw.get("minimums") or {}).items()
            },
            mix={str(k): {str(a): float(b) for a, b in (v or {}).items()} for k, v in (raw.get("mix") or {}).items()},
            oversample=list(raw.get("oversample") or []),
            slices=dict(raw.get("slices") or {}),
            rules=rules,
            version=int(raw.get("version", 1)),
        )

    def check(self, path: Path | str = PLAN_FILE) -> None:
        for axis in (*self.grid, *self.minimums, *self.mix):
            if axis not in AXES:
                raise PlanError(f"{path}: unknown dimension {axis!r} (one of: {', '.join(AXES)})")
        for axis in self.grid:
            if not self.dimensions.get(axis):
                raise PlanError(f"{path}: grid dimension {axis!r} has no values under `dimensions`")
        if not 0 <= self.target_per_cell <= 1000:
            raise PlanError(f"{path}: target_per_cell must be between 0 and 1000")
        for axis, shares in self.mix.items():
            if shares and abs(sum(shares.values()) - 1) > 1e-6:
                raise PlanError(f"{path}: mix.{axis} must add up to 1.0, got {sum(shares.values()):g}")
        targets = [(name, (entry or {}).get("target_share")) for name, entry in self.slices.items()]
        for name, share in targets:
            if share is not None and (
                isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1
            ):
                raise PlanError(f"{path}: slices.{name}.target_share must be a share between 0 and 1, got {share!r}")
        if sum(share or 0 for _, share in targets) > 1 + 1e-6:
            raise PlanError(f"{path}: the slices' target_share values add up to more than 1.0")
        for name, entry in self.slices.items():
            listed = (entry or {}).get("assertions")
            if listed is not None and (not isinstance(listed, list) or not all(isinstance(a, str) for a in listed)):
                raise PlanError(f"{path}: slices.{name}.assertions must be a list of strings")
        for key, entries in (("cells", self.cells), ("oversample", self.oversample)):
            for i, entry in enumerate(entries, 1):
                if not isinstance(entry.get("match") or {}, dict):
                    raise PlanError(f"{path}: {key} entry {i}: `match` must be a mapping")
                if key == "cells" and not isinstance(entry.get("target", 0), int | float):
                    raise PlanError(f"{path}: cells entry {i}: `target` must be a number")
        for i, rule in enumerate(self.rules, 1):
            for axis in rule.nearest:
                if axis not in AXES:
                    raise PlanError(f"{path}: rule {i} takes unknown dimension {axis!r} from the nearest exemplars")
            for axis, value in rule.set.items():
                if axis not in AXES:
                    raise PlanError(f"{path}: rule {i} sets unknown dimension {axis!r}")
                if self.dimensions.get(axis) and value not in self.dimensions[axis]:
                    raise PlanError(f"{path}: rule {i} sets {axis}={value!r}, which is not in dimensions.{axis}")

    def to_dict(self, source_mix: dict[str, float] | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "grid": self.grid,
            "target_per_cell": self.target_per_cell,
            "dimensions": self.dimensions,
            "cells": self.cells,
            "minimums": self.minimums,
            "mix": self.mix,
            "oversample": self.oversample,
            "slices": self.slices,
            "rules": [r.to_dict() for r in self.rules],
        }
        if source_mix is not None:
            d["source_mix"] = source_mix
        return d

    def save(self, path: Path, source_mix: dict[str, float] | None = None) -> None:
        header = (
            "# evaltray coverage plan: the situations the tray must contain, decided before collecting.\n"
            "# Edit the vocabularies, targets and rules; `evaltray coverage` shows filled vs target.\n"
            "# source_mix is read from evaltray.toml and shown here for reference only.\n"
        )
        body = yaml.safe_dump(self.to_dict(source_mix), sort_keys=False, allow_unicode=True)
        atomic_write(path, (header + body).encode("utf-8"))

    # ----------------------------------------------------------------- cells

    def cell_keys(self) -> list[tuple[str, ...]]:
        """Every cell of the grid, in vocabulary order."""
        return list(itertools.product(*(self.dimensions[a] for a in self.grid)))

    def target(self, cell: tuple[str, ...]) -> int:
        """The cell's target: the last matching override wins, else ``target_per_cell``."""
        values = dict(zip(self.grid, cell, strict=True))
        target = self.target_per_cell
        for override in self.cells:
            match = override.get("match") or {}
            if all(values.get(k) == str(v) or str(v) == ANY for k, v in match.items()):
                target = int(override.get("target", target))
        return target

    def oversampled(self, labels: dict[str, Any]) -> str | None:
        """The declared reason when ``labels`` fall in a cell the plan oversamples on purpose."""
        for entry in self.oversample:
            match = entry.get("match") or {}
            if match and all(str(labels.get(k)) == str(v) for k, v in match.items()):
                return str(entry.get("reason") or "declared in plan.yaml")
        return None


def _read_yaml(path: Path) -> Any:
    """``plan.yaml`` as YAML data, within :data:`MAX_PLAN_BYTES` and :data:`MAX_PLAN_ALIASES`."""
    try:
        raw = read_yaml_file(path, MAX_PLAN_ALIASES, MAX_PLAN_BYTES, "a plan")
    except FileNotFoundError:
        raise PlanError(f"{path}: no coverage plan; run `evaltray plan init`") from None
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML ({exc})") from None
    except InputTooLarge as exc:
        raise PlanError(f"{path}: {exc}") from None
    return raw


def slice_assertions(plan: Plan | None, slice_name: str | None) -> list[str]:
    """The assertions ``plan.yaml`` gives every case of a slice: ``slices.<name>.assertions`` of the slice and
    of each slice above it (``refunds`` and ``refunds/partial`` for a case of ``refunds/partial``)."""
    if plan is None or not slice_name:
        return []
    parts = slice_name.split("/")
    found: list[str] = []
    for i in range(1, len(parts) + 1):
        found += (plan.slices.get("/".join(parts[:i])) or {}).get("assertions") or []
    return list(dict.fromkeys(found))


def add_slice_assertions(ws: Workspace, slice_name: str, assertions: list[str], actor: str | None = None) -> list[str]:
    """Append ``assertions`` to ``slices.<slice_name>.assertions`` in ``plan.yaml``, keeping the file's comments
    and layout; audited. Returns the ones that were not there yet. Signers only: they change what passes."""

    actor = ws.authorize(actor, KEYED_ROLES, "changing a slice's assertions")
    plan = load_plan(ws)
    new = [a for a in dict.fromkeys(assertions) if a not in slice_assertions(plan, slice_name)]
    if not new:
        return []

    def add(data: Any) -> None:
        if data.get("slices") is None:
            data["slices"] = {}
        if data["slices"].get(slice_name) is None:
            data["slices"][slice_name] = {}
        entry = data["slices"][slice_name]
        entry["assertions"] = [*(entry.get("assertions") or []), *new]

    _edit_in_place(ws, plan, add)
    ws.record(actor, "plan.slice_assertions", slice_name, added=new)
    return new


def _edit_in_place(ws: Workspace, plan: Plan, edit: Callable[[Any], None]) -> None:
    """Apply ``edit`` to ``plan.yaml``'s data and write it back keeping the file's comments and layout; a plan
    that would not load is never written."""
    from ruamel.yaml import YAML  # only this writer edits a person's plan in place

    path = plan_path(ws)
    editor = YAML()
    editor.preserve_quotes = True
    data = editor.load(path.read_text(encoding="utf-8"))
    edit(data)
    out = io.StringIO()
    editor.dump(data, out)
    Plan._from_mapping(yaml.safe_load(out.getvalue()), plan.rules).check(path)
    atomic_write(path, out.getvalue().encode("utf-8"))


def slices_owned(ws: Workspace, name: str) -> list[str]:
    """The slices ``plan.yaml`` names ``name`` as owner of (none without a plan)."""
    if not plan_path(ws).exists():
        return []
    return sorted(s for s, entry in load_plan(ws).slices.items() if (entry or {}).get("owner") == name)


def hand_over_slices(ws: Workspace, name: str, heir: str, actor: str, *, dry_run: bool = False) -> list[str]:
    """Make ``heir`` the owner of every slice ``plan.yaml`` gives ``name`` (when ``name`` is deactivated), keeping
    the file's layout; audited as ``plan.slice_owner``. An admin's act; the slices handed over."""
    ws.require(actor, ADMIN_ROLES, "handing slices to another owner")
    ws.role_of(heir)
    owned = slices_owned(ws, name)
    if not owned or dry_run:
        return owned

    def hand(data: Any) -> None:
        for slice_name in owned:
            data["slices"][slice_name]["owner"] = heir

    _edit_in_place(ws, load_plan(ws), hand)
    ws.record(actor, "plan.slice_owner", name, heir=heir, slices=owned)
    return owned


def deactivate(
    ws: Workspace, actor: str, name: str, heir: str, *, slice_heir: str | None = None, dry_run: bool = False
) -> tuple[Handover, list[str]]:
    """Take ``name`` off the workspace: ``heir`` inherits their tasks and golden rows
    (:func:`~evaltray.tray.oversight.deactivate_user`), ``slice_heir`` (default ``heir``) the slices ``plan.yaml``
    gives them. Everything is checked before anything changes; the handover and the slices handed over."""
    slice_heir = slice_heir or heir
    if slice_heir == name:
        raise EvaltrayError(f"user {name!r} cannot inherit their own slices; name another user")
    check = deactivate_user(ws, actor, name, heir, dry_run=True)
    slices = hand_over_slices(ws, name, slice_heir, actor, dry_run=True)
    if dry_run:
        return check, slices
    slices = hand_over_slices(ws, name, slice_heir, actor)
    return deactivate_user(ws, actor, name, heir), slices


def plan_path(ws: Workspace) -> Path:
    return ws.root / PLAN_FILE


def load_plan(ws: Workspace, path: Path | None = None) -> Plan:
    return Plan.load(path or plan_path(ws))


def init_plan(ws: Workspace, features: list[str] | None = None, force: bool = False, actor: str | None = None) -> Plan:
    """Write a starting ``plan.yaml`` from the seeds' vocabularies and the features seen in traces."""
    actor = ws.authorize(actor, CURATE_ROLES, "writing a plan")
    path = plan_path(ws)
    if path.exists() and not force:
        raise PlanError(f"{path}: a plan exists; edit it, or pass --force to start over")
    if features is None:
        features = observed_features(ws)
    features = features or ["general"]
    plan = Plan(
        dimensions={
            "feature": features,
            "scenario": list(SEED_SCENARIOS),
            "persona": list(SEED_PERSONAS),
            "difficulty": list(SEED_DIFFICULTY),
            "case_type": list(SEED_CASE_TYPES),
            "failure_mode": [],
        },
        target_per_cell=2,
        minimums={"case_type": {"safety": 5, "adversarial": 5}},
        mix={"difficulty": {"easy": 0.3, "medium": 0.4, "hard": 0.3}},
        oversample=[
            {"match": {"case_type": "adversarial"}, "reason": "red-team probes are rare in production on purpose"}
        ],
        slices={f: {"pass_rate_floor": 0.8, "owner": ws.settings.label_owner} for f in features},
        rules=[Rule(set={"feature": f}, when=[Condition("feature", "=", f)]) for f in features if f != "general"]
        + [Rule(set={"scenario": "irate-user"}, when=[Condition("feedback_score", "<", 0)])],
    )
    plan.save(path, ws.settings.source_mix)
    ws.record(actor, "plan.init", path.name, features=features, force=force)
    return plan


def observed_features(ws: Workspace, limit: int = 12) -> list[str]:
    """The most frequent trace features, for a first plan."""

    table = ws.trace_store().query("feature IS NOT NULL", columns=["feature"])
    counts = Counter(table.column("feature").to_pylist())
    return [f for f, _ in counts.most_common(limit)]


# --------------------------------------------------------------------------- mapping traces to cells


def assign_traces(
    ws: Workspace, plan: Plan, where: str | None = None, clusters: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """For every trace with a kept payload: the plan axes its rules set (later rules win).

    ``clusters`` maps trace id → cluster name, for rules that name a cluster.
    """

    store = ws.trace_store()
    base = conjunction("payload_kept", where)
    ids = store.query(base, columns=["trace_id"]).column("trace_id").to_pylist()
    out: dict[str, dict[str, str]] = {t: {} for t in ids}
    for i, rule in enumerate(plan.rules, 1):
        if rule.nearest:
            for t, axes in _nearest_labels(ws, rule, list(out)).items():
                out[t].update(axes)
            continue
        if rule.when or rule.where:
            try:
                pred, params = rule.predicate() or ("TRUE", {})
                table = store.query(conjunction(base, pred), columns=["trace_id"], params=params)
            except QueryError as exc:
                raise PlanError(f"{PLAN_FILE}: rule {i}: {exc}") from None
            hit = table.column("trace_id").to_pylist()
        else:
            hit = [t for t, name in (clusters or {}).items() if name == rule.cluster and t in out]
        for t in hit:
            out[t].update(rule.set)
    return out


def _nearest_labels(ws: Workspace, rule: Rule, trace_ids: list[str]) -> dict[str, dict[str, str]]:
    """For each trace: the axes of ``rule.nearest`` that most of its ``k`` nearest labelled exemplars (pool
    candidates, not rejected, whose labels set the axis) agree on, among those at cosine >= the minimum."""
    import numpy as np

    from evaltray.tray.candidates import list_candidates

    from .derived import embed_texts, user_texts

    exemplars = [
        (
            " ".join(str(m.get("content") or "") for m in c.input.get("messages", []) if m.get("role") == "user"),
            c.labels,
        )
        for c in list_candidates(ws)
        if c.status != "rejected" and any(c.labels.get(a) for a in rule.nearest)
    ]
    wanted = set(trace_ids)
    ids, texts = user_texts(ws)
    pairs = [(t, x) for t, x in zip(ids, texts, strict=True) if t in wanted and x.strip()]
    if not exemplars or not pairs:
        return {}
    vectors = np.asarray(embed_texts(ws, [e for e, _ in exemplars] + [x for _, x in pairs]), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    ex, tr = vectors[: len(exemplars)], vectors[len(exemplars) :]
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(pairs), 4096):
        sims = tr[start : start + 4096] @ ex.T
        for row, (tid, _) in zip(sims, pairs[start : start + 4096], strict=True):
            top = [j for j in np.argsort(-row)[: rule.k] if row[j] >= rule.min_similarity]
            axes = {}
            for axis in rule.nearest:
                votes = Counter(str(exemplars[j][1][axis]) for j in top if exemplars[j][1].get(axis))
                ranked = votes.most_common(2)
                if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
                    axes[axis] = ranked[0][0]
            if axes:
                out[tid] = axes
    return out


def cell_of(plan: Plan, labels: dict[str, Any]) -> tuple[str, ...] | None:
    """The grid cell ``labels`` fall in, or None when an axis is unset or outside the vocabulary."""
    cell = []
    for axis in plan.grid:
        value = labels.get(axis)
        if value is None or str(value) not in plan.dimensions[axis]:
            return None
        cell.append(str(value))
    return tuple(cell)


# --------------------------------------------------------------------------- coverage

#: A grid cell: one value per grid axis, in the plan's grid order.
_Cell = tuple[str, ...]


@dataclass
class CellCoverage:
    cell: dict[str, str]
    target: int
    filled: int
    pending: int
    traffic: int
    complaints: int
    fillable: list[str]
    oversampled: str | None = None
    #: ``axis=value`` pairs of this cell that no rule of the plan ever sets: traffic reaches the cell only by
    #: spreading over an axis the rules leave open, and sampling cannot aim at it — write such cases by hand,
    #: or add a rule (``set: {scenario: irate-user}``)
    unruled: list[str] = field(default_factory=list)

    @property
    def gap(self) -> int:
        return max(0, self.target - self.filled)


@dataclass
class Coverage:
    cells: list[CellCoverage]
    marginals: dict[str, dict[str, dict[str, Any]]]  # filled, minimum (ints), share, target_share (None: none set)
    unmapped_cases: int
    grid: list[str] = field(default_factory=list)  # the plan's grid axes: the keys of every cell

    @property
    def gaps(self) -> list[CellCoverage]:
        return [c for c in self.cells if c.gap > 0]


def coverage(
    ws: Workspace,
    plan: Plan,
    set_name: str | None = None,
    clusters: dict[str, str] | None = None,
    fillable_per_cell: int = 5,
) -> Coverage:
    """Filled vs target per cell, gaps first, ordered by how often users hit the cell and complain there."""
    from evaltray.tray.casefile import load_cases

    set_name = ws.check_set(set_name)
    cases = list(load_cases(ws, set_name).values())
    filled, unmapped = _filled_cells(plan, cases)
    pending, in_pool = _pending_cells(ws, plan, set_name)
    traffic, complaints, fill = _traffic_cells(ws, plan, clusters, in_pool, fillable_per_cell)
    rows = []
    ruled = {(axis, value) for rule in plan.rules for axis, value in rule.set.items()}
    nearest_axes = {axis for rule in plan.rules for axis in rule.nearest}
    ruled |= {(a, str(c.get("labels", {}).get(a))) for c in cases for a in nearest_axes}
    ruled |= {(a, v) for a, vs in _pool_label_values(ws, nearest_axes).items() for v in vs}
    for cell in plan.cell_keys():
        labels = dict(zip(plan.grid, cell, strict=True))
        unruled = [f"{a}={v}" for a, v in labels.items() if (a, v) not in ruled]
        rows.append(
            CellCoverage(
                labels,
                plan.target(cell),
                filled[cell],
                pending[cell],
                traffic[cell],
                complaints[cell],
                fill[cell],
                plan.oversampled(labels),
                unruled,
            )
        )
    rows.sort(key=lambda c: (c.gap == 0, -c.traffic, -c.complaints, -c.gap, tuple(c.cell.values())))
    return Coverage(rows, _marginals(plan, cases), unmapped, list(plan.grid))


def _pool_label_values(ws: Workspace, axes: set[str]) -> dict[str, set[str]]:
    """The values the pool's candidates carry for ``axes`` (what a nearest-exemplar rule can set)."""
    if not axes:
        return {}
    from evaltray.tray.candidates import list_candidates

    out: dict[str, set[str]] = defaultdict(set)
    for c in list_candidates(ws):
        for a in axes:
            if c.labels.get(a) and c.status != "rejected":
                out[a].add(str(c.labels[a]))
    return out


def _filled_cells(plan: Plan, cases: list[dict[str, Any]]) -> tuple[Counter[_Cell], int]:
    """How many tray cases fall in each cell, and how many fall in none."""
    filled: Counter[_Cell] = Counter()
    unmapped = 0
    for case in cases:
        labels = {
            **case["labels"],
            "difficulty": case["difficulty"],
            "case_type": case["case_type"],
            "failure_mode": (case["review"].get("failure_tags") or [None])[0],
        }
        cell = cell_of(plan, labels)
        if cell is None:
            unmapped += 1
        else:
            filled[cell] += 1
    return filled, unmapped


def _pending_cells(ws: Workspace, plan: Plan, set_name: str) -> tuple[Counter[_Cell], set[str]]:
    """How many pending candidates fall in each cell, and the trace ids already in the pool."""
    from evaltray.tray import candidates as pool

    pending: Counter[_Cell] = Counter()
    in_pool = set()
    for cand in pool.list_candidates(ws, set_name):
        if cand.trace_id:
            in_pool.add(cand.trace_id)
        if cand.status == pool.PENDING:
            cell = cell_of(plan, {**cand.labels, "difficulty": cand.difficulty, "case_type": cand.case_type})
            if cell is not None:
                pending[cell] += 1
    return pending, in_pool


def _traffic_cells(
    ws: Workspace, plan: Plan, clusters: dict[str, str] | None, in_pool: set[str], fillable_per_cell: int
) -> tuple[Counter[_Cell], Counter[_Cell], dict[_Cell, list[str]]]:
    """Per cell: the traces the plan's rules place there, those with negative feedback, and up to
    ``fillable_per_cell`` of them not yet in the pool."""
    assigned = assign_traces(ws, plan, clusters=clusters)
    feedback = {}
    if assigned:
        table = ws.trace_store().query("payload_kept", columns=["trace_id", "feedback_score"])
        feedback = dict(
            zip(table.column("trace_id").to_pylist(), table.column("feedback_score").to_pylist(), strict=True)
        )
    # a trace whose rules left a later axis unset could fill any cell along it: group traces by the
    # axes they do have, then spread each group over the cells it is consistent with
    groups: dict[tuple[str | None, ...], list[str]] = defaultdict(list)
    for tid, axes in sorted(assigned.items()):
        groups[tuple(axes.get(a) for a in plan.grid)].append(tid)
    traffic: Counter[_Cell] = Counter()
    complaints: Counter[_Cell] = Counter()
    fill: dict[_Cell, list[str]] = defaultdict(list)
    cells = plan.cell_keys()
    for signature, tids in groups.items():
        if signature and signature[0] is None:
            continue  # no rule placed these traces on the first axis (the feature): they belong nowhere yet
        n_bad = sum(1 for t in tids if (feedback.get(t) or 0) < 0)
        fresh = [t for t in tids if t not in in_pool]
        for cell in cells:
            if all(s is None or s == v for s, v in zip(signature, cell, strict=True)):
                traffic[cell] += len(tids)
                complaints[cell] += n_bad
                room = fillable_per_cell - len(fill[cell])
                if room > 0:
                    fill[cell] += fresh[:room]
    return traffic, complaints, fill


def _marginals(plan: Plan, cases: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per axis with a minimum or a mix: each value's filled count, minimum, share and target share."""
    marginals = {}
    for axis in sorted(set(plan.minimums) | set(plan.mix)):
        counts = Counter(
            str(c.get(axis) if axis in ("difficulty", "case_type") else c["labels"].get(axis)) for c in cases
        )
        marginals[axis] = {
            v: {
                "filled": counts.get(v, 0),
                "minimum": plan.minimums.get(axis, {}).get(v, 0),
                "share": round(counts.get(v, 0) / len(cases), 4) if cases else 0.0,
                "target_share": plan.mix.get(axis, {}).get(v),
            }
            for v in plan.dimensions.get(axis) or sorted(counts)
        }
    return marginals
