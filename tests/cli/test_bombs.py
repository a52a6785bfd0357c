"""Bombs, measured: a gzip cassette that inflates a thousandfold, a YAML alias bomb in a cassette and one in
``plan.yaml`` each fail with one line naming the file, within a small memory, through the real CLI in a
process of its own (the in-process tests lower the limits; these keep the real ones)."""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

import evaltray

from .runner import run

#: A ceiling on the child's address space: the bombs took 4.8 GB, or died at about 4 GB, before they were
#: refused. (It cannot be lower: the CLI maps about 2 GB of address space, touching a tenth of it, at start.)
ADDRESS_SPACE = 4 << 30
#: What the child may really use (its peak resident set): the issue's "under 1 GB".
PEAK_RSS = 1 << 30
_SRC = str(Path(evaltray.__file__).parents[1])


def _levels(indent: str = "") -> list[str]:
    """Nine anchors, each nine aliases of the one before: 9**9 "lol"s (387 million) from about 350 bytes."""
    lines = [f'{indent}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghi"
    lines += [f"{indent}{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip(names, names[1:], strict=False)]
    return lines


def _evaltray(cwd: Path, *args: str) -> tuple[int, str, str, int]:
    """Run ``evaltray ARGS`` in a process of its own under :data:`ADDRESS_SPACE`: exit status, stdout, stderr
    and its peak resident set in bytes."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": _SRC, "NO_COLOR": "1"}
    with out.open("wb") as o, err.open("wb") as e:
        child = subprocess.Popen(
            [sys.executable, "-c", "from evaltray.cli import main; main()", *args],
            cwd=cwd,
            stdout=o,
            stderr=e,
            env=env,
            preexec_fn=limit,
        )
        killer = threading.Timer(120, child.kill)  # a generous bound; no timing is asserted
        killer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            killer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, out.read_text("utf-8"), err.read_text("utf-8"), usage.ru_maxrss * 1024


def _one_line_error(code: int, stdout: str, stderr: str, rss: int, starts: str) -> None:
    assert "Traceback" not in stdout + stderr, stderr
    assert (code, stderr.count("\n")) == (1, 1), (code, stderr)
    assert stderr.startswith(starts), stderr
    assert rss < PEAK_RSS, f"peak resident set {rss >> 20} MiB"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    run("--user", "alice", "init", "ws")
    return (tmp_path / "ws").resolve()


def test_a_gzip_cassette_that_inflates_a_thousandfold_is_refused(root: Path) -> None:
    """Failed before: ingest read all 1.6 GB (25 s, 4.8 GB peak) and exited 0; under the ceiling it died
    with a MemoryError traceback."""
    member = gzip.compress(b" " * (16 << 20), compresslevel=9)  # 16 MiB of JSON whitespace in 16 KB
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    cassette = {
        "interactions": [
            {
                "request": {
                    "body": json.dumps(request),
                    "method": "POST",
                    "uri": "https://api.openai.com/v1/chat/completions",
                },
                "response": {"body": {"string": member * 100}, "status": {"code": 200, "message": "OK"}},
            }
        ],
        "version": 1,
    }
    path = root.parent / "bomb.yaml"
    path.write_text(yaml.safe_dump(cassette, sort_keys=False), encoding="utf-8")
    assert len(member * 100) < 1_700_000 and path.stat().st_size < 2_500_000
    code, stdout, stderr, rss = _evaltray(root, "ingest", str(path))
    _one_line_error(code, stdout, stderr, rss, f"Error: nothing read from {path}:2: ")
    assert stderr.endswith(": gzip data decompresses to more than 128 MiB; refused as a decompression bomb\n")


def test_a_yaml_alias_bomb_cassette_is_refused(root: Path) -> None:
    """Failed before: an 809-byte cassette died with a segmentation fault at about 4 GB."""
    lines = [
        "interactions:",
        "- request: {uri: 'https://api.openai.com/v1/chat/completions', body: x}",
        *_levels("  "),
        "- *i",
    ]
    path = root.parent / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size < 500
    code, stdout, stderr, rss = _evaltray(root, "ingest", str(path))
    _one_line_error(code, stdout, stderr, rss, f"Error: nothing read from {path}: ")
    assert stderr.endswith(": YAML expands to more than 128 MiB through its aliases; refused as an alias bomb\n")


@pytest.mark.parametrize("command", [("plan", "show"), ("coverage",)])
def test_a_yaml_alias_bomb_plan_is_refused(root: Path, command: tuple[str, ...]) -> None:
    """Failed before: ``plan show`` on a 527-byte alias bomb was still running after 30 s."""
    (root / "plan.yaml").write_text("\n".join([*_levels(), "grid: *i"]) + "\n", encoding="utf-8")
    assert (root / "plan.yaml").stat().st_size < 400
    code, stdout, stderr, rss = _evaltray(root, *command)
    _one_line_error(code, stdout, stderr, rss, f"Error: {root / 'plan.yaml'}: ")
    assert stderr.endswith(": YAML expands to more than 1 MiB through its aliases; refused as an alias bomb\n")
