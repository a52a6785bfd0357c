"""``evaltray screen``: a cheap yes/no pass over traces before anyone labels (seed 000: find the rare
slices first). The question goes to an LLM endpoint (one short request per trace, the user's side of the
conversation only) or is a regular expression; the answer is a list of matching trace ids, and with
``add`` they go into the candidate pool."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.core.traces import conjunction, read_messages

from .run import RUN_ROLES, Limits, ask_each
from .targets import OpenAITarget

__all__ = ["ScreenResult", "screen"]

PROMPT = """Answer with one word, yes or no.
Question: {question}

The user's side of a conversation with an assistant:
{text}"""
_YES = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


class ScreenError(EvaltrayError):
    """A screen that cannot run: no question, a bad pattern, no traces."""


@dataclass
class ScreenResult:
    question: str
    screened: int
    matched: list[str] = field(default_factory=list)
    unanswered: dict[str, str] = field(default_factory=dict)  # trace id -> why (an error, an answer that is no yes/no)
    added: list[str] = field(default_factory=list)  # candidate ids, with ``add``


def _texts(ws: Workspace, where: str | None, limit: int | None) -> list[tuple[str, str]]:
    store = ws.trace_store()
    table = store.query(
        conjunction("payload_kept", where), columns=["trace_id", "messages"], limit=limit, order_by="trace_id"
    )
    out = []
    for tid, raw in zip(table.column("trace_id").to_pylist(), table.column("messages").to_pylist(), strict=True):
        text = "\n".join(str(m.get("content") or "") for m in read_messages(raw) if m.get("role") == "user")
        out.append((tid, text))
    return out


def screen(
    ws: Workspace,
    question: str,
    *,
    model: str | None = None,
    base_url: str | None = None,
    pattern: str | None = None,
    where: str | None = None,
    limit: int | None = None,
    add: bool = False,
    limits: Limits | None = None,
    actor: str | None = None,
) -> ScreenResult:
    """Traces whose user side answers ``question`` with yes: asked of ``model`` at ``base_url``, or matched by
    the regular expression ``pattern`` (case-insensitive). With ``add``, the matches enter the candidate pool."""
    actor = ws.authorize(actor, RUN_ROLES, "screening traces")
    if not question.strip():
        raise ScreenError("a screen needs a question")
    if (model is None) == (pattern is None):
        raise ScreenError("screen with an LLM (--model) or a regular expression (--pattern), one of them")
    items = _texts(ws, where, limit)
    result = ScreenResult(question, len(items))
    if pattern is not None:
        try:
            rx = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ScreenError(f"--pattern does not compile: {exc}") from None
        result.matched = [tid for tid, text in items if rx.search(text)]
    else:
        assert model is not None
        target = OpenAITarget(
            f"openai:{model}", model, base_url or "https://api.openai.com/v1", params={"temperature": 0}
        )
        prompts = [PROMPT.format(question=question, text=text[:8000]) for _, text in items]
        replies = ask_each(target, prompts, limits or Limits())
        for (tid, _), (reply, error) in zip(items, replies, strict=True):
            answer = f"error: {error}" if reply is None else (reply.output or "")
            found = _YES.match(answer)
            if found is None:
                result.unanswered[tid] = answer[:80] or "(empty)"
            elif found.group(1).lower() == "yes":
                result.matched.append(tid)
        result.matched.sort()
    if add and result.matched:
        from evaltray.tray import candidates as pool

        result.added = pool.add_from_traces(ws, actor, trace_ids=result.matched)
    ws.record(actor, "screen", None, question=question, screened=result.screened, matched=len(result.matched))
    return result
