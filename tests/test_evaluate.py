"""``python -m nowcast.evaluate``: samplers (learned ones included) and baselines into metrics and a table."""

import json

import numpy as np
import pytest
import xarray as xr

from nowcast.foundation.provenance import file_digest
from nowcast.data.windows import WindowDataset
from nowcast.evaluate import main
from nowcast.solvers import SpanLift, get_solver, save_solver


def _untrained_spanlift(path, model_file, steps=2):
    """SpanLift as initialised (zero head, α = β = 1): the same forecasts as its base, exactly."""
    sl = SpanLift(get_solver("ddim"), num_steps=steps, channels=4, hidden=8, spatial_dims=3, channel_axis=2,
                  sigma_data=1.0)
    return save_solver(path, sl, {"steps": steps, "model_sha256": file_digest(model_file), "spacing": "leading"})


def test_evaluate_writes_metrics_and_a_table(tiny_model_file, tiny_store, tmp_path, capsys):
    solver = _untrained_spanlift(tmp_path / "sl.pt", tiny_model_file)
    out = tmp_path / "eval"
    args = ["--model", tiny_model_file, "--data", tiny_store, "--samplers", "ddim:2", f"spanlift:{solver}",
            "persistence", "--windows", "3", "--members", "2", "--batch", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    table = (out / "table.md").read_text()
    assert table.splitlines()[0].startswith("| Steps | Method | HSS | LPIPS | CSI | CSI-4 | CSI-16 | CRPS | NFE")
    assert len([ln for ln in table.splitlines() if ln.startswith("| ")]) == 4
    ds = xr.open_dataset(out / "metrics.nc")
    assert list(ds.sampler.values) == ["ddim:2", f"spanlift:{solver}", "persistence"]
    for var in ("CSI", "POD", "FAR", "BIAS", "HSS", "FSS", "CRPS", "CSI_M", "nfe", "wall_s"):
        assert var in ds, var
    assert ds.CSI.dims == ("sampler", "threshold", "scale", "lead_time")
    assert list(ds.nfe.values) == [2, 2, 0]
    # SpanLift as initialised is its base: identical scores
    a, b = ds.sel(sampler="ddim:2"), ds.sel(sampler=f"spanlift:{solver}")
    np.testing.assert_array_equal(a.hits.values, b.hits.values)
    np.testing.assert_allclose(a.CRPS.values, b.CRPS.values, rtol=1e-6)
    # persistence's pooled CRPS (identical members: the MAE) from a direct computation
    summary = json.loads((out / "metrics.json").read_text())["samplers"]
    data = WindowDataset(tiny_store, "sevirlr", "test")
    idx = np.unique(np.linspace(0, len(data) - 1, 3).round().astype(int))
    err = [np.abs(np.round(data[int(i)]["x"][7:, 0].numpy() * 255) - np.round(data[int(i)]["x"][6, 0].numpy() * 255))
           .mean() / 255 for i in idx]
    assert summary["persistence"]["pooled"]["CRPS"] == pytest.approx(np.mean(err), rel=1e-6)
    assert summary[f"spanlift:{solver}"]["steps"] == 2
    # outputs are not overwritten without --overwrite
    capsys.readouterr()
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_bad_samplers_exit_2_and_write_nothing(tiny_model_file, tiny_store, tmp_path, capsys):
    other = tmp_path / "other.pt"
    other.write_bytes(b"not the model")
    wrong = _untrained_spanlift(tmp_path / "wrong.pt", other)
    base = ["--model", tiny_model_file, "--data", tiny_store, "--windows", "1", "--members", "1", "--no-progress"]
    for samplers, msg in ((["ddim"], "SOLVER:STEPS"), (["nope:3"], "unknown solver"),
                          ([f"spanlift:{tmp_path / 'missing'}"], "no learned solver"),
                          ([f"spanlift:{wrong}"], "another model")):
        out = tmp_path / "out"
        assert main(base + ["--samplers", *samplers, "--out", str(out)]) == 2
        assert msg in capsys.readouterr().err
        assert not out.exists()


def test_views_score_the_mean_pm_and_probability_of_the_same_members(tiny_model_file, tiny_store, tmp_path):
    out = tmp_path / "eval"
    args = ["--model", tiny_model_file, "--data", tiny_store, "--samplers", "ddim:2", "persistence",
            "--windows", "2", "--members", "2", "--batch", "2", "--out", str(out), "--no-progress",
            "--views", "mean", "pm", "probability", "--level-windows", "2"]
    assert main(args) == 0
    summary = json.loads((out / "metrics.json").read_text())["samplers"]
    # the deterministic baseline is one member: scored as it is, no views
    assert set(summary) == {"ddim:2", "ddim:2+mean", "ddim:2+pm", "ddim:2+prob", "persistence"}
    prob = summary["ddim:2+prob"]
    assert prob["categorical"] == "probability" and prob["levels_split"] == "val"
    assert all(v in (0.5, 1.0) for v in prob["levels"])                 # two members: levels 1/2 or 1
    members = summary["ddim:2"]["pooled"]
    assert len(members["rank_histogram"]) == 3 and members["reliability_diagram"]["probability"] == [0, 0.5, 1]
    assert members["Brier"]["74"] == pytest.approx(members["Brier_reliability"]["74"]
                                                   - members["Brier_resolution"]["74"]
                                                   + members["Brier_uncertainty"]["74"])
    assert len(summary["ddim:2"]["by_lead"]["spread_skill"]) == 6
    assert summary["ddim:2+mean"]["pooled"].get("CRPS") is None        # the ensemble's CRPS is scored once
