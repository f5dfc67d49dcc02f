#!/usr/bin/env bash
# Build the PyInstaller app (one folder) and check that the packaged executable really works.
#
#     bash packaging/smoke_test.sh [lean|full] [SCRATCH_DIR]     # or ALLSIGHT_BUILD=full bash ...
#
# lean (the default; packaging/allsight.spec) is the classify-and-review app without torch, in
# SCRATCH/dist/ALLSight; full adds torch, torchvision and onnx for training, in
# SCRATCH/dist/ALLSight-full. The same checks run on either:
#   * the bundle: the shipped models (card, weights, ONNX graph), ONNX Runtime's native library and
#     Qt's xcb platform plugin are in it; lean: torch, torchvision and onnx are not;
#   * --version prints what `python main.py --version` prints from the source;
#   * the packaged CLI classifies 3 generated smears and a broken file: exit code 3, 3 ok rows and
#     an error row for broken.jpg;
#   * --backend torch: full: classifies the same way; lean: exit 2 with the one-line "needs
#     PyTorch" message;
#   * the packaged desktop app's --self-test (gui/self_test.py: the real window classifies 4
#     images through the batch queue) passes under Xvfb on Qt's real xcb plugin, never offscreen,
#     and writes SCRATCH/self_test.png (copied to $ALLSIGHT_CI_SCREENSHOT when that is set);
#   * the ONNX cache stays free of exported graphs: the shipped graphs were used;
#   * the folder's size is printed; lean: at most 500 MB.
# Settings, database, cache and logs all go to SCRATCH; the user's own folders are never touched.
#
# Needs .venv with the project and PyInstaller (pip install -e '.[packaging]'; for full, the
# 'train' extra too), xvfb-run (apt-get install xvfb xauth) and Qt's xcb libraries
# (sh packaging/bootstrap.sh app). packaging/ci_build.sh installs all of these, then runs this.
# Disk: ~0.5 GB (lean); full ~4.5 GB with a CUDA torch wheel (~1.5 GB with a CPU-only one).
set -euo pipefail

build="${ALLSIGHT_BUILD:-lean}"
case "${1:-}" in lean|full) build="$1"; shift ;; esac
case "$build" in lean|full) ;; *) echo "usage: bash packaging/smoke_test.sh [lean|full] [SCRATCH_DIR]" >&2; exit 2 ;; esac
scratch="${1:-$(mktemp -d)}"
mkdir -p "$scratch"
scratch="$(cd "$scratch" && pwd)"  # absolute, before moving to the repository root
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
name="ALLSight"; [ "$build" = full ] && name="ALLSight-full"
app_dir="$scratch/dist/$name"
app="$app_dir/$name"
lean_limit_mb=500

export ALLSIGHT_CONFIG_DIR="$scratch/config" ALLSIGHT_DATA_DIR="$scratch/data"
export ALLSIGHT_CACHE_DIR="$scratch/cache" ALLSIGHT_LOG_DIR="$scratch/log"

# --- helpers -------------------------------------------------------------------------------------
timings="" current="" current_start=0
phase() {  # phase "what" command...: run one step, note how long it took
  current="$1" current_start=$SECONDS
  shift
  echo "== $current"
  "$@"
  timings+="$(printf '  %-44s %5d s' "$current" $((SECONDS - current_start)))"$'\n'
  current=""
}
print_timings() {
  [ -z "$current" ] || timings+="$(printf '  %-44s %5d s  (failed)' "$current" $((SECONDS - current_start)))"$'\n'
  [ -z "$timings" ] || printf 'smoke test (%s) timings:\n%s' "$build" "$timings"
}
trap print_timings EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }

# classify_folder OUT.csv [ARGS...]: the packaged CLI on the sample folder; prints the exit code.
classify_folder() {
  local out="$1"
  shift
  set +e
  "$app" classify "$scratch/in" --out "$out" "$@" >"$out.log" 2>&1
  echo $?
  set -e
}

# expect_rows CSV: 4 rows (path,status,...): 3 ok and one error, for broken.jpg.
expect_rows() {
  local csv="$1" statuses
  statuses="$(awk -F, 'NR > 1 { n = split($1, p, "/"); print p[n] "=" $2 }' "$csv" | sort | tr '\n' ' ')"
  [ "$statuses" = "broken.jpg=error field0.jpg=ok field1.jpg=ok field2.jpg=ok " ] \
    || { cat "$csv"; fail "expected 3 ok rows and an error row for broken.jpg in $csv, got: $statuses"; }
}

# --- the steps -----------------------------------------------------------------------------------
build_app() {
  echo "building the $build app into $app_dir (log: $scratch/pyinstaller.log)"
  ALLSIGHT_BUILD="$build" ALLSIGHT_ONEFILE=0 "$python" -m PyInstaller packaging/allsight.spec --noconfirm \
    --distpath "$scratch/dist" --workpath "$scratch/build" --log-level WARN >"$scratch/pyinstaller.log" 2>&1 \
    || { tail -40 "$scratch/pyinstaller.log"; fail "PyInstaller failed (log: $scratch/pyinstaller.log)"; }
  [ -x "$app" ] || fail "no executable at $app"
}

check_bundle() {
  local internal="$app_dir/_internal" model kind
  for model in resnet18 baseline; do
    for kind in json safetensors onnx int8.onnx; do
      [ -f "$internal/resources/models/$model.$kind" ] || fail "resources/models/$model.$kind is not bundled"
    done
  done
  compgen -G "$internal/onnxruntime/capi/libonnxruntime*.so*" >/dev/null || fail "ONNX Runtime's native library is not bundled"
  [ -f "$internal/PySide6/Qt/plugins/platforms/libqxcb.so" ] || fail "Qt's xcb platform plugin is not bundled"
  if [ "$build" = lean ]; then
    for package in torch torchvision onnx; do
      [ ! -e "$internal/$package" ] || fail "the lean build contains $package"
    done
  else
    [ -d "$internal/torch" ] || fail "the full build has no torch"
    compgen -G "$internal/torchvision/*.so" >/dev/null || fail "torchvision's operator libraries are not bundled"
  fi
  pass "bundle: shipped models, ONNX Runtime, Qt xcb plugin$([ "$build" = lean ] && echo '; no torch, torchvision or onnx')"
}

make_sample() {  # 3 synthetic smears (the tests' generator) and a file that is not an image
  rm -rf "$scratch/in" && mkdir -p "$scratch/in"
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
}

check_version() {
  local expected packaged
  expected="$("$python" main.py --version)"
  packaged="$("$app" --version)"
  [ "$packaged" = "$expected" ] || fail "packaged --version says '$packaged', the source '$expected'"
  pass "--version: $packaged"
}

check_classify() {
  local code
  code="$(classify_folder "$scratch/results.csv")"
  [ "$code" -eq 3 ] || { cat "$scratch/results.csv.log"; fail "classify exit code $code, expected 3 (one broken file)"; }
  expect_rows "$scratch/results.csv"
  pass "packaged CLI classify: exit 3, 3 ok rows, an error row for broken.jpg"
}

check_torch_backend() {
  local code
  code="$(classify_folder "$scratch/results-torch.csv" --backend torch)"
  if [ "$build" = full ]; then
    [ "$code" -eq 3 ] || { cat "$scratch/results-torch.csv.log"; fail "classify --backend torch exit code $code, expected 3"; }
    expect_rows "$scratch/results-torch.csv"
    pass "packaged CLI classify --backend torch: exit 3, 3 ok rows, an error row for broken.jpg"
  else
    [ "$code" -eq 2 ] && grep -q "needs PyTorch" "$scratch/results-torch.csv.log" \
      || { cat "$scratch/results-torch.csv.log"; fail "lean classify --backend torch: exit code $code, expected 2 and 'needs PyTorch'"; }
    pass "lean classify --backend torch says in one line what to install: $(grep -m1 'needs PyTorch' "$scratch/results-torch.csv.log")"
  fi
}

check_self_test() {
  local shot="$scratch/self_test.png" code
  command -v xvfb-run >/dev/null || fail "xvfb-run is missing (apt-get install xvfb xauth, or run packaging/ci_build.sh)"
  rm -f "$shot"
  set +e
  env -u WAYLAND_DISPLAY QT_QPA_PLATFORM=xcb xvfb-run -a -e "$scratch/xvfb.err" -s "-screen 0 1600x1000x24" \
    timeout 300 "$app" --self-test --screenshot "$shot" >"$scratch/self_test.out" 2>&1
  code=$?
  set -e
  [ "$code" -eq 0 ] || { tail -30 "$scratch/self_test.out" "$scratch/xvfb.err"; fail "packaged --self-test exited $code"; }
  grep -q "^self-test passed: .*(Qt platform xcb)" "$scratch/self_test.out" \
    || { cat "$scratch/self_test.out"; fail "the self-test did not run on Qt's xcb platform"; }
  [ -s "$shot" ] || fail "no screenshot at $shot"
  grep "^self-test passed" "$scratch/self_test.out"
  if [ -n "${ALLSIGHT_CI_SCREENSHOT:-}" ]; then
    mkdir -p "$(dirname "$ALLSIGHT_CI_SCREENSHOT")" && cp "$shot" "$ALLSIGHT_CI_SCREENSHOT"
    echo "screenshot copied to $ALLSIGHT_CI_SCREENSHOT"
  fi
  pass "packaged desktop app --self-test under Xvfb (xcb); screenshot $shot"
}

check_no_export() {
  local exported
  exported="$(find "$ALLSIGHT_CACHE_DIR" -name '*.onnx' 2>/dev/null || true)"
  [ -z "$exported" ] || fail "ONNX graphs were exported instead of the shipped ones being used: $exported"
  pass "the ONNX cache holds no exported graph (the shipped graphs were used)"
}

check_size() {
  local mb
  mb="$(du -sm "$app_dir" | cut -f1)"
  du -sh "$app_dir"
  if [ "$build" = lean ]; then
    [ "$mb" -le "$lean_limit_mb" ] || fail "the lean folder is $mb MB, over the $lean_limit_mb MB limit"
    pass "lean folder size $mb MB (limit $lean_limit_mb MB)"
  else
    pass "full folder size $mb MB"
  fi
}

phase "build ($build, PyInstaller)" build_app
phase "bundle contents" check_bundle
phase "generate the sample" make_sample
phase "--version" check_version
phase "CLI classify (ONNX Runtime)" check_classify
phase "CLI classify --backend torch" check_torch_backend
phase "GUI --self-test (Xvfb, xcb)" check_self_test
phase "ONNX cache" check_no_export
phase "folder size" check_size
echo "PASS: the packaged $build app works ($app_dir)"
