"""``evaltray cases …``, ``evaltray promote``, ``evaltray tray …``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import SOURCES
from evaltray.tray import gate, lifecycle
from evaltray.tray import review as rev
from evaltray.tray.tasks import awaiting_revalidation

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
    visible,
)


@click.group()
def cases() -> None:
    """Cases of the golden tray."""


def _read_input(text: str | None, file: str | None) -> lifecycle.CaseInput:
    if file:
        try:
            value = orjson.loads(Path(file).read_bytes())
        except orjson.JSONDecodeError as exc:
            raise EvaltrayError(f"{file}: not valid JSON ({exc})") from None
        try:
            return lifecycle.case_input(value)
        except EvaltrayError as exc:
            raise EvaltrayError(f"{file}: {exc}") from None
    if text:
        return lifecycle.case_input(text)
    raise EvaltrayError("give the case input with --input TEXT or --input-file FILE (JSON: messages, tools, context)")


@cases.command("add")
@click.option(
    "--source",
    type=click.Choice([s for s in SOURCES if s != "production"]),
    required=True,
    help="Where the case comes from (production cases come from traces via `candidates add`).",
)
@click.option("--input", "text", help="The user message.")
@click.option("--input-file", type=click.Path(exists=True, dir_okay=False), help="JSON with messages/tools/context.")
@click.option("--expected", help="The expected behaviour: a reference answer written by a person.")
@click.option("--behavior-code", help="The expected behaviour as a code from the labeling guide.")
@click.option("--assert", "assertions", multiple=True, help="An assertion the answer must satisfy (repeatable).")
@click.option("--feature")
@click.option("--scenario")
@click.option("--persona")
@click.option("--tag", "tags", multiple=True)
@click.option("--slice", "slice_")
@click.option("--difficulty", type=click.Choice(rev.DIFFICULTIES))
@click.option("--case-type", type=click.Choice(rev.CASE_TYPES))
@click.option("--risk", type=click.Choice(["low", "medium", "high"]))
@click.option("--notes")
@set_option
@json_option
@pass_app
def cases_add(
    app: AppContext,
    source: str,
    text: str | None,
    input_file: str | None,
    expected: str | None,
    behavior_code: str | None,
    assertions: tuple[str, ...],
    feature: str | None,
    scenario: str | None,
    persona: str | None,
    tags: tuple[str, ...],
    slice_: str | None,
    difficulty: str | None,
    case_type: str | None,
    risk: str | None,
    notes: str | None,
    set_name: str | None,
    as_json: bool,
) -> None:
    """Add a case no trace produced (SME, red team, known bug, synthetic input); it still passes the gate."""
    added = lifecycle.add_case(
        app.ws,
        app.user,
        source,
        _read_input(text, input_file),
        set_name=set_name,
        reference=expected,
        behavior_code=behavior_code,
        assertions=assertions,
        labels={"feature": feature, "scenario": scenario, "persona": persona, "tags": list(tags)},
        slice=slice_,
        difficulty=difficulty,
        case_type=case_type,
        risk_level=risk,
        notes=notes,
    )
    state = " (labeled" + (", signed" if added.signed else "") + ")" if added.labeled else ""
    next_step = (
        f"the gate blocks it until it has: {', '.join(added.missing)}"
        if added.missing
        else "`evaltray promote` moves it into the tray"
    )
    emit(
        as_json,
        {
            "candidate_id": added.candidate_id,
            "labeled": added.labeled,
            "signed": added.signed,
            "missing": list(added.missing),
        },
        lambda: out().print(f"added candidate {shown(added.candidate_id)}{state}; {next_step}"),
    )


@cases.command("retire")
@click.argument("case_id")
@click.option("--reason", required=True, help='Why, e.g. "feature removed".')
@dry_run_option
@json_option
@pass_app
def cases_retire(app: AppContext, case_id: str, reason: str, dry_run: bool, as_json: bool) -> None:
    """Retire a case: it leaves the next release and its id is never reused."""
    gate.retire(app.ws, case_id, reason, app.user, dry_run=dry_run)
    emit(
        as_json,
        {"case_id": case_id, "retired": not dry_run, "reason": reason},
        lambda: out().print(f"{'would retire' if dry_run else 'retired'} {shown(case_id)}: {shown(reason)}"),
    )


@cases.command("relabel")
@click.argument("case_id")
@click.option("--expected")
@click.option("--behavior-code")
@click.option("--assert", "assertions", multiple=True)
@click.option("--critique")
@json_option
@pass_app
def cases_relabel(
    app: AppContext,
    case_id: str,
    expected: str | None,
    behavior_code: str | None,
    assertions: tuple[str, ...],
    critique: str | None,
    as_json: bool,
) -> None:
    """Write a new label for a case; `promote` applies it, keeping the id, recorded as a relabel."""
    r = lifecycle.relabel_case(
        app.ws,
        case_id,
        app.user,
        reference=expected,
        behavior_code=behavior_code,
        assertions=assertions,
        critique=critique,
    )
    emit(
        as_json,
        {"case_id": case_id, "review_id": r.id, "signed": bool(r.signed_by)},
        lambda: out().print(f"new label for {shown(case_id)} recorded; `evaltray promote` applies it"),
    )


@cases.command("supersede")
@click.argument("case_id")
@click.option("--input", "text", help="The new user message.")
@click.option("--input-file", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_app
def cases_supersede(app: AppContext, case_id: str, text: str | None, input_file: str | None, as_json: bool) -> None:
    """Change a case's input: a new candidate that, once labeled and promoted, gets a new id and retires the old one."""
    cid = lifecycle.supersede_case(app.ws, case_id, app.user, _read_input(text, input_file))
    emit(
        as_json,
        {"candidate_id": cid, "supersedes": case_id},
        lambda: out().print(
            f"candidate {shown(cid)} supersedes {shown(case_id)}; label it (`evaltray review {shown(cid)}`), then promote"
        ),
    )


@cases.command("list")
@click.option("--all", "all_", is_flag=True, help="Include retired ids.")
@set_option
@json_option
@pass_app
def cases_list(app: AppContext, all_: bool, set_name: str | None, as_json: bool) -> None:
    """List case ids with their status (retired ids stay listed forever with --all)."""
    rows = lifecycle.list_cases(app.ws, set_name, include_retired=all_)
    emit_table(
        as_json,
        rows,
        ["id", "status", "candidate", "successor", "retired because"],
        [[r["id"], r["status"], r["candidate_id"], r["successor"], r["retired_reason"]] for r in rows],
    )


@cases.command("show")
@click.argument("case_id")
@set_option
@json_option
@pass_app
def cases_show(app: AppContext, case_id: str, set_name: str | None, as_json: bool) -> None:
    """Show one case of the tray as JSON."""
    case = lifecycle.get_case(app.ws, case_id, set_name)
    # a case is JSON either way: --json gives it as the other commands give theirs
    emit(as_json, case, lambda: click.echo(visible(orjson.dumps(case, option=orjson.OPT_INDENT_2).decode())))


@click.command()
@click.argument("candidate_ids", nargs=-1)
@set_option
@click.option("--strict", is_flag=True, help="Block rows the monitors warn of (contamination), not only warn.")
@dry_run_option
@json_option
@pass_app
def promote(
    app: AppContext, candidate_ids: tuple[str, ...], set_name: str | None, strict: bool, dry_run: bool, as_json: bool
) -> None:
    """The validation gate: move signed, complete candidates into the golden tray. A duplicate of a tray row is
    blocked; contamination against registered corpora warns (blocks with --strict)."""
    if app.remote is not None:  # a team server promotes, signing with its key; the token says who asked
        if set_name or strict:
            raise click.UsageError("--set and --strict act on a local workspace; the server promotes its default set")
        form = {"ids": ",".join(candidate_ids), "dry_run": "1" if dry_run else ""}
        report = gate.PromoteReport.from_data(app.remote.call("POST", "/tray/promote", data=form))
    else:
        report = gate.promote(app.ws, app.user, set_name, list(candidate_ids) or None, dry_run=dry_run, strict=strict)
    data = {**report.as_data(), "dry_run": dry_run}

    def human() -> None:
        verb = "would promote" if dry_run else "promoted"
        kinds = {k: sum(p.kind == k for p in report.promoted) for k in ("new", "relabel", "supersede")}
        out().print(
            f"{verb} {len(report.promoted)} ({kinds['new']} new, {kinds['relabel']} relabeled, "
            f"{kinds['supersede']} superseding); {len(report.blocked)} blocked; "
            f"{report.awaiting_review} awaiting review"
        )
        for cid, problems in report.blocked:
            err().print(f"[yellow]blocked[/] {shown(cid)}: " + shown("; ".join(problems)), highlight=False)
        for cid, warning in report.warnings:
            err().print(f"[yellow]warning[/] {shown(cid)}: {shown(warning)}", highlight=False)

    emit(as_json, data, human)


@click.group()
def tray() -> None:
    """The golden tray as a whole."""


@tray.command("validate")
@set_option
@json_option
@pass_app
def tray_validate(app: AppContext, set_name: str | None, as_json: bool) -> None:
    """Check the tray file row by row; exit 1 if anything is wrong."""
    ws = app.ws
    report = {name: [str(p) for p in problems] for name, problems in lifecycle.validate_sets(ws, set_name).items()}
    bad = sum(len(v) for v in report.values())

    def human() -> None:
        for name, problems in report.items():
            path = ws.cases_path(name).relative_to(ws.root)
            if problems:
                for p in problems:
                    out().print(f"{shown(path)}: {shown(p)}", highlight=False)
            else:
                out().print(f"{shown(path)}: ok")

    emit(as_json, {"ok": bad == 0, "problems": report}, human)
    if bad:
        sys.exit(1)


@tray.command("repair")
@json_option
@pass_app
def tray_repair(app: AppContext, as_json: bool) -> None:
    """Finish or roll back a release, promote or retire that a crash left half-written (any tray command
    also does this first)."""
    done = lifecycle.repair_tray(app.ws, app.user)
    emit(
        as_json,
        {"recovered": done.what if done else None, "outcome": done.outcome if done else None},
        lambda: out().print(f"{shown(done.what)}: {done.outcome}" if done else "nothing to repair"),
    )


@tray.command("stats")
@set_option
@json_option
@pass_app
def tray_stats(app: AppContext, set_name: str | None, as_json: bool) -> None:
    """Counts of the tray by slice, source, difficulty and case type; rows under re-validation apart."""
    data = lifecycle.tray_stats(app.ws, set_name)
    data["under_revalidation"] = awaiting_revalidation(app.ws, set_name)

    def human() -> None:
        again = data["under_revalidation"]
        apart = f" ({len(again)} under re-validation: candidates until re-signed)" if again else ""
        out().print(f"{data['total']} cases{apart}")
        for key in lifecycle.STAT_AXES:
            out().print(table(f"by {key}", [key, "cases"], [[k, v] for k, v in sorted(data[key].items())]))

    emit(as_json, data, human)
