"""The same files become the same stored sample from either front end: ``classify --db`` and the
app share one naming rule (engine.store.results.ResultStore.register_sample)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.store.results import ResultStore, default_db_path
from tests.gui.conftest import make_sample_folder, open_sample, wait_classified

REPO = Path(__file__).resolve().parents[2]


def cli_classify(model: Path, out: Path, *folders: Path) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "main.py", "classify", *map(str, folders), "--model", str(model), "--device", "cpu",
         "--db", str(default_db_path()), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)  # env: the test's user folders
    assert run.returncode == 0, run.stderr
    return run


def stored_ids() -> list[str]:
    with ResultStore.open(default_db_path()) as store:
        return sorted(s.sample_id for s in store.list_samples())


def opened_once(window, folder: Path) -> None:
    from gui.workbench import PENDING

    listed = [s for s in window.samples_panel.samples if s.folder == folder]
    assert len(listed) == 1, f"{folder} is listed {len(listed)} times"
    assert all(im.state != PENDING for im in listed[0].images)
    assert window.samples_panel.current_sample() is listed[0]


def test_the_app_adopts_the_samples_classify_stored(qtbot, wf_window, tiny_model_path, tmp_path):
    day1 = make_sample_folder(tmp_path / "day1", "S-001", count=2, size=48)
    day2 = make_sample_folder(tmp_path / "day2", "S-001", count=3, size=48)  # same name, other patient
    run = cli_classify(tiny_model_path, tmp_path / "r.csv", day1, day2)
    assert "'S-001 (2)'" in run.stderr and stored_ids() == ["S-001", "S-001 (2)"]

    # The window's live updates may list the CLI's two samples before the folder is opened, or
    # not yet: either way day2 is listed once, as the CLI's sample, with its thumbnails decoded.
    wf_window.open_paths([day2])
    qtbot.waitUntil(lambda: opened_once(wf_window, day2), timeout=15000)
    sample = wf_window.samples_panel.current_sample()
    wf_window.classify_current()
    wait_classified(qtbot, wf_window, sample)
    assert sample.store_id == sample.sample_id == "S-001 (2)"  # the CLI's sample of that folder
    assert stored_ids() == ["S-001", "S-001 (2)"]  # nothing new, nothing merged
    with ResultStore.open(default_db_path()) as store:
        assert len(store.predictions("S-001 (2)")) == 3 and len(store.predictions("S-001")) == 2


def test_classify_finds_the_sample_the_app_stored(qtbot, wf_window, tiny_model_path, tmp_path):
    folder = make_sample_folder(tmp_path / "ward", "S-002", count=2, size=48)
    other = make_sample_folder(tmp_path / "elsewhere", "S-002", count=1, size=48)
    sample = open_sample(qtbot, wf_window, folder)
    wf_window.classify_current()
    wait_classified(qtbot, wf_window, sample)
    assert sample.store_id == "S-002"

    run = cli_classify(tiny_model_path, tmp_path / "r.csv", folder, other)
    assert "sample S-002: 2 image(s), 2 already in the result store, 0 to classify" in run.stderr
    assert "sample S-002 (2): 1 image(s), 0 already in the result store, 1 to classify" in run.stderr
    assert stored_ids() == ["S-002", "S-002 (2)"]
