"""An LLM's second opinion on paraphrase candidates, through any OpenAI-compatible endpoint (the evaluation
stage's client: bounded, retried, the key read from an environment variable and never stored)."""

from __future__ import annotations

from evaltray.evaluate.run import Limits, ask_each
from evaltray.evaluate.targets import OpenAITarget

from .contamination import Verifier

__all__ = ["PROMPT", "llm_verifier", "parse_same"]

PROMPT = (
    "Two texts follow. Answer YES if the second one asks the same question as the first (a rephrasing, a "
    "translation or a copy with the same facts and numbers), NO if it asks something else. Answer with one "
    "word.\n\nFIRST:\n{case}\n\nSECOND:\n{corpus}"
)


def parse_same(text: str | None) -> bool | None:
    """YES -> True, NO -> False, anything else -> None (no opinion)."""
    word = (text or "").strip().split(maxsplit=1)[:1]
    head = word[0].strip(".,:!*\"'").lower() if word else ""
    return True if head == "yes" else False if head == "no" else None


def llm_verifier(
    base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", limits: Limits | None = None
) -> Verifier:
    """A :data:`~.contamination.Verifier` asking ``model`` at ``base_url`` about each candidate pair."""
    target = OpenAITarget(f"openai:{model}", model, base_url, api_key_env, {"temperature": 0})

    def verify(pairs: list[tuple[str, str]]) -> list[bool | None]:
        prompts = [PROMPT.format(case=a, corpus=b) for a, b in pairs]
        replies = ask_each(target, prompts, limits or Limits())
        return [parse_same(reply.output) if reply is not None else None for reply, _ in replies]

    return verify
