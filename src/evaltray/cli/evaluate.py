"""``evaltray stats``: the statistics behind evaluation, as commands that need no workspace."""

from __future__ import annotations

import dataclasses

import click

from evaltray.evaluate import stats as st

from ._common import emit, json_option, number, out

RATE = click.FloatRange(0, 1, min_open=True, max_open=True)


@click.group()
def stats() -> None:
    """How many cases a question needs, and how sure a pass rate is."""


@stats.command("size")
@click.option("--baseline", type=RATE, required=True, help="The pass rate today, e.g. 0.8.")
@click.option("--mde", type=RATE, required=True, help="The smallest change to detect, e.g. 0.05 for 5 points.")
@click.option("--alpha", type=RATE, default=0.05, show_default=True, help="Two-sided significance level.")
@click.option("--power", type=RATE, default=0.8, show_default=True)
@click.option(
    "--discordance",
    type=RATE,
    help="Share of cases whose verdicts differ between two runs (paired size); default: the least possible.",
)
@click.option(
    "--cluster-size",
    type=click.FloatRange(1),
    default=1,
    show_default=True,
    help="Cases per conversation, persona or template.",
)
@click.option(
    "--icc", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Intra-cluster correlation of verdicts."
)
@json_option
def stats_size(
    baseline: float,
    mde: float,
    alpha: float,
    power: float,
    discordance: float | None,
    cluster_size: float,
    icc: float,
    as_json: bool,
) -> None:
    """Cases per run to detect a change of --mde from --baseline: unpaired and paired, with a design effect."""
    deff = st.design_effect(cluster_size, icc)
    size = st.sample_size(baseline, mde, alpha, power, discordance, deff)
    data = {**dataclasses.asdict(size), "advice_unpaired": st.size_advice(size.unpaired)}

    def human() -> None:
        points = number(size.mde * 100)
        out().print(f"to detect a {points}-point change from {number(baseline * 100)}% (alpha {alpha}, power {power}):")
        out().print(f"  two independent runs:      {number(size.unpaired)} cases")
        out().print(
            f"  the same cases, paired:    {number(size.paired)} cases (discordance {number(size.discordance)})"
        )
        if deff > 1:
            out().print(f"  (design effect {number(deff)} for clustered cases included)")
        out().print(f"  {number(size.unpaired)} cases: {st.size_advice(size.unpaired)}")

    emit(as_json, data, human)
