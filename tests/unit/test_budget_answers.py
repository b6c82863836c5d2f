"""The Compute-optimal page's answer per budget (backend.report.budget_answers): every figure is the study report's
own number over all questions, the winner is the configuration picked most often over bins and folds, and a
budget's label says the samples the baseline draws there, or that the pool ran out."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from backend.metrics.strategy_table import UNAFFORDABLE
from backend.metrics.study import compute_optimal_study
from backend.report import budget_answers, budget_labels, efficiency_reading, policy_choices
from bench.synthetic_store import make_synthetic_store
from store import Store

MODEL = "qwen2.5-coder-0.5b-instruct"
N_SAMPLES = 8


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("answers") / "store"
    make_synthetic_store(root, n_questions=24, n_samples=N_SAMPLES, seed=3)
    return root


def _study(root: Path, **kw):
    s = Store.open(root, create=False)
    runs = s.query("SELECT DISTINCT run_id FROM samples WHERE model = ?", [MODEL])["run_id"].tolist()
    con = s.connect()
    try:
        return compute_optimal_study(con, runs, MODEL, n_bins=3, band_boot=40, **kw)
    finally:
        con.close()


@pytest.fixture(scope="module")
def study(store):
    return _study(store)


def test_each_budget_states_the_reports_figures(study):
    report = study.report()
    answers = budget_answers(study, report)
    whole = report[report["bin"] == "all"].sort_values("budget_flops").reset_index(drop=True)
    assert len(answers) == len(whole) == len(study.table.budgets)
    stated = 0
    for a, (_, row) in zip(answers, whole.iterrows()):
        assert a.budget_flops == row["budget_flops"]
        assert a.sentence.startswith(f"**At {row['budget_flops']:.3g} FLOPs (")
        if a.winner is None:
            continue
        stated += 1
        assert f"held-out accuracy {row['held_out_accuracy']:.2f}" in a.sentence
        assert f"{row['vs_baseline_difference']:+.2f} against `{study.result.baseline}`" in a.sentence
        assert f"{row['vs_baseline_ci_low']:+.2f} to {row['vs_baseline_ci_high']:+.2f}" in a.sentence
        assert f"p = {row['vs_baseline_p_value']:.2g}" in a.sentence
        if f"{row['cv_lo']:.2f}" == f"{row['cv_hi']:.2f}":  # a band that prints as one number says why instead
            assert "no 95% band: resampling the questions" in a.sentence
        else:
            assert f"95% band {row['cv_lo']:.2f} to {row['cv_hi']:.2f}" in a.sentence
        if np.isfinite(row["gap_lo"]) and f"{row['gap_lo']:+.2f}" != f"{row['gap_hi']:+.2f}":
            assert f"{row['gap_lo']:+.2f} to {row['gap_hi']:+.2f}" in a.sentence
        assert a.significant == bool(row["vs_baseline_significant"])
        verdict = "**significant**" if a.significant else "**not significant**"
        assert a.sentence.endswith(f"{verdict} at α = 0.05.")
    assert stated > 0
    assert {a.significant for a in answers} == {True, False}  # this store has both: the test can tell them apart


def test_the_winner_is_the_most_picked_configuration_over_bins_and_folds(study):
    r = study.result
    for b, a in enumerate(budget_answers(study)):
        picks = [n for f in (0, 1) for n in r.chosen_names(f)[:, b] if n]
        counts = Counter(picks)
        top = sorted(counts.values(), reverse=True)
        if len(top) > 1 and top[0] == top[1]:  # no most-picked configuration: each bin's pick is said
            assert a.winner is None and "no single configuration; per difficulty bin" in a.sentence
            for lv, f0, f1 in zip(r.levels, r.chosen_names(0)[:, b], r.chosen_names(1)[:, b]):
                assert (f"bin {int(lv)} `{f0}`" if f0 == f1 else f"bin {int(lv)} `{f0}` / `{f1}`") in a.sentence
            continue
        if a.winner is None:
            continue
        assert counts[a.winner] == max(counts.values())
        assert policy_choices(r, b)[0] == (a.winner, counts[a.winner])
        assert sum(k for _, k in policy_choices(r, b)) == len(picks)
        if len(counts) == 1 and len(picks) == 2 * len(r.levels):
            assert "in every bin and fold" in a.sentence
        else:
            assert f"in {counts[a.winner]} of {2 * len(r.levels)} bin-and-fold picks" in a.sentence
            for other, k in counts.items():
                if other != a.winner:
                    assert f"`{other}` {k}" in a.sentence


def test_a_budget_beyond_the_pool_says_the_pool_is_exhausted(store, study):
    t = study.table
    big = _study(store, budgets=[t.budgets[-1], t.budgets[-1] * 40])
    labels = budget_labels(big.table, big.result.baseline)
    assert labels[1] == f"{big.table.budgets[1]:.3g} FLOPs (pool exhausted at {N_SAMPLES} samples)"
    assert big.table.budget_samples[1] > N_SAMPLES  # the size in samples' FLOPs would have read as more than the pool
    assert "exhausted" not in labels[0]
    i = t.index(study.result.baseline)
    for label, k, status in zip(budget_labels(t, study.result.baseline), t.samples[i], t.status[i]):
        drawn = k[status != UNAFFORDABLE]
        if drawn.size:
            mean = float(np.mean(drawn))
            assert f"({mean:.3g} sample" in label


def test_efficiency_gives_its_budget_or_says_why_it_is_undefined(study):
    report = study.report()
    value, why = efficiency_reading(report, study.result.baseline)
    whole = report[report["bin"] == "all"]
    finite = whole[np.isfinite(whole["efficiency"])]
    assert len(finite)
    best = finite.loc[finite["efficiency"].idxmax()]
    assert value.endswith(f"{best['efficiency']:.2f}×") and f"{best['budget_flops']:.3g} FLOPs" in why
    below = report.assign(efficiency=np.nan)
    value, why = efficiency_reading(below, "b")
    assert value == "—" and "never reaches `b`'s accuracy" in why
    value, why = efficiency_reading(below.assign(baseline_accuracy=0.0), "b")
    assert value == "—" and "scores 0 at every budget" in why
    value, why = efficiency_reading(below.assign(baseline_accuracy=np.nan), "b")
    assert value == "—" and "does not cover every question" in why


def test_a_budget_no_configuration_affords_says_so(store, study):
    tiny = float(study.table.budgets[0]) / 1e3
    low = _study(store, budgets=[tiny, float(study.table.budgets[-1])])
    assert budget_labels(low.table, low.result.baseline)[0] == f"{tiny:.3g} FLOPs (not one sample affordable)"
    first, last = budget_answers(low)
    assert first.winner is None and not first.significant
    assert first.sentence.endswith(
        "no configuration covers every question of a bin here, so the policy has no held-out accuracy."
    )
    assert "held-out accuracy" in last.sentence


def test_a_band_without_width_says_why_instead_of_printing_one_number(tmp_path):
    """The committed example study at 5 oracle bins has 2-3 questions per bin: resampling within each bin's halves
    cannot move the held-out accuracy at the largest budget, and the answer says so rather than "0.63 to 0.63"."""
    import shutil
    from pathlib import Path

    from backend.metrics.study import compute_optimal_study
    from store import Store

    src = Path(__file__).resolve().parents[2] / "examples" / "studies" / "compute-optimal"
    shutil.copytree(src, tmp_path / "study")  # never write into the committed store
    store = Store.open(tmp_path / "study", create=False)
    con = store.connect()
    runs = [r["run_id"] for r in store.runs_arrow().to_pylist()]
    study = compute_optimal_study(con, runs, "qwen2.5-coder-0.5b-instruct", n_bins=5, band_boot=200)
    report = study.report()
    whole = report[report["bin"] == "all"].sort_values("budget_flops").reset_index(drop=True)
    flat = [f"{lo:.2f}" == f"{hi:.2f}" for lo, hi in zip(whole["cv_lo"], whole["cv_hi"])]
    assert any(flat)  # the case this test is about occurs on this study
    for a, is_flat, (_, row) in zip(budget_answers(study, report), flat, whole.iterrows()):
        if is_flat and a.winner is not None:
            assert f"95% band {row['cv_lo']:.2f} to {row['cv_hi']:.2f}" not in a.sentence
            assert "no 95% band: resampling the questions within each bin's halves moved nothing" in a.sentence
