"""The accuracy table on one FLOPs axis, end to end on a scripted engine: spec (pool + two searches + a
revisions ratio sweep at three budgets) → worker → store → table → compute-optimal, pinned against values
computed by hand from the ledger's formula."""

import io
import json
from math import comb

import numpy as np
import pandas as pd
import pytest

from backend.cli import main as ttc
from backend.config import ModelSpec, parse_spec
from backend.execution.execute import execute
from backend.execution.sampling import PreparedRun, _prepare_search, sample_seed
from backend.ledger import decode_flops, prefill_flops
from backend.metrics.compute_optimal import cv_band, fold_assignment
from backend.metrics.strategy_table import OK, POOL_EXHAUSTED, STATUSES, UNAFFORDABLE, k_levels, search_label
from backend.metrics.study import COMPUTE_OPTIMAL, compute_optimal_study, study_inputs
from backend.prompting import build_prompt
from backend.strategies.sequential_revisions import split_attempts
from backend.tasks import create_task
from store import Store
from tests.fakes import FAKE_MODEL, GEN_ARCH, ScriptedEngine

PROBLEMS = [
    dict(id="qa", problem="alpha: 1+1", answer="2", level=1),  # always right
    dict(id="qb", problem="bravo: 1+2", answer="3", level=2),  # always wrong
    dict(id="qc", problem="charlie: 2+2", answer="4", level=2),  # right on even seeds
    dict(id="qd", problem="delta: " + "long words " * 60 + "3+3", answer="6", level=1),  # a long prompt
]
RIGHT, WRONG = "Answer: 2", "Answer: 5"


def _engine():
    return ScriptedEngine(
        [
            (r"Problem: alpha", RIGHT),
            (r"Problem: bravo", WRONG),
            (r"Problem: charlie", lambda prompt, p: "Answer: 4" if p.seed % 2 == 0 else "Answer: 9"),
            (r"Problem: delta", "Answer: 6"),
        ]
    )


def _one_sample(prompt: str, reply: str) -> tuple[float, float]:
    """(prefill, decode) FLOPs of one scripted sample: one token per character."""
    p, d = len(prompt), len(reply)
    return float(prefill_flops(GEN_ARCH, p)), float(decode_flops(GEN_ARCH, p, d))


@pytest.fixture(scope="module")
def study_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("co")
    path = root / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PROBLEMS))
    task = create_task(
        parse_spec(
            dict(name="x", models=["m"], task=dict(kind="math_jsonl", path=str(path)), samples_per_question=1)
        ).task
    )
    prompts = {q.question_id: build_prompt(FAKE_MODEL, task, q) for q in task.questions()}
    pre_a, dec_a = _one_sample(prompts["qa"], RIGHT)
    pre_d, _ = _one_sample(prompts["qd"], RIGHT)
    # the smallest budget pays qa's prefill and 2 samples, but not even qd's prefill
    budgets = [pre_a + 2.5 * dec_a, pre_d + 40 * dec_a, pre_d + 120 * dec_a]
    assert budgets[0] < pre_d
    spec = parse_spec(
        dict(
            name="co",
            models=["scripted"],
            task=dict(kind="math_jsonl", path=str(path)),
            samples_per_question=4,
            max_tokens=16,
            verifiers=["oracle"],
            budgets=budgets,
            budget_unit="flops",
            strategies=[
                dict(name="beam_search", config=dict(n=2, width=2, max_tokens=16, max_rounds=2)),
                dict(name="best_of_n", config=dict(n=4, max_tokens=16)),
                dict(name="sequential_revisions", config=dict(max_tokens=16), ratios=["1:0", "1:1", "0:1"]),
            ],
        )
    )
    searches = [_prepare_search(i, s, spec) for i, s in enumerate(spec.strategies)]
    prepared = PreparedRun(
        spec, spec.run_id(), task, task.questions(), [(ModelSpec(name="scripted"), FAKE_MODEL)], searches
    )
    store = Store.open(root / "store")
    execute(prepared, store, engine_factory=lambda model, engine_spec: _engine())
    return dict(store=store, prompts=prompts, budgets=budgets, run_id=prepared.run_id, prepared=prepared)


def _study(s, **kw):
    con = s["store"].connect()
    try:
        return compute_optimal_study(con, [s["run_id"]], "scripted", **kw)
    finally:
        con.close()


def test_pool_rules_take_the_largest_k_the_ledger_affords_per_question(study_store):
    study = _study(study_store)
    t = study.table
    np.testing.assert_allclose(t.budgets, study_store["budgets"])
    assert t.configurations[:6] == [
        "majority",
        "deepconf_weighted",  # the scripted engine reports logprobs: the confidence rules come with the pool
        "deepconf_filtered",
        "perplexity_consistency",
        "best_of_n[oracle]",
        "weighted_best_of_n[oracle]",
    ]
    # a confidence rule costs what majority costs (no verifier): the same k at every budget
    np.testing.assert_array_equal(t.samples[t.index("deepconf_weighted")], t.samples[t.index("majority")])
    bon = t.index("best_of_n[oracle]")
    replies = {"qa": [RIGHT] * 4, "qb": [WRONG] * 4, "qd": ["Answer: 6"] * 4}
    replies["qc"] = ["Answer: 4" if sample_seed(0, "qc", i) % 2 == 0 else "Answer: 9" for i in range(4)]
    for qi, qid in enumerate(t.question_ids):
        pre, dec = _one_sample(study_store["prompts"][qid], replies[qid][0])
        dec = np.mean([_one_sample(study_store["prompts"][qid], r)[1] for r in replies[qid]])
        c = sum(r in ("Answer: 2", "Answer: 4", "Answer: 6") for r in replies[qid])
        for b, budget in enumerate(t.budgets):
            k = int(min(4, max(0, (budget - pre) // dec)))
            if k == 0:  # not even the prompt's prefill fits: no accuracy, not 0
                assert np.isnan(t.accuracy[bon, b, qi]) and t.status[bon, b, qi] == UNAFFORDABLE
                continue
            pass_at_k = 1 - comb(4 - c, k) / comb(4, k)  # an oracle verifier picks a right sample if one is there
            assert t.accuracy[bon, b, qi] == pytest.approx(pass_at_k), (qid, b)
            assert t.samples[bon, b, qi] == k
            assert t.spent[bon, b, qi] == pytest.approx(pre + k * dec) and t.spent[bon, b, qi] <= budget
    qa, qd = list(t.question_ids).index("qa"), list(t.question_ids).index("qd")
    assert t.samples[bon, 0, qa] == 2 and t.status[bon, 0, qa] == OK
    assert t.status[bon, 2, qa] == POOL_EXHAUSTED and t.samples[bon, 2, qa] == 4
    assert t.status[bon, 0, qd] == UNAFFORDABLE


def test_searches_are_placed_at_what_their_ledger_spent(study_store):
    t = _study(study_store).table
    labels = [c for c, k in zip(t.configurations, t.kind) if k == "search"]
    assert labels == sorted(
        [
            "beam_search[max_rounds=2,max_tokens=16,n=2,width=2] · oracle",
            "best_of_n[max_tokens=16,n=4] · oracle",
            "sequential_revisions[seq:par=0:1,max_tokens=16] · oracle",
            "sequential_revisions[seq:par=1:0,max_tokens=16] · oracle",
            "sequential_revisions[seq:par=1:1,max_tokens=16] · oracle",
        ]
    )
    ids = list(t.question_ids)
    spent = study_store["store"].query(
        "SELECT strategy, config, question_id, sum(generator_flops + verifier_flops) AS f, count(*) AS n FROM nodes GROUP BY ALL"
    )
    for label in labels:
        c = t.index(label)
        assert t.accuracy[c, :, ids.index("qa")][t.status[c, :, ids.index("qa")] != UNAFFORDABLE].tolist() == [
            1.0
        ] * int((t.status[c, :, ids.index("qa")] != UNAFFORDABLE).sum())
        assert np.nanmax(t.accuracy[c, :, ids.index("qb")]) == 0.0
        # qd's prompt alone exceeds the smallest budget: recorded as unaffordable, never as accuracy 0
        assert (
            np.isnan(t.accuracy[c, 0, ids.index("qd")]) and STATUSES[t.status[c, 0, ids.index("qd")]] == "unaffordable"
        )
        assert t.accuracy[c, 2, ids.index("qd")] == 1.0
        ran = ~np.isnan(t.accuracy[c])
        assert np.all(t.spent[c][ran] <= t.budgets[:, None].repeat(len(ids), 1)[ran])
    # the table's spend is the ledger's, as stored on every node; at each budget the cell is the largest-cap run
    # whose ledger spent at most that budget (a search that stopped early counts at smaller budgets too)
    row = spent[(spent["strategy"] == "beam_search") & (spent["question_id"] == "qa")]
    caps = np.array([json.loads(cfg)["budget_flops"] for cfg in row["config"]])
    c = t.index(labels[0])
    for j, budget in enumerate(t.budgets):
        fits = row["f"].to_numpy() <= budget
        expected = row["f"].to_numpy()[fits][np.argmax(caps[fits])] if fits.any() else np.nan
        np.testing.assert_allclose(t.spent[c, j, ids.index("qa")], expected)
    cells = t.cells()
    cell = cells[(cells["configuration"] == labels[0]) & (cells["budget_flops"] == t.budgets[0])].iloc[0]
    assert cell["questions"] == 3 and cell["unaffordable"] == 1 and cell["of_questions"] == 4
    # the searches' rows alone (what the Strategies page draws) are the whole table's search rows, cell for cell
    con = study_store["store"].connect()
    try:
        alone = study_inputs(con, [study_store["run_id"]], "scripted", pool_rules=False).table
    finally:
        con.close()
    assert alone.configurations == labels and alone.one_sample_flops == t.one_sample_flops
    pd.testing.assert_frame_equal(alone.cells(), cells[cells["kind"] == "search"].reset_index(drop=True))
    # without the confidence-aware rules: every other row the same, cell for cell (each rule resamples on its own)
    con = study_store["store"].connect()
    try:
        plain = study_inputs(con, [study_store["run_id"]], "scripted", confidence_rules=False).table
    finally:
        con.close()
    kept = [
        c for c in t.configurations if c not in ("deepconf_weighted", "deepconf_filtered", "perplexity_consistency")
    ]
    assert plain.configurations == kept
    for name in kept:
        for field in ("accuracy", "spent", "samples", "tokens", "status"):
            np.testing.assert_array_equal(getattr(plain, field)[plain.index(name)], getattr(t, field)[t.index(name)])


def test_the_ratio_sweep_splits_each_budget_into_chain_length_times_chains(study_store):
    nodes = study_store["store"].query("SELECT DISTINCT config FROM nodes WHERE strategy = 'sequential_revisions'")
    records = [json.loads(c) for c in nodes["config"]]
    assert {r["ratio"] for r in records} == {"1:0", "1:1", "0:1"}
    assert len(records) == 9  # 3 ratios × 3 budgets, coinciding splits stored under each ratio
    for r in records:
        length, chains = r["chain_length"], r["chains"]
        seq, par = (int(x) for x in r["ratio"].split(":"))
        if par == 0:
            assert chains == 1
        if seq == 0:
            assert length == 1
    top = [r for r in records if r["budget_flops"] == max(x["budget_flops"] for x in records)]
    n = max(r["chain_length"] * r["chains"] for r in top)
    assert {r["ratio"]: (r["chain_length"], r["chains"]) for r in top} == {
        x: split_attempts(n, x) for x in ("1:0", "1:1", "0:1")
    }
    study = _study(study_store)
    sweep = study.ratio_sweep()
    assert set(sweep["ratio"]) == {"1:0", "1:1", "0:1"} and sweep["best"].any()


def test_a_rerun_of_the_sweep_generates_nothing(study_store):
    store = study_store["store"]
    before = store.query("SELECT count(*) AS n FROM nodes")["n"][0]
    engines = []
    execute(
        study_store["prepared"],
        store,
        engine_factory=lambda model, engine_spec: engines.append(_engine()) or engines[-1],
    )
    assert not engines  # nothing left to do: the engine is not even loaded
    assert store.query("SELECT count(*) AS n FROM nodes")["n"][0] == before


def test_compute_optimal_over_every_configuration_with_a_bin_fallback(study_store):
    study = _study(study_store, n_bins=5)
    assert any("support 2 difficulty bin(s)" in n for n in study.notes)
    assert len(study.result.levels) == 2
    report = study.report()
    assert set(report["bin"]) == {"1", "2", "all"}
    chosen = set(report["chosen_fold0"].dropna()) | set(report["chosen_fold1"].dropna())
    assert chosen <= set(study.table.configurations)
    # qd is unaffordable at the smallest budget for every configuration: nothing can be chosen for its bin there
    assert (
        report[(report["budget_flops"] == study.table.budgets[0]) & (report["bin"] != "all")]["chosen_fold0"]
        .isna()
        .any()
    )
    # is compute-optimal's edge over the baseline real? The report's rows are the study's paired comparison
    whole = report[report["bin"] == "all"].reset_index(drop=True)
    cmp = study.compare(COMPUTE_OPTIMAL, study.result.baseline)
    gap = whole["held_out_accuracy"] - whole["baseline_accuracy"]
    full = gap.notna()  # where a side misses questions (qd at the smallest budget) the pairs are those both ran
    np.testing.assert_allclose(whole["vs_baseline_difference"][full], gap[full])
    assert (whole["vs_baseline_questions_paired"][~full] < len(study.table.question_ids)).all() and (~full).any()
    np.testing.assert_allclose(cmp["difference"], whole["vs_baseline_difference"])
    assert (
        list(cmp["p_value"]) == list(whole["vs_baseline_p_value"]) and whole["vs_baseline_verdict"].str.len().min() > 0
    )
    assert list(study.compared()) == [COMPUTE_OPTIMAL, *study.table.configurations]
    with pytest.raises(ValueError, match=r"^bin '9' is not a bin of this study; allowed: 1, 2, all$"):
        study.compare(COMPUTE_OPTIMAL, "majority", bin="9")
    with pytest.raises(ValueError, match=r"^'nope' is not compared here; allowed: compute-optimal"):
        study.compare("nope", "majority")


def test_cli_compute_optimal_lists_pool_and_search_configurations(study_store, capsys):
    assert ttc(["compute-optimal", "--store", str(study_store["store"].root)]) == 0
    out = capsys.readouterr()
    header, *rows = out.out.strip().splitlines()
    assert header.split(",")[:4] == ["bin", "questions", "budget_flops", "budget_samples"]
    assert "note: 4 questions support 2 difficulty bin(s)" in out.err
    assert "Held out: only the choice of configuration" in out.err and "scoring half included" in out.err
    listed = [line.split("\t") for line in out.err.splitlines() if line.startswith("  ")]
    assert {kind.strip() for kind, _ in listed} == {"pool", "search"}
    assert "  search\tbeam_search[max_rounds=2,max_tokens=16,n=2,width=2] · oracle" in out.err
    assert len(rows) == 3 * 3  # (2 bins + all) × 3 budgets
    assert ttc(["compute-optimal", "--store", str(study_store["store"].root), "--cells"]) == 0
    cells = capsys.readouterr().out
    assert "sequential_revisions[seq:par=1:1,max_tokens=16] · oracle" in cells and "weighted_best_of_n[oracle]" in cells
    assert ttc(["compute-optimal", "--store", str(study_store["store"].root), "--model", "nope"]) == 2
    assert "--model: 'nope' has no samples in these runs; allowed: scripted" in capsys.readouterr().err


def test_cli_compute_optimal_prints_the_cross_validated_curves_bootstrap_band(study_store, capsys):
    root = str(study_store["store"].root)
    assert ttc(["compute-optimal", "--store", root, "--band-boot", "300"]) == 0
    out = capsys.readouterr()
    report = pd.read_csv(io.StringIO(out.out))
    assert "95% bootstrap band over questions (300 resamples" in out.err
    study = _study(study_store, n_bins=5)  # the CLI's defaults: the same study, its band from the same seed
    band = cv_band(
        study.table.accuracy,
        study.table.budgets,
        study.table.configurations,
        study.bins.level,
        baseline=study.result.baseline,
        n_boot=300,
    )
    whole = report[report["bin"] == "all"]
    np.testing.assert_allclose(whole["cv_lo"], band.accuracy_low, equal_nan=True)
    np.testing.assert_allclose(whole["gap_hi"], band.gap_high, equal_nan=True)
    np.testing.assert_allclose(whole["gap"], whole["held_out_accuracy"] - whole["baseline_accuracy"])
    first_bin = report[report["bin"] == "1"]
    np.testing.assert_allclose(first_bin["gap_lo"], band.gap_by_bin_low[0], equal_nan=True)
    assert ttc(["compute-optimal", "--store", root, "--band-boot", "0"]) == 0
    unbanded = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert unbanded[["cv_lo", "cv_hi", "gap_lo", "gap_hi"]].isna().all().all()
    same = [c for c in unbanded.columns if c not in ("cv_lo", "cv_hi", "gap_lo", "gap_hi")]
    pd.testing.assert_frame_equal(unbanded[same], report[same])  # the band adds columns, changes none


def test_search_labels_show_what_differs_from_the_defaults():
    record = {"n": 16, "width": 2, "max_tokens": 256, "budget_flops": 1.0, "seed": 0, "verifier": "v"}
    assert search_label("beam_search", record) == "beam_search[width=2] · v"
    assert search_label("majority", {"n": 8, "max_tokens": 512, "temperature": 0.8, "verifier": None}) == "majority"
    sweep = {"chains": 4, "chain_length": 2, "ratio": "1:2", "verifier": None, "delimiter": "\n"}
    assert search_label("sequential_revisions", sweep) == 'sequential_revisions[seq:par=1:2,delimiter="\\n"]'


def test_k_levels_are_exact_then_geometric():
    assert k_levels(10).tolist() == list(range(1, 11))
    ks = k_levels(1024)
    assert ks[:64].tolist() == list(range(1, 65)) and ks[-1] == 1024
    assert np.all(ks[64:] / ks[63:-1] < 1.12)  # rounding k down to the grid gives up at most ~9 % of a budget


def test_planted_search_configuration_that_wins_only_on_the_selection_fold_is_never_rewarded(tmp_path):
    """A search configuration right on the fold-0 questions of each bin and wrong on the others is picked on
    fold 0 and scored on fold 1: the cross-validated curve never credits it."""
    from bench.synthetic_store import make_synthetic_store, search_configuration_table

    model = "qwen2.5-coder-0.5b-instruct"
    store = make_synthetic_store(tmp_path / "s", 40, 16, models=(model,), verifiers=("v",), n_trees=0)
    run_id = store.query("SELECT DISTINCT run_id FROM samples")["run_id"][0]
    con = store.connect()
    honest = compute_optimal_study(con, [run_id], model, n_bins=2)
    budget = float(honest.table.budgets[2])
    honest_there = compute_optimal_study(con, [run_id], model, n_bins=2, budgets=[budget])
    con.close()
    fold = fold_assignment(np.unique(honest.bins.level, return_inverse=True)[1], 0)
    wins = {q: f == 0 for q, f in zip(honest.table.question_ids, fold)}
    store.write_shard(
        "nodes",
        run_id,
        search_configuration_table(run_id, model, "beam_search", {"n": 4, "width": 2, "verifier": "v"}, budget, wins),
    )
    con = store.connect()
    planted = compute_optimal_study(con, [run_id], model, n_bins=2)
    con.close()
    name = "beam_search[n=4,width=2] · v"
    assert list(planted.table.budgets) == [budget] and name in planted.table.configurations
    assert (planted.result.chosen_names(0)[:, 0] == name).all()  # it looks perfect on the selection fold ...
    # ... and is scored where it is always wrong: fold-1 questions get 0, so the curve never credits it
    assert np.all(planted.result.accuracy_by_bin <= honest_there.result.accuracy_by_bin + 1e-12)
    assert planted.result.accuracy[0] < honest_there.result.accuracy[0]
    assert planted.result.in_sample_accuracy[0] >= 0.5  # choosing and scoring on the same questions would reward it


@pytest.mark.parametrize(
    "ratios,message",
    [
        (
            ["2-1"],
            "strategies[0].ratios: a ratio is 'S:P' with whole S, P >= 0 and not both 0, e.g. '4:1', '1:1', '0:1'; got '2-1'",
        ),
        (["0:0"], "got '0:0'"),
        (["1:1", "1:1"], "ratio '1:1' is listed twice"),
        ([], "strategies[0].ratios: List should have at least 1 item"),
    ],
)
def test_bad_ratios_name_the_field(ratios, message):
    from backend.errors import SpecError

    with pytest.raises(SpecError) as err:
        parse_spec(
            dict(
                name="x",
                models=["m"],
                task=dict(kind="humaneval"),
                samples_per_question=1,
                strategies=[dict(name="sequential_revisions", ratios=ratios)],
            )
        )
    assert message in str(err.value)


def test_ratios_on_a_strategy_without_a_sweep_are_refused_before_anything_runs():
    from backend.errors import SpecError

    spec = parse_spec(
        dict(
            name="x",
            models=["m"],
            task=dict(kind="humaneval"),
            samples_per_question=1,
            verifiers=["oracle"],
            strategies=[dict(name="beam_search", ratios=["1:1"])],
        )
    )
    with pytest.raises(
        SpecError,
        match=r"strategies\[0\]\.ratios: beam_search has no sequential:parallel sweep; allowed: ratios on sequential_revisions",
    ):
        _prepare_search(0, spec.strategies[0], spec)


def test_split_attempts_covers_the_ratios_from_all_sequential_to_all_parallel():
    assert split_attempts(16, "1:0") == (16, 1)
    assert split_attempts(16, "0:1") == (1, 16)
    assert split_attempts(16, "1:1") == (4, 4)
    assert split_attempts(16, "4:1") == (8, 2)
    assert split_attempts(16, "1:4") == (2, 8)
    assert split_attempts(1, "1:1") == (1, 1)


def _search_rows(rows):
    import pandas as pd

    df = pd.DataFrame(rows, columns=["question_id", "budget", "spent", "solved"])
    return df.assign(
        question_key="~" + df["question_id"],  # a pool built from arrays has no keys: SEARCH_SQL's keyless spelling
        strategy="beam_search",
        config="{}",
        generated=2,
        tokens=10.0,
        answered=True,
        label="beam_search",
        ratio="",
    )


def test_a_search_counts_at_its_measured_spend_and_an_overspent_run_is_never_a_candidate():
    from backend.metrics.pools import pool_from_arrays
    from backend.metrics.strategy_table import NOT_RUN, OVER_BUDGET, strategy_table

    pool = pool_from_arrays(np.ones((3, 2), bool), question_ids=np.array(["q0", "q1", "q2"]))
    pool.prefill_flops[:] = 10.0
    pool.decode_flops[:] = 10.0
    searches = _search_rows(
        [
            ("q0", 100.0, 150.0, True),  # broke its ledger at cap 100: never a candidate, at no budget
            ("q1", 400.0, 90.0, True),  # capped at 400, spent 90: counts at 100 as well
            ("q1", 100.0, 60.0, False),  # ... where the larger cap's run (the one that fits) is taken
            ("q2", 400.0, 300.0, True),  # spent 300: a candidate at 400 only
        ]
    )
    t = strategy_table(pool, searches, one_sample_flops=20.0)
    c = t.index("beam_search")
    assert t.budgets.tolist() == [100.0, 400.0]
    at = {
        q: (t.accuracy[c, :, i].tolist(), [STATUSES[s] for s in t.status[c, :, i]])
        for i, q in enumerate(t.question_ids)
    }
    assert np.isnan(at["q0"][0]).all() and at["q0"][1][0] == STATUSES[OVER_BUDGET]
    assert at["q0"][1][1] == STATUSES[NOT_RUN]
    assert at["q1"][0] == [1.0, 1.0] and t.spent[c, :, 1].tolist() == [90.0, 90.0]
    assert np.isnan(at["q2"][0][0]) and at["q2"][0][1] == 1.0
    assert any("never a candidate" in n for n in t.notes)
    assert t.budget_samples.tolist() == [5.0, 20.0]  # the unit given: "≈ x samples" labels are pricing's
