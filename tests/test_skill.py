"""Nowcaster specifications and the one-pass skill scoring of samplers and baselines."""

import numpy as np
import pytest
import torch

from nowcast.data.windows import WindowDataset
from nowcast.models.ldm import DiffusionConfig, LatentDiffusion
from nowcast.models.model_files import LoadedModel
from nowcast.models.unet import SpaceTimeUNet, UNetConfig
from nowcast.models.vae import FrameVAE, VAEConfig
from nowcast.foundation.tasks import Grid, get_task
from nowcast.nowcasters import evaluate_samplers, parse_spec, score_nowcasters


def test_parse_spec():
    assert parse_spec("ddim:100").steps == 100 and parse_spec("ddpm:1000").name == "ddpm"
    assert parse_spec("ddim").steps is None and parse_spec("ddpm").kind == "ancestral"
    assert parse_spec("pysteps").kind == "baseline" and parse_spec("extrapolation").kind == "baseline"
    assert parse_spec("spanlift").path is None and parse_spec("spanlift:runs/x").path == "runs/x"
    for bad, msg in (("ddim:0", "SOLVER:STEPS"), ("ddim:x", "SOLVER:STEPS"), ("nope:5", "unknown solver"),
                     ("spanlift:5", "run directory")):
        with pytest.raises(ValueError, match=msg):
            parse_spec(bad)
    with pytest.raises(ValueError, match="SOLVER:STEPS"):
        evaluate_samplers(["ddim"], "unused", model=object(), progress=False)


def test_persistence_scores_match_a_direct_computation(tiny_store):
    res = evaluate_samplers(["persistence"], tiny_store, split="test", members=2, progress=False)["persistence"]
    ds = WindowDataset(tiny_store, "sevirlr", "test")
    err = np.zeros(6)
    n = 0
    for i in range(len(ds)):
        b = np.round(ds[i]["x"][:, 0].numpy() * 255)
        err += np.abs(b[7:] - b[6][None]).mean(axis=(1, 2)) / 255
        n += 1
    np.testing.assert_allclose(res.MAE.values, err / n, rtol=1e-6)
    np.testing.assert_allclose(res.CRPS.values, err / n, rtol=1e-6)     # identical members: CRPS = MAE
    assert list(res.lead_time.values) == [10, 20, 30, 40, 50, 60]
    assert res.attrs["n_windows"] == len(ds) and res.attrs["nfe"] == 0
    # a deterministic baseline is one member, whatever was asked: its spread–skill is undefined, not 0
    assert res.attrs["n_members"] == 1 and np.isnan(res.spread_skill.values).all()


def test_model_samplers_count_their_evaluations(tiny_store):
    torch.manual_seed(0)
    vae = FrameVAE(VAEConfig(block_out_channels=(8, 16, 16, 16), layers_per_block=1, latent_channels=4,
                             norm_groups=4))
    unet = SpaceTimeUNet(UNetConfig(latent_channels=4, height=4, width=4, base_units=16, depth=(1, 1), heads=2,
                                    dropout=0.0, norm_groups=4))
    model = LoadedModel(LatentDiffusion(vae, unet, DiffusionConfig()).eval(), "sevirlr")
    res = evaluate_samplers(["ddim:3", "ddpm:5", "ipndm:4"], tiny_store, model=model, windows=3, members=2, batch=2,
                            progress=False)
    assert {k: r.attrs["nfe"] for k, r in res.items()} == {"ddim:3": 3, "ddpm:5": 5, "ipndm:4": 4}
    assert all(r.attrs["n_windows"] == 3 and r.attrs["n_members"] == 2 for r in res.values())
    with pytest.raises(ValueError, match="need a model"):
        evaluate_samplers(["ddim:3"], tiny_store, progress=False)


class _FakeNowcaster:
    """A stand-in sampled nowcaster whose forecast (in [0, 1]) is ``fields(context, seeds)``."""

    name, steps, task = "ddim:1", 1, get_task("sevirlr")
    grid = Grid.sevir(task, 32)

    def __init__(self, fields):
        self.fields = fields

    def predict(self, context, n_lead, members=1, seed=0):
        from nowcast.data.codec import from_unit

        out = self.fields(torch.from_numpy(context), list(range(seed, seed + members)))
        return from_unit(out.numpy()), 1


def test_saturated_forecasts_are_scored_not_dropped_as_missing(tiny_store):
    """A model forecasting 1.0 everywhere must give byte 254 (an event at every threshold), never 255."""

    def saturated(context, seeds):
        return torch.ones(context.shape[0], len(seeds), 6, *context.shape[-2:])

    res = score_nowcasters([_FakeNowcaster(saturated)], tiny_store, windows=2, members=1, progress=False)["ddim:1"]
    assert int(res.n_valid.sum()) == 2 * 6 * 32 * 32          # no pixel was taken for missing
    assert float(res.false_alarms.sel(threshold=16, scale=1).sum()) + float(res.hits.sel(threshold=16, scale=1).sum()) \
        == 2 * 6 * 32 * 32                                     # every pixel forecast as an event


def test_ensemble_mean_is_scored_from_the_same_members(tiny_store):
    """Members 0 and 200 bytes everywhere: each member is an event everywhere or nowhere, their mean
    (100) is an event at 16 and 74 bytes only; counted directly from the observations."""

    def two_levels(context, seeds):
        out = torch.zeros(context.shape[0], len(seeds), 6, *context.shape[-2:])
        out[:, 1::2] = 200 / 255
        return out

    from nowcast.baselines import Persistence

    res = score_nowcasters([_FakeNowcaster(two_levels), Persistence()], tiny_store, windows=3, members=2,
                           progress=False, views=("mean",))
    assert set(res) == {"ddim:1", "ddim:1+mean", "persistence"}          # one member: no mean entry
    assert res["ddim:1"].attrs["categorical"] == "members" and res["ddim:1+mean"].attrs["categorical"] == "mean"
    ds = WindowDataset(tiny_store, "sevirlr", "test")
    idx = np.unique(np.linspace(0, len(ds) - 1, 3).round().astype(int))
    obs = np.stack([np.round(ds[int(i)]["x"][7:, 0].numpy() * 255) for i in idx])      # (3, 6, H, W)
    n = obs.size
    for thr, mean_event in ((74, True), (133, False)):
        above = int((obs >= thr).sum())
        mean = res["ddim:1+mean"].sel(threshold=thr, scale=1)
        members = res["ddim:1"].sel(threshold=thr, scale=1)
        if mean_event:
            assert (int(mean.hits.sum()), int(mean.false_alarms.sum()), int(mean.misses.sum())) == (above, n - above, 0)
        else:
            assert (int(mean.hits.sum()), int(mean.false_alarms.sum()), int(mean.misses.sum())) == (0, 0, above)
        # member 200 hits every event and false-alarms elsewhere; member 0 misses every event
        assert (int(members.hits.sum()), int(members.false_alarms.sum()), int(members.misses.sum())) == \
            (above, n - above, above)
    assert "CRPS" not in res["ddim:1+mean"] and "CRPS" in res["ddim:1"]      # the ensemble's, scored once


def test_probability_view_uses_levels_chosen_on_the_validation_split(tiny_store):
    """Two members, 0 and 200 bytes: the probability of an event is 1/2 wherever 200 bytes reaches the
    threshold. At 74 bytes the best level on the validation split is 1/2 (level 1 says no everywhere);
    the test split's yes/no then says yes everywhere, counted against the observations directly."""

    def two_levels(context, seeds):
        out = torch.zeros(context.shape[0], len(seeds), 6, *context.shape[-2:])
        out[:, 1::2] = 200 / 255
        return out

    res = score_nowcasters([_FakeNowcaster(two_levels)], tiny_store, windows=2, members=2, progress=False,
                           views=("members", "pm", "probability"), level_windows=2)
    assert set(res) == {"ddim:1", "ddim:1+pm", "ddim:1+prob"}
    prob = res["ddim:1+prob"]
    assert prob.attrs["levels_split"] == "val" and prob.attrs["levels"][1] == 0.5
    assert prob.attrs["levels"][-1] == 1.0                   # 219 bytes: never forecast, no CSI: level 1
    ds = WindowDataset(tiny_store, "sevirlr", "test")
    idx = np.unique(np.linspace(0, len(ds) - 1, 2).round().astype(int))
    obs = np.stack([np.round(ds[int(i)]["x"][7:, 0].numpy() * 255) for i in idx])
    above = int((obs >= 74).sum())
    got = prob.sel(threshold=74, scale=1)
    assert (int(got.hits.sum()), int(got.false_alarms.sum()), int(got.misses.sum())) == (above, obs.size - above, 0)
    with pytest.raises(ValueError, match="unknown views"):
        score_nowcasters([_FakeNowcaster(two_levels)], tiny_store, views=("median",), progress=False)
