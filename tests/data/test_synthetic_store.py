"""The cached synthetic store: built once with a message, then reused."""

from pathlib import Path

from nowcast.data.synthetic_store import synthetic_store
from nowcast.data.store import open_store


def test_built_once_with_a_message_then_reused(tmp_path):
    said = []
    path = synthetic_store(n_events=4, seed=1, root=tmp_path, progress=False, workers=1, log=said.append)
    assert len(said) == 1 and "once" in said[0] and path in said[0]
    ds = open_store(path)
    assert ds.sizes["y"] == ds.sizes["x"] == 128 and ds.sizes["time"] == 25
    assert not any(p.name.endswith(".raw") for p in Path(path).parent.iterdir())   # sources removed
    again = synthetic_store(n_events=4, seed=1, root=tmp_path, progress=False, workers=1, log=said.append)
    assert again == path and len(said) == 1
