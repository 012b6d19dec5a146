"""Verification of nowcasts: categorical, spatial, ensemble and perceptual scores, and baselines.

Modules
-------
categorical
    Int64 contingency counts at thresholds × pooling scales × lead times, mergeable, and
    CSI/POD/FAR/SUCR/BIAS/HSS/ETS/CSI-M.
spatial
    Fractions skill score, accumulated as exact sums over batches.
ensemble
    CRPS (ensemble and fair estimators), rank histogram, Brier score, spread–skill.
perceptual
    LPIPS (AlexNet) and Inception-v3 features, weights resolved offline through ``nowcast.hub``.
baselines
    Eulerian persistence and pysteps Lagrangian extrapolation behind the model's interface.
evaluation
    The one-pass accumulator: (ensemble, target) batches in, an xarray Dataset and markdown out.
"""
