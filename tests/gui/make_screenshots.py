"""Regenerate docs/screenshots/*.png from synthetic smears (no patient data).

    QT_QPA_PLATFORM=offscreen python -m tests.gui.make_screenshots [OUT_DIR]

Writes main_window.png and preview.png (the preprocessing preview), queue_running.png (a batch
in progress), results_summary.png (a classified sample with its summary) and review.png (review
in progress, with the Grad-CAM heat map), and the sign-in, sign-off, accounts and change-password
dialogs, the model manager (models.png), the settings (settings.png) and every step of the retraining wizard
(retrain_*.png). The classification screenshots use the shipped
ResNet-18 when it is installed, otherwise a small demo model trained here in a few seconds on
synthetic images (so the numbers in those screenshots mean nothing). For the queue screenshot
the demo model is slowed to about the speed of the ResNet-18 on a laptop CPU, so the batch is
still running when the picture is taken.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[2]


def _wait(app, condition, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        app.processEvents()
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError("the GUI did not reach the expected state")


def _settle(app, seconds: float = 0.3) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        app.processEvents()
        time.sleep(0.02)


def demo_model(tmp: Path) -> str:
    """The shipped ResNet-18 if installed, else a small baseline trained on synthetic smears."""
    from engine.models.resolve import SHIPPED_MODELS_DIR

    if (SHIPPED_MODELS_DIR / "resnet18.json").is_file():
        return "resnet18"
    from engine.training.train import TrainConfig, train

    data = tmp / "train-data"
    for label, name in enumerate(("Benign", "Early", "Pre", "Pro")):
        for i in range(40):
            write_image(data / name / f"WBC-{name}-{i + 1:03d}.jpg", synthetic_smear(label, 256, 100 + i), quality=92)
    cfg = TrainConfig(data_dir=str(data), arch="baseline", epochs=12, image_size=48, batch_size=32,
                      out_dir=str(tmp / "demo-model"), model_id="demo", model_version="0.1.0-demo", workers=1,
                      precise_bn_images=64, patience=50)
    last = None
    for progress in train(cfg):
        last = progress
    return str(last.metrics["model_path"])


def access_screenshots(app, out: Path) -> None:
    """sign_in.png, sign_off.png, accounts.png and change_password.png, on a result database of
    its own with three accounts and accounts required."""
    from engine.core.identity import Role
    from engine.store.results import ResultStore, default_db_path
    from gui.accounts_dialog import AccountForm, AccountsDialog
    from gui.sign_in_dialog import SignInDialog
    from gui.sign_off_dialog import SignOffDialog

    db = default_db_path().with_name("access-demo.sqlite3")
    db.parent.mkdir(parents=True, exist_ok=True)
    with ResultStore.open(db) as store:
        store.accounts.create("ada", "admin-pass-1", Role.ADMINISTRATOR, "Ada Admin", actor="it")
        store.accounts.create("tom", "tech-pass-22", Role.TECHNICIAN, "Tom Tech", actor="it")
        store.accounts.create("rita", "review-pass-3", Role.REVIEWER, "Rita Reviewer", actor="it")
        store.accounts.set_policy(accounts_required=True, independent_reviewer_required=True, actor="it")

        def shot(widget, name: str) -> None:
            widget.show()
            _settle(app, 0.2)
            widget.grab().save(str(out / name))
            widget.close()

        shot(SignInDialog(store, username="tom"), "sign_in.png")
        shot(SignOffDialog(None, sample_id="S-2024-017", signer="Rita Reviewer (rita, reviewer)",
                           statement="I have reviewed the 11 images of sample S-2024-017 and confirm the results.",
                           needs_password=True, sign=lambda password: None), "sign_off.png")
        store.sign_in("ada", "admin-pass-1")
        shot(AccountsDialog(store, "ada"), "accounts.png")
        shot(AccountForm(None, username="tom", own=True), "change_password.png")


def models_screenshot(app, out: Path, tmp: Path) -> None:
    """models.png: Tools ▸ Models… with the shipped models and a lab model promoted (a tiny demo
    model: its figures mean nothing)."""
    from engine.models.library import ModelLibrary
    from engine.store.results import ResultStore, default_db_path
    from gui.models_dialog import ModelsDialog
    from tests.conftest import save_tiny_model

    library = ModelLibrary(verify_network=False)
    lab = library.install(save_tiny_model(tmp / "lab-model", model_id="resnet18-ourlab").weights_path,
                          by="ada", origin="trained by the retraining wizard")
    library.activate(lab.ref, by="ada", reason="validated on 180 reviewed fields of our stain")
    with ResultStore.open(default_db_path()) as store:
        dialog = ModelsDialog(library, store, "ada")
        dialog.select(lab.ref)
        dialog.show()
        _settle(app, 0.2)
        dialog.grab().save(str(out / "models.png"))
        dialog.close()


def settings_screenshot(app, out: Path) -> None:
    """settings.png: Edit ▸ Settings…, with the Precision row (INT8 with its fp32 check, or fp32)."""
    from gui.settings import Settings
    from gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(lab_name="Demo Lab"))
    dialog.show()
    _settle(app, 0.2)
    dialog.grab().save(str(out / "settings.png"))
    dialog.close()


def wizard_screenshots(app, out: Path, tmp: Path) -> None:
    """retrain_data.png … retrain_promote.png: every step of Tools ▸ Retrain model…, on
    synthetic class folders with a tiny demo model (its figures mean nothing)."""
    from engine.models.library import ModelLibrary
    from engine.store.results import ResultStore, default_db_path
    from gui.retrain_wizard import RetrainWizard
    from gui.workers import WorkerPool
    from tests.conftest import save_tiny_model
    from tests.engine.training.test_lab_data import class_folders

    library = ModelLibrary(verify_network=False)
    base = library.install(save_tiny_model(tmp / "wizard-base", model_id="demo-base").weights_path, by="it",
                           origin="demo")
    library.activate(base.ref, by="it", reason="screenshots")
    folders = class_folders(tmp / "our-lab-labelled", per_class=14)
    with ResultStore.open(default_db_path()) as store:
        workers = WorkerPool()
        wizard = RetrainWizard(library, store, workers, "ada")
        wizard.show()

        def grab(name: str) -> None:
            _settle(app, 0.3)
            wizard.grab().save(str(out / name))

        wizard.data_page.add_folder(folders)
        _wait(app, wizard.data_page.isComplete)
        grab("retrain_data.png")
        wizard.next()
        wizard.settings_page.epochs_spin.setValue(8)
        grab("retrain_settings.png")
        wizard.next()
        page = wizard.training_page
        _wait(app, lambda: len(page.plot.val_acc) >= 3 or page.isComplete(), timeout=300)
        grab("retrain_training.png")
        _wait(app, page.isComplete, timeout=300)
        wizard.next()
        grab("retrain_compare.png")
        wizard.next()
        grab("retrain_promote.png")
        wizard.reject()
        workers.shutdown()
        library.activate("resnet18", by="it", reason="screenshots done")


def main(out_dir: str | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out = Path(out_dir) if out_dir else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["ALLSIGHT_CONFIG_DIR"] = str(tmp_path / "config")
        os.environ["ALLSIGHT_LOG_DIR"] = str(tmp_path / "logs")
        os.environ["ALLSIGHT_DATA_DIR"] = str(tmp_path / "data")
        folder = tmp_path / "S-2024-017"
        for i in range(11):
            write_image(folder / f"WBC-{i + 1:03d}.jpg", synthetic_smear((1, 1, 2, 0, 1, 3)[i % 6], 256, i), quality=92)
        (folder / "WBC-012.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated upload")
        model = demo_model(tmp_path)
        big = tmp_path / "S-2024-018"
        for i in range(120):
            write_image(big / f"WBC-{i + 1:03d}.jpg", synthetic_smear((0, 0, 0, 1, 0, 2)[i % 6], 256, 500 + i),
                        quality=90)
        third = tmp_path / "S-2024-019"
        for i in range(40):
            write_image(third / f"WBC-{i + 1:03d}.jpg", synthetic_smear(i % 4, 256, 900 + i), quality=90)

        from gui.app import create_application
        from gui.main_window import DEFAULT_SIZE, MainWindow
        from gui.scrolling import show_panel
        from gui.settings import Settings
        from gui.workbench import PENDING

        app = create_application([])
        win = MainWindow(Settings(active_model=model, lab_name="Demo Lab",
                                  review_threshold_override=0.8))
        win.resize(*DEFAULT_SIZE)  # the offscreen "screen" is 800 x 800: the window would shrink to fit it
        win.show()
        _wait(app, lambda: win.history_loaded)
        win.open_paths([folder])
        panel = win.samples_panel
        _wait(app, lambda: panel.samples and all(im.state != PENDING for im in panel.samples[0].images))
        panel.patient_id_edit.setText("P-88213")
        panel.patient_id_edit.textEdited.emit("P-88213")
        panel.set_current_row(1)
        show_panel(win.side_tabs, win.preview_panel)
        _wait(app, lambda: win.current_row == 1 and win.current_rgb is not None
              and win.preview_panel.displayed is not None
              and win.preview_panel.displayed.request == win.preview_panel.latest_request)
        win.preview_panel.set_stage("mask")
        _settle(app)
        win.grab().save(str(out / "main_window.png"))

        preview = win.preview_panel
        preview.clip_spin.setValue(4.0)
        _wait(app, lambda: preview.displayed.config.clahe_clip_limit == 4.0)
        win.viewer_panel.act_mask.setChecked(True)
        _wait(app, win.viewer.has_mask)
        _settle(app)
        win.grab().save(str(out / "preview.png"))
        win.viewer_panel.act_mask.setChecked(False)
        preview.set_stage("original")

        # Classify the first sample; results with the summary.
        small = panel.current_sample()
        win.classify_current()
        _wait(app, lambda: not win.batch.running and win.results_panel.model.rowCount() == len(small.images))
        panel.set_current_row(0)
        _wait(app, lambda: win.current_row == 0 and win.current_rgb is not None)
        _settle(app, 0.5)
        win.grab().save(str(out / "results_summary.png"))

        # Review in progress: two images reviewed, the next flagged one selected, heat map on.
        rp = win.results_panel
        flagged = [r for r in rp.model.rows if r.to_review and r.ok]
        for r in flagged[:2]:
            other = next(c for c in ("Pre", "Early", "Benign") if c != r.predicted_class)
            win.review(r.path, r.predicted_class if r is flagged[0] else other)
        rp.table.setFocus()
        remaining = [r for r in rp.model.rows if r.ok and r.to_review] or [r for r in rp.model.rows if r.ok]
        rp.select_path(remaining[0].path)
        _wait(app, lambda: win.current_rgb is not None and rp.current_result() is not None
              and win.current_path is not None and str(win.current_path).endswith(rp.current_result().file_name))
        win.viewer_panel.act_heatmap.setChecked(True)
        _wait(app, win.viewer.has_heatmap)
        _settle(app, 0.5)
        win.grab().save(str(out / "review.png"))
        win.viewer_panel.act_heatmap.setChecked(False)

        # A batch in progress: a bigger sample (and a third one waiting behind it).
        if model != "resnet18":
            from engine.inference.classifier import Classifier

            original = Classifier._classify_prepared

            def resnet_speed(self, batch):
                time.sleep(0.035 * len(batch))
                return original(self, batch)

            Classifier._classify_prepared = resnet_speed
        win.batch.batch_size = 8
        win.open_paths([big])
        _wait(app, lambda: len(panel.samples) == 2 and panel.current_sample().sample_id == "S-2024-018")
        job = win.classify_current()
        win.open_paths([third])
        _wait(app, lambda: len(panel.samples) == 3 and panel.current_sample().sample_id == "S-2024-019")
        win.queue_current()
        panel.select_sample(panel.samples[1])
        _wait(app, lambda: job.done >= 48, timeout=120)
        _settle(app, 0.25)
        win.grab().save(str(out / "queue_running.png"))
        win.close()
        access_screenshots(app, out)
        models_screenshot(app, out, tmp_path)
        settings_screenshot(app, out)
        wizard_screenshots(app, out, tmp_path)
    print(f"screenshots written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
