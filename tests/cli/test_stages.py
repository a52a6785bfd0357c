"""``evaltray dedup`` and ``evaltray cluster …``: their errors are one line, never a traceback."""

from __future__ import annotations

import json

from .runner import run


def test_cluster_edits_refuse_clearly(shop):
    made = json.loads(run("cluster", "--k", "2", "--backend", "tfidf", "--json").stdout)
    assert [c["id"] for c in made["clusters"]] == [0, 1]
    r = run("cluster", "merge", "0", "0", ok=False)
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", "Error: cannot merge cluster 0 with itself\n")
    r = run("cluster", "merge", "0", "5", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: no cluster 5 (clusters: 0–1); see `evaltray cluster list`\n")
    r = run("cluster", "split", "0", "--k", "1", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: split needs k >= 2, got 1\n")
    renamed = json.loads(run("cluster", "rename", "1", "shipping asks", "--json").stdout)
    assert {c["id"]: c["name"] for c in renamed["clusters"]}[1] == "shipping asks"
    assert json.loads(run("cluster", "list", "--json").stdout) == renamed


def test_cluster_arguments_are_checked(shop):
    for args, message in [
        (("--k", "abc"), "k must be a positive integer or 'auto', got 'abc'"),
        (("--k", "0"), "k must be a positive integer or 'auto', got 0"),
        (("--method", "dbscan"), "unknown clustering method 'dbscan' (one of: spectral, kmeans, hdbscan)"),
        (("--k", "3", "--method", "hdbscan"), "hdbscan finds its own number of clusters: pass k='auto'"),
    ]:
        r = run("cluster", "--backend", "tfidf", *args, ok=False)
        assert (r.exit_code, r.stderr) == (1, f"Error: {message}\n"), args
    r = run("cluster", "list", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: no clusters yet; run `evaltray cluster`\n")


def test_dedup_thresholds_are_checked(shop):
    r = run("dedup", "--near", "2", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: near threshold must be in (0, 1], got 2.0\n")
    r = run("dedup", "--show", "-1", ok=False)
    assert (r.exit_code, r.stderr) == (
        1,
        "Error: Invalid value for '--show': -1 is not in the range x>=0. (try `evaltray dedup --help`)\n",
    )


def test_progress_stays_off_a_pipe_even_where_colour_is_forced(shop, tmp_path):
    # FORCE_COLOR makes rich take a pipe for a terminal: the bars ask the stream itself, so a pipe gets the
    # final report alone, no `\r` lines (dedup wrote `\rnormalize: 0/10\rnormalize: 10/10…` here before)
    forced = {"FORCE_COLOR": "1"}
    r = run("dedup", "--backend", "tfidf", "--no-paraphrase", env=forced)
    assert (r.stdout, r.stderr) == ("\x1b[1;36m10\x1b[0m traces, no duplicates\n", "")  # coloured, as forced
    r = run("cluster", "--k", "2", "--backend", "tfidf", "--json", env=forced)
    assert r.stderr == "" and json.loads(r.stdout)["params"]["k"] == "2"
    (tmp_path / "more.jsonl").write_text('{"id": "m1", "messages": [{"role": "user", "content": "hi"}]}\n')
    r = run("ingest", str(tmp_path / "more.jsonl"), "--json", env=forced)
    assert r.stderr == "" and json.loads(r.stdout)["ingested"] == 1
