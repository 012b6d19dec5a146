"""Tiny EDM model training and learned solvers for image models (short runs on exact test beds)."""

import pytest
import torch

from tests.killed import run_until_killed
from nowcast.imagegen.datasets import load_images
from nowcast.imagegen.learned import (ImageSolverConfig, load_image_solver, sample_images, student_grid,
                                      train_image_solver)
from nowcast.imagegen.tiny import TinyEDMConfig, load_tiny_edm, train_tiny_edm
from nowcast.solvers.registry import get_solver
from nowcast.solvers.testbeds import gaussian_field


def test_bundled_data_sets():
    d = load_images("digits")
    assert d.images.shape == (1797, 1, 8, 8) and d.images.min() == -1 and d.images.max() == 1
    assert d.sigma_data == pytest.approx(0.752, abs=1e-3)           # solvers.md §8.1
    m = load_images("mnist16")
    assert m.images.shape == (5000, 1, 16, 16) and torch.bincount(m.labels).tolist() == [500] * 10
    with pytest.raises(ValueError, match="unknown image data set"):
        load_images("cifar10")


_KILLED_EDM = """
import os, signal, sys
import nowcast.imagegen.tiny as tiny
from nowcast.imagegen.datasets import load_images
loss, calls = tiny.edm_loss, []
def killing(*args, **kwargs):         # SIGKILL inside step 5 (checkpoints every 3 steps)
    calls.append(1)
    if len(calls) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return loss(*args, **kwargs)
tiny.edm_loss = killing
cfg = tiny.TinyEDMConfig(shape=(1, 8, 8), width=16, blocks=1, emb_dim=8, steps=6, batch_size=8,
                         checkpoint_every=3, sigma_data=0.75)
tiny.train_tiny_edm(load_images("digits").images[:64], cfg, sys.argv[1])
"""


def test_tiny_edm_killed_mid_run_resumes_bit_identically(tmp_path):
    """A real process is SIGKILLed in step 5; the same training started again resumes from step 3 and
    ends with the weights of an uninterrupted run."""
    x = load_images("digits").images[:64]
    cfg = TinyEDMConfig(shape=(1, 8, 8), width=16, blocks=1, emb_dim=8, steps=6, batch_size=8,
                        checkpoint_every=3, sigma_data=0.75)
    straight = load_tiny_edm(train_tiny_edm(x, cfg, tmp_path / "a"))
    run_until_killed(_KILLED_EDM, tmp_path / "b")
    assert not (tmp_path / "b" / "model.pt").exists()
    resumed = load_tiny_edm(train_tiny_edm(x, cfg, tmp_path / "b"))
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    # the untrained network's zero output layer makes it the EDM "skip" denoiser c_skip·x
    fresh = load_tiny_edm(train_tiny_edm(x, TinyEDMConfig(**{**cfg.__dict__, "steps": 0}), tmp_path / "c"))
    xs, s = torch.randn(2, 1, 8, 8), torch.tensor([0.5, 3.0])
    want = 0.75 ** 2 / (s ** 2 + 0.75 ** 2)
    torch.testing.assert_close(fresh(xs, s), want.reshape(-1, 1, 1, 1) * xs)


@pytest.mark.parametrize("solver", ["dyweight", "spanlift"])
def test_learned_solver_gets_closer_to_the_exact_teacher(solver, tmp_path):
    tb = gaussian_field(size=8)                                       # exact denoiser and exact ODE solution
    cfg = ImageSolverConfig(solver=solver, nfe=3, iterations=30, batch_size=16, val_size=32, teacher="heun:32",
                            base="euler")
    student, res = train_image_solver(tb, tb.shape, cfg, run_dir=tmp_path)
    assert res.best_val < 0.7 * res.init_val
    loaded, grid, afs = load_image_solver(tmp_path / "solver.pt")
    assert afs and torch.equal(grid, student_grid(3))
    noise = torch.randn(64, *tb.shape, generator=torch.Generator().manual_seed(99))
    x, nfe = sample_images(tb, noise, grid, loaded, afs=True)
    assert nfe == 3
    exact = tb.exact_solution(noise * 80.0, 80.0, 0.002)
    base, _ = sample_images(tb, noise, grid, get_solver("euler" if solver == "spanlift" else "ipndm"), afs=True)
    assert (x - exact).pow(2).mean() < (base - exact).pow(2).mean()


def test_inception_loss_trains_a_step(tmp_path):
    tb = gaussian_field(size=8)
    cfg = ImageSolverConfig(solver="dyweight", nfe=3, loss="inception", iterations=1, batch_size=2, val_size=2,
                            teacher="euler:8")
    student, res = train_image_solver(tb, tb.shape, cfg)
    assert res.init_val > 0 and len(res.history) == 2
