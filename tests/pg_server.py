"""A real, throw-away PostgreSQL server for the tests (never a mock).

One ``initdb`` + ``pg_ctl start`` in a temporary folder, listening on 127.0.0.1 only, on a free
port, with durability switched off (the data dies with the test run anyway). Tests get a fresh
database each (:func:`fresh_database_url`), so no state leaks from one test to the next.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

#: The superuser ``initdb`` creates (not "postgres", so nothing can pass by the OS user's name).
ADMIN = "allsight_admin"

#: Durability off: a test server loses everything at the end anyway, and fsync dominates timings.
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"

_db_numbers = itertools.count()


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: $ALLSIGHT_PG_BIN, else the newest Debian
    ``/usr/lib/postgresql/<version>/bin``, else the one on PATH (Homebrew, other distributions)."""

    def usable(folder: Path) -> bool:
        return all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl"))

    explicit = os.environ.get("ALLSIGHT_PG_BIN")
    if explicit:  # a wrong explicit setting is an error, not a reason to skip the store's tests
        if not usable(Path(explicit)):
            raise FileNotFoundError(f"ALLSIGHT_PG_BIN={explicit} holds no executable initdb and pg_ctl")
        return Path(explicit)

    def version(folder: Path) -> tuple[int, ...]:  # "9.6" < "15": compare numbers, not strings
        return tuple(int(n) for n in re.findall(r"\d+", folder.parent.name)) or (0,)

    debian = sorted((p for p in Path("/usr/lib/postgresql").glob("*/bin") if usable(p)), key=version)
    if debian:
        return debian[-1]
    on_path = shutil.which("pg_ctl")
    if on_path and usable(Path(on_path).parent):
        return Path(on_path).parent
    return None


def _free_port() -> int:
    # The kernel picks a free port; closed again at once, so a tiny race remains (start() retries).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reachable_by_all(folder: Path) -> bool:
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in (folder, *folder.parents))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class PostgresServer:
    """A private PostgreSQL cluster: ``start()``, use :meth:`url`, ``stop()`` (also at exit)."""

    def __init__(self, bin_dir: Path | None = None, settings: str = _FAST):
        found = bin_dir or find_pg_bin()
        #: The server's ``-c`` options; the tests' default trades durability for speed
        #: (benchmarks/store.py passes its own, with durability on).
        self.settings = settings
        if found is None:
            raise FileNotFoundError("no PostgreSQL found (initdb, pg_ctl): install it or set ALLSIGHT_PG_BIN")
        self.bin_dir = Path(found)
        self.port: int | None = None
        self.folder: Path | None = None
        # PostgreSQL refuses to run as root, so root runs the server as the "postgres" user.
        self._as_root = os.geteuid() == 0
        # The person's PG* settings (PGHOST, PGPORT, PGPASSWORD...) must not steer the tools.
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}

    @property
    def data_dir(self) -> Path:
        return self._require_folder() / "data"

    @property
    def log_file(self) -> Path:
        return self._require_folder() / "server.log"

    def _require_folder(self) -> Path:
        if self.folder is None:
            raise RuntimeError("the PostgreSQL server is not started")
        return self.folder

    def _run_server_tool(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        # cwd: the tools chdir back to it and warn when they can't (root's cwd is often /root).
        return subprocess.run(command, cwd=self.folder, env=self._env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self) -> PostgresServer:
        if self.folder is not None:
            return self
        base = Path(tempfile.gettempdir())
        if self._as_root and not _reachable_by_all(base):  # e.g. TMPDIR under /root (mode 700)
            base = Path("/tmp")
        self.folder = Path(tempfile.mkdtemp(prefix="allsight-pg-", dir=base))
        atexit.register(self.stop)  # a crashed or interrupted run must not leave a server behind
        try:
            if self._as_root:
                shutil.chown(self.folder, "postgres", "postgres")
                self.folder.chmod(0o711)  # root's clients may enter; the data dir itself stays 0700
            self._initdb()
            for attempt in range(3):  # another process may take the free port before we bind it
                self.port = _free_port()
                started = self._pg_ctl_start()
                if started.returncode == 0:
                    return self
                if attempt == 2 or "already in use" not in self._log_tail():
                    raise RuntimeError(self._failure("pg_ctl start", started))
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self) -> None:
        done = self._run_server_tool("initdb", "-D", str(self.data_dir), "-U", ADMIN, "-A", "trust",
                                     "-E", "UTF8", "--locale=C", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(self._failure("initdb", done))
        # The test's superuser is trusted (it sets the server up); every other role logs in with
        # its password, as at a lab, so a wrong one is refused as a lab's server refuses it.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {ADMIN} 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8")

    def _pg_ctl_start(self) -> subprocess.CompletedProcess:
        sockets = self._require_folder() / "sockets"
        sockets.mkdir(exist_ok=True)
        if self._as_root:
            shutil.chown(sockets, "postgres", "postgres")
        # Loopback only: a test server with trust authentication must not be reachable from outside.
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sockets} {self.settings}"
        return self._run_server_tool("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                                     "-o", options, "-w", "-t", "60", "start", timeout=90)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _failure(self, what: str, done: subprocess.CompletedProcess) -> str:
        return (f"{what} failed (exit {done.returncode}) in {self.folder}\n"
                f"--- output ---\n{done.stdout}{done.stderr}\n--- server log (tail) ---\n{self._log_tail()}")

    def stop(self) -> None:
        """Kill the server at once (no clean shutdown needed for throw-away data) and delete it."""
        atexit.unregister(self.stop)
        if self.folder is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run_server_tool("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = self.port = None

    def halt(self) -> None:
        """Stop the server as a crash or power cut would (``immediate``), keeping its data: the
        fault tests' "the lab database went down"; :meth:`resume` starts it again."""
        done = self._run_server_tool("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=60)
        if done.returncode != 0:
            raise RuntimeError(self._failure("pg_ctl stop", done))

    def resume(self) -> None:
        """Start a :meth:`halt`-ed server again, on the same port and data (crash recovery runs)."""
        started = self._pg_ctl_start()
        if started.returncode != 0:
            raise RuntimeError(self._failure("pg_ctl start", started))

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, dbname: str, user: str = ADMIN, password: str | None = None) -> str:
        """An SQLAlchemy URL for ``dbname`` (the superuser needs no password; other roles do)."""
        if self.port is None:
            raise RuntimeError("the PostgreSQL server is not started")
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run ``sql`` as the superuser; returns the rows as psql's unaligned text (``a|b`` lines)."""
        if self.port is None:
            raise RuntimeError("the PostgreSQL server is not started")
        done = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", ADMIN, "-d", dbname, "-c", sql],
            env=self._env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed on {dbname}: {sql!r}\n{done.stderr}")
        return done.stdout.strip()

    def create_database(self, name: str, owner: str = ADMIN) -> None:
        self.psql(f"CREATE DATABASE {_quote_ident(name)} OWNER {_quote_ident(owner)}")

    def drop_database(self, name: str) -> None:
        # FORCE: a test may leave pooled connections open; they must not keep its database alive.
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def create_role(self, name: str, password: str) -> None:
        """A login role without any privileges beyond PUBLIC's, for least-privilege tests."""
        self.psql(f"CREATE ROLE {_quote_ident(name)} LOGIN PASSWORD {_quote_literal(password)} "
                  "NOSUPERUSER NOCREATEDB NOCREATEROLE")


def fresh_database_url(server: PostgresServer) -> str:
    """Create a uniquely named, empty database on ``server`` and return its URL."""
    name = f"t{os.getpid()}_{next(_db_numbers)}_{uuid.uuid4().hex[:8]}"
    server.create_database(name)
    return server.url(name)
