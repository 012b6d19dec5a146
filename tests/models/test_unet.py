"""Space-time UNet: layout, conditioning, relative position bias, batch independence."""

import pytest
import torch

from nowcast.models.unet import AxialAttention, PatchMerging, SpaceTimeUNet, timestep_embedding


def test_output_layout_and_the_context_matters(tiny_unet_cfg):
    torch.manual_seed(0)
    net = SpaceTimeUNet(tiny_unet_cfg).eval()
    z_t, z_c = torch.randn(2, 2, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    eps = net(z_t, torch.tensor([3.0, 900.0]), z_c)
    assert eps.shape == z_t.shape
    assert not torch.allclose(eps, net(z_t, torch.tensor([3.0, 900.0]), z_c + 1.0))
    assert not torch.allclose(eps, net(z_t, torch.tensor([500.0, 900.0]), z_c))
    with pytest.raises(ValueError, match="context"):
        net(z_t, torch.tensor([1.0, 1.0]), z_c[:, :2])


def test_each_item_is_independent_of_the_batch(tiny_unet_cfg):
    torch.manual_seed(0)
    net = SpaceTimeUNet(tiny_unet_cfg).eval()
    z_t, z_c, t = torch.randn(3, 2, 4, 4, 4), torch.randn(3, 3, 4, 4, 4), torch.tensor([1.0, 2.0, 3.0])
    full = net(z_t, t, z_c)
    for i in range(3):
        torch.testing.assert_close(net(z_t[i:i + 1], t[i:i + 1], z_c[i:i + 1]), full[i:i + 1], rtol=1e-4, atol=1e-5)


def test_timestep_embedding_is_the_sinusoid():
    e = timestep_embedding(torch.tensor([0.0, 7.0]), 8)
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(4) / 4)
    torch.testing.assert_close(e[1], torch.cat([torch.cos(7 * freqs), torch.sin(7 * freqs)]))
    torch.testing.assert_close(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))


def test_relative_position_bias_depends_only_on_the_offset():
    att = AxialAttention(dim=4, heads=2, length=5, axis=1, dropout=0.0)
    with torch.no_grad():
        att.rel_bias.copy_(torch.arange(18, dtype=torch.float32).reshape(9, 2))
    bias = att.rel_bias[att.rel_index]                         # (5, 5, heads)
    for i in range(5):
        for j in range(5):
            torch.testing.assert_close(bias[i, j], att.rel_bias[i - j + 4])


def test_axial_attention_mixes_only_along_its_axis():
    torch.manual_seed(0)
    att = AxialAttention(dim=4, heads=1, length=3, axis=2, dropout=0.0)   # along H of (B, T, H, W, C)
    x = torch.randn(1, 2, 3, 5, 4)
    y = att(x)
    x2 = x.clone()
    x2[0, 0, :, 0] += 1.0                                      # change one (t, w) column
    y2 = att(x2)
    changed = (y2 - y).abs().sum(-1)[0] > 0                   # (T, H, W)
    assert changed[0, :, 0].all() and not changed[1].any() and not changed[0, :, 1:].any()


def test_patch_merging_halves_space_and_doubles_channels():
    pm = PatchMerging(8)
    assert pm(torch.randn(2, 8, 3, 4, 6)).shape == (2, 16, 3, 2, 3)


@pytest.mark.parametrize("padding", ["zeros", "replicate"])
def test_time_edges_of_a_sequence_that_does_not_change(padding):
    """A field that is the same at every time is a fixed point of time shifts; a time-invariant block
    must map it to a field that is again the same at every time, *including the first and last frame*.
    With zero padding the last frame is told, by zeros after it, that the sequence ends: its output
    differs from the interior's (the cause of the +60 min drop the 'replicate' padding removes)."""
    from nowcast.models.unet import TimeEmbedResBlock

    torch.manual_seed(0)
    block = TimeEmbedResBlock(4, 8, 16, 0.0, 2, time_padding=padding).eval()
    frame = torch.randn(2, 4, 1, 5, 5)
    out = block(frame.expand(2, 4, 6, 5, 5), torch.randn(2, 16))
    interior = out[:, :, 2:3]
    edges_equal = all(torch.allclose(out[:, :, i:i + 1], interior, atol=1e-5) for i in (0, 5))
    assert edges_equal == (padding == "replicate")


def test_time_padding_is_checked_and_keeps_the_weights(tiny_unet_cfg):
    from dataclasses import replace

    with pytest.raises(ValueError, match="time_padding"):
        SpaceTimeUNet(replace(tiny_unet_cfg, time_padding="circular"))
    zeros = SpaceTimeUNet(tiny_unet_cfg).state_dict()
    rep = SpaceTimeUNet(replace(tiny_unet_cfg, time_padding="replicate")).state_dict()
    assert {k: v.shape for k, v in zeros.items()} == {k: v.shape for k, v in rep.items()}
