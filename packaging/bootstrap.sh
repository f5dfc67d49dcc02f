#!/bin/sh
# Set up ALLSight on a bare machine: what the OS lacks, then the Python environment in .venv.
#
#     sh packaging/bootstrap.sh app     # the full desktop app (classify, review, retraining wizard)
#     sh packaging/bootstrap.sh lean    # classify-and-review only: no torch (about a tenth of the size)
#     sh packaging/bootstrap.sh tests   # everything the test suite needs (headless)
#
# On Debian or Ubuntu it installs the missing system packages with apt-get (through sudo when
# not run as root) and nothing else; elsewhere it names what to install and goes on. It is safe
# to run again: present packages are skipped and pip only adds what is missing.
set -eu
cd "$(dirname "$0")/.."

what="${1:-app}"

# Python 3.11 with venv and pip (Debian splits venv/ensurepip off the interpreter).
python_pkgs="python3.11 python3.11-venv"
# What Qt needs for any platform plugin (offscreen included) and what it loads for text.
qt_base="libegl1 libgl1 libxkbcommon0 libfontconfig1 libfreetype6 libdbus-1-3 libglib2.0-0 fonts-dejavu-core"
# Qt's xcb plugin: a real window on X11 (or XWayland).
qt_xcb="libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0
        libxcb-randr0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1"
# The tests render report PDFs (pdftoppm) to check them, and run the result store's tests
# against a real PostgreSQL server, which they start themselves in a temporary folder on loopback.
test_tools="poppler-utils postgresql"

case "$what" in
  app|lean) system="$python_pkgs $qt_base $qt_xcb"; extra=".[train]"; [ "$what" = lean ] && extra="." ;;
  tests)    system="$python_pkgs $qt_base $test_tools"; extra=".[dev]" ;;
  *) echo "usage: sh packaging/bootstrap.sh app|lean|tests" >&2; exit 2 ;;
esac

if command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing=""
  for pkg in $system; do
    case "$pkg" in  # a Python 3.11 from elsewhere (pyenv, a vendor build) is as good as Debian's
      python3.11|python3.11-venv) python3.11 -c 'import ensurepip, venv' >/dev/null 2>&1 && continue ;;
    esac
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "bootstrap: installing system packages:$missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
  fi
else
  echo "bootstrap: not a Debian-like system; make sure these (or their equivalents) are installed:" >&2
  echo "  $system" >&2
fi

python3.11 -m venv .venv
.venv/bin/python -m pip install -e "$extra"
echo "bootstrap: ready ($what): .venv/bin/allsight starts the app; .venv/bin/allsight --help lists the commands"
