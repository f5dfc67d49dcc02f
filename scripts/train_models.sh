#!/usr/bin/env bash
# The recipe behind the shipped models and docs/results.md, one command:
#     scripts/train_models.sh [DATA_DIR]        (default ../shared/data/aria-all)
# Trains ResNet18 (from scratch: no ImageNet weights on the build machine) and the baseline on
# the random and the block split, measures each on its own test split (clean and under camera
# shifts), and installs the random-split models as the shipped ones. Deterministic for the
# seeds below; resumable: re-running continues each unfinished run from its last epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/aria-all}
PY=${PYTHON:-.venv/bin/python}
COMMON=(--init scratch --image-size 128 --batch-size 64 --seed 0 --model-input enhanced --resume)
# ResNet18 v1.1: 50 epochs, patience 15 (v1.0: 35 and 10). The "microscope" augmentation preset
# was tried and measured worse on the random split (docs/results.md); the standard one is used.
R18=(--epochs 50 --patience 15 --augment standard --model-version 1.1.0)

$PY main.py train "$DATA" --arch resnet18 --split random "${R18[@]}" "${COMMON[@]}" --out runs/r18-random-e50 --id resnet18
$PY main.py train "$DATA" --arch resnet18 --split block  "${R18[@]}" "${COMMON[@]}" --out runs/r18-block-e50 --id resnet18-block
$PY main.py train "$DATA" --arch baseline --split random --epochs 30 --patience 10 "${COMMON[@]}" --out runs/baseline-random --id baseline
$PY main.py train "$DATA" --arch baseline --split block  --epochs 30 --patience 10 "${COMMON[@]}" --out runs/baseline-block --id baseline-block

$PY benchmarks/model_results.py "$DATA" runs/r18-random-e50/resnet18.safetensors runs/r18-block-e50/resnet18-block.safetensors \
    runs/baseline-random/baseline.safetensors runs/baseline-block/baseline-block.safetensors --out docs/results

mkdir -p resources/models
for m in runs/r18-random-e50/resnet18 runs/baseline-random/baseline; do
  cp "$m.safetensors" "$m.json" resources/models/
done

# Ablation reported in docs/results.md: the same ResNet18 recipe fed the colour-masked image.
$PY main.py train "$DATA" --arch resnet18 --split random --epochs 30 --patience 8 --init scratch --image-size 128 \
    --batch-size 64 --seed 0 --model-input masked --resume --out runs/resnet18-random-masked --id resnet18-masked
