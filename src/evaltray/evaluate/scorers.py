"""Rule scorers: what can be checked without a judge, registered in :data:`SCORERS`.

A scorer reads the case's ``expected`` (the label a person wrote) and a run's answer and gives a
:class:`Score`: pass, fail, or ``None`` where the case gives it nothing to check (``exact`` on a case with
no reference). Machine-checkable assertions are written with a prefix in ``expected.assertions``:
``contains: 30 days``, ``not-contains: guarantee``, ``regex: \\bRMA-\\d{6}\\b``, ``json-schema: {…}``,
``tool: lookup_order`` (a tool the answer must call), ``max-words: 50``, ``max-chars: 280``; assertions
without a prefix are for judges and people.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.registry import Registry

__all__ = ["SCORERS", "Score", "ScoreError", "assertions_of", "normalize_text", "scorer"]


class ScoreError(EvaltrayError):
    """A scorer cannot be used as asked (unknown name, a bad assertion)."""


@dataclass(frozen=True, slots=True)
class Score:
    """One scorer's verdict on one answer: ``passed`` None when the case gives the scorer nothing to check."""

    scorer: str
    passed: bool | None
    reason: str | None = None


Answer = dict[str, Any]  # a results row: output, tool_calls, status …
ScorerFn = Callable[[dict[str, Any], Answer], Score]
#: Scorers by name; each takes (case, answer) and returns a Score.
SCORERS: Registry[ScorerFn] = Registry("scorer", error=ScoreError)


def scorer(name: str) -> Callable[[ScorerFn], ScorerFn]:
    """Register a scorer (``@scorer("exact")``); a custom Python scorer registers the same way."""
    return SCORERS.register(name)


_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Case, accents' compatibility forms, punctuation and spacing do not make a different answer."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def assertions_of(case: dict[str, Any], kind: str) -> list[str]:
    """The values of the case's ``<kind>: value`` assertions."""
    out = []
    for a in (case.get("expected") or {}).get("assertions") or []:
        head, sep, value = str(a).partition(":")
        if sep and head.strip().lower() == kind:
            out.append(value.strip())
    return out


def _reference(case: dict[str, Any]) -> str | None:
    ref = (case.get("expected") or {}).get("reference")
    return ref if isinstance(ref, str) and ref.strip() else None


@scorer("exact")
def _exact(case: dict[str, Any], answer: Answer) -> Score:
    ref = _reference(case)
    if ref is None:
        return Score("exact", None, "no reference answer")
    out = (answer.get("output") or "").strip()
    return Score("exact", out == ref.strip(), None if out == ref.strip() else "differs from the reference")


@scorer("normalized")
def _normalized(case: dict[str, Any], answer: Answer) -> Score:
    ref = _reference(case)
    if ref is None:
        return Score("normalized", None, "no reference answer")
    ok = normalize_text(answer.get("output") or "") == normalize_text(ref)
    return Score("normalized", ok, None if ok else "differs from the reference (normalized)")


def _has_words(normalized: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``normalized`` as whole words ('guarantee' is not in 'guaranteed')."""
    return re.search(rf"(?<!\w){re.escape(normalize_text(phrase))}(?!\w)", normalized) is not None


@scorer("contains")
def _contains(case: dict[str, Any], answer: Answer) -> Score:
    """Every ``contains:`` assertion appears in the answer as whole words and no ``not-contains:`` one does
    (both normalized)."""
    must, must_not = assertions_of(case, "contains"), assertions_of(case, "not-contains")
    if not must and not must_not:
        return Score("contains", None, "no contains: assertions")
    out = normalize_text(answer.get("output") or "")
    missing = [m for m in must if not _has_words(out, m)]
    present = [m for m in must_not if _has_words(out, m)]
    if missing or present:
        why = [f"missing {m!r}" for m in missing] + [f"contains {m!r}" for m in present]
        return Score("contains", False, "; ".join(why))
    return Score("contains", True)


@scorer("regex")
def _regex(case: dict[str, Any], answer: Answer) -> Score:
    patterns = assertions_of(case, "regex")
    if not patterns:
        return Score("regex", None, "no regex: assertions")
    out = answer.get("output") or ""
    for p in patterns:
        try:
            if re.search(p, out) is None:
                return Score("regex", False, f"no match for {p!r}")
        except re.error as exc:
            raise ScoreError(f"case {case.get('id')}: regex {p!r} does not compile: {exc}") from None
    return Score("regex", True)


@scorer("json_schema")
def _json_schema(case: dict[str, Any], answer: Answer) -> Score:
    """The answer is JSON valid against every ``json-schema:`` assertion (a JSON Schema)."""
    schemas = assertions_of(case, "json-schema")
    if not schemas:
        return Score("json_schema", None, "no json-schema: assertions")
    try:
        doc = orjson.loads(answer.get("output") or "")
    except orjson.JSONDecodeError:
        return Score("json_schema", False, "the answer is not JSON")
    for text in schemas:
        try:
            schema = orjson.loads(text)
            jsonschema.validate(doc, schema)
        except orjson.JSONDecodeError:
            raise ScoreError(f"case {case.get('id')}: a json-schema: assertion is not JSON") from None
        except jsonschema.SchemaError as exc:
            raise ScoreError(f"case {case.get('id')}: not a JSON Schema: {exc.message}") from None
        except jsonschema.ValidationError as exc:
            return Score(
                "json_schema", False, f"{'/'.join(map(str, exc.absolute_path)) or 'the answer'}: {exc.message}"
            )
    return Score("json_schema", True)


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _passes(made: Any, wanted: Any) -> bool:
    """Whether a call's arguments hold every expected one with its value (JSON-equal); others may be there
    too. No expected arguments: any."""
    if wanted is None:
        return True
    wanted = _arguments(wanted)
    if isinstance(wanted, dict) and isinstance(made, dict):
        return all(k in made and made[k] == v for k, v in wanted.items())
    return bool(made == wanted)


@scorer("tool_calls")
def _tool_calls(case: dict[str, Any], answer: Answer) -> Score:
    """The answer calls every tool of the case's ``expected.tool_calls`` (name, and each argument the case
    gives with its value, JSON-equal; in order when ``expected.tool_calls_ordered``; one made call per expected
    call, so two expected lookups need two calls), and every ``tool:`` assertion's tool. Extra calls are
    allowed."""
    expected = (case.get("expected") or {}).get("tool_calls") or []
    names = assertions_of(case, "tool")
    if not expected and not names:
        return Score("tool_calls", None, "no expected tool calls")
    made = [(c.get("name"), _arguments(c.get("arguments"))) for c in answer.get("tool_calls") or []]
    missing = [n for n in names if n not in {name for name, _ in made}]
    ordered = bool((case.get("expected") or {}).get("tool_calls_ordered"))
    used: set[int] = set()  # each call the answer made matches one expected call at most
    at = 0
    for want in expected:
        wanted = want.get("arguments")
        match = [
            i
            for i, (name, args) in enumerate(made)
            if name == want.get("name") and _passes(args, wanted) and i not in used and (not ordered or i >= at)
        ]
        if not match:
            missing.append(str(want.get("name")))
        else:
            used.add(match[0])
            at = match[0] + 1
    if missing:
        return Score("tool_calls", False, "not called as expected: " + ", ".join(missing))
    return Score("tool_calls", True)


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:\.\d+)?")


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUMBER.finditer(text):
        try:
            out.append(float(m.group().replace(",", "")))
        except ValueError:
            continue
    return out


@scorer("numeric")
def _numeric(case: dict[str, Any], answer: Answer) -> Score:
    """The last number of the answer equals the last number of the reference, within the case's
    ``tolerance:`` assertion (absolute) or else one part in a million."""
    ref = _reference(case)
    want = _numbers(ref) if ref else []
    if not want:
        return Score("numeric", None, "no number in the reference")
    got = _numbers(answer.get("output") or "")
    if not got:
        return Score("numeric", False, "no number in the answer")
    given = assertions_of(case, "tolerance")
    try:
        tol = float(given[0]) if given else 1e-6 * max(1.0, abs(want[-1]))
    except ValueError:
        raise ScoreError(f"case {case.get('id')}: tolerance {given[0]!r} is not a number") from None
    ok = abs(got[-1] - want[-1]) <= tol
    return Score("numeric", ok, None if ok else f"{got[-1]:g} is not {want[-1]:g}")


_LENGTHS = (("max-words", "words"), ("max-chars", "characters"))


@scorer("length")
def _length(case: dict[str, Any], answer: Answer) -> Score:
    """The answer holds at most the words of every ``max-words:`` assertion and the characters of every
    ``max-chars:`` one (words are runs of letters and digits)."""
    limits = [(kind, unit, v) for kind, unit in _LENGTHS for v in assertions_of(case, kind)]
    if not limits:
        return Score("length", None, "no max-words: or max-chars: assertions")
    out = answer.get("output") or ""
    for kind, unit, value in limits:
        try:
            most = int(value)
        except ValueError:
            raise ScoreError(f"case {case.get('id')}: {kind}: {value!r} is not a whole number") from None
        got = len(re.findall(r"\w+", out)) if unit == "words" else len(out)
        if got > most:
            return Score("length", False, f"{got} {unit}, more than {most}")
    return Score("length", True)


@scorer("judge")
def _judge(case: dict[str, Any], answer: Answer) -> Score:
    """The LLM judge's verdicts on this answer (every dimension must pass), computed before scoring."""
    verdicts = answer.get("judge")
    if verdicts is None:
        raise ScoreError("the judge scorer needs a judge: `evaltray score RUN --scorers judge --judge judge.yaml`")
    failed_to_judge = [v for v in verdicts if v["passed"] is None]
    if failed_to_judge:
        raise ScoreError(f"judge, {failed_to_judge[0]['dimension']}: {failed_to_judge[0]['error']}")
    fails = [v for v in verdicts if not v["passed"]]
    if fails:
        return Score("judge", False, "; ".join(f"{v['dimension']}: {v['critique'] or 'fail'}" for v in fails))
    return Score("judge", True)
