"""What the shipped graph's format costs, measured in one run: the graph as shipped (class maps
for Grad-CAM, float16 initialisers cast at load, batch norm left for ONNX Runtime to fold)
against the same network exported as before (no class maps, float32, batch norm folded by the
exporter), on the same inputs, interleaved.

    python benchmarks/graph_cost.py [--model resnet18] [--batch 32] [--rounds 7]

Reports images/s of each (median of the rounds, the two alternated so drift hits both), the
ratio, session-creation seconds and file sizes. Needs the training extra (it exports).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def plain_export(loaded) -> bytes:
    """The format-2 graph: logits and pooled features only, exporter defaults (BN folded, fp32)."""
    import torch

    from engine.inference import onnx_export

    original = onnx_export._class_map_weights, onnx_export._compact
    onnx_export._class_map_weights = lambda *a, **k: None
    onnx_export._compact = lambda model: None
    real_export = torch.onnx.export

    def folded(*args, **kwargs):  # the exporter's defaults, as the format-2 graphs were made
        kwargs.pop("training", None)
        kwargs.pop("do_constant_folding", None)
        return real_export(*args, **kwargs)

    torch.onnx.export = folded
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return onnx_export.export_bytes(loaded)
    finally:
        onnx_export._class_map_weights, onnx_export._compact = original
        torch.onnx.export = real_export



def session(blob: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    start = time.perf_counter()
    sess = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    return sess, time.perf_counter() - start


def main() -> int:
    import numpy as np

    from engine.models.graphs import OUTPUT_NAMES, read_graph
    from engine.models.resolve import load_model, resolve_model_card

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    card = resolve_model_card(args.model)
    shipped = read_graph(card)
    if shipped is None:
        sys.exit(f"{card.id} has no shipped graph")
    plain = plain_export(load_model(card))
    graphs = {"shipped": shipped, "plain (format 2)": plain}
    sessions = {name: session(blob) for name, blob in graphs.items()}
    size = card.image_size
    images = np.random.default_rng(0).integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8)
    for sess, _ in sessions.values():  # warm-up
        sess.run(list(OUTPUT_NAMES), {"images": images})
    rates: dict[str, list[float]] = {name: [] for name in graphs}
    for _ in range(args.rounds):
        for name, (sess, _) in sessions.items():
            start = time.perf_counter()
            sess.run(list(OUTPUT_NAMES), {"images": images})
            rates[name].append(args.batch / (time.perf_counter() - start))
    shipped_rate, plain_rate = (statistics.median(rates[n]) for n in graphs)
    print(f"| graph ({card.id} {card.version}, {size} px, batch {args.batch}, 1 thread) | images/s | "
          "session s | MB |")
    print("| --- | --- | --- | --- |")
    for name, blob in graphs.items():
        print(f"| {name} | {statistics.median(rates[name]):.1f} | {sessions[name][1]:.2f} | {len(blob) / 1e6:.1f} |")
    print(f"\nshipped / plain: {shipped_rate / plain_rate:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
