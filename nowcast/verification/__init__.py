"""Verification: streaming categorical scores at thresholds × pooling scales × lead times (more to come).

Modules
-------
categorical
    Int64 contingency counts, mergeable, and CSI/POD/FAR/SUCR/BIAS/HSS/ETS/CSI-M.
ensemble
    CRPS (ensemble and fair estimators), rank histogram, Brier score.
spatial
    Fractions skill score, accumulated as sums over batches.
"""
