"""SQL injection through the dashboard: every URL query parameter of every page and every text box that feeds a
query gets classic injection strings. None may raise, leak rows (a search for an injection string finds exactly
the samples that contain it literally, none when none do) or change the store: shards, row counts and the
catalog's runs are the same afterwards. The parameters are read from the pages' source, so a new one is covered
without a change here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_pages import PAGES
from store import Store
from store.schema import TABLES
from tests.ui.conftest import ROOT, app_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

INJECTIONS = [
    "' OR 1=1 --",
    "'; DROP TABLE runs; --",
    '") UNION SELECT run_id, spec_json FROM runs --',
    "%' --",
    "%",  # a LIKE wildcard: must match a literal %, not every row
    "\u2019 OR \u20181\u2019=\u20191",  # typographic quotes, which some layers fold to '
    "a\x00b",  # NUL
]
# Parameters that are typed text, not choices: the Samples filter, the Run form's name and budgets (the form's own
# check names the budgets field when the text is not a list of numbers).
FREE_TEXT = frozenset({"text", "run_name", "budgets"})
IDS = ["or-1-1", "drop-table", "union-select", "percent-quote", "percent", "unicode-quotes", "nul"]


def url_parameters(page: str) -> dict[str, bool]:
    """{key: multi} of every `from_url` a page makes, directly or through a helper of an app_pages/_*.py module
    (a helper's key parameter: the constant the page passes, else its default)."""
    helpers: dict[str, ast.FunctionDef] = {}
    for module in sorted((ROOT / "app_pages").glob("_*.py")):
        for fn in ast.parse(module.read_text()).body:
            if isinstance(fn, ast.FunctionDef):
                helpers[fn.name] = fn
    tree = ast.parse((ROOT / page).read_text())
    out = _from_url_calls(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in helpers:
            given = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
            out |= _from_url_calls(helpers[node.func.attr], given)
    return out


def _from_url_calls(tree: ast.AST, given: dict | None = None) -> dict[str, bool]:
    """{key: multi} of the `from_url` calls in `tree`; a key may be a helper's parameter with a constant default
    or a constant the caller gives (`given`)."""
    defaults = {}
    if isinstance(tree, ast.FunctionDef):
        args = tree.args.args + tree.args.kwonlyargs
        values = [None] * (len(tree.args.args) - len(tree.args.defaults)) + tree.args.defaults + tree.args.kw_defaults
        defaults = {a.arg: v.value for a, v in zip(args, values) if isinstance(v, ast.Constant)}
        defaults |= {k: v for k, v in (given or {}).items() if k in defaults}
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "from_url":
            key = node.args[0]
            if isinstance(key, ast.Name) and key.id in defaults:
                key = ast.Constant(defaults[key.id])
            assert isinstance(key, ast.Constant), f"from_url with a computed key: {ast.unparse(node)}"
            multi = any(k.arg == "multi" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords)
            out[key.value] = multi
    return out


def snapshot(root: Path) -> dict:
    """What an injection must not change: the shard files, each table's rows, the catalog's runs."""
    store = Store.open(root, create=False)
    return {
        "files": sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(("-wal", "-shm"))),
        "rows": {t: int(store.query(f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in TABLES},
        "runs": store.runs_arrow().to_pylist(),
    }


@pytest.fixture(scope="module")
def store_state(populated_store):
    """The fixture store as it was before any injection, and every sample's text to count matches against."""
    samples = Store.open(populated_store, create=False).query("SELECT completion, answer FROM samples")
    return snapshot(populated_store), samples


def expected_matches(samples, text: str) -> int:
    """Samples whose completion or answer contains `text` literally (case-insensitive), as the page caps them."""
    t = text.lower()
    texts = lambda col: [v.lower() if isinstance(v, str) else "" for v in samples[col]]  # noqa: E731 - NULL: ""
    hit = [t in c or t in a for c, a in zip(texts("completion"), texts("answer"))]
    return min(sum(hit), 500)


def shown_samples(at: AppTest) -> int:
    caption = next(str(c.value) for c in at.caption if "sample(s) shown" in str(c.value))
    return int(re.match(r"(\d+) sample", caption).group(1))


def open_link(monkeypatch, root: Path, page: str, params: dict) -> AppTest:
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(ROOT / page)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    return at


def test_every_page_has_url_parameters_to_attack():
    found = {p.path: url_parameters(p.path) for p in PAGES}
    assert all(found.values()), found
    assert {"text", "run", "model", "question", "correct", "tree"} <= set(found["app_pages/samples.py"])
    assert {"runs", "models", "dataset", "x", "fit", "kmax"} <= set(found["app_pages/coverage.py"])
    assert {"pair_a", "pair_b", "pair_bin"} <= set(found["app_pages/compute_optimal.py"])  # a helper's defaults
    assert {"strat_pair_a", "strat_pair_b", "strat_pair_bin"} <= set(found["app_pages/strategies.py"])  # given keys


@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
@pytest.mark.parametrize("page", [p.path for p in PAGES], ids=[p.name for p in PAGES])
def test_injection_in_every_url_parameter(monkeypatch, populated_store, store_state, page, text):
    before, samples = store_state
    params = {key: [text] if multi else text for key, multi in url_parameters(page).items()}
    at = open_link(monkeypatch, populated_store, page, params)
    assert not at.exception, [e.value for e in at.exception]
    for e in at.error:  # each refused parameter is one line naming it, nothing else goes wrong
        line = str(e.value)
        named = line.startswith("URL parameter ") or any(line.startswith(f"{k}: ") for k in FREE_TEXT)
        assert named and "\n" not in line, line
    for key in params:
        if key not in FREE_TEXT and key in at.session_state:  # every other one is a choice: never taken
            assert at.session_state[key] not in (text, [text]), key
    if page == "app_pages/samples.py":  # the free-text filter is used as a literal substring
        assert at.text_input(key="text").value == text
        assert shown_samples(at) == expected_matches(samples, text)
    assert snapshot(populated_store) == before


@pytest.mark.parametrize("text", INJECTIONS + ["6_w1", "_"], ids=IDS + ["literal-underscore", "underscore"])
def test_injection_typed_into_the_samples_text_filter(monkeypatch, populated_store, store_state, text):
    before, samples = store_state
    at = open_link(monkeypatch, populated_store, "app_pages/samples.py", {})
    at.text_input(key="text").input(text).run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert shown_samples(at) == expected_matches(samples, text)
    assert snapshot(populated_store) == before


@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
def test_injection_typed_into_the_run_form_queues_nothing(monkeypatch, populated_store, store_state, text):
    before, _ = store_state
    at = open_link(monkeypatch, populated_store, "app_pages/run.py", {})
    at.text_input(key="run_name").input(text)
    at.text_input(key="gguf_paths").input(text)
    at.text_input(key="budgets").input(text)
    at.text_area(key="rg_config_basic_arithmetic").input(text)
    at.run()
    at.button(key="queue").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [str(e.value) for e in at.error]
    assert errors and all("\n" not in e for e in errors), errors
    assert all(re.match(r"^[\w.\[\]]+: ", e) for e in errors), errors  # each names its field
    assert "Queued run" not in " ".join(str(s.value) for s in at.success)
    assert snapshot(populated_store) == before
