"""Every page renders without an exception on an empty and on a populated store; the Run form rejects bad
input with an error naming the field and queues good input; every export's bytes are a valid file."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import APP, PAGES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _app(monkeypatch, store_dir, page: str | None = None) -> AppTest:
    monkeypatch.setenv("TTC_STORE", str(store_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.error] + [e.value for e in at.warning]
    parts += [e.value for e in at.info] + [e.value for e in at.caption] + [e.value for e in at.title]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_empty_store(monkeypatch, empty_store, page):
    at = _app(monkeypatch, empty_store, page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    if page == "app_pages/serving.py":  # served requests need no samples: its own empty state
        assert "Nothing has been served into this store yet" in _texts(at)
    elif page != "app_pages/run.py":
        assert "worker writes its first samples" in _texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_populated_store(monkeypatch, populated_store, page):
    at = _app(monkeypatch, populated_store, page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert "worker writes its first samples" not in _texts(at)


def test_run_form_bad_json_names_the_field_and_queues_nothing(monkeypatch, populated_store):
    from store import Store

    before = len(Store.open(populated_store, create=False).runs_arrow())
    at = _app(monkeypatch, populated_store, "app_pages/run.py")
    at.text_area(key="rg_config_basic_arithmetic").set_value("{not json").run()
    at.button(key="queue").click().run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("task.datasets[0].config: not valid JSON") for e in errors), errors
    assert len(Store.open(populated_store, create=False).runs_arrow()) == before


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("run_name", "bad name!", "name: String should match pattern"),
        ("spq", 0, "samples_per_question: Input should be greater than 0"),
        ("temperature", 9.0, "temperature: Input should be less than or equal to 5"),
    ],
)
def test_run_form_rejects_bad_field(monkeypatch, populated_store, key, value, message):
    from store import Store

    before = len(Store.open(populated_store, create=False).runs_arrow())
    at = _app(monkeypatch, populated_store, "app_pages/run.py")
    widget = at.text_input(key=key) if key == "run_name" else at.number_input(key=key)
    widget.set_value(value).run()
    at.button(key="queue").click().run()
    errors = [e.value for e in at.error]
    assert any(e.startswith(message) for e in errors), errors
    assert not at.exception
    assert len(Store.open(populated_store, create=False).runs_arrow()) == before


def test_run_form_unknown_knob_is_rejected_by_the_task(monkeypatch, populated_store):
    at = _app(monkeypatch, populated_store, "app_pages/run.py")
    at.text_area(key="rg_config_basic_arithmetic").set_value(json.dumps({"max_digitz": 2})).run()
    at.button(key="queue").click().run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("task.datasets[0].config.max_digitz: not a basic_arithmetic setting") for e in errors), (
        errors
    )


def test_run_form_queues_a_valid_run(monkeypatch, tmp_path):
    from store import Store

    store_dir = tmp_path / "fresh"
    at = _app(monkeypatch, store_dir, "app_pages/run.py")
    at.multiselect(key="run_models").set_value(["gemma-3-270m"]).run()
    at.text_area(key="rg_config_basic_arithmetic").set_value(
        json.dumps({"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    ).run()
    at.number_input(key="rg_size_basic_arithmetic").set_value(2).run()
    at.number_input(key="spq").set_value(2).run()
    at.number_input(key="max_tokens").set_value(16).run()
    at.button(key="queue").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    runs = Store.open(store_dir, create=False).runs_arrow().to_pylist()
    assert len(runs) == 1 and runs[0]["status"] == "queued" and runs[0]["total_samples"] == 4
    assert runs[0]["run_id"] in at.success[0].value


def test_run_form_prices_budgets_with_the_models_tokenizer_as_the_run_does(monkeypatch, tmp_path):
    """The Run page's "what these budgets buy" is backend.pricing's, on the form's questions counted by the model's
    tokenizer: a budget of exactly one sample reads 1.00 samples and buys one."""
    from backend.models.registry import resolve_model
    from backend.pricing import model_token_counter, one_sample_flops, task_prompt_tokens

    task = {
        "kind": "reasoning_gym",
        "datasets": [{"name": "basic_arithmetic", "size": 2, "config": {"min_terms": 2, "max_terms": 2}, "level": 0.0}],
    }
    model = resolve_model("gemma-3-270m")
    one = one_sample_flops(model.arch, task_prompt_tokens(task, 0, model, model_token_counter(model)), 16)
    at = _app(monkeypatch, tmp_path / "fresh", "app_pages/run.py")
    at.multiselect(key="run_models").set_value(["gemma-3-270m"]).run()
    at.text_area(key="rg_config_basic_arithmetic").set_value(json.dumps({"min_terms": 2, "max_terms": 2})).run()
    at.number_input(key="rg_size_basic_arithmetic").set_value(2).run()
    at.number_input(key="max_tokens").set_value(16).run()
    at.text_input(key="budgets").set_value(f"{one!r}").run()
    at.toggle(key="price_budgets").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    table = at.dataframe[0].value
    assert table["in samples"].tolist() == ["1.00"] and table["samples per question"].tolist() == [1]
    assert any(f"1 sample = {one:.3g} FLOPs" in c.value for c in at.caption)


def test_run_form_queues_an_adaptive_run_and_refuses_a_bad_one(monkeypatch, tmp_path):
    from store import Store

    store_dir = tmp_path / "fresh"
    at = _app(monkeypatch, store_dir, "app_pages/run.py")
    at.multiselect(key="run_models").set_value(["gemma-3-270m"]).run()
    at.number_input(key="rg_size_basic_arithmetic").set_value(3).run()
    at.number_input(key="spq").set_value(16).run()
    at.toggle(key="adaptive").set_value(True).run()
    at.number_input(key="adaptive_budget").set_value(6.0).run()
    at.selectbox(key="adaptive_stop").set_value("supermajority").run()
    at.number_input(key="adaptive_level").set_value(0.4).run()  # a share of at most half settles nothing
    at.button(key="queue").click().run()
    assert any(str(e.value).startswith("adaptive.supermajority: Input should be greater than 0.5") for e in at.error)
    assert not Store.open(store_dir, create=True).runs_arrow().to_pylist()  # nothing queued
    at.number_input(key="adaptive_level").set_value(0.8).run()
    at.button(key="queue").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [run] = Store.open(store_dir, create=False).runs_arrow().to_pylist()
    spec = json.loads(run["spec_json"])
    a = spec["adaptive"]
    assert (a["total_budget"], a["per_question"], a["stop"], a["supermajority"]) == (6.0, True, "supermajority", 0.8)
    assert spec["samples_per_question"] == 16


def test_selection_lives_in_the_url(monkeypatch, populated_store):
    monkeypatch.setenv("TTC_STORE", str(populated_store))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/coverage.py")
    at.query_params["x"] = "tokens"
    at.run()
    assert at.radio(key="x").value == "tokens"
    at.radio(key="x").set_value("flops").run()
    assert at.query_params["x"] in ("flops", ["flops"])


# ---- exports --------------------------------------------------------------------------------------------------
@pytest.fixture
def captured_downloads(monkeypatch):
    """Keep each AppTest run's media file manager so a deferred download can be generated as a click would."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.media_file_manager import MediaFileManager

    managers: list[MediaFileManager] = []

    class Recording(MediaFileManager):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            managers.append(self)

    monkeypatch.setattr(app_test, "MediaFileManager", Recording)
    return managers


def _download(at: AppTest, managers, key: str) -> bytes:
    button = at.get("download_button")
    proto = next(b.proto for b in button if b.proto.id.endswith(key) or key in b.proto.id)
    entry = managers[-1]._deferred_callables[proto.deferred_file_id]
    fn = entry["callable"] if isinstance(entry, dict) else entry.callable
    data = fn()
    return data.encode() if isinstance(data, str) else data


def test_exports_are_valid_files(monkeypatch, populated_store, captured_downloads):
    at = _app(monkeypatch, populated_store, "app_pages/coverage.py")
    assert not at.exception
    png = _download(at, captured_downloads, "dl_coverage_png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    svg = _download(at, captured_downloads, "dl_coverage_svg")
    assert b"<svg" in svg[:2000]
    html = _download(at, captured_downloads, "dl_coverage_html")
    assert html.lower().startswith(b"<!doctype html>") and html.rstrip().endswith(b"</html>")
    assert len(html) > 1_000_000 and b'<script src="http' not in html  # self-contained: plotly.js inlined
    csv = _download(at, captured_downloads, "dl_coverage-table_csv")
    df = pd.read_csv(io.BytesIO(csv))
    assert {"model", "k", "coverage"} <= set(df.columns) and len(df) > 0
    parquet = _download(at, captured_downloads, "dl_coverage-table_parquet")
    assert parquet[:4] == b"PAR1"
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(parquet)).reset_index(drop=True), df, check_dtype=False)


def _points(trace: dict) -> int:
    """How many points a trace of the figure sent to the browser plots (arrays may arrive base64-encoded)."""
    x = trace.get("x")
    if isinstance(x, dict):
        return len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize
    return len(x or [])


def test_strategies_chart_csv_holds_what_is_plotted_and_no_hidden_line(
    monkeypatch, populated_store, captured_downloads
):
    at = _app(monkeypatch, populated_store, "app_pages/strategies.py")
    at.radio(key="x").set_value("flops").run()
    assert not at.exception and not at.error
    csv = pd.read_csv(io.BytesIO(_download(at, captured_downloads, "dl_strategies_csv")))
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    drawn = [t for t in fig["data"] if not (t.get("meta") or {}).get("band_of")]
    assert len(csv[csv["kind"] != "reference"]) == sum(_points(t) for t in drawn)
    assert {"flops_per_question", "accuracy", "accuracy_low", "accuracy_high", "budget_flops_per_question"} <= set(
        csv.columns
    )
    assert {"coverage", "majority", "best_of_n", "beam_search", "lookahead", "sequential_revisions"} <= set(
        csv["strategy"]
    )
    searches = csv[csv["kind"] == "search"]
    assert set(searches["verifier"]) == {"prm-synthetic"} and searches["budget_flops_per_question"].notna().all()

    hide = at.multiselect(key="hide_strategies")
    label = next(o for o in hide.options if "beam_search" in o)
    hide.set_value([label]).run()
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    greyed = [t for t in fig["data"] if t.get("visible") == "legendonly"]
    assert greyed and all("beam_search" in t["legendgroup"] for t in greyed)
    after = pd.read_csv(io.BytesIO(_download(at, captured_downloads, "dl_strategies_csv")))
    gone = after["configuration"].fillna("").str.startswith("beam_search") & (
        after["model"] == greyed[0]["meta"]["model"]
    )
    assert not gone.any() and len(after) < len(csv)


def test_strategy_controls_come_from_the_registry_table(monkeypatch, populated_store):
    """The strategies' controls are generated from their options models by the form generator every kind uses."""
    from backend.strategies import STRATEGIES as table

    name = next(iter(table))
    at = _app(monkeypatch, populated_store, "app_pages/run.py")
    at.multiselect(key="strategies").set_value([name]).run()
    assert not at.exception
    for key in table[name].options.model_fields:  # one widget per parameter of the model, keyed by it
        assert any(
            w.key == f"strat_{name}_{key}" for w in at.get("selectbox") + at.get("text_input") + at.get("checkbox")
        )
    assert at.text_input(key=f"strat_{name}_delimiter").value == "\\n\\n"  # a blank line, shown on one line
    at.text_input(key=f"strat_{name}_n").set_value("0").run()
    assert [e.value for e in at.error] == ["strategy.n: 0 is out of range; allowed: int in [1, 4096]"]


def test_empty_store_panel_leads_to_the_run_page(monkeypatch, empty_store):
    at = _app(monkeypatch, empty_store, "app_pages/coverage.py")
    at.button(key="_goto_run").click().run()
    assert not at.exception
    assert at.title[0].value == "Run"


def test_run_form_queues_strategies_with_verifiers_and_budgets(monkeypatch, tmp_path):
    from store import Store

    store_dir = tmp_path / "fresh"
    at = _app(monkeypatch, store_dir, "app_pages/run.py")
    at.multiselect(key="run_models").set_value(["gemma-3-270m"]).run()
    at.number_input(key="rg_size_basic_arithmetic").set_value(2).run()
    at.number_input(key="spq").set_value(2).run()
    at.multiselect(key="verifiers").set_value(["self_verify"]).run()
    at.multiselect(key="strategies").set_value(["beam_search"]).run()
    at.text_input(key="budgets").set_value("1e11, 3e11").run()
    at.button(key="queue").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    spec = json.loads(Store.open(store_dir, create=False).runs_arrow().to_pylist()[0]["spec_json"])
    assert spec["verifiers"] == ["self_verify"] and spec["strategies"][0]["name"] == "beam_search"
    assert (spec["budgets"], spec["budget_unit"]) == ([1e11, 3e11], "flops")


def test_run_form_strategy_without_verifier_is_refused(monkeypatch, tmp_path):
    store_dir = tmp_path / "fresh"
    at = _app(monkeypatch, store_dir, "app_pages/run.py")
    at.multiselect(key="run_models").set_value(["gemma-3-270m"]).run()
    at.multiselect(key="strategies").set_value(["beam_search"]).run()
    at.button(key="queue").click().run()
    assert any(e.value.startswith("strategies[0].verifier: beam_search needs a verifier") for e in at.error), [
        e.value for e in at.error
    ]
    assert (
        not (store_dir / "catalog.sqlite").exists()
        or not __import__("store").Store.open(store_dir, create=False).runs_arrow().num_rows
    )


def test_strategies_page_shows_auroc_and_warns_of_a_verifier_worse_than_chance(monkeypatch, tmp_path):
    from bench.synthetic_store import make_synthetic_store

    root = tmp_path / "store"
    make_synthetic_store(
        root,
        n_questions=20,
        n_samples=8,
        models=("qwen2.5-coder-0.5b-instruct",),
        verifiers=("prm-synthetic", "self-verify"),
        inverted_verifiers=("self-verify",),
        seed=2,
    )
    at = _app(monkeypatch, root, "app_pages/strategies.py")
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "auroc" in df.value.columns)
    auroc = dict(zip(table["verifier"], table["auroc"]))
    assert auroc["prm-synthetic"] > 0.7 and auroc["self-verify"] < 0.3
    warnings = [str(w.value) for w in at.warning]
    assert len(warnings) == 1 and "self-verify" in warnings[0] and "worse than picking at random" in warnings[0]


# ---- compute-optimal over every strategy ----------------------------------------------------------------------
def _figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _values(array) -> np.ndarray:
    """A trace's numbers: plotly writes numpy arrays as base64 with their dtype."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def test_compute_optimal_heat_map_chooses_among_searches_and_pool_rules(monkeypatch, populated_store):
    at = _app(monkeypatch, populated_store, "app_pages/compute_optimal.py")
    at.multiselect(key="models").set_value(at.multiselect(key="models").options).run()  # the Run page chose one
    at.selectbox(key="model").set_value("gemma-3-270m").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    heat = next(f["data"][0] for f in _figures(at) if f["data"][0]["type"] == "heatmap")
    picked = {
        cell.removesuffix(" (n.s.)") for row in heat["text"] for cell in row
    }  # n.s.: no clear edge on the baseline
    assert {"beam_search", "sequential_revisions 1:1"} <= picked, picked  # searches ...
    assert picked & {"majority", "best_of_n", "deepconf_weighted", "deepconf_filtered"}, picked  # ... and pool rules
    assert all("sample" in x for x in heat["x"])  # a budget says what it buys ("1 sample" is singular)
    sweep = next(f["data"] for f in _figures(at) if "sequential:parallel" in f["layout"]["title"]["text"])
    assert all(t["x"] == ["3:1", "1:1"] for t in sweep)  # one line per bin, more sequential to the left
    assert any("ran without a budget" in str(i.value) for i in at.info)  # the store's unbudgeted trees, said so
    # the chart of every configuration per bin is drawn once its expander is opened, not before
    by_bin = "Accuracy against FLOPs per difficulty bin"
    assert not any(f["layout"]["title"]["text"].startswith(by_bin) for f in _figures(at))
    at.session_state["by_bin_open"] = True
    at.run()
    fig = next(f for f in _figures(at) if f["layout"]["title"]["text"].startswith(by_bin))
    groups = {t["legendgroup"] for t in fig["data"]}
    assert "majority" in groups and any(g.startswith("beam_search") for g in groups), groups
    # so is the FLOPs-matched comparison with a larger model; a link that sets its numbers opens it
    same = "Same total FLOPs"
    assert not any(f["layout"]["title"]["text"].startswith(same) for f in _figures(at))
    at.session_state["flops_matched_open"] = True
    at.run()
    assert any(f["layout"]["title"]["text"].startswith(same) for f in _figures(at))
    linked = _app(monkeypatch, populated_store)
    linked.query_params["R"] = "0.5"
    linked.switch_page("app_pages/compute_optimal.py").run()
    assert any(f["layout"]["title"]["text"].startswith(same) for f in _figures(linked))


def test_compute_optimal_says_what_the_cross_validation_holds_out(monkeypatch, populated_store):
    at = _app(monkeypatch, populated_store, "app_pages/compute_optimal.py")
    captions = " ".join(str(c.value) for c in at.caption)
    assert "Held out: only the choice of configuration" in captions and "scoring half included" in captions
    assert "honest" not in captions
    at.radio(key="bins").set_value("predicted").run()
    captions = " ".join(str(c.value) for c in at.caption)
    assert "mean verifier score over all its pool's samples" in captions and "no budget is charged" in captions
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]


def test_compute_optimal_draws_the_cross_validated_curves_bootstrap_band_and_the_gaps_interval(
    monkeypatch, populated_store
):
    at = _app(monkeypatch, populated_store, "app_pages/compute_optimal.py")
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    fig = next(f for f in _figures(at) if f["layout"]["title"]["text"].startswith("Compute-optimal against"))
    by_name = {t.get("name"): t for t in fig["data"]}
    cv = _values(by_name["compute-optimal (cross-validated)"]["y"])
    low = by_name["compute-optimal, 95% band"]
    assert low["fill"] == "tonexty"
    high = fig["data"][fig["data"].index(low) - 1]  # the edge the fill reaches up to
    lo, hi = _values(low["y"]), _values(high["y"])
    shown = np.isfinite(cv)
    assert shown.any() and np.array_equal(np.isfinite(lo), shown) and np.array_equal(np.isfinite(hi), shown)
    assert (lo[shown] <= hi[shown]).all() and (hi[shown] - lo[shown]).max() > 0  # a band, not a line
    table = next(d.value for d in at.dataframe if "gap_lo" in d.value.columns)
    whole = table[table["bin"] == "all"]
    np.testing.assert_allclose(whole["cv_lo"].to_numpy(), lo, equal_nan=True)
    np.testing.assert_allclose(whole["cv_hi"].to_numpy(), hi, equal_nan=True)
    ok = whole["gap"].notna()
    assert ok.any() and (whole["gap_lo"][ok] <= whole["gap_hi"][ok]).all()
    assert {"vs_baseline_ci_low", "held_out_accuracy", "efficiency"} <= set(table.columns)  # the old columns stay
    captions = " ".join(str(c.value) for c in at.caption)
    row = whole[ok].iloc[-1]
    assert f"{row.gap:+.2f} ({row.gap_lo:+.2f} to {row.gap_hi:+.2f})" in captions
    assert "re-make the choice on every resample" in captions
    heat = next(f["data"][0] for f in _figures(at) if f["data"][0]["type"] == "heatmap")
    assert "gap (bootstrap band" in heat["hovertemplate"]
    per_bin = table[table["bin"] != "all"].reset_index(drop=True)
    shown_gaps = [cell[5] for row in heat["customdata"] for cell in row]  # bin-major, as the report's rows
    assert len(shown_gaps) == len(per_bin) > 0
    for text, row in zip(shown_gaps, per_bin.itertuples()):
        assert text == ("—" if np.isnan(row.gap) else f"{row.gap:+.2f} ({row.gap_lo:+.2f} to {row.gap_hi:+.2f})")


def test_compute_optimal_says_whether_a_difference_is_real(monkeypatch, populated_store):
    at = _app(monkeypatch, populated_store, "app_pages/compute_optimal.py")
    at.multiselect(key="models").set_value(at.multiselect(key="models").options).run()
    at.selectbox(key="model").set_value("gemma-3-270m").run()
    assert at.selectbox(key="pair_a").value == "compute-optimal (cross-validated)"
    assert at.selectbox(key="pair_b").value == "best_of_n[prm-synthetic]"  # the study's baseline
    fig = next(f for f in _figures(at) if f["layout"]["title"]["text"].startswith("A − B at matched compute"))
    shown = {t["name"] for t in fig["data"] if t.get("name")}
    assert shown and shown <= {"significant", "not significant"}
    table = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert len(table) == 3 and table["verdict"].str.match(r"^(A better|B better|not significant|no difference)").all()
    assert (table["ci_low"] <= table["difference"]).all() and (table["difference"] <= table["ci_high"]).all()
    at.selectbox(key="pair_bin").set_value("1").run()
    smaller = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert (smaller["questions_paired"] < table["questions_paired"]).all()  # one bin's questions
    at.selectbox(key="pair_b").set_value("compute-optimal (cross-validated)").run()
    assert any("Pick two different configurations" in str(i.value) for i in at.info)
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]


def test_strategies_page_compares_two_configurations_at_matched_flops(monkeypatch, populated_store):
    at = _app(monkeypatch, populated_store, "app_pages/strategies.py")
    a, b = at.selectbox(key="strat_pair_a"), at.selectbox(key="strat_pair_b")
    assert a.value.startswith("beam_search") and b.value == "best_of_n[prm-synthetic]"  # a search against best-of-N
    assert set(a.options) >= {"majority", "best_of_n[prm-synthetic]"} and any("lookahead" in o for o in a.options)
    table = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert (table["a"] == a.value).all() and (table["questions_paired"] > 0).any()
    a.set_value("majority").run()
    again = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert (again["a"] == "majority").all() and again["questions_paired"].min() > 0  # pool rules run everywhere
    assert at.query_params["strat_pair_a"] == "majority"  # a shareable link
    # the confidence-aware rules are offered where the whole table has them, and compared once picked (the page
    # evaluates them at every budget only then), as the Compute-optimal page's study compares them
    from backend.metrics.paired import compare_configurations
    from backend.metrics.study import study_inputs
    from store import Store

    model = at.selectbox(key="pair_model").value  # the model whose configurations are compared
    con = Store.open(populated_store, create=False).connect()
    try:
        whole = study_inputs(con, list(at.multiselect(key="runs").value), model, verifier="prm-synthetic").table
    finally:
        con.close()
    assert list(at.selectbox(key="strat_pair_a").options) == whole.configurations
    at.selectbox(key="strat_pair_a").set_value("deepconf_filtered").run()
    picked = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    expected = compare_configurations(whole, "deepconf_filtered", "best_of_n[prm-synthetic]")
    pd.testing.assert_frame_equal(picked.reset_index(drop=True), expected, check_dtype=False)
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]


def test_strategies_page_draws_search_curves_on_the_samples_axis(monkeypatch, populated_store):
    at = _app(monkeypatch, populated_store, "app_pages/strategies.py")
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert at.radio(key="x").value == "samples"
    fig = next(f for f in _figures(at) if any("sequential_revisions" in (t.get("name") or "") for t in f["data"]))
    curves = [t for t in fig["data"] if "beam_search" in (t.get("name") or "")]
    assert curves and curves[0]["mode"] == "lines+markers"
    x = _values(curves[0]["x"])
    # spend in the spec's samples (one prefill + max_tokens 512 each: the fixture's short completions make a search's
    # spend a fraction of one), within the pool
    assert len(x) == 3 and np.all(np.diff(x) > 0) and 0 < x[0] < x[-1] < 16
    for unit in ("tokens", "flops"):
        at.radio(key="x").set_value(unit).run()
        beam = next(t for f in _figures(at) for t in f["data"] if "beam_search" in (t.get("name") or ""))
        assert len(_values(beam["x"])) == 3 and np.isfinite(_values(beam["x"])).all(), (
            unit
        )  # the fixture's nodes: equal tokens per budget


def test_run_form_offers_a_registered_task_engine_verifier_and_strategy_with_their_options(
    monkeypatch, populated_store
):
    """The toys of tests/unit/test_extensions.py, registered through the public registries, appear in the Run form
    with widgets generated from their options models, and a bad option is refused naming its field."""
    from backend.engines import register_engine
    from backend.strategies import register_strategy
    from backend.tasks import register_task
    from backend.verifiers import register_verifier
    from tests.unit.test_extensions import TOY_ENGINE, TOY_STRATEGY, TOY_TASK, TOY_VERIFIER, TOYS

    register_task(TOY_TASK), register_engine(TOY_ENGINE), register_verifier(TOY_VERIFIER)
    register_strategy(TOY_STRATEGY)
    try:
        at = _app(monkeypatch, populated_store, "app_pages/run.py")
        assert "toy" in at.radio(key="suite").options and "toy_engine" in at.radio(key="engine").options
        at.radio(key="suite").set_value("toy").run()
        at.radio(key="engine").set_value("toy_engine").run()
        at.multiselect(key="verifiers").set_value(["toy_verifier"]).run()
        assert not at.exception, [e.value for e in at.exception]
        assert (
            at.text_input(key="task_toy_n").value == "2"
            and at.text_input(key="engine_toy_engine_reply").value == "Answer: 1"
        )
        at.text_input(key="task_toy_n").set_value("11").run()
        assert any(str(e.value).startswith("task.n: Input should be less than or equal to 10") for e in at.error)
        at.text_input(key="task_toy_n").set_value("3").run()
        at.text_input(key="verifier_toy_verifier_score").set_value("2").run()
        assert any(
            str(e.value).startswith("verifiers[0].score: Input should be less than or equal to 1") for e in at.error
        )
        at.text_input(key="verifier_toy_verifier_score").set_value("0.5").run()
        at.multiselect(key="strategies").set_value(["toy_strategy"]).run()
        assert at.text_input(key="strat_toy_strategy_n").value == "2"
        assert at.selectbox(key="strat_toy_strategy_pick").options == ["last", "first"]
        at.text_input(key="strat_toy_strategy_n").set_value("9").run()
        assert [e.value for e in at.error] == ["strategy.n: 9 is out of range; allowed: int in [1, 8]"]
    finally:
        for registry, entry in TOYS:
            registry.unregister(entry.name)


def test_run_page_shows_an_adaptive_runs_allocation(monkeypatch, tmp_path):
    from tests.unit.test_adaptive_run import Engine, _run

    prepared, store = _run(tmp_path, "store", Engine())
    at = _app(monkeypatch, store.root)
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert at.selectbox(key="alloc").value == f"{prepared.run_id} · scripted"
    heat = next(f["data"][0] for f in _figures(at) if f["layout"]["title"]["text"].startswith("Samples given per"))
    assert heat["y"][0] == "easy"  # the settled question first
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Questions settled"] == "1 of 4"
    spent, total = (float(x) for x in metrics["FLOPs spent / budget"].split(" / "))
    assert spent <= total
    decisions = next(d.value for d in at.dataframe if "remaining_flops" in d.value.columns)
    assert set(decisions["reason"]) >= {"first_round", "settled", "open"}


# ---- coverage forecasts ---------------------------------------------------------------------------------------
def _forecast_traces(at: AppTest, suffix: str) -> tuple[list[dict], list[dict]]:
    """(lines, bands) of the Coverage chart whose name ends with `suffix`."""
    fig = next(f for f in _figures(at) if f["layout"]["title"]["text"].startswith("Coverage"))
    named = [t for t in fig["data"] if (t.get("name") or "").endswith(suffix)]
    return [t for t in named if "fill" not in t], [t for t in named if t.get("fill") == "toself"]


def test_coverage_page_shows_both_forecasts_with_bands_to_ten_times_the_pool(monkeypatch, populated_store):
    at = _app(monkeypatch, populated_store, "app_pages/coverage.py")
    at.multiselect(key="models").set_value(at.multiselect(key="models").options).run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert at.number_input(key="kmax").value == 160  # the populated store holds 16 samples per question
    for suffix in (" power law", " beta"):
        lines, bands = _forecast_traces(at, suffix)
        assert len(lines) == len(bands) == 2, suffix  # one per model, each with its band beyond the pool
        for line, band in zip(lines, bands):
            k, y = _values(line["customdata"]), _values(line["y"])
            assert k[0] == pytest.approx(1) and k[-1] == pytest.approx(160)
            edge = _values(band["y"])  # the band's upper edge out, its lower edge back
            high, low = edge[: len(edge) // 2], edge[len(edge) // 2 :][::-1]
            assert np.all(np.isfinite(edge)) and np.all(low <= high)
            assert low[-1] <= y[-1] <= high[-1] and high[-1] - low[-1] > 0
            assert _values(band["x"]).min() > _values(line["x"])[0]  # the band covers only the extrapolated part
    table = next(df.value for df in at.dataframe if "alpha" in df.value.columns)
    assert {"a", "b", "alpha", "beta", "power_law_at_k_max", "beta_at_k_max"} <= set(table.columns)
    assert (table["k_max"] == 160).all() and table["alpha"].gt(0).all()
    caption = " ".join(str(c.value) for c in at.caption)
    assert "Schaeffer et al. 2025" in caption and "trusts" in caption

    at.number_input(key="kmax").set_value(5000).run()  # asked further
    lines, _ = _forecast_traces(at, " beta")
    assert _values(lines[0]["customdata"])[-1] == pytest.approx(5000)
    assert at.query_params["kmax"] in ("5000", ["5000"])


def test_compute_optimal_opens_with_one_answer_per_budget(monkeypatch, populated_store):
    """The first thing under the controls: one line per budget, largest first, naming the winner, its held-out
    accuracy and whether its gap to the baseline is significant; the efficiency says why where it is undefined."""

    at = _app(monkeypatch, populated_store, "app_pages/compute_optimal.py")
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    texts = [str(m.value) for m in at.markdown]
    first = next(i for i, t in enumerate(texts) if t.startswith("**Which configuration wins at each budget"))
    lines = texts[first + 1].splitlines()
    table = next(d.value for d in at.dataframe if "gap_lo" in d.value.columns)
    whole = table[table["bin"] == "all"]
    assert len(lines) == len(whole) > 1
    assert all(line.startswith("- **At ") for line in lines)
    flops = [float(line.removeprefix("- **At ").split(" FLOPs")[0]) for line in lines]
    assert flops == sorted(flops, reverse=True)  # the largest budget first
    top = whole.sort_values("budget_flops").iloc[-1]
    assert f"held-out accuracy {top['held_out_accuracy']:.2f}" in lines[0]
    assert ("**significant**" if top["vs_baseline_significant"] else "**not significant**") in lines[0]
    assert "Best efficiency vs" in texts[first + 2]
    heat = next(f["data"][0] for f in _figures(at) if f["data"][0]["type"] == "heatmap")
    assert all("FLOPs" in x and "sample" in x for x in heat["x"])


@pytest.mark.parametrize(
    "raw, message",
    [
        ("1e12,,2e12", "budgets: item 2 of '1e12,,2e12' is empty; allowed: comma-separated positive FLOP counts"),
        ("1e30", "budgets: 1e+30 FLOPs per question would buy "),
    ],
)
def test_run_form_refuses_an_empty_budget_item_and_a_budget_beyond_the_sample_limit(
    monkeypatch, tmp_path, raw, message
):
    """One line naming the item or the cost, and no "Use … samples per question" offer."""
    at = _app(monkeypatch, tmp_path / "fresh", "app_pages/run.py")
    at.multiselect(key="run_models").set_value(["gemma-3-270m"]).run()
    at.text_input(key="budgets").set_value("1e12").run()
    at.toggle(key="price_budgets").set_value(True).run()
    assert [b for b in at.button if "samples per question" in str(b.label)]  # a good budget offers its pool size
    at.text_input(key="budgets").set_value(raw).run()
    errors = [str(e.value) for e in at.error]
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.startswith(message) for e in errors), errors
    if raw == "1e30":
        assert "samples per question (the samples_per_question limit), i.e. up to" in errors[0]
    assert not [b for b in at.button if "samples per question" in str(b.label)]


def _strategies_figure(at: AppTest) -> dict:
    return next(f for f in _figures(at) if f["layout"]["title"]["text"].startswith("Accuracy against compute"))


def test_strategies_page_filters_configurations_and_keeps_the_filter_in_the_url(monkeypatch, populated_store):
    at = _app(monkeypatch, populated_store, "app_pages/strategies.py")
    families = at.multiselect(key="families")
    assert {"coverage (oracle)", "majority", "beam_search", "lookahead", "sequential_revisions"} <= set(
        families.options
    )
    assert families.value == families.options  # every configuration by default
    families.set_value(["majority", "beam_search"]).run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    names = {  # a legend label is short (backend/visual.py); its group is the full "model · configuration"
        t["legendgroup"]
        for t in _strategies_figure(at)["data"]
        if t.get("legendgroup") and t.get("showlegend") is not False
    }
    assert names and all(n.split(" · ", 1)[1].split("[")[0] in ("majority", "beam_search") for n in names), names
    assert any("beam_search" in n for n in names) and any(n.endswith("· majority") for n in names)
    assert at.query_params["families"] == ["majority", "beam_search"]  # a shareable link
    table = next(d.value for d in at.dataframe if "configuration" in d.value.columns and "x_samples" in d.value.columns)
    assert table["strategy"].nunique() > 1  # the tables keep every configuration


def test_strategies_page_marks_a_budget_a_search_could_not_afford_on_the_chart(monkeypatch, populated_store):
    """The fixture's lookahead pays no round at the smallest of its budgets: a hollow star there, at the budget, in
    the configuration's legend group, saying why; a configuration with a point everywhere gets none."""
    at = _app(monkeypatch, populated_store, "app_pages/strategies.py")
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    data = _strategies_figure(at)["data"]
    hollow = [t for t in data if t.get("marker", {}).get("symbol") == "star-open"]
    assert hollow and all("lookahead" in t["legendgroup"] for t in hollow), [t["legendgroup"] for t in hollow]
    table = next(d.value for d in at.dataframe if "configuration" in d.value.columns and "x_samples" in d.value.columns)
    for t in hollow:
        rows = table[(table["model"] + " · " + table["configuration"]) == t["legendgroup"]]
        missing = rows[(rows["questions"] == 0) & (rows["unaffordable"] > 0)]
        np.testing.assert_allclose(_values(t["x"]), missing["budget_samples"].to_numpy())  # at the budget itself
        assert "unaffordable" in t["hovertemplate"] or any("unaffordable" in str(c) for c in t["customdata"])
        line = next(x for x in data if x.get("legendgroup") == t["legendgroup"] and x.get("showlegend") is not False)
        assert line["legendgroup"] == t["legendgroup"] and t["showlegend"] is False  # hidden and shown with its line
    at.radio(key="x").set_value("flops").run()
    hollow = [t for t in _strategies_figure(at)["data"] if t.get("marker", {}).get("symbol") == "star-open"]
    assert hollow and np.isin(_values(hollow[0]["x"]), table["budget_flops"].to_numpy()).all()
    star = next(t for t in _strategies_figure(at)["data"] if t.get("marker", {}).get("symbol") == "star")
    custom = star["customdata"]
    shape = [int(n) for n in str(custom.get("shape", "")).split(",")] if isinstance(custom, dict) else None
    spent = (_values(custom).reshape(shape) if shape else np.asarray(custom, dtype=float))[:, 1]
    np.testing.assert_allclose(spent, _values(star["x"]))  # the hover's "spent" is where the star is drawn
    assert "spent %{customdata[1]:.3~s}FLOPs (drawn there)" in star["hovertemplate"]
