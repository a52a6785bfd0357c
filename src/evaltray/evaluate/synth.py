"""Synthetic inputs (seed 000: "generate inputs, not outputs"): new user messages for the candidate pool.

A generator model (any OpenAI-compatible endpoint) writes what users would send: from personas × scenarios
× difficulty, aimed first at the coverage plan's gaps; a real trace's query rewritten N ways; questions that
depend on a fact in a document; or multi-turn escalations where the assistant lost context. The drafts are
deduplicated against the pool and the tray (``curate.dedup``), run through the real system under test (a
run directory like any other, so there is an answer to label), and enter the pool with source ``synthetic``
and no expected behaviour: a person writes that at review. The prompt templates are versioned and hashed;
each candidate records the template hash, the generator's config and the run that answered it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import CURATE_ROLES, Workspace
from evaltray.core.traces import read_messages
from evaltray.core.untrusted import read_yaml_or_fail
from evaltray.core.util import atomic_write, content_hash, now_iso, sha256_hex
from evaltray.curate.plan import SEED_DIFFICULTY, load_plan, plan_path
from evaltray.curate.plan import coverage as plan_coverage
from evaltray.tray import candidates as pool
from evaltray.tray.casefile import load_cases

from .run import Limits, ask_each, execute, plan_file_run, read_results
from .targets import Target, TargetError, config_hash, make_target

__all__ = [
    "KINDS",
    "TEMPLATES",
    "TEMPLATE_VERSION",
    "Draft",
    "Named",
    "SynthError",
    "SynthResult",
    "SynthSpec",
    "load_named",
    "make_generator",
    "parse_drafts",
    "synthesize",
    "template_hash",
]

TEMPLATE_VERSION = "1"
#: Seed 000: three to five personas, eight to twelve queries each.
PERSONAS_ADVISED = (3, 5)
DEFAULT_PER_PERSONA = 10
SYNTH_DIR = "synth"
MAX_FILE_BYTES = 1 << 20
#: The part of a document the generator is shown (a long manual is cut: ask about one section at a time).
MAX_DOCUMENT_CHARS = 20_000
DIFFICULTY_HINTS = {
    "easy": "a common request, stated clearly, with everything needed to answer",
    "medium": "a realistic request with a missing detail, an extra constraint or a follow-up",
    "hard": "an unusual, ambiguous or multi-part request near the edge of what the product does",
}
_REPLY_LIST = "Reply with JSON only: a list of {n} strings."
TEMPLATES: dict[str, str] = {
    "persona": """You write test inputs for an assistant: messages its users would send, never its answers.
Persona: {persona} - {persona_description}
Scenario: {scenario} - {scenario_description}
Difficulty: {difficulty} ({difficulty_hint}){focus}

Write {n} different messages this person would plausibly send in this scenario. Vary wording, length and tone.
"""
    + _REPLY_LIST,
    "multi_turn": """You write test conversations for an assistant: what its users say, never the right answer.
Persona: {persona} - {persona_description}
Scenario: {scenario} - {scenario_description}
Difficulty: {difficulty} ({difficulty_hint}){focus}

Write {n} different short conversations in which the assistant loses context (forgets a detail the user gave,
asks again for something already said, or contradicts an earlier turn) and the user escalates. Each
conversation alternates user and assistant turns, has 3 to 7 turns, and ends with the user's escalation.
Reply with JSON only: a list of {n} conversations, each a list of {{"role": "user" or "assistant", "content": "..."}}.""",
    "rewrite": """You write test inputs for an assistant. Rewrite the user's message below {n} different ways: the
same request with the same facts, names and numbers, in different wording, tone and length (terse, chatty,
with typos, as a non-native speaker, frustrated).

Message:
{query}

"""
    + _REPLY_LIST,
    "document": """You write test inputs for an assistant that answers from a company's documents.
Document {document}:
{text}

Write {n} different questions a user could ask whose correct answer depends on one specific fact stated in
this document. Do not answer them.
Reply with JSON only: a list of {n} objects {{"query": "...", "fact": "<the sentence of the document it depends on>"}}.""",
}
KINDS = tuple(TEMPLATES)


def template_hash(kind: str) -> str:
    """What a generation template is: its text and version (a changed template is a different generator)."""
    return content_hash({"kind": kind, "template": TEMPLATES[kind], "version": TEMPLATE_VERSION})


class SynthError(EvaltrayError):
    """Synthesis that cannot start: no personas or scenarios, an unreadable file, an unknown trace."""


@dataclass(frozen=True, slots=True)
class Named:
    """A persona or a scenario: its name (a plan vocabulary value, where it matches one) and description."""

    name: str
    description: str = ""


def load_named(path: Path, what: str) -> list[Named]:
    """Personas or scenarios from YAML: a list of names, a list of ``{name, description}``, or a mapping
    name → description."""
    data = read_yaml_or_fail(path, 100, MAX_FILE_BYTES, f"a {what} file", SynthError)
    if isinstance(data, dict):
        data = [{"name": k, "description": v} for k, v in data.items()]
    if not isinstance(data, list) or not data:
        raise SynthError(f"{path}: expected a list of {what}s (names, or name and description)")
    out = []
    for i, entry in enumerate(data, 1):
        if isinstance(entry, str | int | float) and str(entry).strip():
            out.append(Named(str(entry).strip()))
        elif isinstance(entry, dict) and str(entry.get("name") or "").strip():
            out.append(Named(str(entry["name"]).strip(), str(entry.get("description") or "").strip()))
        else:
            raise SynthError(f"{path}: {what} {i} has no name")
    names = [n.name for n in out]
    if len(set(names)) != len(names):
        raise SynthError(f"{path}: {what} {next(n for n in names if names.count(n) > 1)!r} appears twice")
    return out


@dataclass
class Draft:
    """One generated input before it enters the pool."""

    id: str
    messages: list[dict[str, Any]]
    kind: str
    labels: dict[str, Any] = field(default_factory=dict)
    difficulty: str | None = None
    gap: dict[str, str] | None = None
    notes: str | None = None
    status: str = "new"  # new → duplicate | error (the target failed) | added
    why: str | None = None
    output: str | None = None  # the system under test's answer: what the reviewer labels
    candidate_id: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(str(m.get("content") or "") for m in self.messages if m.get("role") == "user")


@dataclass
class SynthResult:
    """What a synthesis did: the drafts and what became of each, the gaps it aimed at, the run that answered."""

    batch: str
    kind: str
    template_hash: str
    generator: dict[str, Any]
    target: dict[str, Any] | None
    requested: int = 0
    drafts: list[Draft] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)  # generator requests without usable drafts: why
    gaps: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    added: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def count(self, status: str) -> int:
        return sum(d.status == status for d in self.drafts)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = {s: self.count(s) for s in ("new", "duplicate", "error", "added")}
        return data


# ----------------------------------------------------------------------------- requests to the generator


@dataclass
class _Request:
    """One generator prompt and what its drafts carry."""

    prompt: str
    n: int
    kind: str
    labels: dict[str, Any]
    difficulty: str | None = None
    gap: dict[str, str] | None = None
    notes: str | None = None


def _gap_of(gaps: list[dict[str, str]], persona: str, scenario: str, difficulty: str) -> tuple[int, dict[str, str]]:
    """The rank of the first coverage gap a (persona, scenario, difficulty) slot can fill, and the gap."""
    wanted = {"persona": persona, "scenario": scenario, "difficulty": difficulty}
    for rank, cell in enumerate(gaps):
        if all(cell.get(axis) in (None, value) for axis, value in wanted.items()):
            return rank, cell
    return len(gaps), {}


def _persona_requests(
    personas: list[Named],
    scenarios: list[Named],
    difficulties: list[str],
    per_persona: int,
    gaps: list[dict[str, str]],
    kind: str,
    feature: str | None,
) -> list[_Request]:
    """Each persona's ``per_persona`` queries spread over its scenario × difficulty slots, the slots that fill a
    coverage gap first: with fewer queries than slots, only gaps get any."""
    out = []
    for p in personas:
        slots = sorted(
            ((s, d, *_gap_of(gaps, p.name, s.name, d)) for s in scenarios for d in difficulties),
            key=lambda slot: slot[2],
        )
        for i, (s, d, _, gap) in enumerate(slots):
            n = per_persona // len(slots) + (i < per_persona % len(slots))
            if n == 0:
                continue
            feat = gap.get("feature") or feature
            prompt = TEMPLATES[kind].format(
                persona=p.name,
                persona_description=p.description or p.name,
                scenario=s.name,
                scenario_description=s.description or s.name,
                difficulty=d,
                difficulty_hint=DIFFICULTY_HINTS.get(d, d),
                focus=f"\nProduct area: {feat}" if feat else "",
                n=n,
            )
            labels = {"feature": feat, "scenario": s.name, "persona": p.name}
            out.append(_Request(prompt, n, kind, labels, d, gap or None))
    return out


def _rewrite_request(ws: Workspace, trace_id: str, n: int, feature: str | None) -> _Request:
    rows = ws.trace_store().get([trace_id])
    if trace_id not in rows:
        raise SynthError(f"no trace {trace_id!r} in this workspace")
    row = rows[trace_id]
    before, _ = pool.split_conversation(read_messages(row["messages"]))
    users = [m for m in before if m.get("role") == "user" and isinstance(m.get("content"), str)]
    if not users or not users[-1]["content"].strip():
        raise SynthError(f"trace {trace_id} has no user message to rewrite")
    labels = {"feature": feature or row.get("feature"), "scenario": None, "persona": None}
    prompt = TEMPLATES["rewrite"].format(query=users[-1]["content"], n=n)
    return _Request(prompt, n, "rewrite", labels, notes=f"rewritten from trace {trace_id}")


def _document_request(path: Path, n: int, feature: str | None) -> tuple[_Request, list[str]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SynthError(f"{path}: {exc.strerror}") from None
    text = data.decode("utf-8", "replace").strip()
    if not text:
        raise SynthError(f"{path}: the document is empty")
    warnings = []
    if len(text) > MAX_DOCUMENT_CHARS:
        warnings.append(f"{path.name}: only its first {MAX_DOCUMENT_CHARS:,} characters were shown to the generator")
    prompt = TEMPLATES["document"].format(document=path.name, text=text[:MAX_DOCUMENT_CHARS], n=n)
    note = f"depends on a fact in {path.name} (sha256 {sha256_hex(data)[:12]})"
    return _Request(
        prompt, n, "document", {"feature": feature, "scenario": None, "persona": None}, notes=note
    ), warnings


# ----------------------------------------------------------------------------- reading the generator's answers


def _json_list(text: str | None) -> list[Any]:
    if not text:
        raise SynthError("the generator answered nothing")
    body = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SynthError("the generator's answer is not JSON") from None
    if isinstance(data, dict) and len(data) == 1:
        data = next(iter(data.values()))  # {"queries": [...]}
    if not isinstance(data, list):
        raise SynthError("the generator's answer is not a JSON list")
    return data


def _conversation(item: Any) -> list[dict[str, Any]] | None:
    """A generated conversation as chat messages ending on a user turn, or None when it is not one."""
    if not isinstance(item, list):
        return None
    msgs = [
        {"role": m["role"], "content": m["content"].strip()}
        for m in item
        if isinstance(m, dict)
        and m.get("role") in ("user", "assistant")
        and isinstance(m.get("content"), str)
        and m["content"].strip()
    ]
    while msgs and msgs[-1]["role"] != "user":
        msgs.pop()  # an answer to the last escalation is an output: never part of an input
    return msgs if sum(m["role"] == "user" for m in msgs) >= 2 else None


def parse_drafts(kind: str, text: str | None, n: int) -> list[tuple[list[dict[str, Any]], str | None]]:
    """Up to ``n`` inputs (messages, and the document fact they depend on) from a generator's answer; an
    answer with none is a SynthError saying why."""
    found: list[tuple[list[dict[str, Any]], str | None]] = []
    for item in _json_list(text):
        if kind == "multi_turn":
            conv = _conversation(item)
            if conv:
                found.append((conv, None))
            continue
        query, fact = (item.get("query"), item.get("fact")) if isinstance(item, dict) else (item, None)
        if isinstance(query, str) and query.strip():
            found.append(([{"role": "user", "content": query.strip()}], fact if isinstance(fact, str) else None))
    if not found:
        raise SynthError("the generator's answer holds no usable input")
    return found[:n]


def _drafts(requests: list[_Request], replies: list[tuple[Any, str | None]], result: SynthResult) -> None:
    for req, (reply, error) in zip(requests, replies, strict=True):
        where = ", ".join(f"{k}={v}" for k, v in req.labels.items() if v) or req.kind
        if reply is None:
            result.unanswered.append(f"{where}: {error}")
            continue
        try:
            parsed = parse_drafts(req.kind, reply.output, req.n)
        except SynthError as exc:
            result.unanswered.append(f"{where}: {exc}")
            continue
        for messages, fact in parsed:
            notes = req.notes if fact is None else f"{req.notes}; the fact: {fact}"
            did = f"syn-{len(result.drafts) + 1:05d}"
            labels = {**req.labels, "tags": ["synthetic", f"synthetic:{req.kind}"]}
            result.drafts.append(Draft(did, messages, req.kind, labels, req.difficulty, req.gap, notes))


# ----------------------------------------------------------------------------- dedup, run, pool


def _user_side(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")


def _known_texts(ws: Workspace, set_name: str) -> dict[str, str]:
    """The user side of every candidate not rejected and every case of the set's tray, by id."""
    known = {
        c.id: _user_side(c.input.get("messages") or [])
        for c in pool.list_candidates(ws, set_name)
        if c.status != pool.REJECTED
    }
    for cid, case in load_cases(ws, set_name).items():
        known.setdefault(cid, _user_side(case["input"].get("messages") or []))
    return known


Embed = Callable[[list[str]], Any]


def _dedup(ws: Workspace, set_name: str, drafts: list[Draft], near: float | None, paraphrase: float | None) -> None:
    """Mark drafts that duplicate the pool, the tray or an earlier draft (exact, near, paraphrase)."""
    from evaltray.curate.dedup import dedup
    from evaltray.curate.derived import embed_texts

    known = _known_texts(ws, set_name)
    mine = {d.id: d for d in drafts}
    ids = [*known, *mine]
    texts = [*known.values(), *(d.text for d in drafts)]
    embed: Embed | None = (lambda some: embed_texts(ws, some)) if paraphrase is not None else None
    result = dedup(ids, texts, near=near, paraphrase=paraphrase, embed=embed)
    evidence = {(p.a, p.b): p.level for p in result.pairs}
    for group in result.groups:
        old = sorted(m for m in group.members if m not in mine)
        new = sorted(m for m in group.members if m in mine)
        keep = old[0] if old else new[0]
        for m in new:
            if m != keep:
                mine[m].status = "duplicate"
                level = evidence.get((min(m, keep), max(m, keep)), group.level)
                mine[m].why = f"{level} duplicate of {'draft ' if keep in mine else ''}{keep}"


def _answered(ws: Workspace, batch_dir: Path, drafts: list[Draft], target: Target, limits: Limits, actor: str) -> str:
    """Run the target on the new drafts (a run directory like any other); mark the ones it failed on. The run id."""
    rows = [orjson.dumps({"id": d.id, "input": {"messages": d.messages}}) + b"\n" for d in drafts]
    inputs = batch_dir / "inputs.jsonl"
    atomic_write(inputs, b"".join(rows))
    report = execute(ws, plan_file_run(inputs), target, limits=limits, actor=actor)
    results = read_results(report.path / "results.jsonl")
    for d in drafts:
        row = results.get((d.id, 0))
        if row is None or row.get("status") != "ok":
            d.status, d.why = "error", (row or {}).get("error") or "no answer"
            continue
        reply = [{"role": "assistant", "content": row.get("output"), "tool_calls": row.get("tool_calls") or []}]
        d.output = pool.render_output(reply)
    return report.run_id


def _enter_pool(ws: Workspace, actor: str, set_name: str, drafts: list[Draft], meta: dict[str, Any]) -> list[str]:
    added = []
    for d in drafts:
        try:
            cid = pool.add_manual(
                ws,
                actor,
                "synthetic",
                d.messages,
                set_name=set_name,
                labels=d.labels,
                difficulty=d.difficulty,
                notes=d.notes,
                recorded_output=d.output,
                metadata={"synthetic": {**meta, "draft": d.id, "gap": d.gap}},
            )
        except EvaltrayError as exc:  # the same input pending already (dedup's exact level sees most)
            d.status, d.why = "duplicate", str(exc)
            continue
        d.status, d.candidate_id = "added", cid
        added.append(cid)
    return added


# ----------------------------------------------------------------------------- the API


@dataclass
class SynthSpec:
    """What to generate: ``kind`` persona | multi_turn | rewrite | document, and its material."""

    kind: str = "persona"
    personas: list[Named] = field(default_factory=list)
    scenarios: list[Named] = field(default_factory=list)
    difficulties: list[str] = field(default_factory=lambda: list(SEED_DIFFICULTY))
    per_persona: int = DEFAULT_PER_PERSONA
    trace_id: str | None = None  # rewrite
    document: Path | None = None  # document
    n: int = 10  # rewrite, document
    feature: str | None = None


def _gaps(ws: Workspace, set_name: str) -> list[dict[str, str]]:
    """The coverage plan's gap cells, most trafficked first; none without a plan."""
    if not plan_path(ws).exists():
        return []
    return [dict(c.cell) for c in plan_coverage(ws, load_plan(ws), set_name).gaps]


def _vocabulary(ws: Workspace, spec: SynthSpec) -> tuple[list[Named], list[Named]]:
    """The spec's personas and scenarios, else the coverage plan's vocabularies."""
    personas, scenarios = spec.personas, spec.scenarios
    if (not personas or not scenarios) and plan_path(ws).exists():
        dims = load_plan(ws).dimensions
        personas = personas or [Named(p) for p in dims.get("persona") or []]
        scenarios = scenarios or [Named(s) for s in dims.get("scenario") or []]
    if not personas or not scenarios:
        raise SynthError("synthesis needs personas and scenarios (--personas, --scenarios, or a coverage plan)")
    return personas, scenarios


def _requests(ws: Workspace, spec: SynthSpec, set_name: str, result: SynthResult) -> list[_Request]:
    if spec.kind == "rewrite":
        if not spec.trace_id:
            raise SynthError("a rewrite names the trace whose query it rewrites")
        return [_rewrite_request(ws, spec.trace_id, spec.n, spec.feature)]
    if spec.kind == "document":
        if spec.document is None:
            raise SynthError("document questions need a document")
        req, warnings = _document_request(spec.document, spec.n, spec.feature)
        result.warnings += warnings
        return [req]
    personas, scenarios = _vocabulary(ws, spec)
    low, high = PERSONAS_ADVISED
    if not low <= len(personas) <= high:
        result.warnings.append(f"{len(personas)} personas: seed 000 advises {low} to {high} that match the product")
    if spec.per_persona < 1 or not spec.difficulties:
        raise SynthError("at least one query per persona, at one difficulty")
    unknown = [d for d in spec.difficulties if d not in SEED_DIFFICULTY]
    if unknown:
        raise SynthError(f"unknown difficulty {unknown[0]!r} (one of: {', '.join(SEED_DIFFICULTY)})")
    gaps = _gaps(ws, set_name)
    requests = _persona_requests(
        personas, scenarios, spec.difficulties, spec.per_persona, gaps, spec.kind, spec.feature
    )
    aimed = [r.gap for r in requests if r.gap]
    result.gaps = [g for i, g in enumerate(aimed) if g not in aimed[:i]]
    return requests


def synthesize(
    ws: Workspace,
    spec: SynthSpec,
    generator: Target,
    target: Target | None,
    *,
    set_name: str | None = None,
    near: float | None = 0.8,
    paraphrase: float | None = None,
    limits: Limits | None = None,
    dry_run: bool = False,
    actor: str | None = None,
) -> SynthResult:
    """Generate inputs per ``spec`` with ``generator``, drop duplicates of the pool, the tray and each other,
    answer the rest with ``target`` and add them to the pool as synthetic candidates (``dry_run``: generate
    and dedup only). ``paraphrase`` (a cosine threshold) adds the embedding level to dedup."""
    actor = ws.authorize(actor, CURATE_ROLES, "generating synthetic inputs")
    if spec.kind not in KINDS:
        raise SynthError(f"unknown kind of synthesis {spec.kind!r} (one of: {', '.join(KINDS)})")
    if target is None and not dry_run:
        raise SynthError("synthetic inputs are answered by the system under test: give a target")
    set_name = ws.check_set(set_name)
    limits = limits or Limits()
    gen = {"spec": generator.spec, "config": generator.config, "hash": config_hash(generator)}
    tgt = None if target is None else {"spec": target.spec, "config": target.config, "hash": config_hash(target)}
    result = SynthResult("", spec.kind, template_hash(spec.kind), gen, tgt, dry_run=dry_run)
    requests = _requests(ws, spec, set_name, result)
    result.requested = sum(r.n for r in requests)
    try:
        replies = ask_each(generator, [r.prompt for r in requests], limits)
    except TargetError as exc:
        raise SynthError(f"generator: {exc}") from None
    _drafts(requests, replies, result)
    if not result.drafts:
        raise SynthError(
            "the generator gave no usable input" + (f" ({result.unanswered[0]})" if result.unanswered else "")
        )
    _dedup(ws, set_name, result.drafts, near, paraphrase)
    result.batch = "s-" + content_hash({"drafts": [d.messages for d in result.drafts], "at": now_iso()})[:12]
    fresh = [d for d in result.drafts if d.status == "new"]
    if dry_run or target is None or not fresh:
        return result
    batch_dir = ws.root / SYNTH_DIR / result.batch
    result.run_id = _answered(ws, batch_dir, fresh, target, limits, actor)
    meta = {
        "batch": result.batch,
        "kind": spec.kind,
        "template_version": TEMPLATE_VERSION,
        "template_hash": result.template_hash,
        "generator": gen,
        "run_id": result.run_id,
        "target": tgt,
    }
    result.added = _enter_pool(ws, actor, set_name, [d for d in fresh if d.status == "new"], meta)
    atomic_write(batch_dir / "synth.json", orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
    ws.record(actor, "synth", result.batch, kind=spec.kind, added=len(result.added), run_id=result.run_id)
    return result


def make_generator(spec: str, base_url: str | None = None) -> Target:
    """The generator a spec names (``openai:<model>``), at ``temperature`` 1 so its drafts differ."""
    if not spec.startswith("openai:"):
        raise SynthError(f"the generator is an OpenAI-compatible model: openai:<model>, not {spec!r}")
    return make_target(spec, base_url=base_url, params={"temperature": 1.0})
