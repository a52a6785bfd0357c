"""Langfuse trace downloads: one ``{trace, observations}`` object per file, one Trace per Langfuse trace.

Observations nest by ``parentObservationId``; their ``input``/``output`` hold whatever the framework's
instrumentation sent (JSON-encoded strings, plain text, OpenAI/LangChain/Gemini/Anthropic/OTel-GenAI
messages, Responses API items, ``{"args", "kwargs"}`` decorator captures). Rules:

* The conversation comes from the GENERATION observations in start order. A generation that only wraps
  one other generation (agno's ``OpenAIChat.invoke`` around ``chat gpt-4o-mini``, Vercel's
  ``ai.generateText`` around ``doGenerate``) is the same model call seen twice: the pair counts once,
  taking the input and the output from whichever member renders them more completely.
* History each call resends is not repeated: a call whose input replays the conversation so far
  (as a subsequence) replaces it; otherwise only its new messages are appended. Tool results from TOOL
  observations are added after their call when no generation shows them.
* Tokens and cost are summed over the innermost generations only (wrappers repeat or re-estimate them).
* A score is user feedback when its source is not ``EVAL`` and its name says feedback/thumbs/rating;
  its value maps to [-1, 1] (see :func:`.feedback.feedback_value`). All scores stay in ``metadata["scores"]``.

The payloads are read by :mod:`.chat_payloads` and the calls merged by :mod:`.conversation`, as the LangSmith
parser does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaltray.core.messages import maybe_json, text_of
from evaltray.core.records import Message, Span, Trace

from ._common import (
    LineFinder,
    as_dict,
    as_float,
    as_int,
    first_value,
    guarded,
    head_text,
    parse_time,
    read_json,
    read_jsonl,
    round_cost,
    sum_present,
)
from ._registry import Issue, register
from .chat_payloads import collect_tools, decode, messages_from, plain_text, unique_tools
from .conversation import ToolRun, Turn, leaf_ids, prepend_system, trace_conversation
from .feedback import feedback_value, is_feedback_name

_FAR = datetime.max.replace(tzinfo=UTC)
_HEAD = re.compile(r'^\[?\s*\{\s*"(trace|observations)"\s*:')


def _sniff(path: Path, head: bytes) -> bool:
    text = head_text(head)
    return bool(_HEAD.match(text)) and ('"observations"' in text or '"projectId"' in text or '"traceId"' in text)


def _dict(value: Any) -> dict[str, Any]:
    value = decode(value)
    return value if isinstance(value, dict) else {}


def _attrs(obs: Mapping[str, Any]) -> dict[str, Any]:
    """An observation's metadata flattened: OTel span attributes and the user's own keys in one dict."""
    md = _dict(obs.get("metadata"))
    flat = {k: v for k, v in md.items() if k not in ("attributes", "resourceAttributes", "scope")}
    flat.update(_dict(md.get("attributes")))
    return flat


_PROVIDER_KEYS = (
    "gen_ai.provider.name",
    "llm.provider",
    "gen_ai.system",
    "ls_provider",
    "langsmith.metadata.ls_provider",
    "ai.model.provider",
    "llm.system",
)
_RESPONSE_MODEL_KEYS = ("gen_ai.response.model", "ai.response.model")
_CALL_ID_KEYS = ("gen_ai.tool.call.id", "ai.toolCall.id", "tool_call.id", "tool.call_id")


def _usage(obs: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    details = obs.get("usageDetails")
    if isinstance(details, dict) and details:
        return as_int(details.get("input")), as_int(details.get("output")), as_int(details.get("total"))
    usage = as_dict(obs.get("usage"))  # Langfuse v2 public API
    return (
        as_int(first_value(obs, "inputUsage", "promptTokens") or usage.get("input")),
        as_int(first_value(obs, "outputUsage", "completionTokens") or usage.get("output")),
        as_int(first_value(obs, "totalUsage", "totalTokens") or usage.get("total")),
    )


def _cost(obs: Mapping[str, Any]) -> float | None:
    cost = as_float(obs.get("totalCost"))
    if cost is None and isinstance(obs.get("costDetails"), dict):
        cost = as_float(obs["costDetails"].get("total"))
    return cost if cost is not None else as_float(obs.get("calculatedTotalCost"))


def _model_version(obs: Mapping[str, Any], attrs: Mapping[str, Any]) -> str | None:
    version = first_value(attrs, *_RESPONSE_MODEL_KEYS)
    if version is None:
        out = _dict(obs.get("output"))
        version = out.get("model") or out.get("model_version") or out.get("modelVersion")
    return str(version) if version else None


def _system_hint(members: list[dict[str, Any]]) -> list[Message]:
    """System instructions a call carried beside its messages (OTel ``gen_ai.system_instructions``, Responses
    ``instructions``)."""
    for obs in members:
        text = plain_text(_attrs(obs).get("gen_ai.system_instructions"))
        if not text:
            instructions = _dict(obs.get("output")).get("instructions")
            text = instructions if isinstance(instructions, str) else None
        if text:
            return [Message(role="system", content=text)]
    return []


def observation_messages(
    obs: Mapping[str, Any], tools: list[dict[str, Any]] | None = None
) -> tuple[list[Message], list[Message]]:
    """The messages of one observation's input and output, as they stand (no conversation context)."""
    return messages_from(obs.get("input"), "user", tools), messages_from(obs.get("output"), "assistant", tools)


def _best_input(cands: list[list[Message]]) -> list[Message]:
    return max(cands, key=len)  # max keeps the first (innermost) on ties


def _best_output(cands: list[list[Message]]) -> list[Message]:
    def weight(msgs: list[Message]) -> tuple[int, int, int]:
        return (sum(len(m.tool_calls) for m in msgs), sum(1 for m in msgs if m.content), len(msgs))

    return max(cands, key=weight)


def _tool_text(value: Any) -> str | None:
    value = maybe_json(value)
    if value is None or (isinstance(value, str) and value.strip() == "null"):
        return None  # the SDKs log a tool that returned nothing as JSON null
    return text_of(value)


_DOC_ATTR = re.compile(r"retrieval\.documents\.(\d+)\.document\.id")


def _doc_ids(obs: Mapping[str, Any], attrs: Mapping[str, Any]) -> list[str]:
    """Ids of retrieved documents: OpenInference attributes, or a RETRIEVER observation's list of documents."""
    indexed = ((int(m.group(1)), v) for k, v in attrs.items() if (m := _DOC_ATTR.fullmatch(k)) and v)
    ids = [str(v) for _, v in sorted(indexed, key=lambda kv: kv[0])]
    if obs.get("type") == "RETRIEVER":
        out = decode(obs.get("output"))
        docs = out.get("documents") if isinstance(out, dict) else out
        for doc in docs if isinstance(docs, list) else []:
            if isinstance(doc, dict):
                meta = as_dict(doc.get("metadata"))
                did = first_value(doc, "id", "doc_id", "document_id") or first_value(
                    meta, "id", "doc_id", "document_id", "source"
                )
                if did is not None:
                    ids.append(str(did))
    return ids


def _feedback(scores: Any) -> tuple[float | None, str | None]:
    """The latest user-feedback score (not an EVAL judge) mapped to [-1, 1], with its comment."""
    best: tuple[str, float, str | None] | None = None
    for s in scores if isinstance(scores, list) else []:
        if not isinstance(s, dict) or s.get("source") == "EVAL" or not is_feedback_name(s.get("name")):
            continue
        value = feedback_value(s.get("stringValue") if s.get("dataType") == "CATEGORICAL" else s.get("value"))
        stamp = str(s.get("timestamp") or s.get("createdAt") or "")
        if value is not None and (best is None or stamp >= best[0]):
            best = (stamp, value, s.get("comment") or None)
    return (best[1], best[2]) if best else (None, None)


def _score_summary(scores: Any) -> list[dict[str, Any]]:
    out = []
    for s in scores if isinstance(scores, list) else []:
        if isinstance(s, dict) and s.get("name"):
            value = s.get("stringValue") if s.get("dataType") == "CATEGORICAL" else s.get("value")
            out.append({"name": s["name"], "value": value, "source": s.get("source"), "data_type": s.get("dataType")})
    return out


def _valid_observations(raw: Any, finder: LineFinder, line: int | None) -> tuple[list[dict[str, Any]], list[Issue]]:
    path = finder.path
    good: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for n, obs in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(obs, dict):
            issues.append(Issue(str(path), line, f"observation #{n + 1} is not an object"))
        elif not obs.get("id"):
            issues.append(Issue(str(path), line, f"observation #{n + 1} has no 'id'"))
        elif parse_time(obs.get("startTime")) is None:
            # last: an export repeats each observation, without its payload, inside the trace before the full list
            where = line if line is not None else finder.record_line("id", str(obs["id"]), last=True)
            issues.append(Issue(str(path), where, "observation has no readable startTime", str(obs["id"])))
        else:
            good.append(obs)
    return good, issues


def trace_from_export(doc: Mapping[str, Any], finder: LineFinder, line: int | None = None) -> Iterator[Trace | Issue]:
    """The Trace of one Langfuse ``{trace, observations}`` export of ``finder.path`` (at ``line`` in JSON Lines),
    and an Issue per unreadable observation."""
    tr = doc.get("trace")
    if tr is None and isinstance(doc.get("observations"), list) and doc.get("id"):
        tr = doc  # the public API's GET /api/public/traces/{id}: the trace itself, observations inside
    if not isinstance(tr, dict) or not tr.get("id"):
        yield Issue(str(finder.path), line, "expected an object with 'trace' (having an 'id') and 'observations'")
        return
    raw_obs = doc.get("observations") if isinstance(doc.get("observations"), list) else tr.get("observations")
    observations, issues = _valid_observations(raw_obs, finder, line)
    yield from issues
    yield _assemble(tr, observations)


def _export_id(doc: Mapping[str, Any]) -> str | None:
    """The trace id of an export, for naming it in an issue."""
    tr = doc.get("trace")
    tid = tr.get("id") if isinstance(tr, dict) else doc.get("id")
    return tid if isinstance(tid, str) else None


def _assemble(tr: Mapping[str, Any], observations: list[dict[str, Any]]) -> Trace:
    obs = sorted(observations, key=lambda o: (parse_time(o["startTime"]), parse_time(o.get("endTime")) or _FAR))
    by_id = {str(o["id"]): o for o in obs}
    attrs = {oid: _attrs(o) for oid, o in by_id.items()}
    tools: list[dict[str, Any]] = []
    turns, call_attrs, leaf_obs = _model_calls(by_id, attrs, tools)
    for oid, o in by_id.items():
        _collect_tools(o, attrs[oid], tools)
    messages = trace_conversation(turns, _tool_runs(by_id, attrs), tr.get("input"), tr.get("output"))
    usage = [_usage(o) for o in leaf_obs]
    modelled = [o for o in leaf_obs if o.get("model")]
    last = modelled[-1] if modelled else None
    last_attrs = call_attrs[str(last["id"])] if last else {}
    failed = [o for o in obs if o.get("level") == "ERROR"]
    start, end, latency = _timing(tr, obs)
    feedback, comment = _feedback(tr.get("scores"))
    prompt = next((o for o in obs if o.get("promptName")), None)
    doc_ids = list(dict.fromkeys(d for oid, o in by_id.items() for d in _doc_ids(o, attrs[oid])))
    trace_attrs = _attrs(tr)
    return Trace(
        trace_id=str(tr["id"]),
        source_format="langfuse",
        messages=messages,
        tools=unique_tools(tools),
        start_time=start,
        end_time=end,
        latency_ms=round(latency * 1000, 3) if latency is not None else None,
        input_tokens=sum_present(u[0] for u in usage),
        output_tokens=sum_present(u[1] for u in usage),
        total_tokens=sum_present(u[2] for u in usage),
        cost_usd=round_cost(sum_present(_cost(o) for o in leaf_obs)),
        model=str(last["model"]) if last else None,
        model_version=_model_version(last, last_attrs) if last else None,
        provider=str(p).lower() if (p := first_value(last_attrs, *_PROVIDER_KEYS)) else None,
        session_id=tr.get("sessionId") or first_value(trace_attrs, "session.id", "session_id"),
        user_id=tr.get("userId") or first_value(trace_attrs, "user.id", "user_id"),
        name=tr.get("name"),
        feature=str(f) if (f := _dict(tr.get("metadata")).get("feature")) is not None else None,
        tags=[str(t) for t in tr.get("tags") or []],
        feedback_score=feedback,
        feedback_comment=comment,
        prompt_template_id=(
            f"{prompt['promptName']}:{prompt['promptVersion']}"
            if prompt and prompt.get("promptVersion")
            else prompt["promptName"]
            if prompt
            else None
        ),
        retrieved_doc_ids=doc_ids,
        status="error" if failed else "ok",
        error=(f"{failed[0].get('name')}: {failed[0].get('statusMessage') or 'failed'}"[:500]) if failed else None,
        spans=[_span(o) for o in obs],
        metadata=_metadata(tr, obs, modelled),
    )


def _model_calls(
    by_id: Mapping[str, dict[str, Any]], attrs: Mapping[str, dict[str, Any]], tools: list[dict[str, Any]]
) -> tuple[list[Turn], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The model calls (the innermost generations) as turns, the attributes each call's observations set, and the
    calls' observations; tool definitions the calls' messages show are added to ``tools``."""
    parent_of = {
        oid: (str(o["parentObservationId"]) if o.get("parentObservationId") else None) for oid, o in by_id.items()
    }
    leaves, ancestors = leaf_ids([oid for oid, o in by_id.items() if o.get("type") == "GENERATION"], parent_of)
    leaf_count: dict[str, int] = {}
    for leaf in leaves:
        for a in ancestors[leaf]:
            leaf_count[a] = leaf_count.get(a, 0) + 1
    turns: list[Turn] = []
    call_attrs: dict[str, dict[str, Any]] = {}
    for leaf in leaves:
        # a wrapper generation around exactly this one call renders the same call: pick the better rendering
        members = [by_id[leaf]] + [by_id[a] for a in _single_chain(ancestors[leaf], leaf_count)]
        call_attrs[leaf] = {
            k: v for m in reversed(members) for k, v in attrs[str(m["id"])].items() if v not in (None, "")
        }
        rendered = [observation_messages(m, tools) for m in members]
        inputs = prepend_system(_best_input([r[0] for r in rendered]), _system_hint(members))
        turns.append(
            Turn(
                inputs,
                _best_output([r[1] for r in rendered]),
                parse_time(by_id[leaf]["startTime"]),
                parse_time(by_id[leaf].get("endTime")),
            )
        )
    return turns, call_attrs, [by_id[x] for x in leaves]


def _collect_tools(o: Mapping[str, Any], oattrs: Mapping[str, Any], tools: list[dict[str, Any]]) -> None:
    """Add to ``tools`` the definitions an observation lists in its attributes or ``toolDefinitions``."""
    for key in ("gen_ai.tool.definitions", "llm.tools", "ai.prompt.tools", "tools"):
        collect_tools(oattrs.get(key), tools)
    collect_tools(
        [v for k, v in sorted(oattrs.items()) if re.fullmatch(r"llm\.tools\.\d+\.tool\.json_schema", k)], tools
    )
    mrp = _dict(oattrs.get("model_request_parameters"))
    collect_tools((mrp.get("function_tools") or []) + (mrp.get("output_tools") or []), tools)
    collect_tools(o.get("toolDefinitions"), tools)


def _tool_runs(by_id: Mapping[str, dict[str, Any]], attrs: Mapping[str, dict[str, Any]]) -> list[ToolRun]:
    runs = []
    for oid, o in by_id.items():
        if o.get("type") == "TOOL":
            failed = o.get("level") == "ERROR"
            output = _tool_text(o.get("output"))
            runs.append(
                ToolRun(
                    name=str(o.get("name") or ""),
                    arguments=decode(o.get("input")),
                    output=output if output is not None or not failed else o.get("statusMessage"),
                    is_error=failed,
                    call_id=first_value(attrs[oid], *_CALL_ID_KEYS),
                    start=parse_time(o["startTime"]),
                )
            )
    return runs


def _timing(tr: Mapping[str, Any], obs: list[dict[str, Any]]) -> tuple[datetime | None, datetime | None, float | None]:
    """Start, end and latency (seconds): the trace's own where it has them, else from its observations."""
    starts = [t for t in (parse_time(o["startTime"]) for o in obs) if t is not None]
    ends = [t for t in (parse_time(o.get("endTime")) for o in obs) if t is not None]
    start = parse_time(tr.get("timestamp")) or (min(starts) if starts else None)
    end = max(ends) if ends else None
    latency = as_float(tr.get("latency"))
    if latency is None and starts and end is not None:
        latency = (end - min(starts)).total_seconds()  # Langfuse's own definition: first start to last end
    return start, end, latency


def _single_chain(ancestors: list[str], leaf_count: Mapping[str, int]) -> list[str]:
    chain = []
    for a in ancestors:
        if leaf_count.get(a, 0) != 1:
            break
        chain.append(a)
    return chain


def _span(o: Mapping[str, Any]) -> Span:
    level = o.get("level")
    return Span(
        id=str(o["id"]),
        parent_id=str(o["parentObservationId"]) if o.get("parentObservationId") else None,
        name=o.get("name"),
        kind=o.get("type"),
        start_time=parse_time(o.get("startTime")),
        end_time=parse_time(o.get("endTime")),
        status="error" if level == "ERROR" else "warning" if level == "WARNING" else "ok",
        model=o.get("model"),
    )


def _metadata(tr: Mapping[str, Any], obs: list[dict[str, Any]], modelled: list[dict[str, Any]]) -> dict[str, Any]:
    meta: dict[str, Any] = {k: tr[k] for k in ("environment", "release", "version") if tr.get(k)}
    user_meta = {
        k: v for k, v in _dict(tr.get("metadata")).items() if k not in ("attributes", "resourceAttributes", "scope")
    }
    if user_meta:
        meta["trace_metadata"] = user_meta
    scores = _score_summary(tr.get("scores"))
    if scores:
        meta["scores"] = scores
    models = list(dict.fromkeys(str(o["model"]) for o in modelled))
    if len(models) > 1:
        meta["models"] = models
    scopes = list(dict.fromkeys(str(s) for o in obs if (s := _dict(_dict(o.get("metadata")).get("scope")).get("name"))))
    if scopes:
        meta["instrumentation"] = scopes
    meta["observations"] = len(obs)
    return meta


@register("langfuse", sniff=_sniff, priority=15)
def parse(path: Path, options: Mapping[str, str]) -> Iterator[Trace | Issue]:
    """Langfuse trace downloads ({trace, observations}); a JSON array of them or JSONL also works."""
    finder = LineFinder(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for item in read_jsonl(path):
            if isinstance(item, Issue):
                yield item
            elif isinstance(item[1], dict):
                yield from guarded(path, item[0], _export_id(item[1]), trace_from_export, item[1], finder, item[0])
            else:
                yield Issue(str(path), item[0], "expected an object with 'trace' and 'observations'")
        return
    doc = read_json(path)
    if isinstance(doc, Issue):
        yield doc
        return
    for item in doc if isinstance(doc, list) else [doc]:
        if isinstance(item, dict):
            yield from guarded(path, None, _export_id(item), trace_from_export, item, finder)
        else:
            yield Issue(str(path), None, "expected an object with 'trace' and 'observations'")
