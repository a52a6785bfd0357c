"""The slowest regex scan the scrubber can meet on a short text, against the timeout it no longer sets there.

    python bench/scrub_worst_case.py                 # texts of 1,000 characters (scrub's UNTIMED_CHARS)
    python bench/scrub_worst_case.py --chars 2000    # and longer ones, to see how the worst case grows

Texts up to ``UNTIMED_CHARS`` long are scanned without ``REGEX_TIMEOUT`` (issue 13 part 7, session 25): the
``regex`` module's ``timeout=`` costs ~4 µs a scan whatever the text. That is safe only if no scan of so short
a text comes near the timeout. This script runs every pattern the recognizers scan with a timeout (the
address rules and street cores, the address cue and corner, phone candidates, IBANs, the API-key rules,
key=value, the id numbers' cued and bare shapes) over adversarial texts of exactly ``--chars`` characters: each
of ~70 pieces of those patterns (digits and spaces, capitalised words, street types, cues, separators) tiled
alone, 1,500 random tilings of up to six pieces, and 300 random sequences of pieces (seeded), and prints the
slowest scan of each pattern in the same run as the timeout, as a fraction of it. Not a proof: a search.
"""

from __future__ import annotations

import argparse
import random
import time

import regex

from evaltray.scrub import Scrubber, _address, _ids, _recognizers

UNITS = [
    "1 ", "1", " ", "a ", "A ", "Aa ", "1 Aa ", "12 Main ", "1 a a ", "A", "a", "1-", "1 1 ", "(1", "1.", "Main St ",
    "Rua a ", "via ", "12 rue ", "Straße ", "corner of ", "a and ", "zip ", "ZIP 1", "PSC a ", "APO AE ", "Apt ",
    "Box ", "CA 1", "Aa, ", "Aa,", "\n", "\t", "-", "ab12", "a1", "sk-", "-----BEGIN A PRIVATE KEY-----", "eyJa.",
    "bearer ", "token ", "password=", 'a="', "a:'", "a: 1", "1 -", "ext ", "x1 ", "+1", "00", "ssn ", "tin ",
    "passport ", "DL ", "licence no ", "Ab'", "é", "Ab-", "lives at 1 ", "address ", "is at ", "1st ", "N ",
    "North ", "Unit 1 ", "# ", "a.", "A.", ". ",
]  # fmt: skip


def patterns() -> dict[str, regex.Pattern[str]]:
    """Every pattern a recognizer scans with :func:`~evaltray.scrub._recognizers.finditer`, by name."""
    out: dict[str, regex.Pattern[str]] = {}
    for r in Scrubber().analyzer.registry.recognizers:
        for rule, rx, _ in getattr(r, "rules", ()):
            out[f"{r.name}:{rule.name}"] = rx
        if isinstance(r, _ids.CueIdRecognizer):
            out[f"{r.name}:cued"] = r.cued
            if r.bare is not None:
                out[f"{r.name}:bare"] = r.bare
    out.update({f"street core {i}": rx for i, rx in enumerate(_address._CORE_RES)})
    out.update(
        {
            "address cue": _address._CUE_CORE_RE,
            "corner": _address._CORNER_RE,
            "phone": _ids._PHONE_CAND_RE,
            "iban": _ids._IBAN_RE,
            "key=value": _recognizers._KV_RE,
        }
    )
    return out


def texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)

    def tile(parts: list[str]) -> str:
        s = "".join(parts)
        return (s * (n // len(s) + 1))[:n]

    out = [tile([u]) for u in UNITS]
    out += [tile([rng.choice(UNITS) for _ in range(rng.randint(1, 6))]) for _ in range(1500)]
    out += ["".join(rng.choice(UNITS) for _ in range(n))[:n] for _ in range(300)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chars", type=int, default=_recognizers.UNTIMED_CHARS)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    worst: dict[str, tuple[float, str]] = {}
    scanned = patterns()
    for text in texts(args.chars):
        for name, rx in scanned.items():
            t = time.perf_counter()
            for _ in rx.finditer(text):
                pass
            dt = time.perf_counter() - t
            if dt > worst.get(name, (-1.0, ""))[0]:
                worst[name] = (dt, text[:40])
    timeout = _recognizers.REGEX_TIMEOUT
    untimed = _recognizers.UNTIMED_CHARS
    print(
        f"{len(worst)} patterns, texts of {args.chars:,} characters; timeout {timeout:.1f} s (none up to {untimed:,})"
    )
    for name, (dt, head) in sorted(worst.items(), key=lambda kv: -kv[1][0])[: args.top]:
        print(f"  {name:40s} {dt * 1000:8.1f} ms = {dt / timeout:6.1%} of the timeout   {head!r}")


if __name__ == "__main__":
    main()
