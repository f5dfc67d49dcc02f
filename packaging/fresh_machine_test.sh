#!/usr/bin/env bash
# Prove that the README's two set-up commands work, exactly as written, on a bare Debian machine.
#
#     sudo packaging/fresh_machine_test.sh [--fresh] [--worktree | --ref REF] [SCRATCH]
#
#   SCRATCH     where the Debian roots live (default /var/tmp/allsight-fresh; never inside the repo)
#   --ref REF   put the repository's tracked files at REF in the machine (default HEAD), via git archive
#   --worktree  put the working tree in instead (tracked + untracked, not ignored: git ls-files -co)
#   --fresh     rebuild the bare root (and the harness root) from scratch with debootstrap
#
# What it does, as root on a Debian/Ubuntu host:
#   1. SCRATCH/bare     a bare Debian bookworm (debootstrap --variant=minbase): no Python, no Qt
#                       libraries, nothing packaging/bootstrap.sh should install itself. Built once;
#                       the marker SCRATCH/bare/.allsight-bare-complete lets a rerun reuse it.
#      SCRATCH/harness  a copy of bare plus the TEST HARNESS: Xvfb (the X server), x11-utils
#                       (xwininfo, to see the window) and imagemagick (import, the screenshot). They
#                       live in their own root, not in the machine under test, so that none of the
#                       X/font libraries they pull in can hide a package bootstrap.sh forgot. The
#                       machine sees the harness's X server only through its socket
#                       (/tmp/.X11-unix bind-mounted in).
#      SCRATCH/machine  a fresh copy of bare for every run: the machine under test.
#   2. The project goes to machine:/home/tech/allsight (git archive REF, or the working tree); no .venv.
#   3. /proc, /sys, /dev, /dev/pts, /dev/shm are mounted into the roots (unmounted again on exit, by a
#      trap, also on failure). /etc/resolv.conf is copied.
#      THE ONE THING THE BARE MACHINE GETS FROM OUTSIDE THE README'S COMMANDS: this site's pip
#      mirror. The host's local wheel folders (/opt/wheels, /opt/pypi, /opt/pypi-more) are
#      bind-mounted read-only at the same paths, the host's pip config files are copied (user:
#      /root/.config/pip/pip.conf -> find-links and extra-index-url; /etc/pip.conf and
#      /etc/xdg/pip/pip.conf with /etc/xdg/pip/constraints.txt -> the torch cap that keeps pip on the
#      local torch instead of several GB from PyPI), the PIP_* environment variables are passed on, and
#      the site's CA certificates are copied (HTTPS to PyPI goes through the site's proxy: the
#      host's bundle that PIP_CERT names, and its non-Debian certificates to
#      /usr/local/share/ca-certificates so that update-ca-certificates keeps them). So the chroot behaves
#      like a lab machine behind the site's package mirror; everything else it gets from the README.
#   4. The two commands are taken from README.md's "## Set-up" section exactly as tests/test_readme.py
#      takes them (the two ```bash blocks) and run verbatim in the machine as root
#      (chroot machine /bin/bash -lc 'cd /home/tech/allsight && <command>'), HOME=/root, plain PATH:
#        app:   with DISPLAY=:99 (the harness's Xvfb) and no QT_QPA_PLATFORM, i.e. Qt's real xcb
#               plugin. Waits until xwininfo shows the ALLSight main window, takes a screenshot to
#               docs/screenshots/fresh_machine_app.png, then kills the app. No ALLSIGHT_*_DIR
#               variables: the app uses its real per-user folders under the machine's /root.
#        tests: without DISPLAY, exactly as written. The real image set is not in the machine, so
#               the realdata tests skip (expected).
#   5. Writes timings, sizes, the pytest summary and the apt packages bootstrap.sh installed to
#      docs/results/fresh_machine.json and prints it. Logs are in SCRATCH/logs.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SCRATCH=/var/tmp/allsight-fresh
REF=HEAD
WORKTREE=0
FRESH=0
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
DISPLAY_NUM=99
APP_WAIT_S=${APP_WAIT_S:-2400}   # the app command first installs the whole .venv (torch included)
TESTS_WAIT_S=${TESTS_WAIT_S:-3600}

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --fresh) FRESH=1 ;;
    --worktree) WORKTREE=1 ;;
    --ref) REF="${2:?--ref needs a git ref}"; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) SCRATCH="$1" ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || { echo "run as root (debootstrap, mount and chroot need it)" >&2; exit 1; }
SCRATCH="$(realpath -m "$SCRATCH")"
case "$SCRATCH/" in "$REPO"/*) echo "SCRATCH must not be inside the repository" >&2; exit 1 ;; esac

BARE="$SCRATCH/bare"
HARNESS="$SCRATCH/harness"
MACHINE="$SCRATCH/machine"
LOGS="$SCRATCH/logs"
PROJECT=/home/tech/allsight               # where the project lives inside the machine
SCREENSHOT="$REPO/docs/screenshots/fresh_machine_app.png"
RESULT="$REPO/docs/results/fresh_machine.json"
MARKER=.allsight-bare-complete
HARNESS_MARKER=.allsight-harness-complete
PIP_DIRS=(/opt/wheels /opt/pypi /opt/pypi-more)   # the site's local wheel mirror
PIP_FILES=(/etc/pip.conf /etc/xdg/pip/pip.conf /etc/xdg/pip/constraints.txt)
mkdir -p "$SCRATCH" "$LOGS"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s; }

# ---------------------------------------------------------------- mounts and cleanup
MOUNTS=()   # every mount point this script made, in order; the trap undoes them in reverse
mnt() {     # mnt TARGET mount-args... : mount and remember it
  local target="$1"; shift
  mkdir -p "$target"
  mount "$@" "$target"
  MOUNTS+=("$target")
}
mount_system() {  # the kernel file systems a chroot needs
  local root="$1"
  mnt "$root/proc" -t proc proc
  mnt "$root/sys" -t sysfs -o ro sysfs
  mnt "$root/dev" --bind /dev
  mnt "$root/dev/pts" --bind /dev/pts
  mnt "$root/dev/shm" --bind /dev/shm
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}
bind_ro() {  # bind_ro SRC TARGET
  mnt "$2" --bind "$1"
  mount -o remount,bind,ro "$2"
}
stop_chroot_processes() {  # kill whatever still runs with its root in $1 (all of it started here)
  local root="$1" pid pids=() sig
  for sig in TERM KILL; do
    pids=()
    for pid in /proc/[0-9]*; do
      if [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ]; then pids+=("${pid#/proc/}"); fi
    done
    if [ ${#pids[@]} -eq 0 ]; then return 0; fi
    log "stopping processes in $root (SIG$sig): ${pids[*]}"
    kill -s "$sig" "${pids[@]}" 2>/dev/null || true
    sleep 3
  done
}
cleanup() {
  local i
  stop_chroot_processes "$MACHINE"
  stop_chroot_processes "$HARNESS"
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" || log "could not unmount ${MOUNTS[i]}"
  done
  MOUNTS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

no_mounts_under() {  # refuse to delete a tree that still has something mounted in it
  local targets; targets=$(findmnt -rn -o TARGET)
  ! grep -q "^$1\(/\|$\)" <<<"$targets"
}
remove_tree() {
  [ -e "$1" ] || return 0
  no_mounts_under "$1" || die "$1 still has mounts; not deleting it"
  rm -rf --one-file-system "$1"
}

# Run a shell command inside a root, with a clean, plain environment (no DISPLAY unless asked).
# in_root ROOT 'command' [VAR=value ...]
in_root() {
  local root="$1" cmd="$2"; shift 2
  env -i HOME=/root USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8 \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" \
      chroot "$root" /bin/bash -lc "$cmd"
}

# ---------------------------------------------------------------- 1. the bare root
command -v debootstrap >/dev/null || {
  log "installing debootstrap on the host"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
}
if [ "$FRESH" = 1 ]; then remove_tree "$BARE"; remove_tree "$HARNESS"; fi
if [ -f "$BARE/$MARKER" ]; then
  log "reusing the bare root $BARE ($(cat "$BARE/$MARKER"))"
else
  remove_tree "$BARE"
  log "debootstrap --variant=minbase $SUITE -> $BARE"
  t0=$(now)
  debootstrap --variant=minbase "$SUITE" "$BARE" "$MIRROR" > "$LOGS/debootstrap.log" 2>&1 \
    || { tail -20 "$LOGS/debootstrap.log"; die "debootstrap"; }
  # The apt sources of an installed Debian (the release, its updates and security), and no service
  # starts from package scripts inside a chroot.
  cat > "$BARE/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  printf '#!/bin/sh\nexit 101\n' > "$BARE/usr/sbin/policy-rc.d"; chmod +x "$BARE/usr/sbin/policy-rc.d"
  in_root "$BARE" 'apt-get clean; rm -rf /var/lib/apt/lists/*' || true
  secs=$(( $(now) - t0 ))
  echo "debootstrap_s=$secs size_mb=$(du -sxm "$BARE" | cut -f1) built=$(date -Is)" > "$BARE/$MARKER"
  log "bare root done: $(cat "$BARE/$MARKER")"
fi
DEBOOTSTRAP_S=$(sed -n 's/.*debootstrap_s=\([0-9]*\).*/\1/p' "$BARE/$MARKER")
BARE_MB=$(sed -n 's/.*size_mb=\([0-9]*\).*/\1/p' "$BARE/$MARKER")
# The bare root must really be bare: no Python, no Qt/X libraries.
for pkg in python3.11 python3.11-venv libxcb1 libgl1 libfontconfig1 libxkbcommon0; do
  ! chroot "$BARE" dpkg -s "$pkg" >/dev/null 2>&1 || die "the bare root already has $pkg"
done

# ---------------------------------------------------------------- the test harness (own root)
if [ -f "$HARNESS/$HARNESS_MARKER" ]; then
  log "reusing the harness root $HARNESS"
else
  remove_tree "$HARNESS"
  log "building the harness root (Xvfb, xwininfo, imagemagick) from the bare root"
  cp -a "$BARE" "$HARNESS"; rm -f "$HARNESS/$MARKER"
  mount_system "$HARNESS"
  in_root "$HARNESS" 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xvfb x11-utils imagemagick' \
    > "$LOGS/harness.log" 2>&1 || { tail -20 "$LOGS/harness.log"; die "installing the harness"; }
  cleanup
  date -Is > "$HARNESS/$HARNESS_MARKER"
fi

# ---------------------------------------------------------------- 2. the machine under test
remove_tree "$MACHINE"
log "copying the bare root to $MACHINE"
cp -a "$BARE" "$MACHINE"; rm -f "$MACHINE/$MARKER"
mkdir -p "$MACHINE$PROJECT"
if [ "$WORKTREE" = 1 ]; then
  SOURCE="working tree of $(git -C "$REPO" rev-parse --short HEAD) (git ls-files -co --exclude-standard)"
  git -C "$REPO" ls-files -co --exclude-standard -z |
    while IFS= read -r -d '' f; do
      case "$f" in .venv/*) continue ;; esac
      [ -f "$REPO/$f" ] && printf '%s\0' "$f"
    done | tar -C "$REPO" --null -T - -c | tar -x -C "$MACHINE$PROJECT"
else
  SOURCE="git archive $REF ($(git -C "$REPO" rev-parse --short "$REF^{commit}"))"
  git -C "$REPO" archive "$REF" | tar -x -C "$MACHINE$PROJECT"
fi
log "project: $SOURCE -> machine:$PROJECT"
[ ! -e "$MACHINE$PROJECT/.venv" ] || die ".venv must not travel"

# ---------------------------------------------------------------- 3. mounts and the pip mirror
mount_system "$HARNESS"
mount_system "$MACHINE"
for d in "${PIP_DIRS[@]}"; do
  if [ -d "$d" ]; then bind_ro "$d" "$MACHINE$d"; fi
done
for f in "${PIP_FILES[@]}"; do
  if [ -f "$f" ]; then mkdir -p "$MACHINE$(dirname "$f")"; cp "$f" "$MACHINE$f"; fi
done
if [ -f /root/.config/pip/pip.conf ]; then
  mkdir -p "$MACHINE/root/.config/pip"; cp /root/.config/pip/pip.conf "$MACHINE/root/.config/pip/pip.conf"
fi
PIP_ENV=()
for v in PIP_FIND_LINKS PIP_CERT PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK; do
  if [ -n "${!v:-}" ]; then PIP_ENV+=("$v=${!v}"); fi
done
# The site's CA certificates (HTTPS to PyPI goes through the site's proxy): the host's bundle goes
# where PIP_CERT points, and the certificates in it that Debian's own set lacks also go to
# /usr/local/share/ca-certificates, so that they survive when bootstrap.sh's apt-get pulls in
# ca-certificates, whose update-ca-certificates rewrites that bundle.
CERT_COPIED=""
for c in "${PIP_CERT:-}" $(pip config get global.cert 2>/dev/null || true); do
  if [ -n "$c" ] && [ -f "$c" ] && [ ! -e "$MACHINE$c" ]; then
    mkdir -p "$MACHINE$(dirname "$c")" "$MACHINE/usr/local/share/ca-certificates"
    cp -L "$c" "$MACHINE$c"; CERT_COPIED="$c"
    python3 - "$c" "$MACHINE/usr/local/share/ca-certificates" <<'EOF'
import glob, re, sys
pem = lambda text: re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
debian = {c for f in glob.glob("/usr/share/ca-certificates/**/*.crt", recursive=True) for c in pem(open(f).read())}
for i, cert in enumerate(c for c in pem(open(sys.argv[1]).read()) if c not in debian):
    open(f"{sys.argv[2]}/site-ca-{i}.crt", "w").write(cert + "\n")
EOF
  fi
done
# The harness's X socket, seen from the machine.
mkdir -p -m 1777 "$HARNESS/tmp/.X11-unix" "$MACHINE/tmp/.X11-unix"
mnt "$MACHINE/tmp/.X11-unix" --bind "$HARNESS/tmp/.X11-unix"

# ---------------------------------------------------------------- 4. the README's commands
mapfile -d '' -t COMMANDS < <(python3 - "$REPO/README.md" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
section = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]   # as tests/test_readme.py
for command in re.findall(r"```bash\n(.+?)\n```", section, flags=re.S):
    sys.stdout.write(command + "\0")
EOF
)
[ ${#COMMANDS[@]} -eq 2 ] || die "README.md's Set-up section should hold two bash commands, found ${#COMMANDS[@]}"
APP_CMD="${COMMANDS[0]}"; TESTS_CMD="${COMMANDS[1]}"
log "app command:   $APP_CMD"
log "tests command: $TESTS_CMD"

first_seen() { grep -qF "$2" "$1" 2>/dev/null; }  # first_seen FILE TEXT: TEXT is in FILE

# -- the app command, on the harness's X server with Qt's xcb plugin
log "starting Xvfb :$DISPLAY_NUM in the harness root"
setsid chroot "$HARNESS" /usr/bin/Xvfb ":$DISPLAY_NUM" -screen 0 1600x1000x24 -nolisten tcp \
  > "$LOGS/xvfb.log" 2>&1 &
XVFB_PID=$!
for _ in $(seq 50); do [ -S "$HARNESS/tmp/.X11-unix/X$DISPLAY_NUM" ] && break; sleep 0.2; done
[ -S "$HARNESS/tmp/.X11-unix/X$DISPLAY_NUM" ] || { cat "$LOGS/xvfb.log"; die "Xvfb did not start"; }
x() { in_root "$HARNESS" "$1" DISPLAY=":$DISPLAY_NUM"; }

log "running the app command in the machine (it installs the .venv first; up to ${APP_WAIT_S}s)"
APP_LOG="$LOGS/app.log"
t0=$(now)
setsid env -i HOME=/root USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${PIP_ENV[@]}" \
  DISPLAY=":$DISPLAY_NUM" chroot "$MACHINE" /bin/bash -lc "cd $PROJECT && $APP_CMD" > "$APP_LOG" 2>&1 &
APP_PID=$!
APP_BOOTSTRAP_S=""; APP_WINDOW_S=""
while :; do
  elapsed=$(( $(now) - t0 ))
  if [ -z "$APP_BOOTSTRAP_S" ] && first_seen "$APP_LOG" "bootstrap: ready (app)"; then
    APP_BOOTSTRAP_S=$elapsed; log "bootstrap.sh app done after ${elapsed}s; waiting for the window"
  fi
  windows=$(x 'xwininfo -root -tree' 2>/dev/null || true)
  if grep -q 'ALLSight [^"]*research use only' <<<"$windows"; then
    APP_WINDOW_S=$elapsed; break
  fi
  kill -0 "$APP_PID" 2>/dev/null || { tail -30 "$APP_LOG"; die "the app command ended before its window showed"; }
  [ "$elapsed" -lt "$APP_WAIT_S" ] || { tail -30 "$APP_LOG"; die "no ALLSight window after ${APP_WAIT_S}s"; }
  sleep 1
done
log "the ALLSight window is up after ${APP_WINDOW_S}s; letting it settle"
sleep 10
x 'xwininfo -root -tree' > "$LOGS/windows.txt" 2>&1 || true
x 'import -window root /tmp/fresh_machine_app.png' || die "screenshot"
mkdir -p "$(dirname "$SCREENSHOT")"
cp "$HARNESS/tmp/fresh_machine_app.png" "$SCREENSHOT"
log "screenshot -> ${SCREENSHOT#"$REPO"/}"
APP_ALIVE=false; kill -0 "$APP_PID" 2>/dev/null && APP_ALIVE=true
kill -TERM -- "-$APP_PID" 2>/dev/null || true
wait "$APP_PID" 2>/dev/null || true
stop_chroot_processes "$MACHINE"
kill -TERM -- "-$XVFB_PID" 2>/dev/null || true
wait "$XVFB_PID" 2>/dev/null || true
# The app's own log in its real per-user folder (platformdirs' user_log_dir for root).
APP_OWN_LOG=$(cd "$MACHINE" && find root -name allsight.log 2>/dev/null | head -1)
APP_DB=$(cd "$MACHINE" && find root -name allsight.sqlite3 2>/dev/null | head -1)
cat "$APP_LOG" ${APP_OWN_LOG:+"$MACHINE/$APP_OWN_LOG"} > "$LOGS/app_all.log"
if grep -q "Could not load the Qt platform plugin" "$LOGS/app_all.log"; then
  grep "Qt platform plugin" "$LOGS/app_all.log" >&2; die "Qt could not load its platform plugin"
fi

# -- the test command, headless, as written
log "running the test command in the machine (no DISPLAY; up to ${TESTS_WAIT_S}s)"
TESTS_LOG="$LOGS/tests.log"
t0=$(now)
setsid env -i HOME=/root USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${PIP_ENV[@]}" \
  chroot "$MACHINE" /bin/bash -lc "cd $PROJECT && $TESTS_CMD" > "$TESTS_LOG" 2>&1 &
TESTS_PID=$!
TESTS_BOOTSTRAP_S=""
while kill -0 "$TESTS_PID" 2>/dev/null; do
  elapsed=$(( $(now) - t0 ))
  if [ -z "$TESTS_BOOTSTRAP_S" ] && first_seen "$TESTS_LOG" "bootstrap: ready (tests)"; then
    TESTS_BOOTSTRAP_S=$elapsed; log "bootstrap.sh tests done after ${elapsed}s; pytest running"
  fi
  sleep 1
  if [ "$elapsed" -ge "$TESTS_WAIT_S" ]; then
    log "the test command runs past ${TESTS_WAIT_S}s; stopping it"; kill -TERM -- "-$TESTS_PID" || true
  fi
done
TESTS_RC=0; wait "$TESTS_PID" || TESTS_RC=$?
TESTS_S=$(( $(now) - t0 ))
log "the test command ended with exit code $TESTS_RC after ${TESTS_S}s"
tail -15 "$TESTS_LOG" >&2

# ---------------------------------------------------------------- 5. figures and the report
cleanup   # unmount first: du would otherwise count the bind-mounted mirror
no_mounts_under "$MACHINE" || die "mounts left under $MACHINE"
MACHINE_MB=$(du -sxm "$MACHINE" | cut -f1)
VENV_MB=$(du -sxm "$MACHINE$PROJECT/.venv" | cut -f1)
PYTHON_VERSION=$(chroot "$MACHINE" "$PROJECT/.venv/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo "?")
PYSIDE_VERSION=$(chroot "$MACHINE" "$PROJECT/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("PySide6-Essentials"))' 2>/dev/null || echo "?")
TORCH_VERSION=$(chroot "$MACHINE" "$PROJECT/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || echo "?")

mkdir -p "$(dirname "$RESULT")"
export SOURCE SUITE DEBOOTSTRAP_S BARE_MB MACHINE_MB VENV_MB APP_CMD TESTS_CMD APP_BOOTSTRAP_S \
  APP_WINDOW_S APP_ALIVE TESTS_BOOTSTRAP_S TESTS_S TESTS_RC APP_LOG TESTS_LOG APP_OWN_LOG APP_DB \
  CERT_COPIED PYTHON_VERSION PYSIDE_VERSION TORCH_VERSION LOGS RESULT SCREENSHOT REPO
python3 - <<'EOF'
import datetime, json, os, re
e = os.environ
num = lambda k: int(e[k]) if e.get(k, "").isdigit() else None

def installed(log):  # the packages bootstrap.sh's apt-get line named
    for line in open(log, errors="replace"):
        if line.startswith("bootstrap: installing system packages:"):
            return line.split("packages:", 1)[1].split()
    return []

tests = open(e["TESTS_LOG"], errors="replace").read().splitlines()
summary = next((l.strip("= ") for l in reversed(tests) if re.match(r"^=+ .*\b(passed|failed|error|skipped)", l)), None)
skip_reasons = sorted({re.sub(r"^SKIPPED \[\d+\] ", "", l) for l in tests if l.startswith("SKIPPED")})
report = {
    "what": "README.md's two set-up commands, verbatim, in a bare Debian chroot",
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "debian": f"{e['SUITE']} (debootstrap --variant=minbase)",
    "project": e["SOURCE"],
    "from_outside_the_readme": "the site's pip mirror only: /opt/wheels, /opt/pypi, /opt/pypi-more bound "
        "read-only, the host's pip.conf files and constraints (torch<=2.14.1), PIP_* variables"
        + (f", and the site's CA certificates (the host's {e['CERT_COPIED']}, which PIP_CERT names, and its "
           "non-Debian ones in /usr/local/share/ca-certificates)" if e.get("CERT_COPIED") else ""),
    "harness": "Xvfb, xwininfo and imagemagick in a separate chroot (SCRATCH/harness); the machine only "
               "sees the X socket",
    "phases_s": {
        "debootstrap": num("DEBOOTSTRAP_S"),
        "app_command_bootstrap": num("APP_BOOTSTRAP_S"),
        "app_command_until_window": num("APP_WINDOW_S"),
        "app_start_after_bootstrap": (num("APP_WINDOW_S") - num("APP_BOOTSTRAP_S")
                                  if num("APP_WINDOW_S") is not None and num("APP_BOOTSTRAP_S") is not None else None),
    "tests_command_bootstrap": num("TESTS_BOOTSTRAP_S"),
        "tests_command_total": num("TESTS_S"),
    },
    "sizes_mb": {"bare_root": num("BARE_MB"), "root_after": num("MACHINE_MB"), "venv": num("VENV_MB")},
    "apt_installed_by_bootstrap": {"app": installed(e["APP_LOG"]), "tests": installed(e["TESTS_LOG"])},
    "app": {
        "command": e["APP_CMD"],
        "window_showed": num("APP_WINDOW_S") is not None,
        "still_running_at_screenshot": e["APP_ALIVE"] == "true",
        "qt_platform": "xcb (Xvfb :99, QT_QPA_PLATFORM unset)",
        "own_log_file": "/" + e["APP_OWN_LOG"] if e.get("APP_OWN_LOG") else None,
        "database_file": "/" + e["APP_DB"] if e.get("APP_DB") else None,
        "screenshot": os.path.relpath(e["SCREENSHOT"], e["REPO"]),
    },
    "tests": {
        "command": e["TESTS_CMD"],
        "exit_code": num("TESTS_RC"),
        "summary": summary,
        "failed": [l for l in tests if l.startswith(("FAILED", "ERROR"))],
        "skip_reasons": skip_reasons,
    },
    "versions": {"python": e["PYTHON_VERSION"], "PySide6": e["PYSIDE_VERSION"], "torch": e["TORCH_VERSION"]},
    "logs": e["LOGS"],
}
with open(e["RESULT"], "w") as f:
    json.dump(report, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(json.dumps(report, indent=2, ensure_ascii=False))
EOF
log "report -> ${RESULT#"$REPO"/}"
exit "$TESTS_RC"
