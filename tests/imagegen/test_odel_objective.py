"""The ODE_t(ODE_l) objective and shortcut sampler against the exact velocity of a point mass."""

import pytest
import torch

from tests.killed import run_until_killed
from nowcast.imagegen.odel import LengthAdaptiveDiT, ODELConfig
from nowcast.imagegen.odel_objective import ShortcutConfig, shortcut_loss
from nowcast.imagegen.odel_sampling import sample_shortcut


class PointMass(torch.nn.Module):
    """The exact flow of data concentrated at ``c``: every path is straight, so the velocity
    ``(x − c)/t`` is also the average velocity over any step — plus an optional constant error."""

    def __init__(self, c, error=0.0):
        super().__init__()
        self.c, self.error = c, error
        self.cfg = ODELConfig(shape=tuple(c.shape[1:]), patch=1, width=8, heads=1, blocks=12, group=4)
        self.calls = []

    def forward(self, x, t, dt=None, depth=None, y=None):
        self.calls.append(depth)
        return (x - self.c) / t.reshape(-1, 1, 1, 1) + self.error


def _data(b=16):
    c = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    return c, c.expand(b, -1, -1, -1).clone()


def test_the_exact_flow_has_zero_loss_on_every_term():
    c, x0 = _data()
    oracle = PointMass(c)
    cfg = ShortcutConfig(depths=(4,), shortcut_fraction=0.25, length_fraction=0.25)
    loss, parts = shortcut_loss(oracle, oracle, x0, torch.Generator().manual_seed(0), cfg)
    assert loss.item() < 1e-10
    assert parts["depth"] == 4 and all(parts[k].item() < 1e-10 for k in ("flow_matching", "self_consistency",
                                                                          "length_consistency"))
    assert 12 in oracle.calls                                  # the length targets come from the full depth


def test_a_constant_velocity_error_gives_the_analytic_loss():
    """With s = exact + e: flow matching errs by e²; a shortcut step d from t errs by (e·h/(t−h)/2)²
    with h = d/2 (the second half-step starts off the straight path)."""
    c, x0 = _data(b=64)
    e = 0.1
    wrong = PointMass(c, error=e)
    cfg = ShortcutConfig(depths=(12,), shortcut_fraction=0.5, length_fraction=0.0, min_log2_step=3)
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    loss, parts = shortcut_loss(wrong, wrong, x0, g, cfg)
    assert parts["flow_matching"].item() == pytest.approx(e ** 2, rel=1e-5)
    # redraw the batch's times and step sizes exactly as the loss did
    g.set_state(state)
    torch.randint(1, (1,), generator=g)
    torch.randn(x0.shape, generator=g)
    k = torch.randint(0, 3, (64,), generator=g)
    d = torch.where(torch.arange(64) < 32, 2.0 ** (-k.float()), torch.zeros(64))
    t = (d + (1 - d) * (1 - torch.rand(64, generator=g))).clamp(max=1.0)
    h = d[:32] / 2
    want = ((e * h / (t[:32] - h)) / 2).square().mean()
    assert parts["self_consistency"].item() == pytest.approx(want.item(), rel=1e-4)


class StepRecorder(PointMass):
    """The point-mass flow, recording every step size the network is asked about."""

    def __init__(self, c):
        super().__init__(c)
        self.steps = []

    def forward(self, x, t, dt=None, depth=None, y=None):
        self.steps += [] if dt is None else dt.tolist()
        return super().forward(x, t, dt, depth, y)


def test_shortcut_targets_only_query_step_sizes_that_are_trained():
    """Every step size inside a target is one the loss trains: 0 (flow matching) or a shortcut
    2^-k, k < min_log2_step — the smallest shortcut's halves use the instantaneous velocity, so the
    recursion rests on flow matching, not on an untrained step-size input."""
    c, x0 = _data(b=256)
    model, ema = StepRecorder(c), StepRecorder(c)
    cfg = ShortcutConfig(depths=(12,), shortcut_fraction=0.5, length_fraction=0.0, min_log2_step=4)
    shortcut_loss(model, ema, x0, torch.Generator().manual_seed(5), cfg)
    trained = {0.0} | {2.0 ** -k for k in range(4)}
    asked = set(model.steps) | set(ema.steps)
    assert asked <= trained, sorted(asked - trained)
    assert 0.0 in asked and 0.0625 not in asked                          # 1/16 = the smallest's half


@pytest.mark.parametrize("source", ["online", "ema"])
def test_self_consistency_targets_come_from_the_chosen_network(source):
    """An exact online network and an EMA that errs by a constant: the self-consistency term is zero
    exactly when the targets come from the online network."""
    c, x0 = _data(b=64)
    exact, wrong = PointMass(c), PointMass(c, error=0.1)
    cfg = ShortcutConfig(depths=(12,), shortcut_fraction=0.5, length_fraction=0.0, shortcut_targets=source)
    _, parts = shortcut_loss(exact, wrong, x0, torch.Generator().manual_seed(6), cfg)
    assert (parts["self_consistency"].item() < 1e-10) == (source == "online")


def test_an_unknown_target_source_is_refused():
    with pytest.raises(ValueError, match="online' or 'ema"):
        ShortcutConfig(shortcut_targets="teacher")


def test_the_loss_trains_the_length_adaptive_dit():
    torch.manual_seed(0)
    cfg = ODELConfig(shape=(1, 8, 8), patch=2, width=16, heads=2, blocks=4, group=2, classes=10)
    model, ema = LengthAdaptiveDiT(cfg), LengthAdaptiveDiT(cfg)
    ema.load_state_dict(model.state_dict())
    x0 = torch.randn(8, 1, 8, 8)
    loss, parts = shortcut_loss(model, ema, x0, torch.Generator().manual_seed(1),
                                ShortcutConfig(depths=(2,), shortcut_fraction=0.25, length_fraction=0.25),
                                y=torch.randint(0, 10, (8,)))
    loss.backward()
    assert parts["depth"] == 2 and parts["length_consistency"].item() >= 0
    assert model.final.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in ema.parameters())


def test_shortcut_sampling_reaches_the_data_and_counts_its_cost():
    c, _ = _data()
    oracle = PointMass(c)
    noise = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for steps, blocks, evaluations in ((1, None, 12), (4, 8, 32), (3, [4, 8, 12], 24)):
        x, cost = sample_shortcut(oracle, noise, steps, blocks)
        torch.testing.assert_close(x, c.expand_as(x), rtol=1e-5, atol=1e-5)
        assert cost.nfe == steps and cost.block_evaluations == evaluations and cost.seconds >= 0
    with pytest.raises(ValueError, match="3 values for 2 steps"):
        sample_shortcut(oracle, noise, 2, [4, 8, 12])


_KILLED_ODEL = """
import os, signal, sys
import nowcast.imagegen.odel_train as odel_train
from nowcast.imagegen.datasets import load_images
from nowcast.imagegen.odel import ODELConfig
from nowcast.imagegen.odel_objective import ShortcutConfig
loss, calls = odel_train.shortcut_loss, []
def killing(*args, **kwargs):         # SIGKILL inside step 5 (checkpoints every 3 steps)
    calls.append(1)
    if len(calls) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return loss(*args, **kwargs)
odel_train.shortcut_loss = killing
d = load_images("digits")
cfg = odel_train.ODELTrainConfig(model=ODELConfig(shape=(1, 8, 8), patch=2, width=16, heads=2, blocks=4, group=2),
                                 objective=ShortcutConfig(depths=(2, 4)), steps=6, batch_size=8, checkpoint_every=3)
odel_train.train_odel(d.images[:64], d.labels[:64], cfg, sys.argv[1])
"""


def test_odel_training_killed_mid_run_resumes_bit_identically(tmp_path):
    from nowcast.imagegen.datasets import load_images
    from nowcast.imagegen.odel_train import ODELTrainConfig, load_odel, train_odel

    d = load_images("digits")
    cfg = ODELTrainConfig(model=ODELConfig(shape=(1, 8, 8), patch=2, width=16, heads=2, blocks=4, group=2),
                          objective=ShortcutConfig(depths=(2, 4)), steps=6, batch_size=8, checkpoint_every=3)
    straight = load_odel(train_odel(d.images[:64], d.labels[:64], cfg, tmp_path / "a"))
    run_until_killed(_KILLED_ODEL, tmp_path / "b")
    resumed = load_odel(train_odel(d.images[:64], d.labels[:64], cfg, tmp_path / "b"))
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert straight.cfg == cfg.model
    with pytest.raises(ValueError, match="depths"):
        train_odel(d.images[:8], None, ODELTrainConfig(model=cfg.model, objective=ShortcutConfig(depths=(8,))),
                   tmp_path / "c")
