"""Plots of VIL fields: the colormap and levels (defined once, in :mod:`.colors`)."""
