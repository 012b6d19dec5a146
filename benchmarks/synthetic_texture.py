"""How radar-like the synthetic stores are: spectral slope, wet area, intensities, Lagrangian lifetimes.

Measures, on evenly spaced events of the cached synthetic SEVIR-LR stores (128² pixels of 3 km,
10-min frames) for the smooth first version (``cells``) and the radar texture (``radar``):

* the exponent β of the radially averaged power spectrum ``P(k) ∝ k^−β`` of the VIL field (kg m⁻²),
  fitted over wavelengths 6–48 km and 48–192 km;
* the wet-area fraction (VIL ≥ byte 16) and, among wet pixels, the fraction at or above each higher
  SEVIR threshold;
* the lag-one (10 min) Lagrangian correlation per octave of wavelength and the decorrelation time
  ``τ = −Δt / ln ρ`` it implies.

These are the statistics by which STEPS-type models describe radar precipitation (power-law spectra,
intermittency, lifetimes growing with scale). Writes ``benchmarks/results/synthetic_texture.{json,md}``.

    python benchmarks/synthetic_texture.py [--events 48]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from common import ROOT, header, provenance, write_results
from nowcast.data.codec import SEVIR_THRESHOLDS, decode_vil
from nowcast.data.fieldstats import exceedance_fractions, lagrangian_correlation, octave_bands, spectral_slope
from nowcast.data.synthetic_store import synthetic_store
from nowcast.foundation.cli import count

KM_PX, STEP_MIN = 3.0, 10.0


def measure(store: str, events: int) -> dict:
    """The statistics of ``events`` evenly spaced events of a store."""
    import zarr

    vil = zarr.open_group(store, mode="r")["vil"]
    idx = np.unique(np.linspace(0, vil.shape[0] - 1, events).round().astype(int))
    fields, wet, rhos = [], [], []
    bands = octave_bands(vil.shape[-1], KM_PX)
    for e in idx:
        b = np.asarray(vil[int(e)])                       # (T, H, W) bytes
        if (b == 255).any():
            continue
        wet.append(exceedance_fractions(b, SEVIR_THRESHOLDS))
        kg = decode_vil(b)
        rainy = [t for t in range(0, len(kg), 4) if (b[t] >= 16).mean() > 0.02]
        fields += [kg[t] for t in rainy]
        if (b >= 16).mean() > 0.02:
            rhos.append(lagrangian_correlation(kg, KM_PX, bands)[1])
    frac = np.mean(wet, axis=0)
    rho = np.nanmean(rhos, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = -STEP_MIN / np.log(rho)
    return {"events": len(wet), "frames_in_spectra": len(fields),
            "spectral_slope_6_48km": spectral_slope(np.stack(fields), KM_PX, 6.0, 48.0),
            "spectral_slope_48_192km": spectral_slope(np.stack(fields), KM_PX, 48.0, 192.0),
            "wet_fraction": float(frac[0]),
            "fraction_of_wet_at_or_above": {str(t): float(f / frac[0]) for t, f in zip(SEVIR_THRESHOLDS[1:], frac[1:])},
            "lagrangian": [{"band_km": [lo, hi], "rho_10min": float(r), "tau_min": float(t)}
                           for (lo, hi), r, t in zip(bands, rho, tau)]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=count(1), default=48, help="events measured per store")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    meta = provenance("python benchmarks/synthetic_texture.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    res = {t: measure(synthetic_store(480, texture=t), args.events) for t in ("cells", "radar")}
    lines = header("Synthetic storms: how radar-like", meta)
    lines += ["", "Evenly spaced events without missing pixels of each cached 480-event SEVIR-LR store "
              "(3 km pixels, 10-min frames); spectra of every 4th frame with > 2 % wet area (VIL in kg m⁻²).", "",
              "| statistic | cells (first version) | radar texture |", "|---|---|---|"]
    c, r = res["cells"], res["radar"]
    lines += [f"| events measured | {c['events']} | {r['events']} |",
              f"| spectral slope β, 6–48 km | {c['spectral_slope_6_48km']:.2f} | {r['spectral_slope_6_48km']:.2f} |",
              f"| spectral slope β, 48–192 km | {c['spectral_slope_48_192km']:.2f} | {r['spectral_slope_48_192km']:.2f} |",
              f"| wet-area fraction (≥ 16) | {c['wet_fraction']:.3f} | {r['wet_fraction']:.3f} |"]
    for t in SEVIR_THRESHOLDS[1:]:
        lines.append(f"| wet pixels ≥ {t} | {c['fraction_of_wet_at_or_above'][str(t)]:.4f} | "
                     f"{r['fraction_of_wet_at_or_above'][str(t)]:.4f} |")
    for lc, lr in zip(c["lagrangian"], r["lagrangian"]):
        lo, hi = lc["band_km"]
        lines.append(f"| Lagrangian ρ(10 min) / τ, {lo:g}–{hi:g} km | {lc['rho_10min']:.3f} / {lc['tau_min']:.0f} min | "
                     f"{lr['rho_10min']:.3f} / {lr['tau_min']:.0f} min |")
    write_results(Path(args.out), "synthetic_texture", {**meta, "results": res}, lines + [""])
    return 0


if __name__ == "__main__":
    from nowcast.foundation.cli import run_main

    raise SystemExit(run_main(main))
