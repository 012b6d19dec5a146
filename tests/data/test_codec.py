"""VIL codec against the published SEVIR decoding and thresholds."""

import numpy as np
import pytest

from nowcast.data.codec import MISSING, SEVIR_THRESHOLDS, decode_vil, encode_vil, from_unit, to_unit


def test_published_thresholds_in_kg_m2():
    # SEVIR tutorial decoding of the CSI thresholds (16, 74, 133, 160, 181, 219) and of 254
    expected = [0.154, 0.775, 3.533, 7.073, 12.136, 32.234]
    np.testing.assert_allclose(decode_vil(np.array(SEVIR_THRESHOLDS, dtype=np.uint8)), expected, atol=6e-4)
    assert decode_vil(np.uint8(254)) == pytest.approx(79.26, abs=0.01)


def test_decoding_branches_by_hand():
    x = np.array([0, 5, 6, 18, 19, 100], dtype=np.uint8)
    expect = [0, 0, 4 / 90.66, 16 / 90.66, np.exp((19 - 83.9) / 38.9), np.exp((100 - 83.9) / 38.9)]
    np.testing.assert_allclose(decode_vil(x), expect, rtol=1e-6)


def test_round_trip_of_every_representable_byte():
    x = np.array([0] + list(range(6, 255)), dtype=np.uint8)
    np.testing.assert_array_equal(encode_vil(decode_vil(x)), x)


def test_missing_is_nan_and_back():
    x = np.array([[3, 255], [200, 255]], dtype=np.uint8)
    v = decode_vil(x)
    assert np.isnan(v[0, 1]) and np.isnan(v[1, 1]) and not np.isnan(v[1, 0])
    assert encode_vil(v)[0, 1] == MISSING


def test_unit_scale():
    x = np.array([0, 16, 254], dtype=np.uint8)
    np.testing.assert_allclose(to_unit(x), x / 255.0)
    # missing becomes 0 (no data is given to the models as no echo) unless kept for a separate mask
    y = np.array([MISSING, 16], dtype=np.uint8)
    np.testing.assert_array_equal(to_unit(y), np.array([0, 16], np.float32) / 255)
    np.testing.assert_array_equal(to_unit(y, keep_missing=True), np.array([1, 16 / 255], np.float32))
    np.testing.assert_array_equal(from_unit(to_unit(x)), x)
    assert from_unit(np.array([1.5]))[0] == 254


def test_codec_rejects_bad_input():
    with pytest.raises(ValueError):
        decode_vil(np.array([0.5]))
    with pytest.raises(ValueError):
        encode_vil(np.array([-1.0]))
