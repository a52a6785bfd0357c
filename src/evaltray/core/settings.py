"""Workspace settings (``evaltray.toml``): one declared table, defaults from the seeds."""

from __future__ import annotations

import functools
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EvaltrayError, ReleaseError, WorkspaceError

SETTINGS_FILE = "evaltray.toml"
# Names that name files are matched whole (``fullmatch``): ``$`` would also match before a trailing newline.
#: What a set may be called: it names files (``sets/<set>/cases.jsonl``, ``releases/<version>/<set>.jsonl``).
SET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: What a release may be called: a semantic version, ``MAJOR.MINOR.PATCH[-PRE]``; it names ``releases/<version>.json``.
VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?")

#: The range of ``[ingest] scrub_max_field_chars``: below a thousand characters a field is not a text any more;
#: above a billion one field alone outgrows the memory scrubbing holds.
MIN_FIELD_CHARS, MAX_FIELD_CHARS = 1_000, 1_000_000_000

#: Seed 003's target source mix for a tray.
DEFAULT_SOURCE_MIX = {"production": 0.50, "synthetic": 0.30, "sme": 0.15, "user_feedback": 0.05}


@dataclass
class Settings:
    """Everything a workspace can tune; every field has the seeds' default."""

    name: str = "evaltray"
    default_set: str = "main"
    sets: list[str] = field(default_factory=lambda: ["main", "edge"])
    default_user: str | None = None
    label_owner: str | None = None
    composition_owner: str | None = None
    guide_version: str = "1"
    behavior_codes: list[str] = field(default_factory=list)
    write_expected_first: bool = True
    #: share of label tasks a second labeler labels too, blind (chosen by a hash of the candidate id)
    overlap: float = 0.10
    #: share of a labeler's tasks that are gold control items (golden rows with a known verdict)
    control_rate: float = 0.05
    slice_by: list[str] = field(default_factory=lambda: ["feature"])
    holdout: float = 0.2
    pr_subset_size: int = 50
    source_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SOURCE_MIX))
    human_agreement: float = 0.80
    judge_agreement: float = 0.85
    #: a labeler whose control items come out right less often than this is flagged
    control_accuracy: float = 0.80
    stale_after_days: int = 180
    refresh_every_days: int = 30
    contamination_warn: float = 0.10
    payload_sample: float = 1.0
    outlier_quantile: float = 0.95
    scrub: bool = True
    scrub_entities: list[str] | None = None
    scrub_max_field_chars: int = 1_000_000
    vault_key: str | None = None
    state_url: str | None = None

    @classmethod
    def load(cls, root: Path) -> Settings:
        """Read ``evaltray.toml`` under ``root``; unknown keys are an error, not a silent typo."""
        path = root / SETTINGS_FILE
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkspaceError(f"{path}: not found; run `evaltray init` first") from None
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError(f"{path}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise WorkspaceError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        values: dict[str, Any] = {}
        for table, keys in _LAYOUT.items():
            section = raw.pop(table, {})
            if not isinstance(section, dict):
                raise WorkspaceError(f"{path}: [{table}] must be a table")
            if table == "source_mix":
                if section:
                    values["source_mix"] = _load_source_mix(path, section)
                continue
            for key, value in section.items():
                attr = keys.get(key)
                if attr is None:
                    raise WorkspaceError(f"{path}: unknown setting {table}.{key}")
                _check_value(path, f"{table}.{key}", value, _field_types()[attr], _VALUES[attr])
                values[attr] = value
        if raw:
            raise WorkspaceError(f"{path}: unknown table(s) {', '.join(sorted(raw))}")
        settings = cls(**values)
        settings.check(path)
        return settings

    def check(self, path: Path) -> None:
        """Reject combinations no run could use (each value on its own is checked as it is read)."""
        total = sum(self.source_mix.values())
        if abs(total - 1.0) > 1e-6:
            raise WorkspaceError(f"{path}: source_mix must add up to 1.0, got {total:g}")
        if self.default_set not in self.sets:
            raise WorkspaceError(f"{path}: workspace.default_set {self.default_set!r} is not in workspace.sets")


#: table → {key in the file → Settings attribute}
_LAYOUT: dict[str, dict[str, str]] = {
    "workspace": {"name": "name", "default_set": "default_set", "sets": "sets", "default_user": "default_user"},
    "owners": {"label": "label_owner", "composition": "composition_owner"},
    "labeling": {
        "guide_version": "guide_version",
        "behavior_codes": "behavior_codes",
        "write_expected_first": "write_expected_first",
        "overlap": "overlap",
        "control_rate": "control_rate",
        "slice_by": "slice_by",
    },
    "release": {"holdout": "holdout", "pr_subset_size": "pr_subset_size"},
    "source_mix": {},
    "thresholds": {
        "human_agreement": "human_agreement",
        "judge_agreement": "judge_agreement",
        "control_accuracy": "control_accuracy",
        "stale_after_days": "stale_after_days",
        "refresh_every_days": "refresh_every_days",
        "contamination_warn": "contamination_warn",
    },
    "ingest": {
        "payload_sample": "payload_sample",
        "outlier_quantile": "outlier_quantile",
        "scrub": "scrub",
        "scrub_entities": "scrub_entities",
        "scrub_max_field_chars": "scrub_max_field_chars",
        "vault_key": "vault_key",
    },
    "state": {"url": "state_url"},
}


def _load_source_mix(path: Path, section: dict[str, Any]) -> dict[str, float]:
    for key, value in section.items():
        _check_value(path, f"source_mix.{key}", value, float, _SHARE)
    return {str(k): float(v) for k, v in section.items()}


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


#: The test for each type a setting can have.
_KINDS: dict[Any, Callable[[Any], bool]] = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    list[str]: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def _named(v: str) -> bool:
    return bool(v.strip())


def _names(v: list[str]) -> bool:
    return all(map(_named, v)) and len(set(v)) == len(v)


#: A value's type and range in one phrase for an error message, and the range test once the type fits.
_Value = tuple[str, Callable[[Any], bool]]
_FLAG: _Value = ("true or false", lambda v: True)
_SHARE: _Value = ("a number from 0 to 1", lambda v: 0 <= v <= 1)
_FRACTION: _Value = ("a number between 0 and 1 (both excluded)", lambda v: 0 < v < 1)
_USER: _Value = ("a user name", _named)

#: Settings attribute → what its value must be. Every attribute has an entry (a test checks it).
_VALUES: dict[str, _Value] = {
    "name": ("a workspace name", _named),
    "default_set": ("a set name", _named),
    "sets": (
        "a list of set names (lowercase letters, digits, _ and -, at most 64, starting with a letter or digit; "
        "each names files), each once",
        lambda v: bool(v) and all(SET_NAME.fullmatch(x) for x in v) and len(set(v)) == len(v),
    ),
    "default_user": _USER,
    "label_owner": _USER,
    "composition_owner": _USER,
    "guide_version": ('the labeling guide\'s version as text, e.g. "1"', _named),
    "behavior_codes": ("a list of behavior codes, each once", _names),
    "write_expected_first": _FLAG,
    "overlap": _SHARE,
    "control_rate": _SHARE,
    "slice_by": ("a list of label keys, each once", _names),
    "holdout": _FRACTION,
    "pr_subset_size": ("a whole number of cases, 0 or more", lambda v: v >= 0),
    "source_mix": ("a table of source = share", lambda v: True),
    "human_agreement": _SHARE,
    "judge_agreement": _SHARE,
    "control_accuracy": _SHARE,
    "stale_after_days": ("a whole number of days, 1 or more", lambda v: v >= 1),
    "refresh_every_days": ("a whole number of days, 1 or more", lambda v: v >= 1),
    "contamination_warn": _SHARE,
    "payload_sample": ("a number above 0, at most 1", lambda v: 0 < v <= 1),
    "outlier_quantile": _FRACTION,
    "scrub": _FLAG,
    "scrub_entities": ('a list of entity names, e.g. ["EMAIL", "PHONE"]', _names),
    "scrub_max_field_chars": (
        f"a whole number of characters from {MIN_FIELD_CHARS:,} to {MAX_FIELD_CHARS:,}",
        lambda v: MIN_FIELD_CHARS <= v <= MAX_FIELD_CHARS,
    ),
    "vault_key": ("the path of a vault key file", _named),
    "state_url": ("a database URL", _named),
}


def _check_value(path: Path, key: str, value: Any, hint: Any, expected: _Value) -> None:
    """Refuse a value of the wrong type or out of range, naming the key, the value and what it must be:
    ``sets = "main"`` is a mistake to point at, not four sets named m, a, i, n."""
    if isinstance(hint, types.UnionType):  # X | None: TOML has no null, so the value must be an X
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    what, in_range = expected
    if not (_KINDS[hint](value) and in_range(value)):
        raise WorkspaceError(f"{path}: {key} must be {what}, got {value!r}")


def check_version(version: str) -> str:
    """``version`` where the whole of it is a semantic version (``2.0.0``, ``1.0.0-rc.1``; not ``2.0.0\\n``,
    not ``../1.0.0``), else a :class:`ReleaseError`."""
    if not VERSION.fullmatch(version):
        raise ReleaseError(f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    return version


def render_settings(name: str, user: str) -> str:
    """The commented ``evaltray.toml`` that ``evaltray init`` writes."""
    mix = "\n".join(f"{k} = {v:.2f}" for k, v in DEFAULT_SOURCE_MIX.items())
    return f"""# evaltray workspace settings. Defaults come from the seeds; edit freely.

[workspace]
name = "{name}"
default_set = "main"
# "edge" holds prompt-injection, toxicity and policy-violation probes, gated on its own.
sets = ["main", "edge"]
default_user = "{user}"

[owners]
label = "{user}"        # the adjudicator: owns the labeling guide and signs labels
composition = "{user}"  # owns which slices the tray covers and when it is refreshed

[labeling]
guide_version = "1"
behavior_codes = []          # controlled vocabulary, e.g. ["OFFER_WARRANTY_HANDOFF"]; versioned with the guide
write_expected_first = true  # reviewers write the expected behaviour before seeing the recorded output
overlap = 0.10               # share of label tasks a second labeler labels too; disagreements go to the adjudicator
control_rate = 0.05          # share of a labeler's tasks that are gold control items (known answers)
slice_by = ["feature"]       # label keys that name a case's slice when none is given

[release]
holdout = 0.20        # stratified by slice; a case once held out stays held out
pr_subset_size = 50   # the stratified subset for pull-request sanity checks

[source_mix]          # target share of each provenance source in the tray
{mix}

[thresholds]
human_agreement = 0.80
judge_agreement = 0.85
control_accuracy = 0.80  # a labeler below this on control items is flagged
stale_after_days = 180
refresh_every_days = 30  # the refresh ritual's cadence (seed 001: at least quarterly)
contamination_warn = 0.10

[ingest]
payload_sample = 1.0     # share of traces whose full payload is kept; metadata is kept for all
outlier_quantile = 0.95  # latency/cost above this quantile always keep their payload
scrub = true             # replace PII with placeholders (<EMAIL_1>) before anything is stored
# scrub_entities = ["EMAIL", "PHONE", "PERSON"]   # default: all (also CREDIT_CARD, IBAN, IP_ADDRESS, URL, API_KEY, ADDRESS)
# scrub_max_field_chars = 1000000   # a longer text field is stored cut (marked, the trace counted): scrubbing stays fast
# vault_key = "~/.config/evaltray/vault.key"       # seal the originals for the key's holder (`evaltray vault keygen`)

[state]
# url = "postgresql+psycopg://user@host/evaltray"   # default: SQLite (WAL) in .evaltray/state.db
"""


# ---------------------------------------------------------------------------------------- environment
# The one place, with the CLI's options, that reads the process environment: library code takes values
# as arguments or asks the functions below, so a long-running process decides what it passes.

#: The workspace directory: the CLI's ``-w/--workspace`` when it is not given.
WORKSPACE_ENV = "EVALTRAY_WORKSPACE"
#: The acting user: the CLI's ``-u/--user`` when it is not given.
USER_ENV = "EVALTRAY_USER"
#: The workflow state's database URL; overrides ``[state] url``.
DB_URL_ENV = "EVALTRAY_DB_URL"
#: Worker processes for ingest and scrub (default: the usable CPUs).
WORKERS_ENV = "EVALTRAY_WORKERS"
#: A vault key (urlsafe base64 of 32 bytes), for ``Vault.from_env``.
VAULT_KEY_ENV = "EVALTRAY_VAULT_KEY"
#: Overrides ``[ingest] scrub_max_field_chars``.
SCRUB_MAX_FIELD_CHARS_ENV = "EVALTRAY_SCRUB_MAX_FIELD_CHARS"


def env_workers(error: type[EvaltrayError] = WorkspaceError) -> int | None:
    """``$EVALTRAY_WORKERS`` as a whole number, or None where it is not set."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if not env:
        return None
    try:
        return int(env)
    except ValueError:
        raise error(f"{WORKERS_ENV} must be a whole number, got {env!r}") from None


def scrub_max_field_chars(settings: Settings) -> int:
    """``$EVALTRAY_SCRUB_MAX_FIELD_CHARS``, else ``[ingest] scrub_max_field_chars``; the same range for both."""
    env = os.environ.get(SCRUB_MAX_FIELD_CHARS_ENV, "").strip()
    if not env:
        return settings.scrub_max_field_chars
    what, in_range = _VALUES["scrub_max_field_chars"]
    try:
        value = int(env.replace("_", ""))
    except ValueError:
        value = None
    if value is None or not in_range(value):
        raise WorkspaceError(f"{SCRUB_MAX_FIELD_CHARS_ENV} must be {what}, got {env!r}")
    return value


def state_url(settings: Settings) -> str | None:
    """The workflow state's database: ``$EVALTRAY_DB_URL``, else ``[state] url``; None means the
    workspace's own SQLite file."""
    return os.environ.get(DB_URL_ENV) or settings.state_url


def env_vault_key() -> str | None:
    """``$EVALTRAY_VAULT_KEY``, or None where it is not set."""
    return os.environ.get(VAULT_KEY_ENV) or None


def cache_home() -> Path:
    """``$XDG_CACHE_HOME``, else ``~/.cache``: where per-user caches (unpacked models) live."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
