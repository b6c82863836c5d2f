"""The Samples page keeps the chosen sample and search tree in the URL by identity (a link reopens the same
sample and tree, whatever was added since), the tree follows the chosen sample, tree labels name the budget, and
a link from before (a tree by position, `tree=19`) is ignored with a caption."""

from __future__ import annotations

import shutil

import pytest

from app_pages._views import REF_SEP
from tests.ui.conftest import ROOT, app_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PAGE = ROOT / "app_pages" / "samples.py"


def _open(monkeypatch, store_dir, params: dict | None = None):
    monkeypatch.setenv("TTC_STORE", str(store_dir))
    at = app_test(PAGE)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    return at


def _question_key(ref: str) -> str:
    return ref.split(REF_SEP)[2]  # run | model | question key | index


def _tree_question_key(ref: str) -> str:
    return ref.split(REF_SEP)[3]  # run | model | strategy | question key | configuration digest


def _param(at, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def _add_trees_before(store_dir, sample_ref: str) -> None:
    """A search of the sample's run and question that sorts before every stored one: list positions shift."""
    from bench.synthetic_store import search_configuration_table
    from store import Store

    store = Store.open(store_dir, create=False)
    run_id, model = sample_ref.split(REF_SEP)[:2]
    qids = store.query("SELECT DISTINCT question_id FROM samples WHERE run_id = ?", [run_id])["question_id"]
    table = search_configuration_table(run_id, model, "beam_search", {"n": 2}, 1.0, dict.fromkeys(qids, True))
    store.write_shard("nodes", run_id, table)


def test_a_link_reopens_the_chosen_sample_and_tree(monkeypatch, populated_store, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(populated_store, store_dir)
    at = _open(monkeypatch, store_dir)
    first = at.selectbox(key="sample").value
    other = next(label for label in at.selectbox(key="sample").options if not label.startswith("basic_arithmetic/0/0 "))
    at.selectbox(key="sample").select(other).run()
    sample = at.selectbox(key="sample").value
    assert sample != first and _question_key(sample) != _question_key(first)
    assert _tree_question_key(at.selectbox(key="tree").value) == _question_key(sample)  # the tree followed
    trees = at.selectbox(key="tree").options
    at.selectbox(key="tree").select(trees[1]).run()  # not the default: the link must carry the choice itself
    tree = at.selectbox(key="tree").value
    assert _param(at, "sample") == sample and _param(at, "tree") == tree

    link = {key: at.query_params[key] for key in ("run", "model", "question", "correct", "text", "sample", "tree")}
    positions = at.selectbox(key="tree").options
    _add_trees_before(store_dir, sample)
    again = _open(monkeypatch, store_dir, link)
    assert again.selectbox(key="tree").options.index(positions[1]) != 1  # the position now names another tree
    assert again.selectbox(key="sample").value == sample
    assert again.selectbox(key="tree").value == tree
    assert _param(again, "sample") == sample and _param(again, "tree") == tree


def test_the_tree_follows_a_newly_chosen_sample(monkeypatch, populated_store):
    at = _open(monkeypatch, populated_store)
    trees = at.selectbox(key="tree").options
    at.selectbox(key="tree").select(trees[-1]).run()  # a tree of another question
    labels = at.selectbox(key="sample").options
    at.selectbox(key="sample").select(labels[-1]).run()
    sample, tree = at.selectbox(key="sample").value, at.selectbox(key="tree").value
    assert _tree_question_key(tree) == _question_key(sample)
    assert any("answered this sample's question" in str(c.value) for c in at.caption)


def test_tree_labels_name_the_budget(monkeypatch, populated_store):
    at = _open(monkeypatch, populated_store)
    labels = at.selectbox(key="tree").options
    assert any(" · budget " in label and "FLOPs · " in label for label in labels), labels[:3]


def test_a_positional_tree_link_is_ignored_with_a_caption(monkeypatch, populated_store):
    at = _open(monkeypatch, populated_store, {"tree": "19"})
    assert any("names its tree by position (tree=19)" in str(c.value) for c in at.caption)
    tree = at.selectbox(key="tree").value
    assert _tree_question_key(tree) == _question_key(at.selectbox(key="sample").value)
    assert _param(at, "tree") == tree


@pytest.mark.parametrize("page", ["samples", "strategies", "coverage", "cost_of_pass", "compute_optimal"])
def test_every_analysis_page_has_a_copy_link_button(monkeypatch, populated_store, page):
    monkeypatch.setenv("TTC_STORE", str(populated_store))
    at = app_test(ROOT / "app_pages" / f"{page}.py")
    at.run()
    buttons = [h for h in at.get("html") if 'id="ttc-copy-link"' in h.proto.body]
    assert len(buttons) == 1 and buttons[0].proto.unsafe_allow_javascript
    assert "window.location.href" in buttons[0].proto.body  # the URL at the click, its query parameters included
