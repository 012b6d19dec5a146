"""The solver core with a length-adaptive denoiser: schedules of (σ_n, blocks_n), their cost in
block-evaluations, SpanLift conditioned on depth, and endpoint matching for a chosen schedule."""

import pytest
import torch

from nowcast.solvers.matching import Batch, evaluate_endpoint
from nowcast.solvers.registry import get_solver, load_solver, save_solver
from nowcast.solvers.rollout import rollout
from nowcast.solvers.schedules import edm_sigmas
from nowcast.training.matching import MatchingConfig, train_endpoint_matching


class Ladder(torch.nn.Module):
    """A length-adaptive toy denoiser: ``depth`` blocks each shrink x by a factor; it records every
    call's depth (``None``: called without one) and, for a shortcut denoiser, the σ it steps to."""

    def __init__(self, full_blocks=12, shortcut=False):
        super().__init__()
        self.full_blocks, self.shortcut = full_blocks, shortcut
        self.depths, self.targets = [], []

    def forward(self, x, sigma, cond=None, depth=None, sigma_next=None):
        self.depths.append(depth)
        self.targets.append(sigma_next)
        b = self.full_blocks if depth is None else depth
        return x * (0.9 ** b) / (1 + torch.as_tensor(sigma, dtype=x.dtype) ** 2)


def _x(b=2):
    return torch.randn(b, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80


def test_block_evaluations_are_counted_exactly_for_a_mixed_schedule():
    sigmas = edm_sigmas(4)
    den = Ladder()
    res = rollout(den, _x(), sigmas, get_solver("euler"), blocks=[4, 8, 8, 12])
    assert (res.nfe, res.block_evaluations) == (4, 32) and den.depths == [4, 8, 8, 12]
    assert res.blocks == [4, 8, 8, 12] and res.seconds > 0
    # Heun evaluates twice per step, its probe at the step's depth (the grid ends at σ_min > 0)
    den = Ladder()
    res = rollout(den, _x(), sigmas, get_solver("heun"), blocks=[4, 8, 8, 12])
    assert (res.nfe, res.block_evaluations) == (8, 64) and den.depths == [4, 4, 8, 8, 8, 8, 12, 12]
    # … except on a last step to σ = 0, which is Euler (EDM): 4+4, 8+8, 8+8, 12 → 52
    den = Ladder()
    zero_end = torch.cat([sigmas[:-1], torch.zeros(1, dtype=sigmas.dtype)])
    res = rollout(den, _x(), zero_end, get_solver("heun"), blocks=[4, 8, 8, 12])
    assert (res.nfe, res.block_evaluations) == (7, 52) and den.depths == [4, 4, 8, 8, 8, 8, 12]
    # with AFS the first step evaluates nothing
    res = rollout(Ladder(), _x(), sigmas, get_solver("ipndm"), blocks=[4, 8, 8, 12], afs=True)
    assert (res.nfe, res.block_evaluations) == (3, 28)
    # no schedule: the full depth each call, and the denoiser is called without a depth
    den = Ladder()
    res = rollout(den, _x(), sigmas, get_solver("euler"))
    assert (res.nfe, res.block_evaluations) == (4, 48) and den.depths == [None] * 4


def test_a_fixed_depth_denoiser_reports_no_block_evaluations_and_refuses_a_schedule():
    def plain(x, sigma, cond=None):
        return x / (1 + torch.as_tensor(sigma, dtype=x.dtype) ** 2)

    res = rollout(plain, _x(), edm_sigmas(3), get_solver("euler"))
    assert res.nfe == 3 and res.block_evaluations is None
    with pytest.raises(ValueError, match="length-adaptive"):
        rollout(plain, _x(), edm_sigmas(3), get_solver("euler"), blocks=4)


@pytest.mark.parametrize("blocks, message", [([4, 8], "2 values for 3 steps"), (13, "1 … 12"), ([0, 4, 4], "1 … 12")])
def test_a_bad_schedule_is_refused(blocks, message):
    with pytest.raises(ValueError, match=message):
        rollout(Ladder(), _x(), edm_sigmas(3), get_solver("euler"), blocks=blocks)


def test_a_shortcut_denoiser_is_told_where_each_step_lands_and_probes_are_instantaneous():
    sigmas = edm_sigmas(3)
    den = Ladder(shortcut=True)
    rollout(den, _x(), sigmas, get_solver("heun"), blocks=6)
    # main evaluations get σ_{n+1}; Heun's probe evaluations get nothing (the instantaneous velocity)
    want = [float(sigmas[1]), None, float(sigmas[2]), None, float(sigmas[3]), None]
    assert [None if t is None else float(t) for t in den.targets] == want
    plain = Ladder(shortcut=False)
    rollout(plain, _x(), sigmas, get_solver("euler"), blocks=6)
    assert plain.targets == [None] * 3


def _spanlift(depth_conditioned=True, seed=0):
    torch.manual_seed(seed)
    s = get_solver("spanlift", base="euler", num_steps=3, channels=1, hidden=8, blocks=1,
                   depth_conditioned=depth_conditioned)
    with torch.no_grad():                      # a trained-looking operator: non-zero head and FiLM
        for p in s.operator.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return s.double()


def test_spanlift_sees_the_depth_of_each_step_only_when_conditioned_on_it():
    sigmas = edm_sigmas(3)
    conditioned = _spanlift(True)
    assert conditioned.operator.cond_dim == 4

    class Flat(Ladder):                      # the same output at every depth: only the condition changes
        def forward(self, x, sigma, cond=None, depth=None, sigma_next=None):
            return super().forward(x, sigma, cond, None, sigma_next)

    a = rollout(Flat(), _x(), sigmas, conditioned, blocks=[4, 4, 4]).x
    b = rollout(Flat(), _x(), sigmas, conditioned, blocks=[12, 4, 4]).x
    assert (a - b).abs().max() > 1e-6
    blind = _spanlift(False)
    assert blind.operator.cond_dim == 3
    a = rollout(Flat(), _x(), sigmas, blind, blocks=[4, 4, 4]).x
    b = rollout(Flat(), _x(), sigmas, blind, blocks=[12, 4, 4]).x
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_depth_conditioned_spanlift_starts_as_its_base_and_round_trips_through_a_file(tmp_path):
    sigmas = edm_sigmas(3)
    fresh = get_solver("spanlift", base="euler", num_steps=3, channels=1, hidden=8, blocks=1,
                       depth_conditioned=True).double()
    base = rollout(Ladder(), _x(), sigmas, get_solver("euler"), blocks=[4, 8, 12]).x
    torch.testing.assert_close(rollout(Ladder(), _x(), sigmas, fresh, blocks=[4, 8, 12]).x, base, rtol=0, atol=0)
    trained = _spanlift(True)
    save_solver(tmp_path / "solver.pt", trained)
    loaded, _ = load_solver(tmp_path / "solver.pt")
    loaded = loaded.double()
    assert loaded.depth_conditioned
    torch.testing.assert_close(rollout(Ladder(), _x(), sigmas, loaded, blocks=[4, 8, 12]).x,
                               rollout(Ladder(), _x(), sigmas, trained, blocks=[4, 8, 12]).x, rtol=0, atol=0)


def test_endpoint_matching_trains_for_the_chosen_schedule():
    """The teacher: the full-depth denoiser on a fine grid; the student runs 3 steps at blocks
    (2, 6, 12) — every training and validation rollout must run that schedule, and the learned
    correction must bring the endpoint closer than the base's."""
    schedule = [2, 6, 12]
    teacher = Ladder()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 1, 4, 4, generator=g, dtype=torch.float64) * 80
    with torch.no_grad():
        target = rollout(teacher, x, edm_sigmas(64), get_solver("heun")).x
    val = Batch(x[:16], target[:16])
    pool = Batch(x[16:], target[16:])
    den = Ladder()
    student = get_solver("spanlift", base="euler", num_steps=3, channels=1, hidden=8, blocks=1,
                         depth_conditioned=True).double()
    before = evaluate_endpoint(student, den, edm_sigmas(3), val, blocks=schedule)
    result = train_endpoint_matching(student, den, edm_sigmas(3), lambda b, gen: pool, val,
                                     MatchingConfig(iterations=40, batch_size=16, lr=1e-2, val_every=10,
                                                    save_every=40), blocks=schedule)
    calls = [d for d in den.depths]
    assert set(calls) == set(schedule) and len(calls) % 3 == 0
    assert all(calls[i:i + 3] == schedule for i in range(0, len(calls), 3))
    assert result.best_val < 0.8 * before
