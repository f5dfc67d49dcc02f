"""Give models their ONNX graphs (release time): NAME.onnx beside each NAME.safetensors, listed
and hash-bound in its card (engine.models.graphs). Training does this for every model it saves;
this is for models saved before it did, such as the shipped ones:

    .venv/bin/python scripts/export_graphs.py resources/models/resnet18.json resources/models/baseline.json

Needs the training extra (torch, onnx). The weights are not touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.inference.onnx_export import attach_graph  # noqa: E402
from engine.models.checkpoint import read_card  # noqa: E402
from engine.models.graphs import graph_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cards", nargs="+", metavar="CARD", help="a model's .json card (or its .safetensors)")
    args = parser.parse_args(argv)
    for path in args.cards:
        card = attach_graph(read_card(path))
        graph = graph_path(card)
        assert graph is not None
        print(f"{card.id} {card.version}: {graph} ({graph.stat().st_size / 1e6:.1f} MB, "
              f"sha256 {card.graphs['fp32']['sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
