"""Plots of VIL fields: the colormap and levels (defined once, in :mod:`.colors`) and offline maps
(:mod:`.maps`: :func:`~.maps.plot_vil`, :func:`~.maps.forecast_panel`). Importing this package
imports neither matplotlib nor cartopy; the functions do when called."""

from .colors import MISSING_COLOR, VIL_COLORS, VIL_LEVELS, vil_cmap
from .maps import forecast_panel, has_cartopy, plot_vil, sevir_crs

__all__ = ["VIL_LEVELS", "VIL_COLORS", "MISSING_COLOR", "vil_cmap", "plot_vil", "forecast_panel", "has_cartopy",
           "sevir_crs"]
