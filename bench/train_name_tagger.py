"""Train the shipped person-name tagger (``src/evaltray/data/names/person_tagger.tsv.gz``) from licensed data.

    python bench/train_name_tagger.py [--epochs 8] [--out PATH] [--check]

Training data, all from the building side (never a measuring set):
  presidio-research ``synth_dataset_v2.json`` (MIT, bench/data/pii/), WNUT 2017 train and dev, the Broad
  Twitter Corpus (CC-BY 4.0), SEC loan filings (CC BY 3.0), the licensed parts of DSTL re3d (public domain,
  OGL, CC BY, CC BY-SA), GUM's CC BY and CC BY-SA genres and Universal NER English-EWT (CC BY-SA 4.0;
  bench/data/ner/, made by bench/ner_corpora.py). A fifth of the presidio, SEC, re3d, GUM and EWT texts and WNUT
  dev are held out to pick the decision bias; the shipped model is then trained on everything listed here with
  that bias.
  @-mentions are never names here (they are user handles, scrubbed as USERNAME; only the Twitter corpus tags
  them).
The same inputs, epochs and seed give the same file byte for byte. ``--check`` trains and compares with the
shipped file instead of writing it; ``--probe`` only prints the held-out precision/recall curve.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ner_corpora import title_word  # noqa: E402
from pii_benchmark import ROOT, conll_cases, external_cases  # noqa: E402

from evaltray.core.util import atomic_write  # noqa: E402
from evaltray.scrub._names import GazetteerNameRecognizer, load_gazetteer  # noqa: E402
from evaltray.scrub._tagger import (  # noqa: E402
    MODEL_FILE,
    Example,
    PersonTagger,
    TaggedNameRecognizer,
    example,
    save,
    tokenize,
    train,
)

NAMES = ROOT / "src" / "evaltray" / "data" / "names"
OUT = NAMES / MODEL_FILE
BIASES = [x / 2 for x in range(0, 31)]

Cases = list[tuple[str, list]]


#: Building corpora of which a fifth is held out to pick the bias (the rest is trained on).
SPLIT = ("sec-filings", "re3d", "gum", "gum-bysa", "uner-ewt")
#: Building corpora trained on whole (WNUT dev is held out whole).
WHOLE = ("wnut17-train", "btc")


def corpora(without: Sequence[str] = ()) -> tuple[Cases, Cases]:
    """(train, held out) texts with gold spans from the building corpora; those named in ``without`` are only
    held out (their fifth), never trained on: the same held-out texts for every choice of training data."""
    presidio = external_cases("building")
    split = {name: conll_cases(name) for name in SPLIT}
    gaz = load_gazetteer().flags
    split["re3d"] = [(text, names_only(text, gold, gaz)) for text, gold in split["re3d"]]
    held = presidio[::5] + conll_cases("wnut17-dev") + [c for name in SPLIT for c in split[name][::5]]
    kept = [c for i, c in enumerate(presidio) if i % 5]
    kept += [c for name in SPLIT if name not in without for i, c in enumerate(split[name]) if i % 5]
    kept += [c for name in WHOLE if name not in without for c in conll_cases(name)]
    return kept, held


#: Lowercase words that join the parts of one name ("Abu Musab al - Zarqawi", "Ludwig van Beethoven").
_JOINERS = frozenset({"al", "bin", "ibn", "van", "von", "de", "der", "den", "da", "di", "du", "la", "le", "-", "."})


def names_only(text: str, gold: list, gaz: dict[str, int]) -> list:
    """re3d's Person spans cut to the name in them: it tags every mention of a person ("he", "a soldier",
    "Minister for the Middle East Tobias Ellwood"), the other corpora only names. Keeps the last run of
    capitalised words (joined by :data:`_JOINERS`) less its leading titles and common words."""
    out = []
    for a, b, label in gold:
        toks = [(a + x, a + y) for x, y in tokenize(text[a:b])]
        end = len(toks)
        while end and not text[toks[end - 1][0]].isupper():
            end -= 1
        start = end
        while start and (text[toks[start - 1][0]].isupper() or text[slice(*toks[start - 1])] in _JOINERS):
            start -= 1
        while start < end and (
            not text[toks[start][0]].isupper() or title_word(text[slice(*toks[start])], gaz, last=start == end - 1)
        ):
            start += 1
        if start < end:
            out.append((toks[start][0], toks[end - 1][1], label))
    return out


def examples(cases: Cases) -> list[Example]:
    gaz = load_gazetteer()
    rules = GazetteerNameRecognizer(gaz).find
    # an @-mention is a user handle (evaltray's USERNAME), not a name in running text: the Broad Twitter
    # Corpus tags those of people PER, WNUT 2017 never does; they are made O here so the corpora agree
    return [
        example(text, [(a, b) for a, b, label in gold if label == "PERSON" and text[a] != "@"], gaz, rules)
        for text, gold in cases
    ]


def name_f1(tagger: PersonTagger, held: Cases) -> tuple[float, float]:
    """Span precision and recall of the names the whole default recognizer (rules, tagger, its filters) finds in
    ``held``: the rules' spans depend on the tagger too (:class:`TaggedNameRecognizer`)."""
    rec = TaggedNameRecognizer(tagger=tagger)
    n_gold = found = n_pred = right = 0
    for text, gold in held:
        want = [(a, b) for a, b, label in gold if label == "PERSON" and text[a] != "@"]
        got = [(r.start, r.end) for r in rec.analyze(text, ["PERSON"])] if rec.has_candidate(text) else []
        got = [(a, b) for a, b in got if text[a - 1 : a] != "@"]
        n_gold, n_pred = n_gold + len(want), n_pred + len(got)
        found += sum(any(a < ge and gs < b for a, b in got) for gs, ge in want)
        right += sum(any(a < ge and gs < b for gs, ge in want) for a, b in got)
    return right / max(1, n_pred), found / max(1, n_gold)


def pick_bias(tagger: PersonTagger, held: Cases) -> float:
    """The bias with the best held-out name recall while name precision stays >= 0.85, found by raising the bias
    until precision falls below that (recall grows and precision falls with the bias)."""
    best = BIASES[0]
    for bias in BIASES:
        p, r = name_f1(PersonTagger(tagger.weights, bias), held)
        print(f"  bias {bias:+.2f}: name precision {p:.3f} recall {r:.3f}")
        if p < 0.85:
            break
        best = bias
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with the shipped model instead of writing")
    ap.add_argument("--probe", action="store_true", help="only print the held-out precision/recall curve")
    ap.add_argument(
        "--without", action="append", default=[], choices=SPLIT + WHOLE, help="train without this corpus (probe)"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    kept_cases, held_cases = corpora(args.without)
    kept, held = examples(kept_cases), examples(held_cases)
    print(f"{len(kept)} training texts, {len(held)} held out ({time.perf_counter() - t0:.0f} s)")
    probe = train(kept, epochs=args.epochs)
    bias = pick_bias(probe, held_cases)
    if args.probe:
        return 0
    final = train(kept + held, epochs=args.epochs)
    final.bias = bias
    data = save(final)
    print(
        f"bias {bias:+.2f}; {len(final.weights)} features, {len(data) / 1e6:.2f} MB ({time.perf_counter() - t0:.0f} s)"
    )
    if args.check:
        same = args.out.exists() and args.out.read_bytes() == data
        print("matches the shipped model" if same else "DIFFERS from the shipped model")
        return 0 if same else 1
    atomic_write(args.out, data)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
