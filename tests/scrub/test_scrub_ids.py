"""Structured identifiers, addresses and names beyond the lists: hand-made texts, outputs worked out by hand
(issue 11 §1, issue 17)."""

from __future__ import annotations

import pytest

from evaltray.scrub import PlaceholderMap, Scrubber
from evaltray.scrub._ids import iban_valid, itin_valid, ssn_valid


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    return Scrubber()


CASES = [
    # US national ids: a valid SSN shape anywhere, any grouping after a cue; ITIN by its 9xx / group range
    ("My SSN is 078-05-1120.", "My SSN is <SSN_1>."),
    ("social security number 123 45 6789", "social security number <SSN_1>"),
    ("Ticket 666-12-3456 closed", "Ticket 666-12-3456 closed"),  # area 666 is never issued
    ("ITIN: 912-78-1234", "ITIN: <ITIN_1>"),
    ("filed with 912-78-1234", "filed with <ITIN_1>"),
    # passport and licence numbers only after their cue
    ("my passport number is X12345678.", "my passport number is <PASSPORT_1>."),
    ("my passport expired", "my passport expired"),
    ("driver's license: D1234-5678-9012", "driver's license: <DRIVER_LICENSE_1>"),
    ("DL# S530-4602-7788", "DL# <DRIVER_LICENSE_1>"),
    # phones: E.164 and national plans of UK, DE, FR, IN, BR, US; short numbers when a cue names them
    ("call +44 20 7946 0958 today", "call <PHONE_1> today"),
    ("Tel: +49 30 901820", "Tel: <PHONE_1>"),
    ("ring 01 42 68 53 00", "ring <PHONE_1>"),
    ("my cell is +91 98765 43210", "my cell is <PHONE_1>"),
    ("whatsapp (11) 98765-4321", "whatsapp <PHONE_1>"),
    ("call 020 7946 0958", "call <PHONE_1>"),
    ("Can someone call me on 9472 7916?", "Can someone call me on <PHONE_1>?"),
    ("(37) 788-063-Office", "<PHONE_1>-Office"),
    # ids are not phones or cards (issue 17): order, item and reference numbers stay
    ("order 1234567890 shipped", "order 1234567890 shipped"),
    ("Order #5551234567 shipped", "Order #5551234567 shipped"),
    ("item ID 7751905257 is out", "item ID 7751905257 is out"),
    ("the code 4155550143 expired", "the code 4155550143 expired"),
    # sums of amounts are no phone numbers (a τ²-bench agent's calculator calls)
    ("256.67 - 226.49", "256.67 - 226.49"),
    ('{"expression": "1166.98 - 481.5"}', '{"expression": "1166.98 - 481.5"}'),
    ("ref 490154203237 closed", "ref 490154203237 closed"),  # 12 digits that pass Luhn, no card cue
    ("+447700677662 mobile", "<PHONE_1> mobile"),  # Luhn-valid digits after "+" are a phone, not a card
    ("card 630427373398 is lost", "card <CREDIT_CARD_1> is lost"),  # 12-digit Maestro after a card cue
    ("zip 94105-1234", "zip <ADDRESS_1>"),
    # IBAN in any case and grouping, kept only when mod-97 holds
    ("iban gb82 west 1234 5698 7654 32 please", "iban <IBAN_1> please"),
    ("to de89370400440532013000 now", "to <IBAN_1> now"),
    ("GB83WEST12345698765432", "GB83WEST12345698765432"),
    # postal codes only with context
    ("94105 is nice", "94105 is nice"),
    ("SW1A 1AA", "SW1A 1AA"),
    ("postal code K1A 0B1", "postal code <ADDRESS_1>"),
    ("postcode SW1A 1AA", "postcode <ADDRESS_1>"),
    # non-US and multi-line street addresses, grown over their lines; the sentence after them stays
    ("Ship to:\nHauptstraße 5\n10115 Berlin\nGermany\n\nThanks, see you", "Ship to:\n<ADDRESS_1>\n\nThanks, see you"),
    ("deliver to 12 rue de la Paix, 75002 Paris.", "deliver to <ADDRESS_1>."),
    ("Meet me at Kungsgatan 12, Stockholm tomorrow", "Meet me at <ADDRESS_1> tomorrow"),
    ("I live at 221B Baker Street, London NW1 6XE", "I live at <ADDRESS_1>"),
    ("Flat at Rua do Arenque 1634\nApt. 12\nGoiânia\nBrazil 74000", "Flat at <ADDRESS_1>"),
    ("The bus station is on Villacher Strasse 89", "The bus station is on <ADDRESS_1>"),
    ("meet at the corner of 5th and Main.", "meet at <ADDRESS_1>."),  # an intersection
    ("In the corner of my eye and heart", "In the corner of my eye and heart"),
    ("To:\n12 Main St\nPines Beach\nNew Zealand 34694\n\nBest regards", "To:\n<ADDRESS_1>\n\nBest regards"),
    # a name glued to an address stays a name; the address after it is still one address
    ("Mrs. Yudina Apt. 675 62314 Mellemvej 32\nAalborg 9100", "Mrs. <PERSON_1> <ADDRESS_1>"),
    # numbers around ordinary words are no address
    ("I have 3 apples and 4 pears", "I have 3 apples and 4 pears"),
    ("Python 3 and Windows 10 on 2 machines", "Python 3 and Windows 10 on 2 machines"),
]

NAME_CASES = [
    ("Mr. Spears called", "Mr. <PERSON_1> called"),  # after a title, even a word the dictionary has
    ("Lunch with Elínborg Guðmundsdóttir today", "Lunch with <PERSON_1> today"),  # unlisted, non-ASCII letters
    ("The report by Ravil T Yefimov arrived", "The report by <PERSON_1> arrived"),  # middle initial, -ov
    ("Szczepanikowski was late again", "<PERSON_1> was late again"),  # unlisted, -ski
    ("Halldóra: see you at noon\nBot: ok", "<PERSON_1>: see you at noon\nBot: ok"),  # a speaker, not a role
    ("her maiden name is nyberg", "her maiden name is <PERSON_1>"),
    ("What's your last name? Turgeon", "What's your last name? <PERSON_1>"),
    ("everyone calls me Aantje", "everyone calls me <PERSON_1>"),
    ("Reply to Maria about it", "Reply to <PERSON_1> about it"),
    ("Järvilehto began writing as a teen", "<PERSON_1> began writing as a teen"),  # what people do
    ("The package is from Amazon", "The package is from Amazon"),
    ("I like red, green, blue and violet", "I like red, green, blue and violet"),  # one given name of four
    # places and products are not people (issue 17: city names became <PERSON>)
    ("We flew to Loeches on Monday", "We flew to Loeches on Monday"),
    ("We moved here from Kenosha", "We moved here from Kenosha"),
    ("Deploy to Kubernetes with Terraform", "Deploy to Kubernetes with Terraform"),
    ("We met in São Paulo", "We met in São Paulo"),
]


@pytest.mark.parametrize(("text", "want"), CASES + NAME_CASES)
def test_structured_ids_and_addresses(scrubber: Scrubber, text: str, want: str) -> None:
    assert scrubber.scrub_text(text, PlaceholderMap()) == want


def test_checks_by_hand() -> None:
    # GB82WEST12345698765432 -> WEST12345698765432GB82 -> 3214282912345698765432161182, mod 97 = 1
    assert iban_valid("gb82 west 1234 5698 7654 32")
    assert not iban_valid("GB82WEST12345698765433")
    assert ssn_valid("078-05-1120") and not ssn_valid("000-12-3456") and not ssn_valid("123-00-4567")
    assert not ssn_valid("912-78-1234") and itin_valid("912-78-1234") and not itin_valid("912-93-1234")


def test_same_values_get_the_same_placeholder_across_spellings(scrubber: Scrubber) -> None:
    mapping = PlaceholderMap()
    a = scrubber.scrub_text("iban GB82 WEST 1234 5698 7654 32", mapping)
    b = scrubber.scrub_text("same as gb82west12345698765432", mapping)
    assert (a, b) == ("iban <IBAN_1>", "same as <IBAN_1>")


def test_model_person_spans_are_vetted_by_the_gazetteer() -> None:
    from evaltray.scrub._names import load_gazetteer, plausible_model_name

    gaz = load_gazetteer()

    def ok(text: str, value: str) -> bool:
        start = text.index(value)
        return plausible_model_name(gaz, text, start, start + len(value))

    assert ok("I spoke to Bonifacy Kaczmarek today", "Bonifacy Kaczmarek")
    assert not ok("We flew to Loeches on Monday", "Loeches")  # a journey's end
    assert not ok("We met in Kenosha", "Kenosha")  # one word after a place preposition
    assert not ok("The Davis Orchestra played", "Davis")  # the head of an organisation's name
    assert not ok("Order 12345 for Jane", "Order 12345")  # digits are never a name
    assert not ok("Welcome to France", "France")  # a place the lists know


def test_spacy_model_runs_only_its_entity_recognizer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ner = nlp.add_pipe("ner")
    ner.add_label("PERSON")
    nlp.initialize()
    nlp.to_disk(tmp_path / "model")
    s = Scrubber(ner=f"spacy:{tmp_path / 'model'}")
    engine = s.analyzer.nlp_engine.nlp["en"]  # type: ignore[attr-defined]
    assert engine.pipe_names == ["ner"] and "sentencizer" in engine.component_names
    assert s.scrub_text("Mail jane@example.com", PlaceholderMap()) == "Mail <EMAIL_1>"
