"""Train the shipped person-name tagger (``src/evaltray/data/names/person_tagger.tsv.gz``) from licensed data.

    python bench/train_name_tagger.py [--epochs 8] [--out PATH] [--check]

Training data, all from the building side (never a measuring set):
  presidio-research ``synth_dataset_v2.json`` (MIT, bench/data/pii/), WNUT 2017 train and dev, the Broad
  Twitter Corpus (CC-BY 4.0), SEC loan filings (CC BY 3.0) and the licensed parts of DSTL re3d (public domain,
  OGL, CC BY, CC BY-SA; bench/data/ner/). A fifth of the presidio, SEC and re3d texts and WNUT dev are held out
  to pick the decision bias; the shipped model is then trained on everything listed here with that bias.
  @-mentions are never names here (they are user handles, scrubbed as USERNAME; only the Twitter corpus tags
  them).
The same inputs, epochs and seed give the same file byte for byte. ``--check`` trains and compares with the
shipped file instead of writing it; ``--probe`` only prints the held-out precision/recall curve.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_benchmark import ROOT, conll_cases, external_cases  # noqa: E402

from evaltray.core.util import atomic_write  # noqa: E402
from evaltray.scrub._names import GazetteerNameRecognizer, load_gazetteer  # noqa: E402
from evaltray.scrub._tagger import MODEL_FILE, Example, PersonTagger, example, save, train  # noqa: E402

NAMES = ROOT / "src" / "evaltray" / "data" / "names"
OUT = NAMES / MODEL_FILE
BIASES = [x / 2 for x in range(-4, 25)]

Cases = list[tuple[str, list]]


def corpora() -> tuple[Cases, Cases]:
    """(train, held out) texts with gold spans from the building corpora."""
    presidio = external_cases("building")
    formal = conll_cases("sec-filings") + conll_cases("re3d")
    held = presidio[::5] + conll_cases("wnut17-dev") + formal[::5]
    kept = [c for i, c in enumerate(presidio + formal) if i % 5] + conll_cases("wnut17-train") + conll_cases("btc")
    return kept, held


def examples(cases: Cases) -> list[Example]:
    gaz = load_gazetteer()
    rules = GazetteerNameRecognizer(gaz).find
    # an @-mention is a user handle (evaltray's USERNAME), not a name in running text: the Broad Twitter
    # Corpus tags those of people PER, WNUT 2017 never does; they are made O here so the corpora agree
    return [
        example(text, [(a, b) for a, b, label in gold if label == "PERSON" and text[a] != "@"], gaz, rules)
        for text, gold in cases
    ]


def token_f1(tagger: PersonTagger, held: list[Example], bias: float) -> tuple[float, float, float]:
    tp = fp = fn = 0
    for ctx, gold in held:
        for s, want in zip(tagger.tag(ctx), gold, strict=True):
            got = s > -bias
            tp += got and want
            fp += got and not want
            fn += want and not got
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
    return p, r, 2 * p * r / max(1e-9, p + r)


def pick_bias(tagger: PersonTagger, held: list[Example]) -> float:
    """The bias with the best recall among those keeping held-out token precision >= 0.85."""
    best, best_r = 0.0, -1.0
    for bias in BIASES:
        tagger.bias = bias
        p, r, _ = token_f1(tagger, held, bias)
        print(f"  bias {bias:+.2f}: token precision {p:.3f} recall {r:.3f}")
        if p >= 0.85 and r > best_r:
            best, best_r = bias, r
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with the shipped model instead of writing")
    ap.add_argument("--probe", action="store_true", help="only print the held-out precision/recall curve")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    kept_cases, held_cases = corpora()
    kept, held = examples(kept_cases), examples(held_cases)
    print(f"{len(kept)} training texts, {len(held)} held out ({time.perf_counter() - t0:.0f} s)")
    probe = train(kept, epochs=args.epochs)
    bias = pick_bias(probe, held)
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
