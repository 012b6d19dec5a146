"""Fixtures shared across test directories."""

import pytest

from nowcast.data.store import BuildConfig, build_store
from nowcast.data.synthetic import SyntheticConfig, write_synthetic_sevir


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A SEVIR-LR store of 12 synthetic events on a 32² grid (96² before pooling), no missing pixels."""
    root = tmp_path_factory.mktemp("sevir")
    write_synthetic_sevir(root, SyntheticConfig(n_events=12, size=96, seed=5, missing_fraction=0.0))
    store = str(tmp_path_factory.mktemp("store") / "lr.zarr")
    build_store(str(root), store, BuildConfig(lr=True))
    return store
