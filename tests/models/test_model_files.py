"""Exported models: round trip, names, refusal of foreign files; the latent scale factor."""

import pickle

import pytest
import torch

from nowcast.models.ldm import DiffusionConfig, LatentDiffusion
from nowcast.models.model_files import load_model, load_vae, resolve_model, save_model, save_vae
from nowcast.models.unet import SpaceTimeUNet
from nowcast.models.vae import FrameVAE


def test_round_trip_gives_the_same_forecasts(tiny_ldm, tmp_path):
    with torch.no_grad():
        tiny_ldm.logvar.add_(0.25)
    path = save_model(tmp_path / "model.pt", tiny_ldm, "sevirlr", meta={"steps": 7})
    loaded = load_model(path)
    assert loaded.task == "sevirlr" and loaded.meta == {"steps": 7} and loaded.align is None
    assert torch.equal(loaded.ldm.logvar, tiny_ldm.logvar)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded.ldm.forecast(x, seeds=[4, 5], steps=4),
                               tiny_ldm.forecast(x, seeds=[4, 5], steps=4), rtol=0, atol=0)
    assert load_model(tmp_path).path == path                 # a run directory holding model.pt
    assert torch.equal(load_vae(path).encoder.conv_in.weight, tiny_ldm.vae.encoder.conv_in.weight)


def test_a_vae_file_is_not_a_nowcaster(tiny_vae_cfg, tmp_path):
    path = save_vae(tmp_path / "vae.pt", FrameVAE(tiny_vae_cfg))
    assert isinstance(load_vae(path), FrameVAE)
    with pytest.raises(ValueError, match="holds a 'vae' model"):
        load_model(path)


def test_foreign_pickles_are_refused_without_running_them(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('code ran')",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "nowcast-model", "x": Boom()}))
    with pytest.raises(ValueError, match="not a nowcast checkpoint"):
        load_model(path)


def test_unknown_names_and_paths_say_what_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match="default"):
        resolve_model("nonexistent-model")
    with pytest.raises(FileNotFoundError, match="model.pt"):
        resolve_model(tmp_path)


def test_scale_factor_only_rescales_the_latents(tiny_vae_cfg, tiny_unet_cfg):
    torch.manual_seed(0)
    vae = FrameVAE(tiny_vae_cfg).eval()
    a = LatentDiffusion(vae, SpaceTimeUNet(tiny_unet_cfg), DiffusionConfig())
    b = LatentDiffusion(vae, SpaceTimeUNet(tiny_unet_cfg), DiffusionConfig(scale_factor=0.25))
    x = torch.rand(2, 3, 32, 32)
    za, zb = a.encode_context(x), b.encode_context(x)
    torch.testing.assert_close(zb, 0.25 * za)
    torch.testing.assert_close(b.decode(zb), a.decode(za))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(b.encode_target(x, g2), 0.25 * a.encode_target(x, g1))


def test_first_guess_pixels_is_a_loading_choice_of_residual_models(tiny_vae_cfg, tiny_unet_cfg, tiny_ldm, tmp_path):
    pytest.importorskip("pysteps")
    from dataclasses import replace

    torch.manual_seed(0)
    residual = LatentDiffusion(FrameVAE(tiny_vae_cfg), SpaceTimeUNet(replace(tiny_unet_cfg, guide=True)),
                               DiffusionConfig(first_guess="pysteps", residual=True))
    path = save_model(tmp_path / "residual.pt", residual, "sevirlr")
    assert not load_model(path).ldm.cfg.first_guess_pixels
    loaded = load_model(path, first_guess_pixels=True)
    assert loaded.ldm.cfg.first_guess_pixels and torch.equal(loaded.ldm.unet.first_proj.conv1.weight,
                                                              residual.unet.first_proj.conv1.weight)
    plain = save_model(tmp_path / "plain.pt", tiny_ldm, "sevirlr")
    with pytest.raises(ValueError, match="residual"):
        load_model(plain, first_guess_pixels=True)
