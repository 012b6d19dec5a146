"""How much of a radar field a nowcaster's VAE keeps: encode → decode of observed frames, scored as a forecast.

Every frame of evenly spaced test windows of a store goes through the model's frame VAE (posterior
mean, decoded) and is scored against itself with the categorical scores of the verification
pipeline (CSI per SEVIR threshold at pixel scale and after 4×4 / 16×16 max pooling). A VAE that
cannot keep cores above 133 bytes caps every forecast decoded through it. Writes
``benchmarks/results/vae_round_trip.{json,md}`` (or ``--name``).

    python benchmarks/vae_round_trip.py [--model default] [--windows 32] [--texture radar]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import ROOT, header, provenance, write_results
from nowcast.data.codec import from_unit, to_unit
from nowcast.data.synthetic_store import synthetic_store
from nowcast.models.model_files import load_vae, read_meta
from nowcast.nowcasters.scoring import select_windows, window_bytes
from nowcast.verification.accumulate import EvaluationAccumulator
from nowcast.verification.summarise import summarize
from nowcast.foundation.cli import count


def round_trip_scores(vae, store: str, task: str, windows: int) -> dict:
    """CSI per threshold and scale of the VAE's reconstruction of every frame of ``windows`` test windows."""
    ds, idx = select_windows(store, task, "test", windows)
    acc = None
    for i in idx:
        b = window_bytes(ds, i)                                    # (T, H, W) bytes, 255 = missing
        x = torch.from_numpy(to_unit(b))[:, None]
        with torch.no_grad():
            rec = vae.decode(vae.encode(x).mean)[:, 0].clamp(0, 1).numpy()
        pred = from_unit(rec)
        if acc is None:
            acc = EvaluationAccumulator(b.shape[0], lpips=None, fss=False)
        acc.update(pred[None], b[None])
    sm = summarize(acc.result())
    return {str(int(t)): {f"scale{int(s)}": float(sm.CSI.sel(threshold=t, scale=s)) for s in sm.scale.values}
            for t in sm.threshold.values}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default", help="a nowcaster (its VAE is measured) or a VAE: file or run dir")
    p.add_argument("--texture", default="radar", choices=("radar", "cells"), help="which synthetic store")
    p.add_argument("--data", default=None, help="another store")
    p.add_argument("--windows", type=count(1), default=32)
    p.add_argument("--name", default="vae_round_trip")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    meta = provenance("python benchmarks/vae_round_trip.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    vae = load_vae(args.model).eval()                   # a VAE file, or the VAE inside a nowcaster's file
    task = read_meta(args.model).get("task", "sevirlr")
    store = args.data or synthetic_store(480, texture=args.texture)
    csi = round_trip_scores(vae, store, task, args.windows)
    lines = header("VAE round trip: encode → decode of observed frames", meta)
    lines += [f"- model: `{args.model}`; store: `{store}`; {args.windows} test windows, every frame", "",
              "| threshold (bytes) | CSI | CSI pool4 | CSI pool16 |", "|---|---|---|---|"]
    lines += [f"| {t} | {v['scale1']:.3f} | {v['scale4']:.3f} | {v['scale16']:.3f} |" for t, v in csi.items()]
    write_results(Path(args.out), args.name, {**meta, "model": args.model, "store": store, "csi": csi}, lines + [""])
    return 0


if __name__ == "__main__":
    from nowcast.foundation.cli import run_main

    raise SystemExit(run_main(main))
