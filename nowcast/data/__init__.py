"""The SEVIR data pipeline.

Modules
-------
codec
    VIL bytes ⇄ kg m⁻², thresholds, the models' ``byte/255`` scale.
sevir
    CATALOG.csv reading and filtering, lazily opened HDF5 events, SEVIR-LR downsampling.
synthetic
    A deterministic generator of SEVIR-format storms (HDF5 + catalog).
windows
    Task presets (``sevir``, ``sevirlr``) and the windowed torch ``Dataset``.
store
    The resumable zarr store ``(event, time, y, x)`` builder, split lists, and opening a store.
"""
