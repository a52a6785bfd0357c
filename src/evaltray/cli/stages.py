"""``evaltray dedup`` and ``evaltray cluster …``: curation stages over the trace store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import ProgressColumn, Task, TaskID
from rich.text import Text

from evaltray.curate import derived

from ._common import COUNT, AppContext, emit, json_option, number, out, pass_app, progress_bar, shown, table


class _RateColumn(ProgressColumn):
    """Items a second, as people read numbers (``1,250/s``)."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{number(round(task.speed))}/s")


def _watched(as_json: bool) -> bool:
    """Whether a person watches stderr: not with --json, and only when stderr is a terminal. Asked of the stream
    itself, not of rich, which takes FORCE_COLOR for a terminal and would redraw bars into a pipe."""
    try:
        return not as_json and sys.stderr.isatty()
    except ValueError:  # closed
        return False


@contextmanager
def stage_progress(as_json: bool) -> Iterator[derived.Progress]:
    """A ``progress(stage, done, total)`` callback that draws one bar per stage on stderr, with counts, rate and
    time (a total of 0: counts alone); it draws nothing with --json or when stderr is not a terminal."""
    if not _watched(as_json):
        yield lambda stage, done, total: None
        return
    with progress_bar(None, "{task.description}") as bar:
        bar.columns = (*bar.columns, _RateColumn())
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(shown(stage), total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        yield report


@click.command()
@click.option(
    "--near", type=float, default=0.8, show_default=True, help="Jaccard threshold for near-duplicates (MinHash + LSH)."
)
@click.option(
    "--paraphrase",
    type=float,
    default=0.675,
    show_default=True,
    help="Cosine threshold for paraphrases (embeddings + ANN, verified before merging).",
)
@click.option("--no-near", is_flag=True, help="Skip the near-duplicate level.")
@click.option("--no-paraphrase", is_flag=True, help="Skip the paraphrase level.")
@click.option(
    "--backend", default="wordllama", show_default=True, help="Embedding backend for paraphrases: wordllama, st, tfidf."
)
@click.option("--where", help="Only traces matching this SQL predicate.")
@click.option("--show", type=COUNT, default=10, show_default=True, help="Merged pairs to list.")
@json_option
@pass_app
def dedup(
    app: AppContext,
    near: float,
    paraphrase: float,
    no_near: bool,
    no_paraphrase: bool,
    backend: str,
    where: str | None,
    show: int,
    as_json: bool,
) -> None:
    """Mark exact, near and paraphrase duplicates; nothing is deleted, counts become weights."""
    with stage_progress(as_json) as progress:
        result = derived.dedup_traces(
            app.ws,
            near=None if no_near else near,
            paraphrase=None if no_paraphrase else paraphrase,
            backend=backend,
            where=where,
            progress=progress,
            actor=app.user,
        )
    by_level: dict[str, int] = {}
    for g in result.groups:
        by_level[g.level] = by_level.get(g.level, 0) + len(g.members) - 1
    data = {
        "traces": len(result.rep_of),
        "representatives": len(set(result.rep_of.values())),
        "merged_by_level": by_level,
        "groups": [
            {"representative": g.representative, "members": list(g.members), "level": g.level, "weight": g.weight}
            for g in result.groups
        ],
        "pairs": [{"a": p.a, "b": p.b, "level": p.level, "score": p.score, "reason": p.reason} for p in result.pairs],
        "rejected_paraphrases": len(result.rejected),
    }

    def human() -> None:
        out().print(
            f"{len(result.rep_of):,} traces → {data['representatives']:,} representatives; merged "
            + ", ".join(f"{n:,} {lvl}" for lvl, n in by_level.items())
            if by_level
            else f"{len(result.rep_of):,} traces, no duplicates"
        )
        if result.pairs:
            out().print(
                table(
                    "merged pairs (evidence)",
                    ["a", "b", "level", "score", "why"],
                    [[p.a, p.b, p.level, f"{p.score:.3f}", p.reason] for p in result.pairs[:show]],
                )
            )
        if result.rejected:
            out().print(f"{len(result.rejected)} paraphrase candidates refused by verification")

    emit(as_json, data, human)


@click.group(invoke_without_command=True)
@click.option(
    "--k",
    default="auto",
    show_default=True,
    help="Number of clusters, or auto (chosen by modularity of the k-NN graph).",
)
@click.option(
    "--max-k",
    type=click.IntRange(min=2),
    help="At most this many clusters under --k auto [default: as many as clusters of --min-size fit].",
)
@click.option(
    "--min-size",
    type=click.IntRange(min=1),
    help="Fold clusters with fewer traces into the nearest other one; bounds --k auto (5 if not given).",
)
@click.option(
    "--resolution",
    type=click.FloatRange(min=0, min_open=True),
    help="Under --k auto: higher gives more, narrower clusters, lower fewer, broader ones [default: 3].",
)
@click.option("--backend", default="wordllama", show_default=True, help="Embedding backend: wordllama, st, tfidf.")
@click.option("--model-path", help="Local model folder for --backend st.")
@click.option("--method", default="spectral", show_default=True, help="Clustering method.")
@click.option("--where", help="Only traces matching this SQL predicate.")
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
@click.pass_context
def cluster(
    ctx: click.Context,
    k: str,
    max_k: int | None,
    min_size: int | None,
    resolution: float | None,
    backend: str,
    model_path: str | None,
    method: str,
    where: str | None,
    seed: int,
    as_json: bool,
) -> None:
    """Cluster traces by intent and name the clusters; `cluster list/merge/split/rename` edit them.

    A run replaces the stored clusters whole: with --where, traces outside it lose their cluster (it says how many).
    """
    if ctx.invoked_subcommand is not None:
        return
    app: AppContext = ctx.obj
    with stage_progress(as_json) as progress:
        clustering = derived.cluster_traces(
            app.ws,
            k=k,
            backend=backend,
            method=method,
            model_path=model_path,
            where=where,
            seed=seed,
            progress=progress,
            actor=app.user,
            max_k=max_k,
            min_size=min_size,
            resolution=resolution,
        )
    _show(
        derived.cluster_info(app.ws), as_json, f"{clustering.n_clusters} clusters ({shown(method)}, {shown(backend)})"
    )


def _show(info: dict, as_json: bool, title: str) -> None:
    def human() -> None:
        out().print(title)
        out().print(
            table(
                None,
                ["id", "name", "size", "top terms", "example"],
                [
                    [
                        c["id"],
                        c["name"] + (" ✎" if c["named_by_user"] else ""),
                        c["size"],
                        ", ".join(c["top_terms"]),
                        (c["examples"][0]["text"][:70] if c["examples"] else ""),
                    ]
                    for c in info["clusters"]
                ],
            )
        )
        if info.get("unapplied"):
            out().print(f"{len(info['unapplied'])} saved edit(s) matched no cluster this time")
        dropped, where = info["params"].get("dropped"), info["params"].get("where")
        if dropped:
            outside = f"outside --where {where!r}" if where else "clustered before but not in this run"
            out().print(
                f"{dropped} trace(s) {outside} no longer have a cluster: a run replaces the stored clusters whole"
            )

    emit(as_json, info, human)


@cluster.command("list")
@json_option
@pass_app
def cluster_list(app: AppContext, as_json: bool) -> None:
    """The clusters of the last run with names, sizes, top terms and an example."""
    info = derived.cluster_info(app.ws)
    _show(info, as_json, f"{len(info['clusters'])} clusters")


@cluster.command("merge")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.option("--name", help="Name of the merged cluster.")
@json_option
@pass_app
def cluster_merge(app: AppContext, a: int, b: int, name: str | None, as_json: bool) -> None:
    """Merge cluster B into A; kept across re-clustering."""
    _show(derived.edit_clusters(app.ws, "merge", a, b, name=name, actor=app.user), as_json, f"merged {b} into {a}")


@cluster.command("split")
@click.argument("a", type=int)
@click.option("--k", type=int, default=2, show_default=True)
@json_option
@pass_app
def cluster_split(app: AppContext, a: int, k: int, as_json: bool) -> None:
    """Split a cluster in K; kept across re-clustering."""
    _show(derived.edit_clusters(app.ws, "split", a, k=k, actor=app.user), as_json, f"split {a} in {k}")


@cluster.command("rename")
@click.argument("a", type=int)
@click.argument("name")
@json_option
@pass_app
def cluster_rename(app: AppContext, a: int, name: str, as_json: bool) -> None:
    """Name a cluster; the name persists across re-clustering."""
    _show(
        derived.edit_clusters(app.ws, "rename", a, name=name, actor=app.user),
        as_json,
        f"renamed {a} to {shown(repr(name))}",
    )
