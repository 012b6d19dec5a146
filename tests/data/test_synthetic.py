"""The synthetic generator: determinism, SEVIR-like statistics, advection."""

import numpy as np
import pytest

from nowcast.data.sevir import SevirReader
from nowcast.data.synthetic import SyntheticConfig, generate_event, write_synthetic_sevir


def test_same_seed_same_files(tmp_path):
    cfg = SyntheticConfig(n_events=3, size=24, frames=13, seed=11)
    a = write_synthetic_sevir(tmp_path / "a", cfg)
    b = write_synthetic_sevir(tmp_path / "b", cfg)
    assert a.equals(b)
    ra, rb = SevirReader(tmp_path / "a"), SevirReader(tmp_path / "b")
    for _, row in a.iterrows():
        np.testing.assert_array_equal(ra.read_event(row.file_name, int(row.file_index)),
                                      rb.read_event(row.file_name, int(row.file_index)))
    # parallel generation writes the same files
    p = write_synthetic_sevir(tmp_path / "p", cfg, workers=2)
    assert p.equals(a)
    rp = SevirReader(tmp_path / "p")
    for _, row in a.iterrows():
        np.testing.assert_array_equal(ra.read_event(row.file_name, int(row.file_index)),
                                      rp.read_event(row.file_name, int(row.file_index)))
    c = write_synthetic_sevir(tmp_path / "c", SyntheticConfig(n_events=3, size=24, frames=13, seed=12))
    assert not a["id"].equals(c["id"]) or not a["time_utc"].equals(c["time_utc"])


def test_byte_histogram_resembles_sevir(tmp_path):
    cat = write_synthetic_sevir(tmp_path, SyntheticConfig(n_events=16, size=96, seed=0))
    reader = SevirReader(tmp_path)
    vals = np.concatenate([reader.read_event(r.file_name, int(r.file_index)).ravel()
                           for _, r in cat.drop_duplicates("id").iterrows()])
    vals = vals[vals != 255]
    assert (vals < 16).mean() > 0.6            # mostly (near) clear air
    assert (vals >= 74).mean() > 0.005         # moderate precipitation exists
    assert (vals >= 181).any()                 # and intense cores in some events
    peaks = cat.drop_duplicates("id")["data_max"]
    assert (peaks >= 181).sum() >= 2 and (peaks < 181).sum() >= 2   # not every event is intense


def test_fields_move_with_a_wind_of_10_to_30_m_per_s():
    rng = np.random.default_rng(5)
    for _ in range(3):
        vil, _ = generate_event(rng, size=96, frames=13, regime="stratiform")
        a, b = vil[4], vil[5]
        # displacement by cross-correlation (periodic fields) between consecutive frames
        xc = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
        dy, dx = np.unravel_index(np.argmax(xc), xc.shape)
        dy, dx = (dy + 48) % 96 - 48, (dx + 48) % 96 - 48
        speed = np.hypot(dy, dx) * 4000 / 300       # 4 km pixels, 5 min
        assert 5 <= speed <= 40


def test_size_must_allow_sevir_lr(tmp_path):
    with pytest.raises(ValueError, match="divisible by 3"):
        write_synthetic_sevir(tmp_path, SyntheticConfig(n_events=1, size=50))
