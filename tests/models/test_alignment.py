"""Knowledge alignment: the network trains, and guidance moves the forecast's intensity toward a*."""

import torch

from nowcast.models.alignment import AlignmentConfig, AlignmentNet, alignment_loss, frame_intensity


def _frames(b, t, seed):
    return torch.rand(b, t, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_guidance_moves_the_mean_intensity_toward_a_star(tiny_ldm):
    # a differentiable "perfect" alignment function: the mean of the decoded latents
    def oracle(z, t):
        return frame_intensity(tiny_ldm.decode(z))

    ctx = _frames(2, 3, 1)
    base = tiny_ldm.forecast(ctx, seeds=(0, 1), steps=8).mean()
    kw = {"seeds": (0, 1), "steps": 8}
    low = tiny_ldm.forecast(ctx, alignment={"net": oracle, "a_star": torch.zeros(2), "scale": 500.0}, **kw).mean()
    high = tiny_ldm.forecast(ctx, alignment={"net": oracle, "a_star": torch.full((2,), 0.6), "scale": 500.0},
                             **kw).mean()
    assert low < base - 1e-3 and high > base + 1e-3


def test_guided_members_do_not_depend_on_the_batch(tiny_ldm):
    def oracle(z, t):
        return frame_intensity(tiny_ldm.decode(z))

    ctx = _frames(2, 3, 2)
    al = {"net": oracle, "a_star": torch.tensor([0.5, 0.5]), "scale": 200.0}
    full = tiny_ldm.forecast(ctx, seeds=(4, 5), steps=4, alignment=al)
    one = tiny_ldm.forecast(ctx[1:], seeds=(5,), steps=4, alignment={**al, "a_star": torch.tensor([0.5])})
    torch.testing.assert_close(one[0, 0], full[1, 1], rtol=1e-4, atol=1e-4)


def test_alignment_network_learns_the_frame_intensity(tiny_ldm):
    torch.manual_seed(0)
    net = AlignmentNet(AlignmentConfig(latent_channels=4, target_frames=2, height=4, width=4, base_units=16,
                                       heads=2, norm_groups=4))
    tgt = _frames(4, 2, 3) * torch.linspace(0.2, 1.0, 4).view(4, 1, 1, 1)
    assert net(torch.randn(4, 2, 4, 4, 4), torch.tensor([1.0, 2, 3, 4])).shape == (4, 2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    t = torch.tensor([10, 50, 100, 200])
    losses = []
    for _ in range(40):
        loss = alignment_loss(net, tiny_ldm, tgt, generator=torch.Generator().manual_seed(0), t=t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
