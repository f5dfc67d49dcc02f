"""Give models their ONNX graphs (release time): NAME.onnx beside each NAME.safetensors, listed
and hash-bound in its card (engine.models.graphs). Training does this for every model it saves;
this is for models saved before it did, such as the shipped ones:

    .venv/bin/python scripts/export_graphs.py resources/models/resnet18.json resources/models/baseline.json

With ``--int8 DATA`` each model also gets its static INT8 graph, NAME.int8.onnx, calibrated on the
training split of the development set DATA the model was trained on, its fp32 check picked on the
validation split and scored on the test split (engine/training/int8.py); an fp32 graph already
listed and intact is kept (the INT8 graph is bound to it):

    .venv/bin/python scripts/export_graphs.py --int8 ../shared/data/aria-all resources/models/resnet18.json resources/models/baseline.json

Needs the training extra (torch, onnx). The weights are not touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.inference.onnx_export import attach_graph  # noqa: E402
from engine.models.checkpoint import read_card  # noqa: E402
from engine.models.graphs import graph_path, read_graph  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cards", nargs="+", metavar="CARD", help="a model's .json card (or its .safetensors)")
    parser.add_argument("--int8", metavar="DATA", type=Path, help="also make the INT8 graph, from this development set")
    args = parser.parse_args(argv)
    for path in args.cards:
        card = read_card(path)
        if args.int8 is None or read_graph(card) is None:
            card = attach_graph(card)
        graph = graph_path(card)
        assert graph is not None
        print(f"{card.id} {card.version}: {graph} ({graph.stat().st_size / 1e6:.1f} MB, "
              f"sha256 {card.graphs['fp32']['sha256'][:12]}...)")
        if args.int8 is not None:
            from engine.training.int8 import attach_int8_graph

            card = attach_int8_graph(card, args.int8)
            entry = card.graphs["int8"]
            agreement, speed = entry["agreement"], entry["speed"]
            print(f"  INT8 {graph_path(card, 'int8')} (sha256 {entry['sha256'][:12]}...), fp32 check "
                  f"{entry['fp32_check']}; test split ({agreement['images']} images): calls agree "
                  f"{agreement['call_agreement']:.2%} ({agreement['call_agreement_without_check']:.2%} without the "
                  f"check), flags {agreement['flag_agreement']:.2%} ({agreement['flag_agreement_without_check']:.2%}), "
                  f"{agreement['fp32_rerun_fraction']:.1%} run again in fp32; network {speed['int8_over_fp32']:.2f} x "
                  f"fp32 on {speed['cpu']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
