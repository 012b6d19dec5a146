"""The ODE_t(ODE_l) benchmark's schedules, acceptance figures and command line."""


import pytest

from nowcast.imagegen.__main__ import main as imagegen_main
from nowcast.imagegen.odel_bench import acceptance, ramp_schedule


def test_the_ramp_runs_fewer_blocks_at_high_noise():
    assert ramp_schedule(1, (4, 8, 12)) == [4]
    assert ramp_schedule(2, (12, 4, 8)) == [4, 8]
    assert ramp_schedule(3, (4, 8, 12)) == [4, 8, 12]
    assert ramp_schedule(4, (4, 8, 12)) == [4, 4, 8, 12]
    assert ramp_schedule(8, (4, 8, 12)) == [4, 4, 4, 8, 8, 8, 12, 12]


def _rec(family, steps, schedule, fid, seconds):
    return {"family": family, "steps": steps, "schedule": schedule, "fid": fid, "seconds": seconds}


def test_acceptance_is_the_time_to_reach_the_fixed_models_best_fid():
    records = [_rec("fixed", 4, "12", 9.0, 1.0), _rec("fixed", 8, "12", 6.0, 2.0), _rec("fixed", 8, "4", 30.0, 0.7),
               _rec("odel", 8, "12", 5.5, 2.1), _rec("odel", 8, "4", 5.9, 0.9), _rec("odel", 4, "8", 6.5, 0.5),
               _rec("odel+spanlift", 8, "4", 5.0, 0.95), _rec("odel+spanlift", 4, "8", 7.0, 0.55)]
    acc = acceptance(records)
    # best fixed: FID 6.0 at 2.0 s; the fastest ODE_l record at FID ≤ 6.0 is 0.9 s → 0.45
    assert acc["time_ratio_at_fixed_best_fid"] == pytest.approx(0.45)
    assert acc["odel_reaching"]["schedule"] == "4"
    assert acc["spanlift_wins"] == [[8, "4", 5.9, 5.0]] and acc["spanlift_points"] == 2
    never = [r for r in records if not (r["family"] == "odel" and r["fid"] <= 6.0)]
    assert acceptance(never)["time_ratio_at_fixed_best_fid"] is None


@pytest.mark.parametrize("args, message", [(["--spanlift", "2:x"], "STEPS:BLOCKS"),
                                           (["--spanlift", "2:13"], "STEPS:BLOCKS"),
                                           (["--depths", "16"], "exceeds --blocks"),
                                           (["--steps", "0"], "steps")])
def test_bad_options_are_refused_before_any_work(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        imagegen_main(["bench", "--ode-l", "--work-dir", str(tmp_path / "w"), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
