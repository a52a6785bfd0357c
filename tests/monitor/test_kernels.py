"""The compiled scan kernels (the ``fast`` extra) give what the numpy reference gives, bit for bit, on the edge
cases of JSONL (escapes, keys spaced from their colon, non-ASCII, broken lines reported per line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

pytest.importorskip("numba")

from evaltray.monitor import contamination as ct  # noqa: E402
from evaltray.monitor import corpus as cp  # noqa: E402
from evaltray.monitor import grams  # noqa: E402

EDGE_LINES = [
    orjson.dumps({"messages": [{"role": "user", "content": 'She said "Stop!"\tThen\\left.\nNew line \\" end'}]}),
    orjson.dumps({"text": "Crème brûlée – 3½ cups, “quoted” ’til ÀB ﬁne ³ 東京"}),
    orjson.dumps({"key:colon": "value", "list": ["a b", 5, {"deep": "word"}], "empty": "", "n": -1.5e3}),
    b'{"t" : "spaced key" , "u"\t:\r"v", "w": "\\\\\\"x\\\\" }',
    b'  ["a", "b\\\\", "c"]  ',
    b"",
    b'"just a string with a \\/ slash"',
]


def _both(fn, monkeypatch: pytest.MonkeyPatch):
    """``fn()`` with the kernels, then with numpy."""
    assert grams.kernels() is not None
    fast = fn()
    monkeypatch.setenv("EVALTRAY_JIT", "0")
    assert grams.kernels() is None
    slow = fn()
    monkeypatch.delenv("EVALTRAY_JIT")
    return fast, slow


def test_string_picking_matches_numpy_on_escapes_keys_and_non_ascii(monkeypatch: pytest.MonkeyPatch):
    block = b"\n".join(EDGE_LINES) + b"\n"
    arr = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    (fast, kept), (slow, kept_slow) = _both(lambda: cp._strings_only(arr, newlines), monkeypatch)
    assert fast.tobytes() == slow.tobytes()
    assert kept == kept_slow
    lines = fast.tobytes().split(b"\n")
    # worked out by hand: keys and syntax are spaces; an escape and its byte are spaces; values stay in place
    assert lines[3].split() == [b"spaced", b"key", b"v", b"x"]
    assert lines[4].split() == [b"a", b"b", b"c"]
    assert lines[6].split() == [b"just", b"a", b"string", b"with", b"a", b"slash"]
    assert lines[5] == b""


def test_word_hashes_and_grams_match_numpy(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(0)
    vocab = ["a", "bb", "eightchr", "ninechars", "sixteen-letters!", "seventeen_letters", "été", "東京都", "x" * 40]
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(0, 30)))) for _ in range(60)] + ["", "  ", "one"]

    def run():
        batch = grams.word_batch(texts)
        return batch, grams.rolling(batch.hashes, batch.doc, [1, 5, 8, 13, 200])

    (fast, fast_grams), (slow, slow_grams) = _both(run, monkeypatch)
    for name in ("hashes", "doc", "start", "end"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert fast.hashes.dtype == np.uint64 and fast.doc.dtype == np.int64
    for length in (1, 5, 8, 13, 200):
        assert np.array_equal(fast_grams[length][0], slow_grams[length][0])
        assert np.array_equal(fast_grams[length][1], slow_grams[length][1])
    assert len(slow_grams[200][0]) == 0
    # equal words hash equal wherever they stand; the 8-byte word and the 9-byte word differ
    words = [w for t in texts for w in grams.norm_bytes(t).split()]
    by_word = dict(zip(words, fast.hashes.tolist(), strict=True))
    assert len(set(by_word.values())) == len(by_word)


def test_a_scan_finds_the_same_matches_and_bad_lines_with_or_without_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    case = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    probes = [ct.Probe("c1", "dev", "input", case), ct.Probe("c2", "holdout", "input", "how do I reset my pin")]
    path = tmp_path / "ft.jsonl"
    path.write_bytes(
        b"\n".join(EDGE_LINES)
        + b"\n"
        + orjson.dumps({"prompt": "Q: " + case.upper(), "completion": "72"})
        + b'\n{"text": "caf\\u00e9 '
        + case.encode()
        + b'"}\n{not json\n'
        + b'{"text": "nul \x00 inside"}\n{"text": "latin-1 \xe9t\xe9"}\n'
        + orjson.dumps({"messages": [{"content": "\u201c" + case.replace(" ", "\t") + "\u201d"}]})
        + b"\n"
        + orjson.dumps({"text": "how do I reset my pin"})
        + b"\n"
    )
    scanner = ct.Scanner(probes, methods=("exact", "ngram", "lcs"))

    def run():
        report = ct.scan(scanner, [ct.Corpus(path)])
        return sorted((m.case_id, m.method, m.line, m.score, m.span) for m in report.matches), report

    (fast, rep_fast), (slow, rep_slow) = _both(run, monkeypatch)
    assert fast == slow
    assert {(m[0], m[1], m[2]) for m in fast} >= {("c1", "exact", 8), ("c1", "exact", 9), ("c1", "exact", 13)}
    assert ("c2", "exact", 14) in {(m[0], m[1], m[2]) for m in fast}
    assert [(b.line, b.reason.split(" (")[0]) for b in rep_fast.bad_lines] == [
        (10, "not JSON"),
        (11, "binary data"),
        (12, "not UTF-8"),
    ]
    assert (rep_fast.docs, rep_fast.bytes, rep_fast.bad_count) == (rep_slow.docs, rep_slow.bytes, rep_slow.bad_count)
