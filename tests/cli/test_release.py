"""``evaltray release …`` and ``evaltray export``: one naming rule for every format."""

from __future__ import annotations

import json

from .runner import ADD_PAYPAL_CASE, run


def _release(shop) -> dict:
    run(*ADD_PAYPAL_CASE)
    run(
        "cases",
        "add",
        "--source",
        "sme",
        "--input",
        "Do you ship to Norway?",
        "--expected",
        "Not yet.",
        "--feature",
        "shipping",
        "--difficulty",
        "easy",
        "--case-type",
        "typical",
    )
    run("promote")
    return json.loads(run("release", "create", "1.0.0", "--json").stdout)


def test_export_file_names_of_every_format(shop):
    made = _release(shop)
    names = {}
    for fmt in ("promptfoo", "inspect", "hf", "jsonl"):
        data = json.loads(run("export", "1.0.0", "--to", fmt, "--split", "all", "--json").stdout)
        assert (data["cases"], data["split"], data["release"], data["release_hash"], data["format"]) == (
            2,
            "all",
            "1.0.0",
            made["content_hash"],
            fmt,
        )
        names[fmt] = data["path"]
    assert names == {
        fmt: str(shop / "exports" / name)
        for fmt, name in (
            ("promptfoo", "1.0.0-main-all.promptfoo.yaml"),
            ("inspect", "1.0.0-main-all.inspect.jsonl"),
            ("hf", "1.0.0-main-all.hf.parquet"),
            ("jsonl", "1.0.0-main-all.jsonl"),
        )
    }
    assert sorted(p.name for p in (shop / "exports").iterdir()) == sorted(p.rsplit("/", 1)[1] for p in names.values())
    r = run("export", "1.0.0", "--to", "jsonl", "--subset", "pr")
    assert r.stdout == f"wrote 2 dev-pr case(s) of main@1.0.0 to {shop / 'exports' / '1.0.0-main-dev-pr.jsonl'}\n"
    r = run("export", "1.0.0", "--to", "inspect", "--split", "holdout", "-o", "held.jsonl", "--json")
    assert json.loads(r.stdout)["path"] == "held.jsonl" and (shop / "held.jsonl").exists()


def test_export_errors(shop):
    r = run("export", "1.0.0", "--to", "jsonl", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: no release '1.0.0' (releases: none yet)\n")
    r = run("export", "1.0.0", "--to", "csv", ok=False)
    assert (r.exit_code, r.stderr) == (
        1,
        "Error: Invalid value for '--to': 'csv' is not one of 'promptfoo', 'inspect', 'hf', 'jsonl'. "
        "(try `evaltray export --help`)\n",
    )
    _release(shop)
    r = run("export", "1.0.0", "--to", "jsonl", "--set", "nope", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: set 'nope' is not in this workspace (sets: main, edge)\n")
    r = run("export", "1.0.0", "--to", "jsonl", "-o", "/proc/nope/x.jsonl", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: cannot write /proc/nope/x.jsonl: No such file or directory\n")


def test_an_empty_release_warns_on_stderr(shop):
    r = run("release", "create", "0.1.0")
    assert r.stderr == (
        "warning the release holds no case: every set's tray is empty (`evaltray promote` moves signed cases in)\n"
    )
    assert r.stdout.startswith("created release 0.1.0 ")
