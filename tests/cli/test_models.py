"""The train command's options (parsing only: training itself is tested in tests/engine/training)."""

from __future__ import annotations

import pytest


def test_cli_background_swap_overrides_the_presets_share():
    from cli.main import build_parser, register_commands
    from cli.models import augment_config
    from engine.core.errors import ConfigError

    register_commands()
    parse = build_parser().parse_args
    assert augment_config(parse(["train", "d", "--augment", "cell"])).p_background_swap == 0.6
    cfg = augment_config(parse(["train", "d", "--augment", "cell", "--background-swap", "0.9"]))
    assert cfg.p_background_swap == 0.9 and cfg.hue_degrees == 22.0  # the rest of the preset stays
    with pytest.raises(ConfigError, match="probability"):
        augment_config(parse(["train", "d", "--background-swap", "1.5"]))


def test_train_from_store_fine_tunes_the_named_model_on_the_reviews_as_a_subprocess(tmp_path):
    """``train --from-store DB --init MODEL`` (with a class folder too): the lab's reviewed
    images of signed-off samples, the wizard's split and guards; the card says so."""
    import json

    from engine.store.results import ResultStore
    from tests.cli.test_accounts import main
    from tests.conftest import save_tiny_model
    from tests.engine.training.test_lab_data import class_folders, signed_off_sample

    env = {"ALLSIGHT_DATA_DIR": str(tmp_path / "appdata"), "ALLSIGHT_LOG_DIR": str(tmp_path / "logs")}
    import os

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALLSIGHT_")}, **env}
    base = save_tiny_model(tmp_path / "base", model_id="base")
    db = tmp_path / "lab.sqlite3"
    with ResultStore.open(db) as store:
        for s in range(6):
            final = ("Pro", "Pre", "Early")[s % 3]
            signed_off_sample(store, tmp_path / "store", f"S-{s}", [final] * 3, label=s % 3, seed=300 + 10 * s)
    folders = class_folders(tmp_path / "labelled", per_class=10)
    proc = main(env, "train", folders, "--from-store", db, "--init", base.weights_path, "--epochs", "1",
                "--batch-size", "8", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "store: Benign 0, Early 6, Pre 6, Pro 6" in proc.stderr
    card = json.loads((tmp_path / "out" / "baseline-lab.json").read_text())
    assert card["data_fingerprint"]["n_samples"] == 6 and card["training"]["recipe"]["distill"] == 1.0
    assert card["preprocess"]["image_size"] == 32  # the base model's, not the train command's default

    refused = main(env, "train", "--from-store", tmp_path / "missing.sqlite3", "--init", base.weights_path)
    assert refused.returncode == 2 and "no such result database" in refused.stderr
    nothing = main(env, "train")
    assert nothing.returncode == 2 and "--from-store" in nothing.stderr


def test_every_registered_command_is_dispatched_to_the_cli_by_main_py(tmp_path, monkeypatch):
    """main.py sends argv to the CLI only for names in COMMANDS; a command missing there would
    open the desktop app whenever a file of that name lies in the current folder."""
    import argparse

    from cli.main import COMMANDS, build_parser, register_commands

    register_commands()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == COMMANDS
