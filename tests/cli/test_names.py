"""Names that name files (release versions, set names) are matched whole and never reach a path outside the
workspace: every command refuses them with one line, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaltray.core.errors import ReleaseError
from evaltray.core.settings import SET_NAME, VERSION, check_version

from .runner import ADD_PAYPAL_CASE, run


def _tree(root: Path) -> set[str]:
    """Every path under ``root`` (the workspace's parent: the folder a ``../`` would reach)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".evaltray" not in p.parts}


def test_a_name_pattern_is_matched_whole():
    """``$`` matches before a trailing newline: ``re.match(r"^…$", "2.0.0\\n")`` succeeds."""
    assert re.match(r"^\d\.\d\.\d$", "2.0.0\n")  # the trap the patterns avoid
    assert VERSION.fullmatch("2.0.0") and VERSION.fullmatch("1.0.0-rc.1")
    assert not VERSION.fullmatch("2.0.0\n") and not SET_NAME.fullmatch("main\n")
    assert check_version("10.2.3") == "10.2.3"
    for bad in ("2.0.0\n", "../1.0.0", "1.0", "01.0.0", "1.0.0-", "1.0.0/x"):
        with pytest.raises(ReleaseError) as err:
            check_version(bad)
        assert str(err.value) == f"{bad!r} is not a semantic version (MAJOR.MINOR.PATCH)"


@pytest.mark.parametrize("version", ["2.0.0\n", "../../x", "1.0.0/../../x"])
def test_a_version_that_is_not_a_whole_semantic_version_is_refused_by_every_command(shop, version):
    """Failed before: ``release create $'2.0.0\\n'`` created ``releases/2.0.0\\n.json``."""
    run(*ADD_PAYPAL_CASE)
    run("promote")
    before = _tree(shop.parent)
    message = f"Error: {version!r} is not a semantic version (MAJOR.MINOR.PATCH)\n"
    for args in (
        ("release", "create", version),
        ("release", "create", version, "--dry-run"),
        ("release", "verify", version),
        ("release", "archive", version),
        ("release", "activate", version),
        ("release", "diff", "1.0.0", version),
        ("release", "diff", version, "1.0.0"),
        ("export", version, "--to", "jsonl"),
    ):
        r = run(*args, ok=False)
        assert (r.exit_code, r.stdout, r.stderr) == (1, "", message), args
    assert _tree(shop.parent) == before
    assert run("release", "create", "1.0.0-rc.1").stdout.startswith("created release 1.0.0-rc.1 ")


def test_a_set_name_that_is_a_path_is_refused_by_every_command(shop):
    """``--set ../../x`` reaches no file: each command names the set and the workspace's sets."""
    run(*ADD_PAYPAL_CASE)
    run("promote")
    run("release", "create", "1.0.0")
    before = _tree(shop.parent)
    message = "Error: set '../../x' is not in this workspace (sets: main, edge)\n"
    for args in (
        ADD_PAYPAL_CASE,
        ("tray", "validate"),
        ("tray", "stats"),
        ("promote",),
        ("promote", "--dry-run"),
        ("cases", "list"),
        ("cases", "show", "x"),
        ("candidates", "add", "--trace", "t1"),
        ("candidates", "list"),
        ("candidates", "bin"),
        ("signoff", "--all"),
        ("coverage",),
        ("export", "1.0.0", "--to", "jsonl"),
    ):
        r = run(*args, "--set", "../../x", ok=False)
        assert (r.exit_code, r.stderr) == (1, message), args
    assert _tree(shop.parent) == before


@pytest.mark.parametrize("sets", ['["main", "../../x"]', '["main", "edge\\n"]', '["main", "a/b"]'])
def test_a_set_name_that_is_a_path_is_refused_where_the_settings_are_read(shop, sets):
    """``release create`` writes ``releases/<version>/<set>.jsonl`` for every set: a set named ``../../x`` in
    ``evaltray.toml`` stops every command before any file is written."""
    toml = shop / "evaltray.toml"
    toml.write_text(toml.read_text().replace('sets = ["main", "edge"]', f"sets = {sets}"))
    before = _tree(shop.parent)
    for args in (("release", "create", "1.0.0"), ("tray", "validate"), ("promote",), ("cases", "list")):
        r = run(*args, ok=False)
        assert r.exit_code == 1 and r.stderr.startswith(f"Error: {toml}: workspace.sets must be a list of set names")
        assert r.stderr.count("\n") == 1, r.stderr
    assert _tree(shop.parent) == before
