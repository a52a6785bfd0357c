"""Contamination: precision/recall of each method on planted copies, the paraphrase method on real rephrasings,
and the 13-gram scan's speed and memory (issue 14 part 1).

    python bench/bench_contamination.py --calibrate        # building sets: pick PARA_COS / PARA_GUARDS / LCS_MIN
    python bench/bench_contamination.py                    # planted, GSM-Plus building and measuring halves
    python bench/bench_contamination.py --backend st --make-vectors DIR          # embed GSM8K + GSM-Plus once
    python bench/bench_contamination.py --backend st --vectors DIR --real-only   # MiniLM (its bar: PARA_COS_BY_BACKEND)
    python bench/bench_contamination.py --throughput 1000  # 13-gram scan of a generated 1,000 MB corpus

Sets, kept apart (nothing is tuned on the measuring set):

- Building (calibration): (1) planted: 1,000 GSM8K *train* questions are the tray; the corpus is a
  fine-tuning JSONL of the other 6,473 train questions with their answers (same-domain negatives), plus 100
  verbatim copies of tray questions (inside a longer sample), 100 near-verbatim copies (every 7th word
  dropped or swapped, punctuation changed) and 100 paraphrases made by this script's own rules (synonyms,
  sentences reordered, the question re-worded). (2) The building half of GSM-Plus testmini's 300 "problem
  understanding" rephrasings (GPT-4 rephrasings of GSM8K test questions, checked by people; the seed
  question's sha256 starts with an even byte, as bench_paraphrase.py cuts it) among the 7,473 GSM8K train
  questions, the 1,319 GSM8K *test* questions being the tray.
- Measuring (real rephrasings nobody here tuned on): the other half of those rephrasings, same tray and
  negatives. A found case is right when the corpus text it matched is its own rephrasing.
- Second set (``--decontaminator [building|measuring]``): the LLM Decontaminator's GPT-4 rephrasings of all
  1,319 GSM8K test questions (Yang et al. 2023, github:lm-sys/llm-decontaminator
  ``data/rephrase/rephrase_gsm8k.jsonl``, Apache-2.0; line i rephrases test question i, checked by its final
  answer), among the same GSM8K train negatives. Scored whole once, untouched, in session 24 (WordLlama 0.925,
  MiniLM 0.939, precision 1.000); then cut into halves by the seed question as :func:`half` cuts GSM-Plus: the
  building half may be read from then on, the measuring half is only scored.

- Third set (``--mmlu [building|measuring]``): MMLU's abstract algebra and sociology test questions (301) as the
  tray, the LLM Decontaminator's English rephrasings of them (``data/rephrase/*_test_rephrase_english_filtered_
  question.jsonl``; line i rephrases question i; 8 empty lines left out: 293) among GSM8K train. A rephrasing of
  another question of the same subject is a wrong match. Its US-history rephrasings are left out: they rephrase
  only the question's last sentence, not the source passage that makes the case. Scored whole once, untouched,
  in session 25 (WordLlama 0.744 at 0.965, MiniLM 0.662 at 0.995, the session-24 code); then cut into halves
  by :func:`half` of the question: the building half was read from then on, the measuring half only scored.

- Fourth set (``--benbench``): the LLM rewrites of all 1,319 GSM8K test questions that BenBench made to detect
  benchmark leakage (Xu et al. 2024, github:GAIR-NLP/benbench ``src/data/rewritten/GSM8K_rewritten-test-1.jsonl``;
  each row holds the test question and its ``rewritten_question``), among the same GSM8K train negatives. Found
  in session 26 and scored whole once, before anyone read it. The repository states no licence: it is read from
  the mirror for measuring only, and nothing of it is copied.

Data is read from local git mirrors (``fetch`` github:openai/grade-school-math, MIT; github:qtli/GSM-Plus,
CC-BY-SA-4.0; github:lm-sys/llm-decontaminator, Apache-2.0; github:GAIR-NLP/benbench, no licence stated);
nothing is downloaded and nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.append(str(Path(__file__).resolve().parents[1] / "src"))  # after PYTHONPATH: another version may be named

from evaltray.curate.dedup import normalize  # noqa: E402
from evaltray.curate.embed import get_embedder  # noqa: E402
from evaltray.monitor import contamination as ct  # noqa: E402
from evaltray.monitor.corpus import Doc, read_corpus, strings_of  # noqa: E402

MIRRORS = Path(os.environ.get("EVALTRAY_MIRRORS", "/work/.mirror"))


def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
    ).stdout


def gsm8k(split: str) -> list[dict]:
    text = _git_show(MIRRORS / "openai+grade-school-math" / "repo", f"grade_school_math/data/{split}.jsonl")
    return [orjson.loads(line) for line in text.splitlines()]


def gsmplus() -> list[dict]:
    text = _git_show(MIRRORS / "qtli+GSM-Plus" / "repo", "dataset/gsmplus_testmini.jsonl")
    return [orjson.loads(line) for line in text.splitlines()]


def decontaminator() -> list[str]:
    """The LLM Decontaminator's rephrasing of each GSM8K test question, in test order (answers checked)."""
    text = _git_show(MIRRORS / "lm-sys+llm-decontaminator" / "repo", "data/rephrase/rephrase_gsm8k.jsonl")
    rows = [orjson.loads(line)["text"] for line in text.splitlines()]
    test = gsm8k("test")
    if len(rows) != len(test):
        raise SystemExit(f"rephrase_gsm8k.jsonl: {len(rows)} rows for {len(test)} test questions")
    out = []
    for i, (row, seed) in enumerate(zip(rows, test, strict=True)):
        question, _, answer = row.removeprefix("Question: ").partition("\nAnswer:")
        if answer.rsplit("####", 1)[-1].strip() != seed["answer"].rsplit("####", 1)[-1].strip():
            raise SystemExit(f"rephrase_gsm8k.jsonl line {i + 1}: its answer is not test question {i + 1}'s")
        out.append(question.strip())
    return out


#: MMLU subjects whose whole questions the LLM Decontaminator rephrased (its US-history rephrasings keep only the
#: last sentence, without the source passage the case is about, so they are not copies of the case).
MMLU_SUBJECTS = ("abstract_algebra", "sociology")


def mmlu() -> list[tuple[str, str, str]]:
    """(case id, MMLU test question, the LLM Decontaminator's English rephrasing of it or "") for every test
    question of :data:`MMLU_SUBJECTS`, in file order (line i of a rephrasing file rephrases question i)."""
    repo = MIRRORS / "lm-sys+llm-decontaminator" / "repo"
    out = []
    for subject in MMLU_SUBJECTS:
        questions = [row[0] for row in csv.reader(io.StringIO(_git_show(repo, f"data/rephrase/{subject}_test.csv")))]
        path = f"data/rephrase/{subject}_test_rephrase_english_filtered_question.jsonl"
        lines = _git_show(repo, path).splitlines()
        if len(lines) != len(questions):
            raise SystemExit(f"{path}: {len(lines)} rephrasings for {len(questions)} questions")
        out += [
            (f"{subject[:4]}{i:03d}", q.strip(), orjson.loads(line)["text"].strip())
            for i, (q, line) in enumerate(zip(questions, lines, strict=True))
        ]
    return out


# ----------------------------------------------------------------------------- rules that write copies

_SYN = {
    "buys": "purchases",
    "bought": "purchased",
    "has": "owns",
    "gets": "receives",
    "each": "every",
    "total": "overall",
    "altogether": "in total",
    "sells": "sells off",
    "makes": "earns",
    "wants": "would like",
    "needs": "requires",
    "uses": "uses up",
    "spent": "paid",
    "spends": "pays",
    "friends": "pals",
    "store": "shop",
    "money": "cash",
    "week": "week's time",
    "children": "kids",
    "car": "vehicle",
    "started": "began",
    "start": "begin",
    "gave": "handed",
    "give": "hand",
    "big": "large",
    "small": "little",
    # a second layer: the nouns, adjectives and verbs a person rewording a word problem swaps
    "men": "gentlemen",
    "price": "cost",
    "costs": "is priced at",
    "cost": "price",
    "earned": "made",
    "earns": "makes",
    "works": "labors",
    "worked": "labored",
    "walks": "strolls",
    "runs": "jogs",
    "ran": "jogged",
    "house": "home",
    "school": "academy",
    "students": "pupils",
    "student": "pupil",
    "teacher": "instructor",
    "class": "classroom",
    "day": "daily period",
    "days": "days' time",
    "hours": "hrs",
    "minutes": "mins",
    "dollars": "bucks",
    "book": "novel",
    "books": "novels",
    "garden": "yard",
    "farmer": "grower",
    "bakes": "prepares",
    "baked": "prepared",
    "picked": "gathered",
    "collects": "gathers",
    "collected": "gathered",
    "decided": "chose",
    "decides": "chooses",
    "received": "got",
    "remaining": "leftover",
    "left": "remaining",
    "half": "one half",
    "twice": "two times",
    "more": "additional",
    "fewer": "less",
    "only": "just",
    "then": "afterwards",
    "also": "as well",
    "if": "assuming",
    "finds": "discovers",
    "found": "discovered",
    "sold": "sold off",
    "pays": "spends",
    "paid": "spent",
    "needed": "required",
    "wanted": "wished",
}
#: Small numbers as words, the way a rephrasing writes them ("3 apples" -> "three apples").
_SPELLED = dict(enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]))
_QUESTION = [
    (r"^How many (.*)\?$", r"Can you work out how many \1?"),
    (r"^How much (.*)\?$", r"Figure out how much \1."),
    (r"^What is (.*)\?$", r"Determine what \1 is."),
    (r"^What (.*)\?$", r"Tell me: what \1?"),
]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s]


def paraphrase(text: str, rng: random.Random) -> str:
    """A rephrasing by rule: synonyms for common verbs and nouns, the question first, the question re-worded."""
    words = []
    for w in text.split(" "):
        if w.isdigit() and int(w) in _SPELLED and rng.random() < 0.5:
            w = _SPELLED[int(w)]
        words.append(_SYN.get(w, w) if rng.random() < 0.9 else w)
    sents = _sentences(" ".join(words))
    question = sents.pop() if sents and sents[-1].endswith("?") else None
    if question:
        for pat, rep in _QUESTION:
            new = re.sub(pat, rep, question)
            if new != question:
                question = new
                break
    rng.shuffle(sents) if len(sents) > 2 and rng.random() < 0.5 else None
    lead = rng.choice(["Here is a problem.", "Consider this:", "A word problem:", ""])
    return " ".join(x for x in [lead, question or "", *sents] if x)


def near_verbatim(text: str, rng: random.Random) -> str:
    """Every 7th word dropped or swapped for a synonym, commas dropped, case changed here and there."""
    out = []
    for i, w in enumerate(text.replace(",", "").split(" ")):
        if i % 7 == 3:
            if w.lower() in _SYN:
                out.append(_SYN[w.lower()])
            elif rng.random() < 0.5:
                continue
            else:
                out.append(w.upper())
        else:
            out.append(w)
    return " ".join(out)


def _sample(q: str, a: str) -> str:
    return orjson.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}).decode()


def _doc(source: str, line: int, q: str, a: str) -> Doc:
    """A fine-tuning sample as the JSONL reader hands it over: every string of the record."""
    return Doc(source, line, "\n".join(strings_of(orjson.loads(_sample(q, a)))))


# ----------------------------------------------------------------------------- planted benchmark (building set)


def planted(seed: int = 0) -> tuple[list[ct.Probe], list[Doc], dict[str, dict[str, str]]]:
    """Tray probes, corpus documents and the truth: case id -> {doc key: kind planted}."""
    rng = random.Random(seed)
    train = gsm8k("train")
    rng.shuffle(train)
    tray, rest = train[:1000], train[1000:]
    probes = [
        ct.Probe(f"t{i:04d}", "holdout" if i % 5 == 0 else "dev", "input", r["question"]) for i, r in enumerate(tray)
    ]
    docs = [_doc("finetune.jsonl", i + 1, r["question"], r["answer"]) for i, r in enumerate(rest)]
    truth: dict[str, dict[str, str]] = {}
    picks = rng.sample(range(len(tray)), 300)
    for k, idx in enumerate(picks):
        kind = ("verbatim", "near", "paraphrase")[k // 100]
        q = tray[idx]["question"]
        text = {
            "verbatim": f"Solve this. {q} Show your work.",
            "near": near_verbatim(q, rng),
            "paraphrase": paraphrase(q, rng),
        }[kind]
        line = len(docs) + 1
        docs.append(_doc("finetune.jsonl", line, text, tray[idx]["answer"]))
        truth[probes[idx].case_id] = {f"finetune.jsonl:{line}": kind}
    order = list(range(len(docs)))
    rng.shuffle(order)
    return probes, [docs[i] for i in order], truth


def half(question: str) -> str:
    """Which half of GSM-Plus's rephrasings a seed question's belongs to: ``building`` (thresholds and guards
    were chosen on it) or ``measuring`` (only ever scored); by the first byte of its sha256, as
    bench_paraphrase.py cuts the same set."""
    return "building" if hashlib.sha256(question.encode()).digest()[0] % 2 == 0 else "measuring"


def real_rephrasings(which: str | None = None) -> tuple[list[ct.Probe], list[Doc], dict[str, dict[str, str]]]:
    """GSM8K test as the tray, GSM-Plus rephrasings (of one half, when given) among GSM8K train as the corpus."""
    test = gsm8k("test")
    ids = {r["question"].strip(): f"g{i:04d}" for i, r in enumerate(test)}
    probes = [ct.Probe(ids[r["question"].strip()], "dev", "input", r["question"]) for r in test]
    docs = [Doc("train.jsonl", i + 1, r["question"]) for i, r in enumerate(gsm8k("train"))]
    truth: dict[str, dict[str, str]] = {}
    for r in gsmplus():
        seed = r["seed_question"].strip()
        if r["perturbation_type"] != "problem understanding" or seed not in ids:
            continue
        if which is not None and half(r["seed_question"]) != which:
            continue
        line = len(docs) + 1
        docs.append(Doc("gsmplus.jsonl", line, r["question"]))
        truth.setdefault(ids[seed], {})[f"gsmplus.jsonl:{line}"] = "paraphrase"
    return probes, docs, truth


def decontaminator_rephrasings(
    which: str | None = None,
) -> tuple[list[ct.Probe], list[Doc], dict[str, dict[str, str]]]:
    """GSM8K test as the tray, the LLM Decontaminator's rephrasings (of one :func:`half` of the seeds, when
    given) among GSM8K train as the corpus; the 4 empty rephrasings are left out, as the MMLU set's are."""
    test = gsm8k("test")
    probes = [ct.Probe(f"g{i:04d}", "dev", "input", r["question"]) for i, r in enumerate(test)]
    docs = [Doc("train.jsonl", i + 1, r["question"]) for i, r in enumerate(gsm8k("train"))]
    truth: dict[str, dict[str, str]] = {}
    for i, text in enumerate(decontaminator()):
        if not text or which is not None and half(test[i]["question"]) != which:
            continue  # 4 rephrasings are empty: nothing to find (3 building, 1 measuring)
        line = len(docs) + 1
        docs.append(Doc("rephrase_gsm8k.jsonl", line, text))
        truth[f"g{i:04d}"] = {f"rephrase_gsm8k.jsonl:{line}": "paraphrase"}
    return probes, docs, truth


def mmlu_rephrasings(which: str | None = None) -> tuple[list[ct.Probe], list[Doc], dict[str, dict[str, str]]]:
    """MMLU's test questions of :data:`MMLU_SUBJECTS` as the tray; their non-empty rephrasings (of one
    :func:`half` of the questions, when given) among GSM8K train as the corpus (each rephrasing is also a
    same-subject negative for every other case)."""
    rows = mmlu()
    probes = [ct.Probe(cid, "dev", "input", q) for cid, q, _ in rows]
    docs = [Doc("train.jsonl", i + 1, r["question"]) for i, r in enumerate(gsm8k("train"))]
    truth: dict[str, dict[str, str]] = {}
    for cid, q, text in rows:
        if text and which in (None, half(q)):
            line = len(docs) + 1
            docs.append(Doc("mmlu_rephrase.jsonl", line, text))
            truth[cid] = {f"mmlu_rephrase.jsonl:{line}": "paraphrase"}
    return probes, docs, truth


def benbench_rephrasings() -> tuple[list[ct.Probe], list[Doc], dict[str, dict[str, str]]]:
    """GSM8K test as the tray, BenBench's rewrite of each test question among GSM8K train as the corpus (a row
    whose question is not a test question's, after stripping, is left out and counted)."""
    test = gsm8k("test")
    ids = {r["question"].strip(): f"g{i:04d}" for i, r in enumerate(test)}
    probes = [ct.Probe(ids[r["question"].strip()], "dev", "input", r["question"]) for r in test]
    docs = [Doc("train.jsonl", i + 1, r["question"]) for i, r in enumerate(gsm8k("train"))]
    text = _git_show(MIRRORS / "GAIR-NLP+benbench" / "repo", "src/data/rewritten/GSM8K_rewritten-test-1.jsonl")
    truth: dict[str, dict[str, str]] = {}
    unmatched = 0
    for line in text.splitlines():
        row = orjson.loads(line)
        cid, rewrite = ids.get(row["question"].strip()), (row.get("rewritten_question") or "").strip()
        if cid is None or not rewrite:
            unmatched += 1
            continue
        docs.append(Doc("benbench_gsm8k.jsonl", len(docs) + 1, rewrite))
        truth[cid] = {f"benbench_gsm8k.jsonl:{len(docs)}": "paraphrase"}
    print(f"BenBench rewrites: {len(truth)} matched to a test question, {unmatched} left out")
    return probes, docs, truth


def with_vectors(embed, folder: Path, backend: str):
    """``embed``, answering from vectors made before for GSM8K test and train and GSM-Plus's rephrasings
    (``folder/BACKEND-test.npy`` ...: MiniLM on two loaded cores takes half an hour for them)."""
    known: dict[str, np.ndarray] = {}
    plus = [r["question"] for r in gsmplus() if r["perturbation_type"] == "problem understanding"]
    for name, texts in [("test", gsm8k("test")), ("train", gsm8k("train")), ("plus", plus)]:
        vecs = np.load(folder / f"{backend}-{name}.npy")
        known.update(zip([t if isinstance(t, str) else t["question"] for t in texts], vecs, strict=True))

    def embed_known(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            known.update(zip(missing, embed(missing), strict=True))
        return np.stack([known[t] for t in texts]) if texts else embed(texts)

    return embed_known


def make_vectors(folder: Path, backend: str) -> None:
    """Write the vectors :func:`with_vectors` reads: GSM8K test and train and GSM-Plus's rephrasings."""
    emb = get_embedder(backend)
    plus = [r["question"] for r in gsmplus() if r["perturbation_type"] == "problem understanding"]
    folder.mkdir(parents=True, exist_ok=True)
    for name, texts in [("plus", plus), ("test", [r["question"] for r in gsm8k("test")])] + [
        ("train", [r["question"] for r in gsm8k("train")])
    ]:
        t0 = time.perf_counter()
        np.save(folder / f"{backend}-{name}.npy", emb.embed(texts))
        print(f"{backend}-{name}.npy: {len(texts)} texts in {time.perf_counter() - t0:.0f} s", flush=True)


def score(matches: list[ct.Match], truth: dict[str, dict[str, str]], methods: list[str]) -> dict[str, dict]:
    """Per method, counted per case: found (right corpus text), wrong (no planted copy there), recall."""
    out = {}
    for m in methods:
        hit: dict[str, bool] = {}
        for x in matches:
            if x.method == m:
                right = f"{x.source}:{x.line}" in truth.get(x.case_id, {})
                hit[x.case_id] = hit.get(x.case_id, False) or right
        tp = sum(hit.values())
        fp = len(hit) - tp
        out[m] = {"found": tp, "wrong": fp, "precision": tp / len(hit) if hit else 1.0}
    return out


def recall_by_kind(matches: list[ct.Match], truth: dict[str, dict[str, str]], method: str, kind: str) -> float:
    want = {c for c, d in truth.items() if kind in d.values()}
    got = {
        x.case_id
        for x in matches
        if x.method == method and truth.get(x.case_id, {}).get(f"{x.source}:{x.line}") == kind
    }
    return len(got & want) / len(want) if want else 0.0


#: The standing-out rule the scans use (``--standout``): the backend's, as the CLI would take it.
STANDOUT: tuple[float, float] | None = getattr(ct, "STANDOUT", None)


def run_scan(probes, docs, embed, methods=ct.METHODS) -> tuple[list[ct.Match], float]:
    kw = {} if STANDOUT is None else {"standout": STANDOUT}  # None: a version without the rule (a base commit)
    scanner = ct.Scanner(probes, methods=methods, embed=embed, **kw)
    t0 = time.perf_counter()
    out: list[ct.Match] = []
    for lo in range(0, len(docs), 2000):
        out += scanner.scan_batch(docs[lo : lo + 2000])
    out += scanner.finish() if hasattr(scanner, "finish") else []
    return out, time.perf_counter() - t0


def report(name: str, matches, truth, seconds: float) -> None:
    kinds = sorted({k for d in truth.values() for k in d.values()})
    print(f"\n{name}: {len(truth)} contaminated cases planted/known, scanned in {seconds:.1f} s")
    print(f"{'method':<11} {'found':>6} {'wrong':>6} {'precision':>9}  " + "  ".join(f"recall:{k}" for k in kinds))
    for m, s in score(matches, truth, list(ct.METHODS)).items():
        recalls = "  ".join(f"{recall_by_kind(matches, truth, m, k):>{7 + len(k)}.3f}" for k in kinds)
        print(f"{m:<11} {s['found']:>6} {s['wrong']:>6} {s['precision']:>9.3f}  {recalls}")
    out = [x for x in matches if x.method == "paraphrase" and (x.detail or "").startswith("stands out")]
    right = sum(f"{x.source}:{x.line}" in truth.get(x.case_id, {}) for x in out)
    print(f"  of the paraphrase matches, {len(out)} stand out below the bar: {right} right, {len(out) - right} wrong")


def calibrate(embed) -> None:
    """On the building sets only (planted rule rephrasings; the building half of GSM-Plus's rephrasings):
    recall and precision of the paraphrase method for each cosine threshold and set of dedup guards, and of
    the near-verbatim method for each ratio. One scan per set and guards, at threshold 0: a match's detail
    says the cosine it needed there, so the cosine it needs at threshold t is t more."""
    sets = {"planted": planted(), "GSM-Plus building half": real_rephrasings("building")}
    for guards in [("numbers",), ("numbers", "negation"), ("numbers", "negation", "names")]:
        ct.PARA_COS, ct.PARA_GUARDS = 0.0, guards
        found = {name: run_scan(probes, docs, embed, ("paraphrase",))[0] for name, (probes, docs, _) in sets.items()}
        for cos in (0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75):
            row = []
            for name, (_, _, truth) in sets.items():
                keep = [m for m in found[name] if m.score >= cos + float(m.detail.split(">= ")[1].split(";")[0])]
                s = score(keep, truth, ["paraphrase"])["paraphrase"]
                want = sum("paraphrase" in d.values() for d in truth.values())
                right = recall_by_kind(keep, truth, "paraphrase", "paraphrase")
                row.append(
                    f"{name}: recall {right:.3f} ({round(right * want)}/{want}), "
                    f"precision {s['precision']:.3f} ({s['wrong']} wrong)"
                )
            print(f"guards {'+'.join(guards):<22} cos {cos:.2f}  " + "; ".join(row), flush=True)
    probes, docs, truth = sets["planted"]
    ct.LCS_MIN = 0.5
    lcs, _ = run_scan(probes, docs, embed, ("lcs",))
    for t in (0.5, 0.6, 0.7, 0.8):
        keep = [m for m in lcs if m.score >= t]
        wrong = sum(f"{m.source}:{m.line}" not in truth.get(m.case_id, {}) for m in keep)
        print(
            f"  lcs >= {t}: {len(keep)} matches, {wrong} wrong, near recall {recall_by_kind(keep, truth, 'lcs', 'near'):.3f}"
        )


# ----------------------------------------------------------------------------- throughput


def make_corpus(path: Path, mb: int, vocab: list[str], seed: int = 1) -> None:
    """``mb`` MB of fine-tuning JSONL: lines of words drawn from ``vocab`` (a Zipf-ish draw, like text)."""
    rng = np.random.default_rng(seed)
    words = np.array(vocab)
    weights = 1 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    with path.open("wb") as fh:
        written = 0
        while written < mb * 1_000_000:
            draw = rng.choice(words, size=(2000, 160), p=weights)
            lines = b"".join(_sample(" ".join(row[:80]), " ".join(row[80:])).encode() + b"\n" for row in draw)
            fh.write(lines)
            written += len(lines)


def _prefix(path: Path, mb: int, to: Path) -> Path:
    """The first ``mb`` MB of ``path`` (whole lines), for the slower references."""
    with path.open("rb") as src, to.open("wb") as dst:
        dst.write(src.read(mb * 1_000_000).rsplit(b"\n", 1)[0] + b"\n")
    return to


def python_set_scan(path: Path, probes: list[ct.Probe], n: int = 13) -> int:
    """The plain reference: every record's strings normalized in Python, each of its word 13-grams looked up in
    a set of the tray's 13-grams. Returns the lines with a hit."""
    grams = set()
    for p in probes:
        w = normalize(p.text).split()
        grams.update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    hits = 0
    with path.open("rb") as fh:
        for line in fh:
            w = normalize("\n".join(strings_of(orjson.loads(line)))).split()
            hits += any(tuple(w[i : i + n]) in grams for i in range(len(w) - n + 1))
    return hits


def _cpu_rate(mb: float, fn) -> tuple[float, object]:
    cpu = time.process_time()
    out = fn()
    return mb / (time.process_time() - cpu), out


def throughput(mb: int, keep: Path | None = None) -> None:
    """The 13-gram scan (exact + ngram + lcs, as promote/release run it) of ``mb`` MB, and in the same run
    four references: the same block scan without the compiled kernels (``EVALTRAY_JIT=0``), reading +
    orjson.loads of every line (the floor), the line-by-line reader through the same scanner, and a plain Python
    set-of-13-grams scan (all but the floor on a prefix: they are slower)."""
    train = gsm8k("train")
    probes = [ct.Probe(f"t{i:04d}", "dev", "input", r["question"]) for i, r in enumerate(train[:1000])]
    vocab = sorted({w for r in train for w in r["question"].split()})
    with tempfile.TemporaryDirectory() as tmp:
        path = keep or Path(tmp) / "corpus.jsonl"
        if not path.exists():  # --keep reuses a corpus made before: generating 1 GB takes minutes
            t0 = time.perf_counter()
            make_corpus(path, mb, vocab)
            print(f"generated {path.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - t0:.0f} s")
        size = path.stat().st_size / 1e6
        scanner = ct.Scanner(probes, methods=("exact", "ngram", "lcs"))
        warm = _prefix(path, 1, Path(tmp) / "prefix1.jsonl")  # loads the compiled kernels once (a fixed cost)
        once = time.process_time()
        ct.scan(scanner, [ct.Corpus(warm)])
        once = time.process_time() - once
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        rate, rep = _cpu_rate(size, lambda: ct.scan(scanner, [ct.Corpus(path)]))
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        load = os.getloadavg()[0]
        floor, _ = _cpu_rate(size, lambda: sum(1 for line in path.open("rb") if orjson.loads(line)))
        small = _prefix(path, 100, Path(tmp) / "prefix100.jsonl")
        small_mb = small.stat().st_size / 1e6
        lines, _ = _cpu_rate(small_mb, lambda: ct.scan(scanner, [ct.Corpus(small)], read=read_corpus))
        jit = os.environ.get("EVALTRAY_JIT")
        os.environ["EVALTRAY_JIT"] = "0"  # the same block scan with numpy only (no `fast` extra)
        numpy_rate, numpy_rep = _cpu_rate(small_mb, lambda: ct.scan(scanner, [ct.Corpus(small)]))
        os.environ.pop("EVALTRAY_JIT") if jit is None else os.environ.update(EVALTRAY_JIT=jit)
        tiny = _prefix(path, 10, Path(tmp) / "prefix10.jsonl")
        plain, _ = _cpu_rate(tiny.stat().st_size / 1e6, lambda: python_set_scan(tiny, probes))
    print(
        f"13-gram scan (exact + ngram + lcs), 1,000-case tray, {size:,.0f} MB corpus, one process:\n"
        f"  {rate:.1f} MB/s per core (CPU time; target 50); wall {wall:.1f} s = {size / wall:.1f} MB/s at load "
        f"{load:.1f} on {os.cpu_count()} cores\n"
        f"  before it, a 1 MB scan that loads the compiled kernels: {once:.2f} CPU s (once per process)\n"
        f"  peak RSS {rss / 1024:.0f} MiB (before the scan {rss0 / 1024:.0f} MiB); {len(rep.matches)} matches, "
        f"{rep.bad_count} bad lines\n"
        f"  references, same run, MB/s per core: plain Python set of 13-grams {plain:.1f} (first 10 MB) -> "
        f"{rate / plain:.1f}x; block scan with numpy only (EVALTRAY_JIT=0) {numpy_rate:.1f} (first 100 MB, "
        f"{len(numpy_rep.matches)} matches) -> {rate / numpy_rate:.2f}x; line-by-line reader, same scanner {lines:.1f} (first 100 MB) -> {rate / lines:.2f}x; "
        f"read + orjson.loads only {floor:.1f} -> {rate / floor:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--throughput", type=int, metavar="MB")
    ap.add_argument("--keep", type=Path, help="With --throughput: the corpus file to make once and reuse.")
    ap.add_argument("--backend", default="wordllama")
    ap.add_argument(
        "--para-cos", type=float, help="The paraphrase threshold (default: the backend's, PARA_COS_BY_BACKEND)."
    )
    ap.add_argument("--real-only", action="store_true", help="Only the GSM-Plus halves (their vectors: --vectors).")
    ap.add_argument(
        "--decontaminator",
        nargs="?",
        const="all",
        choices=["all", "building", "measuring"],
        help="Only the LLM Decontaminator rephrasings: all, or one half of their seeds",
    )
    ap.add_argument(
        "--mmlu",
        nargs="?",
        const="all",
        choices=["all", "building", "measuring"],
        help="Only MMLU questions against the LLM Decontaminator's rephrasings of them: all, or one half",
    )
    ap.add_argument(
        "--benbench", action="store_true", help="Only GSM8K test against BenBench's rewrites of it (a fourth set)"
    )
    ap.add_argument(
        "--standout",
        nargs=2,
        type=float,
        metavar=("COS", "GAP"),
        help="The standing-out rule (default: the backend's, STANDOUT_BY_BACKEND); COS > 1 turns it off",
    )
    ap.add_argument(
        "--vectors", type=Path, help="A folder of BACKEND-{test,train,plus}.npy: vectors of the questions, made before"
    )
    ap.add_argument(
        "--make-vectors", type=Path, metavar="DIR", help="Write the --vectors files for --backend and stop."
    )
    args = ap.parse_args()
    if args.make_vectors:
        make_vectors(args.make_vectors, args.backend)
        return
    if args.throughput:
        throughput(args.throughput, args.keep)
        return
    embed = get_embedder(args.backend).embed
    if args.vectors:
        embed = with_vectors(embed, args.vectors, args.backend)
    if args.calibrate:
        calibrate(embed)
        return
    # the bar the scanner would use for this backend through the CLI, unless one is given
    ct.PARA_COS = args.para_cos if args.para_cos is not None else ct.PARA_COS_BY_BACKEND.get(args.backend, ct.PARA_COS)
    print(
        f"backend {args.backend}; PARA_COS {ct.PARA_COS}, PARA_GUARDS {ct.PARA_GUARDS}, PARA_K {ct.PARA_K}, "
        f"LCS_MIN {ct.LCS_MIN}, n {ct.DEFAULT_N}"
    )
    global STANDOUT
    STANDOUT = tuple(args.standout) if args.standout else ct.STANDOUT_BY_BACKEND.get(args.backend, ct.STANDOUT)
    print(f"standing out: {STANDOUT} (least cosine, least gap)")
    if args.benbench:
        probes, docs, truth = benbench_rephrasings()
        matches, secs = run_scan(probes, docs, embed)
        report("GSM8K test vs BenBench's LLM rewrites (all, scored whole)", matches, truth, secs)
        return
    if args.mmlu:
        probes, docs, truth = mmlu_rephrasings(None if args.mmlu == "all" else args.mmlu)
        title = f"MMLU {' + '.join(MMLU_SUBJECTS)} vs the LLM Decontaminator's rephrasings ({args.mmlu})"
        matches, secs = run_scan(probes, docs, embed)
        report(title, matches, truth, secs)
        return
    if args.decontaminator:
        which = None if args.decontaminator == "all" else args.decontaminator
        probes, docs, truth = decontaminator_rephrasings(which)
        matches, secs = run_scan(probes, docs, embed)
        report(
            f"GSM8K test vs the LLM Decontaminator's GPT-4 rephrasings ({args.decontaminator})", matches, truth, secs
        )
        return
    if not args.real_only:
        probes, docs, truth = planted()
        matches, secs = run_scan(probes, docs, embed)
        report("building set (planted copies of GSM8K train questions)", matches, truth, secs)
    for which in ("building", "measuring"):
        probes, docs, truth = real_rephrasings(which)
        matches, secs = run_scan(probes, docs, embed)
        report(f"GSM8K test vs GSM-Plus 'problem understanding' rephrasings, {which} half", matches, truth, secs)
        # the baseline a plain n-gram check gives on real rephrasings: what the paraphrase method exists for
        base = score(matches, truth, ["ngram"])["ngram"]["found"]
        para = score(matches, truth, ["paraphrase"])["paraphrase"]["found"]
        print(f"paraphrase vs 13-gram on real rephrasings ({which}): {para} vs {base} cases found")


if __name__ == "__main__":
    main()
