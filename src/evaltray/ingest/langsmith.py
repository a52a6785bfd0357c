"""LangSmith runs: the SDK's ``{"post": [...], "patch": [...]}`` payloads, or runs as the API and exports
give them (a JSON array, ``{"runs": [...]}`` or JSONL). Runs sharing a ``trace_id`` become one Trace.

A run's post and patch are merged by run id (the JS SDK's patch has no ``id``: it comes from the last
``dotted_order`` segment). The tree is ``parent_run_id`` (or the dotted order); llm runs give the messages
(history resent by each call is not repeated), tool runs give tool results, the root gives name and latency.
Token counts and cost are the root's trace-wide aggregates when the API supplied them, else sums over the
innermost llm runs. ``session_id`` on an API run is the *project*; the conversation thread is read from the
metadata (``session_id``, ``thread_id``, ``conversation_id``) instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from evaltray.core.messages import text_of
from evaltray.core.records import Span, Trace

from ._common import (
    SHAPE_ERRORS,
    LineFinder,
    as_dict,
    as_float,
    as_int,
    guarded,
    head_text,
    parse_time,
    read_json,
    read_jsonl,
    round_cost,
    sum_present,
)
from ._registry import Issue, register
from .chat_payloads import collect_tools, decode, messages_from, unique_tools
from .conversation import ToolRun, Turn, leaf_ids, trace_conversation
from .feedback import feedback_value, is_feedback_name

_BATCH = re.compile(r'^\{\s*"(post|patch|runs)"\s*:')
_SEGMENT = re.compile(r"^\d{8}T\d{6,}Z(.+)$")
_FAR = datetime.max.replace(tzinfo=UTC)
_THREAD_KEYS = ("session_id", "thread_id", "conversation_id")
_USER_KEYS = ("user_id", "user", "userId")


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    if _BATCH.match(text):
        return '"run_type"' in text or '"dotted_order"' in text or '"trace_id"' in text
    if not text.startswith(("{", "[")):
        return False
    first = text.split("\n", 1)[0]
    sample = first if text.startswith("{") and first.strip() != "{" else text  # JSONL: judge the first run only
    return '"run_type"' in sample and ('"trace_id"' in sample or '"dotted_order"' in sample)


def _segment_id(segment: str) -> str | None:
    m = _SEGMENT.match(segment)
    return m.group(1) if m else None


def _run_id(run: Mapping[str, Any]) -> str | None:
    if run.get("id"):
        return str(run["id"])
    dotted = run.get("dotted_order")
    return _segment_id(dotted.rsplit(".", 1)[-1]) if isinstance(dotted, str) and dotted else None


def _trace_id(run: Mapping[str, Any], rid: str, runs: Mapping[str, Mapping[str, Any]]) -> str:
    """The run's trace: its ``trace_id``, else the root of its dotted order, else the top of its parent chain."""
    if run.get("trace_id"):
        return str(run["trace_id"])
    dotted = run.get("dotted_order")
    root = _segment_id(dotted.split(".", 1)[0]) if isinstance(dotted, str) and dotted else None
    if root:
        return root
    seen = {rid}
    while (parent := _parent_id(run)) is not None and parent in runs and parent not in seen:
        seen.add(parent)
        rid, run = parent, runs[parent]
    return rid


def _parent_id(run: Mapping[str, Any]) -> str | None:
    if run.get("parent_run_id"):
        return str(run["parent_run_id"])
    dotted = run.get("dotted_order")
    parts = dotted.split(".") if isinstance(dotted, str) else []
    return _segment_id(parts[-2]) if len(parts) > 1 else None


def _metadata_of(run: Mapping[str, Any]) -> dict[str, Any]:
    extra = as_dict(run.get("extra"))
    return as_dict(extra.get("metadata"))


def _merge(old: dict[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """A run's post updated by its patch: the patch wins, except where it sends nothing."""
    if old is None:
        return dict(new)
    merged = dict(old)
    for key, value in new.items():
        if value is None or (value == {} and merged.get(key)):
            continue
        if key == "extra" and isinstance(value, dict) and isinstance(merged.get("extra"), dict):
            value = {**merged["extra"], **value, "metadata": {**_metadata_of(merged), **_metadata_of({"extra": value})}}
        merged[key] = value
    return merged


def _records(path: Path) -> Iterator[tuple[Any, int | None, bool] | Issue]:
    """Every run record with its line (JSONL) and whether it is a patch; or an Issue for unreadable input."""
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    doc: Any = None
    if not jsonl:
        doc = read_json(path)
        if isinstance(doc, Issue):
            with path.open("rb") as fh:
                first = fh.readline()
            try:  # JSON Lines saved under a .json name
                jsonl = isinstance(orjson.loads(first), dict)
            except orjson.JSONDecodeError:
                jsonl = False
            if not jsonl:
                yield doc
                return
    if jsonl:
        for item in read_jsonl(path):
            if isinstance(item, Issue):
                yield item
            else:
                yield from _expand(item[1], path, item[0])
    else:
        yield from _expand(doc, path, None)


def _expand(obj: Any, path: Path, line: int | None) -> Iterator[tuple[Any, int | None, bool] | Issue]:
    if isinstance(obj, list):
        for run in obj:
            yield run, line, False
    elif isinstance(obj, dict) and ("post" in obj or "patch" in obj):
        for run in obj.get("post") or []:
            yield run, line, False
        for run in obj.get("patch") or []:
            yield run, line, True
    elif isinstance(obj, dict) and isinstance(obj.get("runs"), list):
        yield from _expand(obj["runs"], path, line)
    elif isinstance(obj, dict):
        yield obj, line, False
    else:
        yield Issue(str(path), line, "expected a run, a list of runs or {post, patch}")


@register("langsmith", sniff=_sniff, priority=15)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """LangSmith runs ({post, patch} SDK payloads, a JSON array or JSONL of runs), one trace per trace_id."""
    runs: dict[str, dict[str, Any]] = {}
    finder = LineFinder(path)
    for item in _records(path):
        if isinstance(item, Issue):
            yield item
            continue
        run, line, is_patch = item
        if not isinstance(run, dict):
            yield Issue(str(path), line, "run is not an object")
            continue
        rid = _run_id(run)
        if rid is None:
            yield Issue(str(path), line, "run has no 'id' and no 'dotted_order'")
            continue
        for key in ("start_time", "end_time"):
            if run.get(key) is not None and _time_or_none(run[key]) is None:
                where = line if line is not None else finder.record_line("id", rid, last=is_patch)
                yield Issue(str(path), where, f"run has an unreadable {key}", rid)
                break
        else:
            runs[rid] = _merge(runs.get(rid), run)
    traces: dict[str, list[dict[str, Any]]] = {}
    for rid, run in runs.items():
        traces.setdefault(_trace_id(run, rid, runs), []).append(run)
    for tid, members in traces.items():
        yield from guarded(path, None, tid, _trace, tid, members)


def _time_or_none(value: Any) -> Any:
    """parse_time, None where the value cannot be a time at all (a year out of range, a list of words)."""
    try:
        return parse_time(value)
    except SHAPE_ERRORS:
        return None


def _usage(run: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    """Input, output and total tokens of one llm run, from whichever place its SDK put them."""
    outputs = as_dict(run.get("outputs"))
    gens = outputs.get("generations")
    gen = gens[0][0] if isinstance(gens, list) and gens and isinstance(gens[0], list) and gens[0] else None
    message = as_dict(as_dict(gen).get("message"))
    llm_output = as_dict(outputs.get("llm_output"))
    for source in (
        outputs.get("usage_metadata"),
        _metadata_of(run).get("usage_metadata"),
        outputs.get("usage"),
        llm_output.get("token_usage"),
        (message.get("kwargs") or {}).get("usage_metadata"),
        run,
    ):
        if isinstance(source, dict):
            inp = as_int(source.get("input_tokens", source.get("prompt_tokens")))
            out = as_int(source.get("output_tokens", source.get("completion_tokens")))
            total = as_int(source.get("total_tokens"))
            if inp is not None or out is not None or total is not None:
                return inp, out, total
    return None, None, None


def _model(run: Mapping[str, Any]) -> str | None:
    extra = as_dict(run.get("extra"))
    params = as_dict(extra.get("invocation_params"))
    inputs = as_dict(run.get("inputs"))
    model = (
        _metadata_of(run).get("ls_model_name") or params.get("model") or params.get("model_name") or inputs.get("model")
    )
    return str(model) if model else None


def _model_version(run: Mapping[str, Any]) -> str | None:
    outputs = as_dict(run.get("outputs"))
    llm_output = as_dict(outputs.get("llm_output"))
    version = outputs.get("model") or llm_output.get("model_name")
    return str(version) if version else None


def _tool_output(run: Mapping[str, Any]) -> str | None:
    outputs = decode(run.get("outputs"))
    value = outputs.get("output", outputs) if isinstance(outputs, dict) else outputs
    if isinstance(value, dict) and value.get("lc") == 1 and isinstance(value.get("kwargs"), dict):
        value = value["kwargs"].get("content")  # a serialized LangChain ToolMessage
    if value in (None, {}):
        return str(run["error"]) if run.get("error") else None
    return text_of(value)


def _tool_args(run: Mapping[str, Any]) -> Any:
    inputs = decode(run.get("inputs"))
    if isinstance(inputs, dict) and set(inputs) == {"input"}:
        return decode(inputs["input"])  # LangChain tools log their argument string under "input"
    return inputs


def _doc_ids(run: Mapping[str, Any]) -> list[str]:
    outputs = as_dict(run.get("outputs"))
    ids = []
    for doc in outputs.get("documents") or []:
        if isinstance(doc, dict):
            if doc.get("lc") == 1:  # a serialized Document: its "id" is the class path, the fields are in kwargs
                doc = as_dict(doc.get("kwargs"))
            meta = as_dict(doc.get("metadata"))
            did = doc.get("id") or meta.get("id") or meta.get("doc_id") or meta.get("source")
            if did:
                ids.append(str(did))
    return ids


def _feedback(stats: Any) -> tuple[float | None, str | None, dict[str, Any]]:
    """User feedback from ``feedback_stats`` (the key with most votes among feedback-like keys), and all averages."""
    if not isinstance(stats, dict):
        return None, None, {}
    averages = {k: v.get("avg") for k, v in stats.items() if isinstance(v, dict)}
    keys = sorted((k for k in averages if is_feedback_name(k)), key=lambda k: -(as_int(stats[k].get("n")) or 0))
    for key in keys:
        value = feedback_value(averages[key])
        if value is not None:
            comments = stats[key].get("comments")
            return value, (str(comments[0]) if isinstance(comments, list) and comments else None), averages
    return None, None, averages


def _user_metadata(md: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata the user set: without SDK internals (``ls_*``, usage) and leaked ``LANGSMITH_*`` environment."""
    return {
        k: v
        for k, v in md.items()
        if not k.startswith(("ls_", "LANGSMITH_", "LANGCHAIN_")) and k not in ("usage_metadata", "revision_id")
    }


def _trace(tid: str, runs: list[dict[str, Any]]) -> Trace:
    runs.sort(key=lambda r: (parse_time(r.get("start_time")) or _FAR, str(r.get("dotted_order") or "")))
    by_id = {str(_run_id(r)): r for r in runs}
    parent_of = {rid: _parent_id(r) for rid, r in by_id.items()}
    root = by_id.get(tid) or next((r for rid, r in by_id.items() if parent_of[rid] not in by_id), runs[0])
    leaves, _ = leaf_ids([rid for rid, r in by_id.items() if r.get("run_type") == "llm"], parent_of)
    leaf_runs = [by_id[x] for x in leaves]
    tools: list[dict[str, Any]] = []
    turns = [_turn(run, tools) for run in leaf_runs]
    tool_runs = [
        ToolRun(
            name=str(r.get("name") or ""),
            arguments=_tool_args(r),
            output=_tool_output(r),
            is_error=bool(r.get("error")),
            start=parse_time(r.get("start_time")),
        )
        for r in runs
        if r.get("run_type") == "tool"
    ]
    messages = trace_conversation(turns, tool_runs, root.get("inputs"), root.get("outputs"))
    modelled = [r for r in leaf_runs if _model(r)]
    last = modelled[-1] if modelled else None
    inp, out, total, cost = _totals(root, leaf_runs)
    start, end = parse_time(root.get("start_time")), parse_time(root.get("end_time"))
    if end is None:
        ends = [t for t in (parse_time(r.get("end_time")) for r in runs) if t is not None]
        end = max(ends) if ends else None
    failed = [r for r in runs if r.get("error")]
    feedback, comment, averages = _feedback(root.get("feedback_stats"))
    mds = [_metadata_of(r) for r in runs]
    root_md = _metadata_of(root)
    hub = next((md for md in mds if md.get("lc_hub_repo")), None)
    return Trace(
        trace_id=tid,
        source_format="langsmith",
        messages=messages,
        tools=unique_tools(tools),
        start_time=start,
        end_time=end,
        latency_ms=round((end - start).total_seconds() * 1000, 3) if start and end else None,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total,
        cost_usd=cost,
        model=_model(last) if last else None,
        model_version=_model_version(last) if last else None,
        provider=next((str(md["ls_provider"]) for md in reversed(mds) if md.get("ls_provider")), None),
        session_id=next((str(md[k]) for md in [root_md, *mds] for k in _THREAD_KEYS if md.get(k)), None),
        user_id=next((str(md[k]) for md in [root_md, *mds] for k in _USER_KEYS if md.get(k)), None),
        name=root.get("name"),
        feature=str(root_md["feature"]) if root_md.get("feature") is not None else None,
        tags=list(dict.fromkeys(str(t) for r in runs for t in r.get("tags") or [])),
        feedback_score=feedback,
        feedback_comment=comment,
        prompt_template_id=(
            f"{hub['lc_hub_repo']}:{hub['lc_hub_commit_hash']}"
            if hub and hub.get("lc_hub_commit_hash")
            else str(hub["lc_hub_repo"])
            if hub
            else None
        ),
        retrieved_doc_ids=list(dict.fromkeys(d for r in runs if r.get("run_type") == "retriever" for d in _doc_ids(r))),
        status="error" if failed else "ok",
        error=f"{failed[0].get('name')}: {failed[0]['error']}"[:500] if failed else None,
        spans=[
            Span(
                id=str(_run_id(r)),
                parent_id=parent_of[str(_run_id(r))],
                name=r.get("name"),
                kind=r.get("run_type"),
                start_time=parse_time(r.get("start_time")),
                end_time=parse_time(r.get("end_time")),
                status="error" if r.get("error") else "ok",
                model=_model(r) if r.get("run_type") == "llm" else None,
            )
            for r in runs
        ],
        metadata=_trace_metadata(root, len(runs), averages),
    )


def _turn(run: Mapping[str, Any], tools: list[dict[str, Any]]) -> Turn:
    """One llm run as a model call; the tool definitions it was sent are added to ``tools``."""
    extra = as_dict(run.get("extra"))
    params = as_dict(extra.get("invocation_params"))
    collect_tools(params.get("tools"), tools)
    collect_tools(as_dict(_metadata_of(run).get("ls_invocation_params")).get("tools"), tools)
    return Turn(
        messages_from(run.get("inputs"), "user", tools),
        messages_from(run.get("outputs"), "assistant", tools),
        parse_time(run.get("start_time")),
        parse_time(run.get("end_time")),
    )


def _totals(
    root: Mapping[str, Any], leaf_runs: list[dict[str, Any]]
) -> tuple[int | None, int | None, int | None, float | None]:
    """Input, output and total tokens and cost: the root's trace-wide aggregates, else the model calls' sums."""
    if any(root.get(k) is not None for k in ("prompt_tokens", "completion_tokens", "total_tokens")):
        inp, out, total = (as_int(root.get(k)) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    else:  # SDK payloads carry no aggregates: add up the model calls
        usage = [_usage(r) for r in leaf_runs]
        inp, out, total = (sum_present(u[i] for u in usage) for i in range(3))
    cost = as_float(root.get("total_cost"))
    if cost is None:
        cost = round_cost(sum_present(as_float(r.get("total_cost")) for r in leaf_runs))
    return inp, out, total, cost


def _trace_metadata(root: Mapping[str, Any], n_runs: int, averages: dict[str, Any]) -> dict[str, Any]:
    root_md = _metadata_of(root)
    meta: dict[str, Any] = {"runs": n_runs}
    if root.get("session_name"):
        meta["project"] = root["session_name"]
    if _user_metadata(root_md):
        meta["metadata"] = _user_metadata(root_md)
    runtime = as_dict(as_dict(root.get("extra")).get("runtime"))
    if runtime.get("sdk"):
        meta["sdk"] = f"{runtime['sdk']} {runtime.get('sdk_version') or ''}".strip()
    if averages:
        meta["feedback_stats"] = averages
    if root.get("reference_example_id"):
        meta["reference_example_id"] = str(root["reference_example_id"])
    return meta
