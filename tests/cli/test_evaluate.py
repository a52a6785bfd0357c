"""``evaltray stats``: sizes from the command line, no workspace needed."""

from __future__ import annotations

import json

from .runner import run


def test_stats_size_prints_unpaired_and_paired_sizes():
    assert run("stats", "size", "--baseline", "0.8", "--mde", "0.05").stdout == (
        "to detect a 5-point change from 80% (alpha 0.05, power 0.8):\n"
        "  two independent runs:      1,092 cases\n"
        "  the same cases, paired:    155 cases (discordance 0.05)\n"
        "  1,092 cases: a confident model swap (unpaired comparisons need 500–1,000)\n"
    )
    data = json.loads(
        run(
            "stats", "size", "--baseline", "0.8", "--mde", "0.05", "--cluster-size", "5", "--icc", "0.25", "--json"
        ).stdout
    )
    assert (data["unpaired"], data["paired"], data["design_effect"]) == (2184, 310, 2.0)


def test_stats_size_refuses_impossible_rates_in_one_line():
    r = run("stats", "size", "--baseline", "0.8", "--mde", "2", ok=False)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "--mde" in r.stderr
    r = run("stats", "size", "--baseline", "0.03", "--mde", "0.5", "--discordance", "0.2", ok=False)
    assert (
        r.exit_code == 1
        and r.stderr
        == "Error: discordance must lie in [mde, 1] (a change of mde needs that many differing cases), got 0.2\n"
    )
