#!/usr/bin/env bash
# CI's check of the packaged lean app (the last step of .ci/run, after the README's test command
# has set up .venv):
#   1. what a real window needs: Qt's xcb libraries (sh packaging/bootstrap.sh app; pip is then a
#      no-op) and the harness's virtual X server (xvfb, xauth), installed with apt-get if missing;
#   2. PyInstaller into .venv (pip install -e '.[packaging]');
#   3. packaging/smoke_test.sh lean: builds the lean app in a scratch folder outside the repository
#      and checks the packaged executable (version, CLI classify with a broken file, the desktop
#      app's --self-test on Qt's xcb plugin under Xvfb, no ONNX export, folder at most 500 MB).
#
#     bash packaging/ci_build.sh [SCRATCH_DIR]
#
# $ALLSIGHT_CI_SCREENSHOT: where to copy the self-test's screenshot of the window. A scratch folder
# made here (no SCRATCH_DIR) is removed when everything passed and kept, for a look, when not.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

scratch_given="${1:-}"
scratch="${scratch_given:-$(mktemp -d -t allsight-ci-XXXXXX)}"
mkdir -p "$scratch"
scratch="$(cd "$scratch" && pwd)"
case "$scratch/" in "$repo"/*) echo "ci_build: the scratch folder must be outside the repository: $scratch" >&2; exit 2 ;; esac

timings="" current="" current_start=0 started=$SECONDS
phase() {  # phase "what" command...: run one step, note how long it took
  current="$1" current_start=$SECONDS
  shift
  echo "==== $current"
  "$@"
  timings+="$(printf '  %-44s %5d s' "$current" $((SECONDS - current_start)))"$'\n'
  current=""
}
finish() {
  local code=$?
  [ -z "$current" ] || timings+="$(printf '  %-44s %5d s  (failed)' "$current" $((SECONDS - current_start)))"$'\n'
  printf 'ci_build timings:\n%s  %-44s %5d s\n' "$timings" "total" $((SECONDS - started))
  if [ "$code" -eq 0 ] && [ -z "$scratch_given" ]; then
    rm -rf "$scratch"
  elif [ "$code" -ne 0 ]; then
    echo "ci_build: FAILED (exit $code); scratch folder kept: $scratch" >&2
  fi
}
trap finish EXIT

system_for_a_window() {  # Qt's xcb libraries, through the project's own set-up script
  sh packaging/bootstrap.sh app
}

harness_tools() {  # xvfb-run (package xvfb) and the xauth it calls
  local missing=""
  command -v xvfb-run >/dev/null 2>&1 || missing="$missing xvfb"
  command -v xauth >/dev/null 2>&1 || missing="$missing xauth"
  if [ -n "$missing" ]; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "ci_build: installing$missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
  fi
  command -v xvfb-run >/dev/null && command -v xauth >/dev/null
}

install_pyinstaller() {
  .venv/bin/pip install -q -e '.[packaging]'
  .venv/bin/python -m PyInstaller --version
}

phase "system: bootstrap.sh app (Qt xcb libraries)" system_for_a_window
phase "system: xvfb, xauth" harness_tools
phase "pip install -e '.[packaging]'" install_pyinstaller
phase "smoke test of the lean app (build + checks)" bash packaging/smoke_test.sh lean "$scratch"
echo "PASS: ci_build: the packaged lean app builds and works"
