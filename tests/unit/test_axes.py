"""backend/metrics/axes.py: which compute axes a selection of runs can be drawn on, and the one line saying why
not; and the compute-optimal study of a run without FLOPs, on budgets in samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from backend.importers.ingest import import_files, load_arch
from backend.metrics.axes import COST, axes_of, run_axes
from backend.metrics.strategy_table import UNAFFORDABLE
from backend.metrics.study import compute_optimal_study
from backend.report import budget_labels
from store import Store

LONG = [
    {"question_id": f"q{q}", "question": f"{q}+{q}", "reference": str(2 * q), "completion": str(2 * q + i % 2),
     "answer": str(2 * q + i % 2), "correct": i % 2 == 0, "prompt_tokens": 10 + q, "completion_tokens": 3 + i}
    for q in range(4) for i in range(4)
]  # fmt: skip


def _jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in LONG))
    return path


def _monkeys(folder: Path, n_questions: int = 6, n_samples: int = 8) -> list[Path]:
    folder.mkdir()
    paths = []
    for q in range(n_questions):
        doc = {
            "question": f"{q}?",
            "samples": [f"s{i}" for i in range(n_samples)],
            "gt_answer": str(q),
            "is_corrects": [(i + q) % 3 == 0 for i in range(n_samples)],
        }
        paths.append(folder / f"{q}.yaml")
        paths[-1].write_text(yaml.dump(doc))
    return paths


def _axes(store: Store, run_id: str):
    con = store.connect()
    try:
        return run_axes(con, [run_id])
    finally:
        con.close()


def test_an_import_with_tokens_but_no_parameter_count_draws_tokens_and_cost_not_flops(tmp_path):
    store = Store.open(tmp_path / "store")
    run = import_files(store, "generic", [_jsonl(tmp_path / "p.jsonl")]).run_id
    axes = _axes(store, run)
    assert axes.can("samples") and axes.can("tokens") and axes.can(COST)
    assert not axes.can("flops") and axes.usable("flops") == "samples"
    assert axes.why("flops") == (
        f"x in FLOPs: run {run} was imported without a parameter count (ttc import --params N or --arch FILE)"
    )


def test_an_import_with_a_parameter_count_draws_every_axis(tmp_path):
    store = Store.open(tmp_path / "store")
    run = import_files(store, "generic", [_jsonl(tmp_path / "p.jsonl")], arch=load_arch(10**9, None)).run_id
    axes = _axes(store, run)
    assert axes.missing == {}
    assert axes.usable("flops") == "flops"


def test_a_format_without_token_counts_draws_samples_only_and_says_why(tmp_path):
    store = Store.open(tmp_path / "store")
    run = import_files(store, "monkeys", _monkeys(tmp_path / "llmonk"), arch=load_arch(10**9, None)).run_id
    axes = _axes(store, run)
    why = f"run {run} was imported from monkeys files without token counts (ttc import --tokenizer NAME recounts them)"
    assert axes.why("tokens") == f"x in tokens: {why}"
    assert axes.why(COST) == f"cost of pass: {why} (its prices are per token)"
    assert axes.why("flops") == f"x in FLOPs: {why}, and FLOPs are priced from them"  # --params does not help


def test_an_import_whose_errored_record_holds_no_usage_says_how_many_samples_lack_counts(tmp_path):
    """The inspect fixture's errored sample carries no usage; its 11 other samples do: the line counts them rather
    than calling the whole import tokenless."""
    store = Store.open(tmp_path / "store")
    paths = [Path(__file__).resolve().parents[1] / "fixtures" / "import" / "inspect.json"]
    run = import_files(store, "inspect", paths, model="m", arch=load_arch(10**9, None)).run_id
    n, lacking = store.query(
        "SELECT count(*) n, count(*) FILTER (WHERE completion_tokens IS NULL) k FROM samples"
    ).iloc[0]
    assert 0 < lacking < n
    why = (
        f"run {run}: {lacking} of {n} samples imported from inspect files hold no token counts (their records carry "
        "no usage; ttc import --tokenizer NAME recounts them)"
    )
    assert _axes(store, run).why(COST) == f"cost of pass: {why} (its prices are per token)"


def test_runs_generated_here_without_flops_and_many_runs_are_named_in_one_line():
    counts = pd.DataFrame({"run_id": list("abcde"), "n": [4] * 5, "no_tokens": [0] * 5, "no_flops": [0, 1, 1, 1, 1]})
    axes = axes_of(counts, {})
    assert axes.why("flops") == "x in FLOPs: runs b, c, d and 1 more have samples without stored FLOPs"
    assert "\n" not in axes.why("flops") and axes.can("tokens")


def test_the_study_of_a_run_without_flops_has_budgets_in_samples(tmp_path):
    """Every sample costs one and the prompt nothing, so a budget of b samples buys a pool rule min(⌊b⌋, n)
    samples of each question."""
    store = Store.open(tmp_path / "store")
    run = import_files(store, "monkeys", _monkeys(tmp_path / "llmonk")).run_id
    con = store.connect()
    try:
        study = compute_optimal_study(con, [run], "imported", n_bins=2, draws=4)
    finally:
        con.close()
    t = study.table
    assert t.budget_unit == "samples" and t.one_sample_flops == 1.0 and t.configurations
    np.testing.assert_array_equal(t.budget_samples, t.budgets)
    assert any(n.startswith(f"x in FLOPs: run {run} was imported from monkeys") for n in study.notes), study.notes
    for c in range(len(t.configurations)):
        for b, budget in enumerate(t.budgets):
            ok = t.status[c, b] != UNAFFORDABLE
            np.testing.assert_array_equal(t.samples[c, b][ok], np.minimum(np.floor(budget), 8))
    assert all(" samples (" in label for label in budget_labels(t, study.result.baseline))
