"""Hostile trace text through every exporter and the real loader of its target: it arrives as text.

The corpus is ``tests/data/export/hostile.json`` (see the README beside it). Each string fills every text
field of one case (messages, reference, assertions, rubric, context, labels); each export is then read the
way its target reads it and every field must come back byte-identical. Nothing may be read from disk,
run, or written outside the workspace on the way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml
from inspect_ai._util.format import format_template
from inspect_ai.dataset import json_dataset

from evaltray.core.errors import EvaltrayError, WorkspaceError
from evaltray.core.settings import Settings
from evaltray.core.store import Workspace
from evaltray.tray.export import PROMPTFOO_LOADERS, ExportError, export_cases, export_release
from evaltray.tray.release import create_release
from tests.helpers import tray_of
from tests.tray.test_export import REL, make_case, promptfoo_render

DATA = Path(__file__).parents[1] / "data" / "export"
HOSTILE: list[str] = json.loads((DATA / "hostile.json").read_text("utf-8"))


def _lone_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


TEXT = [s for s in HOSTILE if not _lone_surrogate(s)]
LONE = [s for s in HOSTILE if _lone_surrogate(s)]


def _hostile_case(n: int, text: str) -> dict[str, Any]:
    """Case ``hostile-<n>`` with ``text`` in every text field a trace or a reviewer can fill."""
    messages = [
        {"role": "system", "content": text},
        {"role": "user", "content": text},
        {"role": "assistant", "content": text},
        {"role": "user", "content": text},
    ]
    return make_case(
        f"hostile-{n:03d}",
        messages,
        {"reference": text, "assertions": [text]},
        input={"messages": messages, "context": [text]},
        rubric=text,
        labels={"feature": "orders", "scenario": text, "persona": text, "tags": [text]},
    )


CASES = [_hostile_case(n, s) for n, s in enumerate(TEXT)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hostile")
    return {fmt: export_cases(CASES, fmt, out, **REL) for fmt in ("promptfoo", "inspect", "hf", "jsonl")}


def test_the_corpus_covers_what_the_readme_lists() -> None:
    assert len(HOSTILE) == len(set(HOSTILE)) == 176
    for probe in ("{{ 7*7 }}", "{% endraw %}{{ 7*7 }}{% raw %}", "file:///etc/passwd", "file://./x.txt", "{input}"):
        assert probe in TEXT
    # an escape has to survive its own terminator: a {% raw %} fence is closed by any of these
    endraw = [s for s in TEXT if "endraw" in s]
    assert len(endraw) == 11 and {"{% endraw %}", "{%- endraw -%}{{ env.OPENAI_API_KEY }}{%- raw -%}"} <= set(endraw)
    assert {"\x00", "\u202eevil\u202c", "!!python/object:os.system", "&a [*a, *a]", ""} <= set(TEXT)
    assert LONE == ["\ud800", "\udfff", "a\udc80b", "\udbff\udbff"]
    assert max(len(s) for s in TEXT) > 100_000


def test_promptfoo_vars_and_assertions_render_back_to_the_text(exported: dict[str, Path]) -> None:
    doc = yaml.safe_load(exported["promptfoo"].read_bytes())
    tests = doc["tests"]
    assert [t["description"] for t in tests] == [f"hostile-{n:03d}" for n in range(len(TEXT))]
    for text, test in zip(TEXT, tests, strict=True):
        variables = test["vars"]
        assert not [v for v in variables.values() if v.startswith(PROMPTFOO_LOADERS)]
        rendered = {k: promptfoo_render(v, variables) for k, v in variables.items()}
        assert rendered["input"] == text
        assert rendered["context"] == text
        assert [m["content"] for m in json.loads(rendered["messages"])] == [text] * 4
        # An empty reference (and rubric) counts as none: only the assertion is left.
        reference = f"The response must agree with this reference answer:\n{text}\n\nGrading rubric:\n{text}"
        assert [promptfoo_render(a["value"], variables) for a in test["assert"]] == ([reference] if text else []) + [
            text
        ]
        # promptfoo reads test metadata as data: YAML carries it unchanged.
        assert (test["metadata"]["scenario"], test["metadata"]["tags"]) == (text, [text])


def test_promptfoo_before_the_fix_would_have_run_the_text() -> None:
    # The renderer the test trusts does run templates and env lookups when they are not escaped.
    assert promptfoo_render("{{ 7*7 }}") == "49"
    assert promptfoo_render("{{ env.HOME }}") == "/home/evaltray"
    assert promptfoo_render("{{ messages }}", {"messages": "[]"}) == "[]"
    with pytest.raises(AssertionError, match="promptfoo would load"):
        promptfoo_render("file:///etc/passwd")


def test_inspect_json_dataset_reads_every_field_back(exported: dict[str, Path]) -> None:
    samples = list(json_dataset(str(exported["inspect"])))
    assert [s.id for s in samples] == [f"hostile-{n:03d}" for n in range(len(TEXT))]
    for text, sample in zip(TEXT, samples, strict=True):
        assert not isinstance(sample.input, str)
        assert [m.role for m in sample.input] == ["system", "user", "assistant", "user"]
        assert [m.text for m in sample.input] == [text] * 4
        assert sample.target == (text if text else [text])  # no reference: the assertions are the target
        meta = sample.metadata or {}
        assert (meta["reference"], meta["rubric"], meta["assertions"], meta["context"]) == (text, text, [text], [text])
        assert (meta["scenario"], meta["persona"], meta["tags"]) == (text, text, [text])
        # Inspect formats the *solver's* template (prompt_template, system_message, model_graded_qa) with the
        # sample's text and metadata as values: a value is inserted, never formatted itself.
        assert format_template("{prompt}", {"prompt": text} | meta) == text
        assert format_template("[{scenario}]", meta) == f"[{text}]"


def test_hf_parquet_reads_every_field_back(exported: dict[str, Path]) -> None:
    rows = datasets.load_dataset("parquet", data_files=str(exported["hf"]), split="train")
    assert rows["id"] == [f"hostile-{n:03d}" for n in range(len(TEXT))]
    for text, row in zip(TEXT, rows, strict=True):
        assert [m["content"] for m in row["messages"]] == [text] * 4
        assert (row["input"], row["expected_reference"], row["rubric"]) == (text, text, text)
        assert (row["assertions"], row["context"], row["tags"]) == ([text], [text], [text])
        assert (row["scenario"], row["persona"]) == (text, text)


def test_jsonl_reads_every_field_back(exported: dict[str, Path]) -> None:
    lines = exported["jsonl"].read_bytes().split(b"\n")
    assert lines[-1] == b""
    for text, line in zip(TEXT, lines[:-1], strict=True):
        case = json.loads(line)
        assert [m["content"] for m in case["input"]["messages"]] == [text] * 4
        assert (case["expected"]["reference"], case["expected"]["assertions"], case["rubric"]) == (text, [text], text)
        assert (case["input"]["context"], case["labels"]["tags"], case["labels"]["scenario"]) == ([text], [text], text)


@pytest.mark.parametrize("fmt", ["promptfoo", "inspect", "hf", "jsonl"])
def test_a_lone_surrogate_is_refused_by_every_format(tmp_path: Path, fmt: str) -> None:
    # No UTF-8 file holds one and evaltray's releases cannot either: one line, nothing written.
    for n, text in enumerate(LONE):
        with pytest.raises(ExportError) as exc:
            export_cases([CASES[0], _hostile_case(900 + n, text)], fmt, tmp_path, **REL)
        assert str(exc.value) == (
            f"case 'hostile-{900 + n}' holds text with a lone surrogate (not valid Unicode): cannot export it"
        )
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- names that are paths


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("version", ["../1.0.0", "../../1.0.0", "1.0.0/../../x", "/tmp/1.0.0", "1.0.0-../x"])
def test_a_version_that_is_a_path_is_refused(ws: Workspace, version: str) -> None:
    tray_of(ws, {"refunds": 2})
    before = _files(ws.root.parent)
    with pytest.raises(EvaltrayError) as exc:
        create_release(ws, version, "alice")
    assert str(exc.value) == f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)"
    create_release(ws, "1.0.0", "alice")
    (ws.root / "1.0.0.json").write_bytes((ws.releases_dir / "1.0.0.json").read_bytes())  # a decoy one level up
    with pytest.raises(EvaltrayError) as exc:
        export_release(ws, version, to="jsonl")
    assert str(exc.value) == f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)"
    made = _files(ws.root.parent) - before
    assert all(p.is_relative_to(ws.root) for p in made)
    assert not (ws.root / "exports").exists()


@pytest.mark.parametrize("name", ["../../x", "..", "a/b", "Main", "-x", "x" * 65, "", "main.jsonl", "ma in"])
def test_a_set_name_that_is_a_path_is_refused_where_settings_are_read(tmp_path: Path, name: str) -> None:
    root = tmp_path / "ws"
    Workspace.init(root, name="shop-bot", user="alice").close()
    toml = root / "evaltray.toml"
    text = toml.read_text("utf-8")
    toml.write_text(text.replace('sets = ["main", "edge"]', f'sets = ["main", "edge", {json.dumps(name)}]'), "utf-8")
    before = _files(tmp_path)
    with pytest.raises(WorkspaceError) as exc:
        Settings.load(root)
    assert str(exc.value) == (
        f"{toml}: workspace.sets must be a list of set names (lowercase letters, digits, _ and -, at most 64, "
        f"starting with a letter or digit; each names files), each once, got {['main', 'edge', name]!r}"
    )
    with pytest.raises(WorkspaceError):
        Workspace.open(root)
    assert _files(tmp_path) == before


def test_set_names_that_are_names_still_load(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root, name="shop-bot", user="alice").close()
    toml = root / "evaltray.toml"
    names = ["main", "edge", "0", "pr_checks", "x" * 64, "a-b_c9"]
    toml.write_text(toml.read_text("utf-8").replace('sets = ["main", "edge"]', f"sets = {json.dumps(names)}"), "utf-8")
    assert Settings.load(root).sets == names
