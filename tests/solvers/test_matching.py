"""Endpoint teacher matching, span analysis and solver persistence."""

import json

import numpy as np
import pytest
import torch

from nowcast.solvers import DyWeight, SpanLift, edm_sigmas, get_solver, load_solver, rollout, save_solver
from nowcast.solvers.matching import Batch, FreshTeacher, TeacherPool, evaluate_endpoint
from nowcast.training.losses import endpoint_loss
from nowcast.training.matching import MatchingConfig, train_endpoint_matching
from nowcast.solvers.span import out_of_span_fraction, span_analysis
from nowcast.solvers.testbeds import grf_mixture

K = 4  # steps (NFE 3 with AFS)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    tb = grf_mixture(8)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, 8, 8, generator=g) * 80
    tgt = tb.teacher(x, 80.0, 0.002, steps=48)
    xv = torch.randn(64, 1, 8, 8, generator=g) * 80
    val = Batch(xv, tb.teacher(xv, 80.0, 0.002, steps=48))
    return tb, TeacherPool(x, tgt), val


def test_dyweight_training_improves_on_validation(problem):
    tb, pool, val = problem
    dw = DyWeight(K)
    cfg = MatchingConfig(iterations=60, batch_size=16, lr=1e-2, afs=True, val_every=10)
    res = train_endpoint_matching(dw, tb, edm_sigmas(K), pool, val, cfg)
    assert res.best_val < 0.7 * res.init_val
    # the solver ends in the best state found
    assert evaluate_endpoint(dw, tb, edm_sigmas(K), val, afs=True) == pytest.approx(res.best_val, rel=1e-6)


def test_spanlift_training_improves_its_base(problem):
    tb, pool, val = problem
    sl = SpanLift(get_solver("euler"), num_steps=K, channels=1, hidden=16)
    cfg = MatchingConfig(iterations=30, batch_size=16, lr=3e-3, afs=True, val_every=10)
    res = train_endpoint_matching(sl, tb, edm_sigmas(K), pool, val, cfg)
    base = evaluate_endpoint(get_solver("euler"), tb, edm_sigmas(K), val, afs=True)
    assert res.init_val == pytest.approx(base, rel=1e-6)
    assert res.best_val < 0.8 * base


def test_fresh_teacher_draws_new_noise_and_teacher_endpoints(problem):
    tb, _, val = problem
    calls = []

    def teacher(x, cond):
        calls.append(len(x))
        return tb.teacher(x, 80.0, 0.002, steps=48)

    fresh = FreshTeacher(teacher, (1, 8, 8), 80.0)
    g = torch.Generator().manual_seed(5)
    b1, b2 = fresh(4, g), fresh(4, g)
    assert calls == [4, 4] and not torch.equal(b1.x, b2.x)
    torch.testing.assert_close(b1.target, tb.teacher(b1.x, 80.0, 0.002, steps=48))
    dw = DyWeight(K)
    res = train_endpoint_matching(dw, tb, edm_sigmas(K), fresh, val,
                                  MatchingConfig(iterations=6, batch_size=4, afs=True, val_every=3))
    assert res.best_val <= res.init_val and sum(calls[2:]) == 6 * 4


def test_a_diverging_run_keeps_the_initial_state(problem):
    tb, pool, val = problem
    dw = DyWeight(K)
    init = evaluate_endpoint(dw, tb, edm_sigmas(K), val, afs=True)
    cfg = MatchingConfig(iterations=10, batch_size=8, lr=50.0, warmup=0.0, afs=True, val_every=2,
                         grad_clip=1e6)
    res = train_endpoint_matching(dw, tb, edm_sigmas(K), pool, val, cfg)
    assert res.best_val <= init
    assert evaluate_endpoint(dw, tb, edm_sigmas(K), val, afs=True) <= init


_KILLED_RUN = """
import os, signal, sys
import torch
from nowcast.solvers import DyWeight, edm_sigmas
from nowcast.solvers.matching import Batch, TeacherPool
from nowcast.solvers.testbeds import grf_mixture
from nowcast.training.matching import MatchingConfig, train_endpoint_matching

torch.manual_seed(0)
tb = grf_mixture(8)
g = torch.Generator().manual_seed(0)
x = torch.randn(256, 1, 8, 8, generator=g) * 80
pool = TeacherPool(x, tb.teacher(x, 80.0, 0.002, steps=48))
xv = torch.randn(64, 1, 8, 8, generator=g) * 80
val = Batch(xv, tb.teacher(xv, 80.0, 0.002, steps=48))
draws = {"n": 0}
draw = pool.__call__

def killing(batch_size, generator):          # SIGKILL in the middle of step 18 (checkpoints every 5 steps)
    draws["n"] += 1
    if draws["n"] == 18:
        os.kill(os.getpid(), signal.SIGKILL)
    return draw(batch_size, generator)

pool.__call__ = killing
cfg = MatchingConfig(iterations=30, batch_size=8, lr=1e-2, afs=True, val_every=5, save_every=5)
train_endpoint_matching(DyWeight(4), tb, edm_sigmas(4), type("P", (), {"__call__": staticmethod(killing),
    "state_dict": pool.state_dict, "load_state_dict": pool.load_state_dict})(), val, cfg, run_dir=sys.argv[1])
"""


def test_training_killed_mid_run_resumes_bit_identically(problem, tmp_path):
    """A real process is SIGKILLed during step 18; the same run started again resumes from its step-15
    checkpoint (weights, Adam moments, the pool's order, the random generator) and ends with the very
    weights of an uninterrupted run — dropping any part of that state on resume changes them."""
    import signal
    import subprocess
    import sys

    tb, pool, val = problem
    cfg = MatchingConfig(iterations=30, batch_size=8, lr=1e-2, afs=True, val_every=5, save_every=5)
    run = tmp_path / "killed"
    out = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(run)], capture_output=True, text=True, timeout=300)
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert (run / "checkpoints" / "step-0000015.pt").is_file()
    assert not (run / "checkpoints" / "step-0000020.pt").exists() and not (run / "solver.pt").exists()
    resumed = DyWeight(K)
    res = train_endpoint_matching(resumed, tb, edm_sigmas(K), TeacherPool(pool.x, pool.target), val, cfg, run_dir=run)
    assert [h["iteration"] for h in res.history] == [0, 5, 10, 15, 20, 25, 30]
    straight = DyWeight(K)
    train_endpoint_matching(straight, tb, edm_sigmas(K), TeacherPool(pool.x, pool.target), val, cfg,
                            run_dir=tmp_path / "straight")
    for k, v in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)
    assert json.loads((run / "metrics.json").read_text())["final"]["step"] == 30


def test_unknown_loss_and_untrainable_solver(problem):
    tb, pool, val = problem
    with pytest.raises(ValueError, match="available"):
        endpoint_loss("perceptual")
    with pytest.raises(ValueError, match="no trainable"):
        train_endpoint_matching(get_solver("euler"), tb, edm_sigmas(K), pool, val)


def test_out_of_span_fraction_of_a_known_decomposition():
    g = torch.Generator().manual_seed(0)
    b1, b2, extra = (torch.randn(3, 50, generator=g, dtype=torch.float64) for _ in range(3))
    # an orthogonal direction by Gram–Schmidt against the basis (per sample), numpy as the oracle
    orth = []
    for i in range(3):
        A = np.stack([b1[i].numpy(), b2[i].numpy()], 1)
        e = extra[i].numpy()
        orth.append(e - A @ np.linalg.lstsq(A, e, rcond=None)[0])
    orth = torch.tensor(np.stack(orth))
    v = 2.0 * b1 - 0.5 * b2 + 3.0 * orth
    expected = 3.0 * orth.norm(dim=1) / v.norm(dim=1)
    torch.testing.assert_close(out_of_span_fraction(v, [b1, b2]), expected, rtol=1e-9, atol=1e-12)
    assert float(out_of_span_fraction(b1 - b2, [b1, b2]).max()) < 1e-9


def test_span_analysis_reports_every_step(problem):
    tb, _, val = problem
    sl = SpanLift(DyWeight(K), num_steps=K, channels=1, hidden=16)
    torch.nn.init.normal_(sl.operator.head.weight, std=0.05)
    recs = span_analysis(tb, val.x[:8], edm_sigmas(K), sl, afs=True,
                         teacher=lambda x, s0, s1: tb.teacher(x, s0, s1, steps=16))
    assert [r["step"] for r in recs] == list(range(K))
    for r in recs:
        assert 0.0 <= r["out_of_span"] <= 1.0 and 0.0 <= r["teacher_out_of_span"] <= 1.0
    # with a one-element buffer (AFS step: d₀ ∝ x) nearly any spatial correction is out of span
    assert recs[0]["out_of_span"] > 0.5


@pytest.mark.parametrize("base", ["ipndm", "dyweight", "unipc"])
def test_save_load_gives_identical_outputs(tmp_path, base):
    torch.manual_seed(1)
    sl = get_solver("spanlift", base=base, num_steps=K, channels=1, hidden=8, train_base=True)
    with torch.no_grad():
        for p in sl.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_solver(tmp_path / "s.pt", sl, meta={"nfe": 3})
    loaded, meta = load_solver(path)
    assert meta == {"nfe": 3}
    tb = grf_mixture(8)
    x = torch.randn(3, 1, 8, 8) * 80
    with torch.no_grad():
        a = rollout(tb, x, edm_sigmas(K), sl, afs=True).x
        b = rollout(tb, x, edm_sigmas(K), loaded, afs=True).x
    assert torch.equal(a, b)


def test_load_solver_rejects_other_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a nowcast solver file"):
        load_solver(tmp_path / "other.pt")


def test_a_run_of_the_earlier_state_format_is_refused_not_restarted(problem, tmp_path):
    tb, pool, val = problem
    (tmp_path / "state.pt").write_bytes(b"an earlier run")
    with pytest.raises(ValueError, match="earlier nowcast"):
        train_endpoint_matching(DyWeight(K), tb, edm_sigmas(K), pool, val, MatchingConfig(iterations=2),
                                run_dir=tmp_path)
    assert (tmp_path / "state.pt").read_bytes() == b"an earlier run" and not (tmp_path / "checkpoints").exists()
