"""Configuration precedence and errors of the training CLI."""

import json

import pytest

from nowcast.train import main
from nowcast.training.config import load_config, parse_override


def test_precedence_defaults_yaml_stage_flags(tiny_config):
    cfg = load_config(tiny_config, "ldm", [("lr", 0.5), ("unet.base_units", 24)])
    assert cfg.seed == 3                       # YAML top level over the default 0
    assert cfg.batch_size == 2                 # the ldm stage section over the default 8
    assert cfg.lr == 0.5                       # the override over the stage section
    assert cfg.unet["base_units"] == 24 and cfg.unet["heads"] == 2
    assert cfg.name == "tiny-ldm"
    assert load_config(tiny_config, "vae").batch_size == 4
    assert load_config(None, "ldm").lr == 1e-4           # the dataclass default
    sl = load_config(None, None, [("spanlift.loss", "inception")])
    assert sl.stage == "spanlift" and sl.lr == 1e-3 and sl.max_steps == 300      # the stage's own defaults
    assert sl.name == "spanlift-ddim5-inception-teacher"
    assert load_config(None, None, [("lr", 0.1)]).lr == 0.1


def test_parse_override_reads_yaml_values():
    assert parse_override("betas=[0.5, 0.9]") == ("betas", [0.5, 0.9])
    assert parse_override("lr=3e-4") == ("lr", 3e-4)
    assert load_config(None, "vae", [("lr", "1e-3")]).lr == 1e-3
    with pytest.raises(ValueError, match="key=value"):
        parse_override("lr")


def test_dry_run_prints_the_resolved_config(tiny_config, capsys):
    assert main(["--stage", "vae", "--config", tiny_config, "--steps", "7", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["stage"] == "vae" and cfg["max_steps"] == 7 and cfg["vae"]["latent_channels"] == 4


@pytest.mark.parametrize("argv, message", [
    (["--config", "missing.yaml"], "not found"),
    (["--set", "nonsense=1", "--dry-run"], "unknown config keys"),
    (["--set", "lr_schedule=linear", "--dry-run"], "lr_schedule"),
    (["--set", "unet=3", "--set", "what.x=1", "--dry-run"], "unknown section"),
    (["--set", "spanlift.nope=1", "--dry-run"], "unknown SolverSection keys"),
])
def test_bad_options_exit_2_with_one_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1


def test_ldm_without_a_vae_is_refused(tiny_store, tiny_config, tmp_path, capsys):
    argv = ["--stage", "ldm", "--config", tiny_config, "--data", tiny_store, "--runs-dir", str(tmp_path),
            "--no-progress"]
    assert main(argv) == 2
    assert "--init" in capsys.readouterr().err
    assert main(argv + ["--init", str(tmp_path / "nothing-here")]) == 2
    assert "no model at" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())            # nothing was written


@pytest.mark.parametrize("name", ["sevirlr_tiny", "sevirlr_prediff", "sevirlr_radar"])
def test_shipped_configs_resolve_for_every_stage(name):
    from pathlib import Path

    from nowcast.training.config import STAGES
    from nowcast.training.stages import model_configs

    path = Path(__file__).parents[2] / "configs" / f"{name}.yaml"
    for stage in STAGES:
        cfg = load_config(str(path), stage)
        assert cfg.stage == stage and cfg.name == f"{name}-{stage}"
        vae, unet, diffusion, align = model_configs(cfg, (128, 128))
        assert (unet.context_frames, unet.target_frames, unet.height, unet.width) == (7, 6, 16, 16)
        assert unet.latent_channels == vae.latent_channels == align.latent_channels
    tiny = model_configs(load_config(str(path), "ldm"), (128, 128))
    if name == "sevirlr_tiny":
        from nowcast.models.unet import SpaceTimeUNet
        from nowcast.models.vae import FrameVAE

        n_vae = sum(p.numel() for p in FrameVAE(tiny[0]).parameters())
        n_unet = sum(p.numel() for p in SpaceTimeUNet(tiny[1]).parameters())
        assert 0.6e6 < n_vae < 0.8e6 and 0.9e6 < n_unet < 1.2e6      # the sizes the model card states
        assert tiny[2].scale_factor == 0                              # automatic latent scaling
    elif name == "sevirlr_radar":                  # the residual model: guide, first guess, pixel decoding
        assert tiny[0].latent_channels == 8 and tiny[1].guide and tiny[1].guide_stacks == 3
        assert tiny[1].time_padding == "replicate"
        assert (tiny[2].first_guess, tiny[2].residual, tiny[2].first_guess_pixels) == ("pysteps", True, True)
    else:
        assert tiny[0].block_out_channels == (128, 256, 512, 512) and tiny[0].latent_channels == 64
        assert tiny[1].base_units == 256 and tiny[2].scale_factor == 1.0


def test_spanlift_section_records_its_defaults_and_guards_resume(tmp_path):
    """The resolved config holds every SpanLift field (defaults included), so a run trained under
    another operator width is not resumed by a config that only differs by a changed default."""
    from nowcast.training.runs import find_resumable
    from nowcast.training.solver_stage import SolverSection

    cfg = load_config(None, "spanlift", [("runs_dir", str(tmp_path))])
    section = cfg.to_dict()["spanlift"]
    assert section["hidden"] == SolverSection().hidden and section["base"] == "ddim:5"
    old = tmp_path / f"00000-{cfg.name}"
    old.mkdir()
    (old / "state.pt").write_bytes(b"")
    saved = cfg.to_dict()
    saved["spanlift"] = {**section, "hidden": section["hidden"] * 2}
    (old / "config.json").write_text(json.dumps(saved))
    assert find_resumable(tmp_path, cfg.name, cfg.to_dict()) is None
    (old / "config.json").write_text(json.dumps(cfg.to_dict()))
    assert find_resumable(tmp_path, cfg.name, cfg.to_dict()) == old
