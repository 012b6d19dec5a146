"""The length-adaptive DiT (ODE_l rewiring): against an independent reference computation, truncation
and per-sample depths."""

import copy

import pytest
import torch

from nowcast.imagegen.odel import LengthAdaptiveDiT, ODELConfig

CFG = ODELConfig(shape=(1, 8, 8), patch=2, width=32, heads=4, blocks=6, group=2, classes=10)


def _model(seed=0):
    torch.manual_seed(seed)
    m = LengthAdaptiveDiT(CFG).eval()
    with torch.no_grad():                 # leave the zero initialisation: every path must matter
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def _inputs(b=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 1, 8, 8, generator=g), torch.rand(b, generator=g), torch.rand(b, generator=g) / 4,
            torch.randint(0, 10, (b,), generator=g))


def _reference(m, x, t, dt, y, depth):
    """The rewiring written out: tokens → groups of residual blocks, each group's output an Euler step
    of the state (x ← x + G(x)) and summed; the final layer maps the sum (not the last state)."""
    c = m.t_embed(t) + m.dt_embed(dt) + m.depth_embed.weight[depth] + m.y_embed.weight[y]
    tokens = m.patch_embed(x).flatten(2).transpose(1, 2) + m.pos
    state, total = tokens, torch.zeros_like(tokens)
    for start in range(0, depth, CFG.group):
        h = state
        for blk in m.blocks[start:min(start + CFG.group, depth)]:
            h = blk(h, c)
        state, total = state + h, total + h
    out = m.final(total, c)                                   # (B, N, p·p·C)
    b, (gh, gw), p = x.shape[0], m.grid, CFG.patch
    return out.reshape(b, gh, gw, p, p, 1).permute(0, 5, 1, 3, 2, 4).reshape(b, 1, gh * p, gw * p)


def test_full_depth_equals_the_reference_computation():
    m = _model()
    x, t, dt, y = _inputs()
    with torch.no_grad():
        got = m(x, t, dt, y=y)
        want = _reference(m, x, t, dt, y, CFG.blocks)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert got.abs().max() > 1e-3                             # not the zero output of an untrained network
    # the final layer sees the sum of the increments, not the last state: with an embedding offset the two differ
    assert not torch.allclose(got, _reference_last_state(m, x, t, dt, y), atol=1e-4)


def _reference_last_state(m, x, t, dt, y):
    """A plain DiT: the blocks chained, the last hidden state to the final layer."""
    c = m.t_embed(t) + m.dt_embed(dt) + m.depth_embed.weight[CFG.blocks] + m.y_embed.weight[y]
    h = m.patch_embed(x).flatten(2).transpose(1, 2) + m.pos
    for blk in m.blocks:
        h = blk(h, c)
    return m.unpatchify(m.final(h, c))


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_a_shallow_call_equals_the_network_with_the_later_blocks_removed(depth):
    m = _model()
    x, t, dt, y = _inputs()
    short = LengthAdaptiveDiT(ODELConfig(**{**CFG.to_dict(), "blocks": depth})).eval()
    state = {k: v for k, v in m.state_dict().items() if not k.startswith("blocks.") or int(k.split(".")[1]) < depth}
    state["depth_embed.weight"] = m.depth_embed.weight[:depth + 1].detach().clone()
    short.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(m(x, t, dt, depth=depth, y=y), short(x, t, dt, y=y), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m(x, t, dt, depth=depth, y=y), _reference(m, x, t, dt, y, depth), rtol=1e-5,
                                   atol=1e-6)


def test_per_sample_depths_equal_the_separate_calls():
    m = _model()
    x, t, dt, y = _inputs(b=3)
    depths = torch.tensor([2, 6, 3])
    with torch.no_grad():
        mixed = m(x, t, dt, depth=depths, y=y)
        for i, d in enumerate(depths.tolist()):
            alone = m(x[i:i + 1], t[i:i + 1], dt[i:i + 1], depth=d, y=y[i:i + 1])
            torch.testing.assert_close(mixed[i:i + 1], alone, rtol=1e-5, atol=1e-6)


def test_depth_cost_labels_and_bad_depths():
    m = _model()
    x, t, dt, y = _inputs(b=2)
    assert m.block_count(4) == 4 and m.block_count() == CFG.blocks
    calls = []
    for blk in m.blocks:
        blk.register_forward_hook(lambda mod, inp, out: calls.append(1))
    with torch.no_grad():
        m(x, t, dt, depth=4, y=y)
    assert len(calls) == 4                                    # a uniform batch runs only its blocks
    with torch.no_grad():                                     # no label: the table's last row
        torch.testing.assert_close(m(x, t, dt), m(x, t, dt, y=torch.full((2,), CFG.classes)))
    for bad in (0, CFG.blocks + 1, [1, 2, 3]):
        with pytest.raises(ValueError, match="depth must be"):
            m(x, t, dt, depth=bad)
    with pytest.raises(ValueError, match="must be ≥ 1"):
        ODELConfig(blocks=6, group=0)
    fresh = LengthAdaptiveDiT(CFG)                            # adaLN-zero: an untrained network predicts 0
    assert fresh(x, t, dt).abs().max() == 0
    grads = copy.deepcopy(m).train()
    grads(x, t, dt, depth=3, y=y).square().mean().backward()
    assert grads.blocks[2].attn.in_proj_weight.grad.abs().sum() > 0 and grads.blocks[3].attn.in_proj_weight.grad is None
