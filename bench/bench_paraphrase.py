"""Dedup through scrubbing and paraphrase: calibration on MRPC, measurement on GSM8K + GSM-Plus (issue 11 §2).

    python bench/bench_paraphrase.py --calibrate     # fit the paraphrase relief on MRPC (building set)
    python bench/bench_paraphrase.py                 # measure (measuring sets), base commit and this branch
    python bench/bench_paraphrase.py --backend st    # the same with the MiniLM extra

The building and measuring sets are kept apart. Nothing is downloaded: all are read from local git
mirrors (fetch github:Pzeyang/Paraphrase_Identification, github:qtli/GSM-Plus and
github:openai/grade-school-math first; ``--mrpc``, ``--gsmplus``, ``--gsm8k`` point elsewhere).

- Building (calibration): MRPC train, ``msr_paraphrase_train.txt`` (4,076 news sentence pairs labelled
  paraphrase or not; Microsoft Research Paraphrase Corpus). ``--calibrate`` fits a logistic model of
  "paraphrase" on cosine, content-word overlap (above and below its median, apart) and shared
  quantities over the pairs that pass the guards, and prints the relief constants that ``evaltray.curate.dedup`` carries.
- Measuring, paraphrase: the 1,319 GSM8K test questions (MIT) plus GSM-Plus testmini's 300 "problem
  understanding" variations (CC-BY-SA-4.0): GPT-4 rephrasings of 300 of those questions, checked by
  people. Positives: a rephrasing and its original; every other GSM8K question is a same-domain
  negative. Recall: rephrasings in their original's group. Precision: right pairs among all pairs
  that share a group. The 300 rephrasings are cut in two halves by seed (:func:`half`): the building
  half was read to find why rephrasings were missed; the measuring half was only ever scored. Both
  halves keep all 1,319 questions as negatives.
- Measuring, adversarial (information): GSM-Plus testmini's seeds with their rephrasing and six
  variations that keep most words but change the question (numbers substituted or expanded, an
  operation added or reversed, a premise removed); "distraction insertion" is left out. A pair is
  right when both texts are one seed's question with one gold answer.
- Second set (``--decontaminator [building|measuring]``): the LLM Decontaminator's GPT-4 rephrasings of the
  1,319 GSM8K test questions (github:lm-sys/llm-decontaminator, Apache-2.0; see bench_contamination.py), beside
  the 1,319 originals, cut into halves by :func:`half` of the seed question after it was first scored whole.
- Third set (``--mmlu``): MMLU abstract algebra and sociology test questions beside the LLM Decontaminator's
  rephrasings of them (see bench_contamination.py); every question stays in as a same-subject negative.
- Near precision on scrubbed text: 5,000 GSM8K train questions scrubbed by evaltray's own scrubber
  (names become ``<PERSON_1>``), near stage only. GSM8K questions are distinct problems, so every
  merge is false unless the two texts state the same problem (printed for a look).

The baseline is the base commit's ``dedup.py`` (``git show 7e8cc62:...``; ``--base COMMIT`` for another), run in
the same process. ``--vectors DIR`` answers GSM8K's and the rephrasings' vectors from files made before.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import numpy as np

from evaltray.curate import dedup as dd
from evaltray.curate.embed import get_embedder

ROOT = Path(__file__).resolve().parents[1]
BASE = "7e8cc62"
MIRROR = Path("/work/.mirror")
NEAR_N = 5000
KEEP = ("problem understanding",)
NEGATIVE = (
    "numerical substitution",
    "digit expansion",
    "integer-decimal-fraction conversion",
    "adding operation",
    "reversing operation",
    "critical thinking",
)


def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True).stdout


def load_mrpc(repo: Path) -> tuple[list[str], list[str], np.ndarray]:
    rows = [r.split("\t") for r in _git_show(repo, "msr_paraphrase_train.txt").lstrip("\ufeff").splitlines()[1:]]
    rows = [r for r in rows if len(r) == 5]
    return [r[3] for r in rows], [r[4] for r in rows], np.array([int(r[0]) for r in rows])


def load_gsmplus(repo: Path) -> list[dict]:
    return [json.loads(line) for line in _git_show(repo, "dataset/gsmplus_testmini.jsonl").splitlines()]


def base_dedup(commit: str = BASE) -> Callable[..., dd.DedupResult]:
    """The base commit's ``dedup`` function, loaded from git into its own module."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:src/evaltray/curate/dedup.py"], capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "dedup_base.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("dedup_base", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["dedup_base"] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.dedup


def _features(a: list[str], b: list[str], va: np.ndarray, vb: np.ndarray) -> dict[str, np.ndarray]:
    fa = [dd._facts(dd.canonical(t), t) for t in a]
    fb = [dd._facts(dd.canonical(t), t) for t in b]
    return {
        "cos": (va * vb).sum(1),
        "overlap": np.array(
            [len(x.words & y.words) / max(1, len(x.words | y.words)) for x, y in zip(fa, fb, strict=True)]
        ),
        "shared": np.array(
            [min(len(x.quantities & y.quantities), 3) for x, y in zip(fa, fb, strict=True)], dtype=float
        ),
        "guard": np.array([dd._refusal(x, y, mutual=True) == "" for x, y in zip(fa, fb, strict=True)]),
    }


def calibrate(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression

    a, b, y = load_mrpc(args.mrpc)
    emb = get_embedder(args.backend)
    f = _features(a, b, emb.embed(a), emb.embed(b))
    g = f["guard"]
    ov0 = float(np.median(f["overlap"][g]))
    lift = f["overlap"] - ov0
    # overlap above and below the median are two features: a straight line through both sides would let
    # the (many) high-overlap pairs decide how much a low overlap counts against a pair
    x = np.stack([f["cos"], np.maximum(lift, 0.0), np.minimum(lift, 0.0), f["shared"]], axis=1)[g]
    model = LogisticRegression(C=10.0).fit(x, y[g])
    c_cos, c_up, c_down, c_q = model.coef_[0]
    print(f"MRPC train: {len(y)} pairs, {g.sum()} pass the guards ({y[g].mean():.3f} of those are paraphrases)")
    print(
        f"logistic: {c_cos:.3f} cos + {c_up:.3f} overlap above + {c_down:.3f} overlap below {ov0:.3f} "
        f"+ {c_q:.3f} shared quantities + {model.intercept_[0]:.3f}"
    )
    print(
        f"_RELIEF_ABOVE = {c_up / c_cos:.3f}  _PENALTY_BELOW = {c_down / c_cos:.3f}  _OVERLAP_TYPICAL = {ov0:.3f}  "
        f"_RELIEF_PER_QUANTITY = {c_q / c_cos:.3f}"
    )
    relief = (c_up * np.maximum(lift, 0.0) + c_down * np.minimum(lift, 0.0) + c_q * f["shared"]) / c_cos
    # Youden's J (true-positive rate less false-positive rate) does not depend on how many pairs are
    # paraphrases: MRPC is two-thirds paraphrases, a dedup corpus almost none.
    best = (-1.0, 0.0)
    for t in np.arange(0.50, 0.96, 0.025):
        plain = g & (f["cos"] >= t)
        comb = g & (f["cos"] >= t - relief)
        tpr, fpr = comb[y == 1].mean(), comb[y == 0].mean()
        best = max(best, (tpr - fpr, round(t, 3)))
        print(
            f"  threshold {t:.3f}: cosine only precision {y[plain].mean():.3f} recall {plain[y == 1].mean():.3f}; "
            f"combined precision {y[comb].mean():.3f} recall {tpr:.3f} false-positive rate {fpr:.3f} J {tpr - fpr:.3f}"
        )
    print(f"best Youden's J {best[0]:.3f} at threshold {best[1]}")


def _same_answer(a: str, b: str) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except ValueError:
        return a.strip() == b.strip()


def gsm_corpus(rows: list[dict], kinds: tuple[str, ...]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """ids, texts and truth keys ``(seed, answer-kind)``: seeds are ``s``, kept rephrasings ``p``."""
    seeds = sorted({r["seed_question"] for r in rows})
    sid = {s: f"q{i:03d}" for i, s in enumerate(seeds)}
    ids, texts, truth = [], [], []
    for s in seeds:
        ids.append(f"{sid[s]}-seed")
        texts.append(s)
        truth.append((f"{sid[s]}-seed", "same"))
    for k, r in enumerate(rows):
        if r["perturbation_type"] in kinds:
            ids.append(f"{sid[r['seed_question']]}-{k:04d}")
            texts.append(r["question"])
            if r["perturbation_type"] in KEEP:
                truth.append((f"{sid[r['seed_question']]}-seed", "rephrased"))
            else:
                same = _same_answer(r["answer"], r["seed_answer"])
                truth.append((f"{sid[r['seed_question']]}-seed", "same" if same else f"other{k}"))
    return ids, texts, truth


def score(ids: list[str], truth: list[tuple[str, str]], res: dd.DedupResult) -> tuple[float, float, int, int]:
    """Recall of the rephrasings (in their seed's group) and precision of the pairs sharing a group."""
    key = dict(zip(ids, truth, strict=True))
    rephrased = [i for i in ids if key[i][1] == "rephrased"]
    recall = sum(res.rep_of[i] == res.rep_of[key[i][0]] for i in rephrased) / max(1, len(rephrased))
    found = [(x, y) for g in res.groups for x, y in combinations(g.members, 2)]
    right = sum(key[x][0] == key[y][0] and "other" not in key[x][1] + key[y][1] for x, y in found)
    return recall, right / max(1, len(found)), right, len(found)


def load_gsm8k(repo: Path, split: str) -> list[str]:
    return [
        json.loads(line)["question"] for line in _git_show(repo, f"grade_school_math/data/{split}.jsonl").splitlines()
    ]


def half(question: str) -> str:
    """Which half of GSM-Plus testmini a seed question's rephrasing belongs to: ``building`` (looked at to
    find why rephrasings were missed) or ``measuring`` (only ever scored); by the first byte of its sha256."""
    return "building" if hashlib.sha256(question.encode()).digest()[0] % 2 == 0 else "measuring"


def rephrase_corpus(
    test: list[str], rows: list[dict], side: str | None = None
) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """GSM8K test questions (``g0000``) and the GSM-Plus rephrasings of some (``g0000-p``): all of them, or
    those of one ``side`` (see :func:`half`); every GSM8K test question stays in as a same-domain negative."""
    at = {q: i for i, q in enumerate(test)}
    ids = [f"g{i:04d}" for i in range(len(test))]
    truth = [(i, "same") for i in ids]
    texts = list(test)
    for r in rows:
        if r["perturbation_type"] in KEEP and side in (None, half(r["seed_question"])):
            ids.append(f"g{at[r['seed_question']]:04d}-p")
            texts.append(r["question"])
            truth.append((ids[at[r["seed_question"]]], "rephrased"))
    return ids, texts, truth


def decontaminator_corpus(test: list[str], side: str | None) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """GSM8K test questions (``g0000``) and the LLM Decontaminator's non-empty rephrasing (``g0000-p``) of each,
    or of those of one ``side`` (see :func:`half`); every test question stays in as a negative."""
    from bench_contamination import decontaminator

    ids = [f"g{i:04d}" for i in range(len(test))]
    truth = [(i, "same") for i in ids]
    texts = list(test)
    for i, text in enumerate(decontaminator()):
        if text and side in (None, half(test[i])):  # 4 rephrasings are empty
            ids.append(f"g{i:04d}-p")
            texts.append(text)
            truth.append((f"g{i:04d}", "rephrased"))
    return ids, texts, truth


def mmlu_corpus() -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """MMLU test questions of bench_contamination's subjects (``abst000``) and the LLM Decontaminator's
    non-empty rephrasings of them (``abst000-p``); every question stays in as a same-subject negative."""
    from bench_contamination import mmlu

    rows = mmlu()
    ids, texts = [cid for cid, _, _ in rows], [q for _, q, _ in rows]
    truth = [(i, "same") for i in ids]
    for cid, _, text in rows:
        if text:
            ids.append(f"{cid}-p")
            texts.append(text)
            truth.append((cid, "rephrased"))
    return ids, texts, truth


def _report(name: str, ids: list[str], truth: list, res: dd.DedupResult, seconds: float) -> None:
    r, p, right, found = score(ids, truth, res)
    print(f"  {name:13s} recall {r:.3f}, precision {p:.3f} ({right}/{found} pairs right), {seconds:.2f} s")


def measure(args: argparse.Namespace) -> None:
    rows = load_gsmplus(args.gsmplus)
    old = base_dedup(args.base)
    embed = get_embedder(args.backend).embed
    if args.vectors:  # vectors made before for GSM8K and the rephrasings: MiniLM on loaded cores is slow
        from bench_contamination import with_vectors

        embed = with_vectors(embed, args.vectors, args.backend)
    if args.mmlu:
        _measure_sets({"MMLU + LLM Decontaminator rephrasings": mmlu_corpus()}, embed, old, args)
        return
    test = load_gsm8k(args.gsm8k, "test")
    if args.decontaminator:
        side = None if args.decontaminator == "all" else args.decontaminator
        sets = {
            f"GSM8K test + LLM Decontaminator rephrasings ({args.decontaminator})": decontaminator_corpus(test, side)
        }
        _measure_sets(sets, embed, old, args)
        return
    sets = {
        "GSM8K test + GSM-Plus rephrasings, measuring half": rephrase_corpus(test, rows, "measuring"),
        "GSM8K test + GSM-Plus rephrasings, building half": rephrase_corpus(test, rows, "building"),
        "GSM8K test + GSM-Plus rephrasings, all": rephrase_corpus(test, rows),
        "GSM-Plus adversarial (information)": gsm_corpus(rows, KEEP + NEGATIVE),
    }
    _measure_sets(sets, embed, old, args)
    near_scrubbed(load_gsm8k(args.gsm8k, "train")[:NEAR_N], old, args.base)


def _measure_sets(sets: dict, embed: Callable, old: Callable[..., dd.DedupResult], args: argparse.Namespace) -> None:
    for title, (ids, texts, truth) in sets.items():
        vecs = embed(texts)
        print(f"{title}, {args.backend}, threshold {args.threshold}: {len(texts)} questions")
        for name, fn in ((f"base {args.base}", old), ("this branch", dd.dedup)):
            t = time.perf_counter()
            res = fn(ids, texts, vectors=vecs, paraphrase=args.threshold)
            _report(name, ids, truth, res, time.perf_counter() - t)


def near_scrubbed(questions: list[str], old: Callable[..., dd.DedupResult], base: str = BASE) -> None:
    from evaltray.scrub import Scrubber

    ids = [f"t{i:04d}" for i in range(len(questions))]
    scrubber = Scrubber()
    scrubbed = [
        scrubber.scrub_trace(i, [{"role": "user", "content": t}]).messages[0]["content"]
        for i, t in zip(ids, questions, strict=True)
    ]
    with_ph = sum("<PERSON_" in t for t in scrubbed)
    print(f"near stage on {len(ids)} scrubbed GSM8K train questions ({with_ph} with a <PERSON_n> placeholder):")
    for name, fn in ((f"base {base}", old), ("this branch", dd.dedup)):
        res = fn(ids, scrubbed, paraphrase=None)
        merged = [(x, y) for g in res.groups for x, y in combinations(g.members, 2)]
        print(f"  {name:13s} near: {len(merged)} merged pairs among distinct questions")
        for x, y in merged[:3]:
            print(f"      {scrubbed[int(x[1:])][:110]!r}\n      {scrubbed[int(y[1:])][:110]!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibrate", action="store_true", help="fit the relief on MRPC instead of measuring")
    ap.add_argument("--backend", default="wordllama", help="embedding backend: wordllama (default) or st (MiniLM)")
    ap.add_argument("--threshold", type=float, default=dd.PARAPHRASE, help="the paraphrase threshold (dedup's default)")
    ap.add_argument("--base", default=BASE, help=f"the commit whose dedup.py is the baseline (default {BASE})")
    ap.add_argument(
        "--vectors", type=Path, help="a folder of BACKEND-{test,train,plus}.npy (bench_contamination's --vectors)"
    )
    ap.add_argument(
        "--decontaminator", nargs="?", const="all", choices=["all", "building", "measuring"], help="the second set"
    )
    ap.add_argument("--mmlu", action="store_true", help="MMLU questions and their LLM Decontaminator rephrasings")
    ap.add_argument("--mrpc", type=Path, default=MIRROR / "Pzeyang+Paraphrase_Identification" / "repo")
    ap.add_argument("--gsmplus", type=Path, default=MIRROR / "qtli+GSM-Plus" / "repo")
    ap.add_argument("--gsm8k", type=Path, default=MIRROR / "openai+grade-school-math" / "repo")
    args = ap.parse_args(argv)
    (calibrate if args.calibrate else measure)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
