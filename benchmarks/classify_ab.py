"""A/B: `main.py classify` of two checkouts (e.g. the last release and this tree), in one run.

    python benchmarks/classify_ab.py DATA_DIR --a OLD_CHECKOUT [--a-model ID|PATH] \
        [--b .] [--b-model ID|PATH] [--n 500] [--repeats 5]

Both run as fresh processes with the same Python on the same 500 files, alternating A, B, A, B,
... after one warm-up run each (which fills each model's ONNX cache), so a machine that speeds
up or slows down during the run affects both alike. Prints the median wall time of each and
B's throughput as a ratio of A's: the figure the trust issue's speed budget is stated in
("within 15 % of today's images/s, same run").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_classify(checkout: Path, model: str, folder: Path, out: Path) -> float:
    cmd = [sys.executable, str(checkout / "main.py"), "classify", str(folder), "--out", str(out), "--model", model]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:  # 3 would mean error rows: then it did not classify what it timed
        raise SystemExit(f"{checkout}: classify failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> int:
    from engine.io.images import scan_paths

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--a", required=True, help="checkout A (e.g. a worktree of the last release)")
    ap.add_argument("--a-model", default="resnet18")
    ap.add_argument("--b", default=str(REPO))
    ap.add_argument("--b-model", default="resnet18")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    files = list(scan_paths([Path(args.data_dir)]).images)[:: max(1, 2735 // args.n)][: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i, f in enumerate(files):  # links: nothing of the data set is copied
            (folder / f"{i:05d}{f.suffix}").symlink_to(f.resolve())
        sides = {"A": (Path(args.a).resolve(), args.a_model), "B": (Path(args.b).resolve(), args.b_model)}
        times: dict[str, list[float]] = {"A": [], "B": []}
        for name, (checkout, model) in sides.items():
            run_classify(checkout, model, folder, Path(tmp) / f"{name}.csv")  # warm-up, fills the cache
        for _ in range(args.repeats):
            for name, (checkout, model) in sides.items():
                times[name].append(run_classify(checkout, model, folder, Path(tmp) / f"{name}.csv"))
    n = len(files)
    print(f"{n} images, {args.repeats} alternating runs each, process start included\n")
    print("| side | checkout | model | median s | images/s | runs (s) |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    rates = {}
    for name, (checkout, model) in sides.items():
        med = statistics.median(times[name])
        rates[name] = n / med
        print(f"| {name} | {checkout} | {model} | {med:.2f} | {rates[name]:.1f} | "
              f"{', '.join(f'{t:.2f}' for t in times[name])} |")
    print(f"\nB / A throughput: {rates['B'] / rates['A']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
