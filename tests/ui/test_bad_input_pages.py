"""Bad input through the dashboard's URLs: a shared link whose query parameter is garbage, out of range or not one
of the choices gets one line naming the parameter and what it allows, the page draws with the default, and the
URL is rewritten to what is shown. Each page is opened directly, as a link does (no earlier page's state)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import ROOT, app_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RUNS = "synthetic-gemma-0-0001000000, synthetic-qwen2.5-1-0001000001"

# (page, parameter, value, what the line says is allowed, the default the page falls back to)
SAMPLE_0 = "synthetic-gemma-0-0001000000|gemma-3-270m"  # the fixture store's first run and model
CASES = [
    ("coverage", "kmax", "abc", "'abc' is not a whole number", "a whole number from 1 to 1e+09", "160"),
    ("coverage", "kmax", "0", "'0' is out of range", "a whole number from 1 to 1e+09", "160"),
    ("coverage", "kmax", "1e30", "'1e30' is not a whole number", "a whole number from 1 to 1e+09", "160"),
    ("coverage", "x", "parsecs", "'parsecs' is not one of the choices", "samples, tokens, flops", "samples"),
    ("coverage", "fit", "maybe", "'maybe' is not one of the choices", "on, off", "on"),
    ("coverage", "runs", "no-such-run", "'no-such-run' is not one of the choices", RUNS, None),
    (
        "coverage",
        "dataset",
        "gsm9k",
        "'gsm9k' is not one of the choices",
        "(all), basic_arithmetic, chain_sum",
        "(all)",
    ),
    ("strategies", "threshold", "5", "'5' is out of range", "a number from 0 to 1", "0.5"),
    ("strategies", "threshold", "abc", "'abc' is not a number", "a number from 0 to 1", "0.5"),
    ("strategies", "families", "nope", "'nope' is not one of the choices", "coverage (oracle), majority,", None),
    ("strategies", "draws", "7", "'7' is not one of the choices", "8, 16, 32, 64, 128", "32"),
    (
        "strategies",
        "verifier",
        "judge",
        "'judge' is not one of the choices",
        "(none), prm-synthetic, self-verify",
        None,
    ),
    ("cost_of_pass", "expert", "-1", "'-1' is out of range", "a number >= 0", "0.5"),
    ("cost_of_pass", "expert", "nan", "'nan' is not a finite number", "a number >= 0", "0.5"),
    ("cost_of_pass", "models", "gpt-17", "'gpt-17' is not one of the choices", "gemma-3-270m", None),
    ("compute_optimal", "M", "0.5", "'0.5' is out of range", "a number >= 1", None),
    ("compute_optimal", "R", "0", "'0' is out of range", "a number >= 0.001", "0.79"),
    ("compute_optimal", "R", "-inf", "'-inf' is not a finite number", "a number >= 0.001", "0.79"),
    ("compute_optimal", "nbins", "99", "'99' is not one of the choices", "2, 3, 4, 5, 6, 8, 10", "5"),
    ("compute_optimal", "bins", "sideways", "'sideways' is not one of the choices", "oracle, predicted", "oracle"),
    ("compute_optimal", "model", "gpt-17", "'gpt-17' is not one of the choices", "gemma-3-270m", None),
    ("compute_optimal", "ratio_budget", "x", "'x' is not a whole number", "0, 1, 2", None),
    ("compute_optimal", "pair_bin", "9", "'9' is not one of the choices", "all, 1, 2, 3, 4, 5", "all"),
    ("compute_optimal", "pair_a", "gpt-17", "'gpt-17' is not one of the choices", "compute-optimal (cross", None),
    (
        "strategies",
        "strat_pair_b",
        "nope",
        "'nope' is not one of the choices",
        "majority, deepconf_weighted, deepconf_filtered",
        None,
    ),
    ("samples", "run", "no-such-run", "'no-such-run' is not one of the choices", "(all), synthetic-gemma", "(all)"),
    ("samples", "model", "gpt-17", "'gpt-17' is not one of the choices", "(all), gemma-3-270m", "(all)"),
    ("samples", "question", "q-404", "'q-404' is not one of the choices", "(all), basic_arithmetic/0/0", "(all)"),
    ("samples", "correct", "maybe", "'maybe' is not one of the choices", "all, correct, wrong", "all"),
    (  # a tree by identity (run | model | strategy | question key | configuration), the sample's question's first
        "samples",
        "tree",
        "-1",
        "'-1' is not one of the choices",
        f"{SAMPLE_0}|beam_search|800d8311f6f77f10|114305068e, ",
        f"{SAMPLE_0}|beam_search|800d8311f6f77f10|114305068e",
    ),
    (
        "samples",
        "sample",
        f"{SAMPLE_0}|800d8311f6f77f10|99",
        f"'{SAMPLE_0}|800d8311f6f77f10|99' is not one of the choices",
        f"{SAMPLE_0}|800d8311f6f77f10|0, {SAMPLE_0}|800d8311f6f77f10|1, ",
        f"{SAMPLE_0}|800d8311f6f77f10|0",
    ),
    (
        "run",
        "run_models",
        "gpt-17",
        "'gpt-17' is not one of the choices",
        "qwen2.5-coder-0.5b-instruct, gemma-3-270m",
        None,
    ),
    ("run", "suite", "gsm9k", "'gsm9k' is not one of the choices", "reasoning_gym, humaneval, math_jsonl", None),
    ("run", "engine", "tgi", "'tgi' is not one of the choices", "llamacpp, openai, vllm", "llamacpp"),
    ("run", "datasets", "basic_arithmetix", "'basic_arithmetix' is not one of the choices", "ab, acre,", None),
]


def open_link(monkeypatch, store_dir, page: str, params: dict) -> AppTest:
    """The page as a shared link opens it: its own script, the URL's parameters, a fresh session."""
    monkeypatch.setenv("TTC_STORE", str(store_dir))
    at = app_test(ROOT / "app_pages" / f"{page}.py")
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    return at


@pytest.mark.parametrize(
    "page, key, value, problem, allowed, default", CASES, ids=[f"{c[0]}-{c[1]}={c[2]}" for c in CASES]
)
def test_bad_url_parameter_is_one_line_and_the_page_shows_the_default(
    monkeypatch, populated_store, page, key, value, problem, allowed, default
):
    at = open_link(monkeypatch, populated_store, page, {key: value})
    assert not at.exception, [e.value for e in at.exception]
    errors = [str(e.value) for e in at.error]
    assert len(errors) == 1, errors
    line = errors[0]
    assert "\n" not in line
    assert line.startswith(f"URL parameter {key}: {problem}, ignored (showing "), line
    assert f"; allowed: {allowed}" in line, line
    shown = at.query_params[key]  # the link now says what the page shows
    assert value not in (shown if isinstance(shown, list) else [shown])
    if default is not None:
        assert shown in (default, [default]), shown
