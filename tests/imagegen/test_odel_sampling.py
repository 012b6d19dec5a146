"""The length-adaptive DiT on the solver core: Euler there is the shortcut model's own sampler."""

import torch

from nowcast.imagegen.odel import LengthAdaptiveDiT, ODELConfig
from nowcast.imagegen.flow import T_MAX
from nowcast.imagegen.odel_sampling import (ODELDenoiser, TeacherBatches, sample_odel, sample_shortcut,
                                            uniform_flow_sigmas)
from nowcast.solvers.registry import get_solver


def _model():
    torch.manual_seed(0)
    model = LengthAdaptiveDiT(ODELConfig(shape=(1, 8, 8), patch=2, width=16, heads=2, blocks=4, group=2,
                                         classes=10)).double().eval()
    with torch.no_grad():                   # adaLN-zero starts as the identity: make every block count
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _explicit_shortcut_steps(model, noise, steps, blocks, y):
    """x_{t−d} = x_t − d·s(x_t, t, d, depth) from t = 1, written out step by step."""
    x, d = noise.clone(), 1.0 / steps
    for n, depth in enumerate(blocks):
        t = torch.full((len(x),), 1.0 - n * d, dtype=x.dtype)
        x = x - d * model(x, t, torch.full_like(t, d), depth=depth, y=y)
    return x


def test_euler_on_the_core_equals_explicit_shortcut_steps_at_every_depth_schedule():
    model = _model()
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([1, 5, 9])
    for steps, blocks in ((1, [4]), (2, [2, 4]), (4, [1, 2, 3, 4])):
        want = _explicit_shortcut_steps(model, noise, steps, blocks, y)
        got, res = sample_shortcut(model, noise, steps, blocks, y)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        assert res.nfe == steps and res.block_evaluations == sum(blocks)


def test_a_plain_flow_evaluation_asks_for_the_instantaneous_velocity():
    model = _model()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sigma = torch.tensor(3.0, dtype=torch.float64)                    # t = 0.75
    t = torch.full((2,), 0.75, dtype=torch.float64)
    want = x / 4 - 0.75 * model(x / 4, t, torch.zeros(2, dtype=torch.float64), depth=3)
    got = ODELDenoiser(model, shortcut=False)(x, sigma, None, depth=3, sigma_next=torch.tensor(1.0))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # a shortcut evaluation towards σ = 1 (t = 0.5) asks for the average velocity over Δt = 0.25
    want = x / 4 - 0.75 * model(x / 4, t, torch.full((2,), 0.25, dtype=torch.float64), depth=3)
    got = ODELDenoiser(model)(x, sigma, None, depth=3, sigma_next=torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_any_solver_of_the_core_runs_the_network_at_a_schedule():
    model = _model()
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x, res = sample_odel(model, noise, uniform_flow_sigmas(3), get_solver("heun"), blocks=[2, 4, 4], shortcut=False)
    # Heun: two evaluations per step but one on the last step to σ = 0 → 2+2 + 4+4 + 4
    assert res.nfe == 5 and res.block_evaluations == 16 and torch.isfinite(x).all()


def test_teacher_batches_are_the_full_depth_shortcut_endpoints_of_their_noise():
    model = _model()
    batch = TeacherBatches(model, teacher_steps=8)(3, torch.Generator().manual_seed(4))
    assert batch.x.dtype == torch.float64 and batch.x.shape == (3, 1, 8, 8)
    noise = batch.x * (1 - T_MAX)                                        # the flow's x at t = 1
    want = _explicit_shortcut_steps(model, noise, 8, [4] * 8, None)
    torch.testing.assert_close(batch.target, want, rtol=1e-5, atol=1e-5)
