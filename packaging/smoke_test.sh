#!/usr/bin/env bash
# Build the PyInstaller app (one folder, quicker than one file) and check that it really works:
# the CLI classifies (the first run exports the model's ONNX copy, which needs torch and
# torchvision's operator libraries inside the bundle), a broken file becomes an error row, and
# the desktop app starts offscreen and loads the model (the export then runs in a child process
# of the frozen executable). Everything goes to a scratch folder; nothing is written to the
# user's real settings, cache or database.
#
#     pip install -e '.[packaging]' && bash packaging/smoke_test.sh [SCRATCH_DIR]
#
# Needs ~5 GB of disk with a CUDA torch wheel (~1.5 GB with a CPU-only one) and a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="${1:-$(mktemp -d)}"
mkdir -p "$scratch"
python="${PYTHON:-.venv/bin/python}"

ALLSIGHT_ONEFILE=0 "$python" -m PyInstaller packaging/allsight.spec --noconfirm \
  --distpath "$scratch/dist" --workpath "$scratch/build" --log-level WARN
app="$scratch/dist/ALLSight/ALLSight"

export ALLSIGHT_CACHE_DIR="$scratch/cache" ALLSIGHT_CONFIG_DIR="$scratch/config"
export ALLSIGHT_LOG_DIR="$scratch/log" ALLSIGHT_DATA_DIR="$scratch/data" QT_QPA_PLATFORM=offscreen
mkdir -p "$scratch/in"
"$python" - "$scratch/in" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from tests.conftest import synthetic_smear, write_image
folder = Path(sys.argv[1])
for i in range(3):
    write_image(folder / f"field{i}.jpg", synthetic_smear(i, 224, i), quality=92)
(folder / "broken.jpg").write_text("not an image")
PY

"$app" --version
set +e
"$app" classify "$scratch/in" --out "$scratch/results.csv"
code=$?
set -e
[ "$code" -eq 3 ] || { echo "FAIL: classify exit code $code, expected 3 (one broken file)"; exit 1; }
[ "$(grep -c ',ok,' "$scratch/results.csv")" -eq 3 ] || { echo "FAIL: expected 3 ok rows"; exit 1; }
grep -q 'broken.jpg,error,' "$scratch/results.csv" || { echo "FAIL: no error row for broken.jpg"; exit 1; }

rm -rf "$ALLSIGHT_CACHE_DIR"  # the app's warm-up must export again, in a child process
set +e
timeout 60 "$app" "$scratch/in" >"$scratch/app.out" 2>&1 &
app_pid=$!
for _ in $(seq 1 55); do
  grep -q "loaded on" "$ALLSIGHT_LOG_DIR/allsight.log" 2>/dev/null && break
  sleep 1
done
kill "$app_pid" 2>/dev/null
wait "$app_pid" 2>/dev/null
set -e
grep -q "loaded on" "$ALLSIGHT_LOG_DIR/allsight.log" \
  || { echo "FAIL: the app did not load the model"; tail -20 "$ALLSIGHT_LOG_DIR/allsight.log"; exit 1; }
grep "loaded on" "$ALLSIGHT_LOG_DIR/allsight.log" | tail -1
du -sh "$scratch/dist/ALLSight"
echo "PASS: packaged CLI and app work ($scratch)"
