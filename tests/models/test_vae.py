"""Frame VAE: shapes, posterior, loss terms against their definitions, training lowers the loss."""

import pytest
import torch

from nowcast.models.vae import DiagonalGaussian, FrameVAE, PatchDiscriminator, VAEConfig, discriminator_loss, vae_loss


def test_shapes_and_downsampling(tiny_vae_cfg):
    TINY_VAE = tiny_vae_cfg
    vae = FrameVAE(TINY_VAE)
    x = torch.rand(3, 1, 32, 48)
    post = vae.encode(x)
    assert post.mean.shape == (3, 4, 4, 6) and TINY_VAE.downsample_factor == 8
    assert vae.decode(post.mode()).shape == x.shape
    seq = torch.rand(2, 5, 1, 32, 32)
    z = vae.encode_sequence(seq)
    assert z.shape == (2, 5, 4, 4, 4) and vae.decode_sequence(z).shape == seq.shape
    with pytest.raises(ValueError, match="multiple of 8"):
        vae.encode(torch.rand(1, 1, 30, 32))


def test_kl_matches_the_closed_form_and_sampling_uses_the_std():
    mean, logvar = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    post = DiagonalGaussian(torch.cat([mean, logvar], 1))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mean, (0.5 * logvar).exp()),
                                            torch.distributions.Normal(0.0, 1.0)).sum((1, 2, 3))
    torch.testing.assert_close(post.kl(), ref, rtol=1e-5, atol=1e-5)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([post.sample(g) for _ in range(4000)])
    torch.testing.assert_close(draws.std(0), post.std, rtol=0.08, atol=0.02)
    assert DiagonalGaussian(torch.full((1, 2, 1, 1), 100.0)).logvar.max() == 20.0     # clamped


def test_loss_is_l1_sum_plus_weighted_kl(tiny_vae_cfg):
    TINY_VAE = tiny_vae_cfg
    torch.manual_seed(0)
    vae = FrameVAE(VAEConfig(**{**TINY_VAE.to_dict(), "kl_weight": 0.5, "block_out_channels": (8, 16, 16, 16)}))
    x = torch.rand(2, 1, 16, 16)
    loss, parts = vae_loss(vae, x, step=0, generator=torch.Generator().manual_seed(1))
    rec, post = vae(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loss, (x - rec).abs().sum() / 2 + 0.5 * post.kl().sum() / 2)
    assert parts["g"] == 0


def test_gan_term_switches_on_at_disc_start_with_adaptive_weight(tiny_vae_cfg):
    TINY_VAE = tiny_vae_cfg
    torch.manual_seed(0)
    cfg = VAEConfig(**{**TINY_VAE.to_dict(), "disc_start": 5, "block_out_channels": (8, 16, 16, 16)})
    vae, disc = FrameVAE(cfg), PatchDiscriminator(1, 8, 2)
    x = torch.rand(2, 1, 32, 32)
    _, before = vae_loss(vae, x, step=4, disc=disc)
    loss, after = vae_loss(vae, x, step=5, disc=disc)
    assert before["d_weight"] == 0 and after["d_weight"] > 0
    loss.backward()
    d = discriminator_loss(disc, x, after["x_rec"])
    assert d.ndim == 0 and d >= 0


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_vae_cfg):
    TINY_VAE = tiny_vae_cfg
    torch.manual_seed(0)
    vae = FrameVAE(TINY_VAE)
    x = torch.rand(4, 1, 16, 16)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss, _ = vae_loss(vae, x, 0, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_configs_round_trip_through_plain_dicts(tiny_vae_cfg, tiny_unet_cfg):
    from nowcast.models.unet import UNetConfig

    d = tiny_vae_cfg.to_dict()
    assert d["block_out_channels"] == [8, 16, 16, 16]
    assert VAEConfig.from_dict(d) == tiny_vae_cfg
    assert UNetConfig.from_dict(tiny_unet_cfg.to_dict()) == tiny_unet_cfg
    with pytest.raises(ValueError, match="unknown VAEConfig keys"):
        VAEConfig.from_dict({"channels": 3})
