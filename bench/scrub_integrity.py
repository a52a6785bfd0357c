"""Scrub integrity on τ²-bench retail traces: does scrubbing keep JSON valid and numbers intact, and what does it find?

    python bench/scrub_integrity.py [--set building|measuring] [--base 691ee00] [--big-mb 200]

Each trace file is ingested with scrubbing off into a throw-away workspace and its stored rows are
scrubbed by ``scrub_table`` (what ingest and ``evaltray scrub`` run). Figures:

- JSON documents (tool results, and tool-call arguments stored as text) valid before and invalid after;
- non-PII numbers changed: every JSON number leaf and every digit-only string leaf whose key is not a PII
  key (``key_entity``), compared leaf by leaf (all of a document that stopped being JSON count as changed);
- PII found: placeholders written, per label, over every stored text column;
- throughput: traces/s and MB/s of ``scrub_table`` in one process;
- with ``--big-mb``: the time to scrub one message of that size (bounded by ``scrub_max_field_chars``).

``--base COMMIT`` also runs the same measurement with the code of ``COMMIT`` (``git archive`` of its
``src`` into a temporary folder, run in a subprocess on this machine), so old and new print side by side.
The building set (tau2-bench-retail-gpt-4.1.json) is for development; the measuring set
(tau2-bench-retail-ft-gpt-4.1.json) was run only once the code was done. Both are MIT (LICENSE alongside).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "building": ROOT / "tests" / "data" / "tau2" / "tau2-bench-retail-gpt-4.1.json",
    "measuring": ROOT / "tests" / "data" / "tau2" / "tau2-bench-retail-ft-gpt-4.1.json",
}
#: Any placeholder, old or new (``<PERSON_1_FIRST>`` counts as PERSON).
ANY_PLACEHOLDER = re.compile(r"<([A-Z]+(?:_[A-Z]+)*?)_\d+(?:_(?:FIRST|LAST))?>")
DIGITS = re.compile(r"-?\d+(?:\.\d+)?")
TEXT_COLUMNS = ("messages", "metadata", "tools", "spans", "error", "feedback_comment", "name", "feature")


def json_docs(messages: list[dict[str, Any]]) -> list[str]:
    """The JSON text of a trace: tool results, and tool-call arguments stored as text, in order."""
    out = []
    for m in messages:
        if m.get("role") == "tool" and isinstance(m.get("content"), str):
            out.append(m["content"])
        for call in m.get("tool_calls") or []:
            args = call.get("arguments", (call.get("function") or {}).get("arguments"))
            if isinstance(args, str):
                out.append(args)
    return [d for d in out if d.lstrip()[:1] in ("{", "[")]


def parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def numbers(before: Any, after: Any, key: Any, key_entity: Any) -> tuple[int, int]:
    """(non-PII number leaves in ``before``, how many differ in ``after``), walking both in step."""
    if isinstance(before, dict):
        pairs = zip(before.items(), after.items(), strict=False) if isinstance(after, dict) else None
        if pairs is None or len(after) != len(before):
            n = sum(numbers(v, None, k, key_entity)[0] for k, v in before.items())
            return n, n
        totals = [numbers(v, av, k, key_entity) for (k, v), (_, av) in pairs]
        return sum(t for t, _ in totals), sum(c for _, c in totals)
    if isinstance(before, list):
        if not isinstance(after, list) or len(after) != len(before):
            n = sum(numbers(v, None, key, key_entity)[0] for v in before)
            return n, n
        totals = [numbers(v, av, key, key_entity) for v, av in zip(before, after, strict=True)]
        return sum(t for t, _ in totals), sum(c for _, c in totals)
    numeric = (isinstance(before, (int, float)) and not isinstance(before, bool)) or (
        isinstance(before, str) and DIGITS.fullmatch(before)
    )
    if not numeric or (isinstance(key, str) and key_entity(key)):
        return 0, 0
    return 1, int(after != before)


def measure(path: Path, big_mb: int) -> dict[str, Any]:
    """The figures for one trace file with the evaltray on ``sys.path`` (this one or the base's)."""
    import orjson
    import pyarrow as pa

    from evaltray.core.store import Workspace
    from evaltray.core.traces import TraceStore
    from evaltray.ingest import ingest_files
    from evaltray.scrub import Scrubber, ScrubConfig, scrub_table
    from evaltray.scrub._recognizers import key_entity

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws", name="bench", user="alice")
        ingest_files(ws, [path], scrub=False)
        store = TraceStore(ws.traces_dir)
        table = pa.concat_tables([store.read_part(p) for p in store.parts()])
        ws.close()
    config = ScrubConfig(None, b"k" * 32)
    config.scrubber()  # built outside the timing
    start = time.perf_counter()
    scrubbed, _ = scrub_table(table, config)
    seconds = time.perf_counter() - start
    before_rows, after_rows = table.to_pylist(), scrubbed.to_pylist()
    out: dict[str, Any] = Counter()
    found: Counter[str] = Counter()
    for before, after in zip(before_rows, after_rows, strict=True):
        for c in TEXT_COLUMNS:
            found.update(ANY_PLACEHOLDER.findall(str(after.get(c) or "")))
        found.update(ANY_PLACEHOLDER.findall(" ".join(after.get("tags") or [])))
        docs = zip(json_docs(orjson.loads(before["messages"])), json_docs(orjson.loads(after["messages"])), strict=True)
        for b, a in docs:
            b_doc, a_doc = parse(b), parse(a)
            if b_doc is None:
                continue
            out["json_valid_before"] += 1
            out["json_invalid_after"] += a_doc is None
            total, changed = numbers(b_doc, a_doc, None, key_entity)
            out["numbers"] += total
            out["numbers_changed"] += changed
    chars = sum(len(r["messages"] or "") + len(r["metadata"] or "") for r in before_rows)
    result = {**out, "traces": len(before_rows), "seconds": seconds, "mb": chars / 1e6, "found": dict(found)}
    if big_mb:
        scrubber = Scrubber()
        unit = " ".join(str(r["messages"]) for r in before_rows)
        text = (unit * (big_mb * 1_000_000 // len(unit) + 1))[: big_mb * 1_000_000]
        start = time.perf_counter()
        scrubber.scrub_trace("big", [{"role": "user", "content": text}])
        result["big_seconds"] = time.perf_counter() - start
    return result


def measure_base(commit: str, path: Path, big_mb: int) -> dict[str, Any]:
    """:func:`measure` with the ``src`` of ``commit``, in a subprocess."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "src")}
        cmd = [sys.executable, __file__, "--file", str(path), "--big-mb", str(big_mb), "--emit-json"]
        done = subprocess.run(cmd, capture_output=True, check=True, env=env, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def report(name: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
    cols = [("new", new)] + ([("base", old)] if old else [])
    print(f"\n{name}: {new['traces']} traces, {new['mb']:.2f} MB of messages and metadata")
    print("| figure | " + " | ".join(c for c, _ in cols) + " |")
    print("| --- |" + " --- |" * len(cols))

    def row(label: str, fn: Any) -> None:
        print(f"| {label} | " + " | ".join(fn(r) for _, r in cols) + " |")

    row("JSON valid before → invalid after", lambda r: f"{r.get('json_invalid_after', 0)} / {r['json_valid_before']}")
    row("non-PII numbers changed", lambda r: f"{r.get('numbers_changed', 0)} / {r['numbers']}")
    row("scrub_table traces/s", lambda r: f"{r['traces'] / r['seconds']:.1f}")
    row("scrub_table MB/s", lambda r: f"{r['mb'] / r['seconds']:.3f}")
    if "big_seconds" in new:
        row("one big message, seconds", lambda r: f"{r.get('big_seconds', float('nan')):.1f}")
    labels = sorted(set(new["found"]) | set((old or {}).get("found", {})))
    for label in labels:
        row(f"placeholders {label}", lambda r, label=label: str(r["found"].get(label, 0)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=sorted(SETS), default="building")
    ap.add_argument("--file", type=Path, help="another trace file instead of a named set")
    ap.add_argument("--base", help="also measure this commit's code, e.g. 691ee00")
    ap.add_argument("--big-mb", type=int, default=0, help="also time one message of this many MB")
    ap.add_argument("--base-big-mb", type=int, help="the big message for the base (default: --big-mb)")
    ap.add_argument("--emit-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    path = args.file or SETS[args.set]
    if args.emit_json:
        print(json.dumps(measure(path, args.big_mb)))
        return 0
    new = measure(path, args.big_mb)
    big_base = args.big_mb if args.base_big_mb is None else args.base_big_mb
    old = measure_base(args.base, path, big_base) if args.base else None
    report(f"{args.set if not args.file else path.name} ({path.name})", new, old)
    if old and big_base != args.big_mb:
        print(f"(base's big message: {big_base} MB; new: {args.big_mb} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
