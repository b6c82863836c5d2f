"""The study's inputs built from a pool the caller already loaded (the pages' cache) are the inputs built from the
store: the same table, cell for cell, and the same bins, whatever other verifiers the given pool carries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.metrics.pools import load_pool
from backend.metrics.study import study_inputs
from bench.synthetic_store import make_synthetic_store


def test_a_given_pool_gives_the_inputs_the_store_gives(tmp_path):
    store = make_synthetic_store(tmp_path / "s", n_questions=12, n_samples=8, models=("gemma-3-270m",), n_trees=2)
    (run_id,) = store.query("SELECT DISTINCT run_id FROM samples WHERE strategy = 'sample'")["run_id"]
    with store.connect() as con:
        pool = load_pool(con, [run_id], "gemma-3-270m", strategy="sample")  # both verifiers, as the pages load it
        assert sorted(pool.scores) == ["prm-synthetic", "self-verify"]
        read = study_inputs(con, [run_id], "gemma-3-270m", verifier="self-verify", n_bins=3, draws=4)
        given = study_inputs(con, [run_id], "gemma-3-270m", verifier="self-verify", n_bins=3, draws=4, pool=pool)
    pd.testing.assert_frame_equal(given.table.cells(), read.table.cells())
    assert list(given.table.configurations) == list(read.table.configurations)
    assert not any("prm-synthetic" in name for name in given.table.configurations)
    assert given.bins.keys() == read.bins.keys()
    for kind, bins in read.bins.items():
        np.testing.assert_array_equal(given.bins[kind].level, bins.level, err_msg=kind)
        np.testing.assert_array_equal(given.bins[kind].value, bins.value, err_msg=kind)
    assert given.notes == read.notes
