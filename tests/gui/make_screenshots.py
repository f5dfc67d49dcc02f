"""Regenerate docs/screenshots/*.png from synthetic smears (no patient data).

    QT_QPA_PLATFORM=offscreen python -m tests.gui.make_screenshots [OUT_DIR]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[2]


def _wait(app, condition, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        app.processEvents()
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError("the GUI did not reach the expected state")


def main(out_dir: str | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out = Path(out_dir) if out_dir else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ALLSIGHT_CONFIG_DIR"] = str(Path(tmp) / "config")
        os.environ["ALLSIGHT_LOG_DIR"] = str(Path(tmp) / "logs")
        folder = Path(tmp) / "S-2024-017"
        for i in range(7):
            write_image(folder / f"WBC-{i + 1:03d}.jpg", synthetic_smear(i % 4, 480, i), quality=92)
        (folder / "WBC-008.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated upload")

        from gui.app import create_application
        from gui.main_window import MainWindow
        from gui.samples import PENDING
        from gui.settings import Settings

        app = create_application([])
        win = MainWindow(Settings(operator_name="J. Smith"))
        win.show()
        win.open_paths([folder])
        panel = win.samples_panel
        _wait(app, lambda: panel.samples and all(im.state != PENDING for im in panel.samples[0].images))
        panel.patient_id_edit.setText("P-88213")
        panel.patient_id_edit.textEdited.emit("P-88213")
        panel.set_current_row(1)
        _wait(app, lambda: win.current_row == 1 and win.current_rgb is not None
              and win.preview_panel.displayed is not None
              and win.preview_panel.displayed.request == win.preview_panel.latest_request)
        win.preview_panel.set_stage("mask")
        app.processEvents()
        win.grab().save(str(out / "main_window.png"))

        preview = win.preview_panel
        preview.clip_spin.setValue(4.0)
        _wait(app, lambda: preview.displayed.config.clahe_clip_limit == 4.0)
        win.viewer_panel.act_mask.setChecked(True)
        _wait(app, win.viewer.has_mask)
        app.processEvents()
        win.grab().save(str(out / "preview.png"))
        win.close()
    print(f"screenshots written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
