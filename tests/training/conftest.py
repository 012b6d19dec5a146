"""A trained tiny VAE for the training tests (the store and the tiny config: tests/conftest.py)."""

import pytest


@pytest.fixture(scope="session")
def trained_vae(tiny_store, tiny_config, tmp_path_factory):
    """Run directory of a finished tiny ``vae`` run."""
    from nowcast.train import run
    from nowcast.training.config import load_config

    runs = tmp_path_factory.mktemp("runs")
    cfg = load_config(tiny_config, "vae", [("data", tiny_store), ("runs_dir", str(runs))])
    return run(cfg, progress=False)
