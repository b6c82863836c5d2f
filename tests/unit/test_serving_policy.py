"""`ttc policy freeze`: the frozen cells are the study's (backend/metrics/study.py), checked against its report and a
brute-force choice over its cells; bad studies and bad policy files are refused with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.errors import SpecError, StoreError
from backend.metrics.study import compute_optimal_study
from backend.serving.policy import freeze_policy, load_policy, write_policy
from store import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "studies"
BOOT = 20


def _copy(name: str, tmp: Path) -> Store:
    shutil.copytree(EXAMPLES / name, tmp / name)  # never write into the committed store
    return Store.open(tmp / name, create=False)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    store = _copy("compute-optimal", tmp_path_factory.mktemp("study"))
    con = store.connect()
    policy = freeze_policy(con, store.root, n_bins=5, band_boot=BOOT)
    study = compute_optimal_study(con, policy.runs, policy.model, bins="predicted", n_bins=5, band_boot=BOOT)
    con.close()
    return store, policy, study


def can_serve(configuration: str) -> bool:
    rule = configuration.split("[")[0]
    return " · " in configuration or rule in ("majority", "best_of_n", "weighted_best_of_n")


def test_cells_are_the_studys_choices(frozen):
    _, policy, study = frozen
    report = study.report().set_index(["bin", "budget_flops"])
    cells = study.cells_by_bin()
    order = {name: i for i, name in enumerate(study.table.configurations)}
    assert policy.bins_kind == study.bins.kind and [b.level for b in policy.bins] == [1, 2, 3, 4, 5]
    n_cells = 0
    for b in policy.bins:
        for c in b.cells:
            n_cells += 1
            row = report.loc[(str(b.level), c.budget_flops)]
            assert (c.chosen_fold0, c.chosen_fold1) == (row["chosen_fold0"], row["chosen_fold1"])
            assert c.held_out_accuracy == pytest.approx(row["held_out_accuracy"])
            assert c.interval == pytest.approx((row["cv_lo"], row["cv_hi"]))
            # brute force: among the servable configurations run on every question of the bin, the best mean, first
            # on ties (the pool rules the server draws, and every search)
            here = cells[(cells["bin"] == str(b.level)) & (cells["budget_flops"] == c.budget_flops)]
            full = here[(here["questions"] == here["of_questions"]) & here["configuration"].map(can_serve)]
            best = full[full["accuracy"] >= full["accuracy"].max() - 1e-12]
            assert c.configuration == min(best["configuration"], key=order.__getitem__)
        # a budget no servable configuration covers is left out; every one that some configuration covers is kept
        covered = cells[
            (cells["bin"] == str(b.level))
            & (cells["questions"] == cells["of_questions"])
            & cells["configuration"].map(can_serve)
        ]
        assert [c.budget_flops for c in b.cells] == sorted(covered["budget_flops"].unique())
    assert n_cells > 0


def test_a_best_configuration_the_server_cannot_run_is_named_in_the_notes(frozen):
    """The committed study picks rules the server does not draw yet (a confidence rule) in some cells: each such
    cell serves the best servable configuration, and the notes say which was better and what is served instead."""
    _, policy, study = frozen
    cells = study.cells_by_bin()
    skipped = [n for n in policy.notes if "the server cannot run it yet" in n]
    for b in policy.bins:
        for c in b.cells:
            here = cells[(cells["bin"] == str(b.level)) & (cells["budget_flops"] == c.budget_flops)]
            full = here[here["questions"] == here["of_questions"]]
            top = full[full["accuracy"] >= full["accuracy"].max() - 1e-12]["configuration"]
            if not any(can_serve(x) for x in top):
                assert any(
                    n.startswith(f"bin {b.level} at ") and f"served instead: {c.configuration}" in n for n in skipped
                )


def test_search_cells_carry_the_stored_record(frozen):
    store, policy, _ = frozen
    con = store.connect()
    stored = {
        json.loads(c)["budget_flops"]: json.loads(c) for (c,) in con.execute("SELECT config FROM nodes").fetchall()
    }
    con.close()
    searches = [c for b in policy.bins for c in b.cells if c.kind == "search"]
    assert searches
    for c in searches:
        assert c.verifier == policy.verifier
        assert (
            c.config["max_tokens"] in (48, policy.spec["max_tokens"])
            and "budget_flops" not in c.config
            and "seed" not in c.config
        )
        assert any(c.budget_flops == pytest.approx(b) for b in stored)


def test_thresholds_put_every_study_question_in_its_bin(frozen):
    _, policy, study = frozen
    served = np.array([policy.bin_of(v) for v in study.bins.value])
    assert (served == study.bins.level).all()


def test_pool_cells_run_the_strategy_of_their_rule(frozen):
    _, policy, study = frozen
    pools = [c for b in policy.bins for c in b.cells if c.kind == "pool"]
    assert pools
    for c in pools:
        assert c.strategy == c.configuration.split("[")[0]
        assert (
            1 <= c.config["n"] <= 8
            and c.config["max_tokens"] == policy.spec["max_tokens"] == 256
            and c.config["temperature"] == 0.8
        )


def test_version_round_trip_and_tampering(frozen, tmp_path):
    _, policy, _ = frozen
    path = tmp_path / "policy.json"
    write_policy(policy, path)
    assert load_policy(path) == policy
    data = json.loads(path.read_text())
    data["bins"][0]["cells"][0]["config"]["n"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError, match="does not match its version"):
        load_policy(path)
    data["surprise"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError, match="surprise: Extra inputs are not permitted"):
        load_policy(path)
    path.write_text("{not json")
    with pytest.raises(SpecError, match="is not JSON"):
        load_policy(path)
    with pytest.raises(SpecError, match="cannot read"):
        load_policy(tmp_path / "missing.json")


def test_a_study_scored_by_the_oracle_is_refused(tmp_path):
    store = _copy("compute-optimal-oracle", tmp_path)
    con = store.connect()
    with pytest.raises(StoreError, match="from verifier 'oracle', which needs ground truth"):
        freeze_policy(con, store.root, band_boot=0)
    con.close()


def test_a_study_without_verifier_scores_is_refused(tmp_path):
    store = _copy("compute-optimal", tmp_path)
    shutil.rmtree(store.root / "scores")  # no verifier scored the pool: only oracle bins can be formed
    con = store.connect()
    with pytest.raises(StoreError, match=r"supports only oracle bins \(predicted difficulty needs a verifier"):
        freeze_policy(con, store.root, band_boot=0)
    con.close()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--n-bins", "0"], "--n-bins: 0 bins"),
        (["--pilot-samples", "0"], "--pilot-samples: 0"),
        (["--model", "nope"], "--model: 'nope' has no samples"),
        (["--run", "nope"], "--run: no samples in run(s) nope"),
    ],
)
def test_bad_flags_write_nothing(tmp_path, capsys, flags, message):
    store = _copy("compute-optimal", tmp_path)
    out = tmp_path / "policy.json"
    code = main(["policy", "freeze", "--store", str(store.root), "--band-boot", "0", *flags, "-o", str(out)])
    assert code == 2 and message in capsys.readouterr().err and not out.exists()
