"""``main.py --self-test``: the real window classifies a generated sample through the batch
queue and says so in one line; nothing lands in the user's folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_the_self_test_classifies_a_sample_and_leaves_the_user_folders_alone(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    user = [Path(env[f"ALLSIGHT_{kind}_DIR"]) for kind in ("CONFIG", "DATA", "LOG")]
    before = [_files(f) for f in user]
    shot = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, "main.py", "--self-test", "--screenshot", str(shot)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("self-test passed: 4 images classified by ") and "offscreen" in proc.stdout
    assert shot.stat().st_size > 10_000
    assert [_files(f) for f in user] == before


def test_a_failing_self_test_exits_1_with_the_reason(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "ALLSIGHT_BACKEND": "no-such-backend"}
    proc = subprocess.run([sys.executable, "main.py", "--self-test"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    assert proc.returncode == 1 and "self-test FAILED" in proc.stderr, proc.stdout + proc.stderr
