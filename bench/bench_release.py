"""Figure: `release create` of a 100k-case tray under 5 s, `release verify` under 2 s.

Reference, in the same run: what teams do today to freeze a tray — `git add` + `git commit` + `git tag`
of the same cases.jsonl — and a bare floor, sha256 over the file. Usage: python bench/bench_release.py [--n 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from evaltray.core.store import Workspace
from evaltray.core.util import dumps, now_iso
from evaltray.tray import casefile, gate, release
from evaltray.tray.candidates import Candidate
from evaltray.tray.review import Review, review_label
from evaltray.tray.signatures import sign_promotion, signoff_message

SLICES = [
    f"{f}/{s}"
    for f in ("refunds", "shipping", "returns", "account", "billing")
    for s in ("happy-path", "no-results", "ambiguous", "irate-user")
]
SOURCES = ["production"] * 10 + ["synthetic"] * 6 + ["sme"] * 3 + ["user_feedback"]


def build_tray(ws: Workspace, n: int, seed: int = 0) -> None:
    """Write ``n`` signed cases and their review records in bulk (the gate, minus per-row transactions): each
    sign-off and promotion signed with alice's key, as the gate signs them."""
    signer = ws.signer("alice")
    rng = random.Random(seed)
    now = now_iso()
    cands, reviews, regs, rows = [], [], [], []
    taken: set[str] = set()
    for i in range(n):
        slice_ = rng.choice(SLICES)
        source = rng.choice(SOURCES)
        inp = {
            "messages": [
                {"role": "system", "content": "You are a support assistant."},
                {"role": "user", "content": f"Question {i} about {slice_}: order {rng.randint(1, 10**7)}?"},
            ],
            "tools": [],
            "context": [],
            "retrieved_doc_ids": [],
        }
        expected = {
            "reference": f"Reference answer {i}.",
            "behavior_code": None,
            "assertions": ["mentions the order number"],
            "origin": "human",
            "written_by": "bob",
        }
        cid = f"cand-{i:08d}"
        cand = Candidate(
            id=cid,
            set_name="main",
            source=source,
            trace_id=f"t{i}",
            ingest_date="2026-11-01",
            input=inp,
            recorded_output=f"Recorded output {i}.",
            labels={"feature": slice_.split("/")[0], "scenario": slice_.split("/")[1], "persona": None, "tags": []},
            slice=slice_,
            difficulty=rng.choice(["easy", "medium", "hard"]),
            case_type=rng.choice(["typical", "typical", "edge", "adversarial", "safety"]),
            risk_level="medium",
            notes=None,
            weight=1,
            status="promoted",
            reject_reason=None,
            case_id=None,
            supersedes=None,
        )
        review = Review(
            id=i + 1,
            candidate_id=cid,
            reviewer="bob",
            expected=expected,
            expected_first=True,
            verdict="pass",
            critique=None,
            failure_tags=[],
            rubric=None,
            guide_version="1",
            slice=None,
            difficulty=None,
            case_type=None,
            signed_by="alice",
            signed_at=now,
            created_at=now,
        )
        review.signoff_signature = signer.sign(signoff_message("alice", review.id, review_label(cand, review)))
        case_id = gate.new_case_id("main", inp, taken)
        taken.add(case_id)
        row, problems = gate.check_case(
            gate.build_case(ws, cand, review, case_id, created_at=now, version_added="pending")
        )
        assert not problems, problems
        sign_promotion(signer, row)
        rows.append(row)
        cands.append(
            dict(
                id=cid,
                set_name="main",
                source=source,
                trace_id=cand.trace_id,
                ingest_date=cand.ingest_date,
                input=dumps(inp),
                recorded_output=cand.recorded_output,
                labels=dumps(cand.labels),
                slice=slice_,
                difficulty=cand.difficulty,
                case_type=cand.case_type,
                risk_level="medium",
                weight=1,
                status="promoted",
                case_id=case_id,
                metadata="{}",
                created_by="bob",
                created_at=now,
            )
        )
        reviews.append(
            dict(
                id=i + 1,
                candidate_id=cid,
                reviewer="bob",
                expected=dumps(expected),
                expected_first=True,
                verdict="pass",
                failure_tags="[]",
                guide_version="1",
                signed_by="alice",
                signed_at=now,
                signoff_signature=review.signoff_signature,
                created_at=now,
            )
        )
        regs.append(
            dict(
                id=case_id,
                set_name="main",
                status="active",
                candidate_id=cid,
                review_id=i + 1,
                content_hash=casefile.signed_hash(row),
                slice=slice_,
                source=source,
                difficulty=cand.difficulty,
                case_type=cand.case_type,
                supersedes=None,
                promoted_by="alice",
                promotion_signature=row["validation"]["promotion_signature"],
                created_at=now,
            )
        )
    with ws.tx() as conn:
        conn.execute(ws.t["candidates"].insert(), cands)
        conn.execute(ws.t["reviews"].insert(), reviews)
        conn.execute(ws.t["cases"].insert(), regs)
    casefile.write_cases(ws, "main", rows)


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-release-"))
    os.environ["EVALTRAY_CONFIG_DIR"] = str(root / "config")  # alice's signing key, not in the real home
    try:
        ws = Workspace.init(root / "ws", user="alice")
        t_build, _ = timed(lambda: build_tray(ws, args.n))
        size = ws.cases_path("main").stat().st_size
        print(f"tray: {args.n:,} cases, {size / 1e6:.1f} MB (built in {t_build:.1f} s)")

        t_floor, _ = timed(lambda: hashlib.sha256(ws.cases_path("main").read_bytes()).hexdigest())
        repo = root / "git"
        repo.mkdir()
        shutil.copy(ws.cases_path("main"), repo / "cases.jsonl")

        def git() -> None:
            for cmd in (
                ["init", "-q"],
                ["add", "cases.jsonl"],
                ["-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "tray"],
                ["tag", "v1.0.0"],
            ):
                subprocess.run(["git", *cmd], cwd=repo, check=True)

        t_git, _ = timed(git)
        t_create, result = timed(lambda: release.create_release(ws, "1.0.0", "alice"))
        t_verify, problems = timed(lambda: release.verify_release(ws, "1.0.0"))
        assert problems == [], problems
        t_validate, found = timed(lambda: gate.validate(ws, "main"))
        assert found == [], found
        t_next, _ = timed(lambda: release.create_release(ws, "1.1.0", "alice"))
        t_deep, problems = timed(lambda: release.verify_release(ws, "1.0.0", deep=True))
        assert problems == [], problems
        held = result.manifest.sets["main"].counts.split["holdout"]
        print(f"release create: {t_create:.2f} s (target < 5 s)  holdout {held:,}, hash {result.content_hash[:12]}")
        print(f"release verify: {t_verify:.2f} s (target < 2 s)")
        print(f"tray validate after the release (rows as released: signatures not checked again): {t_validate:.2f} s")
        print(f"the next release, no row changed (signatures proved by 1.0.0 not proved again): {t_next:.2f} s")
        print(f"release verify --deep (every row's two signatures proved again): {t_deep:.2f} s")
        print(f"reference git add+commit+tag: {t_git:.2f} s   → create / git = {t_create / t_git:.2f}×")
        print(f"reference sha256 of the file: {t_floor:.3f} s → verify / sha256 = {t_verify / t_floor:.1f}×")
        ws.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
