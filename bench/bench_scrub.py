"""Scrub throughput: evaltray's scrubber vs plain Presidio on the same short traces, in one run.

    python bench/bench_scrub.py [--limit 3000] [--workers 2] [--templated 20000]

Corpus: every HaluEval user query (real, short) plus 1,500 Faker PII sentences, each one single-message
trace. References: Presidio's AnalyzerEngine with its default recognizers over a blank spaCy pipeline,
then AnonymizerEngine, one text at a time on one core; and plain Presidio with evaltray's own recognizers
(the same registry the scrubber builds: no prefilter, every entity asked of every text, no cache). tldextract is pointed at its bundled snapshot
for both sides so nothing reaches for the network. Ours: the scrubber in one process, in a worker pool
(chunks of 64 traces, the scrubber handed to each worker as ``evaltray scrub`` does), and ``evaltray
scrub`` itself over a workspace holding the corpus, and the scrubber without its name tagger (rules only, as
before the tagger shipped) as the reference for what the tagger costs. Also reports whole tau2 conversations
(info only, with and without the tagger).

"Before" reference: ``Scrubber(presidio=True)``, the scrubber's path before it asked its recognizers
directly (every text through Presidio's AnalyzerEngine and AnonymizerEngine, only texts of 200+ characters
remembered): the same output, timed in the same run on the same traces, one process and ``evaltray scrub``
over ``--templated`` rows shaped as ``bench/bench_pipeline.py`` writes them (a templated user chat, a canned
reply, a metadata feature; seed 11 as there).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import _write as write_pipeline_rows  # noqa: E402
from pii_benchmark import faker_cases, rules_only  # noqa: E402

from evaltray.core.store import Workspace  # noqa: E402
from evaltray.core.workers import process_pool  # noqa: E402
from evaltray.ingest import ingest_files  # noqa: E402
from evaltray.scrub import Scrubber, ScrubConfig, scrub_store  # noqa: E402
from evaltray.scrub._recognizers import OFFLINE_TLD  # noqa: E402
from evaltray.scrub._store import _SCRUBBERS  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
#: Every recognizer fires on it, so each compiles its patterns before the clock starts.
WARM_UP = (
    "Jane Doe, jane@example.com, +1 415-555-0132, 4111 1111 1111 1111, DE89370400440532013000, SSN 078-05-1120, "
    "passport X1234567, DL A1234567, 192.168.0.1, https://x.io/a?token=abc123, sk-proj-abcdefghijklmnop1234, "
    "12 Main Street, Springfield, IL 62704, jane_doe"
)


def corpus(limit: int | None) -> list[str]:
    texts = []
    hal = SHARED / "halueval-general.jsonl"
    if hal.exists():
        texts = [json.loads(line)["user_query"] for line in hal.read_text(encoding="utf-8").splitlines()]
    texts += [t for t, _ in faker_cases(1500, 11)[0]]
    return texts[:limit] if limit else texts


def reference_engines():
    """Plain Presidio as a user gets it without a spaCy model: default recognizers, blank pipeline."""
    import presidio_analyzer.predefined_recognizers.generic.email_recognizer as email_mod
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    # Presidio's e-mail recognizer calls the module-level tldextract.extract, which downloads the
    # public-suffix list; give it the offline extractor the scrubber uses.
    email_mod.tldextract = type("OfflineTld", (), {"extract": staticmethod(OFFLINE_TLD)})
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.nlp = {"en": spacy.blank("en")}
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=engine)
    return AnalyzerEngine(nlp_engine=engine, registry=registry), AnonymizerEngine()


def same_recognizers(scrubber: Scrubber):
    """Plain Presidio over the registry ``scrubber`` built: what the scrubber adds is its prefilter and cache."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
    return AnalyzerEngine(registry=scrubber.analyzer.registry, nlp_engine=engine, supported_languages=["en"])


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


def one_process(scrubber: Scrubber, traces: list[tuple[str, list[dict]]]) -> tuple[float, int]:
    """(traces/s, traces not quarantined) of ``scrubber`` over ``traces`` in this process, after a warm-up.
    Per second of this process's CPU time: on a shared machine wall time measures the neighbours."""
    for tid, msgs in [*traces[:50], ("warm", [{"role": "user", "content": WARM_UP}])]:
        scrubber.scrub_trace(tid, msgs)
    scrubber._detected.clear()  # the warm-up texts are timed again: no findings remembered from it
    t = time.process_time()
    n = sum(1 for tid, msgs in traces if not scrubber.scrub_trace(tid, msgs).quarantined)
    return rate(len(traces), time.process_time() - t), n


def scrub_chunk(config: ScrubConfig, chunk: list[tuple[str, list[dict]]]) -> int:
    """In a worker: scrub ``chunk`` with the scrubber the pool handed over; how many were not quarantined."""
    scrubber = config.scrubber()
    return sum(1 for tid, msgs in chunk if not scrubber.scrub_trace(tid, msgs).quarantined)


def store_rate(traces: list[tuple[str, list[dict]]], workers: int) -> float:
    """Traces/s of ``scrub_store`` over a workspace holding ``traces``, ingested with scrubbing off."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.jsonl"
        path.write_text(
            "".join(json.dumps({"id": tid, "messages": msgs}) + "\n" for tid, msgs in traces), encoding="utf-8"
        )
        return file_store_rate(path, Path(tmp) / "ws", workers)[0]


def file_store_rate(path: Path, where: Path, workers: int, presidio: bool = False) -> tuple[float, float]:
    """Traces per second and per CPU-second (this process and its workers) of ``scrub_store`` over a workspace
    at ``where`` holding ``path`` (ingested with scrubbing off); ``presidio``: with the reference path's
    scrubber, handed to the workers as any other."""
    ws = Workspace.init(where, user="bench")
    try:
        ingest_files(ws, [path], fmt="openai", scrub=False, workers=1)
        config = ScrubConfig.for_workspace(ws)
        _SCRUBBERS.pop(config, None)
        config.install(Scrubber(config.entities, max_field_chars=config.max_field_chars, presidio=presidio))
        t, cpu = time.perf_counter(), _cpu_seconds()
        report = scrub_store(ws, "bench", workers=workers)
        seconds, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
    finally:
        ws.close()
    return rate(report.rows, seconds), rate(report.rows, cpu)


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (a pool's workers, once it is shut)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def templated_store(n: int, workers: int, rounds: int = 2) -> None:
    """``evaltray scrub`` over ``n`` bench_pipeline rows: the reference path and the direct path, in turns."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chats.jsonl"
        write_pipeline_rows(path, n)
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for i, presidio in enumerate((True, False) * rounds):
            runs[presidio].append(file_store_rate(path, Path(tmp) / f"ws{i}", workers, presidio))
    (before, before_cpu), (after, after_cpu) = (
        [sum(r[k] for r in runs[p]) / rounds for k in (0, 1)] for p in (True, False)
    )
    print(
        f"reference  before: scrub_store, templated rows, presidio=True, workers={workers}: {before:8.0f} traces/s, "
        f"{before_cpu:6.0f} traces/CPU-s ({n:,} rows, {rounds} run(s) each, alternating)"
    )
    print(
        f"evaltray   scrub_store, templated rows, workers={workers}:                   {after:8.0f} traces/s, "
        f"{after_cpu:6.0f} traces/CPU-s  ratio {after / before:.2f}x before ({after_cpu / before_cpu:.2f}x per CPU-s)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="use only the first N texts")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--templated", type=int, default=20000, help="bench_pipeline rows for the store figure (0: skip)")
    args = ap.parse_args(argv)
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

    texts = corpus(args.limit)
    traces = [(f"t{i}", [{"role": "user", "content": t}]) for i, t in enumerate(texts)]
    print(
        f"corpus: {len(texts)} single-message traces, mean {sum(map(len, texts)) / len(texts):.0f} chars "
        f"({os.cpu_count()} CPUs)"
    )

    analyzer, anonymizer = reference_engines()
    analyzer.analyze("warm up jane@example.com 555-123-4567", language="en")
    t = time.process_time()  # every one-process figure is per CPU-second of this process
    for text in texts:
        anonymizer.anonymize(text, analyzer.analyze(text, language="en"))
    ref = rate(len(texts), time.process_time() - t)
    print(f"reference  plain Presidio (analyzer+anonymizer, blank spaCy, 1 core): {ref:8.0f} traces/CPU-s")

    scrubber = Scrubber()
    same = same_recognizers(scrubber)
    t = time.process_time()
    for text in texts:
        anonymizer.anonymize(text, same.analyze(text, language="en"))
    ref_same = rate(len(texts), time.process_time() - t)
    print(
        f"reference  plain Presidio with evaltray's recognizers (no prefilter, 1 core):   {ref_same:8.0f} traces/CPU-s"
    )
    before1, _ = one_process(Scrubber(presidio=True), traces)
    print(f"reference  before: Scrubber(presidio=True), one process:           {before1:8.0f} traces/CPU-s")
    ours1, n1 = one_process(scrubber, traces)
    print(
        f"evaltray   Scrubber.scrub_trace, one process:                         {ours1:8.0f} traces/CPU-s "
        f"({n1} scrubbed)  ratio {ours1 / ref:.2f}x; {ours1 / ref_same:.2f}x same recognizers (target >= 2); "
        f"{ours1 / before1:.2f}x before"
    )
    rules1, _ = one_process(rules_only(), traces)
    print(
        f"reference  the same without the name tagger (gazetteer rules only):   {rules1:8.0f} traces/CPU-s "
        f"with tagger / without {ours1 / rules1:.2f}x (target >= 0.5)"
    )
    scrubber._detected.clear()  # the workers start with nothing remembered, as `evaltray scrub`'s do
    config = ScrubConfig(None, b"")
    chunks = [traces[i : i + 64] for i in range(0, len(traces), 64)]
    t = time.perf_counter()
    with process_pool(args.workers, config.install, (scrubber,)) as pool:  # as `evaltray scrub` hands it over
        n2 = sum(pool.map(scrub_chunk, [config] * len(chunks), chunks))
    ours2 = rate(len(traces), time.perf_counter() - t)
    print(
        f"evaltray   Scrubber.scrub_trace, process_pool workers={args.workers}:           {ours2:8.0f} traces/s "
        f"({n2} scrubbed, wall)  {ours2 / ref:.2f}x the 1-core reference's traces/CPU-s   target >= 2000"
    )
    store = store_rate(traces, args.workers)
    print(
        f"evaltray   scrub_store (`evaltray scrub`), workers={args.workers}:              {store:8.0f} traces/s "
        f"(wall; Parquet read and rewrite included)  {store / ref:.2f}x the 1-core reference's traces/CPU-s"
    )

    if args.templated:
        templated_store(args.templated, args.workers)

    tau = SHARED / "tau2-bench-retail-gpt-4.1.json"
    if tau.exists():
        sims = json.loads(tau.read_text(encoding="utf-8"))["simulations"]
        convs = [(s["id"], s["messages"]) for s in sims]
        n_msgs = sum(len(m) for _, m in convs)
        for label, scr in (("with tagger", scrubber), ("rules only", rules_only())):
            t = time.perf_counter()
            done = [scr.scrub_trace(tid, msgs) for tid, msgs in convs]
            dt = time.perf_counter() - t
            print(
                f"info       tau2 whole conversations, workers=1, {label}: {rate(len(convs), dt):.1f} traces/s, "
                f"{rate(n_msgs, dt):.0f} messages/s ({sum(r.quarantined for r in done)} quarantined)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
