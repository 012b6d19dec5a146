"""Synthetic SEVIR roots shared by the data tests."""

import pytest

from nowcast.data.synthetic import SyntheticConfig, write_synthetic_sevir


@pytest.fixture(scope="module")
def make_sevir(tmp_path_factory):
    """Factory: ``make_sevir(**SyntheticConfig fields)`` writes a synthetic SEVIR root and returns it."""

    def make(**kwargs):
        root = tmp_path_factory.mktemp("sevir")
        write_synthetic_sevir(root, SyntheticConfig(**kwargs))
        return root

    return make
