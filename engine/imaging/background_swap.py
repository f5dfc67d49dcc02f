"""Background swap for training: each image's white cells pasted onto the cell-free background
of another training image, so the background tells the network nothing about the class (the
"cell" augmentation, docs/results.md "Trust")."""

from __future__ import annotations

import numpy as np

from engine.imaging.probes import cell_free, composite, swap_alpha


class BackgroundBank:
    """Per-training-image white-cell alphas and cell-free backgrounds, for background swap.

    Built once per run from the resized training images with the shortcut probes' own builders
    (:func:`engine.imaging.probes.swap_alpha`, :func:`engine.imaging.probes.cell_free`), so training sees the
    same kind of composite the background-swap probe measures; :meth:`swap` pastes image ``i``'s
    cells onto a random other image's background.
    """

    def __init__(self, images: np.ndarray) -> None:
        self.alphas = (np.stack([swap_alpha(im) for im in images]).astype(np.float16) if len(images)
                       else np.zeros((0,) + images.shape[1:3], np.float16))
        self.backgrounds = np.stack([cell_free(im) for im in images]) if len(images) else images.copy()

    def __len__(self) -> int:
        return len(self.backgrounds)

    def swap(self, i: int, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        j = int(rng.integers(len(self)))
        if j == i and len(self) > 1:
            j = (j + 1) % len(self)
        return composite(image, self.alphas[i], self.backgrounds[j])
