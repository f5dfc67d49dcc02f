"""Result store throughput and commit latency, PostgreSQL beside SQLite, measured in one run.

    python benchmarks/store.py [--writers 4] [--results 10000] [--classify-n 300] [--repeats 3] \
        [--data DIR] [--json FILE]

Both engines, on the same machine, in the same run:
  writers   --writers PROCESSES (multiprocessing "spawn", not threads), each with its own
            ResultStore on the same database, each writing --results/--writers results into a
            sample of its own (the sample and its images, tiny files in a temporary folder, are
            made before timing starts). Every ``record_prediction`` call (one committed transaction)
            is timed with perf_counter: that is the commit latency. Reported: results/s (wall clock
            from the start barrier to the last writer done), p50/p99/max commit latency, and, after
            the run, lost rows (expected - present) and duplicated rows (rows beyond one per image
            and model) counted by a direct COUNT query, and whether the whole audit chain verifies.
  classify  the product: ``python main.py classify FOLDER --db DB --out results.csv`` as a fresh
            process on the same --classify-n images (links to the ARIA files: --data, else
            $ALLSIGHT_DATA, else /work/shared/data/aria-all; synthetic smears when none is there),
            each run on a fresh database (a new PostgreSQL database, a new SQLite file, each made at
            the current schema before the timed run, as a lab's database exists) so that every
            image is classified and recorded. One warm-up run per engine (fills the ONNX
            cache), then SQLite, PostgreSQL, SQLite, PostgreSQL... (--repeats each); the median.
PostgreSQL is a throw-away server (tests/pg_server.py) started here WITH durability on (fsync,
synchronous_commit, full_page_writes: the test server switches them off, and a command-line
setting cannot be changed by ALTER SYSTEM, so this script starts it with its own options); the
settings in effect are read back (SHOW) and printed. SQLite runs as the store opens it: WAL,
synchronous=NORMAL (read back through the store's own connection). The server and the SQLite
file are on the same disk and the same CPUs as the writers. Prints Markdown tables for
docs/store.md (and the numbers as JSON with --json). Exits 1 when a row was lost or duplicated,
the audit chain does not verify, a writer failed or a classify run failed; a missed speed target
is reported, not an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL_SHA256 = hashlib.sha256(b"benchmarks/store.py").hexdigest()
#: The durability settings of a production server (the test server runs with all three off).
DURABLE = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=100"
PG_SETTINGS = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
               "wal_level", "shared_buffers")
#: The issue's targets.
P99_TARGET_MS = 50.0
CLASSIFY_RATIO_TARGET = 0.90


# ------------------------------------------------------------------------------ PostgreSQL
def durable_server():
    """A throw-away PostgreSQL server (tests/pg_server.py) started with durability on."""
    from tests.pg_server import PostgresServer

    return PostgresServer(settings=DURABLE).start()


def pg_settings(server) -> dict[str, str]:
    return {name: server.psql(f"SHOW {name}") for name in PG_SETTINGS}


def sqlite_settings(target: Path) -> dict[str, str]:
    """journal_mode and synchronous as the store's own connection has them."""
    from engine.store.results import ResultStore

    with ResultStore.open(target) as store, store._db.read() as conn:
        sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        version = str(conn.execute("SELECT sqlite_version()").fetchone()[0])
    return {"sqlite_version": version, "journal_mode": mode,
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, str(sync))}


# ------------------------------------------------------------------------------ writers
def writer(target: str, sample_id: str, paths: list[str], barrier, queue) -> None:
    """One writer process: open the store, wait for the others, record one result per path."""
    try:
        from engine.core.records import ImageResult
        from engine.store.results import ResultStore

        store = ResultStore.open(target)
        results = [ImageResult(p, "ok", "Pre", 0.9) for p in paths]
        latencies: list[float] = []
        new = 0
        barrier.wait()
        for path, result in zip(paths, results, strict=True):
            start = time.perf_counter()
            new += store.record_prediction(sample_id, path, result, "bench", "1", MODEL_SHA256)
            latencies.append(time.perf_counter() - start)
        done = time.monotonic()
        store.close()
        queue.put({"sample_id": sample_id, "latencies": latencies, "new": new, "done": done, "error": None})
    except BaseException:
        queue.put({"sample_id": sample_id, "error": traceback.format_exc()})
        with contextlib.suppress(Exception):
            barrier.abort()  # the others must not wait for this one forever


def make_image_files(folder: Path, writers: int, results: int) -> list[list[str]]:
    """``results`` tiny distinct files, split over ``writers`` subfolders (the first ones get the
    remainder)."""
    split = [results // writers + (1 if k < results % writers else 0) for k in range(writers)]
    out: list[list[str]] = []
    for k, n in enumerate(split):
        sub = folder / f"w{k}"
        sub.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            p = sub / f"img{i:05d}.jpg"
            p.write_bytes(f"writer {k} image {i}\n".encode())
            paths.append(str(p))
        out.append(paths)
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil(q/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def writer_benchmark(engine: str, target: str, image_lists: list[list[str]]) -> dict:
    from engine.store.results import ResultStore

    expected = sum(len(p) for p in image_lists)
    with ResultStore.open(target) as store:  # before timing: the schema, the samples, their images
        for k, paths in enumerate(image_lists):
            sid = f"writer-{k}"
            store.create_or_get_sample(sid, str(Path(paths[0]).parent))
            store.add_images(sid, paths)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(image_lists) + 1)
    queue = ctx.Queue()
    procs = [ctx.Process(target=writer, args=(target, f"writer-{k}", paths, barrier, queue))
             for k, paths in enumerate(image_lists)]
    for p in procs:
        p.start()
    errors: list[str] = []
    try:
        barrier.wait(timeout=300)  # every writer has its store open
        start = time.monotonic()
    except Exception:
        start = time.monotonic()
        errors.append("the writers did not all reach the start barrier")
    reports = [queue.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    errors += [f"{r['sample_id']}: {r['error']}" for r in reports if r["error"]]
    latencies = sorted(x for r in reports if not r["error"] for x in r["latencies"])
    wall = max((r["done"] for r in reports if not r["error"]), default=start) - start
    with ResultStore.open(target) as store:
        with store._db.read() as conn:
            rows, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT image_pk) FROM predictions").fetchone()
        per_sample = {f"writer-{k}": len(store.predictions(f"writer-{k}")) for k in range(len(image_lists))}
        audit = store.verify_audit()
    rows, distinct = int(rows), int(distinct)
    return {
        "engine": engine, "writers": len(image_lists), "expected": expected,
        "recorded_new": sum(r.get("new", 0) for r in reports),
        "wall_s": wall, "results_per_s": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99),
        "max_ms": 1000 * latencies[-1] if latencies else float("nan"),
        "rows": rows, "lost": expected - distinct, "duplicated": rows - distinct,
        "predictions_per_sample": per_sample,
        "audit_ok": bool(audit.ok), "audit_entries": int(audit.n_entries), "errors": errors,
    }


# ------------------------------------------------------------------------------ classify
def data_dir(explicit: str | None) -> Path | None:
    for candidate in (explicit, os.environ.get("ALLSIGHT_DATA"), "/work/shared/data/aria-all",
                      str(REPO.parent / "shared" / "data" / "aria-all")):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def classify_folder(folder: Path, n: int, source: Path | None) -> str:
    """``n`` images in ``folder``: links to the data set's files, or synthetic smears."""
    folder.mkdir(parents=True)
    if source is not None:
        from engine.io.images import scan_paths

        files = list(scan_paths([source]).images)
        if files:
            step = max(1, len(files) // n)
            picked = [files[(i * step) % len(files)] for i in range(n)]
            for i, f in enumerate(picked):
                (folder / f"{i:05d}{f.suffix}").symlink_to(f.resolve())
            return f"{n} links to files of {source}"
    from tests.conftest import synthetic_smear, write_image

    for i in range(n):
        write_image(folder / f"{i:05d}.jpg", synthetic_smear(i % 4, 224, i), quality=95)
    return f"{n} synthetic smears (224 px JPEG; no data set found)"


def run_classify(folder: Path, db: str, out: Path) -> float:
    cmd = [sys.executable, "main.py", "classify", str(folder), "--db", db, "--out", str(out)]
    # the run's own settings, log and cache: a benchmark never writes into the user's folders
    scratch = out.parent / "user"
    env = {**os.environ, **{f"ALLSIGHT_{k}_DIR": str(scratch / k.lower()) for k in ("CONFIG", "LOG", "CACHE", "DATA")}}
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:  # 3 would mean error rows: then it did not classify what it timed
        raise RuntimeError(f"classify --db {db} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return elapsed


def count_results(db: str) -> int:
    from engine.store.results import ResultStore

    with ResultStore.open(db) as store, store._db.read() as conn:
        return int(conn.execute("SELECT COUNT(DISTINCT image_pk) FROM predictions").fetchone()[0])


def classify_benchmark(server, tmp: Path, n: int, repeats: int, source: Path | None) -> dict:
    from tests.pg_server import fresh_database_url

    folder = tmp / "classify-images"
    what = classify_folder(folder, n, source)
    counter = iter(range(10**6))

    def fresh(engine: str) -> str:
        """A new, empty database at the current schema, made before the timed run: a lab
        classifies into a database that exists (creating the schema — Alembic's import and the
        DDL, ~0.3 s on PostgreSQL, ~0.02 s on SQLite — is installation, not classification)."""
        from engine.store.results import ResultStore

        db = fresh_database_url(server) if engine == "postgresql" else str(tmp / f"classify-{next(counter)}.sqlite3")
        ResultStore.open(db).close()
        return db

    times: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    problems: list[str] = []
    warmup: dict[str, float] = {}
    for run in range(repeats + 1):  # run 0: the warm-up of each
        for engine in ("sqlite", "postgresql"):
            db = fresh(engine)
            elapsed = run_classify(folder, db, tmp / f"classify-{engine}.csv")
            recorded = count_results(db)
            if recorded != n:
                problems.append(f"{engine} run {run}: {recorded} of {n} images recorded")
            if run == 0:
                warmup[engine] = elapsed
            else:
                times[engine].append(elapsed)
    medians = {e: statistics.median(t) for e, t in times.items()}
    rates = {e: n / s for e, s in medians.items()}
    return {"images": n, "folder": what, "repeats": repeats, "warmup_s": warmup, "times_s": times,
            "median_s": medians, "images_per_s": rates, "ratio_pg_sqlite": rates["postgresql"] / rates["sqlite"],
            "problems": problems}


# ------------------------------------------------------------------------------ report
def markdown(report: dict) -> str:
    lines = ["| engine | writers × results | results/s | p50 ms | p99 ms | max ms | lost | duplicated "
             "| audit chain |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for w in report["writers"]:
        per = w["expected"] // w["writers"]
        lines.append(f"| {w['engine']} | {w['writers']} × {per:,} | {w['results_per_s']:,.0f} | {w['p50_ms']:.1f} | "
                     f"{w['p99_ms']:.1f} | {w['max_ms']:.1f} | {w['lost']} | {w['duplicated']} | "
                     f"{'verifies' if w['audit_ok'] else 'BROKEN'} ({w['audit_entries']:,} entries) |")
    c = report.get("classify")
    if c:
        lines += ["", f"`classify --db`, {c['folder']}, median of {c['repeats']} alternated runs (fresh process, "
                  "a new database at the current schema each, made before the run):", "",
                  "| engine | median s | images/s | runs (s) | warm-up (s) |", "| --- | --- | --- | --- | --- |"]
        for e in ("sqlite", "postgresql"):
            runs = ", ".join(f"{t:.2f}" for t in c["times_s"][e])
            lines.append(f"| {e} | {c['median_s'][e]:.2f} | {c['images_per_s'][e]:.1f} | {runs} | "
                         f"{c['warmup_s'][e]:.2f} |")
        lines += ["", f"PostgreSQL / SQLite: {c['ratio_pg_sqlite']:.3f}"]
    lines += ["", "Targets:"] + [f"- {t['target']}: {'met' if t['met'] else 'NOT MET'} ({t['value']})"
                                 for t in report["targets"]]
    s = report["settings"]
    lines += ["", "Settings in effect: PostgreSQL " + ", ".join(f"{k}={v}" for k, v in s["postgresql"].items())
              + "; SQLite " + ", ".join(f"{k}={v}" for k, v in s["sqlite"].items()) + ".",
              f"Machine: {s['machine']}; load average at start {s['load_start']}, at end {s['load_end']}."]
    return "\n".join(lines)


def targets(report: dict, writers: int, results: int) -> list[dict]:
    out = []
    for w in report["writers"]:
        out.append({"target": f"{w['engine']}: 0 lost, 0 duplicated, audit chain verifies",
                    "met": w["lost"] == 0 and w["duplicated"] == 0 and w["audit_ok"] and not w["errors"],
                    "value": f"{w['lost']} lost, {w['duplicated']} duplicated, audit "
                             f"{'ok' if w['audit_ok'] else 'broken'}, {len(w['errors'])} writer errors"})
    pg = next(w for w in report["writers"] if w["engine"] == "postgresql")
    shape = "" if (writers, results) == (4, 10000) else f" (run with {writers} writers, {results:,} results, " \
        "not the target's 4 × 2,500)"
    out.append({"target": f"postgresql, 4 writers × 2,500 results: p99 commit latency ≤ {P99_TARGET_MS:.0f} ms{shape}",
                "met": pg["p99_ms"] <= P99_TARGET_MS, "value": f"p99 {pg['p99_ms']:.1f} ms"})
    c = report.get("classify")
    if c:
        out.append({"target": "classify --db postgresql within 10 % of SQLite's images/s, same run",
                    "met": c["ratio_pg_sqlite"] >= CLASSIFY_RATIO_TARGET, "value": f"ratio {c['ratio_pg_sqlite']:.3f}"})
    return out


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--results", type=int, default=10000, help="results in all, split over the writers")
    ap.add_argument("--classify-n", type=int, default=300, help="images per classify run (0: skip classify)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", help="image folder for classify (default $ALLSIGHT_DATA, /work/shared/data/aria-all)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args()
    if args.writers < 1 or args.results < args.writers:
        ap.error("need at least one writer and one result per writer")

    from tests.pg_server import fresh_database_url

    report: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "date": datetime.now(UTC).isoformat(timespec="seconds"), "writers": []}
    load_start = load()
    failures: list[str] = []
    server = durable_server()
    try:
        with tempfile.TemporaryDirectory(prefix="allsight-store-bench-") as tmp_name:
            tmp = Path(tmp_name)
            image_lists = make_image_files(tmp / "images", args.writers, args.results)
            sqlite_target = str(tmp / "writers.sqlite3")
            settings = {"postgresql": pg_settings(server), "sqlite": sqlite_settings(Path(sqlite_target))}
            for engine, target in (("postgresql", fresh_database_url(server)), ("sqlite", sqlite_target)):
                print(f"{engine}: {args.writers} writers × {args.results // args.writers:,} results ...",
                      file=sys.stderr)
                result = writer_benchmark(engine, target, image_lists)
                report["writers"].append(result)
                failures += [f"{engine}: {e}" for e in result["errors"]]
                if result["lost"] or result["duplicated"] or not result["audit_ok"]:
                    failures.append(f"{engine}: {result['lost']} lost, {result['duplicated']} duplicated, "
                                    f"audit {'ok' if result['audit_ok'] else 'BROKEN'}")
            if args.classify_n > 0:
                print(f"classify --db: {args.classify_n} images, {args.repeats} repeats ...", file=sys.stderr)
                try:
                    report["classify"] = classify_benchmark(server, tmp, args.classify_n, args.repeats,
                                                            data_dir(args.data))
                    failures += report["classify"]["problems"]
                except RuntimeError as err:
                    failures.append(str(err))
    finally:
        server.stop()
    settings["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform(terse=True)}"
    settings["load_start"], settings["load_end"] = load_start, load()
    report["settings"] = settings
    report["targets"] = targets(report, args.writers, args.results)
    report["failures"] = failures
    print(markdown(report))
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
