"""The CLI end to end through click's runner: the user's commands, their JSON, their errors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evaltray.cli import cli

from .runner import ADD_PAYPAL_CASE, run


def _walk(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_every_command_takes_json():
    missing = [" ".join(path) for path, cmd in _walk(cli) if not any(p.name == "as_json" for p in cmd.params)]
    assert missing == []


def test_commands_that_write_the_tray_take_dry_run():
    writers = {
        ("promote",),
        ("reject",),
        ("signoff",),
        ("cases", "retire"),
        ("release", "create"),
        ("candidates", "add"),
        ("labels", "import"),
    }
    cmds = dict(_walk(cli))
    assert [w for w in writers if not any(p.name == "dry_run" for p in cmds[w].params)] == []


def test_init_writes_settings_and_refuses_twice(tmp_path):
    r = run("--user", "alice", "init", "ws", "--json")
    data = json.loads(r.stdout)
    assert data["sets"] == ["main", "edge"] and data["admin"] == "alice"
    assert (tmp_path / "ws" / "evaltray.toml").read_text().count("holdout = 0.20") == 1
    r = run("init", "ws", ok=False)
    assert r.exit_code == 1 and r.stderr == f"Error: {tmp_path / 'ws'}: already an evaltray workspace\n"


def test_no_workspace_is_a_clear_error(tmp_path):
    r = run("traces", "stats", ok=False)
    assert r.exit_code == 1
    assert r.stderr == f"Error: no evaltray.toml in {tmp_path} or its parents; run `evaltray init NAME` first\n"


def test_ingest_stats_and_list(shop):
    stats = json.loads(run("traces", "stats", "--json").stdout)
    assert stats["total"] == 10 and stats["by"]["feature"] == {"refunds": 5, "shipping": 5}
    listed = json.loads(run("traces", "list", "--where", "feature = 'refunds'", "--json").stdout)
    assert [r["trace_id"] for r in listed] == ["t1", "t3", "t5", "t7", "t9"]
    r = run("traces", "list", "--where", "nonsense_column = 1", ok=False)
    assert r.exit_code == 1 and r.stderr.startswith("Error: --where 'nonsense_column = 1': Binder Error")


def test_full_flow_review_gate_release_export(shop):
    added = json.loads(run("candidates", "add", "--where", "feature = 'refunds'", "--limit", "3", "--json").stdout)
    assert len(added["added"]) == 3
    first, second, third = added["added"]
    # interactive review: expected behaviour first, then the recorded output, then the verdict
    answers = (
        "\n".join(
            ["Refunds take 5 days.", "", "mentions 5 days", "fail", "too vague", "vague", "refunds", "easy", "typical"]
        )
        + "\n"
    )
    r = run("review", first, input=answers)
    out = r.stdout
    assert out.index("Expected behaviour") < out.index("recorded output") < out.index("Verdict")
    run(
        "review",
        second,
        third,
        "--expected",
        "Refunds take 5 days.",
        "--verdict",
        "pass",
        "--slice",
        "refunds",
        "--difficulty",
        "easy",
        "--case-type",
        "typical",
    )
    promoted = json.loads(run("promote", "--json").stdout)
    assert len(promoted["promoted"]) == 3 and promoted["blocked"] == []
    assert run("tray", "validate").stdout.splitlines() == ["sets/main/cases.jsonl: ok", "sets/edge/cases.jsonl: ok"]
    created = json.loads(run("release", "create", "1.0.0", "--json").stdout)
    assert created["sets"]["main"]["n_cases"] == 3 and created["sets"]["main"]["split"] == {"dev": 2, "holdout": 1}
    assert json.loads(run("release", "verify", "1.0.0", "--json").stdout) == {
        "version": "1.0.0",
        "ok": True,
        "problems": [],
    }
    exp = json.loads(run("export", "1.0.0", "--to", "jsonl", "--split", "dev", "--json").stdout)
    lines = Path(exp["path"]).read_bytes().splitlines()
    manifest = json.loads((shop / "releases" / "1.0.0.json").read_text())
    assert exp["release_hash"] == manifest["content_hash"] and len(lines) == 2
    assert not {json.loads(x)["id"] for x in lines} & set(manifest["sets"]["main"]["holdout"])
    hold = json.loads(run("export", "1.0.0", "--to", "inspect", "--split", "holdout", "--json").stdout)
    assert hold["cases"] == 1
    rel = json.loads(run("release", "list", "--json").stdout)
    assert [(x["version"], x["status"]) for x in rel] == [("1.0.0", "active")]
    run("release", "archive", "1.0.0")
    assert json.loads(run("release", "list", "--json").stdout)[0]["status"] == "archived"


def test_tray_validate_exits_1_on_a_hand_edit(shop):
    run(*ADD_PAYPAL_CASE)
    run("promote")
    path = shop / "sets" / "main" / "cases.jsonl"
    row = json.loads(path.read_text())
    row["expected"]["reference"] = "No."
    path.write_text(json.dumps(row) + "\n")
    r = run("tray", "validate", "--set", "main", ok=False)
    assert r.exit_code == 1
    where = f"sets/main/cases.jsonl: line 1 {row['id']}"
    assert r.stdout == (
        f"{where}: row differs from what was signed off (hand-edited after promotion?)\n"
        f"{where}: sign-off signature by 'alice' is invalid: it does not verify against their registered keys "
        "for this case's label (label edited after sign-off, or a signature copied from elsewhere)\n"
        f"{where}: promotion signature by 'alice' is invalid: the row differs from what was promoted, "
        "or the signature is not theirs\n"
    )
    r = run("release", "create", "1.0.0", ok=False)
    assert r.exit_code == 1 and "set 'main' fails validation" in r.stderr


def test_roles_reject_retire_and_labels_import(shop, tmp_path):
    run("users", "add", "bob", "--role", "labeler")
    r = run("--user", "bob", "users", "add", "eve", "--role", "admin", ok=False)
    assert r.stderr == "Error: user 'bob' is a labeler; managing users needs one of: admin\n"
    added = json.loads(run("candidates", "add", "--json").stdout)["added"]
    assert len(added) == 10
    run("reject", added[0], "--reason", "not plausible")
    r = run("reject", added[0], "--reason", "duplicate", ok=False)
    assert r.stderr == f"Error: candidate {added[0]} is rejected; only pending candidates can be rejected\n"
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "candidate_id,expected,verdict,slice,difficulty,case_type\n"
        f"{added[1]},Answer one.,pass,refunds,easy,typical\n"
        f"{added[2]},,pass,refunds,easy,typical\n"
    )
    r = run("--user", "bob", "labels", "import", str(labels), "--json")
    assert json.loads(r.stdout)["imported"] == 1
    assert f"{labels}:3: the expected behaviour is empty" in r.stderr
    r = run("--user", "bob", "signoff", added[1], ok=False)
    assert "needs one of: adjudicator, admin" in r.stderr
    assert json.loads(run("signoff", "--all", "--json").stdout)["signed_reviews"]
    (p,) = json.loads(run("promote", "--json").stdout)["promoted"]
    r = run("--user", "bob", "cases", "retire", p["case_id"], "--reason", "x", ok=False)
    assert "retiring a case needs one of" in r.stderr
    run("cases", "retire", p["case_id"], "--reason", "feature removed")
    listed = json.loads(run("cases", "list", "--all", "--json").stdout)
    assert [(c["id"], c["status"], c["retired_reason"]) for c in listed] == [
        (p["case_id"], "retired", "feature removed")
    ]
    assert json.loads(run("candidates", "bin", "--json").stdout) == {"not_plausible": 1}


def test_dry_run_writes_nothing(shop):
    before = (shop / "sets" / "main" / "cases.jsonl").read_bytes()
    added = json.loads(run("candidates", "add", "--dry-run", "--json").stdout)
    assert added["dry_run"] and len(added["added"]) == 10
    assert json.loads(run("candidates", "list", "--json").stdout) == []
    assert (shop / "sets" / "main" / "cases.jsonl").read_bytes() == before


#: Values for required parameters when every command is run bare; the rest get "x".
_REQUIRED = {
    **{"source": "sme", "reason": "duplicate", "size": "1", "fmt": "jsonl", "role": "labeler", "a": "0", "b": "1"},
    "target_spec": "replay",
    "baseline": "r-000000000000",
    "question": "is it about refunds?",
    **{"generator": "openai:gen", "judge_file": "judge.yaml"},
    "token_id": "1",
    "platform": "langfuse",
    "sample": "1",
    "heir": "bob",
    "reference": "An answer.",
    **{"to": "exclude.jsonl", "run_id": "r-000000000000", "live": "x"},
    **{"version": "1.0.0", "old": "1.0.0", "new": "1.1.0"},  # a malformed version is refused before the workspace
    **{"kind": "label", "number": "1", "outcome": "done", "to_path": "bugs.jsonl", "name": "x", "into": "x"},
}


def test_every_command_outside_a_workspace_says_so(tmp_path):
    (tmp_path / "x").write_text("{}")
    refused = []
    for path, cmd in _walk(cli):
        if path in {("init",), ("demo",), ("vault", "keygen"), ("user", "keygen"), ("users", "keygen")}:
            # these make what is missing
            continue
        if path[0] == "stats":  # arithmetic: no workspace needed
            continue
        args = list(path)
        for p in cmd.params:
            if isinstance(p, click.Argument):
                args.append(_REQUIRED.get(p.name, "x"))
            elif p.required:
                args += [p.opts[0], _REQUIRED[p.name]]
        r = run(*args, ok=False)
        if (r.exit_code, r.stderr) != (
            1,
            f"Error: no evaltray.toml in {tmp_path} or its parents; run `evaltray init NAME` first\n",
        ):
            refused.append((" ".join(args), r.exit_code, r.stderr))
    assert refused == []


def test_help_and_a_light_command_import_no_stage_library(tmp_path):
    """`evaltray --help` lists every command without importing it; `run --help` imports no stage either."""
    import subprocess
    import sys

    heavy = ["duckdb", "scipy", "sklearn", "presidio_analyzer", "fastapi", "aiohttp", "pandas", "sqlalchemy"]
    code = (
        "import sys\nfrom evaltray.cli import main\nsys.argv = ['evaltray', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)"
    )
    top = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, check=True)
    assert top.stderr.strip() == "[]"
    assert "  score-live  " in top.stdout and "  label-errors  " in top.stdout
    run_help = subprocess.run([sys.executable, "-c", code, "run", "--help"], capture_output=True, text=True)
    assert "--target" in run_help.stdout
    assert run_help.stderr.strip().splitlines()[-1] == "[]"  # the targets are imported when the run starts


def test_the_lazy_help_lists_what_the_loaded_commands_say():
    from evaltray.cli import COMMANDS
    from evaltray.cli._lazy import LazyCommands
    from evaltray.cli.evaluate import THRESHOLD_SHOWN
    from evaltray.evaluate.calibrate import DEFAULT_THRESHOLD

    fresh = LazyCommands(COMMANDS, {})
    for limit in (45, 62):
        said = {name: fresh.short_help(name, limit) for name in COMMANDS}
        assert said == {name: cli.commands[name].get_short_help_str(limit) for name in COMMANDS}
    assert float(THRESHOLD_SHOWN) == DEFAULT_THRESHOLD
    assert set(cli.commands["users"].commands) == set(cli.commands["user"].commands) >= {"add", "list"}
