"""The retraining job in its own folder and process: done with a comparison, cancelled, failed
with a clear message, and resumed after its process was killed; nothing outside the run folder
changes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.models.resolve import resolve_model_card
from engine.training import job
from engine.training.job import JobSpec
from tests.conftest import save_tiny_model
from tests.engine.training.test_lab_data import class_folders

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def spec(tmp_path) -> JobSpec:
    base = save_tiny_model(tmp_path / "base", model_id="base")
    folders = class_folders(tmp_path / "labelled", per_class=10)
    return JobSpec(folders=(str(folders),), init=str(base.path), epochs=2, batch_size=8, model_id="lab",
                   version="1.0.0", started_by="ada")


def test_a_job_trains_compares_and_leaves_the_active_model_alone(tmp_path, spec, capsys):
    run = tmp_path / "run"
    spec.write(run)
    active_before = resolve_model_card(None).weights_sha256
    niceness = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None
    assert job.run_job(run) == 0
    if niceness is not None:  # only the job's own process lowers its priority (main.py training-job)
        assert os.getpriority(os.PRIO_PROCESS, 0) == niceness
    state = job.read_state(run)
    assert state["state"] == "done" and Path(state["model_path"]).is_file()
    compare = json.loads((run / job.COMPARE_FILE).read_text())
    assert set(compare["lab_validation"]) == {"candidate", "current", "regressions"}
    assert compare["models"]["current"]["id"] == "base"
    events = job.read_events(run)
    assert [e["metrics"]["epoch"] for e in events if e.get("phase") == "validate"] == [1, 2]
    assert events[-1]["event"] == "done" and json.loads(capsys.readouterr().out.splitlines()[-1])["event"] == "done"
    assert resolve_model_card(None).weights_sha256 == active_before


def test_a_cancelled_job_says_so_and_saves_no_model(tmp_path, spec):
    run = tmp_path / "run"
    spec.write(run)
    (run / job.CANCEL_FILE).touch()
    assert job.run_job(run) == 130
    assert job.read_state(run)["state"] == "cancelled" and not (run / "lab.safetensors").exists()


def test_data_that_cannot_train_fails_the_job_with_the_reason(tmp_path, spec):
    run = tmp_path / "run"
    JobSpec(folders=(str(tmp_path / "nowhere"),), init=spec.init).write(run)
    assert job.run_job(run) == 2
    state = job.read_state(run)
    assert state["state"] == "failed" and "nowhere" in state["message"]


def test_a_killed_job_is_seen_as_interrupted_and_resumes_from_its_checkpoint(tmp_path, spec):
    run = tmp_path / "run"
    JobSpec(**{**spec.__dict__, "epochs": 4}).write(run)
    env = {**os.environ, "ALLSIGHT_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "main.py", "training-job", str(run)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if '"phase": "validate"' in line:
                break
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # as a power cut would
    finally:
        proc.wait(timeout=60)
    assert job.interrupted(run)
    assert job.run_job(run) == 0
    phases = [e.get("phase") for e in job.read_events(run)]
    assert "resumed" in phases
    epochs = [e["metrics"]["epoch"] for e in job.read_events(run) if e.get("phase") == "validate"]
    assert epochs[-1] == 4 and len(epochs) < 6  # later epochs only, not all four again


def test_a_disk_that_fills_fails_the_job_with_a_clear_message(tmp_path, spec, monkeypatch):
    import errno

    from engine.training import train as train_module

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
        yield  # a generator, as train() is

    monkeypatch.setattr(train_module, "train", full_disk)
    run = tmp_path / "run"
    spec.write(run)
    active_before = resolve_model_card(None).weights_sha256
    assert job.run_job(run) == 2
    message = job.read_state(run)["message"]
    assert "the disk is full" in message and "unchanged" in message
    assert resolve_model_card(None).weights_sha256 == active_before
