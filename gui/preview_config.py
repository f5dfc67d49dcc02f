"""How the preview's parameters differ from the active model's, in words for people (Qt-free).

:func:`config_differences` names each parameter of a
:class:`~engine.imaging.preprocess.PreprocessConfig` in which the parameters on screen differ from
the model's (one name per colour-range bound), for the preview's "these parameters differ" notice
(:mod:`gui.preview_controls`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.imaging.preprocess import PreprocessConfig

PARAMETER_LABELS = {
    "clahe_clip_limit": "CLAHE clip limit",
    "clahe_tile_grid": "CLAHE tile grid",
    "lab_source": "LAB source",
    "model_input": "model input",
    "mask_close_px": "mask closing",
    "image_size": "input size",
    "crop": "crop",
    "mean": "normalisation mean",
    "std": "normalisation std",
}


def config_differences(current: PreprocessConfig, reference: PreprocessConfig) -> list[str]:
    """Names (for people) of the parameters in which ``current`` differs from ``reference``."""
    out: list[str] = []
    for name, label in PARAMETER_LABELS.items():
        if getattr(current, name) != getattr(reference, name):
            out.append(label)
    ref_ranges = {r.name: r for r in reference.color_ranges}
    cur_ranges = {r.name: r for r in current.color_ranges}
    for name in list(ref_ranges) + [n for n in cur_ranges if n not in ref_ranges]:
        a, b = cur_ranges.get(name), ref_ranges.get(name)
        if a is None or b is None:
            out.append(f"{name} range")
            continue
        for bound in ("lower", "upper"):
            for channel, x, y in zip("Lab", getattr(a, bound), getattr(b, bound), strict=False):
                if x != y:
                    out.append(f"{name} {channel} {'low' if bound == 'lower' else 'high'}")
    return out
