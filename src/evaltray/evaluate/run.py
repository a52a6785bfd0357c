"""Running the system under test on a release (or a plain JSONL of cases): bounded, resumable, cached.

A run lives in ``runs/<run_id>/`` of the workspace: ``run.json`` (what ran on what: release version and
hash, set, split, target config and its hash, trials) and ``results.jsonl``, one line per case and trial,
appended as each answer arrives — memory stays flat in the number of cases, and DuckDB reads the file
beside the traces (``read_json('runs/*/results.jsonl')``). The run id is a hash of what the run is, so
running the same command again resumes it: finished cases are not sent again (a ``kill -9`` loses at most
the line being written, which is dropped). A target that hangs, fails, answers garbage or rate-limits is
recorded per case as an error, with its reason, and the run goes on.

Answers are also cached by (case input hash, trial, target config hash) in ``.evaltray/run-cache/``: a new
run of an unchanged target on cases it already answered sends nothing (``cache=False`` for an A/A check).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import random
import time
from array import array
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
from pydantic import ValidationError

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import CaseInput, Role
from evaltray.core.store import Workspace
from evaltray.core.untrusted import read_yaml_or_fail
from evaltray.core.util import atomic_write, content_hash, now_iso
from evaltray.tray.release import load_manifest, selected_lines

from .targets import Reply, RunCase, Target, TargetError, TransientError, config_hash

__all__ = [
    "PRICES",
    "Limits",
    "RunError",
    "RunPlan",
    "RunReport",
    "ask_each",
    "attempt",
    "execute",
    "load_prices",
    "plan_file_run",
    "plan_release_run",
    "read_results",
    "run_sync",
    "run_dir",
]

T = TypeVar("T")
RUNS_DIR = "runs"
#: Everyone but a viewer may run a target (a run writes only its own folder, never the tray).
RUN_ROLES = frozenset(Role) - {Role.VIEWER}
#: US dollars per million input and output tokens, for the estimate printed before a run (``--price`` overrides).
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}
#: Output tokens assumed per answer in the estimate when the target sets no ``max_tokens``.
ESTIMATED_OUTPUT_TOKENS = 300
Progress = Callable[[int, int], None]


class RunError(EvaltrayError):
    """A run cannot start: no such release or file, no cases, a bad option."""


class PlannedCases:
    """A plan's cases, read back from their file one at a time whenever they are walked, so that a run's
    memory does not grow with its cases: the file, its sha256 (checked on each walk: a file changed since it
    was planned stops the run), the numbers of the lines that are cases, and how a line becomes a case."""

    def __init__(self, path: Path, sha256: str, lines: list[int], read: Callable[[bytes, int], RunCase]) -> None:
        self.path, self.sha256, self._read = path, sha256, read
        self._lines = array("L", lines)

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[RunCase]:
        self._check()
        wanted = iter(self._lines)
        want = next(wanted, None)
        with self.path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                if lineno == want:
                    yield self._read(raw, lineno)
                    want = next(wanted, None)

    def _check(self) -> None:
        digest = hashlib.sha256()
        try:
            with self.path.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
        except OSError as exc:
            raise RunError(f"{self.path}: {exc.strerror}") from None
        if digest.hexdigest() != self.sha256:
            raise RunError(f"{self.path}: the file changed since the run was planned; plan it again")


@dataclass(frozen=True)
class RunPlan:
    """What a run will send: its cases and where they came from (``release`` None: a plain file, unreleased)."""

    cases: PlannedCases | list[RunCase]
    source: dict[str, Any]  # release, release_hash, set, split, subset — or file and its sha256
    issues: list[str] = field(default_factory=list)  # lines of a file that are not cases (file:line: why)

    @property
    def released(self) -> bool:
        return self.source.get("release") is not None

    def estimate(
        self,
        target: Target,
        trials: int = 1,
        price: tuple[float, float] | None = None,
        prices: dict[str, tuple[float, float]] | None = None,
    ) -> dict[str, Any]:
        """Tokens (about 4 characters each) and dollars the run will cost before it starts: at ``price``,
        else the target model's row of ``prices`` (a price table), else of :data:`PRICES`; dollars are None
        when no price is known for the target."""
        tokens_in = sum(len(orjson.dumps(c.input)) // 4 for c in self.cases) * trials
        max_tokens = target.config.get("params", {}).get("max_tokens") or ESTIMATED_OUTPUT_TOKENS
        tokens_out = len(self.cases) * trials * int(max_tokens)
        model = str(target.config.get("model"))
        rates = price or (prices or {}).get(model) or PRICES.get(model)
        dollars = None if rates is None else round((tokens_in * rates[0] + tokens_out * rates[1]) / 1e6, 4)
        return {
            "requests": len(self.cases) * trials,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "usd": dollars,
        }


#: A price table holds at most this many bytes (it is a handful of models).
MAX_PRICE_TABLE_BYTES = 1 << 20


def load_prices(path: Path) -> dict[str, tuple[float, float]]:
    """A price table: YAML (or JSON) mapping a model name to ``[input, output]`` dollars per million tokens."""
    data = read_yaml_or_fail(path, 10, MAX_PRICE_TABLE_BYTES, "a price table", RunError)
    if not isinstance(data, dict):
        raise RunError(f"{path}: a price table maps model names to [input, output] dollars per million tokens")
    table = {}
    for model, rates in data.items():
        ok = isinstance(rates, list) and len(rates) == 2
        ok = ok and all(isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 0 for r in rates)
        if not ok:
            raise RunError(f"{path}: {model}: give [input, output] dollars per million tokens, e.g. [0.15, 0.60]")
        table[str(model)] = (float(rates[0]), float(rates[1]))
    return table


def _run_case(case: dict[str, Any]) -> RunCase:
    review = case.get("review") or {}
    trace_id = (case.get("provenance") or {}).get("trace_id")
    return RunCase(
        case["id"],
        case["input"],
        content_hash(case["input"]),
        case.get("slice"),
        review.get("recorded_output"),
        trace_id,
    )


def plan_release_run(
    ws: Workspace, version: str, set_name: str | None = None, split: str = "all", subset: str | None = None
) -> RunPlan:
    """The cases of one set of release ``version`` (a split, narrowed to a subset where one is named)."""
    set_name = ws.check_set(set_name)
    manifest = load_manifest(ws, version)
    path, digest, lines = selected_lines(ws, version, set_name, split, subset)
    if not lines:
        raise RunError(f"release {version} has no cases in set {set_name} ({split}{'/' + subset if subset else ''})")
    cases = PlannedCases(path, digest, lines, lambda raw, _: _run_case(orjson.loads(raw)))
    source = {
        "release": version,
        "release_hash": manifest.content_hash,
        "set": set_name,
        "split": split,
        "subset": subset,
    }
    return RunPlan(cases, source)


def plan_rolling_run(ws: Workspace, version: str) -> RunPlan:
    """The cases of rolling drift-set release ``version``: a run to watch, recorded as rolling so that the gate
    refuses it."""
    from evaltray.tray.rolling import load_rolling, rolling_cases_path

    rel = load_rolling(ws, version)
    plan = plan_file_run(rolling_cases_path(ws, version))
    source = {**plan.source, "rolling": version, "rolling_hash": rel.content_hash}
    return dataclasses.replace(plan, source=source)


def plan_file_run(path: Path) -> RunPlan:
    """The cases of a JSONL file of ``{id, input, expected?}`` (``input`` a string, a list of messages or a
    case input): a quick run, reported as unreleased. A line that is not a case is an issue; the rest run."""
    issues: list[str] = []
    lines, seen, digest = [], set(), hashlib.sha256()
    try:
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                digest.update(raw)
                if raw.strip() and (case := _checked_line(path, raw, lineno, issues)) is not None:
                    if case.id in seen:
                        issues.append(f"{path.name}:{lineno}: case id {case.id!r} appears twice; the first one runs")
                        continue
                    seen.add(case.id)
                    lines.append(lineno)
    except OSError as exc:
        raise RunError(f"{path}: {exc.strerror}") from None
    if not lines:
        raise RunError(f"{path}: no cases to run" + (f" ({issues[0]})" if issues else ""))
    sha = digest.hexdigest()
    cases = PlannedCases(path, sha, lines, lambda raw, lineno: _file_case(orjson.loads(raw), lineno))
    return RunPlan(cases, {"release": None, "file": str(path), "file_sha256": sha}, issues)


def _checked_line(path: Path, raw: bytes, lineno: int, issues: list[str]) -> RunCase | None:
    """The case on a line of a cases file, or None with the reason added to ``issues``."""
    try:
        return _file_case(orjson.loads(raw), lineno)
    except orjson.JSONDecodeError:
        issues.append(f"{path.name}:{lineno}: not valid JSON")
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        issues.append(f"{path.name}:{lineno}: input.{where}: {exc.errors()[0]['msg']}")
    except ValueError as exc:
        issues.append(f"{path.name}:{lineno}: {exc}")
    return None


def _file_case(row: Any, lineno: int) -> RunCase:
    if not isinstance(row, dict) or "input" not in row:
        raise ValueError("a case is an object with an input")
    given = row["input"]
    if isinstance(given, str):
        given = {"messages": [{"role": "user", "content": given}]}
    elif isinstance(given, list):
        given = {"messages": given}
    inp = CaseInput.model_validate(given).model_dump(mode="json")
    cid = str(row.get("id") or f"line-{lineno}")
    return RunCase(cid, inp, content_hash(inp), row.get("slice"), row.get("recorded_output"))


# ----------------------------------------------------------------------------- results on disk


def run_dir(ws: Workspace, run_id: str) -> Path:
    if not run_id.startswith("r-") or not run_id[2:].isalnum():
        raise RunError(f"{run_id!r} is not a run id (r-…)")
    return ws.root / RUNS_DIR / run_id


def read_results(path: Path, repair: bool = False) -> dict[tuple[str, int], dict[str, Any]]:
    """The results of a run by (case id, trial), the last line of each winning; an unfinished last line is
    skipped, and with ``repair`` (a run about to append, the only writer) cut off the file: a reader must
    not cut what a running run is still writing."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.exists():
        return out
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if repair and end < len(data):
        with path.open("r+b") as fh:
            fh.truncate(end)
    for raw in data[:end].splitlines():
        try:
            row = orjson.loads(raw)
            out[(row["case_id"], row["trial"])] = row
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # cannot happen to a line written whole; a hand-edited line is ignored
    return out


class _Cache:
    """Answers by (case hash, trial) for one target config, appended as they come, one write per line. Runs
    of one target in parallel share the file, so it is never cut: a line a crash left unfinished is ended
    before this run's first one, and skipped when read."""

    def __init__(self, ws: Workspace, target_hash: str, enabled: bool) -> None:
        self.path = ws.state_dir / "run-cache" / f"{target_hash[:32]}.jsonl"
        self.enabled = enabled
        self.hits = read_results(self.path) if enabled else {}
        self._fh: Any = None

    def get(self, case: RunCase, trial: int) -> dict[str, Any] | None:
        return self.hits.get((case.hash, trial)) if self.enabled else None

    def put(self, case: RunCase, trial: int, reply: Reply) -> None:
        if not self.enabled:
            return
        line = orjson.dumps({"case_id": case.hash, "trial": trial, **_fields(reply)}) + b"\n"
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab", buffering=0)
            if self._fh.tell() and not self.path.read_bytes().endswith(b"\n"):
                line = b"\n" + line
        self._fh.write(line)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


@dataclass
class RunReport:
    """What a run did: how many answers it holds, how many it sent now, errors, cache hits, timings."""

    run_id: str
    path: Path
    source: dict[str, Any]
    target: dict[str, Any]
    trials: int
    cases: int
    resumed: int = 0  # (case, trial) already finished by an earlier, interrupted invocation
    sent: int = 0
    cached: int = 0
    errors: int = 0
    error_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    issues: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class Limits:
    """How a run treats its target: parallel requests, per-attempt timeout (s), retries, backoff base (s)."""

    concurrency: int = 16
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5

    def check(self) -> None:
        if self.concurrency < 1 or self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise RunError("concurrency >= 1, timeout > 0, retries >= 0 and backoff >= 0, please")


async def attempt(
    target: Target, case: RunCase, session: aiohttp.ClientSession | None, limits: Limits
) -> tuple[Reply | None, str | None, int]:
    """The target's reply to one case, retrying transient failures; or None and the reason it failed."""
    for attempt in range(limits.retries + 1):
        try:
            async with asyncio.timeout(limits.timeout):  # no task per attempt, unlike wait_for before 3.12
                reply = await target.answer(case, session)
            return reply, None, attempt + 1
        except TimeoutError:
            reason, wait = f"timed out after {limits.timeout:g} s", None
        except TransientError as exc:
            reason, wait = str(exc), exc.retry_after
        except TargetError as exc:
            return None, str(exc), attempt + 1
        except Exception as exc:  # noqa: BLE001 - a target's own bug is that case's error, not the run's end
            return None, f"the target raised {type(exc).__name__}", attempt + 1
        if attempt < limits.retries:
            await asyncio.sleep(wait if wait is not None else limits.backoff * 2**attempt * (0.5 + random.random()))
    return None, reason, limits.retries + 1


def _fields(reply: Reply) -> dict[str, Any]:
    """A reply's fields, by hand: ``asdict`` deep-copies every answer, and a run makes one per case."""
    return {
        "output": reply.output,
        "tool_calls": reply.tool_calls,
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
    }


def _result_row(case: RunCase, trial: int, reply: Reply | None, error: str | None, **extra: Any) -> bytes:
    row: dict[str, Any] = {"case_id": case.id, "trial": trial, "case_hash": case.hash, "slice": case.slice}
    if reply is not None:
        row.update(status="ok", **_fields(reply))
    else:
        row.update(status="error", error=error)
    row.update(extra)
    return orjson.dumps(row) + b"\n"


async def _drive(
    target: Target,
    todo: Iterator[tuple[RunCase, int]],
    out: Any,
    cache: _Cache,
    limits: Limits,
    report: RunReport,
    tick: Callable[[], None],
) -> None:
    """``limits.concurrency`` workers share one iterator of (case, trial): no task per case, flat memory."""
    connector = aiohttp.TCPConnector(limit=limits.concurrency, limit_per_host=limits.concurrency)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for case, trial in todo:
                hit = cache.get(case, trial)
                if hit is not None:
                    cached = Reply(
                        hit.get("output"),
                        hit.get("tool_calls") or [],
                        hit.get("input_tokens"),
                        hit.get("output_tokens"),
                    )
                    out.write(_result_row(case, trial, cached, None, cached=True, latency_ms=0.0, attempts=0))
                    report.cached += 1
                    tick()
                    continue
                start = time.perf_counter()
                reply, error, attempts = await attempt(target, case, session, limits)
                latency = round((time.perf_counter() - start) * 1000, 3)
                out.write(_result_row(case, trial, reply, error, cached=False, latency_ms=latency, attempts=attempts))
                report.sent += 1
                if reply is None:
                    report.errors += 1
                    report.error_reasons[error or "?"] = report.error_reasons.get(error or "?", 0) + 1
                else:
                    cache.put(case, trial, reply)
                    report.input_tokens += reply.input_tokens or 0
                    report.output_tokens += reply.output_tokens or 0
                tick()

        await asyncio.gather(*(worker() for _ in range(limits.concurrency)))


def ask_each(target: Target, prompts: list[str], limits: Limits) -> list[tuple[Reply | None, str | None]]:
    """``target``'s reply (or the reason there is none) to each prompt, sent as one user message, in order:
    the judge's and the screen's requests, bounded and retried like a run's."""

    async def main() -> list[tuple[Reply | None, str | None]]:
        out: list[tuple[Reply | None, str | None]] = [(None, None)] * len(prompts)
        it = iter(enumerate(prompts))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limits.concurrency)) as session:

            async def worker() -> None:
                for i, text in it:
                    case = RunCase(str(i), {"messages": [{"role": "user", "content": text}]}, "")
                    reply, error, _ = await attempt(target, case, session, limits)
                    out[i] = (reply, error)

            await asyncio.gather(*(worker() for _ in range(limits.concurrency)))
        return out

    return run_sync(main())


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, also from code that already runs an event loop (a notebook, a web app): there
    the coroutine runs on a loop of its own in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1, thread_name_prefix="evaltray-run") as pool:
        return pool.submit(asyncio.run, coro).result()


def _run_id(plan: RunPlan, target_hash: str, trials: int, fresh: bool) -> str:
    key = {"source": plan.source, "target": target_hash, "trials": trials, "cases": [c.hash for c in plan.cases]}
    if fresh:
        key["fresh"] = os.urandom(8).hex()
    return "r-" + content_hash(key)[:12]


def execute(
    ws: Workspace,
    plan: RunPlan,
    target: Target,
    *,
    trials: int = 1,
    limits: Limits | None = None,
    cache: bool = True,
    fresh: bool = False,
    retry_errors: bool = False,
    progress: Progress | None = None,
    actor: str | None = None,
) -> RunReport:
    """Run ``target`` on every case of ``plan`` ``trials`` times, resuming a run of the same plan, target and
    trials where an earlier invocation stopped (``fresh``: a new run instead). Never raises for a case."""
    actor = ws.authorize(actor, RUN_ROLES, "running a target")
    limits = limits or Limits()
    limits.check()
    if trials < 1:
        raise RunError("trials must be at least 1")
    t_hash = config_hash(target)
    run_id = _run_id(plan, t_hash, trials, fresh)
    folder = run_dir(ws, run_id)
    target_info = {"spec": target.spec, "config": target.config, "hash": t_hash}
    manifest = {
        "run_id": run_id,
        "created_at": now_iso(),
        "created_by": actor,
        "source": plan.source,
        "target": target_info,
        "trials": trials,
        "cases": len(plan.cases),
    }
    if not (folder / "run.json").exists():
        atomic_write(folder / "run.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    results = folder / "results.jsonl"
    done = read_results(results, repair=True)
    finished = {k for k, row in done.items() if not (retry_errors and row.get("status") == "error")}
    report = RunReport(run_id, folder, plan.source, target_info, trials, len(plan.cases), issues=list(plan.issues))
    report.resumed = len(finished)
    todo = ((c, t) for c in plan.cases for t in range(trials) if (c.id, t) not in finished)
    total, count = len(plan.cases) * trials - len(finished), [0]

    def tick() -> None:
        count[0] += 1
        if progress is not None:
            progress(count[0], total)

    answers = _Cache(ws, t_hash, cache)
    start = time.perf_counter()
    try:
        with results.open("ab", buffering=0) as out:
            run_sync(_drive(target, todo, out, answers, limits, report, tick))
    finally:
        answers.close()
    report.seconds = round(time.perf_counter() - start, 3)
    ws.record(actor, "run", run_id, source=plan.source, target=t_hash, sent=report.sent, errors=report.errors)
    return report
