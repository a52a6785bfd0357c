"""Workspace settings: the seeds' defaults, refusals that name the key, and where the environment wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from evaltray.cli import cli
from evaltray.core.errors import WorkspaceError
from evaltray.core.settings import (
    SETTINGS_FILE,
    Settings,
    cache_home,
    env_vault_key,
    env_workers,
    render_settings,
    state_url,
)
from evaltray.core.store import Workspace


def write(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / SETTINGS_FILE).write_text(text, encoding="utf-8")
    return root / SETTINGS_FILE


def test_defaults_are_the_seeds() -> None:
    s = Settings()
    assert (s.holdout, s.pr_subset_size) == (0.2, 50)
    assert s.source_mix == {"production": 0.50, "synthetic": 0.30, "sme": 0.15, "user_feedback": 0.05}
    assert (s.human_agreement, s.judge_agreement, s.stale_after_days, s.contamination_warn) == (0.80, 0.85, 180, 0.10)
    assert (s.sets, s.default_set, s.slice_by, s.write_expected_first) == (["main", "edge"], "main", ["feature"], True)
    assert (s.scrub, s.scrub_entities, s.vault_key, s.state_url, s.payload_sample) == (True, None, None, None, 1.0)


def test_the_file_init_writes_loads_as_the_defaults_with_its_owner(tmp_path: Path) -> None:
    write(tmp_path, render_settings("shop", "alice"))
    assert Settings.load(tmp_path) == Settings(
        name="shop", default_user="alice", label_owner="alice", composition_owner="alice"
    )


def test_an_empty_file_is_all_defaults_and_a_missing_one_says_run_init(tmp_path: Path) -> None:
    write(tmp_path, "")
    assert Settings.load(tmp_path) == Settings()
    with pytest.raises(WorkspaceError) as err:
        Settings.load(tmp_path / "nowhere")
    assert str(err.value) == f"{tmp_path / 'nowhere' / SETTINGS_FILE}: not found; run `evaltray init` first"


def test_a_file_not_in_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_bytes('[workspace]\nname = "café"\n'.encode("latin-1"))
    with pytest.raises(WorkspaceError) as err:
        Settings.load(tmp_path)
    assert str(err.value) == f"{tmp_path / SETTINGS_FILE}: not UTF-8 text (byte 23); save it as UTF-8"


FRACTION = "a number between 0 and 1 (both excluded)"
SHARE = "a number from 0 to 1"
CASES = "a whole number of cases, 0 or more"
DAYS = "a whole number of days, 1 or more"
SETS = "a list of set names (lowercase letters, digits, _ and -, at most 64, starting with a letter or digit; each names files), each once"
ENTITIES = 'a list of entity names, e.g. ["EMAIL", "PHONE"]'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[release]\nholdot = 0.3\n", "unknown setting release.holdot"),
        ("[relase]\nholdout = 0.3\n", "unknown table(s) relase"),
        ("name = 'x'\n", "unknown table(s) name"),
        ("release = 3\n", "[release] must be a table"),
        ("[release]\nholdout = '0.2'\n", f"release.holdout must be {FRACTION}, got '0.2'"),
        ("[release]\nholdout = 'twenty'\n", f"release.holdout must be {FRACTION}, got 'twenty'"),
        ("[release]\nholdout = 1.5\n", f"release.holdout must be {FRACTION}, got 1.5"),
        ("[release]\nholdout = true\n", f"release.holdout must be {FRACTION}, got True"),
        ("[release]\npr_subset_size = 50.5\n", f"release.pr_subset_size must be {CASES}, got 50.5"),
        ("[release]\npr_subset_size = -1\n", f"release.pr_subset_size must be {CASES}, got -1"),
        ("[workspace]\nsets = 'main'\n", f"workspace.sets must be {SETS}, got 'main'"),
        ("[workspace]\nsets = []\n", f"workspace.sets must be {SETS}, got []"),
        ("[workspace]\nsets = ['main', 'main']\n", f"workspace.sets must be {SETS}, got ['main', 'main']"),
        ("[workspace]\nsets = ['main', '../../x']\n", f"workspace.sets must be {SETS}, got ['main', '../../x']"),
        ("[workspace]\nname = ' '\n", "workspace.name must be a workspace name, got ' '"),
        ("[owners]\nlabel = ''\n", "owners.label must be a user name, got ''"),
        (
            "[labeling]\nguide_version = 2\n",
            'labeling.guide_version must be the labeling guide\'s version as text, e.g. "1", got 2',
        ),
        (
            "[labeling]\nslice_by = ['feature', 'feature']\n",
            "labeling.slice_by must be a list of label keys, each once, got ['feature', 'feature']",
        ),
        ("[thresholds]\nstale_after_days = -1\n", f"thresholds.stale_after_days must be {DAYS}, got -1"),
        ("[thresholds]\nstale_after_days = 0\n", f"thresholds.stale_after_days must be {DAYS}, got 0"),
        ("[thresholds]\nhuman_agreement = 80\n", f"thresholds.human_agreement must be {SHARE}, got 80"),
        ("[thresholds]\njudge_agreement = -0.1\n", f"thresholds.judge_agreement must be {SHARE}, got -0.1"),
        ("[thresholds]\ncontamination_warn = 'low'\n", f"thresholds.contamination_warn must be {SHARE}, got 'low'"),
        ("[ingest]\noutlier_quantile = 1\n", f"ingest.outlier_quantile must be {FRACTION}, got 1"),
        ("[ingest]\npayload_sample = 0\n", "ingest.payload_sample must be a number above 0, at most 1, got 0"),
        ("[ingest]\nscrub_entities = ['EMAIL', 3]\n", f"ingest.scrub_entities must be {ENTITIES}, got ['EMAIL', 3]"),
        ("[ingest]\nscrub = 'yes'\n", "ingest.scrub must be true or false, got 'yes'"),
        ("[state]\nurl = 5\n", "state.url must be a database URL, got 5"),
        ("[source_mix]\nproduction = 'half'\n", f"source_mix.production must be {SHARE}, got 'half'"),
        ("[source_mix]\nproduction = 1.5\nsme = -0.5\n", f"source_mix.production must be {SHARE}, got 1.5"),
        ("[source_mix]\nproduction = 0.5\n", "source_mix must add up to 1.0, got 0.5"),
        ("[release]\nholdout = 1\n", f"release.holdout must be {FRACTION}, got 1"),
        ("[workspace]\ndefault_set = 'gold'\n", "workspace.default_set 'gold' is not in workspace.sets"),
        ("[release\n", "Expected ']' at the end of a table declaration (at line 1, column 9)"),
    ],
)
def test_a_setting_no_run_could_use_is_an_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WorkspaceError) as err:
        Settings.load(tmp_path)
    assert str(err.value) == f"{path}: {message}"


def test_every_key_init_writes_refuses_a_value_of_no_kind_naming_the_key(tmp_path: Path) -> None:
    """An inline table fits no setting: each key, the commented ones included, must name itself refusing it."""
    table, keys = "", []
    for line in render_settings("shop", "alice").splitlines():
        if line.startswith("["):
            table = line.split("]")[0][1:]
        elif "=" in line:
            keys.append((table, line.removeprefix("# ").split("=")[0].strip()))
    assert len(keys) == 31  # four of them in [source_mix]; overlap, control_rate, control_accuracy the newest
    for table, key in keys:
        path = write(tmp_path, f"[{table}]\n{key} = {{}}\n")
        with pytest.raises(WorkspaceError) as err:
            Settings.load(tmp_path)
        assert str(err.value).startswith(f"{path}: {table}.{key} must be "), (table, key)
        assert str(err.value).endswith(", got {}"), (table, key)


# ------------------------------------------------------------------------------------- the environment


def test_the_database_url_from_the_environment_beats_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALTRAY_DB_URL", raising=False)
    assert state_url(Settings()) is None
    assert state_url(Settings(state_url="sqlite:///file.db")) == "sqlite:///file.db"
    monkeypatch.setenv("EVALTRAY_DB_URL", "sqlite:///env.db")
    assert state_url(Settings(state_url="sqlite:///file.db")) == "sqlite:///env.db"
    monkeypatch.setenv("EVALTRAY_DB_URL", "")  # set but empty: not set
    assert state_url(Settings(state_url="sqlite:///file.db")) == "sqlite:///file.db"


def test_the_other_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EVALTRAY_WORKERS", raising=False)
    monkeypatch.delenv("EVALTRAY_VAULT_KEY", raising=False)
    assert (env_workers(), env_vault_key()) == (None, None)
    monkeypatch.setenv("EVALTRAY_WORKERS", "3")
    monkeypatch.setenv("EVALTRAY_VAULT_KEY", "k3y")
    assert (env_workers(), env_vault_key()) == (3, "k3y")
    monkeypatch.setenv("EVALTRAY_WORKERS", "3.5")
    with pytest.raises(WorkspaceError, match=r"^EVALTRAY_WORKERS must be a whole number, got '3.5'$"):
        env_workers()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_home() == tmp_path / ".cache"


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.stdout + result.stderr


def test_cli_user_and_workspace_option_beats_environment_beats_settings(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws", user="alice").close()
    Workspace.init(tmp_path / "other", user="olga").close()
    ws = str(tmp_path / "ws")
    # users add needs an admin: alice (the default user) is one, the others are not registered
    assert run("-w", ws, "users", "add", "bob", "--role", "labeler") == "bob: labeler\n"
    assert run("-w", ws, "users", "add", "carl", "--role", "labeler", env={"EVALTRAY_USER": "mallory"}) == (
        "Error: user 'mallory' is not registered; an admin adds them with `evaltray user add mallory --role labeler`\n"
    )
    assert (
        run("-w", ws, "-u", "alice", "users", "add", "carl", "--role", "labeler", env={"EVALTRAY_USER": "mallory"})
        == "carl: labeler\n"
    )
    # the workspace: -w, else $EVALTRAY_WORKSPACE (cwd is tmp_path, which holds none)
    assert "olga" in run("users", "list", env={"EVALTRAY_WORKSPACE": str(tmp_path / "other")})
    assert "carl" in run("-w", ws, "users", "list", env={"EVALTRAY_WORKSPACE": str(tmp_path / "other")})


def test_cli_database_url_environment_beats_the_settings_file(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", user="alice")
    ws.close()
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    # a fresh database there: no user yet, so alice is not registered in it
    assert run("-w", str(ws.root), "users", "list", "--json", env={"EVALTRAY_DB_URL": elsewhere}) == "[]\n"
    assert (tmp_path / "elsewhere.db").exists()
    assert '"alice"' in run("-w", str(ws.root), "users", "list", "--json")
