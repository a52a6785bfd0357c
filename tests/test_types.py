"""The package's type hints hold: mypy over the whole of ``evaltray`` finds nothing (it ships ``py.typed``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.early  # about a minute of one core: started first, it runs beside the rest of the suite
def test_mypy_finds_no_type_errors(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parent.parent / "src"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "evaltray", "--cache-dir", str(tmp_path)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.startswith("Success: no issues found in")
