"""End-to-end inference throughput and memory, measured in one run.

    python benchmarks/inference.py DATA_DIR [--model resnet18] [--n 500] [--memory-n 10000]

Compares, on the same images and machine:
  naive     the original notebooks' loop: PIL open -> torchvision transform (224 px) ->
            model(x[None]) one image at a time, ResNet18 at 224 px
  ceiling   the product model alone, in the product's runtime (ONNX Runtime on the CPU), on the
            same images preprocessed beforehand (no decoding, no preprocessing): the fp32 graph,
            and the INT8 graph with its fp32 check (engine.inference.cascade: the images it runs
            again are real ones, so its share is the product's); torch's figure beside them
  product   `python main.py classify FOLDER --out results.csv` as a fresh process, wall clock
            including interpreter start, imports and model load (median of --repeats runs,
            after one run that fills the ONNX cache; that first run is reported too), and the
            same with `--precision fp32` and with `--backend torch`
  floor     what bounds `product` from below on this machine: a fresh process that does
            everything classify does except reading files (start, imports, model load, then
            the same number of pre-made tensors through the network: no decoding at all), and
            decoding + preprocessing alone on the same files in two threads
and the peak RSS of `classify` over 1,000 and 10,000 images (links to the data set's files).
The ceiling is the median of --repeats measurements. Prints a Markdown table for
docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def image_files(data_dir: Path, n: int) -> list[Path]:
    from engine.io.images import scan_paths

    files = list(scan_paths([data_dir]).images)
    if not files:
        sys.exit(f"no images under {data_dir}")
    return [files[i % len(files)] for i in range(n)]


def link_folder(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        os.symlink(f.resolve(), folder / f"img{i:05d}{f.suffix}")
    return folder


def naive_loop(files: list[Path]) -> float:
    import torch
    import torchvision.transforms as T
    from PIL import Image
    from torchvision.models import resnet18

    net = resnet18(num_classes=4).eval()
    tf = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    start = time.perf_counter()
    with torch.no_grad():
        for f in files:
            x = tf(Image.open(f).convert("RGB"))
            net(x[None]).argmax(1)
    return len(files) / (time.perf_counter() - start)


def preprocessed(model: str, files: list[Path]):
    """The model inputs of ``files``, made as classify makes them: (N, S, S, 3) uint8."""
    import numpy as np

    from engine.inference.classifier import Classifier

    clf = Classifier(model, device="cpu", precision="fp32")
    return np.stack([clf._prepare_path(f).pixels for f in files])


def ceiling(model: str, pixels, batch_size: int, backend: str, precision: str = "auto") -> tuple[float, float]:
    """The network alone on ``pixels``, used as the product uses it: ONNX Runtime sessions are
    called from ``parallel_batches`` threads at once (one compute thread each); torch from one
    thread with all cores. Returns (images/s, share of images the INT8 graph's fp32 check ran
    again: 0 for fp32)."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.inference.classifier import Classifier, configure_threads

    configure_threads()
    clf = Classifier(model, device="cpu", backend=backend, precision=precision)
    batches = [pixels[i:i + batch_size] for i in range(0, len(pixels), batch_size)]
    with ThreadPoolExecutor(clf.parallel_batches) as pool:
        list(pool.map(clf.backend.run, batches[: clf.parallel_batches]))  # warm-up
        checked_before = getattr(clf.backend, "images_checked", 0)
        start = time.perf_counter()
        list(pool.map(clf.backend.run, batches))
        rate = len(pixels) / (time.perf_counter() - start)
    return rate, (getattr(clf.backend, "images_checked", 0) - checked_before) / len(pixels)


NETWORK_ONLY = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from engine.inference.classifier import Classifier
model, pixels, batch, precision = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
clf = Classifier(model, device="cpu", precision=precision)
x = np.load(pixels)
with ThreadPoolExecutor(clf.parallel_batches) as pool:
    list(pool.map(clf.backend.run, [x[i:i + batch] for i in range(0, len(x), batch)]))
"""


def network_only_process(model: str, pixels_file: Path, batch_size: int, precision: str = "auto") -> float:
    """Wall seconds of a fresh process that starts, loads the model as classify does and runs
    the pre-made images of ``pixels_file`` through the network: classify without decoding."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", NETWORK_ONLY, model, str(pixels_file), str(batch_size), precision],
                   cwd=REPO, check=True)
    return time.perf_counter() - start


def decode_only(model: str, files: list[Path], workers: int) -> float:
    """Images/s of reading and preprocessing ``files`` (as classify does) in ``workers`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.inference.classifier import Classifier

    clf = Classifier(model, device="cpu")
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(clf._prepare_path, files[:50]))  # warm-up
        start = time.perf_counter()
        list(pool.map(clf._prepare_path, files))
        return len(files) / (time.perf_counter() - start)


def run_classify(folder: Path, model: str, out_csv: Path, batch_size: int,
                 backend: str = "auto", precision: str = "auto") -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB (the child's VmHWM, polled), exit code."""
    cmd = [sys.executable, "main.py", "classify", str(folder), "--model", model, "--out", str(out_csv),
           "--batch-size", str(batch_size), "--backend", backend]
    if backend != "torch":
        cmd += ["--precision", precision]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_kb = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read()
    if proc.returncode not in (0, 3):
        sys.exit(f"classify failed ({proc.returncode}): {stderr[-2000:]}")
    return wall, peak_kb / 1024, proc.returncode


def gui_figures(folder: Path, n: int, tmp: Path) -> dict:
    """benchmarks/gui_responsiveness.py on (links to) the same files, in a process of its own."""
    import json

    out = tmp / "gui.json"
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gui_responsiveness.py"), "--images", str(folder),
                    "--n", str(n), "--launches", "1", "--cache", "warm", "--json", str(out)],
                   cwd=REPO, env=env, check=True, capture_output=True)
    return json.loads(out.read_text(encoding="utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--naive-n", type=int, default=200)
    parser.add_argument("--memory-n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gui", action="store_true",
                        help="also the desktop app on the same files (benchmarks/gui_responsiveness.py): end to end, "
                             "first result, worst event-loop gap from the click")
    args = parser.parse_args()

    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # A fresh ONNX cache: the first run pays the one-off export, as on a new machine.
        os.environ["ALLSIGHT_CACHE_DIR"] = str(tmp / "cache")
        files = image_files(args.data_dir, args.n)
        folder = link_folder(files, tmp / "batch")
        first, _, _ = run_classify(folder, args.model, tmp / "r.csv", args.batch_size)
        runs = [run_classify(folder, args.model, tmp / "r.csv", args.batch_size) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        rss_small = max(r[1] for r in runs)
        product = args.n / wall
        fp32_wall = statistics.median(
            run_classify(folder, args.model, tmp / "f.csv", args.batch_size, precision="fp32")[0]
            for _ in range(args.repeats))
        torch_wall = statistics.median(
            run_classify(folder, args.model, tmp / "t.csv", args.batch_size, "torch")[0] for _ in range(args.repeats))
        import numpy as np

        pixels = preprocessed(args.model, files)
        np.save(tmp / "pixels.npy", pixels)
        ceilings = {p: [ceiling(args.model, pixels, args.batch_size, "onnx", p) for _ in range(args.repeats)]
                    for p in ("fp32", "auto")}
        ceil_fp32 = statistics.median(c[0] for c in ceilings["fp32"])
        ceil = statistics.median(c[0] for c in ceilings["auto"])
        checked = ceilings["auto"][0][1]
        ceil_torch = ceiling(args.model, pixels, args.batch_size, "torch")[0]
        naive = naive_loop(files[: args.naive_n])
        floor_wall = statistics.median(network_only_process(args.model, tmp / "pixels.npy", args.batch_size)
                                       for _ in range(args.repeats))
        decode = decode_only(args.model, files, 2)
        from engine.inference.classifier import Classifier

        precision = Classifier(args.model, device="cpu").precision  # what classify runs here (auto)
        rows = [
            ("naive loop (PIL, 224 px ResNet18, one image at a time)", naive),
            (f"network alone, fp32 graph ({args.model}, ONNX Runtime, 2 x 1 thread: the fp32 ceiling)", ceil_fp32),
            (f"network alone as classify runs it here ({precision}; fp32 check ran {checked:.1%} again): "
             "**the ceiling**", ceil),
            (f"same, torch ({args.model}, channels-last)", ceil_torch),
            (f"product end to end: `main.py classify` on {args.n} JPEGs, process start included ({precision})",
             product),
            ("same, first run on a machine (exports the ONNX copy once)", args.n / first),
            ("same, `--precision fp32`", args.n / fp32_wall),
            ("same, `--backend torch`", args.n / torch_wall),
            (f"floor: fresh process, model load, {args.n} pre-made tensors through the network (no files)",
             args.n / floor_wall),
            ("decoding + preprocessing alone (2 threads, no network)", decode),
        ]
        gui = gui_figures(folder, args.n, tmp) if args.gui else None
        if gui is not None:
            rows.append((f"desktop app end to end on the same {gui['n']} files (click to last row)", gui["images_per_s"]))
        print("| path | images/s |\n| --- | ---: |")
        for name, value in rows:
            print(f"| {name} | {value:.1f} |")
        print(f"\nend to end / ceiling = {product / ceil:.2f}; end to end / naive = {product / naive:.2f}; "
              f"floor / ceiling = {args.n / floor_wall / ceil:.2f}; ceiling / fp32 ceiling = {ceil / ceil_fp32:.2f}; "
              f"fp32 end to end / fp32 ceiling = {args.n / fp32_wall / ceil_fp32:.2f}")
        print(f"ceiling runs: {[round(c[0], 1) for c in ceilings['auto']]}, fp32 "
              f"{[round(c[0], 1) for c in ceilings['fp32']]} images/s; floor process {floor_wall:.2f} s")
        if gui is not None:
            print(f"desktop app / CLI end to end = {gui['images_per_s'] / product:.2f} (this script's CLI figure; "
                  f"{gui['images_per_s'] * gui['cli_seconds']['plain'] / gui['n']:.2f} against the CLI run beside "
                  f"it); first result {gui['first_result_s']:.2f} s after the click; worst event-loop gap from the "
                  f"click {gui['max_gap_ms']:.1f} ms")
        print(f"classify wall time for {args.n} images: {wall:.2f} s, runs {[round(r[0], 2) for r in runs]} "
              f"(peak RSS {rss_small:.0f} MB); first run {first:.2f} s; torch backend {torch_wall:.2f} s")

        if args.memory_n:
            for n in (1000, args.memory_n):
                big = link_folder(image_files(args.data_dir, n), tmp / f"mem{n}")
                wall, rss, _ = run_classify(big, args.model, tmp / f"m{n}.csv", args.batch_size)
                print(f"classify {n} images: {wall:.1f} s, {n / wall:.1f} images/s, peak RSS {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
