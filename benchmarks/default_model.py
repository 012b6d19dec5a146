"""Skill of the shipped default nowcaster on the synthetic SEVIR-LR test split, ensemble against ensemble.

Every method forecasts the same evenly spaced test windows with the same member seeds, scored in one
pass per method (``nowcast.nowcasters.score_nowcasters``):

* ``forecast``: the shipped default exactly as ``python -m nowcast.forecast`` runs it (its SpanLift
  solver and its own decoding);
* ``steps``: pysteps' STEPS ensemble, the ensemble the members are compared with;
* ``extrapolation`` (pysteps' Lagrangian extrapolation) and ``persistence``: deterministic;
* ``ddim:100``: the same model sampled with DDIM-100 (its teacher);
* ``old-default``: the previous shipped model as the CLI ran it (its SpanLift), read from git
  (``--old-commit``) so that no superseded weights stay in the tree.

Ensembles are scored member by member (counts summed over members), and their ensemble mean
(``+mean``), probability-matched mean (``+pm``) and, for ``forecast`` and ``steps``, probability
yes/no forecasts at levels chosen on the validation split (``+prob``) are scored from the same
members. CRPS (plain and fair) and the spread–skill ratio are per lead time and pooled. The
acceptance of the skill issue is checked and written with the figures:

    python benchmarks/default_model.py [--windows 64] [--members 8] [--level-windows 32]

Writes ``benchmarks/results/default_model.{json,md}`` and the model card's picture
(``nowcast/models/DEFAULT_MODEL.png``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from common import ROOT, header, provenance, write_results
from nowcast.data.synthetic_store import synthetic_store
from nowcast.foundation.cache import cache_dir
from nowcast.models.model_files import load_model
from nowcast.nowcasters import resolve_nowcaster, score_nowcasters, select_windows
from nowcast.verification.summarise import summarize
from nowcast.foundation.cli import count

#: The last commit whose shipped model is the pure latent diffusion default (v2).
OLD_COMMIT = "0644ddca2e0c0a5964df1a33e2efc9125b299a1e"
WEIGHTS = "nowcast/models/weights"


def _old_default(commit: str) -> tuple:
    """``(model file, spanlift file)`` of the default shipped at ``commit``, extracted from git once."""
    where = cache_dir("old-default", commit[:12])
    files = []
    for name in ("default.pt", "default-spanlift.pt"):
        path = where / name
        if not path.exists():
            where.mkdir(parents=True, exist_ok=True)
            blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{WEIGHTS}/{name}"],
                                  check=True, capture_output=True).stdout
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(blob)
            tmp.replace(path)
        files.append(path)
    return tuple(files)


def _lead_record(res) -> dict:
    rec = {"lead_time_min": [float(v) for v in res.lead_time.values],
           "CSI_M": res.CSI_M.sel(scale=1).values.tolist(), "CSI_M_pool4": res.CSI_M.sel(scale=4).values.tolist(),
           "CSI_M_pool16": res.CSI_M.sel(scale=16).values.tolist(),
           "HSS": np.nanmean(res.HSS.sel(scale=1).values, axis=0).tolist()}
    for name in ("CRPS", "CRPS_fair", "spread_skill"):
        if name in res and (name == "CRPS" or res.attrs["n_members"] > 1):
            rec[name] = res[name].values.tolist()
    return rec


def _pooled(res) -> dict:
    sm = summarize(res)
    rec = {"CSI_M": float(sm.CSI_M.sel(scale=1)), "CSI_M_pool4": float(sm.CSI_M.sel(scale=4)),
           "CSI_M_pool16": float(sm.CSI_M.sel(scale=16)), "HSS": float(np.nanmean(sm.HSS.sel(scale=1).values))}
    if "CRPS" in sm:
        rec["CRPS"] = float(sm.CRPS)
        if res.attrs["n_members"] > 1:
            rec.update(CRPS_fair=float(sm.CRPS_fair), spread_skill=float(sm.spread_skill),
                       Brier={str(int(t)): float(sm.Brier.sel(threshold=t)) for t in sm.threshold.values},
                       Brier_reliability={str(int(t)): float(sm.Brier_reliability.sel(threshold=t))
                                          for t in sm.threshold.values},
                       rank_histogram=[int(v) for v in sm.rank_histogram.values])
    return rec


def _record(res) -> dict:
    rec = {"nfe": res.attrs["nfe"], "windows": res.attrs["n_windows"], "members": res.attrs["n_members"],
           "view": res.attrs["categorical"], "s_per_forecast": res.attrs["s_per_forecast"],
           "pooled": _pooled(res), "per_lead": _lead_record(res)}
    if "levels" in res.attrs:
        rec["levels"] = {"values": list(res.attrs["levels"]), "chosen_on": res.attrs["levels_split"],
                         "windows": res.attrs["levels_windows"], "val_CSI": list(res.attrs["levels_csi"])}
    return rec


def acceptance(main: dict) -> dict:
    """The skill issue's acceptance points, each ``{"holds": bool, "figures": ...}``."""
    f, st, ex, pe = (main[k] for k in ("forecast", "steps", "extrapolation", "persistence"))
    last = -1

    def lead(rec, key):
        return rec["per_lead"][key]

    best_mean = max(("forecast+mean", "forecast+pm"), key=lambda k: main[k]["pooled"]["CSI_M_pool16"])
    mean = main[best_mean]
    ss = lead(f, "spread_skill")
    c16 = lead(f, "CSI_M_pool16")
    drop = 1 - c16[-1] / c16[-2]
    scores_beat_persistence = all(
        (f["pooled"][k] > pe["pooled"][k]) for k in ("CSI_M", "CSI_M_pool4", "CSI_M_pool16", "HSS")) and \
        f["pooled"]["CRPS"] < pe["pooled"]["CRPS"]
    return {
        "CRPS_below_steps_every_lead_and_pooled": {
            "holds": all(a < b for a, b in zip(lead(f, "CRPS"), lead(st, "CRPS"))) and
            f["pooled"]["CRPS"] < st["pooled"]["CRPS"],
            "figures": {"forecast": lead(f, "CRPS") + [f["pooled"]["CRPS"]],
                        "steps": lead(st, "CRPS") + [st["pooled"]["CRPS"]]}},
        "member_CSI_M_pool16_at_least_steps_pooled_and_60": {
            "holds": f["pooled"]["CSI_M_pool16"] >= st["pooled"]["CSI_M_pool16"] and
            c16[last] >= lead(st, "CSI_M_pool16")[last],
            "figures": {"forecast": [f["pooled"]["CSI_M_pool16"], c16[last]],
                        "steps": [st["pooled"]["CSI_M_pool16"], lead(st, "CSI_M_pool16")[last]]}},
        "mean_or_pm_CSI_M_pool16_at_least_extrapolation_pooled_and_60": {
            "holds": mean["pooled"]["CSI_M_pool16"] >= ex["pooled"]["CSI_M_pool16"] and
            lead(mean, "CSI_M_pool16")[last] >= lead(ex, "CSI_M_pool16")[last],
            "figures": {best_mean: [mean["pooled"]["CSI_M_pool16"], lead(mean, "CSI_M_pool16")[last]],
                        "extrapolation": [ex["pooled"]["CSI_M_pool16"], lead(ex, "CSI_M_pool16")[last]]}},
        "spread_skill_within_0.8_1.2_every_lead": {"holds": all(0.8 <= v <= 1.2 for v in ss), "figures": ss},
        "better_than_persistence_every_score": {"holds": bool(scores_beat_persistence),
                                                "figures": {"forecast": f["pooled"], "persistence": pe["pooled"]}},
        "CSI_pool16_drop_50_to_60_at_most_15pct": {"holds": drop <= 0.15, "figures": {"drop": drop,
                                                                                       "50": c16[-2], "60": c16[-1]}},
    }


def _picture(nowcasters: dict, store: str, task: str, path: Path) -> dict:
    """One test case: observed future, two members of the forecast, a STEPS member, extrapolation, persistence."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nowcast.viz.colors import vil_cmap

    ds, idx = select_windows(store, task, "test", None)
    # the window with the most intense future among an evenly spaced thirtieth of the split
    cand = idx[:: max(1, len(idx) // 30)]
    score = [float(np.round(ds[int(i)]["x"][7:, 0].numpy() * 255).clip(0, 254).astype(float).mean()) for i in cand]
    pick = int(cand[int(np.argmax(score))])
    item = ds[pick]
    data = np.round(item["x"][:, 0].numpy() * 255).astype(np.uint8)
    ctx, fut = data[None, :7], data[7:]
    fc = nowcasters["forecast"].predict(ctx, 6, members=2, seed=0)[0][0]
    rows = [("observed", fut), ("forecast member 0", fc[0]), ("forecast member 1", fc[1]),
            ("STEPS member 0", nowcasters["steps"].predict(ctx, 6, members=1, seed=0)[0][0, 0]),
            ("extrapolation", nowcasters["extrapolation"].predict(ctx, 6)[0][0, 0]),
            ("persistence", nowcasters["persistence"].predict(ctx, 6)[0][0, 0])]
    cmap, norm = vil_cmap()
    fig, axes = plt.subplots(len(rows), 7, figsize=(14, 2.1 * len(rows)), constrained_layout=True)
    for r, (name, frames) in enumerate(rows):
        axes[r, 0].imshow(ctx[0, -1] if r == 0 else np.zeros_like(ctx[0, -1]), cmap=cmap, norm=norm,
                          interpolation="nearest")
        axes[r, 0].set_title("last context (t0)" if r == 0 else "", fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=10)
        for j in range(6):
            im = axes[r, j + 1].imshow(np.where(frames[j] == 255, 0, frames[j]), cmap=cmap, norm=norm,
                                       interpolation="nearest")
            if r == 0:
                axes[r, j + 1].set_title(f"t0 + {10 * (j + 1)} min", fontsize=9)
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.6, label="VIL (bytes)", ticks=[16, 74, 133, 160, 181, 219])
    fig.suptitle(f"default model as the CLI runs it, synthetic SEVIR-LR test event {item['event_id']} "
                 f"(window start {item['start']})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return {"event_id": item["event_id"], "start": int(item["start"]), "png": _rel(path)}


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default", help="the model to judge (default: the shipped default)")
    p.add_argument("--solver", default="spanlift", help="its sampler as the CLI would take it (default spanlift)")
    p.add_argument("--old-commit", default=OLD_COMMIT, help="commit whose shipped default is 'old-default'")
    p.add_argument("--data", default=None, help="store (default: the cached synthetic SEVIR-LR store)")
    p.add_argument("--windows", type=count(1), default=64, help="test windows")
    p.add_argument("--members", type=count(1), default=8, help="members of every ensemble")
    p.add_argument("--level-windows", type=count(1), default=32, help="val windows that choose the probability levels")
    p.add_argument("--skip", nargs="*", default=[], choices=("ddim:100", "old-default"),
                   help="leave out the slow reference rows (for a quick look; the acceptance needs neither)")
    p.add_argument("--batch", type=count(1), default=4, help="contexts per model call")
    p.add_argument("--threads", type=count(1), default=2, help="torch threads")
    p.add_argument("--png", default=str(ROOT / "nowcast" / "models" / "DEFAULT_MODEL.png"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--name", default="default_model", help="results file name")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    meta = provenance("python benchmarks/default_model.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    model = load_model(args.model)
    config = model.meta.get("config", {})         # models from before the radar texture: the cells store
    store = args.data or synthetic_store(config.get("synthetic_events", 480),
                                         texture=config.get("synthetic_texture", "cells"))
    named = {"forecast": resolve_nowcaster(args.solver, model), "steps": resolve_nowcaster("steps", model),
             "extrapolation": resolve_nowcaster("extrapolation", model),
             "persistence": resolve_nowcaster("persistence", model)}
    groups = [(("forecast", "steps"), ("members", "mean", "pm", "probability")),
              (("extrapolation", "persistence"), ("members",))]
    if "ddim:100" not in args.skip:
        named["ddim:100"] = resolve_nowcaster("ddim:100", model)
        groups.append((("ddim:100",), ("members", "mean", "pm")))
    if "old-default" not in args.skip:
        old_model, old_solver = _old_default(args.old_commit)
        named["old-default"] = resolve_nowcaster(f"spanlift:{old_solver}", load_model(old_model))
        groups.append((("old-default",), ("members", "mean", "pm")))
    for name, n in named.items():
        n.name = name
    common = dict(windows=args.windows, members=args.members, batch=args.batch, level_windows=args.level_windows)
    results = {}
    for names, views in groups:
        results.update(score_nowcasters([named[k] for k in names], store, "test", views=views, **common))
    main_rec = {k: _record(r) for k, r in results.items()}
    accept = acceptance(main_rec)
    picture = _picture(named, store, model.task, Path(args.png))
    payload = {**meta, "model": _rel(model.path), "solver": named["forecast"].label,
               "model_meta": {k: model.meta.get(k) for k in ("steps", "wall_time_s", "commit", "machine", "command")},
               "decoding": "first guess in pixels + decoded correction" if model.ldm.cfg.first_guess_pixels
               else "latents decoded by the VAE",
               "old_default": {"commit": args.old_commit}, "store": store, "picture": picture,
               "acceptance": accept, "main": main_rec}
    write_results(Path(args.out), args.name, payload, _markdown(args, meta, payload, main_rec, accept))
    return 0


def _fmt(v) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.4f}"


def _lead_row(label: str, d: dict, i: int) -> str:
    """One markdown row of the per-lead scores ``d`` at lead index ``i``."""
    cells = [d[k][i] if k in d else None for k in ("CSI_M", "CSI_M_pool4", "CSI_M_pool16", "HSS", "CRPS", "spread_skill")]
    return "| " + " | ".join([label] + [_fmt(v) for v in cells]) + " |"


def _markdown(args, meta, payload, main_rec, accept) -> list:
    first = main_rec["forecast"]
    lines = header("Default model: skill on the synthetic SEVIR-LR test split", meta)
    lines += [f"- model: `{payload['model']}` sampled as the forecast CLI does (`{payload['solver']}`, "
              f"NFE {first['nfe']}; {payload['decoding']})",
              f"- data: `{payload['store']}`; {first['windows']} test windows × {first['members']} members "
              f"(member seeds 0…{first['members'] - 1}), the same for every method; probability levels chosen on "
              f"{args.level_windows} val windows",
              f"- picture: `{payload['picture']['png']}` (test event {payload['picture']['event_id']}, window start "
              f"{payload['picture']['start']})",
              "- acceptance: " + "; ".join(f"{k.replace('_', ' ')}: {'yes' if v['holds'] else 'NO'}"
                                           for k, v in accept.items()),
              "",
              "Pooled over the six lead times (+10 … +60 min). Members: each member scored as a forecast; "
              "`+mean`/`+pm`: the ensemble mean / probability-matched mean; `+prob`: yes/no at the val-chosen "
              "probability levels. CRPS in bytes/255 (the MAE for one member):", "",
              "| method | NFE | s/forecast | CSI-M | CSI-M pool4 | CSI-M pool16 | HSS | CRPS | CRPS fair | spread–skill |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for k, r in main_rec.items():
        p = r["pooled"]
        lines.append(f"| {k} | {r['nfe']} | {r['s_per_forecast']:.2f} | {_fmt(p['CSI_M'])} | {_fmt(p['CSI_M_pool4'])} | "
                     f"{_fmt(p['CSI_M_pool16'])} | {_fmt(p['HSS'])} | {_fmt(p.get('CRPS'))} | "
                     f"{_fmt(p.get('CRPS_fair'))} | {_fmt(p.get('spread_skill'))} |")
    lines += ["", "## At +60 min", "", "| method | CSI-M | CSI-M pool4 | CSI-M pool16 | HSS | CRPS | spread–skill |",
              "|---|---|---|---|---|---|---|"]
    for k, r in main_rec.items():
        d = r["per_lead"]
        lines.append(_lead_row(k, d, -1))
    for k, r in main_rec.items():
        d = r["per_lead"]
        lines += ["", f"### {k}: against lead time", "",
                  "| lead (min) | CSI-M | CSI-M pool4 | CSI-M pool16 | HSS | CRPS | spread–skill |",
                  "|---|---|---|---|---|---|---|"]
        for i, t in enumerate(d["lead_time_min"]):
            lines.append(_lead_row(f"{t:g}", d, i))
        if "levels" in r:
            lines += ["", f"Probability levels (chosen on {r['levels']['windows']} {r['levels']['chosen_on']} windows, "
                          f"per threshold 16 … 219): {', '.join(f'{v:g}' for v in r['levels']['values'])}"]
    lines += ["", "## Acceptance", ""]
    lines += [f"- {k}: {'yes' if v['holds'] else 'NO'} — {v['figures']}" for k, v in accept.items()]
    return lines + [""]


if __name__ == "__main__":
    from nowcast.foundation.cli import run_main

    raise SystemExit(run_main(main))
