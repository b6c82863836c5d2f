"""Data quality (backend/metrics/quality.py, store/views.py): the SQL against a brute-force pandas computation on
stores with planted truncation, missing answers and grading errors; the suggested max_tokens rule; the warnings;
the `data_quality` view; `ttc compute-optimal`'s quality lines."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from backend.cli import main
from backend.errors import SpecError
from backend.metrics.quality import THRESHOLD, bins_by_key, check_threshold, data_quality, quality_warnings
from store import Store
from store.readonly import read_only_query
from store.schema import SAMPLES


def _write(store: Store, run_id: str, cap: int | None, df: pd.DataFrame) -> None:
    """One run of samples: `df` holds model, dataset, question_id, sample_idx, finish_reason, answer, grade_error,
    completion_tokens; the run's spec has max_tokens = cap (None: a spec without the field)."""
    spec = {"name": run_id, "samples_per_question": 1} | ({} if cap is None else {"max_tokens": cap})
    store.upsert_run(run_id, run_id, spec, len(df), "done")
    n = len(df)
    cols = {f.name: pa.nulls(n, f.type) for f in SAMPLES}
    cols |= {
        "run_id": pa.array([run_id] * n, pa.string()),
        "strategy": pa.array(["sample"] * n, pa.string()),
        "question_key": pa.array(("k-" + df["dataset"] + "/" + df["question_id"]).tolist(), pa.string()),
    }
    for c in ("model", "dataset", "question_id", "finish_reason", "answer", "grade_error"):
        cols[c] = pa.array([None if pd.isna(v) else v for v in df[c]], pa.string())
    cols["sample_idx"] = pa.array(df["sample_idx"].to_numpy(np.int32), pa.int32())
    cols["completion_tokens"] = pa.array(df["completion_tokens"].to_numpy(np.int32), pa.int32())
    store.write_shard("samples", run_id, pa.table(cols, schema=SAMPLES))


def _planted(rng, model: str, dataset: str, n_q: int, n_s: int, cap: int, cut: float, none: float, err: float):
    """Samples of one model × dataset: a `cut` share at the cap (no answer), a `none` share finished without an
    answer (some blank, some NULL), an `err` share whose grading raised; lengths of the rest below the cap."""
    rows = n_q * n_s
    u = rng.random(rows)
    is_cut, is_none, is_err = u < cut, (u >= cut) & (u < cut + none), (u >= cut + none) & (u < cut + none + err)
    length = rng.integers(5, cap, rows)
    length[is_cut] = cap
    answer = np.where(is_cut | is_none | is_err, None, "42").astype(object)
    answer[is_none & (rng.random(rows) < 0.5)] = "  "  # blank counts as no answer
    return pd.DataFrame(
        dict(
            model=model,
            dataset=dataset,
            question_id=[f"q{i}" for i in np.repeat(np.arange(n_q), n_s)],
            sample_idx=np.tile(np.arange(n_s), n_q),
            finish_reason=np.where(is_cut, "length", "stop"),
            answer=answer,
            grade_error=np.where(is_err, "checker raised", None),
            completion_tokens=length,
        )
    )


def _suggested(cap: float, cut: int, n: int, all_p95: float) -> float:
    """The documented rule, written from its docstring: observed percentile while at most 5 % are cut; else a 1/x
    survival past the cap (N = C·c/0.05), at most 8·C, rounded up to 32, at most 32768."""
    if cut / n <= 0.05:
        return max(math.ceil(all_p95), 1)
    return min(32768, math.ceil(cap * min(8.0, 20 * cut / n) / 32) * 32)


def _brute(df: pd.DataFrame, caps: dict, keys: list[str]) -> pd.DataFrame:
    """Every figure from the definitions, with pandas and numpy, group by group."""
    out = []
    for key, g in df.groupby(keys, sort=True):
        cut = g["finish_reason"] == "length"
        blank = g["answer"].isna() | (g["answer"].fillna("").str.strip() == "")
        graded = g["grade_error"].isna()
        n = len(g)
        cap = max(caps[r] for r in g["run_id"].unique())
        fin = g.loc[~cut, "completion_tokens"].to_numpy(float)
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row |= dict(
            samples=n,
            cut=int(cut.sum()),
            no_answer=int((~cut & graded & blank).sum()),
            grade_errors=int((~graded).sum()),
            max_tokens=cap,
            finished_p95=np.quantile(fin, 0.95) if len(fin) else np.nan,
            suggested_max_tokens=_suggested(cap, int(cut.sum()), n, np.quantile(g["completion_tokens"], 0.95)),
        )
        out.append(row)
    return pd.DataFrame(out)


@pytest.fixture
def planted(tmp_path):
    """Two runs (caps 128 and 256) of two models and two datasets, with shares of cut, unanswered and ungraded
    samples from 0 % to 60 %."""
    store = Store.open(tmp_path / "store")
    rng = np.random.default_rng(7)
    caps = {"run-a": 128, "run-b": 256}
    frames = []
    for run_id, plants in {
        "run-a": [("m1", "arith", 0.57, 0.05, 0.0), ("m1", "chain", 0.05, 0.25, 0.02)],
        "run-b": [("m1", "arith", 0.20, 0.0, 0.30), ("m2", "arith", 0.0, 0.0, 0.0)],
    }.items():
        df = pd.concat([_planted(rng, *p[:2], 12, 9, caps[run_id], *p[2:]) for p in plants], ignore_index=True)
        _write(store, run_id, caps[run_id], df)
        frames.append(df.assign(run_id=run_id))
    return store, pd.concat(frames, ignore_index=True), caps


def _compare(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    got = got.sort_values(keys).reset_index(drop=True)
    want = want.sort_values(keys).reset_index(drop=True)
    assert got[keys].astype(str).equals(want[keys].astype(str))
    for c in ("samples", "cut", "no_answer", "grade_errors", "max_tokens", "suggested_max_tokens"):
        assert got[c].astype(int).tolist() == want[c].astype(int).tolist(), c
    np.testing.assert_allclose(got["finished_p95"], want["finished_p95"])
    for share, count in (("cut_share", "cut"), ("no_answer_share", "no_answer"), ("grade_error_share", "grade_errors")):
        np.testing.assert_allclose(got[share], want[count] / want["samples"])


def test_the_sql_matches_a_brute_force_computation_per_model_and_dataset(planted):
    store, df, caps = planted
    con = store.connect()
    try:
        q = data_quality(con, ["run-a", "run-b"])
        only_a = data_quality(con, ["run-a"], models=["m1"], dataset="arith")
    finally:
        con.close()
    _compare(q.table, _brute(df, caps, ["model", "dataset"]), ["model", "dataset"])
    a = df[(df["run_id"] == "run-a") & (df["dataset"] == "arith")]
    _compare(only_a.table, _brute(a, caps, ["model", "dataset"]), ["model", "dataset"])
    assert only_a.table["cut"].iloc[0] > 0.4 * 108  # the plant took


def test_the_sql_matches_per_difficulty_bin(planted):
    store, df, caps = planted
    m1 = df[df["model"] == "m1"]
    keys = ("k-" + m1["dataset"] + "/" + m1["question_id"]).unique()
    bins = {k: 1 + i % 3 for i, k in enumerate(sorted(keys)) if i % 7 != 6}  # some questions in no bin
    con = store.connect()
    try:
        q = data_quality(con, ["run-a", "run-b"], models=["m1"], bins=bins)
    finally:
        con.close()
    m1 = m1.assign(bin=("k-" + m1["dataset"] + "/" + m1["question_id"]).map(bins))
    want = _brute(m1[m1["bin"].notna()].astype({"bin": int}), caps, ["model", "dataset", "bin"])
    _compare(q.table, want, ["model", "dataset", "bin"])


def test_the_view_gives_the_same_figures_per_run(planted):
    store, df, caps = planted
    view = read_only_query(store, "SELECT * FROM data_quality")
    _compare(view, _brute(df, caps, ["run_id", "model", "dataset"]), ["run_id", "model", "dataset"])


@pytest.mark.parametrize(
    "cut, expected",
    [
        (0, None),  # nothing cut: the observed 95th percentile of all lengths, below the cap
        (4, None),  # 4 % cut: still observed (the cut ones are the longest 4 %)
        (6, 160),  # 128 · 1.2 = 153.6 -> 160
        (20, 512),  # 128 · 4
        (57, 1024),  # 8 · C at most
        (100, 1024),  # none finished
    ],
)
def test_suggested_max_tokens_accounts_for_censoring(tmp_path, cut, expected):
    """Finished completions are all shorter than the cap, so their 95th percentile M understates the need; the
    suggestion N is never below the cap once more than 5 % are cut."""
    store = Store.open(tmp_path / "s")
    rng = np.random.default_rng(cut)
    df = _planted(rng, "m", "d", 100, 1, 128, 0.0, 0.0, 0.0)
    if cut:
        df.loc[: cut - 1, "finish_reason"] = "length"
        df.loc[: cut - 1, "completion_tokens"] = 128
        df.loc[: cut - 1, "answer"] = None
    _write(store, "r", 128, df)
    con = store.connect()
    try:
        row = data_quality(con, ["r"]).table.iloc[0]
    finally:
        con.close()
    assert row["cut"] == cut
    if expected is None:
        assert row["suggested_max_tokens"] == math.ceil(np.quantile(df["completion_tokens"], 0.95)) <= 128
    else:
        assert row["suggested_max_tokens"] == expected >= 128
        if cut < 100:
            assert row["finished_p95"] < 128 < row["suggested_max_tokens"]


def test_a_spec_without_max_tokens_reads_the_spec_default(tmp_path):
    store = Store.open(tmp_path / "s")
    _write(store, "r", None, _planted(np.random.default_rng(0), "m", "d", 10, 2, 256, 0.5, 0, 0))
    con = store.connect()
    try:
        assert data_quality(con, ["r"]).table["max_tokens"].tolist() == [256]
    finally:
        con.close()


def test_warnings_name_the_groups_over_the_threshold_and_what_to_change(planted):
    store, _, _ = planted
    con = store.connect()
    try:
        q = data_quality(con, ["run-a", "run-b"])
        strict = data_quality(con, ["run-a", "run-b"], threshold=0.02)
    finally:
        con.close()
    t = q.table.set_index(["model", "dataset"])
    cut, none, err = q.warnings
    assert cut.startswith(
        f"**Samples cut at max_tokens: more than {THRESHOLD:.0%}** in 1 group(s) (beyond chance at 10%: binomial p < 0.05)."
    )
    assert "counts as wrong" in cut and "where the model is cut off" in cut
    r = t.loc[("m1", "arith")]
    assert (
        f"- m1 · arith: {int(r['cut'])} of {int(r['samples'])} ({r['cut_share']:.0%}) at max_tokens = 256 — raise "
        f"max_tokens to ≈ {int(r['suggested_max_tokens'])}: the 95th percentile of finished completions is {r['finished_p95']:.0f}"
    ) in cut
    assert none.startswith("**Finished samples with no extracted answer: more than 10%** in 1 group(s)")
    assert "- m1 · chain:" in none
    assert err.startswith("**Samples whose grading failed: more than 10%**")
    over = int(sum(_beyond(r.cut, r.samples, 0.02) for r in q.table.itertuples()))
    assert over >= 1 and f"more than 2%** in {over} group(s)" in strict.warnings[0]
    assert q.summary().startswith(f"data quality: {int(t['cut'].sum())} of {int(t['samples'].sum())} (")


def _beyond(count: int, n: int, threshold: float) -> bool:
    """The rule written out: the share passes the threshold, and P(X >= count) under Binomial(n, threshold), summed
    term by term, is below 0.05."""
    tail = sum(math.comb(n, x) * threshold**x * (1 - threshold) ** (n - x) for x in range(int(count), int(n) + 1))
    return count / n > threshold and tail < 0.05


@pytest.mark.parametrize(
    "cut, n",
    [(2, 16), (3, 16), (4, 16), (3, 8), (2, 4), (1, 2), (15, 100), (17, 100), (0, 10), (12, 60), (41, 72), (5, 5)],
)
def test_a_group_warns_only_beyond_chance_at_the_threshold(cut, n):
    """A few cut samples in a small bin are what a 10 % share gives by chance; the warning waits for evidence."""
    row = dict(model="m", dataset="d", samples=n, cut=cut, no_answer=0, grade_errors=0, max_tokens=64)
    row |= dict(cut_share=cut / n, no_answer_share=0.0, grade_error_share=0.0, finished_p95=30.0)
    row |= dict(suggested_max_tokens=80)
    warned = bool(quality_warnings(pd.DataFrame([row]), THRESHOLD))
    assert warned == _beyond(cut, n, THRESHOLD)
    if (cut, n) == (2, 16):
        assert not warned  # the re-run study's bin that warned at 4 % cut overall
    if (cut, n) in ((3, 8), (41, 72)):
        assert warned


def test_a_share_at_the_threshold_does_not_warn():
    row = dict(model="m", dataset="d", samples=1000, cut=100, no_answer=100, grade_errors=100, max_tokens=64)
    row |= dict(cut_share=0.1, no_answer_share=0.1, grade_error_share=0.1, finished_p95=30.0, suggested_max_tokens=80)
    assert quality_warnings(pd.DataFrame([row]), 0.1) == []
    assert len(quality_warnings(pd.DataFrame([row]), 0.05)) == 3


def test_a_clean_store_raises_no_warning(tmp_path):
    store = Store.open(tmp_path / "s")
    _write(store, "r", 128, _planted(np.random.default_rng(1), "m", "d", 20, 4, 128, 0.0, 0.0, 0.0))
    con = store.connect()
    try:
        q = data_quality(con, ["r"])
    finally:
        con.close()
    assert q.warnings == () and not q.flagged and q.table["cut"].tolist() == [0]


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, float("nan"), "0.1"])
def test_the_threshold_is_a_share(bad):
    with pytest.raises(SpecError, match=r"^threshold: .*; allowed: a share between 0 and 1 \(exclusive\)"):
        check_threshold(bad)


def test_study_labels_map_to_question_keys(planted):
    store, _, _ = planted
    con = store.connect()
    try:
        got = bins_by_key(con, ["run-a"], "m1", ["q0", "q1", "nope"], [1, 2, 3], dataset="arith")
    finally:
        con.close()
    assert got == {"k-arith/q0": 1, "k-arith/q1": 2}


def test_compute_optimal_prints_the_figures_on_stderr_and_keeps_its_csv(tmp_path, capsys):
    from bench.synthetic_store import make_synthetic_store

    cut = tmp_path / "cut"
    make_synthetic_store(cut, n_questions=20, n_samples=8, models=("gemma-3-270m",), n_trees=0, truncated=0.4)
    assert main(["compute-optimal", "--store", str(cut), "--n-bins", "2", "--verifier", "none"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("bin,questions,budget_flops,budget_samples,chosen_fold0")
    assert "quality:" not in out and "warning:" not in out
    lines = [ln for ln in err.splitlines() if ln.startswith("quality: gemma-3-270m")]
    assert len(lines) == 4 and all(" · bin " in ln for ln in lines)  # 2 datasets × 2 bins
    assert "warning: Samples cut at max_tokens: more than 10%" in err
    assert "raise max_tokens to ≈ " in err and "the 95th percentile of finished completions is" in err
    listed = dict(ln.strip().split("\t")[::-1] for ln in err.splitlines() if ln.startswith("  "))
    assert listed["majority"] == "pool"  # the indented lines are still the configurations, as scripts read them

    assert main(["compute-optimal", "--store", str(cut), "--n-bins", "2", "--quality-threshold", "0.9"]) == 0
    assert "warning:" not in capsys.readouterr().err
    assert main(["compute-optimal", "--store", str(cut), "--quality-threshold", "10"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --quality-threshold: 10.0; allowed: a share between 0 and 1 (exclusive), e.g. 0.1 for 10 %"
    )


def test_the_run_summary_gives_the_runs_shares_and_warns_on_stderr(planted, capsys):
    """What `ttc run` prints after its run line (the real-model smoke test runs the command itself)."""
    from backend.cli import _print_quality

    store, df, _ = planted
    _print_quality(store, ["run-a"], summary=True)
    out, err = capsys.readouterr()
    a = df[df["run_id"] == "run-a"]
    cut = int((a["finish_reason"] == "length").sum())
    assert out.strip().startswith(f"data quality: {cut} of {len(a)} ({cut / len(a):.0%}) cut at max_tokens, ")
    assert out.strip().endswith("(max_tokens = 128)")
    assert err.startswith("warning: Samples cut at max_tokens: more than 10% in 1 group(s) (beyond chance")
    assert "\nwarning: - m1 · arith: " in err and "raise max_tokens to ≈ " in err
    assert not [ln for ln in err.splitlines() if ln.startswith(" ")]  # `ttc compute-optimal` lists its study so
    _print_quality(store, ["run-b"], models=["m2"], summary=True)
    out, err = capsys.readouterr()
    assert out.startswith("data quality: 0 of 108 (0%) cut at max_tokens") and err == ""
