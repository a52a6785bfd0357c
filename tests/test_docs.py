"""The README documents every command, and the shipped JSON Schema is the model's."""

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

    summary = run_demo(tmp_path / "demo", echo=None)
    schema = case_json_schema()
    rows = [json.loads(x) for x in (tmp_path / "demo" / "sets" / "main" / "cases.jsonl").read_text().splitlines()]
    assert len(rows) == summary["gate"]["promoted_main"] - 1  # one case retired before 1.1.0
    for row in rows:
        jsonschema.validate(row, schema)
