"""``evaltray release …`` and ``evaltray export``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evaltray.core.records import ReleaseStatus
from evaltray.tray import release as rel
from evaltray.tray.export import EXPORTERS, export_release

from ._common import (
    AppContext,
    dry_run_option,
    emit,
    emit_table,
    err,
    json_option,
    out,
    pass_app,
    set_option,
    shown,
    table,
    version_argument,
)


@click.group()
def release() -> None:
    """Immutable, hashed releases of the tray with a stable 20% holdout."""


@release.command("create")
@version_argument()
@click.option("--holdout", type=float, help="Holdout share, stratified by slice (default from evaltray.toml: 0.2).")
@click.option("--notes", help="Release notes kept in the manifest.")
@click.option("--strict", is_flag=True, help="Refuse the release when a monitor finds anything (default: warn).")
@dry_run_option
@json_option
@pass_app
def release_create(
    app: AppContext,
    version: str,
    holdout: float | None,
    notes: str | None,
    strict: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Snapshot every set as VERSION (semantic version); never rewritten afterwards. The monitors (duplicates,
    contamination against registered corpora) run first and warn, or refuse with --strict."""
    result = rel.create_release(app.ws, version, app.user, holdout=holdout, notes=notes, dry_run=dry_run, strict=strict)
    m = result.manifest
    summary = {
        "version": version,
        "content_hash": result.content_hash,
        "dry_run": dry_run,
        "path": str(result.path) if result.path else None,
        "warnings": result.warnings,
        "sets": {
            s: {
                "n_cases": i.n_cases,
                "split": i.counts.split,
                "pr": len(i.subsets["pr"]),
                "source_mix": i.to_dict()["source_mix"],
            }
            for s, i in m.sets.items()
        },
        "changelog": {s: c["summary"] for s, c in m.changelog.items()},
    }

    def human() -> None:
        out().print(
            f"{'would create' if dry_run else 'created'} release [bold]{shown(version)}[/] "
            f"(hash {result.content_hash[:12]}, parent {shown(m.parent or 'none')})"
        )
        for s, info in m.sets.items():
            c = m.changelog[s]["summary"]
            out().print(
                f"  {shown(s)}: {info.n_cases} cases — dev {info.counts.split['dev']}, holdout "
                f"{info.counts.split['holdout']}, pr subset {len(info.subsets['pr'])}; "
                f"+{c['added']} new coverage, {c['relabeled']} relabeled, {c['superseded']} superseded, "
                f"{c['retired']} retired"
            )
            mix = info.source_mix
            rows = [[src, f"{mix.actual.get(src, 0):.0%}", f"{want:.0%}"] for src, want in mix.target.items()]
            rows += [[src, f"{share:.0%}", "-"] for src, share in mix.actual.items() if src not in mix.target]
            if info.n_cases:
                out().print(table(f"{s}: source mix", ["source", "actual", "target"], rows))
                out().print(
                    table(
                        f"{s}: source mix per slice",
                        ["slice", "sources"],
                        [[sl, ", ".join(f"{k} {v}" for k, v in srcs.items())] for sl, srcs in mix.by_slice.items()],
                    )
                )
        for w in result.warnings:
            err().print(f"[yellow]warning[/] {shown(w)}", highlight=False)

    emit(as_json, summary, human)


@release.command("verify")
@version_argument()
@click.option("--deep", is_flag=True, help="Also prove every released row's sign-off and promotion signatures again.")
@json_option
@pass_app
def release_verify(app: AppContext, version: str, deep: bool, as_json: bool) -> None:
    """Check that no byte of VERSION changed since release and its signed manifest holds; exit 1 if not."""
    problems = rel.verify_release(app.ws, version, deep=deep)
    emit(
        as_json,
        {"version": version, "ok": not problems, "problems": problems},
        lambda: out().print(shown("\n".join(problems) if problems else f"release {version}: intact")),
    )
    if problems:
        sys.exit(1)


@release.command("diff")
@version_argument("old")
@version_argument("new")
@json_option
@pass_app
def release_diff(app: AppContext, old: str, new: str, as_json: bool) -> None:
    """What changed between two releases, and why, per slice and per source."""
    diff = rel.diff_releases(app.ws, old, new)

    def human() -> None:
        for s, d in diff["sets"].items():
            out().print(f"[bold]{shown(s)}[/]: " + ", ".join(f"{v} {k}" for k, v in d["summary"].items()))
            for key in ("added", "retired", "relabeled", "edited"):
                if d[key]:
                    out().print(f"  {key}: {shown(', '.join(d[key][:20]))}" + (" …" if len(d[key]) > 20 else ""))
            for sup in d["superseded"]:
                out().print(f"  superseded: {shown(sup['old'])} → {shown(sup['new'])}")
            for key, label in (("by_slice", "slice"), ("by_source", "source")):
                counts = d[key]
                rows = [
                    [k, counts["added"].get(k, 0), counts["retired"].get(k, 0), counts["relabeled"].get(k, 0)]
                    for k in sorted(set().union(*counts.values()))
                ]
                if rows:
                    out().print(table(f"per {label}", [label, "added", "removed", "relabeled"], rows))

    emit(as_json, diff, human)


@release.command("list")
@json_option
@pass_app
def release_list(app: AppContext, as_json: bool) -> None:
    """Every release with its status and hash."""
    rows = rel.release_log(app.ws)
    emit_table(
        as_json,
        rows,
        ["version", "status", "hash", "created", "by"],
        [[r["version"], r["status"], r["content_hash"][:12], r["created_at"], r["created_by"]] for r in rows],
    )


def _status_command(status: ReleaseStatus, doc: str) -> click.Command:
    @json_option
    @version_argument()
    @pass_app
    def command(app: AppContext, version: str, as_json: bool) -> None:
        rel.set_status(app.ws, version, status, app.user)
        emit(
            as_json,
            {"version": version, "status": status.value},
            lambda: out().print(f"{shown(version)}: {status.value}"),
        )

    command.__doc__ = doc
    return click.command("archive" if status is ReleaseStatus.ARCHIVED else "activate")(command)


release.add_command(
    _status_command(ReleaseStatus.ARCHIVED, "Mark a release archived (it stays on disk and verifiable).")
)
release.add_command(_status_command(ReleaseStatus.ACTIVE, "Mark a release active again."))


@click.command()
@version_argument()
@click.option("--to", "fmt", required=True, type=click.Choice([name for name, _ in EXPORTERS.items()]))
@click.option(
    "--split",
    type=click.Choice(rel.SPLITS),
    default="dev",
    show_default=True,
    help="dev never contains a holdout case.",
)
@click.option("--subset", type=click.Choice(rel.SUBSETS), help="A named subset of the split (drawn from dev).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Output file (default: exports/<version>-<set>-<split>.<ext>, e.g. 1.1.0-main-dev.promptfoo.yaml).",
)
@set_option
@json_option
@pass_app
def export(
    app: AppContext,
    version: str,
    fmt: str,
    split: str,
    subset: str | None,
    output: str | None,
    set_name: str | None,
    as_json: bool,
) -> None:
    """Export a release's cases for promptfoo, Inspect AI, Hugging Face datasets or plain JSONL."""
    done = export_release(
        app.ws,
        version,
        to=fmt,
        split=split,
        subset=subset,
        set_name=set_name,
        out=Path(output) if output else None,
        actor=app.user,
    )
    emit(
        as_json,
        {
            "path": str(done.path),
            "cases": done.cases,
            "format": done.format,
            "split": done.split,
            "release": done.release,
            "release_hash": done.release_hash,
        },
        lambda: out().print(
            f"wrote {done.cases} {shown(done.split)} case(s) of {shown(done.set_name)}@{shown(version)} "
            f"to {shown(done.path)}"
        ),
    )
