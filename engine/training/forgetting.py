"""Guarding a fine-tune against forgetting what the model it starts from knew.

Fine-tuning the shipped ResNet18 on 117 images of a differently stained lab raised that lab's
accuracy from 66 % to 91 % and dropped the original lab's from 98 % to 39 % (issue 14). Two
guards, both on by default when a fine-tune starts from an ALLSight model:

* **Replay** — where the lab has the original development set, each epoch mixes
  ``replay_ratio`` (default 2) of its *training-split* images per lab image into the batches (never its test
  split: that stays the untouched reference of the compare step).
* **Distillation** (learning without forgetting, Li & Hoiem 2016) — the starting model, frozen,
  is the teacher: the new model is also trained to keep the teacher's softened outputs
  (temperature ``distill_temperature``) on every training image, lab and replay alike. This is
  the guard that still works when the lab has only its own images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only inside the functions: the wizard's time estimate needs replayed_per_epoch
    import torch
    from torch import nn


def replayed_per_epoch(n_lab: int, n_replay: int, replay_ratio: float) -> int:
    """How many replay images one epoch mixes in: ``round(replay_ratio * n_lab)``, at most all."""
    return min(n_replay, round(replay_ratio * n_lab)) if n_replay else 0


def epoch_order(n_lab: int, n_replay: int, replay_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``lab + replay`` images for one epoch: every lab image, plus
    ``round(replay_ratio * n_lab)`` replay images drawn without replacement (all of them when
    there are fewer), shuffled together."""
    lab = np.arange(n_lab)
    k = replayed_per_epoch(n_lab, n_replay, replay_ratio)
    replay = n_lab + rng.choice(n_replay, size=k, replace=False) if k else np.array([], np.int64)
    return rng.permutation(np.concatenate([lab, replay]).astype(np.int64))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence of the teacher's softened distribution from the student's, scaled by T²
    so its gradients keep the size of the cross-entropy's (Hinton et al. 2015)."""
    from torch import nn

    t = float(temperature)
    return nn.functional.kl_div(nn.functional.log_softmax(student_logits / t, dim=1),
                                nn.functional.log_softmax(teacher_logits / t, dim=1),
                                reduction="batchmean", log_target=True) * (t * t)


def frozen_teacher(net: nn.Module) -> nn.Module:
    """An evaluation-mode copy of ``net`` whose weights never change."""
    import copy

    teacher = copy.deepcopy(net).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


__all__ = ["distillation_loss", "epoch_order", "frozen_teacher", "replayed_per_epoch"]
