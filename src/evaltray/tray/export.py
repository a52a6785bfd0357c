"""Export golden-tray cases to promptfoo, Inspect AI, Hugging Face datasets (Parquet) and plain JSONL.

Every exported row carries the release version, release hash, split and case id, so a score computed
downstream can be traced back to the exact row it was computed on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from evaltray.core.errors import EvaltrayError
from evaltray.core.messages import chat_message
from evaltray.core.records import COMPOSE_ROLES, Message
from evaltray.core.registry import Registry
from evaltray.core.store import Workspace
from evaltray.core.util import atomic_write, canonical_json

from .gate import check_case
from .release import load_manifest, require_signed, select_cases, semver_key

__all__ = [
    "EXPORTERS",
    "PROMPTFOO_LOADERS",
    "ExportError",
    "Exported",
    "Exporter",
    "export_cases",
    "export_file_name",
    "export_release",
    "promptfoo_text",
]


class ExportError(EvaltrayError):
    """Cases cannot be exported: an unknown format, a row without its release, or an invalid case."""


@dataclass(frozen=True, slots=True)
class ExportedRelease:
    """The release every exported row names: its version, its content hash and the split (or subset)."""

    version: str
    hash: str
    split: str


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One validated case in its normal JSON form, with its messages parsed once."""

    case: dict[str, Any]
    messages: list[Message]

    @property
    def id(self) -> str:
        return str(self.case["id"])


Writer = Callable[[list[ExportRow], ExportedRelease], bytes]


@dataclass(frozen=True, slots=True)
class Exporter:
    """A target format: how its file ends and how its bytes are written."""

    name: str
    suffix: str
    write: Writer


#: Every export format by name; ``EXPORTERS.get("csv")`` names the ones there are.
EXPORTERS: Registry[Exporter] = Registry("export format", error=ExportError)


def exporter(name: str, suffix: str) -> Callable[[Writer], Writer]:
    """Decorator: register a writer as the export format ``name`` whose files end in ``suffix``."""

    def wrap(write: Writer) -> Writer:
        EXPORTERS.add(name, Exporter(name, suffix, write))
        return write

    return wrap


@dataclass(frozen=True, slots=True)
class Exported:
    """What :func:`export_release` wrote."""

    path: Path
    cases: int
    format: str
    set_name: str
    split: str  # the split, and the subset where one was named: ``dev``, ``dev-pr``
    release: str
    release_hash: str


def export_file_name(fmt: str, part: str, version: str | None = None, set_name: str | None = None) -> str:
    """The one naming rule: ``[<version>-<set>-]<part><suffix>``, e.g. ``1.1.0-main-dev.promptfoo.yaml``."""
    stem = f"{version}-{set_name}-{part}" if version is not None else part
    return stem + EXPORTERS.get(fmt).suffix


def export_release(
    ws: Workspace,
    version: str,
    *,
    to: str,
    split: str = "dev",
    subset: str | None = None,
    set_name: str | None = None,
    out: Path | None = None,
    actor: str | None = None,
) -> Exported:
    """Export one set of release ``version`` in format ``to``: a split, or a named subset of it.

    ``subset`` narrows ``split``: ``split="dev", subset="pr"`` is the pr subset (drawn from dev), and
    its part of the name is ``dev-pr``. Both subsets are drawn from dev, so the holdout has none.
    Written to ``out`` (a file, or a folder as in :func:`export_cases`), by default to
    ``exports/<version>-<set>-<split>[-<subset>]<suffix>`` in the workspace.
    """
    actor = ws.authorize(actor, COMPOSE_ROLES, "exporting a release")
    EXPORTERS.get(to)  # an unknown format fails before anything is read
    semver_key(version)  # a version names files: ``../1.0.0`` is refused here, not resolved
    set_name = ws.check_set(set_name)
    cases = select_cases(ws, version, set_name, split, subset)
    require_signed(ws, version, set_name)  # a release edited and re-hashed by hand is refused here
    part = f"{split}-{subset}" if subset else split
    release_hash = load_manifest(ws, version).content_hash
    path = out if out is not None else ws.root / "exports" / export_file_name(to, part, version, set_name)
    written = export_cases(cases, to, path, release=version, release_hash=release_hash, split=part)
    ws.record(actor, "export", version, set=set_name, split=part, format=to, cases=len(cases))
    return Exported(written, len(cases), to, set_name, part, version, release_hash)


def export_cases(
    cases: Sequence[Mapping[str, Any]], fmt: str, out: Path, *, release: str, release_hash: str, split: str
) -> Path:
    """Write ``cases`` (sorted by id) in format ``fmt`` to ``out`` atomically and return the path written.

    ``out`` is the file to write, or a folder (existing, or a path without a suffix) in which
    ``<split>.promptfoo.yaml`` / ``<split>.inspect.jsonl`` / ``<split>.hf.parquet`` / ``<split>.jsonl`` is written.
    """
    exporter = EXPORTERS.get(fmt)
    for name, value in (("release", release), ("release_hash", release_hash), ("split", split)):
        if not isinstance(value, str) or not value.strip():
            raise ExportError(f"cannot export without a {name}: every exported row must point back to its release")
    if "/" in split or "\\" in split:
        raise ExportError(f"split {split!r} may not contain a path separator")
    rows = _rows(cases)
    path = Path(out)
    if path.is_dir() or not path.suffix:
        path = path / export_file_name(fmt, split)
    try:
        data = exporter.write(rows, ExportedRelease(release, release_hash, split))
    except (UnicodeEncodeError, orjson.JSONEncodeError, pa.ArrowException):
        bad = _lone_surrogate(rows)
        if bad is None:
            raise
        # No UTF-8 file can hold one (evaltray's own releases cannot either): refused, never written mangled.
        raise ExportError(
            f"case {bad!r} holds text with a lone surrogate (not valid Unicode): cannot export it"
        ) from None
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# ----------------------------------------------------------------------------- shared row views


def _rows(cases: Sequence[Mapping[str, Any]]) -> list[ExportRow]:
    """Validate every case against :class:`~evaltray.core.records.Case`; refuse the export if any is invalid."""
    rows: list[ExportRow] = []
    seen: set[str] = set()
    for index, raw in enumerate(cases):
        raw_id = raw.get("id") if isinstance(raw, Mapping) else None
        label = f"case {raw_id!r}" if isinstance(raw_id, str) else f"case #{index + 1}"
        if not isinstance(raw, Mapping):
            raise ExportError(f"{label} is not a JSON object")
        case, problems = check_case(dict(raw))
        if case is None:
            # Problems name fields and rules only, never the offending values (they may hold PII).
            raise ExportError(f"{label} is not a valid golden-tray case: {'; '.join(problems)}")
        if case["id"] in seen:
            raise ExportError(f"case {case['id']!r} appears twice: an export needs unique case ids")
        seen.add(case["id"])
        messages = []
        for pos, m in enumerate(case["input"]["messages"], 1):
            message = chat_message(m)
            if message is None:
                raise ExportError(f"{label}: input message {pos} has no role")
            messages.append(message)
        rows.append(ExportRow(case, messages))
    return sorted(rows, key=lambda r: r.id)


def _lone_surrogate(rows: list[ExportRow]) -> str | None:
    """The id of the first case whose text holds a lone surrogate (``"\\ud800"`` in JSON), if any."""
    for row in rows:
        try:
            canonical_json(row.case)
        except orjson.JSONEncodeError:
            return row.id
    return None


def _metadata(row: ExportRow, rel: ExportedRelease) -> dict[str, Any]:
    """What every exported row says about itself: which case, which slice, which release."""
    c, labels = row.case, row.case["labels"]
    return {
        "id": row.id,
        "set": c["set"],
        "slice": c["slice"],
        "source": c["provenance"]["source"],
        "difficulty": c["difficulty"],
        "case_type": c["case_type"],
        "risk_level": c["risk_level"],
        "feature": labels["feature"],
        "scenario": labels["scenario"],
        "persona": labels["persona"],
        "tags": list(labels["tags"]),
        "release": rel.version,
        "release_hash": rel.hash,
        "split": rel.split,
    }


def _expectation(case: dict[str, Any], reference_key: str) -> dict[str, Any]:
    """The expected behaviour and what grounds it, as both the Inspect metadata and the Hugging Face row carry it."""
    exp, inp = case["expected"], case["input"]
    return {
        reference_key: exp["reference"],
        "behavior_code": exp["behavior_code"],
        "assertions": list(exp["assertions"]),
        "rubric": case["rubric"],
        "context": list(inp["context"]),
        "retrieved_doc_ids": list(inp["retrieved_doc_ids"]),
    }


def _last_user_text(messages: list[Message]) -> str:
    return next((m.content or "" for m in reversed(messages) if m.role == "user"), "")


def _json_text(value: Any) -> str:
    """Compact JSON text with non-ASCII kept as is (orjson never escapes it)."""
    return orjson.dumps(value).decode("utf-8")


def _openai_message(m: Message) -> dict[str, Any]:
    """The OpenAI chat wire form (``arguments`` as a JSON string): what chat templates and providers take."""
    d: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        d["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": c.arguments if isinstance(c.arguments, str) else _json_text(c.arguments),
                },
            }
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        d["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        d["name"] = m.name
    return d


# ----------------------------------------------------------------------------- promptfoo


class _Dumper(yaml.SafeDumper):
    """``yaml.safe_dump`` with multi-line text as ``|`` blocks so rubrics stay readable in review."""


#: Line breaks to YAML 1.1 (PyYAML) but text to YAML 1.2 (js-yaml, which promptfoo uses): written raw,
#: the two read them differently, so text holding one is double-quoted, where they are \N, \L and \P.
_YAML_11_BREAKS = re.compile("[\x85\u2028\u2029]")


#: Plain text that YAML 1.2 reads as a number, bool or null where YAML 1.1 does not (``0o17``, ``1e3``):
#: anything that starts like a number or is one of those words is quoted.
_YAML_12_NON_STRING = re.compile(r"[-+]?[0-9.]|(?:null|Null|NULL|true|True|TRUE|false|False|FALSE|~)$")


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself where a block or single quotes cannot hold the text.
    if _YAML_11_BREAKS.search(text):
        style: str | None = '"'
    elif "\n" in text:
        style = "|"
    else:
        style = "'" if _YAML_12_NON_STRING.match(text) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


#: Prefixes that make promptfoo replace a var (or an assertion value) with something else: ``file://`` reads
#: the file (runs ``.js``/``.py``, expands globs into more tests) and ``package:`` runs a module's function.
PROMPTFOO_LOADERS = ("file://", "package:")
#: A ``{`` that opens a Nunjucks tag, or a ``#`` that closes a comment (Nunjucks refuses a stray ``#}``).
_NUNJUCKS_TAG = re.compile(r"\{(?=[{%#])|#(?=\})")
_EMPTY = "{##}"  # a Nunjucks comment: renders as nothing


def promptfoo_text(text: str) -> str:
    """``text`` in the form that promptfoo's Nunjucks render turns back into ``text`` exactly.

    promptfoo renders each string var (and each assertion value) with Nunjucks, ``env`` in scope, before
    it fills the prompt; first it swaps ``{{ name }}`` for another var's value, strips one trailing
    newline, and reads a value that starts with ``file://`` or ``package:``. So every ``{`` that would
    open a tag (``{{``, ``{%``, ``{#``) becomes ``{{ '{' }}``, every ``#`` of a ``#}`` ``{{ '#' }}``
    (single quotes keep JSON text JSON), and a loader prefix or a trailing newline is fenced with an
    empty comment. Not a ``{% raw %}`` block: the text could close it. A prompt that inserts vars
    without rendering them (a JSON chat prompt) shows the escapes as written; none of them runs.
    """
    out = _NUNJUCKS_TAG.sub(lambda m: "{{ '" + m.group() + "' }}", text)
    if out.startswith(PROMPTFOO_LOADERS):
        out = _EMPTY + out
    if out.endswith("\n"):
        out += _EMPTY
    return out


def _promptfoo_asserts(case: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``llm-rubric`` per expectation; the case rubric rides with the first (reference, else behaviour)."""
    exp, rubric = case["expected"], case["rubric"]
    asserts: list[str] = []
    if exp["reference"]:
        text = f"The response must agree with this reference answer:\n{exp['reference']}"
        asserts.append(f"{text}\n\nGrading rubric:\n{rubric}" if rubric else text)
        rubric = None
    if exp["behavior_code"]:
        code = exp["behavior_code"]
        asserts.append(
            f"The response must follow behaviour {code}: {rubric}"
            if rubric
            else f"The response must follow behaviour {code}."
        )
        rubric = None
    if rubric:
        asserts.append(rubric)
    asserts.extend(exp["assertions"])
    return [{"type": "llm-rubric", "value": promptfoo_text(text)} for text in asserts]


_PROMPTFOO_HEADER = (
    "# promptfoo tests exported by evaltray. Run with your prompts and providers:\n"
    "#   promptfoo eval -c promptfooconfig.yaml -c <this file>\n"
)


@exporter("promptfoo", ".promptfoo.yaml")
def _promptfoo(rows: list[ExportRow], rel: ExportedRelease) -> bytes:
    tests = []
    for row in rows:
        canonical_json(row.case)  # YAML would escape a lone surrogate; refuse it as every other format does
        inp = row.case["input"]
        variables: dict[str, Any] = {
            "input": _last_user_text(row.messages),
            "messages": _json_text([_openai_message(m) for m in row.messages]),
        }
        if inp["context"]:
            # promptfoo's context-* assertions read ``context`` as one string.
            variables["context"] = "\n\n".join(inp["context"])
        if inp["tools"]:
            variables["tools"] = _json_text(inp["tools"])
        variables = {k: promptfoo_text(v) for k, v in variables.items()}
        tests.append(
            {
                "description": row.id,
                "vars": variables,
                "assert": _promptfoo_asserts(row.case),
                "metadata": _metadata(row, rel),
            }
        )
    doc = {
        "description": f"evaltray release {rel.version}, split {rel.split}: {len(rows)} cases "
        f"(release hash {rel.hash})",
        # The file is an overlay on the user's config; without an (empty) prompt list promptfoo adds a
        # default ``{{prompt}}`` prompt that runs every test a second time with an empty prompt.
        "prompts": [],
        "tests": tests,
    }
    # A wide line keeps the one-line JSON of ``messages`` unfolded, so it reads (and greps) as JSON.
    body = yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1 << 20)
    return (_PROMPTFOO_HEADER + body).encode("utf-8")


# ----------------------------------------------------------------------------- Inspect AI

_INSPECT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def _inspect_messages(row: ExportRow) -> list[dict[str, Any]]:
    """Inspect's chat form: ``tool_calls[].function`` is the tool name and ``arguments`` a dict."""
    out: list[dict[str, Any]] = []
    names: dict[str | None, str] = {}
    for m in row.messages:
        role = _INSPECT_ROLES.get(m.role)
        if role is None:
            raise ExportError(f"case {row.id!r}: Inspect AI has no message role {m.role!r}")
        # Inspect refuses a message without content; an assistant turn that only calls tools has none.
        d: dict[str, Any] = {"role": role, "content": m.content or ""}
        if role == "assistant" and m.tool_calls:
            calls = []
            for n, c in enumerate(m.tool_calls, 1):
                call: dict[str, Any] = {"id": c.id or f"call_{n}", "function": c.name}
                if isinstance(c.arguments, dict):
                    call["arguments"] = c.arguments
                else:
                    call["arguments"] = {}
                    if c.arguments is not None:
                        call["parse_error"] = f"arguments are not a JSON object: {c.arguments!r}"
                calls.append(call)
                names[c.id] = c.name
            d["tool_calls"] = calls
        if role == "tool":
            d["tool_call_id"] = m.tool_call_id
            d["function"] = m.name or names.get(m.tool_call_id)
            if m.is_error:
                d["error"] = {"type": "unknown", "message": m.content or ""}
        out.append(d)
    return out


def _inspect_target(expected: dict[str, Any]) -> str | list[str]:
    """The reference answer, else the behaviour code, else the assertions (Inspect allows a list)."""
    return expected["reference"] or expected["behavior_code"] or list(expected["assertions"])


@exporter("inspect", ".inspect.jsonl")
def _inspect(rows: list[ExportRow], rel: ExportedRelease) -> bytes:
    lines = []
    for row in rows:
        c = row.case
        metadata = _metadata(row, rel) | _expectation(c, "reference") | {"tools": list(c["input"]["tools"])}
        sample = {
            "id": row.id,
            "input": _inspect_messages(row),
            "target": _inspect_target(c["expected"]),
            "metadata": metadata,
        }
        lines.append(orjson.dumps(sample) + b"\n")
    return b"".join(lines)


# ----------------------------------------------------------------------------- Hugging Face Parquet

_STR = pa.string()
_STRINGS = pa.list_(_STR)
_TOOL_CALL = pa.struct([("id", _STR), ("type", _STR), ("function", pa.struct([("name", _STR), ("arguments", _STR)]))])
_MESSAGE = pa.struct(
    [("role", _STR), ("content", _STR), ("tool_calls", pa.list_(_TOOL_CALL)), ("tool_call_id", _STR), ("name", _STR)]
)

#: Fixed schema: typed columns survive an all-null column and concatenate across releases.
#: ``messages`` is typed, with tool ``arguments`` kept as JSON text (as in the OpenAI wire form),
#: because their shape differs per tool and would otherwise make the struct schema differ per file.
_HF_SCHEMA = pa.schema(
    [
        ("id", _STR),
        ("messages", pa.list_(_MESSAGE)),
        ("input", _STR),
        ("expected_reference", _STR),
        ("behavior_code", _STR),
        ("assertions", _STRINGS),
        ("rubric", _STR),
        ("context", _STRINGS),
        ("retrieved_doc_ids", _STRINGS),
        ("tools", _STR),
        ("set", _STR),
        ("slice", _STR),
        ("source", _STR),
        ("difficulty", _STR),
        ("case_type", _STR),
        ("risk_level", _STR),
        ("feature", _STR),
        ("scenario", _STR),
        ("persona", _STR),
        ("tags", _STRINGS),
        ("release", _STR),
        ("release_hash", _STR),
        ("split", _STR),
    ]
)


def _hf_feature(dtype: pa.DataType) -> Any:
    """The ``datasets.Features`` JSON for an Arrow type (strings, lists and structs).

    Lists use the ``[feature]`` form, which every ``datasets`` release reads (``{"_type": "List"}`` needs 4.0+).
    """
    if pa.types.is_string(dtype):
        return {"dtype": "string", "_type": "Value"}
    if pa.types.is_list(dtype):
        return [_hf_feature(dtype.value_type)]
    if pa.types.is_struct(dtype):
        return {dtype.field(i).name: _hf_feature(dtype.field(i).type) for i in range(dtype.num_fields)}
    raise TypeError(f"no datasets feature for Arrow type {dtype}")


def _hf_schema() -> pa.Schema:
    features = {f.name: _hf_feature(f.type) for f in _HF_SCHEMA}
    # json.dumps' spacing, as ``datasets`` itself writes this key.
    return _HF_SCHEMA.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})


@exporter("hf", ".hf.parquet")
def _hf(rows: list[ExportRow], rel: ExportedRelease) -> bytes:
    records = []
    for row in rows:
        c = row.case
        records.append(
            _metadata(row, rel)
            | {"messages": [_openai_message(m) for m in row.messages], "input": _last_user_text(row.messages)}
            | _expectation(c, "expected_reference")
            | {"tools": _json_text(c["input"]["tools"])}
        )
    table = pa.Table.from_pylist(records, schema=_hf_schema())
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


# ----------------------------------------------------------------------------- plain JSONL


@exporter("jsonl", ".jsonl")
def _jsonl(rows: list[ExportRow], rel: ExportedRelease) -> bytes:
    """The cases in their normal form, one canonical JSON object per line (the release names the file)."""
    return b"".join(canonical_json(row.case) + b"\n" for row in rows)
