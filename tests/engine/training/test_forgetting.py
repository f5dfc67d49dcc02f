"""The forgetting guards: each epoch holds every lab image and the asked share of replay images;
distillation is zero when the student agrees with the teacher and grows as it departs."""

from __future__ import annotations

import numpy as np
import torch

from engine.training.forgetting import distillation_loss, epoch_order, frozen_teacher


def test_an_epoch_holds_every_lab_image_once_and_the_asked_share_of_replay():
    rng = np.random.default_rng(0)
    order = epoch_order(10, 100, 1.5, rng)
    assert sorted(order[order < 10].tolist()) == list(range(10))
    replay = order[order >= 10]
    assert len(replay) == 15 and len(set(replay.tolist())) == 15 and replay.max() < 110
    assert sorted(epoch_order(10, 4, 1.0, rng).tolist()) == list(range(14))  # fewer replay images than asked
    assert sorted(epoch_order(5, 0, 1.0, rng).tolist()) == list(range(5))  # no replay set


def test_distillation_is_zero_on_agreement_and_grows_with_disagreement():
    teacher = torch.tensor([[2.0, 0.5, -1.0, 0.0]])
    assert float(distillation_loss(teacher.clone(), teacher, 2.0)) < 1e-6
    near = distillation_loss(teacher + torch.tensor([[0.0, 0.3, 0.0, 0.0]]), teacher, 2.0)
    far = distillation_loss(teacher.flip(1), teacher, 2.0)
    assert 0 < float(near) < float(far)


def test_the_teacher_is_a_frozen_copy():
    net = torch.nn.Linear(3, 4)
    teacher = frozen_teacher(net)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not torch.equal(net.weight, teacher.weight)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
