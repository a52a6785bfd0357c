"""``evaltray candidates``, ``review``, ``labels import``, ``reject``, ``signoff``."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

import click

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import REJECT_REASONS
from evaltray.tray import candidates as pool
from evaltray.tray import lifecycle, oversight
from evaltray.tray import review as rev
from evaltray.tray import tasks as tq
from evaltray.tray.gate import derive_slice

from ._common import (
    COUNT,
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
    visible,
)
from .tasks import show_task


@click.group()
def candidates() -> None:
    """The candidate pool: traces (and hand-written inputs) waiting for a label."""


@candidates.command("add")
@click.option("--where", help="SQL predicate over trace columns, e.g. \"feature = 'refunds'\".")
@click.option("--limit", type=COUNT, help="Add at most this many.")
@click.option("--trace", "trace_ids", multiple=True, help="Add this trace id (repeatable).")
@click.option(
    "--from-feedback",
    is_flag=True,
    help="Mark them as mined from user feedback (source user_feedback); they still need a written label.",
)
@click.option(
    "--cut",
    type=click.Choice(pool.CUTS),
    default="last-user",
    show_default=True,
    help="Where the case input ends: after the last user message (a chat turn) or the first (an agent task).",
)
@set_option
@dry_run_option
@json_option
@pass_app
def candidates_add(
    app: AppContext,
    where: str | None,
    limit: int | None,
    trace_ids: tuple[str, ...],
    from_feedback: bool,
    cut: str,
    set_name: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Copy traces into the candidate pool (traces already in the pool are skipped)."""
    added = pool.add_from_traces(
        app.ws,
        app.user,
        where=where,
        limit=limit,
        set_name=set_name,
        source="user_feedback" if from_feedback else "production",
        trace_ids=trace_ids or None,
        cut=cut,
        dry_run=dry_run,
    )
    verb = "would add" if dry_run else "added"
    emit(
        as_json,
        {"added": added, "dry_run": dry_run},
        lambda: out().print(
            f"{verb} {len(added)} candidate(s)" + (f": {shown(', '.join(added[:10]))}" if added else "")
        ),
    )


@candidates.command("list")
@click.option("--status", type=click.Choice([pool.PENDING, pool.REJECTED, pool.PROMOTED]))
@click.option("--limit", type=COUNT, default=50, show_default=True)
@set_option
@json_option
@pass_app
def candidates_list(app: AppContext, status: str | None, limit: int, set_name: str | None, as_json: bool) -> None:
    """List candidates (the reject bin with --status rejected)."""
    rows = pool.list_candidates(app.ws, set_name, status, limit)
    data = [
        {
            "id": c.id,
            "set": c.set_name,
            "source": c.source,
            "trace_id": c.trace_id,
            "status": c.status,
            "reject_reason": c.reject_reason,
            "case_id": c.case_id,
            "feature": c.labels.get("feature"),
        }
        for c in rows
    ]
    emit_table(
        as_json,
        data,
        ["id", "set", "source", "trace", "status", "reason", "case"],
        [[d["id"], d["set"], d["source"], d["trace_id"], d["status"], d["reject_reason"], d["case_id"]] for d in data],
    )


@candidates.command("bin")
@set_option
@json_option
@pass_app
def candidates_bin(app: AppContext, set_name: str | None, as_json: bool) -> None:
    """The reject bin: how many candidates were rejected, by reason."""
    counts = pool.reject_bin(app.ws, set_name)
    emit_table(as_json, counts, ["reason", "candidates"], list(map(list, counts.items())), title="reject bin")


@candidates.command("label")
@click.argument("candidate_id")
@click.option("--feature", help="The product feature (the default slice key).")
@click.option("--scenario", help="The plan's scenario (no-results, irate-user, …).")
@click.option("--persona", help="The plan's persona (first-time visitor, power user, …).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable; replaces the candidate's tags).")
@click.option("--slice", "slice_", help="The slice, instead of the one `slice_by` derives from the labels.")
@click.option("--difficulty", type=click.Choice(rev.DIFFICULTIES))
@click.option("--case-type", type=click.Choice(rev.CASE_TYPES))
@json_option
@pass_app
def candidates_label(
    app: AppContext,
    candidate_id: str,
    feature: str | None,
    scenario: str | None,
    persona: str | None,
    tags: tuple[str, ...],
    slice_: str | None,
    difficulty: str | None,
    case_type: str | None,
    as_json: bool,
) -> None:
    """Set a pending candidate's labels (feature, scenario, persona, tags), slice, difficulty or case type."""
    ws = app.ws  # outside a workspace, that is the error to give
    if not (feature or scenario or persona or tags or slice_ or difficulty or case_type):
        raise click.UsageError("nothing to set: give --feature, --scenario, --persona, --tag, --slice, …")
    cand = pool.set_labels(
        ws,
        candidate_id,
        app.user,
        feature=feature,
        scenario=scenario,
        persona=persona,
        tags=list(tags) or None,
        slice=slice_,
        difficulty=difficulty,
        case_type=case_type,
    )
    data = {"id": cand.id, "labels": cand.labels, "slice": cand.slice, "difficulty": cand.difficulty}
    data["case_type"] = cand.case_type
    labels = " · ".join(f"{k} {shown(v)}" for k, v in cand.labels.items() if v)
    emit(as_json, data, lambda: out().print(f"{shown(cand.id)}: {labels or 'no labels'}"))


def _show_input(cand: pool.Candidate) -> None:
    out().rule(f"candidate {shown(cand.id)}  ·  source {shown(cand.source)}  ·  trace {shown(cand.trace_id or '-')}")
    tools = cand.input.get("tools") or []
    if tools:
        names = [t.get("function", t).get("name", "?") for t in tools if isinstance(t, dict)]
        out().print(f"[dim]tools available: {shown(', '.join(map(str, names)))}[/]")
    for m in cand.input["messages"]:
        text = m.get("content") or ""
        if m.get("role") == "system" and len(text) > 400:
            text = text[:400] + " …"
        out().print(f"[bold cyan]{shown(m.get('role'))}[/]: ", end="")
        out().print(shown(text), highlight=False)
        for c in m.get("tool_calls") or []:
            out().print(f"    → {shown(c.get('name'))}({shown(c.get('arguments'))})", highlight=False)


def _prompt_expected(step: rev.ReviewStep, codes: list[str]) -> None:
    while True:
        reference = click.prompt("Expected behaviour — reference answer (blank: none)", default="", show_default=False)
        hint = f" [{visible(', '.join(codes))}]" if codes else ""
        code = click.prompt(f"Behavior code{hint} (blank: none)", default="", show_default=False)
        asserts = click.prompt("Assertions, ';'-separated (blank: none)", default="", show_default=False)
        try:
            step.write_expected(reference, code, rev.split_list(asserts))
            return
        except EvaltrayError as exc:
            err().print(f"[red]{shown(exc)}[/]")


def _review_interactively(
    session: rev.ReviewSession, slice_: str | None, difficulty: str | None, case_type: str | None
) -> list[rev.Review]:
    """Prompt for each candidate in the order the session allows: blind, the output comes after the label."""
    settings = session.ws.settings
    done = []
    for step in session:
        cand = step.candidate
        _show_input(cand)
        if not session.blind:
            out().print(
                f"[bold magenta]recorded output[/]: {shown(step.recorded_output() or '(none)')}", highlight=False
            )
        _prompt_expected(step, settings.behavior_codes)
        if session.blind:
            out().print("[bold magenta]recorded output[/]: ", end="")
            out().print(shown(step.recorded_output() or "(none)"), highlight=False)
        verdict = click.prompt(
            "Verdict on the recorded output", type=click.Choice(["pass", "fail", "skip"]), default="skip"
        )
        critique = click.prompt("Critique", default="", show_default=False)
        tags = rev.split_list(click.prompt("Failure tags, ';'-separated", default="", show_default=False))
        # no default when nothing gives one: a blank answer is asked again, as the gate needs a slice
        sl = click.prompt("Slice", default=slice_ or cand.slice or derive_slice(cand.labels, settings.slice_by))
        diff = click.prompt(
            "Difficulty", type=click.Choice(rev.DIFFICULTIES), default=difficulty or cand.difficulty or "medium"
        )
        ctype = click.prompt(
            "Case type", type=click.Choice(rev.CASE_TYPES), default=case_type or cand.case_type or "typical"
        )
        done.append(
            step.record(
                verdict=None if verdict == "skip" else verdict,
                critique=critique,
                failure_tags=tags,
                slice=sl,
                difficulty=diff,
                case_type=ctype,
            )
        )
    return done


#: The fields a scripted review asks for when neither its options nor the candidate give them: the option that
#: gives each, and the answers it takes (None: any text).
_ASKED: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "slice": ("--slice", None),
    "difficulty": ("--difficulty", rev.DIFFICULTIES),
    "case type": ("--case-type", rev.CASE_TYPES),
}


def _ask_what_the_gate_needs(
    session: rev.ReviewSession, slice_: str | None, difficulty: str | None, case_type: str | None
) -> dict[str, dict[str, str]]:
    """Before any review is recorded: ask once (on stderr) for each field the gate needs that some candidate
    lacks, and say which candidates lack it; a script that gives no answer ends with an error naming the options.
    Returns the answers, by candidate id and field, for the candidates that lacked them."""
    lacking: dict[str, list[str]] = {}
    for cand in session.candidates:
        if cand.status == pool.REJECTED:
            continue  # recording its review fails, with the reason
        missing = lifecycle.missing_for_gate(session.ws, cand, slice=slice_, difficulty=difficulty, case_type=case_type)
        for name in missing:
            if name in _ASKED:
                lacking.setdefault(name, []).append(cand.id)
    asked: dict[str, dict[str, str]] = {}
    for name, ids in lacking.items():
        option, choices = _ASKED[name]
        err().print(f"{shown(', '.join(ids))}: no {name}; the gate needs one (or pass {option})", highlight=False)
        try:
            answer = click.prompt(name.capitalize(), type=click.Choice(choices) if choices else str, err=True)
        except click.Abort:
            click.echo(err=True)  # the error on a line of its own, after the unanswered prompt
            hint = f" ({', '.join(choices)})" if choices else ""
            raise EvaltrayError(
                f"{', '.join(ids)}: no {name}, which the gate needs: pass {option}{hint}; nothing was recorded"
            ) from None
        for cid in ids:
            asked.setdefault(cid, {})[name] = answer
    return asked


def _close_interactively(session_ws: Any, user: str, task: tq.Task, started: float) -> tq.Task | None:
    """Ask what became of a task (None: left for later) and close it, with the time it took."""
    choices = ["done", "reject", "escalate", "bug", "skip"]
    outcome = click.prompt("Outcome", type=click.Choice(choices), default="done")
    if outcome == "skip":
        return None
    verdict = None
    if task.kind == "judge_check" and outcome == "done":
        verdict = click.prompt("Your verdict on the output", type=click.Choice(["pass", "fail"]))
    reason = None
    if outcome in ("reject", "escalate"):
        hint = f" ({', '.join(REJECT_REASONS)})" if task.kind == "label" and outcome == "reject" else ""
        reason = click.prompt(f"Reason{hint}", default="" if outcome == "escalate" else None) or None
    label = _new_label() if task.kind == "revalidate" and outcome == "done" else None
    critique = click.prompt("Critique", default="", show_default=False)
    tags = rev.split_list(click.prompt("Failure tags, ';'-separated", default="", show_default=False))
    return tq.resolve_task(
        session_ws,
        task.id,
        user,
        outcome,
        reason=reason,
        verdict=verdict,
        critique=critique,
        tags=tags,
        seconds=time.monotonic() - started,
        label=label,
    )


def _new_label() -> dict[str, Any] | None:
    """A new expected behaviour for a re-validated row; None (all blank) re-signs the label it has."""
    reference = click.prompt("New reference answer (blank: keep the label as it is)", default="", show_default=False)
    code = click.prompt("New behavior code (blank: none)", default="", show_default=False)
    asserts = rev.split_list(
        click.prompt("New assertions, ';'-separated (blank: none)", default="", show_default=False)
    )
    if not (reference or code or asserts):
        return None
    return {"reference": reference or None, "behavior_code": code or None, "assertions": asserts}


def _show_case(case: dict[str, Any]) -> None:
    """A golden row under re-validation: its input and the label it carries."""
    for m in case["input"]["messages"]:
        out().print(f"[bold cyan]{shown(m.get('role'))}[/]: ", end="")
        out().print(shown(m.get("content") or ""), highlight=False)
    out().print(f"[bold magenta]its label[/]: {shown(case['expected'])}", highlight=False)


def _label_task(app: AppContext, task: tq.Task, show_output_first: bool, no_sign: bool) -> tq.Task | None:
    """A label task: review its candidate as `evaltray review` does, or say what else became of it."""
    if click.prompt("Label it now", type=click.Choice(["yes", "no"]), default="yes") == "no":
        return _close_interactively(app.ws, app.user, task, time.monotonic())
    started = time.monotonic()
    session = rev.ReviewSession(app.ws, app.user, [task.ref], show_output_first=show_output_first, sign=not no_sign)
    _review_interactively(session, None, None, None)
    return tq.resolve_task(app.ws, task.id, app.user, "done", seconds=time.monotonic() - started)


def _review_tasks(
    app: AppContext, kinds: tuple[str, ...], limit: int | None, show_output_first: bool, no_sign: bool
) -> list[dict[str, Any]]:
    """Take tasks of every kind from the queue, one after another, until it is empty, ``limit`` or a skip."""
    done: list[dict[str, Any]] = []
    while limit is None or len(done) < limit:
        task = oversight.next_for(app.ws, app.user, kinds=kinds or None)
        if task is None:
            break
        show_task(app.ws, task)
        if task.kind == "revalidate":
            _show_case(tq.case_of(app.ws, task.ref))
        if task.kind in ("label", "overlap"):  # a second label is labeled as the first, blind to it
            closed = _label_task(app, task, show_output_first, no_sign)
        else:
            closed = _close_interactively(app.ws, app.user, task, time.monotonic())
        if closed is None:
            break  # skipped: it stays assigned to this user, first in their queue next time
        done.append({"task_id": closed.id, "kind": closed.kind, "status": closed.status, "outcome": closed.outcome})
    return done


@click.command()
@click.argument("candidate_ids", nargs=-1)
@click.option("--limit", type=COUNT, help="Review at most this many from the queue.")
@click.option("--tasks", "from_tasks", is_flag=True, help="Take review tasks of every kind from the task queue.")
@click.option(
    "--kind", "kinds", type=click.Choice(tq.TASK_KINDS.names()), multiple=True, help="With --tasks: only these."
)
@click.option(
    "--show-output-first",
    is_flag=True,
    help="Show the recorded output before asking for the expected behaviour (recorded as not blind).",
)
@click.option("--expected", help="Non-interactive: the reference answer.")
@click.option("--behavior-code", help="Non-interactive: the behavior code.")
@click.option("--assert", "assertions", multiple=True, help="Non-interactive: an assertion (repeatable).")
@click.option("--verdict", type=click.Choice(["pass", "fail"]), help="Non-interactive: verdict on the recorded output.")
@click.option("--critique", help="Non-interactive: the critique.")
@click.option("--tag", "tags", multiple=True, help="Non-interactive: a failure tag (repeatable).")
@click.option("--slice", "slice_", help="Slice of the case (default: from its labels).")
@click.option("--difficulty", type=click.Choice(rev.DIFFICULTIES))
@click.option("--case-type", type=click.Choice(rev.CASE_TYPES))
@click.option("--no-sign", is_flag=True, help="Do not sign off even if your role may.")
@set_option
@json_option
@pass_app
def review(
    app: AppContext,
    candidate_ids: tuple[str, ...],
    limit: int | None,
    from_tasks: bool,
    kinds: tuple[str, ...],
    show_output_first: bool,
    expected: str | None,
    behavior_code: str | None,
    assertions: tuple[str, ...],
    verdict: str | None,
    critique: str | None,
    tags: tuple[str, ...],
    slice_: str | None,
    difficulty: str | None,
    case_type: str | None,
    no_sign: bool,
    set_name: str | None,
    as_json: bool,
) -> None:
    """Review candidates: write the expected behaviour first, then judge the recorded output.

    Interactive by default (the queue, oldest first); with --expected/--behavior-code/--assert it
    labels the given candidates without prompting; with --tasks it takes tasks of every kind from the review
    queue (label, revalidate, judge_check, failing_case) and asks for each one's outcome.
    """
    if app.remote is not None:
        local_only = from_tasks or limit or set_name or show_output_first or difficulty or case_type
        if local_only or not candidate_ids or not (expected or behavior_code or assertions):
            raise click.UsageError(
                "with --server, review labels the candidates named, non-interactively (--expected, --behavior-code "
                "or --assert, and --verdict, --critique, --tag, --slice); the other options act on a local workspace"
            )
        form = {"reference": expected or "", "behavior_code": behavior_code or "", "assertions": "\n".join(assertions)}
        more = {"verdict": verdict or "", "critique": critique or "", "failure_tags": ",".join(tags)}
        done = [_remote_review(app, cid, form, {**more, "slice": slice_ or ""}) for cid in candidate_ids]
        emit(as_json, done, lambda: out().print(f"recorded {len(done)} review(s) on the server; unsigned"))
        return
    if from_tasks:
        taken = _review_tasks(app, kinds, limit, show_output_first, no_sign)
        emit(as_json, taken, lambda: out().print(f"closed {len(taken)} task(s)"))
        return
    session = rev.ReviewSession(
        app.ws,
        app.user,
        candidate_ids,
        set_name=set_name,
        limit=limit,
        show_output_first=show_output_first,
        sign=not no_sign,
    )
    if expected is not None or behavior_code is not None or assertions:
        rev.normalize_expected(app.ws, app.user, expected, behavior_code, list(assertions))  # refused before asking
        asked = _ask_what_the_gate_needs(session, slice_, difficulty, case_type)
        reviews = []
        for step in session:
            step.write_expected(expected, behavior_code, list(assertions))
            gaps = asked.get(step.candidate.id, {})
            reviews.append(
                step.record(
                    verdict=verdict,
                    critique=critique,
                    failure_tags=list(tags),
                    slice=slice_ or gaps.get("slice"),
                    difficulty=difficulty or gaps.get("difficulty"),
                    case_type=case_type or gaps.get("case type"),
                )
            )
    else:
        reviews = _review_interactively(session, slice_, difficulty, case_type)
    done = [{"candidate_id": r.candidate_id, "review_id": r.id, "signed": bool(r.signed_by)} for r in reviews]
    emit(
        as_json,
        done,
        lambda: out().print(
            f"recorded {len(done)} review(s)"
            + ("" if session.signs else "; an adjudicator signs them off with `evaltray signoff`")
        ),
    )


def _remote_review(app: AppContext, cid: str, expected: dict[str, str], review: dict[str, str]) -> dict[str, Any]:
    """Label ``cid`` on the team server in the web's two steps: the expected behaviour first (the blind rule the
    server keeps), then the verdict on the output; the server signs nothing (the token's user signs off later)."""
    assert app.remote is not None
    path = f"/queue/{urllib.parse.quote(cid, safe='')}"
    app.remote.call("POST", path + "/expected", data=expected)
    made = app.remote.call("POST", path + "/review", data={**expected, **review})
    return {"candidate_id": made["candidate_id"], "review_id": made["review_id"], "signed": False}


@click.group()
def labels() -> None:
    """Labels made elsewhere."""


@labels.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--max-issues", type=COUNT, default=20, show_default=True, help="How many skipped rows to list.")
@dry_run_option
@json_option
@pass_app
def labels_import(app: AppContext, path: str, max_issues: int, dry_run: bool, as_json: bool) -> None:
    """Import labels from CSV or JSONL (candidate_id, expected / behavior_code / assertions, verdict, …)."""
    report = rev.import_labels(app.ws, Path(path), app.user, dry_run=dry_run)
    for p in report.problems[:max_issues]:
        err().print(f"[yellow]skipped[/] {shown(p)}", highlight=False)
    if len(report.problems) > max_issues:
        err().print(f"… and {len(report.problems) - max_issues:,} more skipped rows (all of them with --json)")
    emit(
        as_json,
        {"imported": len(report.imported), "problems": report.problems},
        lambda: out().print(f"imported {len(report.imported)} label(s), skipped {len(report.problems)}"),
    )
    if not report.imported and not dry_run:  # the report is out; the exit status says that nothing came in
        held = f"all {len(report.problems):,} row(s) were skipped" if report.problems else "it holds no rows"
        raise EvaltrayError(f"nothing imported from {path}: {held}")


@labels.command("record")
@click.argument("candidate_id")
@click.option("--reference", required=True, help="The expected behaviour: a reference answer.")
@click.option("--critique", help="What is wrong with the recorded output, in a sentence.")
@click.option("--tag", "tags", multiple=True, help="A failure tag (repeatable).")
@json_option
@pass_app
def labels_record(
    app: AppContext, candidate_id: str, reference: str, critique: str | None, tags: tuple[str, ...], as_json: bool
) -> None:
    """Label one candidate (its expected behaviour, written blind), unsigned: an adjudicator signs it off.
    With --server, the team server records it for the token's user."""
    if app.remote is not None:
        form = {"reference": reference, "critique": critique or "", "failure_tags": ",".join(tags)}
        data = app.remote.call("POST", f"/queue/{urllib.parse.quote(candidate_id, safe='')}/review", data=form)
    else:
        step = next(iter(rev.ReviewSession(app.ws, app.user, [candidate_id], sign=False)))
        step.write_expected(reference)
        made = step.record(critique=critique, failure_tags=list(tags))
        data = {"candidate_id": candidate_id, "review_id": made.id, "reviewer": made.reviewer}
    emit(as_json, data, lambda: out().print(f"labeled {shown(candidate_id)} (review {data['review_id']})"))


@click.command()
@click.argument("candidate_id")
@click.option("--reason", required=True, help=f"One of: {', '.join(r.replace('_', ' ') for r in REJECT_REASONS)}.")
@click.option("--note", help="Free text kept with the rejection.")
@dry_run_option
@json_option
@pass_app
def reject(app: AppContext, candidate_id: str, reason: str, note: str | None, dry_run: bool, as_json: bool) -> None:
    """Send a candidate to the reject bin with a reason (it is kept, never deleted).
    With --server, the team server rejects it for the token's user."""
    if app.remote is not None:
        if dry_run:
            raise click.UsageError("--dry-run acts on a local workspace, not with --server")
        form = {"reason": reason, "note": note or ""}
        data = app.remote.call("POST", f"/queue/{urllib.parse.quote(candidate_id, safe='')}/reject", data=form)
    else:
        cand = pool.reject(app.ws, candidate_id, reason, app.user, note=note, dry_run=dry_run)
        data = {"candidate_id": cand.id, "reason": cand.reject_reason}
    emit(
        as_json,
        {**data, "dry_run": dry_run},
        lambda: out().print(f"rejected {shown(data['candidate_id'])}: {shown(data['reason'])}"),
    )


@click.command()
@click.argument("candidate_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Sign every reviewed, unsigned candidate of the set.")
@set_option
@dry_run_option
@json_option
@pass_app
def signoff(
    app: AppContext, candidate_ids: tuple[str, ...], all_: bool, set_name: str | None, dry_run: bool, as_json: bool
) -> None:
    """Sign labels off as an adjudicator: the gate admits only signed rows."""
    if not candidate_ids and not all_:
        raise EvaltrayError("nothing to sign: name candidates or pass --all")
    signed = rev.sign_off(app.ws, candidate_ids, app.user, dry_run=dry_run, every_unsigned=all_, set_name=set_name)
    if signed or candidate_ids:
        message = f"signed {len(signed)} review(s)"
    else:  # --all found nothing: not an error, the work is done
        message = f"nothing to sign: no review in set {app.ws.check_set(set_name)!r} awaits a sign-off"
    emit(as_json, {"signed_reviews": signed, "dry_run": dry_run}, lambda: out().print(message))
