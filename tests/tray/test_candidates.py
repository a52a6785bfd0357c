"""Where a conversation is cut into a case's input and the recorded behaviour."""

from __future__ import annotations

import pytest

from evaltray.core.text import neutral_text
from evaltray.tray.candidates import split_conversation

# the shape of a τ²-bench retail simulation: the simulated user ends with a stop token
TAU2 = [
    {"role": "assistant", "content": "Hi! How can I help you today?"},
    {"role": "user", "content": "I want to return the boots from order #W2378156."},
    {"role": "assistant", "content": "Sure, may I have your email?"},
    {"role": "user", "content": "It is <EMAIL_1>."},
    {"role": "assistant", "content": "Done: the return is requested."},
    {"role": "user", "content": "###STOP###"},
]


def test_the_last_user_cut_never_picks_a_stop_token_turn():
    before, after = split_conversation(TAU2, "last-user")
    assert before == TAU2[:4] and after == TAU2[4:]  # "It is <EMAIL_1>." has words; "###STOP###" has none


def test_a_turn_that_is_only_a_placeholder_is_skipped_but_the_first_user_cut_is_kept():
    only_pii = [*TAU2[:2], {"role": "user", "content": "<PERSON_1_FIRST> <PERSON_1_LAST>"}]
    assert split_conversation(only_pii, "last-user") == (only_pii[:2], [only_pii[2]])
    assert split_conversation(TAU2, "first-user")[0] == TAU2[:2]


def test_a_conversation_of_machinery_only_still_cuts_where_it_did():
    stops = [{"role": "user", "content": "###STOP###"}, {"role": "assistant", "content": "ok"}]
    assert split_conversation(stops, "last-user") == (stops[:1], stops[1:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("###STOP###", ""),
        ("Hi <PERSON_1>, order <ADDRESS_2>!", "Hi , order !"),
        ("<|im_start|>user refund please<|im_end|>", "user refund please"),
        ("{{ name }} wants {% if x %}a refund{% endif %}", "wants a refund"),
        ("[INST] <<SYS>> be nice <</SYS>> hi [/INST]", "be nice hi"),
    ],
)
def test_neutral_text(text, expected):
    assert neutral_text(text) == expected
