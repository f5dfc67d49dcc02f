"""``main.py models ...``: list, import, activate (audited, refused without the permission),
rollback, export, delete and the classify default following the active model; run as a
subprocess, as IT would."""

from __future__ import annotations

import json

import pytest

from engine.core.identity import Role
from engine.store.results import ResultStore
from tests.cli.test_accounts import env, main  # noqa: F401  (the fixture and the runner)
from tests.conftest import save_tiny_model, synthetic_smear, write_image


@pytest.fixture
def tiny_file(tmp_path):
    return save_tiny_model(tmp_path / "from-the-other-lab", model_id="tiny-lab").weights_path


def test_import_activate_rollback_with_the_audit_trail(env, tiny_file, tmp_path):  # noqa: F811
    db = tmp_path / "lab.sqlite3"
    imported = main(env, "models", "import", tiny_file)
    assert imported.returncode == 0 and "installed tiny-lab@0.0.1" in imported.stdout
    listed = main(env, "models", "list")
    assert listed.returncode == 0
    lines = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in listed.stdout.splitlines()}
    assert lines["resnet18@1.4.0"].startswith("*") and "lab" in lines["tiny-lab@0.0.1"]

    refused = main(env, "models", "activate", "tiny-lab")  # no --reason
    assert refused.returncode == 2 and "--reason" in refused.stderr
    act = main(env, "models", "--db", db, "activate", "tiny-lab", "--reason", "fits our stain")
    assert act.returncode == 0, act.stderr
    assert "active model: tiny-lab@0.0.1" in act.stdout and "was resnet18@1.4.0" in act.stdout

    # classify without --model now uses the active model
    image = tmp_path / "field.jpg"
    write_image(image, synthetic_smear(1, 64, 0))
    out = tmp_path / "out.json"
    classified = main(env, "classify", image, "--json", out)
    assert classified.returncode == 0, classified.stderr
    assert '"tiny-lab"' in out.read_text()

    back = main(env, "models", "--db", db, "activate", "resnet18", "--reason", "rollback")
    assert back.returncode == 0 and "was tiny-lab@0.0.1" in back.stdout
    with ResultStore.open(db) as store:
        changes = store.audit(action="model_changed")
    assert [(e.details["model"], e.details["reason"]) for e in changes] == [("tiny-lab@0.0.1", "fits our stain"),
                                                                          ("resnet18@1.4.0", "rollback")]
    assert changes[0].details["previous_sha256"] == changes[1].details["sha256"]

    shown = json.loads(main(env, "models", "show", "tiny-lab").stdout)
    assert [p["reason"] for p in shown["promotions"]] == ["fits our stain"]
    shipped = json.loads(main(env, "models", "show", "resnet18").stdout)
    assert set(shipped["graphs"]) == {"fp32", "int8"}  # IT sees how the INT8 graph was checked
    assert shipped["graphs"]["int8"]["agreement"]["split"] == "test"
    exported = main(env, "models", "export", "tiny-lab", tmp_path / "stick")
    assert exported.returncode == 0 and (tmp_path / "stick" / "tiny-lab.safetensors").is_file()
    deleted = main(env, "models", "delete", "tiny-lab")
    assert deleted.returncode == 0 and "tiny-lab@0.0.1" not in main(env, "models", "list").stdout
    from pathlib import Path

    with ResultStore.open(Path(env["ALLSIGHT_DATA_DIR"]) / "allsight.sqlite3") as store:  # the app's database
        library_acts = [(e.action, e.details["model"]) for e in store.audit()
                        if e.action in ("model_installed", "model_deleted")]
    assert library_acts == [("model_installed", "tiny-lab@0.0.1"), ("model_deleted", "tiny-lab@0.0.1")]


def test_a_technician_may_not_change_the_model_and_nothing_changes(env, tiny_file, tmp_path):  # noqa: F811
    db = tmp_path / "lab.sqlite3"
    with ResultStore.open(db) as store:
        store.accounts.create("ada", "admin-pass-1", Role.ADMINISTRATOR, actor="it")
        store.accounts.create("tom", "tech-pass-22", Role.TECHNICIAN, actor="it")
        store.accounts.set_policy(accounts_required=True, actor="it")
    assert main(env, "models", "import", tiny_file).returncode == 0
    refused = main(env, "models", "--db", db, "--account", "tom", "activate", "tiny-lab", "--reason", "x",
                   password="tech-pass-22")
    assert refused.returncode == 2 and "change the model" in refused.stderr
    assert "* resnet18@1.4.0" in main(env, "models", "list").stdout  # still the active one
    ok = main(env, "models", "--db", db, "--account", "ada", "activate", "tiny-lab", "--reason", "validated",
              password="admin-pass-1")
    assert ok.returncode == 0, ok.stderr


def test_a_tampered_file_is_refused_on_import(env, tiny_file):  # noqa: F811
    blob = bytearray(tiny_file.read_bytes())
    blob[-1] ^= 0xFF
    tiny_file.write_bytes(bytes(blob))
    result = main(env, "models", "import", tiny_file)
    assert result.returncode == 2 and "corrupt or has been tampered" in result.stderr
    assert "tiny-lab" not in main(env, "models", "list").stdout
