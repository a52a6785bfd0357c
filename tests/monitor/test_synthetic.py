"""Synthetic-case checks (issue 14): a synthetic case where traffic never goes, and one written unlike users."""

from __future__ import annotations

import random

import numpy as np
import pytest

from evaltray.monitor import style as st
from evaltray.monitor import synthetic as syn
from evaltray.tray import gate
from tests.helpers import labeled_candidate
from tests.monitor.test_drift import INTENTS, _blob, _ingest, _known

REAL = [
    "my card hasnt arrived yet??",
    "i want my money back",
    "cant log in, pw wrong",
    "where is my transfer",
    "refund pls",
    "card still not here after a week",
]
FORMAL = (
    "Could you please explain the complete procedure for requesting a refund on a purchase that I made last "
    "week? I would appreciate a detailed answer. Thank you very much for your assistance."
)


def test_style_features_by_hand():
    # 6 words; punctuation , . ! = 3 marks / 6 words; 2 sentences, both capitalised and terminated; no typos
    assert st.style("Hello there, friend. How are you!").tolist() == pytest.approx([6, 0.5, 1, 1, 0])
    # 4 words; "dont" and a lone "i" are informal: 2 / 4; one sentence, lower case, unterminated
    assert st.style("i dont get it").tolist() == pytest.approx([4, 0, 0, 0, 0.5])
    real = np.array([[2.0, 0, 0, 0, 0], [4.0, 0, 0, 0, 0], [6.0, 0, 0, 0, 0]])
    # median 4, IQR 2 on words; other features all 0 -> spread 0.05; row [8, 0...] is 2 spreads off on words
    assert st.style_distance(real, np.array([8.0, 0, 0, 0, 0]))[0] == pytest.approx(2 / 5)


def test_language_profile():
    assert st.language("where is my card, I ordered it a week ago") == "en"
    assert st.language("¿dónde está mi tarjeta? la pedí hace una semana") == "es"
    assert st.language("Wo ist meine Karte? Ich habe sie nicht bekommen") == "de"
    assert st.language("где моя карта") == "ru"
    assert st.language("私のカードはどこですか") == "ja"
    assert st.language("1234 !!") == "und"


def test_uncovered_and_off_style_synthetic_cases_are_flagged_per_case():
    rng = np.random.default_rng(0)
    real_vectors = np.vstack([_blob(rng, np.eye(16)[i], 50) for i in range(4)])
    real = [REAL[i % len(REAL)] for i in range(len(real_vectors))]
    cases = [("s-fine", "refund pls, card broke"), ("s-elsewhere", "cant buy crypto"), ("s-formal", FORMAL)]
    vecs = np.vstack([_blob(rng, np.eye(16)[0], 1), _blob(rng, np.eye(16)[9], 1), _blob(rng, np.eye(16)[1], 1)])
    got = {c.case_id: c for c in syn.check_synthetic(real, cases, real_vectors, vecs).cases}
    assert not got["s-fine"].uncovered and not got["s-fine"].off_style
    assert got["s-elsewhere"].uncovered and not got["s-elsewhere"].off_style
    assert got["s-formal"].off_style and not got["s-formal"].uncovered
    assert got["s-formal"].style["words"] == len(FORMAL.split())
    few = syn.check_synthetic(real[:10], cases)
    assert few.cases == [] and "too few traces" in few.note


def test_synthetic_report_over_a_workspace(ws, tmp_path):
    rng = random.Random(5)
    _ingest(ws, tmp_path, "t", _known(rng, 40), "2026-12-05T10:00:00Z")
    labeled_candidate(ws, INTENTS["card"][0] + " please help", source="synthetic")
    labeled_candidate(ws, FORMAL, source="synthetic")
    labeled_candidate(ws, "how do I buy bitcoin in the app", source="synthetic")
    labeled_candidate(ws, "a case written by a person", source="sme")
    gate.promote(ws, "alice")
    report = syn.synthetic_report(ws, backend="tfidf")
    assert report.n_traffic == 160 and len(report.cases) == 3  # the sme case is not checked
    text_of = dict(syn.synthetic_cases(ws))
    got = {text_of[c.case_id]: c for c in report.cases}
    known, formal, crypto = (
        got[INTENTS["card"][0] + " please help"],
        got[FORMAL],
        got["how do I buy bitcoin in the app"],
    )
    assert not known.uncovered and not known.off_style
    assert formal.off_style and crypto.uncovered
    assert {c.case_id for c in report.flagged} == {formal.case_id, crypto.case_id}
