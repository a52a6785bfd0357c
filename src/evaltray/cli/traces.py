"""``evaltray ingest`` and ``evaltray traces …``."""

from __future__ import annotations

from pathlib import Path

import click

from evaltray.core.errors import EvaltrayError, IngestError
from evaltray.core.traces import LIST_COLUMNS, list_traces, show_trace, trace_stats

from ..ingest import FORMATS, ingest_files
from ._common import COUNT, AppContext, emit, emit_table, err, json_option, number, out, pass_app, shown, table
from .stages import stage_progress


def _parse_map(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        if not sep or not target or not source:
            raise EvaltrayError(f"--map {pair!r}: expected TARGET=SOURCE, e.g. --map input=question")
        mapping[target.strip()] = source.strip()
    return mapping


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    help="Source format, or auto to detect per file: " + ", ".join(sorted(FORMATS)),
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="TARGET=SOURCE",
    help="Field map for generic JSONL/CSV/Parquet, e.g. --map input=question --map output=answer.",
)
@click.option("--strict", is_flag=True, help="Fail on the first malformed record instead of reporting and skipping it.")
@click.option(
    "--payload-sample",
    type=float,
    default=None,
    help="Share of traces that keep their full payload (0-1]; metadata is kept for all, and rare rows "
    "(negative feedback, errors, tool failures, latency/cost outliers) always keep theirs.",
)
@click.option("--max-issues", type=COUNT, default=20, show_default=True, help="How many malformed records to list.")
@json_option
@pass_app
def ingest(
    app: AppContext,
    files: tuple[str, ...],
    fmt: str,
    maps: tuple[str, ...],
    strict: bool,
    payload_sample: float | None,
    max_issues: int,
    as_json: bool,
) -> None:
    """Read trace files into the workspace's trace store (idempotent by trace id)."""
    ws = app.ws
    with stage_progress(as_json) as stage:  # one bar per file, traces counted (the total is not known ahead)
        report = ingest_files(
            ws,
            [Path(f) for f in files],
            fmt=fmt,
            options=_parse_map(maps),
            strict=strict,
            payload_sample=payload_sample,
            progress=lambda path, n: stage(f"ingesting {Path(path).name}", n, 0),
            actor=app.user,
        )
    # the issue the closing error quotes is not listed first as well: a refused bomb is one line
    quoted = report.failed[0].issues[0] if report.failed else None
    issues = [i for i in report.issues if i is not quoted]
    for issue in issues[:max_issues]:
        err().print(f"[yellow]skipped[/] {shown(issue)}", markup=True, highlight=False)
    if len(issues) > max_issues:
        err().print(f"… and {len(issues) - max_issues} more malformed records")
    for trace_id in report.quarantined:
        err().print(
            f"[red]quarantined[/] trace {shown(trace_id)}: could not be scrubbed; stored without its text",
            markup=True,
            highlight=False,
        )
    if report.truncated:
        err().print(
            f"[yellow]truncated[/] {len(report.truncated)} trace(s): a field over \\[ingest] scrub_max_field_chars "
            f"was stored cut: {shown(', '.join(report.truncated[:5]))}",
            markup=True,
            highlight=False,
        )
    data = {
        "files": [
            {
                "path": f.path,
                "format": f.format,
                "ingested": f.ingested,
                "skipped_existing": f.skipped,
                "payload_kept": f.payload_kept,
                "issues": [str(i) for i in f.issues],
                "quarantined": f.quarantined,
                "scrubbed": f.scrubbed,
                "truncated": f.truncated,
            }
            for f in report.files
        ],
        "ingested": report.ingested,
        "skipped_existing": report.skipped,
        "issues": len(report.issues),
        "quarantined": report.quarantined,
        "failed": [f.path for f in report.failed],
    }
    emit_table(
        as_json,
        data,
        ["file", "format", "ingested", "already present", "payload kept", "malformed"],
        [[f.path, f.format, f.ingested, f.skipped, f.payload_kept, len(f.issues)] for f in report.files],
    )
    if report.failed:  # the report is out; the exit status says that a file gave nothing
        first = report.failed[0]
        more = f" (and {len(report.failed) - 1} more file(s))" if len(report.failed) > 1 else ""
        raise IngestError(f"nothing read from {first.issues[0]}{more}")


@click.command("pull")
@click.argument("platform", type=click.Choice(["langfuse", "langsmith", "phoenix"]))
@click.option("--since", default="7d", show_default=True, help="How far back the first pull goes: 30m, 24h, 7d, 2w.")
@json_option
@pass_app
def pull_command(app: AppContext, platform: str, since: str, as_json: bool) -> None:
    """Fetch new traces from Langfuse, LangSmith or Phoenix through its REST API (keys from the environment:
    LANGFUSE_PUBLIC_KEY/SECRET_KEY/HOST, LANGSMITH_API_KEY/ENDPOINT/PROJECT, PHOENIX_HOST/API_KEY/PROJECT);
    a cursor per platform makes the next pull fetch only what is new."""
    from evaltray.ingest.pull import pull

    ws = app.ws
    report = pull(ws, platform, since, actor=app.user)
    for issue in report.issues[:20]:
        err().print(f"[yellow]skipped[/] {shown(issue)}", markup=True, highlight=False)
    data = {
        "platform": platform,
        "from": report.start.isoformat(),
        "listed": report.listed,
        "fetched": report.fetched,
        "ingested": report.ingested,
        "skipped_existing": report.skipped,
        "issues": len(report.issues),
        "requests": report.requests,
        "retries": report.retries,
        "cursor": report.cursor.at.isoformat() if report.cursor.at else None,
    }
    emit(
        as_json,
        data,
        lambda: out().print(
            f"{platform}: {report.fetched} new trace(s) fetched since {report.start:%Y-%m-%d %H:%M} UTC, "
            f"{report.ingested} stored, {report.skipped} already present ({report.requests} requests, "
            f"{report.retries} retried)",
            highlight=False,
        ),
    )


@click.group()
def traces() -> None:
    """Look at the ingested traces."""


@traces.command("stats")
@click.option("--where", help="SQL predicate over trace columns, e.g. \"feature = 'refunds'\".")
@json_option
@pass_app
def traces_stats(app: AppContext, where: str | None, as_json: bool) -> None:
    """Counts by source, model, day and feature; latency, token and cost percentiles."""
    stats = trace_stats(app.ws.trace_store(), where)

    def human() -> None:
        out().print(
            f"[bold]{stats['total']:,}[/] traces, {stats['payload_kept']:,} with full payload, "
            f"{stats['errors']:,} errors, {stats['negative_feedback']:,} with negative feedback"
        )
        for key in ("source_format", "model", "day", "feature"):
            rows = [[k, v] for k, v in stats["by"][key].items()]
            out().print(table(f"by {key}", [key, "traces"], rows))
        out().print(
            table(
                "percentiles",
                ["metric", "p50", "p90", "p99", "max"],
                [
                    [m, *(number(v.get(p)) for p in ("p50", "p90", "p99", "max"))]
                    for m, v in stats["percentiles"].items()
                ],
            )
        )

    emit(as_json, stats, human)


@traces.command("list")
@click.option("--where", help="SQL predicate over trace columns.")
@click.option("--limit", type=COUNT, default=20, show_default=True)
@json_option
@pass_app
def traces_list(app: AppContext, where: str | None, limit: int, as_json: bool) -> None:
    """List traces matching a predicate."""
    listing = list_traces(app.ws.trace_store(), where, limit, scrubs=app.ws.settings.scrub)
    _warn_unscrubbed(listing.unscrubbed)
    rows = listing.rows
    emit_table(
        as_json,
        rows,
        list(LIST_COLUMNS),
        [[r[c] if c != "input_text" else (r[c] or "")[:60] for c in LIST_COLUMNS] for r in rows],
    )


def _warn_unscrubbed(trace_ids: list[str]) -> None:
    """Say which shown traces hold text as recorded (stderr; ids only)."""
    if trace_ids:
        ids = ", ".join(trace_ids[:5]) + (f" and {len(trace_ids) - 5} more" if len(trace_ids) > 5 else "")
        err().print(
            f"[yellow]not scrubbed yet[/] (text as recorded, may hold PII): {shown(ids)}; run `evaltray scrub`",
            markup=True,
            highlight=False,
        )


@traces.command("show")
@click.argument("trace_id")
@json_option
@pass_app
def traces_show(app: AppContext, trace_id: str, as_json: bool) -> None:
    """Show one trace with its conversation."""
    import orjson

    listing = show_trace(app.ws.trace_store(), trace_id, scrubs=app.ws.settings.scrub)
    _warn_unscrubbed(listing.unscrubbed)
    row = listing.rows[0]

    def human() -> None:
        for k, v in row.items():
            if k not in ("messages", "tools", "spans") and v not in (None, [], ""):
                out().print(f"[bold]{k}[/]: {shown(v)}", highlight=False)
        for m in row.get("messages") or []:
            out().print(f"[bold cyan]{shown(m['role'])}[/]: {shown(m.get('content'))}", highlight=False, markup=True)
            for c in m.get("tool_calls") or []:
                out().print(
                    f"    → {shown(c['name'])}({shown(orjson.dumps(c.get('arguments')).decode())})", highlight=False
                )

    emit(as_json, row, human)
