"""Colours that stay distinct and consistent for hundreds of categories."""

from __future__ import annotations

import colorsys

import numpy as np
from matplotlib import colormaps

_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def category_colors(n: int) -> np.ndarray:
    """``n`` RGB colours: ``tab20`` for up to 20 categories, golden-ratio hues beyond.

    Category ``k`` always gets the same colour for a given ``n``, so every panel of a figure (and
    every section) shows a domain in the same colour.
    """
    if n <= 20:
        return np.asarray(colormaps["tab20"].colors)[:n]
    hues = (np.arange(n) * _GOLDEN_RATIO_CONJUGATE) % 1.0
    lightness = 0.45 + 0.2 * (np.arange(n) % 3) / 2
    saturation = 0.65 + 0.3 * (np.arange(n) % 2)
    return np.array([colorsys.hls_to_rgb(h, l, s) for h, l, s in zip(hues, lightness, saturation, strict=True)])
