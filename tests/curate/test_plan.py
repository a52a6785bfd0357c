"""The coverage plan: loading, targets, mapping traces to cells, coverage and its heatmap."""

from __future__ import annotations

import orjson
import pytest

from evaltray.curate import plan
from evaltray.curate.coverage_html import coverage_page
from evaltray.curate.plan import Plan, PlanError, Rule
from evaltray.ingest import ingest_files
from evaltray.tray import casefile, gate
from tests.helpers import labeled_candidate


def _plan(**kw) -> Plan:
    base = dict(
        dimensions={
            "feature": ["refunds", "shipping"],
            "scenario": ["happy-path", "irate-user"],
            "persona": ["new", "admin"],
            "case_type": ["typical", "safety"],
        },
        target_per_cell=2,
    )
    base.update(kw)
    return Plan(**base)


def test_targets_overrides_and_oversample():
    p = _plan(
        cells=[
            {"match": {"feature": "refunds"}, "target": 3},
            {"match": {"feature": "refunds", "scenario": "irate-user", "persona": "*"}, "target": 5},
        ],
        oversample=[{"match": {"case_type": "safety"}, "reason": "probes"}],
    )
    assert len(p.cell_keys()) == 8
    assert p.target(("refunds", "happy-path", "new")) == 3
    assert p.target(("refunds", "irate-user", "admin")) == 5
    assert p.target(("shipping", "irate-user", "admin")) == 2
    assert sum(p.target(c) for c in p.cell_keys()) == 3 * 2 + 5 * 2 + 2 * 4
    assert p.oversampled({"case_type": "safety"}) == "probes" and p.oversampled({"case_type": "typical"}) is None


def test_plan_file_errors(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("grid: [feature, mood]\ndimensions: {feature: [a]}\n")
    with pytest.raises(PlanError, match="unknown dimension 'mood'"):
        Plan.load(path)
    path.write_text(
        "grid: [feature]\ngrid: [feature]\ndimensions: {feature: [a]}\nrules: [{set: {feature: b}, where: 'true'}]\n"
    )
    with pytest.raises(PlanError, match="rule 1 sets feature='b', which is not in dimensions.feature"):
        Plan.load(path)
    path.write_text("grid: [feature]\ndimensions: {feature: [a]}\nmix: {difficulty: {easy: 0.5}}\n")
    with pytest.raises(PlanError, match="mix.difficulty must add up to 1.0, got 0.5"):
        Plan.load(path)
    with pytest.raises(PlanError, match="no coverage plan; run `evaltray plan init`"):
        Plan.load(tmp_path / "missing.yaml")


def test_init_round_trips_and_refuses_to_overwrite(ws):
    p = plan.init_plan(ws, ["refunds", "shipping"])
    again = plan.load_plan(ws)
    assert again.to_dict() == p.to_dict()
    assert len(again.cell_keys()) == 2 * 6 * 5
    assert [r.set for r in again.rules] == [{"feature": "refunds"}, {"feature": "shipping"}, {"scenario": "irate-user"}]
    with pytest.raises(PlanError, match="a plan exists"):
        plan.init_plan(ws, ["x"])


def _ingest(ws, tmp_path, rows):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    ingest_files(ws, [path])


def _row(i, feature, feedback=None):
    return {
        "id": f"t{i}",
        "metadata": {"feature": feature},
        "feedback": feedback,
        "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
    }


def test_coverage_counts_by_hand(ws, tmp_path):
    # traffic: 3 refunds traces (one thumbs-down), 1 shipping trace, 1 trace no rule places
    _ingest(
        ws,
        tmp_path,
        [_row(1, "refunds"), _row(2, "refunds", "down"), _row(3, "refunds"), _row(4, "shipping"), _row(5, None)],
    )
    p = _plan(
        rules=[
            Rule(set={"feature": "refunds"}, where="feature = 'refunds'"),
            Rule(set={"feature": "shipping"}, where="feature = 'shipping'"),
            Rule(set={"scenario": "irate-user"}, where="feedback_score < 0"),
        ],
        minimums={"case_type": {"safety": 1}},
    )
    # the tray: one refunds/happy-path/new case
    labeled_candidate(ws, "refund?", slice="refunds")
    gate.promote(ws, "alice")
    tray = casefile.load_cases(ws, "main")
    assert len(tray) == 1
    assigned = plan.assign_traces(ws, p)
    assert assigned == {
        "t1": {"feature": "refunds"},
        "t2": {"feature": "refunds", "scenario": "irate-user"},
        "t3": {"feature": "refunds"},
        "t4": {"feature": "shipping"},
        "t5": {},
    }
    cov = plan.coverage(ws, p)
    cells = {tuple(c.cell.values()): c for c in cov.cells}
    # t1, t3 could be any scenario/persona of refunds; t2 only irate-user
    assert cells[("refunds", "happy-path", "new")].traffic == 2
    assert cells[("refunds", "irate-user", "admin")].traffic == 3
    assert cells[("refunds", "irate-user", "admin")].complaints == 1
    assert cells[("shipping", "happy-path", "admin")].traffic == 1
    # the tray case has no scenario/persona: it is outside the grid
    assert cov.unmapped_cases == 1 and sum(c.filled for c in cov.cells) == 0
    # gaps first, ordered by traffic: the refunds/irate-user cells (3 traces) lead
    assert [tuple(c.cell.values()) for c in cov.cells[:2]] == [
        ("refunds", "irate-user", "admin"),
        ("refunds", "irate-user", "new"),
    ]
    assert cov.marginals["case_type"]["safety"] == {"filled": 0, "minimum": 1, "share": 0.0, "target_share": None}
    # no rule ever sets a persona, nor the happy-path scenario: those cells are reached only by spreading
    assert cells[("refunds", "irate-user", "admin")].unruled == ["persona=admin"]
    assert cells[("refunds", "happy-path", "new")].unruled == ["scenario=happy-path", "persona=new"]


def test_filled_cells_and_heatmap(ws):
    from evaltray.tray import candidates as pool
    from evaltray.tray import review as rev

    p = _plan()
    for i, (scenario, persona) in enumerate([("happy-path", "new"), ("happy-path", "new"), ("irate-user", "admin")]):
        cid = pool.add_manual(
            ws,
            "alice",
            "sme",
            [{"role": "user", "content": f"q{i}"}],
            labels={"feature": "refunds", "scenario": scenario, "persona": persona, "tags": []},
            slice="refunds",
            difficulty="easy",
            case_type="typical",
        )
        rev.record_review(ws, cid, "alice", rev.normalize_expected(ws, "alice", reference="r"), sign=True)
    gate.promote(ws, "alice")
    cov = plan.coverage(ws, p)
    cells = {tuple(c.cell.values()): c for c in cov.cells}
    assert cells[("refunds", "happy-path", "new")].filled == 2 and cells[("refunds", "happy-path", "new")].gap == 0
    assert cells[("refunds", "irate-user", "admin")].gap == 1
    assert len(cov.gaps) == 7
    page = coverage_page(cov, p, "Coverage of <shop>")
    assert "<title>Coverage of &lt;shop&gt;</title>" in page
    assert page.count("<td class='cell'") == 8
    assert "2/2<small>0 traces</small>" in page and "rgb(110,200,120)" in page


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("dimensions: 5\n", "`dimensions` must be a mapping"),
        ("dimensions: {feature: abc}\n", "`dimensions.feature` must be a list"),
        ("dimensions: {feature: [a]}\nminimums: {case_type: [1]}\n", "`minimums.case_type` must be a mapping"),
        ("dimensions: {feature: [a]}\ngrid: feature\n", "`grid` must be a list"),
        ("dimensions: {feature: [a]}\ncells: [3]\n", "every entry of `cells` must be a mapping"),
        (
            "dimensions: {feature: [a]}\ngrid: [feature]\ncells: [{match: {feature: a}, target: lots}]\n",
            "cells entry 1: `target` must be a number",
        ),
        (
            "dimensions: {feature: [a]}\ngrid: [feature]\noversample: [{match: safety}]\n",
            "oversample entry 1: `match` must be a mapping",
        ),
        (
            "dimensions: {feature: [a]}\ngrid: [feature]\nslices: {refunds: {assertions: 'max-words: 9'}}\n",
            "slices.refunds.assertions must be a list of strings",
        ),
        (
            "dimensions: {feature: [a]}\ngrid: [feature]\nminimums: {case_type: {safety: many}}\n",
            "a value has the wrong type (invalid literal for int() with base 10: 'many')",
        ),
    ],
)
def test_plan_file_of_the_wrong_shape(tmp_path, text, problem):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as exc:
        Plan.load(path)
    assert str(exc.value) == f"{path}: {problem}"


def test_coverage_report_reads_the_plan_and_writes_the_page(ws, tmp_path):
    from evaltray.core.errors import EvaltrayError
    from evaltray.curate.coverage_html import coverage_report

    p = _plan()
    labeled_candidate(ws, "q1", slice="refunds")
    gate.promote(ws, "alice")
    with pytest.raises(PlanError, match="no coverage plan; run `evaltray plan init`$"):
        coverage_report(ws)
    p.save(plan.plan_path(ws))
    html = tmp_path / "out" / "coverage.html"
    cov = coverage_report(ws, html=html)
    assert cov.grid == ["feature", "scenario", "persona"] and len(cov.cells) == 8 and cov.unmapped_cases == 1
    assert html.read_text(encoding="utf-8") == coverage_page(cov, p, "Coverage of shop-bot")
    assert coverage_report(ws, p, "edge").unmapped_cases == 0
    with pytest.raises(EvaltrayError) as exc:
        coverage_report(ws, html=tmp_path / "out" / "coverage.html" / "x.html")
    assert str(exc.value).startswith(f"cannot write {tmp_path / 'out' / 'coverage.html' / 'x.html'}: ")


# --------------------------------------------------------------------------- rules are conditions, not SQL text

HOSTILE = ["x' OR 1=1", "it's", "a -- b", "c) OR (1=1"]


def test_init_writes_conditions_whose_values_are_never_sql(ws, tmp_path):
    # before: `where: feature = 'x' OR 1=1'` in plan.yaml, and `it's` broke coverage with a parser error
    _ingest(ws, tmp_path, [_row(i, f) for i, f in enumerate(HOSTILE, 1)] + [_row(9, "plain")])
    p = plan.init_plan(ws)
    text = (ws.root / "plan.yaml").read_text()
    assert "where:" not in text and "OR 1=1'" not in text.replace("value: x' OR 1=1", "")
    assert plan.load_plan(ws).rules[0].to_dict() == {
        "when": [{"column": "feature", "op": "=", "value": "x' OR 1=1"}],
        "set": {"feature": "x' OR 1=1"},
    }
    assigned = plan.assign_traces(ws, plan.load_plan(ws))
    # each trace is placed by its own feature's rule only: none of the values widens its rule
    assert assigned == {
        "t1": {"feature": "x' OR 1=1"},
        "t2": {"feature": "it's"},
        "t3": {"feature": "a -- b"},
        "t4": {"feature": "c) OR (1=1"},
        "t9": {"feature": "plain"},
    }
    cov = plan.coverage(ws, p)
    by_feature = {f: sum(c.traffic for c in cov.cells if c.cell["feature"] == f) for f in [*HOSTILE, "plain"]}
    # one trace per feature, spread over that feature's 6 scenarios x 5 personas
    assert by_feature == {f: 30 for f in [*HOSTILE, "plain"]}


def test_rule_conditions_read_and_check(tmp_path):
    path = tmp_path / "plan.yaml"
    head = "grid: [feature]\ndimensions: {feature: [a]}\n"
    path.write_text(
        head + "rules:\n"
        "- {when: {column: feature, value: a}, set: {feature: a}}\n"
        "- {when: [{column: tags, op: contains, value: vip}, {column: feedback_score, op: is null}], set: {feature: a}}\n"
        "- {when: {column: model, op: in, value: [m1, m2]}, where: 'n_messages > 2', set: {feature: a}}\n"
    )
    rules = Plan.load(path).rules
    assert [r.predicate() for r in rules] == [
        ('(\n"feature" = $rule_0\n)', {"rule_0": "a"}),
        ('(\nlist_contains("tags", $rule_0)\n) AND (\n"feedback_score" IS NULL\n)', {"rule_0": "vip"}),
        ('(\nlist_contains($rule_0, "model")\n) AND (\nn_messages > 2\n)', {"rule_0": ["m1", "m2"]}),
    ]
    assert [r.describe() for r in rules] == [
        "feature = 'a'",
        "tags contains 'vip' AND feedback_score is null",
        "model in ['m1', 'm2'] AND n_messages > 2",
    ]
    for when, problem in (
        ("{column: 'feature; DROP', value: a}", "unknown column 'feature; DROP'"),
        ("{column: feature, op: '= 1 OR', value: a}", "unknown op '= 1 or' (one of: "),
        ("{column: feature, op: in, value: a}", "op 'in' needs a list of values"),
        ("{column: feature, op: is null, value: a}", "op 'is null' takes no value"),
        ("{column: feature, value: [a]}", "op '=' needs one value (text or number)"),
        ("{column: feature, value: a, sql: x}", "unknown key(s) sql"),
        ("[1]", "`when` must be a condition or a list of them"),
    ):
        path.write_text(head + f"rules: [{{when: {when}, set: {{feature: a}}}}]\n")
        with pytest.raises(PlanError) as err:
            Plan.load(path)
        assert str(err.value).startswith(f"{path}: rule 1: {problem}")


def test_a_written_where_rule_goes_through_the_sandbox(ws, tmp_path):
    _ingest(ws, tmp_path, [_row(1, "refunds"), _row(2, "shipping")])
    escape = _plan(rules=[Rule(set={"feature": "refunds"}, where="1=1) OR (1=1")])
    with pytest.raises(PlanError, match="^plan.yaml: rule 1: --where .*: must be a single boolean expression"):
        plan.assign_traces(ws, escape)
    files = _plan(rules=[Rule(set={"feature": "refunds"}, where="trace_id IN (SELECT file FROM glob('.tmp/*'))")])
    with pytest.raises(PlanError, match="^plan.yaml: rule 1: --where .*: Permission Error"):
        plan.assign_traces(ws, files)
    old = _plan(rules=[Rule(set={"feature": "refunds"}, where="feature = 'refunds' -- an old plan")])
    assert plan.assign_traces(ws, old) == {"t1": {"feature": "refunds"}, "t2": {}}


def test_a_yaml_bomb_plan_is_refused(tmp_path):
    path = tmp_path / "plan.yaml"
    laughs = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 5)]
    # 10**5 "lol"s (each 1 node + 3 characters) from about 400 bytes: past the 1 MiB limit once expanded
    path.write_text("\n".join(laughs) + "\ngrid: [*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4]\n")
    assert path.stat().st_size < 400
    with pytest.raises(PlanError) as err:
        Plan.load(path)
    assert str(err.value) == f"{path}: YAML expands to more than 1 MiB through its aliases; refused as an alias bomb"
    path.write_text("a: &a x\ngrid: [" + ", ".join(["*a"] * 101) + "]\n")
    with pytest.raises(PlanError) as err:
        Plan.load(path)
    assert str(err.value) == f"{path}: YAML uses more than 100 aliases; refused"


def test_a_plan_past_its_size_or_expansion_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "plan.yaml"
    path.write_text("a: &a [" + ", ".join(["xxxxxxxxxx"] * 100) + "]\ngrid: [*a, *a, *a]\n")
    monkeypatch.setattr(plan, "MAX_PLAN_BYTES", 3000)
    with pytest.raises(PlanError) as err:
        Plan.load(path)
    assert (
        str(err.value) == f"{path}: YAML expands to more than 3,000 bytes through its aliases; refused as an alias bomb"
    )
    monkeypatch.setattr(plan, "MAX_PLAN_BYTES", 1000)
    with pytest.raises(PlanError) as err:
        Plan.load(path)
    assert str(err.value) == f"{path}: 1,226 bytes, past the 1,000 bytes a plan may hold"


def test_a_nearest_rule_takes_axes_from_labelled_exemplars(ws, tmp_path):
    from evaltray.tray import candidates as pool

    def message(i, text):
        return {
            "id": f"n{i}",
            "metadata": {"feature": "refunds"},
            "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}],
        }

    _ingest(
        ws,
        tmp_path,
        [
            message(1, "I am furious, my refund never arrived and nobody answers!"),
            message(2, "How can I track my package, please?"),
            message(3, "zzz qqq"),
        ],
    )
    for text, scenario in (
        ("This is outrageous, where is my refund? Nobody answers me!", "irate-user"),
        ("How do I track my parcel?", "happy-path"),
    ):
        pool.add_manual(
            ws,
            "alice",
            "sme",
            [{"role": "user", "content": text}],
            labels={"feature": "refunds", "scenario": scenario, "persona": None, "tags": []},
        )
    rules = [
        Rule(set={"feature": "refunds"}, where="feature = 'refunds'"),
        Rule(set={}, nearest=["scenario"], k=1, min_similarity=0.5),
    ]
    assigned = plan.assign_traces(ws, _plan(rules=rules))
    assert assigned["n1"] == {"feature": "refunds", "scenario": "irate-user"}
    assert assigned["n2"] == {"feature": "refunds", "scenario": "happy-path"}
    assert assigned["n3"] == {"feature": "refunds"}  # nothing near enough: the axis stays open
    cells = {tuple(c.cell.values()): c for c in plan.coverage(ws, _plan(rules=rules)).cells}
    assert cells[("refunds", "irate-user", "new")].unruled == ["persona=new"]  # the exemplars carry irate-user


def test_a_nearest_rule_is_read_and_checked(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(
        "grid: [feature]\ndimensions: {feature: [a]}\nrules:\n  - nearest: [scenario, persona]\n    k: 3\n    min_similarity: 0.7\n"
    )
    (rule,) = Plan.load(path).rules
    assert (rule.nearest, rule.k, rule.min_similarity, rule.set) == (["scenario", "persona"], 3, 0.7, {})
    assert Plan.load(path).to_dict()["rules"] == [{"nearest": ["scenario", "persona"], "k": 3, "min_similarity": 0.7}]
    path.write_text("grid: [feature]\ndimensions: {feature: [a]}\nrules:\n  - nearest: [scenario]\n    k: 0\n")
    with pytest.raises(PlanError, match=r"rule 1: k must be a positive integer, got 0"):
        Plan.load(path)
    path.write_text("grid: [feature]\ndimensions: {feature: [a]}\nrules:\n  - nearest: [mood]\n")
    with pytest.raises(PlanError, match=r"rule 1 takes unknown dimension 'mood'"):
        Plan.load(path)
