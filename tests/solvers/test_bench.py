"""The benchmark runs end to end on tiny settings and writes its report."""


import pytest

from nowcast.solvers import bench
from nowcast.training.matching import MatchingConfig

TINY = bench.BenchSettings(
    size=8, nfes=(3,), train_pool=32, val_size=16, test_size=16, teacher_steps=32,
    pool_teacher_steps=16, span_samples=4,
    dyweight=MatchingConfig(iterations=4, batch_size=8, lr=1e-2, afs=True, val_every=2),
    spanlift=MatchingConfig(iterations=2, batch_size=8, lr=1e-3, afs=True, val_every=1),
    transfer=MatchingConfig(iterations=2, batch_size=8, lr=3e-3, afs=True, val_every=1))


def test_benchmark_records_and_report(tmp_path):
    result = bench.run_benchmark(TINY, log=lambda m: None)
    recs = result["records"]
    fields = {"testbed", "solver", "base", "nfe", "rmse", "train_seconds", "out_of_span"}
    assert all(fields <= set(r) for r in recs)
    names = {(r["solver"], r["base"]) for r in recs}
    for name in bench.HANDCRAFTED:
        assert (name, None) in names
    assert {("dyweight", "ipndm-init"), ("spanlift", "dyweight"), ("spanlift", "ipndm"),
            ("spanlift", "euler")} <= names
    learned = [r for r in recs if r["solver"] in ("dyweight", "spanlift")]
    assert all(r["nfe"] == 3 and r["train_seconds"] > 0 for r in learned)
    for r in recs:
        if r["solver"] == "spanlift":
            assert len(r["out_of_span"]) == 4
    # keep-best: a learned solver never ends worse than its initialisation on validation
    assert all(r["best_val_rmse"] <= r["init_val_rmse"] for r in learned)
    md = bench.render_markdown(result, {"command": "c", "commit": "x", "machine": "m", "date": "d"})
    assert "| hand-crafted | ipndm |" in md and "NFE 3" in md and "Out-of-span" in md


def test_cli_rejects_bad_nfe(capsys):
    with pytest.raises(SystemExit) as e:                 # refused by the parser, before any work
        bench.main(["--nfe", "1"])
    assert e.value.code == 2 and "--nfe: must be ≥ 2" in capsys.readouterr().err


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0
    assert "--quick" in capsys.readouterr().out
