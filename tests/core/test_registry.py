"""The one registry: names, aliases, refusals and the exact message for a name nobody registered."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from evaltray.core.errors import EvaltrayError
from evaltray.core.registry import Registry, UnknownName


class ExportError(EvaltrayError):
    pass


def make() -> Registry[Callable[[], str]]:
    reg: Registry[Callable[[], str]] = Registry("export format", error=ExportError)

    @reg.register("jsonl")
    def jsonl() -> str:
        return "jsonl"

    @reg.register("hf", "huggingface")
    def hf() -> str:
        return "hf"

    reg.add("csv", lambda: "csv")
    return reg


def test_register_returns_the_object_and_get_finds_it_by_name_or_alias() -> None:
    reg = make()
    assert reg.get("jsonl")() == "jsonl"
    assert reg.get("hf") is reg.get("huggingface")
    assert reg.get("csv")() == "csv"


def test_names_are_sorted_items_keep_registration_order_and_aliases_are_left_out() -> None:
    reg = make()
    assert reg.names() == ["csv", "hf", "jsonl"]
    assert list(reg) == ["csv", "hf", "jsonl"]
    assert [name for name, _ in reg.items()] == ["jsonl", "hf", "csv"]
    assert len(reg) == 3
    assert "huggingface" in reg and "hf" in reg and "parquet" not in reg


def test_an_unknown_name_is_the_registrys_error_naming_the_choices() -> None:
    with pytest.raises(ExportError) as err:
        make().get("parquet")
    assert str(err.value) == "unknown export format 'parquet': one of csv, hf, jsonl"
    empty: Registry[int] = Registry("scorer")
    with pytest.raises(UnknownName) as err2:
        empty.get("exact")
    assert str(err2.value) == "unknown scorer 'exact': one of "
    assert issubclass(UnknownName, EvaltrayError)


@pytest.mark.parametrize(
    ("name", "aliases", "taken"),
    [
        ("jsonl", (), "jsonl"),  # a name taken twice
        ("hub", ("hf",), "hf"),  # an alias that is another's name
        ("json", ("huggingface",), "huggingface"),  # an alias that is another's alias
        ("tsv", ("tab", "tab"), "tab"),  # one alias given twice
        ("tsv", ("tsv",), "tsv"),  # a name given as its own alias
    ],
)
def test_a_name_taken_twice_is_refused_and_nothing_of_it_registered(
    name: str, aliases: tuple[str, ...], taken: str
) -> None:
    reg = make()
    with pytest.raises(RuntimeError) as err:
        reg.add(name, lambda: "other", *aliases)
    assert str(err.value) == f"export format {taken!r} registered twice"
    assert reg.names() == ["csv", "hf", "jsonl"] and "tsv" not in reg and "hub" not in reg
    assert reg.get("jsonl")() == "jsonl"
