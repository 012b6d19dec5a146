"""Radar unit conversions against the published tables (Marshall–Palmer, the VIL proxy of a 4.5 km
column and the VIP levels) and both ways round."""

import numpy as np
import pytest

from nowcast.data.codec import (SEVIR_THRESHOLDS, dbz_to_rain, dbz_to_vil, decode_vil, encode_vil, rain_to_dbz,
                                vil_to_dbz)


def test_marshall_palmer_textbook_values():
    # Z = 200 R^1.6: 1 mm/h is 23.0 dBZ, 10 mm/h 39.0 dBZ, 100 mm/h 55.0 dBZ
    np.testing.assert_allclose(rain_to_dbz([1.0, 10.0, 100.0]), [23.01, 39.01, 55.01], atol=0.01)
    # another Z-R law (MeteoSwiss 316 R^1.5): 10 mm/h is 10·log10(316) + 15 = 40.0 dBZ
    assert float(rain_to_dbz(10.0, zr=(316.0, 1.5))) == pytest.approx(39.997, abs=0.01)
    assert np.isneginf(rain_to_dbz(0.0)) and np.isnan(rain_to_dbz(np.nan))
    with pytest.raises(ValueError, match="non-negative"):
        rain_to_dbz(-1.0)


def test_the_vil_proxy_puts_the_sevir_thresholds_on_the_vip_levels():
    """The reference table: at the VIP boundaries 18/30/41/46/50/57 dBZ the 4.5 km column gives bytes
    17/75/132/157/178/214, each within 1.5 dBZ of the SEVIR thresholds."""
    got = encode_vil(dbz_to_vil([18.0, 30.0, 41.0, 46.0, 50.0, 57.0]))
    assert got.tolist() == [17, 75, 132, 157, 178, 214]
    at_thresholds = vil_to_dbz(decode_vil(np.array(SEVIR_THRESHOLDS, dtype=np.uint8)))
    np.testing.assert_allclose(at_thresholds, [18, 30, 41, 46, 50, 57], atol=1.5)


def test_rain_rate_table_of_the_proxy():
    rates = [0.5, 1, 2, 5, 10, 20, 50, 100]
    assert encode_vil(dbz_to_vil(rain_to_dbz(rates))).tolist() == [17, 40, 64, 97, 121, 146, 179, 203]


def test_round_trips():
    rng = np.random.default_rng(0)
    rate = np.concatenate([[0.0, np.nan], rng.gamma(0.8, 4.0, size=200)])
    np.testing.assert_allclose(dbz_to_rain(rain_to_dbz(rate)), rate, rtol=1e-12, equal_nan=True)
    vil = np.concatenate([[0.0, np.nan], rng.gamma(0.8, 3.0, size=200)])
    np.testing.assert_allclose(dbz_to_vil(vil_to_dbz(vil)), vil, rtol=1e-12, equal_nan=True)
    dbz = rng.uniform(-10, 65, size=100)
    np.testing.assert_allclose(vil_to_dbz(dbz_to_vil(dbz, 3000.0), 3000.0), dbz, rtol=1e-12)
