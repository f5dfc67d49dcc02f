"""How fast could *any* classify be here? A stripped-down pipeline, timed against the ceiling.

    python benchmarks/minimal_pipeline.py DATA_DIR [--model resnet18] [--n 500] [--repeats 3]

Runs, as a fresh process per repeat, the least a classifier of the same files can do: import
NumPy, OpenCV and ONNX Runtime, create the session from the cached ONNX graph (no integrity
checks), and in two threads decode each JPEG with OpenCV and apply the model's preprocessing
(crop/resize, LAB CLAHE), running each batch of 64 through the network as soon as the session
is up — no out-of-distribution scores, no result objects, no output file. It is the product's
pipeline minus everything that makes it a product, so its images/s bounds what `classify` can
reach on this machine. Prints its median wall time beside the ceiling (the model alone on
pre-made tensors, as in benchmarks/inference.py) measured in the same run.
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
sys.path.insert(0, str(REPO / "benchmarks"))

MINIMAL = r"""
import sys, threading
import numpy as np, cv2
graph, size, clip, grid, folder = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
import os
files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
chunks = [files[i:i + 64] for i in range(0, len(files), 64)]
clahe = cv2.createCLAHE(clip, (grid, grid))

def prepare(path):
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    small = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB)
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)

cond = threading.Condition()
state = {"next_prep": 0, "prepared": {}, "next_net": 0, "session": None}

def work():
    while True:
        with cond:
            while True:
                if state["session"] is not None and state["next_net"] in state["prepared"]:
                    i = state["next_net"]; state["next_net"] += 1
                    job = ("net", i, state["prepared"].pop(i)); break
                if state["next_prep"] < len(chunks) and len(state["prepared"]) < 8:
                    i = state["next_prep"]; state["next_prep"] += 1; job = ("prep", i, None); break
                if state["next_net"] >= len(chunks):
                    return
                cond.wait()
        if job[0] == "prep":
            x = np.stack([prepare(p) for p in chunks[job[1]]])
            with cond:
                state["prepared"][job[1]] = x; cond.notify_all()
        else:
            state["session"].run(None, {"images": job[2]})

workers = [threading.Thread(target=work) for _ in range(2)]
for w in workers:
    w.start()
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
with cond:
    state["session"] = session; cond.notify_all()
for w in workers:
    w.join()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from inference import ceiling, image_files, link_folder

    from engine.inference.onnx_export import cache_path, ensure_cached
    from engine.models.resolve import resolve_model_card

    card = resolve_model_card(args.model)
    ensure_cached(card)
    pp = card.preprocess
    if pp.model_input != "enhanced" or pp.crop != "center":
        sys.exit("this bound reproduces the 'enhanced' centre-crop preprocessing only")
    with tempfile.TemporaryDirectory() as tmp:
        folder = link_folder(image_files(args.data_dir, args.n), Path(tmp) / "batch")
        cmd = [sys.executable, "-c", MINIMAL, str(cache_path(card)), str(pp.image_size),
               str(pp.clahe_clip_limit), str(pp.clahe_tile_grid), str(folder)]
        walls = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            walls.append(time.perf_counter() - start)
    ceilings = [ceiling(args.model, max(256, args.n), 64, "onnx") for _ in range(args.repeats)]
    wall, ceil = statistics.median(walls), statistics.median(ceilings)
    print(f"minimal pipeline, {args.n} JPEGs, process start included: {args.n / wall:.1f} images/s "
          f"(median of {[round(w, 2) for w in walls]} s)")
    print(f"ceiling: {ceil:.1f} images/s (runs {[round(c, 1) for c in ceilings]})")
    print(f"minimal pipeline / ceiling = {args.n / wall / ceil:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
