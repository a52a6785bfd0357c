"""Real trace files with values of unexpected types: the record is reported by id, the rest ingests, nothing crashes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from evaltray.core.store import Workspace
from evaltray.core.traces import TraceStore
from evaltray.ingest import ingest_files

DATA = Path(__file__).parent.parent / "data"
FILES = [
    p
    for d in ("langfuse", "langsmith", "openai", "openinference", "otel", "tau2")
    for p in sorted((DATA / d).glob("*.json*"))
]
ODD: list[Any] = [None, 0, -1, 1e308, 2**70, "", "x", [], {}, [1, "a"], {"a": None}, True]


def _mutate(obj: Any, rng: random.Random) -> Any:
    """Drop one key in 25, swap one value in 16 for a value of another type, recursively."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            r = rng.random()
            if r >= 0.04:
                out[k] = rng.choice(ODD) if r < 0.1 else _mutate(v, rng)
        return out
    if isinstance(obj, list):
        return [rng.choice(ODD) if rng.random() < 0.05 else _mutate(v, rng) for v in obj]
    return obj


def test_a_simulation_with_an_odd_value_is_an_issue_and_the_other_39_ingest(ws: Workspace, tmp_path: Path) -> None:
    doc = orjson.loads((DATA / "tau2" / "tau2-bench-retail-gpt-4.1.json").read_bytes())
    doc["simulations"][3]["messages"][1]["tool_calls"] = 5  # a number where a list of calls belongs
    path = tmp_path / "tau2.json"
    path.write_bytes(orjson.dumps(doc))
    report = ingest_files(ws, [path], scrub=False)
    assert [str(i) for i in report.issues] == [
        f"{path}: a field has an unexpected type (TypeError) (record 7a9eb03a-0154-4a16-9c49-9674ffacb1b0)"
    ]
    assert (report.ingested, TraceStore(ws.traces_dir).count()) == (39, 39)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_files_with_values_of_every_odd_type_never_crash_the_ingest(seed: int, tmp_path: Path) -> None:
    """Each real fixture, mutated: ingest reports issues (file, record id; never content) and stores the rest."""
    rng = random.Random(seed)
    odd_types = 0
    for n, src in enumerate(FILES):
        if src.suffix == ".jsonl":
            lines = [json.dumps(_mutate(orjson.loads(x), rng)) for x in src.read_bytes().splitlines() if x.strip()]
            data = ("\n".join(lines) + "\n").encode()
        else:
            data = json.dumps(_mutate(orjson.loads(src.read_bytes()), rng)).encode()
        path = tmp_path / str(n) / src.name
        path.parent.mkdir()
        path.write_bytes(data)
        ws = Workspace.init(tmp_path / str(n) / "ws", name="odd", user="alice")
        try:
            report = ingest_files(ws, [path], scrub=False)
            stored = TraceStore(ws.traces_dir).count()
        finally:
            ws.close()
        assert report.ingested == stored
        assert all(str(i).startswith(f"{path}") for i in report.issues)
        odd_types += sum("unexpected type" in i.reason for i in report.issues)
    assert odd_types > 0  # the mutations did reach values the parsers do not expect
