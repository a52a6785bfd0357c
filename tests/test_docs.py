"""The README documents every command and its API example runs; the shipped JSON Schema is the model's."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import click
import jsonschema

from evaltray.cli import cli
from evaltray.core.records import case_json_schema

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + " ")
        else:
            yield path


def test_every_command_is_in_the_readme():
    lines = README.splitlines()

    def documented(path: str) -> bool:
        head, *sub = path.split()
        return any(f"evaltray {head}" in line and (not sub or re.search(rf"\b{sub[0]}\b", line)) for line in lines)

    assert [c for c in _commands(cli) if not documented(c)] == []


def test_shipped_schema_matches_the_model():
    shipped = json.loads((resources.files("evaltray") / "schemas" / "case.schema.json").read_text())
    assert shipped == case_json_schema()


def test_demo_rows_satisfy_the_shipped_schema(tmp_path):
    from evaltray.demo import run_demo

    printed: list[str] = []
    summary = run_demo(tmp_path / "demo", echo=printed.append)
    workspace = (tmp_path / "demo").resolve()  # the demo ends with the command that opens the web app on it
    web = f"cd {workspace} && evaltray user passwd alice && evaltray serve  # then http://127.0.0.1:8080/"
    assert (printed[-1], summary["web"]) == (f"  {web}", web)
    # the planted contamination is caught: the copied row by every verbatim method, the edited one not as exact
    copied, edited = summary["contamination"]["planted"]
    assert summary["contamination"]["found"] == {copied: ["exact", "lcs", "ngram"], edited: ["lcs", "ngram"]}
    # the stub target replays production's tool calls and the τ²-bench dev cases are scored on them. Read one by
    # one (32 such cases in one run): 17 pass where the benchmark's reward passed, 4 fail where it failed; 10 the
    # reward passed miss a free-text argument such as a transfer summary, list item ids in another order, or a
    # calculation on other amounts. Which cases land in dev changes with the run's ids: counted from the release.
    manifest = json.loads((tmp_path / "demo" / "releases" / "1.1.0.json").read_text())
    held = set(manifest["sets"]["main"]["holdout"])
    snapshot = (tmp_path / "demo" / "releases" / "1.1.0" / "main.jsonl").read_text().splitlines()
    dev = [row for row in map(json.loads, snapshot) if row["id"] not in held]
    with_calls = sum(bool(row["expected"].get("tool_calls")) for row in dev)
    calls = summary["evaluation"]["tool_calls"]
    assert (calls["pass"] + calls["fail"], calls["n/a"]) == (with_calls, len(dev) - with_calls)
    assert 16 <= calls["pass"] <= 19 and with_calls >= 30  # 18 of 32 in the run read by hand, ± the cases moved
    # the drift step: two halves of the same traffic are calm; retail conversations arriving are a new intent
    assert summary["drift"]["steady"] == "green" and summary["drift"]["shifted"] == "red"
    assert summary["drift"]["new_intents"] >= 1
    schema = case_json_schema()
    rows = [json.loads(x) for x in (tmp_path / "demo" / "sets" / "main" / "cases.jsonl").read_text().splitlines()]
    assert len(rows) == summary["gate"]["promoted_main"] - 1  # one case retired before 1.1.0
    for row in rows:
        jsonschema.validate(row, schema)


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's API example, run as written on a workspace made by `evaltray init shop-bot`."""
    from evaltray.core.store import Workspace

    section = README[README.index("## Python API") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("\n```", start)]
    monkeypatch.chdir(tmp_path)
    Workspace.init(tmp_path / "shop-bot", user="alice").close()
    (tmp_path / "chats.jsonl").write_bytes(
        (Path(__file__).parent / "data" / "scrub_workspace" / "chats.jsonl").read_bytes()
    )
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    release_hash, path = printed[-1].split()
    manifest = json.loads((tmp_path / "shop-bot" / "releases" / "1.0.0.json").read_text())
    assert release_hash == manifest["content_hash"] and manifest["sets"]["main"]["n_cases"] == 2
    assert path == str(tmp_path / "shop-bot" / "exports" / "1.0.0-main-all.inspect.jsonl")
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert [r["metadata"]["release_hash"] for r in rows] == [release_hash] * 2
