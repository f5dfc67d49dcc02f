"""``main.py models publish|sync``: a model shared through the lab's PostgreSQL database reaches
another workstation (its own data folder), a rollback follows, and a model changed in the
database is refused there with one line; run as subprocesses, as IT would."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.store.results import ResultStore
from tests.cli.test_accounts import env, main  # noqa: F401  (the fixture and the runner)
from tests.conftest import save_tiny_model


@pytest.fixture
def tiny_file(tmp_path):
    return save_tiny_model(tmp_path / "trained", model_id="tiny-lab").weights_path


def active_line(env_: dict[str, str]) -> str:
    listed = main(env_, "models", "list")
    assert listed.returncode == 0, listed.stderr
    return next(line for line in listed.stdout.splitlines() if line.startswith("*"))


def test_publish_activate_sync_and_roll_back_across_two_workstations(env, tiny_file, tmp_path, pg_url):  # noqa: F811
    desk_b = {**env, "ALLSIGHT_DATA_DIR": str(tmp_path / "desk-b")}
    assert main(env, "models", "import", tiny_file).returncode == 0

    refused = main(env, "models", "publish", "tiny-lab", "--activate", "--db", pg_url)
    assert refused.returncode == 2 and "--activate needs --reason" in refused.stderr
    shared = main(env, "models", "publish", "tiny-lab", "--activate", "--reason", "validated", "--db", pg_url)
    assert shared.returncode == 0, shared.stderr
    assert "published: tiny-lab@0.0.1" in shared.stdout and "in the lab database postgresql://" in shared.stdout
    assert "the lab's active model is now tiny-lab@0.0.1 (was none)" in shared.stdout
    assert active_line(env).split()[1] == "tiny-lab@0.0.1"  # the promoting workstation follows at once

    synced = main(desk_b, "models", "--db", pg_url, "sync")  # --db before the command works too
    assert synced.returncode == 0, synced.stderr
    assert "tiny-lab@0.0.1 was installed from the lab database and activated (was resnet18@" in synced.stdout
    assert active_line(desk_b).split()[1] == "tiny-lab@0.0.1"
    again = main(desk_b, "models", "sync", "--db", pg_url)
    assert again.returncode == 0 and "is active on this workstation" in again.stdout

    back = main(env, "models", "publish", "baseline", "--activate", "--reason", "rollback", "--db", pg_url)
    assert back.returncode == 0 and "(was tiny-lab@0.0.1)" in back.stdout, back.stderr
    assert main(desk_b, "models", "sync", "--db", pg_url).returncode == 0
    assert active_line(desk_b).split()[1].startswith("baseline@")
    with ResultStore.open(pg_url) as lab:
        assert [h.reason for h in lab.lab_model_history()] == ["validated", "rollback"]
        assert [e.action for e in lab.audit() if e.action.endswith("_lab_model")] == [
            "publish_lab_model", "activate_lab_model", "publish_lab_model", "activate_lab_model"]


def test_a_model_changed_in_the_lab_database_is_refused_in_one_line(env, tiny_file, tmp_path, pg_url):  # noqa: F811
    assert main(env, "models", "import", tiny_file).returncode == 0
    assert main(env, "models", "publish", "tiny-lab", "--activate", "--reason", "validated",
                "--db", pg_url).returncode == 0
    with ResultStore.open(pg_url) as lab, lab._db.write() as conn:  # as the database's owner could
        conn.execute("DROP TRIGGER lab_model_files_no_update ON lab_model_files")
        conn.execute("UPDATE lab_model_files SET content = ? WHERE name = 'tiny-lab.safetensors'",
                     (b"not the weights",))
    desk_c = {**env, "ALLSIGHT_DATA_DIR": str(tmp_path / "desk-c")}
    refused = main(desk_c, "models", "sync", "--db", pg_url)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "tiny-lab 0.0.1" in lines[0] and "nothing was installed" in lines[0]
    assert active_line(desk_c).split()[1].startswith("resnet18@")
    assert not list(Path(desk_c["ALLSIGHT_DATA_DIR"]).glob("models/tiny-lab*"))
