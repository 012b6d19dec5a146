"""The shipped default model: present, small, loadable by name, and it forecasts storms' layout."""

from pathlib import Path

import torch

from nowcast.models.model_files import load_model, resolve_model


def test_shipped_within_25_mb_and_loadable_by_name():
    path = resolve_model("default")
    assert path.name == "default.pt" and path.stat().st_size <= 25 * 2**20
    model = load_model("default")
    assert model.task == "sevirlr" and model.ldm.latent_shape() == (6, 4, 16, 16)
    assert model.meta["steps"] >= 1000 and model.meta["vae"]["steps"] >= 1000
    assert {"command", "wall_time_s", "machine", "config"} <= set(model.meta)
    card = Path(__file__).parents[2] / "nowcast" / "models" / "DEFAULT_MODEL.md"
    assert card.is_file() and (card.parent / "DEFAULT_MODEL.png").stat().st_size > 20_000


def test_default_forecast_layout_and_reproducibility():
    model = load_model("default")
    ctx = torch.zeros(1, 7, 128, 128)
    ctx[:, :, 40:70, 30:60] = 0.4                       # a block of moderate rain
    a = model.ldm.forecast(ctx, seeds=[0, 1], steps=4)
    b = model.ldm.forecast(ctx, seeds=[1], steps=4)
    assert a.shape == (1, 2, 6, 128, 128) and 0 <= float(a.min()) and float(a.max()) <= 1
    torch.testing.assert_close(a[:, 1:], b, rtol=1e-5, atol=1e-5)
    # the rain stays where it was rather than appearing everywhere
    inside = a[..., 40:70, 30:60].mean()
    outside = a[..., 90:, 90:].mean()
    assert inside > 2 * outside
