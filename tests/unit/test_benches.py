"""Benches that cannot rot: every bench/*.py runs at a tiny size in the suite (tests/benches.py), so a change that
breaks one fails here. The benches that generate with a real model run in tests/integration/test_benches_real.py,
the browser one in tests/ui/test_bench_ui.py."""

from __future__ import annotations

import pytest

from tests.benches import ROOT, SMOKE, TIERS, bench_names, of_tier, run


def test_every_bench_has_a_smoke_run():
    missing = sorted(set(bench_names()) - set(SMOKE))
    assert not missing, f"bench(es) with no smoke run: {missing}; add each to SMOKE in tests/benches.py"
    assert sorted(SMOKE) == bench_names(), "SMOKE names a bench that no longer exists"
    assert {s.tier for s in SMOKE.values()} <= set(TIERS)


def test_a_result_pattern_rejects_a_line_that_does_not_parse():
    (pattern,) = SMOKE["throughput"].patterns()
    assert pattern.fullmatch("RESULT worker_over_raw=0.973")
    assert pattern.fullmatch("RESULT worker_over_raw=nan")
    assert not pattern.fullmatch("RESULT worker_over_raw=")
    assert not pattern.fullmatch("RESULT worker_over_raw=0.97 extra=1")


@pytest.mark.parametrize("name", [n for n in of_tier("unit") if n not in ("capacity", "synthetic_store", "rerun")])
def test_bench_runs_at_smoke_size(name, tmp_path):
    (numbers, *_) = run(name, tmp_path)
    assert all(x == x for x in numbers), f"bench/{name}.py printed NaN: {numbers}"


def test_synthetic_store_writes_what_it_was_asked(tmp_path):
    ((samples, _),) = run("synthetic_store", tmp_path)
    assert samples == 2 * 4 * 4  # two models x 4 questions x 4 samples


def test_capacity_bench_on_both_catalogs(tmp_path, postgres_server, monkeypatch):
    """The claims half needs two empty PostgreSQL databases: those of the session's throwaway server."""
    first, second = (postgres_server.url(postgres_server.create_database()) for _ in range(2))
    writes, sqlite, postgres = run(
        "capacity", tmp_path, "--catalog", f"{first},{second}", env={"PGPASSWORD": postgres_server.password}
    )
    assert writes[0] == sqlite[0] == postgres[0] == 2  # workers
    assert all(x > 0 for x in writes + sqlite + postgres)


def test_import_bench_imports_every_sample_it_wrote(tmp_path):
    reference, full, _scaling, last = run("import", tmp_path)
    assert reference[:2] == [2, 2 * 50] and full[:2] == [4, 4 * 50]  # questions, samples
    assert last == [full[4], full[5]]  # the last line is the full import's throughput and peak RSS


def test_rerun_bench_reads_a_study_against_itself_as_unmoved_and_against_another_as_moved(tmp_path):
    """The committed study against itself moves no figure; against the oracle study (same questions, another
    verifier, a quarter of the max_tokens) the shared pool rules' cells move and only they are compared."""
    from bench.rerun import compare, reading

    study = reading(ROOT / "examples/studies/compute-optimal", n_bins=4)
    same = compare(study, study)
    assert same["cells"] == 36 and same["max_abs_diff"] == 0 and same["policy_max_abs_diff"] == 0
    assert same["choices_same"] == same["choices"] and same["same_sign"] == same["same_verdict"] == 1
    ((cells, max_diff, *_),) = run("rerun", tmp_path)
    assert cells == 12  # majority, the two DeepConf rules and perplexity_consistency at three budgets
    assert max_diff > 0.1
