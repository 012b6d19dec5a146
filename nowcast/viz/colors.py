"""The SEVIR VIL colormap and levels, defined once for every plot of the package.

Levels in VIL bytes (Earthformer's ``sevir_cmap.py``): 0, 16, 31, 59, 74, 100, 133, 160, 181, 219,
255. Below 16 is clear air (white); the bins then go grey, four greens, yellow, two oranges and red;
missing data (byte 255) is drawn in light grey.
"""

from __future__ import annotations

__all__ = ["VIL_LEVELS", "VIL_COLORS", "MISSING_COLOR", "vil_cmap"]

VIL_LEVELS = (0, 16, 31, 59, 74, 100, 133, 160, 181, 219, 255)
VIL_COLORS = (
    (1.0, 1.0, 1.0),
    (0.302, 0.302, 0.302),
    (0.157, 0.745, 0.157),
    (0.098, 0.588, 0.098),
    (0.039, 0.412, 0.039),
    (0.039, 0.294, 0.039),
    (0.961, 0.961, 0.0),
    (0.929, 0.675, 0.0),
    (0.941, 0.431, 0.0),
    (0.627, 0.0, 0.0),
)
MISSING_COLOR = (0.85, 0.85, 0.85)


def vil_cmap():
    """``(cmap, norm)`` for VIL bytes: a listed colormap over :data:`VIL_LEVELS` (255 and above: missing)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap(VIL_COLORS, name="sevir_vil").with_extremes(over=MISSING_COLOR, bad=MISSING_COLOR)
    return cmap, BoundaryNorm(VIL_LEVELS, cmap.N)
