"""`ttc import` (backend/importers): each format's fixture, written to its documented layout, imports as a
read-only run; a second import of the same files writes nothing; bad input fails in one line naming the file, the
record and the field, and leaves the store as it was; a run exported with `ttc export --format generic` and
imported again gives the same pass@k, majority and best-of-N curves."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import text

from backend.cli import main
from backend.errors import ImportFileError, SpecError
from backend.importers import IMPORTERS
from backend.importers.ingest import file_sha256, import_files, load_arch
from backend.ledger import decode_flops, prefill_flops
from backend.metrics.pools import Pool
from backend.run_selection import default_runs_of
from store import Store
from store.keys import question_key
from store.leases import next_claimable


def _store(tmp_path) -> Store:
    return Store.open(tmp_path / "store")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


LONG = [
    {"question_id": "q1", "question": "1+1", "reference": "2", "completion": "2", "answer": "2", "correct": True,
     "prompt_tokens": 10, "completion_tokens": 3, "score.prm": 0.9},
    {"question_id": "q1", "question": "1+1", "reference": "2", "completion": "3", "answer": "3", "correct": False,
     "prompt_tokens": 10, "completion_tokens": 5, "score.prm": 0.2},
    {"question_id": "q2", "question": "2+2", "reference": "4", "completion": "4", "answer": "4", "correct": 1,
     "prompt_tokens": 12, "completion_tokens": 4},
]  # fmt: skip


def _store_files(store: Store) -> list[Path]:
    return sorted(
        p for p in store.root.rglob("*") if p.is_file() and p.name != "catalog.sqlite" and "sqlite" not in p.name
    )


def test_the_registry_holds_the_builtin_formats_with_their_capabilities():
    assert list(IMPORTERS)[:2] == ["generic", "monkeys"]
    assert IMPORTERS["generic"].needs_mapping and IMPORTERS["generic"].has_tokens
    assert not IMPORTERS["monkeys"].has_tokens and ".yaml" in IMPORTERS["monkeys"].suffixes
    with pytest.raises(
        SpecError,
        match="unknown import format 'helm'; allowed: generic, inspect, lm_eval, monkeys, openai_batch, "
        "search_and_learn",
    ):
        IMPORTERS.lookup("helm", "FORMAT")


def test_generic_long_jsonl_imports_as_a_read_only_run_with_provenance(tmp_path):
    store = _store(tmp_path)
    path = _write_jsonl(tmp_path / "pool.jsonl", LONG)
    result = import_files(store, "generic", [path], model="m")
    assert (result.samples, result.questions, result.already) == (3, 2, False)
    df = store.query("SELECT * FROM samples ORDER BY question_id, sample_idx")
    assert list(zip(df["question_id"], df["sample_idx"], df["correct"])) == [
        ("q1", 0, True), ("q1", 1, False), ("q2", 0, True)
    ]  # fmt: skip
    assert set(df["model"]) == {"m"} and set(df["strategy"]) == {"sample"}
    assert df["question_key"][0] == question_key(None, None, "1+1", "2")  # the store's rule
    assert df["flops"].isna().all()  # no --params / --arch: FLOPs unknown, not guessed
    scores = store.query("SELECT question_id, sample_idx, verifier, score FROM scores ORDER BY sample_idx")
    assert scores.values.tolist() == [["q1", 0, "prm", 0.9], ["q1", 1, "prm", 0.2]]
    run = store.get_run(result.run_id)
    assert run["status"] == "imported" and json.loads(run["spec_json"])["import"]["format"] == "generic"
    with store.catalog.connect() as db:
        prov = db.execute(text("SELECT * FROM imports")).mappings().one()
    assert prov["format"] == "generic" and prov["importer_version"] == IMPORTERS["generic"].version
    assert json.loads(prov["files_json"])[0]["sha256"] == file_sha256(path)
    with store.catalog.begin() as db:
        assert next_claimable(db) is None  # no worker ever picks it up
    assert default_runs_of(store.connect()).run_ids == (result.run_id,)  # the analyses take it as finished


def test_reimporting_the_same_files_is_a_no_op(tmp_path):
    store = _store(tmp_path)
    path = _write_jsonl(tmp_path / "pool.jsonl", LONG)
    first = import_files(store, "generic", [path])
    files = _store_files(store)
    again = import_files(store, "generic", [tmp_path / "pool.jsonl"])
    assert again.already and again.run_id == first.run_id and "nothing written" in str(again)
    assert _store_files(store) == files
    assert store.query("SELECT count(*) n FROM samples")["n"][0] == 3
    copy = tmp_path / "renamed.jsonl"  # the content decides, not the name
    copy.write_bytes(path.read_bytes())
    assert import_files(store, "generic", [copy]).already


def test_params_price_flops_as_the_ledger_does(tmp_path):
    store = _store(tmp_path)
    arch = load_arch(1_000_000, None)
    import_files(store, "generic", [_write_jsonl(tmp_path / "p.jsonl", LONG)], arch=arch)
    df = store.query("SELECT question_id, prompt_tokens p, completion_tokens d, flops FROM samples ORDER BY 1, 2")
    n = df.groupby("question_id")["p"].transform("size").to_numpy()
    want = decode_flops(arch, df["p"], df["d"]) + prefill_flops(arch, df["p"]) / n
    np.testing.assert_allclose(df["flops"], want, rtol=1e-12)


def test_generic_wide_parquet_with_a_mapping_explodes_aligned_lists(tmp_path):
    store = _store(tmp_path)
    path = tmp_path / "wide.parquet"
    pq.write_table(
        pa.table(
            {
                "problem": ["a", "b"],
                "text": ["x?", "y?"],
                "gold": ["1", "2"],
                "outputs": [["1", "3", "1"], ["2"]],
                "preds": [["1", "3", "1"], ["2"]],
                "verdicts": [["yes", "no", "yes"], ["no"]],
            }
        ),
        path,
    )
    options = {
        "layout": "wide",
        "columns": {"question_id": "problem", "question": "text", "reference": "gold", "completion": "outputs",
                    "answer": "preds", "correct": "verdicts"},
        "correct_values": ["yes"],
        "incorrect_values": ["no"],
    }  # fmt: skip
    result = import_files(store, "generic", [path], options=options)
    assert (result.samples, result.questions) == (4, 2)
    df = store.query("SELECT question_id, sample_idx, answer, correct FROM samples ORDER BY 1, 2")
    assert df.values.tolist() == [["a", 0, "1", True], ["a", 1, "3", False], ["a", 2, "1", True], ["b", 0, "2", False]]


def test_generic_csv_and_json_array_read_like_jsonl(tmp_path):
    csv = tmp_path / "pool.csv"
    csv.write_text("qid,ok,ans\nq1,1,7\nq1,0,8\nq2,true,9\n")
    store = _store(tmp_path)
    options = {"columns": {"question_id": "qid", "correct": "ok", "answer": "ans"}}
    import_files(store, "generic", [csv], options=options)
    assert store.query("SELECT list(correct ORDER BY question_id, sample_idx) c FROM samples")["c"][0].tolist() == [
        True, False, True
    ]  # fmt: skip
    arr = tmp_path / "pool.json"
    arr.write_text(json.dumps(LONG, indent=1))
    other = Store.open(tmp_path / "other")
    assert import_files(other, "generic", [arr]).samples == 3


def _monkeys_problem(folder: Path, stem: str, samples: list[str], verdicts: list, gt: str = "#### 4") -> Path:
    """One problem as llmonk writes it (generate: prompt, question, samples, gt_answer; evaluate adds is_corrects)."""
    path = folder / f"{stem}.yaml"
    doc = {"prompt": f"Question: {stem}\nAnswer:", "question": f"what is {stem}?", "samples": samples,
           "gt_answer": gt, "is_corrects": verdicts}  # fmt: skip
    path.write_text(yaml.dump(doc))
    return path


def test_monkeys_yaml_one_file_per_problem(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    paths = [
        _monkeys_problem(folder, "0", ["a #### 4", "b #### 5", "c #### 4"], [True, False, True]),
        _monkeys_problem(folder, "17", ["d", "e"], [False, False], gt="#### 9"),
    ]
    store = _store(tmp_path)
    result = import_files(store, "monkeys", paths, options={"dataset": "gsm8k"})
    assert (result.samples, result.questions) == (5, 2)
    assert "token counts" in str(result) and "extracted answers" not in str(result)
    df = store.query(
        "SELECT question_id, sample_idx, completion, correct, dataset, coalesce(answer, '-') FROM samples ORDER BY 1, 2"
    )
    assert df.values.tolist() == [
        ["0", 0, "a #### 4", True, "gsm8k", "4"], ["0", 1, "b #### 5", False, "gsm8k", "5"],
        ["0", 2, "c #### 4", True, "gsm8k", "4"], ["17", 0, "d", False, "gsm8k", "-"], ["17", 1, "e", False, "gsm8k", "-"],
    ]  # fmt: skip
    # llmonk's GSM8K rule gives the votes their answers: majority@3 of problem 0 is its 2-of-3 answer, 4 (correct)
    from backend.metrics.pools import load_pool
    from backend.metrics.selection import majority_curve

    (model,) = store.query("SELECT DISTINCT model FROM samples")["model"]
    con = store.connect()
    try:
        pool = load_pool(con, result.run_id, model)
    finally:
        con.close()
    curve = majority_curve(pool, ks=[3], questions=pool.question_ids == "0")
    assert curve.mean.tolist() == [1.0]  # 4, 5, 4: all three vote 4
    none = import_files(_store(tmp_path / "again"), "monkeys", paths, options={"dataset": "gsm8k", "answers": "none"})
    assert "extracted answers" in str(none)
    q = store.query("SELECT question_id, reference FROM questions ORDER BY 1")
    assert q["reference"].tolist() == ["#### 4", "#### 9"]


def test_monkeys_records_file(tmp_path):
    path = tmp_path / "monkey_business.parquet"
    pq.write_table(
        pa.table(
            {
                "orig_dset_idx": [3, 8],
                "question": ["p?", "q?"],
                "gt_answer": ["1", "2"],
                "samples": [["x", "y"], ["z"]],
                "is_corrects": [[True, False], [True]],
            }
        ),
        path,
    )
    store = _store(tmp_path)
    import_files(store, "monkeys", [path])
    df = store.query("SELECT question_id, sum(correct::INT) c, count(*) n FROM samples GROUP BY 1 ORDER BY 1")
    assert df.values.tolist() == [["3", 1, 2], ["8", 1, 1]]


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"


def _inspect_log() -> dict:
    return json.loads((FIXTURES / "inspect.json").read_text())


def _verdicts(log: dict) -> dict[str, list[tuple[bool, str | None]]]:
    """Per question, (correct, answer) of each sample read straight from the log: a failed sample (error, limit)
    is wrong and casts no vote; match()'s C is correct."""
    out: dict[str, list[tuple[bool, str | None]]] = {}
    for s in log["samples"]:
        failed = s.get("error") is not None or s.get("limit") is not None
        score = s["scores"]["match"] if not failed else None
        out.setdefault(str(s["id"]), []).append((bool(score and score["value"] == "C"), score and score["answer"]))
    return out


def _pass_at_k_brute(flags: list[bool], k: int) -> float:
    """pass@k as its definition reads (Chen et al. 2021): the share of k-subsets holding a correct sample."""
    subsets = list(itertools.combinations(flags, k))
    return sum(any(c) for c in subsets) / len(subsets)


def _majority_brute(votes: list[tuple[bool, str | None]]) -> float:
    """Majority of the whole pool: the most frequent answer, ties averaged; a sample with no answer casts no vote."""
    counts = Counter(a for _, a in votes if a is not None)
    top = [a for a, c in counts.items() if c == max(counts.values())]
    return float(np.mean([next(ok for ok, b in votes if b == a) for a in top])) if top else 0.0


def _pool_matching_brute_force(store: Store, run_id: str, model: str, votes: dict[str, list]) -> Pool:
    """The imported run's pool, checked against `votes` ({question: [(correct, answer), ...]} in sample order):
    pass@k at every k and majority at k = 4 (the whole pool) as the brute-force definitions above give them."""
    from backend.metrics.coverage import coverage_curve
    from backend.metrics.pools import load_pool
    from backend.metrics.selection import majority_curve

    with store.connect() as con:
        pool = load_pool(con, run_id, model)
    qs = sorted(votes)
    cov = coverage_curve(pool, n_boot=0)
    want = [np.mean([_pass_at_k_brute([c for c, _ in votes[q]], k) for q in qs]) for k in cov.k]
    np.testing.assert_allclose(cov.mean, want, rtol=0, atol=1e-12)
    maj = majority_curve(pool, ks=[4], n_boot=0)
    assert maj.mean[0] == pytest.approx(np.mean([_majority_brute(votes[q]) for q in qs]), abs=1e-12)
    return pool


@pytest.mark.parametrize("name", ["inspect.eval", "inspect.json"])
def test_inspect_log_imports_epochs_as_samples_with_failed_samples_kept(tmp_path, name):
    if name.endswith(".eval"):
        pytest.importorskip("zstandard")  # inspect_ai writes zstd members: the [inspect] extra

    store = _store(tmp_path)
    result = import_files(store, "inspect", [FIXTURES / name], model="mock")
    assert (result.samples, result.questions) == (12, 3)  # 3 questions x 4 epochs
    df = store.query(
        "SELECT question_id, sample_idx, correct, answer, finish_reason, prompt_tokens, completion_tokens, grade_error"
        " FROM samples ORDER BY question_id, sample_idx"
    )
    errored = df[df["finish_reason"] == "error"]
    assert errored[["question_id", "sample_idx"]].values.tolist() == [["2", 2]]  # epoch 3 of sample 2
    assert "the sandbox went away" in errored["grade_error"].iloc[0]
    limited = df[df["finish_reason"] == "token_limit"]
    assert limited[["question_id", "sample_idx"]].values.tolist() == [["3", 3]]
    assert not df.loc[df["finish_reason"] != "stop", "correct"].any() and df.loc[limited.index, "answer"].isna().all()
    assert int(limited["completion_tokens"].iloc[0]) == 6  # the tokens it spent are still counted
    q = store.query("SELECT question_id, question, reference FROM questions ORDER BY 1")
    assert q.values.tolist() == [["1", "What is 2+2?", "4"], ["2", "What is 3*3?", "9"], ["3", "What is 10-7?", "3"]]

    truth = _verdicts(_inspect_log())
    assert {k: [c for c, _ in v] for k, v in truth.items()} == {
        qid: g["correct"].tolist() for qid, g in df.groupby("question_id")
    }  # epochs in order
    (model,) = store.query("SELECT DISTINCT model FROM samples")["model"]
    _pool_matching_brute_force(store, result.run_id, model, truth)


def test_inspect_eval_and_json_logs_give_the_same_rows(tmp_path):
    pytest.importorskip("zstandard")
    cols = "question_id, sample_idx, completion, answer, correct, finish_reason, prompt_tokens, completion_tokens"
    a, b = Store.open(tmp_path / "a"), Store.open(tmp_path / "b")
    import_files(a, "inspect", [FIXTURES / "inspect.eval"])
    import_files(b, "inspect", [FIXTURES / "inspect.json"])
    sql = f"SELECT {cols} FROM samples ORDER BY question_id, sample_idx"
    assert a.query(sql).equals(b.query(sql))


def test_inspect_scorer_choice_value_mapping_and_invalidated_samples(tmp_path):
    log = _inspect_log()
    for s in log["samples"]:
        if s.get("scores"):
            s["scores"]["judge"] = {"value": 1 if s["scores"]["match"]["value"] == "C" else 0.5, "answer": None}
    log["eval"]["scorers"].append({"name": "judge"})
    log["samples"][0]["invalidation"] = {"reason": "leaked"}
    path = tmp_path / "two.json"
    path.write_text(json.dumps(log))
    with pytest.raises(
        ImportFileError, match=r"two\.json: record -: scorer: 2 scorers: name the one .*; allowed: match, judge"
    ):
        import_files(_store(tmp_path), "inspect", [path])
    with pytest.raises(ImportFileError, match=r"scorer: 'judg' did not score this log; allowed: match, judge"):
        import_files(_store(tmp_path), "inspect", [path], options={"scorer": "judg"})
    with pytest.raises(
        ImportFileError, match=r"record samples\[\d+\]: scores\.judge\.value: 0\.5 is not a correctness"
    ):
        import_files(_store(tmp_path), "inspect", [path], options={"scorer": "judge"})
    store = _store(tmp_path)
    result = import_files(store, "inspect", [path], options={"scorer": "judge", "incorrect_values": [0.5]})
    assert result.samples == 11  # the invalidated sample is dropped
    df = store.query("SELECT question_id, sample_idx, correct FROM samples WHERE finish_reason = 'stop' ORDER BY 1, 2")
    truth = _verdicts(log)
    assert df.groupby("question_id")["correct"].sum().to_dict() == {
        q: sum(c for (c, _), s in zip(v, [x for x in log["samples"] if str(x["id"]) == q]) if not s.get("invalidation"))
        for q, v in truth.items()
    }
    assert 0 not in store.query("SELECT sample_idx FROM samples WHERE question_id = '1'")["sample_idx"].tolist()


def test_ttc_import_inspect_takes_the_scorer_from_the_mapping_file(tmp_path, capsys):
    mapping = tmp_path / "scorer.yaml"
    mapping.write_text("scorer: match\nincorrect_values: [I, N, P]\n")
    store = tmp_path / "s"
    args = [
        "import",
        "inspect",
        str(FIXTURES / "inspect_partial.json"),
        "--store",
        str(store),
        "--mapping",
        str(mapping),
    ]
    assert main([*args, "--model", "mock"]) == 0
    assert "12 samples of 3 questions imported" in capsys.readouterr().out
    df = Store.open(store).query("SELECT question_id, sample_idx, correct FROM samples WHERE score = 0.5")
    assert df.values.tolist() == [["2", 3, False]]  # the P (epoch 4 of sample 2), incorrect as the mapping says


def test_a_zstd_eval_log_without_zstandard_names_the_extra_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if not installed
    with pytest.raises(
        ImportFileError, match=r"inspect\.eval: record \S+: -: zstd-compressed .*pip install 'ttc-lab\[inspect\]'"
    ):
        import_files(_store(tmp_path), "inspect", [FIXTURES / "inspect.eval"])


def _frac(boxed: str) -> Fraction | None:
    """The fixture's answers are integers or \\frac{a}{b}: their values, to grade by without math-verify."""
    m = re.fullmatch(r"\\frac\{(-?\d+)\}\{(\d+)\}|(-?\d+)", boxed)
    return None if m is None else Fraction(int(m[1]), int(m[2])) if m[1] else Fraction(int(m[3]))


def test_search_and_learn_best_of_n_rows_are_a_pool_scored_by_the_prm(tmp_path):
    from backend.metrics.selection import best_of_n_curve

    path = FIXTURES / "best_of_n_completions.jsonl"
    store = _store(tmp_path)
    result = import_files(store, "search_and_learn", [path], model="qwen")
    assert (result.samples, result.questions) == (12, 3)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    truth = {}
    for r in rows:  # by the paper's rule read plainly: the last \\boxed{} equal in value to the answer
        answers = [
            m[-1] if (m := re.findall(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", c)) else None for c in r["completions"]
        ]
        ok = [a is not None and _frac(a) == _frac(r["answer"]) for a in answers]
        truth[r["unique_id"]] = (ok, answers, [s[-1] for s in r["scores"]])  # agg_strategy last
    df = store.query("SELECT question_id, list(correct ORDER BY sample_idx) c FROM samples GROUP BY 1 ORDER BY 1")
    assert dict(zip(df["question_id"], map(list, df["c"]))) == {q: t[0] for q, t in truth.items()}
    sc = store.query(
        "SELECT question_id, list(score ORDER BY sample_idx) s FROM scores WHERE verifier = 'prm' GROUP BY 1"
    )
    assert dict(zip(sc["question_id"], map(list, sc["s"]))) == {q: t[2] for q, t in truth.items()}

    pool = _pool_matching_brute_force(store, result.run_id, "qwen", {q: list(zip(*t[:2])) for q, t in truth.items()})
    qs = sorted(truth)
    best = best_of_n_curve(pool, "prm", ks=[4], n_boot=0)  # the top-scored completion of each whole pool
    assert best.mean[0] == pytest.approx(np.mean([truth[q][0][int(np.argmax(truth[q][2]))] for q in qs]), abs=1e-12)

    other = import_files(_store(tmp_path / "min"), "search_and_learn", [path], options={"agg_strategy": "min"})
    assert other.run_id != result.run_id  # the options are part of what was imported


LM_EVAL = FIXTURES / "lm_eval"


def _lm_eval_files() -> list[Path]:
    return sorted(LM_EVAL.iterdir())  # results_<ts>.json, samples_arith_rep_<ts>.jsonl


def _lm_eval_records() -> list[dict]:
    (samples,) = LM_EVAL.glob("samples_*.jsonl")
    return [json.loads(line) for line in samples.read_text().splitlines()]


def _lm_eval_truth() -> dict[str, list[tuple[bool, str | None]]]:
    """Per document, each response's (correct, answer), worked out from the raw generations as the task says: the
    last number of the text (none: no answer), matched to the target ignoring case, as its exact_match does."""
    out = {}
    for r in _lm_eval_records():
        if r["filter"] == "last-number":
            last = [re.findall(r"-?[0-9]+", text) for text in r["resps"][0]]
            answers = [n[-1] if n else None for n in last]
            out[f"arith_rep/{r['doc_id']}"] = [(a is not None and a.lower() == r["target"].lower(), a) for a in answers]
    return out


def test_lm_eval_log_samples_import_a_row_per_response_graded_by_the_tasks_metric(tmp_path):
    from backend.metrics.selection import majority_curve

    store = _store(tmp_path)
    result = import_files(store, "lm_eval", _lm_eval_files(), model="scripted")
    assert (result.samples, result.questions) == (16, 4)  # 4 documents x repeats: 4, not x 3 filter lines
    assert "token counts" in str(result)  # the format has none: NULL, and said
    df = store.query("SELECT question_id, sample_idx, completion, answer, correct, completion_tokens, flops "
                     "FROM samples ORDER BY question_id, sample_idx")  # fmt: skip
    assert df["completion_tokens"].isna().all() and df["flops"].isna().all()
    truth = _lm_eval_truth()
    got = {
        q: [(bool(c), a if isinstance(a, str) else None) for c, a in zip(g["correct"], g["answer"])]
        for q, g in df.groupby("question_id")
    }
    assert got == truth
    assert df.loc[df["answer"].isna(), "completion"].tolist() == ["I cannot tell."]  # "[invalid]" casts no vote
    q = store.query("SELECT question_id, dataset, question, reference FROM questions ORDER BY 1")
    assert q.values.tolist()[0] == ["arith_rep/0", "arith_rep", "Q: What is 2+2?\nA:", "4"]

    (model,) = store.query("SELECT DISTINCT model FROM samples")["model"]
    pool = _pool_matching_brute_force(store, result.run_id, model, truth)
    # lm-eval's own maj@4 lines (majority_vote over the 4 answers, then exact_match) against ttc-lab's majority at
    # k = 4; its vote counts "[invalid]" as an answer, ttc-lab's does not: no document here where that decides
    maj = majority_curve(pool, ks=[4], n_boot=0)
    lm_eval_maj = [r["exact_match"] for r in _lm_eval_records() if r["filter"] == "maj@4"]
    assert maj.mean[0] == pytest.approx(np.mean(lm_eval_maj), abs=1e-12) == pytest.approx(0.5)
    # and its "first" lines are sample 0's verdicts
    first = {f"arith_rep/{r['doc_id']}": r["exact_match"] for r in _lm_eval_records() if r["filter"] == "first"}
    assert first == {qid: float(v[0][0]) for qid, v in truth.items()}


def test_lm_eval_filter_and_metric_options(tmp_path):
    results, samples = _lm_eval_files()
    with pytest.raises(ImportFileError, match=r"samples_arith_rep_\S+\.jsonl: record 5: filtered_resps: 1 answers "
                       r"for 4 responses: filter 'first' does not keep one per response"):  # fmt: skip
        import_files(_store(tmp_path), "lm_eval", [results, samples], options={"filter": "first"})
    with pytest.raises(ImportFileError, match=r"record -: filter: 'last' is not a filter of task arith_rep; "
                       r"allowed: last-number, first, maj@4"):  # fmt: skip
        import_files(_store(tmp_path), "lm_eval", [results, samples], options={"filter": "last"})
    # a second metric in the records: the user names the one that says correct
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / results.name).write_bytes(results.read_bytes())
    recs = [{**r, "metrics": [*r["metrics"], "bleu"], "bleu": 0.3} for r in _lm_eval_records()]
    two = _write_jsonl(tmp_path / "two" / samples.name, recs)
    with pytest.raises(
        ImportFileError, match=r"record 1: metrics: 2 metrics: name the one .*; allowed: exact_match, bleu"
    ):
        import_files(_store(tmp_path), "lm_eval", [two])
    with pytest.raises(ImportFileError, match=r"record 1: bleu: 0\.3 scores the document's 4 responses together"):
        import_files(_store(tmp_path), "lm_eval", [two], options={"metric": "bleu"})
    store = _store(tmp_path)
    assert import_files(store, "lm_eval", [two], options={"metric": "exact_match"}).samples == 16
    # a record whose value disagrees with its answers is refused, not silently re-graded
    recs[0]["exact_match"] = 1.0
    _write_jsonl(two, recs)
    with pytest.raises(ImportFileError, match=r"record 1: exact_match: 1\.0, but 3 of 4 answers match the target '4'"):
        import_files(_store(tmp_path), "lm_eval", [two], options={"metric": "exact_match"})


# ---- bad input: one line naming file, record and field; nothing written ------------------------------------------


def _bad_cases(tmp_path: Path):
    lines = "".join(json.dumps(r) + "\n" for r in LONG)
    (tmp_path / "truncated.jsonl").write_text(lines[:-20])
    (tmp_path / "truncated.json").write_text(json.dumps(LONG)[:-30])
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "correct": bool(r["correct"]), "score.prm": 0.0} for r in LONG]), good)
    (tmp_path / "truncated.parquet").write_bytes(good.read_bytes()[:-40])
    (tmp_path / "m.csv").write_text("qid,ok\nq1,1\n")
    _write_jsonl(tmp_path / "maybe.jsonl", [LONG[0], {**LONG[1], "correct": 0.5}])
    _write_jsonl(tmp_path / "nocol.jsonl", [{**LONG[0], "ok": True}, {"question_id": "q9", "correct": True}])
    _write_jsonl(
        tmp_path / "wide.jsonl",
        [{"question_id": "a", "completion": ["1", "2"], "correct": [True, False]},
         {"question_id": "b", "completion": ["1", "2"], "correct": [True]}],
    )  # fmt: skip
    folder = tmp_path / "monk"
    folder.mkdir()
    _monkeys_problem(folder, "5", ["a", "b"], [True])
    _monkeys_problem(folder, "6", ["a", "b"], [True, "maybe"])
    whole = _monkeys_problem(folder, "7", ["a: 1", "b"], [True, False]).read_text()
    (folder / "7.yaml").write_text(whole[: whole.index("'a: 1'") + 3])  # ends inside a quoted sample
    started = json.loads((FIXTURES / "inspect_partial.json").read_text())
    (tmp_path / "running.json").write_text(json.dumps({**started, "status": "started", "samples": []}))
    (tmp_path / "cut.eval").write_bytes((FIXTURES / "inspect_started.eval").read_bytes()[:-300])
    sal = [json.loads(line) for line in (FIXTURES / "best_of_n_completions.jsonl").read_text().splitlines()]
    sal[1]["scores"] = sal[1]["scores"][:3]
    _write_jsonl(tmp_path / "best_of_n_completions.jsonl", sal)
    _write_jsonl(tmp_path / "completions.jsonl", sal[:1])
    results, samples = _lm_eval_files()
    (tmp_path / "lme_alone").mkdir()
    (tmp_path / "lme_alone" / samples.name).write_bytes(samples.read_bytes())
    (tmp_path / "lme_cut").mkdir()
    (tmp_path / "lme_cut" / results.name).write_bytes(results.read_bytes())
    (tmp_path / "lme_cut" / samples.name).write_bytes(samples.read_bytes()[:-200])
    return {
        "truncated jsonl": ("generic", "truncated.jsonl", {}, r"truncated\.jsonl: record 3: -: not valid JSON .*truncated"),
        "truncated json": ("generic", "truncated.json", {}, r"truncated\.json: record 3: -: not valid JSON.*truncated"),
        "truncated parquet": ("generic", "truncated.parquet", {}, r"truncated\.parquet: record -: -: not a readable Parquet"),
        "truncated yaml": ("monkeys", "monk/7.yaml", {}, r"7\.yaml: record 1: -: not valid YAML.*truncated"),
        "missing column (csv)": (
            "generic", "m.csv", {"columns": {"question_id": "qid", "correct": "verdict"}},
            r"m\.csv: record -: verdict: the mapping's column for correct is not in the file; allowed: qid, ok",
        ),
        "missing column (jsonl)": (
            "generic", "nocol.jsonl", {"columns": {"correct": "ok"}},
            r"nocol\.jsonl: record 2: ok: missing \(the mapping's column for correct\)",
        ),
        "unequal lists (wide)": (
            "generic", "wide.jsonl", {"layout": "wide"},
            r"wide\.jsonl: record 2: correct: 1 values where completion has 2: lists of one question must align",
        ),
        "unequal lists (monkeys)": ("monkeys", "monk/5.yaml", {}, r"5\.yaml: record 1: is_corrects: 1 verdicts for 2 samples"),
        "non-boolean correctness": ("generic", "maybe.jsonl", {}, r"maybe\.jsonl: record 2: correct: 0\.5 is not a correctness value"),
        "non-boolean (monkeys)": ("monkeys", "monk/6.yaml", {}, r"6\.yaml: record 1: is_corrects: 'maybe' is not a correctness value"),
        "in-progress inspect log (.eval)": (
            "inspect", str(FIXTURES / "inspect_started.eval"), {},
            r"inspect_started\.eval: record header\.json: status: missing: the evaluation has not finished",
        ),
        "in-progress inspect log (.json)": (
            "inspect", "running.json", {}, r"running\.json: record -: status: 'started': the evaluation has not finished",
        ),
        "unknown score value (inspect)": (
            "inspect", str(FIXTURES / "inspect_partial.json"), {},
            r"inspect_partial\.json: record samples\[\d+\]: scores\.match\.value: 'P' is not a correctness value; "
            r"allowed: 'C', 1, 'I', 'N', 0",
        ),
        "truncated inspect log (.eval)": ("inspect", "cut.eval", {}, r"cut\.eval: record -: -: not a readable \.eval log"),
        "beam search rows (search-and-learn)": (
            "search_and_learn", str(FIXTURES / "beam_search_completions.jsonl"), {},
            r"beam_search_completions\.jsonl: record -: approach: beam_search rows are the final beams of one search "
            r"\(correlated, padded with copies\), not an i\.i\.d\. pool, and the store has no place for imported "
            r"search results yet; allowed: best_of_n",
        ),
        "dvts rows (search-and-learn)": (
            "search_and_learn", str(FIXTURES / "best_of_n_completions.jsonl"), {"approach": "dvts"},
            r"best_of_n_completions\.jsonl: record -: approach: dvts rows are the final beams",
        ),
        "approach unknown (search-and-learn)": (
            "search_and_learn", "completions.jsonl", {},
            r"completions\.jsonl: record -: approach: not in the file name.*; allowed: best_of_n, beam_search, dvts",
        ),
        "unequal lists (search-and-learn)": (
            "search_and_learn", "best_of_n_completions.jsonl", {},
            r"best_of_n_completions\.jsonl: record 2: scores: 3 score lists for 4 completions: must align",
        ),
        "samples without results (lm-eval)": (
            "lm_eval", f"lme_alone/{samples.name}", {},
            r"samples_arith_rep_\S+\.jsonl: record -: results: no results_\S+\.json given or beside it",
        ),
        "metric the records lack (lm-eval)": (
            "lm_eval", str(samples), {"metric": "acc"},
            r"samples_arith_rep_\S+\.jsonl: record 1: acc: missing: the records hold no such metric; allowed: exact_match",
        ),
        "truncated jsonl (lm-eval)": (
            "lm_eval", f"lme_cut/{samples.name}", {},
            r"samples_arith_rep_\S+\.jsonl: record 12: -: not valid JSON .*truncated",
        ),
    }  # fmt: skip


BAD = [
    "truncated jsonl", "truncated json", "truncated parquet", "truncated yaml", "missing column (csv)",
    "missing column (jsonl)", "unequal lists (wide)", "unequal lists (monkeys)", "non-boolean correctness",
    "non-boolean (monkeys)", "in-progress inspect log (.eval)", "in-progress inspect log (.json)",
    "unknown score value (inspect)", "truncated inspect log (.eval)", "beam search rows (search-and-learn)",
    "dvts rows (search-and-learn)", "approach unknown (search-and-learn)", "unequal lists (search-and-learn)",
    "samples without results (lm-eval)", "metric the records lack (lm-eval)", "truncated jsonl (lm-eval)",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_naming_file_record_and_field_and_writes_nothing(tmp_path, case, capsys):
    fmt, name, options, message = _bad_cases(tmp_path)[case]
    store = _store(tmp_path)
    good = import_files(store, "generic", [_write_jsonl(tmp_path / "ok.jsonl", LONG)])
    _write_jsonl(tmp_path / "ok2.jsonl", [{**r, "question_id": "other-" + r["question_id"]} for r in LONG])
    before = _store_files(store)
    with pytest.raises(ImportFileError, match=message) as err:
        # a bad file after a good one: the good one's rows must not land either
        first = [tmp_path / "ok2.jsonl"] if fmt == "generic" and not options else []
        import_files(store, fmt, [*first, tmp_path / name], options=options)
    assert "\n" not in str(err.value)
    assert _store_files(store) == before  # no shard, no staging folder left
    assert store.query("SELECT DISTINCT run_id FROM samples")["run_id"].tolist() == [good.run_id]
    assert [r["run_id"] for r in store.runs_arrow().to_pylist()] == [good.run_id]


def test_the_cli_prints_the_error_in_one_line(tmp_path, capsys):
    path = _write_jsonl(tmp_path / "maybe.jsonl", [{**LONG[0], "correct": "perhaps"}])
    assert main(["import", "generic", str(path), "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "maybe.jsonl: record 1: correct: 'perhaps' is not a correctness value" in err


# ---- round trip ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_then_import_gives_identical_metrics(tmp_path, suffix, capsys):
    from backend.metrics.coverage import coverage_curve
    from backend.metrics.pools import load_pool
    from backend.metrics.selection import best_of_n_curve, majority_curve
    from bench.synthetic_store import make_synthetic_store

    source = make_synthetic_store(
        tmp_path / "source", n_questions=12, n_samples=8, models=("gemma-3-270m",), verifiers=("prm-synthetic",),
        n_trees=0, truncated=0.1,
    )  # fmt: skip
    run_id = source.query("SELECT DISTINCT run_id FROM samples")["run_id"][0]
    out = tmp_path / f"pool{suffix}"
    assert main(["export", "--format", "generic", run_id, "-o", str(out), "--store", str(source.root)]) == 0
    assert main(["import", "generic", str(out), "--store", str(tmp_path / "copy"), "--model", "gemma-3-270m"]) == 0
    copy = Store.open(tmp_path / "copy")
    copied = copy.query("SELECT DISTINCT run_id FROM samples")["run_id"][0]

    def curves(store, run):
        pool = load_pool(store.connect(), [run], "gemma-3-270m", strategy="sample")
        return [
            coverage_curve(pool, n_boot=0),
            majority_curve(pool, n_boot=0, seed=3),
            best_of_n_curve(pool, "prm-synthetic", n_boot=0),
        ]

    for a, b in zip(curves(source, run_id), curves(copy, copied), strict=True):
        np.testing.assert_array_equal(a.k, b.k)
        np.testing.assert_allclose(b.per_question, a.per_question, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.mean, a.mean, rtol=0, atol=1e-12)
    cols = "question_id, sample_idx, completion, answer, correct, completion_tokens, finish_reason, question_key"
    sql = f"SELECT {cols} FROM samples ORDER BY question_id, sample_idx"
    assert source.query(sql).equals(copy.query(sql))  # the rows themselves, question keys included


def test_readme_has_one_import_command_per_format():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [name for name in IMPORTERS if f"ttc import {name} " not in readme]
    assert not missing, f"README's Import section has no command for {missing}"
