"""The ``spanlift`` stage of ``python -m nowcast.train``: CLI, resume, losses × targets, teacher cache."""

import json

import pytest
import torch

from tests.killed import run_until_killed
from nowcast.models.ldm import member_noise
from nowcast.models.model_files import load_model, load_trained_solver
from nowcast.solvers.registry import load_solver
from nowcast.train import main
from nowcast.training.config import load_config
from nowcast.training.solver_stage import build_solver_job
from nowcast.training.teacher_cache import noise_seed, window_of


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache"))     # teacher caches per test


def _args(model, store, runs, *extra):
    return ["--model", model, "--data", store, "--runs-dir", str(runs), "--base", "ddim:2", "--teacher", "ddim:3",
            "--batch-size", "2", "--set", "spanlift.teacher_samples=4", "--set", "spanlift.val_samples=2",
            "--set", "spanlift.hidden=8", "--set", "val_every=1", "--set", "ckpt_every=1", "--no-progress",
            "--device", "cpu", *extra]


def _config(model, store, runs, **section):
    over = [("data", store), ("runs_dir", str(runs)), ("device", "cpu"), ("batch_size", 1), ("max_steps", 1),
            ("val_every", 1), ("spanlift.model", model), ("spanlift.base", "ddim:2"), ("spanlift.teacher", "ddim:3"),
            ("spanlift.val_samples", 1), ("spanlift.hidden", 8)]
    return load_config(None, "spanlift", over + [(f"spanlift.{k}", v) for k, v in section.items()])


def test_cli_trains_writes_a_solver_and_resumes_bit_identically(tiny_model_file, tiny_store, tmp_path):
    assert main(_args(tiny_model_file, tiny_store, tmp_path / "a", "--steps", "4")) == 0
    run_a = next((tmp_path / "a").iterdir())
    assert run_a.name == "00000-spanlift-ddim2-mse-teacher"
    solver_a, meta = load_solver(run_a / "solver.pt")
    assert meta["steps"] == 2 and meta["nfe"] == 2 and meta["target"] == "teacher" and meta["teacher"] == "ddim:3"
    # interrupted after 2 optimiser steps, then the same command with the full length resumes it
    assert main(_args(tiny_model_file, tiny_store, tmp_path / "b", "--steps", "2")) == 0
    assert main(_args(tiny_model_file, tiny_store, tmp_path / "b", "--steps", "4")) == 0
    runs_b = list((tmp_path / "b").iterdir())
    assert len(runs_b) == 1
    solver_b, _ = load_solver(runs_b[0] / "solver.pt")
    state = torch.load(runs_b[0] / "checkpoints" / "step-0000004.pt", weights_only=True)
    assert state["step"] == 4
    for k, v in solver_a.state_dict().items():
        torch.testing.assert_close(solver_b.state_dict()[k], v, rtol=0, atol=0)
    hist = json.loads((runs_b[0] / "metrics.json").read_text())["validation"]
    assert [h["step"] for h in hist] == [0, 1, 2, 3, 4]


def test_bad_options_exit_2_without_a_run(tiny_model_file, tiny_store, tmp_path, capsys, no_lpips_weights):
    for extra, msg in ((["--base", "nope:5"], "unknown solver"), (["--teacher", "ddim"], "SOLVER:STEPS"),
                       (["--model", str(tmp_path / "missing.pt")], "no model"),
                       (["--loss", "lpips"], "AlexNet weights")):
        assert main(_args(tiny_model_file, tiny_store, tmp_path / "runs", *extra)) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("target", ["teacher", "target"])
@pytest.mark.parametrize("loss", ["mse", "inception", "lpips"])
def test_every_loss_and_target_trains(loss, target, tiny_model_file, tiny_store, tmp_path):
    lpips_module = None
    if loss == "lpips":                      # no AlexNet weights here: a seeded random trunk stands in
        lpips = pytest.importorskip("lpips")
        torch.manual_seed(0)
        lpips_module = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    cfg = _config(tiny_model_file, tiny_store, tmp_path, loss=loss, target=target)
    job = build_solver_job(cfg, tiny_store, torch.device("cpu"), lpips_module=lpips_module)
    result = job.run(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    assert [h["iteration"] for h in result.history] == [0, 1]
    assert all(torch.isfinite(torch.tensor(h["val"])) for h in result.history)
    _, meta = load_trained_solver(tmp_path / "run")
    assert (meta["loss"], meta["target"]) == (loss, target)
    caches = sorted((tmp_path / "cache" / "teachers").glob("*-train-*.zarr"))
    if target == "teacher":     # default pool: max_steps × batch_size pairs, every batch new noise
        import zarr
        assert [zarr.open_group(str(c), mode="r").attrs["count"] for c in caches] == [1]
    else:
        assert caches == []     # direct-target training runs no teacher
    # one optimiser step moved the student (gradients reached it through decoder and rollout)
    assert result.history[1]["val"] != result.history[0]["val"]


def test_teacher_cache_holds_the_teachers_endpoints_and_is_reused(tiny_model_file, tiny_store, tmp_path):
    cfg = _config(tiny_model_file, tiny_store, tmp_path)
    job = build_solver_job(cfg, tiny_store, torch.device("cpu"))
    calls = []
    hook = job.ldm.unet.register_forward_hook(lambda *a: calls.append(1))
    first = job.teacher_pairs("train", 3, progress=False, log=lambda m: None)
    assert len(calls) == 3                           # 3 pairs in one batch: 3 DDIM steps, one call each
    # an independent sampling path: the model's own ensemble sampler from pair i's context and seed
    ldm = load_model(tiny_model_file).ldm
    from nowcast.data.windows import WindowDataset, window_frames
    data = WindowDataset(tiny_store, "sevirlr", "train")
    for i in range(3):
        frames = window_frames(data[window_of(0, i, len(data))])[None, :7]
        z = ldm.sample_latents(ldm.encode_context(frames), [noise_seed(0, i)], "ddim", 3)[0, 0]
        torch.testing.assert_close(first.target[i], z, rtol=1e-5, atol=1e-5)
        x0 = ldm.prior_state(member_noise(ldm.latent_shape(), [noise_seed(0, i)]), job.sigmas)[0]
        torch.testing.assert_close(first.x[i], x0, rtol=0, atol=0)
    calls.clear()
    job2 = build_solver_job(cfg, tiny_store, torch.device("cpu"))
    hook.remove()
    hook = job2.ldm.unet.register_forward_hook(lambda *a: calls.append(1))
    again = job2.teacher_pairs("train", 3, progress=False, log=lambda m: None)
    assert calls == []                                           # a second run computes no teacher rollouts
    torch.testing.assert_close(again.target, first.target, rtol=0, atol=0)
    more = job2.teacher_pairs("train", 5, progress=False, log=lambda m: None)
    assert len(calls) == 3                                       # only the 2 new pairs: one batch
    torch.testing.assert_close(more.target[:3], first.target, rtol=0, atol=0)
    hook.remove()


def test_crps_loss_is_the_fair_crps_of_each_forecasts_members():
    from nowcast.training.losses import endpoint_loss
    from nowcast.verification.ensemble import crps_ensemble

    torch.manual_seed(0)
    pred, target = torch.rand(6, 2, 5, 5), torch.rand(2, 2, 5, 5)          # two forecasts of 3 members
    loss = endpoint_loss("crps", members=3)(pred, target.repeat_interleave(3, 0))
    direct = [crps_ensemble(pred[3 * i:3 * i + 3].numpy(), target[i].numpy(), fair=True).mean() for i in range(2)]
    torch.testing.assert_close(loss, torch.tensor(direct, dtype=loss.dtype).repeat_interleave(3))
    with pytest.raises(ValueError, match="3-member"):
        endpoint_loss("crps", members=3)(pred[:5], target[:1].repeat(5, 1, 1, 1))
    with pytest.raises(ValueError, match="image models"):
        endpoint_loss("crps", images=True)


def test_crps_training_scores_the_forecast_in_its_pixels(tiny_store, tmp_path):
    """A residual model decoding onto its first guess in pixels: the loss of the job's batch equals the
    fair CRPS (numpy, ``verification.ensemble``) of the forecast ``P + D(ẑ) − D(g)`` itself."""
    from nowcast.models.ldm import DiffusionConfig, LatentDiffusion
    from nowcast.models.model_files import save_model
    from nowcast.models.unet import SpaceTimeUNet, UNetConfig
    from nowcast.models.vae import FrameVAE, VAEConfig
    from nowcast.solvers import rollout
    from nowcast.verification.ensemble import crps_ensemble

    torch.manual_seed(0)
    vae = FrameVAE(VAEConfig(block_out_channels=(8, 16, 16, 16), layers_per_block=1, latent_channels=4, norm_groups=4))
    unet = SpaceTimeUNet(UNetConfig(latent_channels=4, context_frames=7, target_frames=6, height=4, width=4,
                                    base_units=16, depth=(1, 1), heads=2, dropout=0.0, norm_groups=4, guide=True))
    ldm = LatentDiffusion(vae, unet, DiffusionConfig(first_guess="persistence", residual=True,
                                                     first_guess_pixels=True))
    path = save_model(tmp_path / "residual.pt", ldm, "sevirlr")
    cfg = _config(str(path), tiny_store, tmp_path, loss="crps", target="target", members=4)
    job = build_solver_job(cfg, tiny_store, torch.device("cpu"))
    batch = job.observed_pairs("val", 2)
    assert len(batch.x) == 8 and torch.equal(batch.cond[0], batch.cond[3]) and not torch.equal(batch.x[0], batch.x[1])
    with torch.no_grad():
        end = rollout(job.ldm.denoiser(), batch.x, job.sigmas, job.student, cond=batch.cond).x
        got = job.loss_fn(end, batch.target)
    from nowcast.data.windows import WindowDataset, window_frames
    from nowcast.training.teacher_cache import window_of

    data = WindowDataset(tiny_store, "sevirlr", "val")
    for i in range(2):
        frames = window_frames(data[window_of(cfg.seed, i, len(data))])
        ctx, future = frames[None, :7], frames[7:]
        guess = job.ldm.first_guess_frames(ctx)[0]
        g = job.ldm.encode_context(ctx, job.ldm.first_guess_frames(ctx))[:, -6:]
        with torch.no_grad():
            forecast = job.ldm.decode(end[4 * i:4 * i + 4].float()) + (guess - job.ldm.decode(g.float())[0])[None]
        direct = crps_ensemble(forecast.numpy(), future.numpy(), fair=True).mean()
        assert float(got[4 * i]) == pytest.approx(direct, rel=1e-4)
    result = job.run(cfg, tmp_path / "run", progress=False, log=lambda m: None)       # and it trains
    assert result.history[1]["val"] != result.history[0]["val"]
    assert load_trained_solver(tmp_path / "run")[1]["loss"] == "crps"
    with pytest.raises(ValueError, match="--target target"):
        _config(str(path), tiny_store, tmp_path, loss="crps", target="teacher")


_KILLED = """
import json, os, signal, sys
from nowcast.solvers import matching
from nowcast.training.teacher_cache import TeacherCache
if sys.argv[1] == "teacher cache":            # SIGKILL once the first chunk of 16 endpoints is stored
    append = TeacherCache.append
    def killing(self, endpoints):
        append(self, endpoints)
        if self.count >= 16:
            os.kill(os.getpid(), signal.SIGKILL)
    TeacherCache.append = killing
else:                                         # SIGKILL while drawing the batch of step 3
    draw, calls = matching.TeacherPool.__call__, []
    def killing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return draw(self, *args, **kwargs)
    matching.TeacherPool.__call__ = killing
from nowcast.train import main
main(json.loads(sys.argv[2]))
"""


def test_killed_teacher_fill_and_killed_training_resume_to_the_same_solver(tiny_model_file, tiny_store, tmp_path,
                                                                           monkeypatch):
    """Real processes SIGKILLed (1) while the teacher cache fills and (2) in training step 3; the same
    command started again continues the cache and the run, and ends with the solver and the teacher
    endpoints of an uninterrupted run."""
    import numpy as np
    import zarr

    extra = ["--steps", "4", "--set", "spanlift.teacher_samples=40"]
    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache-a"))
    assert main(_args(tiny_model_file, tiny_store, tmp_path / "a", *extra)) == 0
    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache-b"))
    args = _args(tiny_model_file, tiny_store, tmp_path / "b", *extra)
    for where in ("teacher cache", "training"):
        run_until_killed(_KILLED, where, json.dumps(args), env={"NOWCAST_CACHE": str(tmp_path / "cache-b")})
        if where == "teacher cache":
            (cache,) = (tmp_path / "cache-b" / "teachers").glob("*-train-*.zarr")
            assert zarr.open_group(str(cache), mode="r").attrs["count"] == 16
    assert main(args) == 0
    (run_a,), (run_b,) = (tmp_path / "a").iterdir(), (tmp_path / "b").iterdir()
    assert "resum" in (run_b / "log.txt").read_text()
    a, _ = load_solver(run_a / "solver.pt")
    b, _ = load_solver(run_b / "solver.pt")
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=0, atol=0)
    for name in ("train", "val"):
        (ca,), (cb,) = [list((tmp_path / c / "teachers").glob(f"*-{name}-*.zarr")) for c in ("cache-a", "cache-b")]
        ga, gb = zarr.open_group(str(ca), mode="r"), zarr.open_group(str(cb), mode="r")
        assert ga.attrs["count"] == gb.attrs["count"]
        for key in ga.array_keys():
            np.testing.assert_array_equal(ga[key][:], gb[key][:])
