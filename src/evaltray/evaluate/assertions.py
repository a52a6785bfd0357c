"""Assertion suggestions from a prompt template's history (seed 002, after SPADE).

Each change to a prompt template is a hint of what its authors saw go wrong: "answer in under 50 words"
was added because answers ran long. From the template's history — its versions in a git-tracked file
(``git log -p``), or the distinct system messages of the reviewed candidates in order of arrival — every
instruction a change added becomes one candidate assertion: a rule where the instruction is plain
(a word or character limit, a link, JSON, a quoted phrase to say or avoid, a quoted opening or ending,
bullet points), else a check proposed by the judge endpoint and answered by it. Each candidate is run
over the outputs reviewers labelled; then a small set is picked greedily, most new failures caught first,
while the share of passing outputs the set would fail stays within a budget (SPADE's false-failure
rate). Nothing reaches a label from here: a person accepts suggestions into cases' ``expected.assertions``
(a signed relabel, through the gate like any other).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.errors import EvaltrayError, NotFound
from evaltray.core.store import Workspace
from evaltray.core.untrusted import json_lines
from evaltray.core.util import atomic_write, content_hash, now_iso
from evaltray.curate.plan import add_slice_assertions, load_plan, slice_assertions
from evaltray.tray.candidates import list_candidates
from evaltray.tray.casefile import load_cases
from evaltray.tray.lifecycle import relabel_case
from evaltray.tray.review import latest_review

from .judge import JudgeConfig, JudgeError, parse_verdict
from .run import RUN_ROLES, Limits, ask_each
from .scorers import SCORERS
from .targets import make_target

__all__ = [
    "Change",
    "LabelledOutput",
    "SuggestReport",
    "SuggestionError",
    "Suggestion",
    "accept",
    "accept_into_slice",
    "changes_from_git",
    "changes_from_candidates",
    "check",
    "instructions",
    "labelled_outputs",
    "measure",
    "propose",
    "rule_assertions",
    "saved_suggestions",
    "select",
    "suggest",
]

#: Where the last suggestions are kept for ``accept`` (under ``.evaltray/``).
SUGGESTIONS_FILE = "assertion-suggestions.json"
#: The scorer that checks each machine-checkable assertion prefix.
CHECKED_BY = {
    "contains": "contains",
    "not-contains": "contains",
    "regex": "regex",
    "json-schema": "json_schema",
    "max-words": "length",
    "max-chars": "length",
}
PROPOSE = """A prompt template of an assistant gained this instruction:
{instruction}

Write one check that an answer following the instruction passes and an answer ignoring it fails, as one short
sentence a grader can answer with pass or fail. Reply with JSON only: {{"assertion": "<the check>"}}"""
CHECK = """Does the assistant's answer pass this check? Check: {assertion}

The assistant's answer:
{output}

Reply with JSON only: {{"critique": "<one sentence on why>", "verdict": "pass" or "fail"}}"""


class SuggestionError(EvaltrayError):
    """Suggestions cannot be made or accepted as asked (no history, no labelled outputs, unknown ids)."""


@dataclass(frozen=True)
class Change:
    """One version of the template: what it added (instruction lines) and where it comes from."""

    version: str  # a commit, or the first 12 hex digits of a system message's hash
    when: str | None
    note: str
    added: list[str]


@dataclass(frozen=True)
class LabelledOutput:
    """An output a reviewer judged: its id (a candidate), text, verdict and failure tags."""

    id: str
    output: str
    passed: bool
    tags: list[str] = field(default_factory=list)


@dataclass
class Suggestion:
    """A candidate assertion from one instruction of one change, and what it does to the labelled outputs."""

    id: str
    assertion: str
    kind: str  # "rule", or "judge": proposed and checked by the judge endpoint
    version: str
    instruction: str
    catches: list[str] = field(default_factory=list)  # failing outputs it fails
    false_failures: list[str] = field(default_factory=list)  # passing outputs it fails
    unchecked: int = 0  # outputs it could not decide (no judge, or the judge answered neither)
    note: str | None = None


@dataclass
class SuggestReport:
    changes: list[Change]
    suggestions: list[Suggestion]
    selected: list[str]  # suggestion ids, in the order picked
    failures: int
    passes: int
    caught: list[str]  # failing outputs the selected set catches
    false_failures: list[str]  # passing outputs the selected set fails
    by_tag: dict[str, dict[str, int]]  # failure tag -> {failures, caught}
    budget: float
    made_at: str = ""

    @property
    def coverage(self) -> float | None:
        return len(self.caught) / self.failures if self.failures else None

    @property
    def false_failure_rate(self) -> float | None:
        return len(self.false_failures) / self.passes if self.passes else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "coverage": self.coverage, "false_failure_rate": self.false_failure_rate}


# ----------------------------------------------------------------------------- the history


def _git(cwd: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SuggestionError(f"cannot run git in {cwd}: {exc}") from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SuggestionError(f"git {args[0]} in {cwd} failed: {why[-1] if why else done.returncode}")
    return done.stdout.decode("utf-8", "replace")


_COMMIT = "\x1ecommit\x1f"


def changes_from_git(path: Path) -> list[Change]:
    """The versions of a git-tracked prompt file, oldest first, each with the lines it added (``git log -p``)."""
    if not path.is_file():
        raise SuggestionError(f"{path}: no such file")
    log = _git(
        path.parent, "log", "-p", "--reverse", "--follow", "--no-color", "--no-ext-diff", "-U0",
        f"--format={_COMMIT}%H%x1f%aI%x1f%s", "--", path.name,
    )  # fmt: skip
    changes = []
    for block in log.split(_COMMIT)[1:]:
        head, _, diff = block.partition("\n")
        sha, when, subject = (head.split("\x1f") + ["", ""])[:3]
        added = [
            line[1:].strip()
            for line in diff.splitlines()
            if line.startswith("+") and not line.startswith("+++") and line[1:].strip()
        ]
        changes.append(Change(sha[:12], when or None, subject, added))
    if not changes:
        raise SuggestionError(f"{path}: git has no history of this file (is it committed?)")
    return changes


def _system_text(inp: dict[str, Any]) -> str | None:
    for m in inp.get("messages") or []:
        if m.get("role") == "system" and isinstance(m.get("content"), str):
            return str(m["content"])
    return None


def changes_from_candidates(ws: Workspace, set_name: str | None = None) -> list[Change]:
    """The distinct system messages of the candidates, in order of first arrival (trace date, then when the
    candidate was made), each with the lines it added to the one before."""
    first_seen: dict[str, tuple[str, str]] = {}
    for cand in list_candidates(ws, set_name):
        text = _system_text(cand.input)
        when = cand.ingest_date or cand.created_at
        if text is not None and (text not in first_seen or when < first_seen[text][0]):
            first_seen[text] = (when, cand.id)
    changes, before = [], set[str]()
    for text, (when, cid) in sorted(first_seen.items(), key=lambda kv: kv[1]):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        added = [line for line in lines if line not in before]
        before = set(lines)
        changes.append(Change(content_hash(text)[:12], when, f"system message first seen in candidate {cid}", added))
    if not changes:
        raise SuggestionError("no candidate has a system message: give a prompt file under git (--git FILE)")
    return changes


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“])")


def instructions(lines: Iterable[str]) -> list[str]:
    """The instructions among added lines: one per sentence, markdown bullets and headings stripped."""
    out = []
    for line in lines:
        line = re.sub(r"^(?:#+|[-*•]|\d+[.)])\s*", "", line).strip()
        out += [s.strip() for s in _SENTENCE.split(line) if len(s.strip().split()) >= 2]
    return out


# ----------------------------------------------------------------------------- candidate assertions

_NUM = r"(\d[\d,]*)"
_LIMIT = re.compile(
    rf"\b(under|fewer than|less than|at most|no more than|not more than|maximum of|max(?:imum)?|within|up to)\s+"
    rf"{_NUM}\s+(words?|characters?|chars?)\b",
    re.IGNORECASE,
)
_QUOTED = r"[\"'“‘]([^\"'”’]{1,80})[\"'”’]"
_RULES: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(
            r"\b(?:include|add|provide|give|share|contain|end with|link to)\b.*\b(?:link|url|hyperlink)s?\b", re.I
        ),
        lambda m: r"regex: https?://\S+",
    ),
    (
        re.compile(r"\b(?:in|as|valid|only)\s+json\b|\bjson (?:object|only|format)\b", re.I),
        lambda m: 'json-schema: {"type": "object"}',
    ),
    (
        re.compile(rf"\b(?:never|do not|don't|must not|should not|avoid)\s+(?:\w+\s+){{0,3}}?{_QUOTED}", re.I),
        lambda m: f"not-contains: {m.group(1).strip()}",
    ),
    (
        re.compile(rf"\b(?:always|must)\s+(?:\w+\s+){{0,3}}?{_QUOTED}", re.I),
        lambda m: f"contains: {m.group(1).strip()}",
    ),
    (
        re.compile(rf"\b(?:start|begin|open)\w*\s+(?:\w+\s+){{0,3}}?with\s+{_QUOTED}", re.I),
        lambda m: rf"regex: ^\s*{re.escape(m.group(1).strip())}",
    ),
    (
        re.compile(rf"\b(?:end|finish|close|sign off)\w*\s+(?:\w+\s+){{0,3}}?with\s+{_QUOTED}", re.I),
        lambda m: rf"regex: {re.escape(m.group(1).strip())}\s*$",
    ),
    (re.compile(r"\bbullet(?:ed)?[- ](?:points?|list)\b", re.I), lambda m: r"regex: (?m)^\s*[-*•]\s"),
]


def rule_assertions(instruction: str) -> list[str]:
    """Machine-checkable assertions for a plain instruction; none when it needs judgement."""
    out = []
    for m in _LIMIT.finditer(instruction):
        n = int(m.group(2).replace(",", ""))
        strict = m.group(1).lower() in ("under", "fewer than", "less than")
        unit = "max-words" if m.group(3).lower().startswith("word") else "max-chars"
        out.append(f"{unit}: {n - 1 if strict else n}")
    for pattern, make in _RULES:
        found = pattern.search(instruction)
        if found:
            out.append(make(found))
    return list(dict.fromkeys(out))


def _judge_target(judge: JudgeConfig) -> Any:
    return make_target(
        f"openai:{judge.model}",
        base_url=judge.base_url,
        api_key_env=judge.api_key_env,
        params={"temperature": judge.temperature},
    )


def _proposed(text: str | None) -> str | None:
    body = (text or "").strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    got = data.get("assertion") if isinstance(data, dict) else None
    return " ".join(got.split()) if isinstance(got, str) and got.strip() else None


def _suggestion(assertion: str, kind: str, change: Change, instruction: str, note: str | None = None) -> Suggestion:
    return Suggestion("a-" + content_hash(assertion)[:8], assertion, kind, change.version, instruction, note=note)


def propose(changes: list[Change], judge: JudgeConfig | None, limits: Limits | None = None) -> list[Suggestion]:
    """One or more candidate assertions per instruction a change added: rules where plain, else the judge
    endpoint's proposal (without a judge: the instruction itself, as a plain-language assertion)."""
    out: list[Suggestion] = []
    pending: list[tuple[Change, str]] = []
    for change in changes:
        for text in instructions(change.added):
            rules = rule_assertions(text)
            out += [_suggestion(a, "rule", change, text) for a in rules]
            if not rules:
                pending.append((change, text))
    if judge is None:
        out += [_suggestion(f"follows: {t}", "judge", c, t, "no judge: the instruction as written") for c, t in pending]
    else:
        replies = ask_each(
            _judge_target(judge), [PROPOSE.format(instruction=t) for _, t in pending], limits or Limits()
        )
        for (change, text), (reply, error) in zip(pending, replies, strict=True):
            got = _proposed(reply.output if reply else None)
            note = None if got else f"the judge proposed nothing ({error or 'no assertion in its reply'})"
            out.append(_suggestion(got or f"follows: {text}", "judge", change, text, note))
    unique: dict[str, Suggestion] = {}
    for s in out:
        unique.setdefault(s.id, s)
    return list(unique.values())


# ----------------------------------------------------------------------------- checking and picking


def check(assertion: str, output: str) -> bool | None:
    """Whether ``output`` passes a machine-checkable assertion; None for one only a judge can answer."""
    head, sep, _ = assertion.partition(":")
    name = CHECKED_BY.get(head.strip().lower()) if sep else None
    if name is None:
        return None
    case = {"id": "suggestion", "expected": {"assertions": [assertion]}}
    return SCORERS.get(name)(case, {"output": output, "tool_calls": [], "status": "ok"}).passed


def _judged(
    items: list[tuple[Suggestion, LabelledOutput]], judge: JudgeConfig, limits: Limits | None
) -> list[bool | None]:
    prompts = [CHECK.format(assertion=s.assertion, output=o.output) for s, o in items]
    verdicts: list[bool | None] = []
    for reply, _ in ask_each(_judge_target(judge), prompts, limits or Limits()):
        try:
            verdicts.append(parse_verdict(reply.output if reply else None)[0])
        except JudgeError:
            verdicts.append(None)
    return verdicts


def measure(
    suggestions: list[Suggestion],
    outputs: list[LabelledOutput],
    judge: JudgeConfig | None,
    limits: Limits | None = None,
) -> None:
    """Fill each suggestion's catches and false failures over the labelled outputs (judge ones through the
    judge endpoint; left unchecked without one)."""
    asks: list[tuple[Suggestion, LabelledOutput]] = []
    for s in suggestions:
        for o in outputs:
            if s.kind == "judge":
                asks.append((s, o))
                continue
            _count(s, o, check(s.assertion, o.output))
    if judge is None:
        for s, _ in asks:
            s.unchecked += 1
        return
    for (s, o), passed in zip(asks, _judged(asks, judge, limits), strict=True):
        _count(s, o, passed)


def _count(s: Suggestion, o: LabelledOutput, passed: bool | None) -> None:
    if passed is None:
        s.unchecked += 1
    elif not passed:
        (s.false_failures if o.passed else s.catches).append(o.id)


def select(suggestions: list[Suggestion], passes: int, budget: float, most: int) -> list[str]:
    """Greedy set cover: repeatedly the suggestion that catches the most failures not yet caught (fewest
    false failures on a tie), while the passing outputs the whole set fails stay within ``budget`` of them."""
    picked: list[str] = []
    caught: set[str] = set()
    failed: set[str] = set()
    allowed = budget * passes
    while len(picked) < most:
        best = None
        for s in suggestions:
            if s.id in picked:
                continue
            new = len(set(s.catches) - caught)
            worse = failed | set(s.false_failures)
            if new == 0 or len(worse) > allowed:
                continue
            key = (new, -len(worse), s.id)
            if best is None or key > best[0]:
                best = (key, s)
        if best is None:
            break
        picked.append(best[1].id)
        caught |= set(best[1].catches)
        failed |= set(best[1].false_failures)
    return picked


# ----------------------------------------------------------------------------- the whole step


def labelled_outputs(ws: Workspace, path: Path | None = None, set_name: str | None = None) -> list[LabelledOutput]:
    """Outputs reviewers judged: from a JSONL of ``{id, output, verdict, failure_tags?}``, else the recorded
    outputs of the workspace's reviewed candidates (their latest review with a verdict)."""
    if path is not None:
        return _outputs_file(path)
    out = []
    for cand in list_candidates(ws, set_name):
        review = latest_review(ws, cand.id)
        if review is None or review.verdict not in ("pass", "fail") or not cand.recorded_output:
            continue
        out.append(LabelledOutput(cand.id, cand.recorded_output, review.verdict == "pass", review.failure_tags))
    return out


def _outputs_file(path: Path) -> list[LabelledOutput]:
    out = []
    for where, row in json_lines(path, SuggestionError):
        verdict = str(row.get("verdict", "")).lower() if isinstance(row, dict) else ""
        if verdict not in ("pass", "fail") or not isinstance(row.get("output"), str) or not row.get("id"):
            raise SuggestionError(f"{where}: a labelled output is {{id, output, verdict: pass|fail}}")
        tags = row.get("failure_tags") or []
        out.append(LabelledOutput(str(row["id"]), row["output"], verdict == "pass", [str(t) for t in tags]))
    return out


def _by_tag(outputs: list[LabelledOutput], caught: set[str]) -> dict[str, dict[str, int]]:
    tags: dict[str, dict[str, int]] = {}
    for o in outputs:
        for t in o.tags if not o.passed else []:
            row = tags.setdefault(t, {"failures": 0, "caught": 0})
            row["failures"] += 1
            row["caught"] += o.id in caught
    return dict(sorted(tags.items()))


def suggest(
    ws: Workspace,
    *,
    git_file: Path | None = None,
    outputs_file: Path | None = None,
    set_name: str | None = None,
    judge: JudgeConfig | None = None,
    budget: float = 0.1,
    most: int = 5,
    limits: Limits | None = None,
    actor: str | None = None,
) -> SuggestReport:
    """Candidate assertions from the template's history (``git_file``, else the candidates' system messages),
    measured on the labelled outputs, and a small set picked among them; kept for :func:`accept`."""
    ws.authorize(actor, RUN_ROLES, "suggesting assertions")
    if not 0 <= budget < 1:
        raise SuggestionError(f"the false-failure budget is a share of passing outputs in [0, 1), got {budget}")
    changes = changes_from_git(git_file) if git_file is not None else changes_from_candidates(ws, set_name)
    outputs = labelled_outputs(ws, outputs_file, set_name)
    if not any(not o.passed for o in outputs):
        raise SuggestionError("no labelled output failed: suggestions are picked by the failures reviewers tagged")
    suggestions = propose(changes, judge, limits)
    measure(suggestions, outputs, judge, limits)
    passes = sum(o.passed for o in outputs)
    picked = select(suggestions, passes, budget, most)
    chosen = [s for s in suggestions if s.id in picked]
    caught = set().union(*(s.catches for s in chosen)) if chosen else set()
    failed = set().union(*(s.false_failures for s in chosen)) if chosen else set()
    report = SuggestReport(
        changes,
        suggestions,
        picked,
        len(outputs) - passes,
        passes,
        sorted(caught),
        sorted(failed),
        _by_tag(outputs, caught),
        budget,
        now_iso(),
    )
    atomic_write(ws.state_dir / SUGGESTIONS_FILE, orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    return report


def saved_suggestions(ws: Workspace) -> dict[str, dict[str, Any]]:
    path = ws.state_dir / SUGGESTIONS_FILE
    if not path.exists():
        raise SuggestionError("no suggestions yet: run `evaltray assertions suggest` first")
    return {s["id"]: s for s in orjson.loads(path.read_bytes())["suggestions"]}


def _within(name: str, slice: str) -> bool:
    """Whether slice ``name`` is ``slice`` or one of its sub-slices."""
    return name == slice or name.startswith(slice + "/")


def _chosen(ws: Workspace, ids: list[str]) -> list[str]:
    """The assertions of the saved suggestions ``ids``, in order; an unknown id stops it."""
    saved = saved_suggestions(ws)
    unknown = [i for i in ids if i not in saved]
    if unknown or not ids:
        raise SuggestionError(
            f"no suggestion {unknown[0]!r} in the last suggestions" if unknown else "name a suggestion"
        )
    return [saved[i]["assertion"] for i in ids]


def accept_into_slice(
    ws: Workspace, ids: list[str], actor: str, slice: str, *, set_name: str | None = None, dry_run: bool = False
) -> list[str]:
    """Add the suggestions ``ids`` to the slice's scorers: ``slices.<slice>.assertions`` in ``plan.yaml``,
    which ``score`` checks on every case of the slice and its sub-slices, the cases' own labels untouched.
    A slice that neither the plan nor an active case names is refused. Returns the assertions it gains."""
    chosen = _chosen(ws, ids)
    plan = load_plan(ws)
    tray = load_cases(ws, ws.check_set(set_name))
    if slice not in plan.slices and not any(_within(row["slice"], slice) for row in tray.values()):
        raise NotFound(f"no slice {slice!r} in plan.yaml or among the active cases of set {ws.check_set(set_name)}")
    if dry_run:
        return [a for a in dict.fromkeys(chosen) if a not in slice_assertions(plan, slice)]
    return add_slice_assertions(ws, slice, chosen, actor)


def accept(
    ws: Workspace,
    ids: list[str],
    actor: str,
    *,
    cases: Iterable[str] = (),
    slice: str | None = None,
    set_name: str | None = None,
    dry_run: bool = False,
) -> dict[str, list[str]]:
    """Add the suggestions ``ids`` to the ``expected.assertions`` of each case named, or of every active
    case of ``slice`` (and its sub-slices), as a signed relabel that ``evaltray promote`` applies; the rest
    of each label is kept. Returns, per case, the assertions it gains (none: it already had them)."""
    chosen = _chosen(ws, ids)
    tray = load_cases(ws, ws.check_set(set_name))
    targets = list(dict.fromkeys(cases))
    if slice is not None:
        targets += [c for c, row in sorted(tray.items()) if _within(row["slice"], slice)]
    if not targets:
        raise SuggestionError("name the cases (--case) or a slice (--slice) to add the assertions to")
    gained: dict[str, list[str]] = {}
    for cid in targets:
        if cid not in tray:
            raise NotFound(f"no active case {cid!r} in set {ws.check_set(set_name)}")
        expected = tray[cid]["expected"]
        new = [a for a in chosen if a not in expected["assertions"]]
        gained[cid] = new
        if new and not dry_run:
            relabel_case(
                ws,
                cid,
                actor,
                reference=expected.get("reference"),
                behavior_code=expected.get("behavior_code"),
                assertions=[*expected["assertions"], *new],
                tool_calls=expected.get("tool_calls"),
                tool_calls_ordered=expected.get("tool_calls_ordered"),
                critique="assertions accepted from suggestions: " + ", ".join(ids),
            )
    return gained
