"""The runner against a real local HTTP server: failures recorded per case, resume, cache, trials."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import orjson
import pytest

from evaltray.core.store import Workspace
from evaltray.evaluate import run as runner
from evaltray.evaluate.stub import StubServer
from evaltray.evaluate.targets import TargetError, make_target
from evaltray.tray import release
from tests.helpers import tray_of

FAST = runner.Limits(concurrency=8, timeout=1.0, retries=2, backoff=0.0)


def _cases(tmp_path: Path, texts: list[str]) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": f"c{i}", "input": t}) + b"\n" for i, t in enumerate(texts)))
    return path


def _rows(report: runner.RunReport) -> dict[str, dict]:
    return {cid: row for (cid, _), row in runner.read_results(report.path / "results.jsonl").items()}


def test_every_failure_is_recorded_per_case_and_the_run_finishes(ws, tmp_path):
    texts = ["hello", "[stub:hang]", "[stub:500x1] flaky", "[stub:500x9] down", "[stub:429x2] busy", "[stub:garbage]"]
    plan = runner.plan_file_run(_cases(tmp_path, texts))
    with StubServer() as stub:
        target = make_target("openai:stub-model", base_url=stub.base_url)
        report = runner.execute(ws, plan, target, limits=FAST, actor="alice")
    rows = _rows(report)
    assert rows["c0"]["status"] == "ok" and rows["c0"]["output"] == "stub answer: hello"
    assert rows["c1"] == rows["c1"] | {"status": "error", "error": "timed out after 1 s", "attempts": 3}
    assert (rows["c2"]["status"], rows["c2"]["output"], rows["c2"]["attempts"]) == (
        "ok",
        "stub answer: [stub:500x1] flaky",
        2,
    )
    assert (rows["c3"]["status"], rows["c3"]["error"], rows["c3"]["attempts"]) == ("error", "HTTP 500", 3)
    assert (rows["c4"]["status"], rows["c4"]["attempts"]) == ("ok", 3)  # two 429s, Retry-After 0, then the answer
    assert rows["c5"]["error"] == "the endpoint's answer is not a chat completion (no choices[0].message)"
    assert (report.sent, report.errors) == (6, 3)
    assert report.error_reasons == {"timed out after 1 s": 1, "HTTP 500": 1, rows["c5"]["error"]: 1}
    assert stub.requests["[stub:500x9] down"] == 3  # one try and two retries, no more


def test_a_release_run_is_stamped_with_the_release_and_its_hash(ws):
    tray_of(ws, {"refunds": 3, "shipping": 2})
    made = release.create_release(ws, "1.0.0", "alice")
    plan = runner.plan_release_run(ws, "1.0.0")
    with StubServer() as stub:
        report = runner.execute(ws, plan, make_target("openai:m", base_url=stub.base_url), limits=FAST, actor="alice")
    manifest = orjson.loads((report.path / "run.json").read_bytes())
    assert manifest["source"] == {
        "release": "1.0.0",
        "release_hash": made.content_hash,
        "set": "main",
        "split": "all",
        "subset": None,
    }
    assert manifest["target"]["config"] == {"kind": "openai", "model": "m", "base_url": stub.base_url, "params": {}}
    assert (report.cases, report.sent, report.errors) == (5, 5, 0)
    assert {r["slice"] for r in _rows(report).values()} == {"refunds", "shipping"}


def test_running_again_resumes_and_the_cache_answers_a_new_run(ws, tmp_path):
    plan = runner.plan_file_run(_cases(tmp_path, [f"q{i}" for i in range(20)]))
    with StubServer() as stub:
        target = make_target("openai:m", base_url=stub.base_url)
        first = runner.execute(ws, plan, target, limits=FAST, actor="alice")
        again = runner.execute(ws, plan, target, limits=FAST, actor="alice")
        assert (again.run_id, again.resumed, again.sent) == (first.run_id, 20, 0)
        fresh = runner.execute(ws, plan, target, limits=FAST, fresh=True, actor="alice")
        assert fresh.run_id != first.run_id and (fresh.sent, fresh.cached) == (0, 20)
        uncached = runner.execute(ws, plan, target, limits=FAST, fresh=True, cache=False, actor="alice")
        assert (uncached.sent, uncached.cached) == (20, 0)
        assert stub.requests.total() == 40
        other = runner.execute(
            ws, plan, make_target("openai:other", base_url=stub.base_url), limits=FAST, actor="alice"
        )
        assert other.sent == 20  # another model is another target: nothing cached is reused


def test_trials_run_each_case_k_times(ws, tmp_path):
    plan = runner.plan_file_run(_cases(tmp_path, ["a", "b"]))
    with StubServer() as stub:
        report = runner.execute(
            ws, plan, make_target("openai:m", base_url=stub.base_url), trials=3, limits=FAST, actor="alice"
        )
    assert report.sent == 6 and stub.requests == {"a": 3, "b": 3}
    assert sorted(runner.read_results(report.path / "results.jsonl")) == [
        (c, t) for c in ("c0", "c1") for t in range(3)
    ]


def _killed_run(root: Path, cases: Path, base_url: str) -> None:
    ws = Workspace.open(root)
    plan = runner.plan_file_run(cases)
    target = make_target("openai:m", base_url=base_url)

    def die(done: int, total: int) -> None:
        if done == 7:
            os._exit(9)

    runner.execute(
        ws, plan, target, limits=runner.Limits(concurrency=1, timeout=5, retries=0), progress=die, actor="alice"
    )


def test_kill_9_mid_run_then_run_again_sends_only_what_was_not_finished(ws, tmp_path):
    cases = _cases(tmp_path, [f"q{i}" for i in range(15)])
    with StubServer() as stub:
        ws.engine.dispose()
        proc = multiprocessing.get_context("fork").Process(target=_killed_run, args=(ws.root, cases, stub.base_url))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 9
        with open(next((ws.root / "runs").iterdir()) / "results.jsonl", "ab") as fh:
            fh.write(b'{"case_id": "torn')  # a line cut by the crash
        report = runner.execute(
            ws, runner.plan_file_run(cases), make_target("openai:m", base_url=stub.base_url), limits=FAST, actor="alice"
        )
        assert (report.resumed, report.sent) == (7, 8)
        assert stub.requests.total() == 15  # nothing sent twice
    assert len(runner.read_results(report.path / "results.jsonl")) == 15


def test_python_and_command_targets(ws, tmp_path, monkeypatch):
    (tmp_path / "mybot.py").write_text(
        "def answer(inp):\n"
        "    text = inp['messages'][-1]['content']\n"
        "    if text == 'boom':\n"
        "        raise RuntimeError('secret text')\n"
        "    return {'output': text.upper(), 'tool_calls': [{'name': 'lookup', 'arguments': {'q': text}}]}\n"
        "async def answer_async(inp):\n"
        "    return 'async ' + inp['messages'][-1]['content']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plan = runner.plan_file_run(_cases(tmp_path, ["hi", "boom"]))
    rows = _rows(runner.execute(ws, plan, make_target("python:mybot:answer"), limits=FAST, actor="alice"))
    assert rows["c0"]["output"] == "HI" and rows["c0"]["tool_calls"] == [{"name": "lookup", "arguments": {"q": "hi"}}]
    assert rows["c1"] == rows["c1"] | {"status": "error", "error": "the target raised RuntimeError"}  # not its text
    rows = _rows(runner.execute(ws, plan, make_target("python:mybot:answer_async"), limits=FAST, actor="alice"))
    assert rows["c0"]["output"] == "async hi"
    script = tmp_path / "bot.py"
    script.write_text(
        "import json, sys\ninp = json.load(sys.stdin)\nprint(json.dumps({'output': 'cmd ' + inp['messages'][-1]['content']}))\n"
    )
    cmd = make_target(f"cmd:python3 {script}")
    patient = runner.Limits(concurrency=8, timeout=60.0, retries=0)  # python3 can take seconds to start under load
    rows = _rows(runner.execute(ws, plan, cmd, limits=patient, actor="alice"))
    assert rows["c0"]["output"] == "cmd hi"
    with pytest.raises(TargetError, match="python targets look like"):
        make_target("python:nofunction")
    with pytest.raises(TargetError, match="unknown target kind 'grpc'"):
        make_target("grpc:x")


def test_a_file_run_reports_bad_lines_and_runs_the_rest(ws, tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_bytes(
        b'{"id": "a", "input": "ok"}\nnot json\n{"id": "b"}\n{"id": "c", "input": {"messages": []}}\n{"id": "a", "input": "again"}\n'
    )
    plan = runner.plan_file_run(path)
    assert [c.id for c in plan.cases] == ["a"]
    assert plan.issues == [
        "cases.jsonl:2: not valid JSON",
        "cases.jsonl:3: a case is an object with an input",
        "cases.jsonl:4: input.messages: List should have at least 1 item after validation, not 0",
        "cases.jsonl:5: case id 'a' appears twice; the first one runs",
    ]
    assert not plan.released


def test_a_release_plan_streams_the_cases_select_cases_picks(ws):
    tray_of(ws, {"refunds": 6, "shipping": 4})
    release.create_release(ws, "1.0.0", "alice")
    for split, subset in [("all", None), ("dev", None), ("holdout", None), ("dev", "pr")]:
        plan = runner.plan_release_run(ws, "1.0.0", split=split, subset=subset)
        picked = release.select_cases(ws, "1.0.0", split=split, subset=subset)
        assert [c.id for c in plan.cases] == [c["id"] for c in picked]
        assert [c.id for c in plan.cases] == [c.id for c in plan.cases]  # a second walk reads the file again
    assert isinstance(plan.cases, runner.PlannedCases)


def test_a_cases_file_changed_after_planning_stops_the_run(ws, tmp_path):
    path = _cases(tmp_path, ["a", "b"])
    plan = runner.plan_file_run(path)
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"z"'))
    with StubServer() as stub, pytest.raises(runner.RunError, match="changed since the run was planned"):
        runner.execute(ws, plan, make_target("openai:m", base_url=stub.base_url), limits=FAST, actor="alice")
    assert stub.requests == {}


def test_the_estimate_prices_known_models(tmp_path):
    plan = runner.plan_file_run(_cases(tmp_path, ["x" * 400] * 10))
    est = plan.estimate(make_target("openai:gpt-4o-mini"), trials=2)
    assert est["requests"] == 20 and est["output_tokens"] == 20 * 300
    assert est["usd"] == pytest.approx((est["input_tokens"] * 0.15 + est["output_tokens"] * 0.60) / 1e6, abs=1e-4)
    assert plan.estimate(make_target("openai:my-own-model"))["usd"] is None


def test_a_viewer_cannot_run(ws, tmp_path):
    ws.add_user("vic", "viewer", "alice")
    plan = runner.plan_file_run(_cases(tmp_path, ["a"]))
    with pytest.raises(Exception, match="user 'vic' is a viewer; running a target needs one of"):
        runner.execute(ws, plan, make_target("replay"), actor="vic")


def test_a_run_works_from_inside_a_running_event_loop(ws, tmp_path):
    # a notebook or a web app already runs a loop; asyncio.run would refuse there
    import asyncio

    plan = runner.plan_file_run(_cases(tmp_path, ["a", "b"]))

    async def inside() -> runner.RunReport:
        with StubServer() as stub:
            return runner.execute(ws, plan, make_target("openai:m", base_url=stub.base_url), limits=FAST, actor="alice")

    assert asyncio.run(inside()).sent == 2


def test_reading_a_run_never_cuts_a_line_a_running_run_may_still_be_writing(ws, tmp_path):
    plan = runner.plan_file_run(_cases(tmp_path, ["a", "b"]))
    with StubServer() as stub:
        target = make_target("openai:m", base_url=stub.base_url)
        made = runner.execute(ws, plan, target, limits=FAST, actor="alice")
        results = made.path / "results.jsonl"
        with results.open("ab") as fh:
            fh.write(b'{"case_id": "c9", "tri')  # another process half-way through a line
        before = results.read_bytes()
        assert len(runner.read_results(results)) == 2 and results.read_bytes() == before  # read, not cut
        cache = next((ws.state_dir / "run-cache").iterdir())
        with cache.open("ab") as fh:
            fh.write(b'{"case_id": "x", "tri')  # a crash mid-line in the shared cache
        fresh = runner.execute(ws, runner.plan_file_run(_cases(tmp_path, ["c"])), target, limits=FAST, actor="alice")
        assert fresh.sent == 1
        lines = cache.read_bytes().splitlines()
        assert lines[-2] == b'{"case_id": "x", "tri' and orjson.loads(lines[-1])["output"] == "stub answer: c"
