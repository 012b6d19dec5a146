"""Verification of nowcasts: scores only (forecasting methods live in :mod:`nowcast.baselines`).

Modules
-------
categorical
    Int64 contingency counts at thresholds × pooling scales × lead times, mergeable, and
    CSI/POD/FAR/SUCR/BIAS/HSS/ETS/CSI-M.
spatial
    Fractions skill score, accumulated as exact sums over batches.
ensemble
    CRPS (ensemble and fair estimators), rank histogram, Brier score, spread–skill, reliability.
perceptual
    LPIPS (AlexNet) and Inception-v3 features, weights resolved offline through ``nowcast.hub``.
accumulate
    The one-pass accumulator: (ensemble, target) batches in, an xarray Dataset out.
summarise
    Scores from counts and sums, per lead time and pooled over lead times.
report
    Markdown tables and JSON summaries of the results.
"""
