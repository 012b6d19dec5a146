"""FSS against scipy's uniform filter (the neighbourhood operator pysteps' fss uses) and limits."""

import numpy as np
import pytest

from nowcast.verification.spatial import FSSAccumulator

ndimage = pytest.importorskip("scipy.ndimage")


def _fss_reference(f, o, thr, scale):
    sf = ndimage.uniform_filter((f >= thr).astype(float), size=scale, mode="constant", cval=0.0)
    so = ndimage.uniform_filter((o >= thr).astype(float), size=scale, mode="constant", cval=0.0)
    return 1 - np.sum((sf - so) ** 2) / (np.sum(sf ** 2) + np.sum(so ** 2))


@pytest.mark.parametrize("scale", [1, 3, 4, 9])
def test_fss_matches_scipy_reference(scale):
    rng = np.random.default_rng(scale)
    f = rng.integers(0, 255, size=(20, 24)).astype(float)
    o = np.clip(f + rng.normal(0, 40, size=f.shape), 0, 254)
    acc = FSSAccumulator((74, 133), (scale,)).update(f, o)
    for ti, thr in enumerate((74, 133)):
        assert acc.compute()[ti, 0] == pytest.approx(_fss_reference(f, o, thr, scale), rel=1e-10)


def test_fss_limits_and_pooling():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 255, size=(3, 16, 16)).astype(float)
    assert FSSAccumulator((74,), (5,)).update(f, f).compute()[0, 0] == pytest.approx(1.0)
    z = np.zeros((16, 16))
    assert np.isnan(FSSAccumulator((74,), (5,)).update(z, z).compute()[0, 0])
    # accumulated over calls equals one call on the stacked fields
    o = rng.integers(0, 255, size=(3, 16, 16)).astype(float)
    one = FSSAccumulator((74,), (3,)).update(f, o).compute()
    parts = FSSAccumulator((74,), (3,))
    for k in range(3):
        parts.update(f[k], o[k])
    np.testing.assert_allclose(parts.compute(), one)
    miss = o.copy()
    miss[0, :4] = 255
    ref = o.copy()
    ref[0, :4] = 0
    before = miss.copy()
    np.testing.assert_allclose(FSSAccumulator((74,), (3,)).update(f, miss).compute(),
                               FSSAccumulator((74,), (3,)).update(f, ref).compute())
    np.testing.assert_array_equal(miss, before)   # inputs are not modified
