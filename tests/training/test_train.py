"""End-to-end training runs on a tiny store: every stage, kill-and-resume, exported models, DDP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.killed import run_until_killed
from nowcast.checkpoints import latest_checkpoint, load_checkpoint
from nowcast.models.model_files import load_model, load_vae
from nowcast.train import run
from nowcast.training.config import load_config


_KILLED_RUN = """
import json, os, signal, sys
from nowcast.train import run
from nowcast.training.config import load_config
cfg = load_config(sys.argv[1], sys.argv[2], [tuple(o) for o in json.loads(sys.argv[3])])
def on_step(step):                    # SIGKILL at step 5: the last checkpoint is step 4's
    if step == 5:
        os.kill(os.getpid(), signal.SIGKILL)
run(cfg, progress=False, on_step=on_step)
"""


def _killed_run(config, stage, over) -> None:
    """The run, in a real process SIGKILLed at step 5."""
    run_until_killed(_KILLED_RUN, config, stage, json.dumps(over))


def _assert_same_state(a, b, path=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"differs at {path}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_state(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{path}/{i}")
    else:
        assert a == b, f"differs at {path}: {a} != {b}"


@pytest.mark.parametrize("stage", ["vae", "ldm"])
def test_kill_and_resume_continues_bit_identically(stage, tiny_store, tiny_config, trained_vae, tmp_path):
    over = [("data", tiny_store), ("ckpt_every", 2)] + ([("init", trained_vae)] if stage == "ldm" else [])
    straight = run(load_config(tiny_config, stage, over + [("runs_dir", str(tmp_path / "a"))]), progress=False)
    killed = over + [("runs_dir", str(tmp_path / "b"))]
    _killed_run(tiny_config, stage, killed)
    cfg = load_config(tiny_config, stage, killed)
    assert latest_checkpoint(next((tmp_path / "b").iterdir())).name == "step-0000004.pt"
    resumed = run(cfg, progress=False)                   # the same command again
    assert Path(resumed).parent == tmp_path / "b" and len(list((tmp_path / "b").iterdir())) == 1
    assert "resumed from" in (Path(resumed) / "log.txt").read_text()
    a, b = load_checkpoint(latest_checkpoint(straight)), load_checkpoint(latest_checkpoint(resumed))
    assert a["step"] == b["step"] == 6
    _assert_same_state(a["modules"], b["modules"])
    _assert_same_state(a["optimizers"], b["optimizers"])
    if stage == "vae":   # the GAN term switched on at step 2: the discriminator was trained too
        assert "disc" in a["modules"] and "disc" in a["optimizers"]


def test_training_lowers_the_loss_and_exports_a_usable_model(tiny_store, tiny_config, trained_vae, tmp_path):
    metrics = json.loads((Path(trained_vae) / "metrics.json").read_text())
    assert {"rec_MAE", "CSI_M", "CSI_M_pool16"} <= set(metrics["final"])
    vae = load_vae(trained_vae)
    assert vae.cfg.latent_channels == 4
    over = [("data", tiny_store), ("init", trained_vae), ("runs_dir", str(tmp_path)), ("max_steps", 12),
            ("lr", 3e-3), ("log_every", 4), ("diffusion", {"learn_logvar": False})]
    ldm_run = run(load_config(tiny_config, "ldm", over), progress=False)
    m = json.loads((Path(ldm_run) / "metrics.json").read_text())
    first, last = m["train"][0]["loss"], m["train"][-1]["loss"]
    assert last < first
    assert {"CSI_M", "CSI_M_pool4", "CSI_M_pool16", "HSS", "CRPS"} <= set(m["final"])
    model = load_model(ldm_run)
    assert model.task == "sevirlr" and model.meta["steps"] == 12
    x = torch.rand(1, 7, 32, 32)
    out = model.ldm.forecast(x, seeds=[0, 1], steps=3)
    assert out.shape == (1, 2, 6, 32, 32)
    align_run = run(load_config(tiny_config, "align", [("data", tiny_store), ("init", ldm_run),
                                                       ("runs_dir", str(tmp_path))]), progress=False)
    aligned = load_model(align_run)
    assert aligned.align is not None and aligned.meta["steps"] == 12   # the nowcaster's provenance is kept
    assert model.meta["vae"]["steps"] == 6                              # and the VAE's
    again = run(load_config(tiny_config, "ldm", [("data", tiny_store), ("init", ldm_run), ("runs_dir", str(tmp_path)),
                                                 ("max_steps", 2)]), progress=False)
    assert load_model(again).meta["vae"]["steps"] == 6                  # a nowcaster as init: its VAE's record
    assert "align_MSE" in json.loads((Path(align_run) / "metrics.json").read_text())["final"]


def test_grad_accumulation_matches_one_big_batch(tiny_store, tiny_config, trained_vae):
    """Two micro-batches of 2 give the update of one batch of 4 made of the same samples."""
    from nowcast.training.loop import Dist, train
    from nowcast.training.stages import build_stage

    def one_step(batch, accum):
        cfg = load_config(tiny_config, "ldm", [("data", tiny_store), ("init", trained_vae), ("max_steps", 1),
                                               ("batch_size", batch), ("grad_accum", accum), ("grad_clip", 0.0),
                                               ("unet.dropout", 0.0)])
        stage = build_stage(cfg, tiny_store, torch.device("cpu"), progress=False)
        ldm = stage.modules["ldm"]
        return stage, ldm, cfg

    s4, ldm4, cfg4 = one_step(4, 1)
    full = dict(s4.sample(0, 0, 0))
    full["eps"] = torch.randn(full["mu"].shape, generator=torch.Generator().manual_seed(1))
    full["t"] = torch.tensor([10, 500, 900, 250])
    halves = [{k: v[:2] for k, v in full.items()}, {k: v[2:] for k, v in full.items()}]

    def compute_for(ldm):
        def compute(b, step, generator):
            ac = ldm.alphas_cumprod[b["t"]].view(-1, 1, 1, 1, 1).float()
            z_t = ac.sqrt() * b["mu"] + (1 - ac).sqrt() * b["eps"]
            loss = (ldm.unet(z_t, b["t"].float(), b["z_c"]) - b["eps"]).pow(2).mean()
            return {"ldm": loss}, {"loss": loss.detach()}
        return compute

    s4.sample, s4.compute = (lambda s, k, r: full), compute_for(ldm4)
    s2, ldm2, cfg2 = one_step(2, 2)
    s2.sample, s2.compute = (lambda s, k, r: halves[k]), compute_for(ldm2)
    for stage, cfg in ((s4, cfg4), (s2, cfg2)):
        stage.optimizer = lambda params: torch.optim.SGD(params, lr=1.0)   # the update is the gradient
        train(cfg.loop_settings(), stage, None, Dist(), torch.device("cpu"), progress=False)
    before = build_stage(cfg4, tiny_store, torch.device("cpu"), progress=False).params["ldm"]
    moved = 0
    for a, b, p0 in zip(s4.params["ldm"], s2.params["ldm"], before):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(a, p0))
    assert moved > 0


def test_bf16_autocast_runs(tiny_store, tiny_config, tmp_path):
    """The GPU's bf16 autocast path, exercised on the CPU (torch.autocast supports bf16 there)."""
    cfg = load_config(tiny_config, "vae", [("data", tiny_store), ("runs_dir", str(tmp_path)), ("max_steps", 2),
                                           ("precision", "bf16")])
    m = json.loads((Path(run(cfg, progress=False)) / "metrics.json").read_text())
    assert all(np.isfinite(e["loss"]) for e in m["train"])


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tiny_store, tiny_config, trained_vae, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun not found next to the interpreter"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "nowcast.train", "--stage", "ldm",
           "--config", tiny_config, "--data", tiny_store, "--init", trained_vae, "--runs-dir", str(tmp_path),
           "--steps", "3", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    log = (run_dir / "log.txt").read_text()
    assert "(2 process(es)" in log and "done: 3 steps" in log
    assert load_checkpoint(latest_checkpoint(run_dir))["world_size"] == 2
    assert load_model(run_dir).meta["world_size"] == 2


def test_run_records_the_resolved_models_and_resumes_by_them(tiny_store, tiny_config, trained_vae):
    """config.json holds every model field (not only the YAML's overrides): spelling out a default
    is the same model and resumes the run, a changed field the YAML never set is another model."""
    from dataclasses import fields

    from nowcast.models.unet import UNetConfig
    from nowcast.models.vae import VAEConfig
    from nowcast.training.runs import find_resumable
    from nowcast.training.stages import frame_size, resolved_config

    run_dir = Path(trained_vae)
    saved = json.loads((run_dir / "config.json").read_text())
    assert set(saved["vae"]) == {f.name for f in fields(VAEConfig)}
    assert set(saved["unet"]) == {f.name for f in fields(UNetConfig)}
    assert saved["vae"]["kl_weight"] == 1e-6 and saved["vae"]["latent_channels"] == 4
    h, w = frame_size(tiny_store)
    assert (saved["unet"]["height"], saved["unet"]["width"]) == (h // 8, w // 8)

    def resumable(*overrides):
        cfg = load_config(tiny_config, "vae", [("data", tiny_store), ("runs_dir", str(run_dir.parent)), *overrides])
        return find_resumable(run_dir.parent, cfg.name, resolved_config(cfg, (h, w)))

    assert resumable() == run_dir
    assert resumable(("vae.kl_weight", 1e-6), ("max_steps", 50)) == run_dir
    assert resumable(("vae.kl_weight", 1e-5)) is None


@pytest.mark.parametrize("residual, history", [(False, 1), (True, 2)])
def test_a_guided_run_trains_on_the_first_guess_the_forecast_computes(tiny_store, tiny_config, trained_vae, tmp_path,
                                                                      residual, history, monkeypatch):
    """With a first guess, the cached condition of a training window is what inference computes; the
    first guesses are kept on disk, so a resumed run reads them instead of computing them again."""
    import zarr

    import nowcast.training.stages as stages

    from nowcast.data.codec import MISSING
    from nowcast.data.windows import WindowDataset
    from nowcast.training.stages import build_stage

    over = [("data", tiny_store), ("init", trained_vae), ("runs_dir", str(tmp_path)), ("max_steps", 3),
            ("unet.guide", True), ("diffusion.first_guess", "pysteps"), ("diffusion.residual", residual),
            ("unet.guide_stacks", history), ("diffusion.first_guess_history", history)]
    cfg = load_config(tiny_config, "ldm", over)
    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache"))
    stage = build_stage(cfg, tiny_store, torch.device("cpu"), progress=False)
    ldm = stage.modules["ldm"].eval()
    batch = stage.sample(0, 0, 0)
    assert batch["z_c"].shape[1] == 7 + 6 * history
    assert len(list((tmp_path / "cache" / "first-guess").glob("*.pt"))) == 1
    with monkeypatch.context() as m:
        m.setattr(stages, "_first_guess_cache", lambda *a, **k: pytest.fail("first guesses computed again"))
        again = build_stage(cfg, tiny_store, torch.device("cpu"), progress=False)
        torch.testing.assert_close(again.sample(0, 0, 0)["z_c"], batch["z_c"], rtol=0, atol=0)
    vil = zarr.open_group(tiny_store, mode="r")["vil"]
    found = 0
    for e in WindowDataset(tiny_store, "sevirlr", "train").events:
        raw = np.asarray(vil[int(e)])
        frames = torch.from_numpy(np.where(raw == MISSING, 0, raw).astype(np.float32) / 255.0)
        for s in range(frames.shape[0] - 13 + 1):
            cond = ldm.encode_context(frames[None, s:s + 7])
            for row in batch["z_c"]:
                if torch.allclose(row[:7], cond[0, :7], atol=1e-5):
                    torch.testing.assert_close(row[7:], cond[0, 7:], rtol=1e-4, atol=1e-5)
                    found += 1
    assert found >= len(batch["z_c"])
    model = load_model(run(cfg, progress=False))
    assert model.ldm.cfg.first_guess == "pysteps" and model.ldm.unet.cfg.guide and model.ldm.cfg.residual == residual
    assert model.ldm.cfg.first_guess_history == model.ldm.unet.cfg.guide_stacks == history
    assert model.ldm.forecast(torch.rand(1, 7, 32, 32), seeds=[0], steps=2).shape == (1, 1, 6, 32, 32)


def test_warm_start_continues_from_the_trained_denoiser_and_refuses_another(tiny_store, tiny_config, trained_vae,
                                                                             tmp_path):
    """A warm-started ldm run begins with the source nowcaster's denoiser, not a fresh one."""
    from nowcast.training.stages import build_stage

    base = [("data", tiny_store), ("init", trained_vae), ("runs_dir", str(tmp_path)), ("max_steps", 3)]
    src_run = run(load_config(tiny_config, "ldm", base), progress=False)
    src = load_model(src_run)
    cfg = load_config(tiny_config, "ldm", base + [("warm_start", src_run), ("seed", 11)])
    stage = build_stage(cfg, tiny_store, torch.device("cpu"), progress=False)
    ldm = stage.modules["ldm"]
    for k, v in src.ldm.unet.state_dict().items():
        torch.testing.assert_close(ldm.unet.state_dict()[k], v, rtol=0, atol=0)
    torch.testing.assert_close(ldm.logvar.detach(), src.ldm.logvar.detach(), rtol=0, atol=0)
    assert ldm.cfg.scale_factor == src.ldm.cfg.scale_factor
    ema = stage.modules["ema"]                                # the EMA starts from the same weights
    trained = dict(ldm.named_parameters())
    for name, shadow in zip(ema.names, ema.shadow):
        torch.testing.assert_close(shadow, trained[name].detach(), rtol=0, atol=0)
    fresh = build_stage(load_config(tiny_config, "ldm", base + [("seed", 11)]), tiny_store, torch.device("cpu"),
                        progress=False)
    assert not torch.equal(fresh.modules["ldm"].unet.state_dict()[k], v)   # without it: a new initialisation
    again = load_model(run(cfg, progress=False))
    assert again.meta["warm_start"]["steps"] == 3 and again.meta["steps"] == 3
    with pytest.raises(ValueError, match="UNet"):
        build_stage(load_config(tiny_config, "ldm", base + [("warm_start", src_run), ("unet.base_units", 8)]),
                    tiny_store, torch.device("cpu"), progress=False)
    with pytest.raises(ValueError, match="diffusion settings"):
        build_stage(load_config(tiny_config, "ldm", base + [("warm_start", src_run),
                                                            ("diffusion.beta_end", 0.03)]),
                    tiny_store, torch.device("cpu"), progress=False)
    other_vae = run(load_config(tiny_config, "vae", [("data", tiny_store), ("runs_dir", str(tmp_path)),
                                                     ("seed", 5), ("max_steps", 1)]), progress=False)
    with pytest.raises(ValueError, match="another VAE"):
        build_stage(load_config(tiny_config, "ldm", [("data", tiny_store), ("init", other_vae),
                                                     ("runs_dir", str(tmp_path)), ("warm_start", src_run)]),
                    tiny_store, torch.device("cpu"), progress=False)
    with pytest.raises(ValueError, match="warm_start"):
        load_config(tiny_config, "vae", [("warm_start", src_run)])
