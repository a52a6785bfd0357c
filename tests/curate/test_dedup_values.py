"""The paraphrase guards read values with their repeats and their order (issues 11 §2, 14, 17): a value
stated once more as a ratio may be the other text's reciprocal, a count its own list spells out is the
list's, and the same values in the same order lower the cosine a pair needs."""

from __future__ import annotations

import numpy as np
import pytest

from evaltray.curate import dedup as dd
from evaltray.curate.dedup import dedup

SETH = "Seth is twice as old as Brooke. In 2 years, the sum of their ages will be 28. How old is Seth?"
SETH_TOLD_AGAIN = (
    "Brooke's age is half of Seth's age. Two years from now, their combined ages will total 28 years. "
    "What is Seth's current age?"
)


def _pair(cos: float) -> np.ndarray:
    """Two unit vectors at cosine ``cos``."""
    return np.array([[1.0, 0.0], [cos, (1 - cos * cos) ** 0.5]], dtype=np.float32)


def test_values_are_listed_in_the_order_stated_with_their_repeats() -> None:
    assert dd._stated(SETH) == ["2", "2", "28"]  # "twice" and "2 years"
    assert dd._quantities(SETH) == {"2", "28"}
    counts, ratios = dd._counts(SETH)
    assert (dict(counts), dict(ratios)) == ({"2": 2, "28": 1}, {"2": 1})
    assert dict(dd._counts("3 times fewer get on, a third of 21, half of it")[1]) == {
        "3": 1,
        "0.333333": 1,
        "0.5": 1,
    }


def test_a_value_stated_once_more_as_a_ratio_may_be_the_others_reciprocal() -> None:
    fa, fb = dd._facts_of(SETH), dd._facts_of(SETH_TOLD_AGAIN)
    assert fb.quantities - fa.quantities == {"0.5"} and fa.quantities < fb.quantities
    assert dd._stated_more(fa, fb) == {"2"}
    assert not dd._numbers_differ(fa, fb)
    # both sit in one quantity block, so the paraphrase stage compares them
    assert len(set(dd._quantity_blocks([SETH, SETH_TOLD_AGAIN], dd._quantities_of).tolist())) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # 2 stated twice, but never as a ratio: "50% longer" is no reciprocal of "2 houses"
        ("John has 2 houses with 3 bedrooms each. Each bedroom has 2 windows. There are 4 more windows.",
         "There are 3 bedrooms, 4 hours each. The kitchen takes 50% longer. The living room took twice as long."),
        # each text states a value the other lacks (1/3 against 0.5 and 3): the repeat explains nothing
        ("They sell grape jelly twice as much as strawberry, raspberry twice as much as plum, and raspberry "
         "a third as much as grape. They sold 6 jars of plum, 4 kinds.",
         "Candy bars cost twice as much as caramel; cotton candy is half the price of 4 candy bars. A caramel "
         "is $3. What do 6 candy bars, 3 caramel and 1 cotton candy cost?"),
        # as many repeats on both sides: the half is a new value
        ("Seth is twice as old as Brooke and twice as tall. In 2 years the sum of their ages is 28.",
         "Seth is twice as old as Brooke and twice as tall. In 2 years the sum of their ages is 28, half of 56."),
    ],
)  # fmt: skip
def test_a_repeat_explains_a_reciprocal_only_when_stated_as_a_ratio_and_only_one_text_adds(a: str, b: str) -> None:
    assert dd._numbers_differ(dd._facts_of(a), dd._facts_of(b))


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("his three main meals - breakfast, lunch, and dinner, and also one more before bed", []),
        ("He has 3 pets: a dog, a cat and a fish.", []),
        ("two meals (breakfast and lunch) a day for 5 days", ["5"]),
        # the count is not the list's: it stays a value
        ("He has 4 pets: a dog, a cat and a fish.", ["4"]),
        ("three of them: red, blue", ["3"]),
        ("It costs 3 dollars (5 with tax).", ["3", "5"]),
    ],
)
def test_a_count_its_own_list_spells_out_is_the_lists(text: str, values: list[str]) -> None:
    assert dd._stated(text) == values


def test_a_list_and_its_count_against_the_list_alone_agree() -> None:
    a = "John has a glass of water with breakfast, lunch and dinner, and one before bed. How many in a week?"
    b = "John drinks a glass of water at his three main meals - breakfast, lunch, and dinner - and one at bedtime."
    assert not dd._numbers_differ(dd._facts_of(a), dd._facts_of(b))


DANCE = (
    "A dance studio costs $25 per session to rent plus $1.50 per student per session. It has 10 students "
    "and is rented 3 days a week."
)
DANCE_TOLD_AGAIN = (
    "The rental fee for the center is $25 for each class, and $1.50 for each learner for each class. There "
    "are 10 learners, and the center is rented out three times a week."
)
DANCE_OTHER_ORDER = (
    "There are 10 learners; the center is rented out three times a week. The rental fee is $25 for each "
    "class, and $1.50 for each learner for each class."
)


def test_the_same_values_in_the_same_order_lower_the_cosine_needed() -> None:
    fa, fb, fc = map(dd._facts_of, (DANCE, DANCE_TOLD_AGAIN, DANCE_OTHER_ORDER))
    assert fa.quantities == fb.quantities == fc.quantities == {"25", "1.5", "10", "3"}  # two beyond small counts
    assert dd._same_values(fa, fb) and not dd._same_values(fa, fc)
    # the same pair without the order's relief: the difference is exactly _RELIEF_SAME_VALUES
    plain = dd._needed(0.675, fa, fb) + dd._RELIEF_SAME_VALUES
    lift = dd._overlap(fa, fb) - dd._OVERLAP_TYPICAL
    relief = dd._RELIEF_ABOVE * max(lift, 0.0) + dd._PENALTY_BELOW * min(lift, 0.0)
    assert plain == pytest.approx(0.675 - relief - 3 * dd._RELIEF_PER_QUANTITY)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        # {2, 5, 10, 100}: one value beyond the small counts; some different problems share such in order
        ("He runs 2 miles, 5 days a week, for 10 weeks, $100.", "She reads 2 books, 5 nights, 10 weeks, $100.", False),
        # {5, 700, 4000}: two
        ("5 phones at $700 each, paid with $4000.", "5 smartphones for $700 per unit, $4000 handed over.", True),
        # {66, 1/3}: two ("1/3" and "one third" are one value)
        ("66 messages to Ms. Thompson and 1/3 as many to Mr. Yu", "66 notes to Ms. Thompson and one third of that to Mr. Yu",
         True),
        # the same two, another order
        ("A bag has a 5% discount. It is marked $140.", "A purse is priced at $140 with a 5% reduction.", False),
        # not the same values
        ("5 phones at $700 each, paid with $4000.", "5 phones at $700 each, paid with $4000 and $20.", False),
    ],
)  # fmt: skip
def test_same_values_in_order_need_two_beyond_the_small_counts(a: str, b: str, same: bool) -> None:
    assert dd._same_values(dd._facts_of(a), dd._facts_of(b)) is same


def test_dedup_merges_at_a_cosine_only_the_same_values_in_order_reach() -> None:
    fa, fb = dd._facts_of(DANCE), dd._facts_of(DANCE_TOLD_AGAIN)
    need = dd._needed(dd.PARAPHRASE, fa, fb)
    cos = need + dd._RELIEF_SAME_VALUES / 2  # above the bar with the relief, below it without
    res = dedup(["a", "b"], [DANCE, DANCE_TOLD_AGAIN], near=None, vectors=_pair(cos))
    assert [g.members for g in res.groups] == [("a", "b")]
    other = dedup(["a", "c"], [DANCE, DANCE_OTHER_ORDER], near=None, vectors=_pair(cos))
    assert other.groups == [] and dd._needed(dd.PARAPHRASE, fa, dd._facts_of(DANCE_OTHER_ORDER)) > cos
    verdict, why = dd.paraphrase_verdict(DANCE, DANCE_TOLD_AGAIN, cos)
    assert verdict and why.startswith(f"cosine {cos:.3f} >= {need:.3g}")


@pytest.mark.parametrize(
    ("text", "values"),
    [
        # a fraction right after a whole number joins it, however written
        ("one and a half hours", ["1.5"]),
        ("1.5 hours", ["1.5"]),
        ("2 1/2 cups", ["2.5"]),
        ("two and three quarters", ["2.75"]),
        ("4 and 1/2 hours", ["4.5"]),
        # ... unless it takes a part of something
        ("a third of the 500 and a fifth as much", ["0.333333", "500", "0.2"]),
        ("half an hour", ["30"]),
        # a scale multiplies the value right before it
        ("$2 million", ["2000000"]),
        ("3 dozen", ["36"]),
        ("three dozen", ["36"]),
        ("1 1/2 dozen", ["18"]),
        ("1 and a half dozen", ["18"]),
        ("half a dozen", ["6"]),
        ("1/2 a dozen", ["6"]),
        ("He ate half. A dozen more", ["0.5", "12"]),
    ],
)
def test_mixed_numbers_and_scales_read_as_one_value(text: str, values: list[str]) -> None:
    assert dd._stated(text) == values


def _guard(a: str, b: str) -> str:
    """The numbers guard's verdict on a pair, whatever its cosine."""
    return dd.guard_refusal(a, b, ("numbers",))


def test_formulas_are_read_whole_without_spaces_or_the_brackets_around_them() -> None:
    text = "If R is a ring and (f(x)g(x)) is in R[x], then Q(sqrt(2) + sqrt(3)) over Q, as Butler (1999) says."
    assert dd._formulas(text) == {"f(x)g(x)", "r[x]", "q(sqrt(2)+sqrt(3))", "1999"}
    assert dd._formulas("Statement 1 | S_n is non-Abelian for all n >= 3.") == {"s_n"}  # ">=" alone is no formula


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        # one expression written two ways that differ: another question (MMLU abstract algebra's siblings)
        (
            "Find the degree for the given field extension Q(sqrt(2) + sqrt(3)) over Q.",
            "What is the degree of the specified field extension Q(sqrt(2), sqrt(3)) over Q?",
            "formulas differ",
        ),
        (
            "Find all c in Z_3 such that Z_3[x]/(x^3 + cx^2 + 1) is a field.",
            "Identify all c values in Z_3 for which Z_3[x]/(x^3 + x^2 + c) comprises a field.",
            "formulas differ",
        ),
        # the same formula, one said partly in words, or only one text with a formula: not told apart
        ("Find the identity if a*b = a for all a.", "Which is the identity when a*b equals a for every a?", ""),
        ("Statement 1 | S_n is non-Abelian for all n >= 3.", "For all n of at least 3, S_n is not Abelian.", ""),
        ("Is x^2 + 1 irreducible over the reals?", "Over the reals, can the polynomial x^2 + 1 be factored?", ""),
        ("Is the group S_n abelian for every n?", "Is the symmetric group on n letters abelian for every n?", ""),
    ],
)
def test_formulas_that_differ_tell_two_texts_apart(a: str, b: str, why: str) -> None:
    assert _guard(a, b) == why


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        # a value one text writes as a range or after "order" (an identifier there) is unknown, not different
        (
            "The Great Migration of 1916-1919 made Chicago diverse. The consequence was:",
            "The Great Migration from 1916 to 1919 made Chicago diverse. As a result:",
            "",
        ),
        (
            "Every group of order 42 has a normal subgroup of order 7.",
            "All groups with 42 members have a normal subgroup with 7 members.",
            "",
        ),
        # a digit inside a decimal, a fraction or a percentage is no identifier: 5 hours is still new
        (
            "A park measures 1.5 miles by 6 miles. If he walks it in 5 hours, how fast is he?",
            "A park measures 1.5 miles by 6 miles. How many hours does he walk?",
            "numbers differ",
        ),
        (
            "She kept 1/4 of the 12 boxes and sold 4.",
            "She kept 1/4 of the 12 boxes and sold the rest.",
            "numbers differ",
        ),
        ("Interest is 2% a month for 2 more months.", "Interest is 2% a month.", "numbers differ"),
    ],
)
def test_identifiers_and_ranges_are_unknown_values_not_other_ones(a: str, b: str, why: str) -> None:
    assert _guard(a, b) == why


@pytest.mark.parametrize(
    ("text", "values"),
    [
        # a unit right after a unit starts another number; a tens word after a unit too
        ("three one-hour classes and two two-hour classes", ["3", "2", "2"]),
        ("twenty two pens and one hundred two cups", ["22", "102"]),
        ("two thousand twenty", ["2020"]),
        # "Nfold" for any number word, and decades as a scale
        ("sevenfold and twentyfold", ["7", "20"]),
        ("four decades", ["40"]),
        # a number right after a word and a hyphen is a code, not a value
        ("the COVID-19 outbreak closed 3 wards", ["3"]),
    ],
)
def test_number_words_codes_and_folds_read_as_values(text: str, values: list[str]) -> None:
    assert dd._stated(text) == values


@pytest.mark.parametrize(
    ("text", "implied"),
    [
        # a list implies no count: "5 bananas, 12 apples, and 7 oranges" says no 3 that "three times" could be
        ("Toulouse, Charleston, and Seattle have 20 sheep.", set()),
        ("In a week, how many glasses of water does he drink?", {"7"}),  # "week" alone is 7 days
        # an amount of time in smaller units
        ("for 2 weeks", {"14"}),
        ("after three hours", {"180"}),
        # an ordinal that labels says its number, one that orders does not; a decade its other spelling;
        # "nonzero" zero
        ("the third phase", {"3"}),
        ("a sixth-grade class at the second stop", {"6"}),
        ("in the 1980s", {"80"}),
        ("in the 80s", {"1980", "2080"}),
        ("a nonzero determinant", {"0"}),
    ],
)
def test_values_a_text_implies_beyond_single_words(text: str, implied: set[str]) -> None:
    assert dd._facts_of(text).implied == implied


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        # what one text states, the other implies: unknown, not different (GSM8K / MMLU rephrasings' forms)
        (
            "Emily has 4 kids named Amy, Jackson, Corey, and James. Amy is 5 years older than Jackson.",
            "Emily is a mother to four children: Amy, Jackson, Corey, and James. Amy is 5 years senior to Jackson.",
            "",
        ),
        (
            "Emily has three kinds of flowers: roses, lilies and tulips.",
            "Emily keeps three types of flowers for sale: roses, lilies, and tulips.",
            "",
        ),
        # a list's size vouches for no value: the "3 miles" one text drops is a fact, not the three runners
        (
            "Reggie, Lynn, and Paisley ran. Reggie ran 5 times what Paisley ran and 3 miles farther than Lynn.",
            "Reggie, Lynn, and Paisley ran. Reggie ran 5 times what Paisley ran.",
            "numbers differ",
        ),
        (
            "Kris plays half an hour a day for 2 weeks, then 2 hours a day for a week.",
            "Kris plays thirty minutes daily for 14 days, then two hours daily for 7 days.",
            "",
        ),
        ("In stage 3 of the transition, the causes are:", "During the third phase of the transition, the causes?", ""),
        ("Law was privatized in the 1980s and 1990s through:", "How was law privatized during the 80s and 90s?", ""),
        ("Matrices with nonzero determinant form a group.", "Matrices whose determinant is not zero form a group.", ""),
        # "the second stop" vouches for no 2 people; a list of three against a stated count of four is still
        # different; so are two unrelated values
        (
            "On the second stop 21 get off. Before it leaves, 2 people get off again.",
            "At the second station 21 get off.",
            "numbers differ",
        ),
        ("Amy, Jackson and Corey have 4 apples.", "Amy, Jackson and Corey have 5 apples.", "numbers differ"),
        ("He played for 2 weeks.", "He played for 15 days.", "numbers differ"),
    ],
)
def test_values_one_text_implies_are_unknown_not_different(a: str, b: str, why: str) -> None:
    assert _guard(a, b) == why
