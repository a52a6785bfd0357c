"""The live-gap leakage signal: the golden tray's pass rate against live traffic's (seeds 001 and 003).

"A 25-point gap between a held-out set and the live distribution is mechanically very hard to produce by
chance; the most common cause is that the held-out set is no longer held out." Amber at a gap of 15 points
or more (seed 001), red at 20 or more (seed 003), overall and per slice, with the slices that make it.

The golden side is a scored run on a release (:func:`golden_rates`); the live side comes from whatever
scores live traffic, through the small :class:`LiveSource` interface: a stored ``score-live`` result
(:class:`StoredLiveSource`) or a JSON file of the same shape (:class:`JsonLiveSource`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.evaluate.live import list_live, read_live

__all__ = [
    "AMBER",
    "RED",
    "GapReport",
    "JsonLiveSource",
    "LiveSource",
    "Rates",
    "SliceGap",
    "StoredLiveSource",
    "golden_rates",
    "live_gap",
]

AMBER, RED = 15.0, 20.0
#: A slice with fewer scored cases than this on either side is shown, but never raises the level.
MIN_N = 10


class LeakageError(EvaltrayError):
    """Pass rates that cannot be read or compared."""


@dataclass(frozen=True)
class Rate:
    passed: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.n if self.n else None


@dataclass(frozen=True)
class Rates:
    """Pass counts overall and per slice."""

    overall: Rate
    slices: dict[str, Rate] = field(default_factory=dict)


class LiveSource(Protocol):
    """Where live pass rates come from."""

    def pass_rates(self) -> Rates: ...


def _rate(value: Any, where: str) -> Rate:
    try:
        passed, n = int(value["passed"]), int(value["n"])
    except (KeyError, TypeError, ValueError):
        raise LeakageError(f"{where}: a pass rate needs integer `passed` and `n`") from None
    if not 0 <= passed <= n:
        raise LeakageError(f"{where}: passed {passed} is not between 0 and n {n}")
    return Rate(passed, n)


def rates_of(data: Any, where: str) -> Rates:
    """Rates from ``{"overall": {"passed", "n"}, "slices": {name: {"passed", "n"}}}`` (a run report's shape)."""
    if not isinstance(data, dict) or "overall" not in data:
        raise LeakageError(f"{where}: expected an object with `overall` (and `slices`)")
    slices = data.get("slices") or {}
    return Rates(
        _rate(data["overall"], f"{where} overall"), {k: _rate(v, f"{where} slice {k}") for k, v in slices.items()}
    )


@dataclass(frozen=True)
class JsonLiveSource:
    """Live pass rates from a JSON file of :func:`rates_of`'s shape."""

    path: Path

    def pass_rates(self) -> Rates:
        try:
            data = orjson.loads(self.path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise LeakageError(f"{self.path}: not JSON ({exc})") from None
        return rates_of(data, str(self.path))


@dataclass(frozen=True)
class StoredLiveSource:
    """Live pass rates of a stored ``evaltray score-live`` result: ``live_id``, or the newest when None."""

    ws: Workspace
    live_id: str | None = None

    def pass_rates(self) -> Rates:
        found = list_live(self.ws)
        data = read_live(self.ws, self.live_id) if self.live_id is not None else (found[-1] if found else None)
        if data is None:
            raise LeakageError("no live pass rate in this workspace: run `evaltray score-live` first")
        return rates_of(data, f"live result {data['live_id']}")


def golden_rates(ws: Workspace, run_id: str) -> Rates:
    """The golden side: a scored run's pass counts, overall and per slice."""
    from evaltray.evaluate.report import run_report

    return rates_of(run_report(ws, run_id), f"run {run_id}")


def level(gap: float | None) -> str:
    if gap is None:
        return "unknown"
    return "red" if gap >= RED else "amber" if gap >= AMBER else "green"


@dataclass(frozen=True)
class SliceGap:
    slice: str
    golden: float | None
    live: float | None
    gap: float | None  # points, golden minus live
    level: str
    golden_n: int
    live_n: int


@dataclass
class GapReport:
    overall: SliceGap
    slices: list[SliceGap]
    level: str
    #: the slices at amber or red (with enough cases on both sides), worst first: where the leak is
    culprits: list[str]


def _gap(name: str, golden: Rate | None, live: Rate | None) -> SliceGap:
    g = golden.rate if golden else None
    lv = live.rate if live else None
    gap = round((g - lv) * 100, 1) if g is not None and lv is not None else None
    return SliceGap(name, g, lv, gap, level(gap), golden.n if golden else 0, live.n if live else 0)


def live_gap(golden: Rates, live: Rates) -> GapReport:
    """Golden minus live pass rate in points, overall and per slice, each green, amber (>= 15) or red (>= 20)."""
    overall = _gap("(all)", golden.overall, live.overall)
    names = sorted(set(golden.slices) | set(live.slices))
    slices = [_gap(s, golden.slices.get(s), live.slices.get(s)) for s in names]
    trusted = [s for s in slices if s.gap is not None and min(s.golden_n, s.live_n) >= MIN_N]
    culprits = [s.slice for s in sorted(trusted, key=lambda s: -(s.gap or 0)) if s.level in ("amber", "red")]
    worst = max((s.gap or 0 for s in trusted), default=None)
    levels = [overall.gap, worst] if overall.gap is not None else [worst]
    top = max((x for x in levels if x is not None), default=None)
    return GapReport(overall, slices, level(top), culprits)
