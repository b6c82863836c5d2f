"""The Run page's Import panel (AppTest): paths on the dashboard's machine become a read-only run, exactly as
`ttc import` makes it; a pattern that matches nothing is one line naming the field, and nothing is written."""

from __future__ import annotations

import pytest
import yaml

from backend.importers.dashboard import import_from_dashboard
from store import Store
from tests.ui.conftest import APP, app_test

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _problems(folder, n=3):
    folder.mkdir()
    for q in range(n):
        doc = {"question": f"{q}+{q}?", "samples": [f"#### {2 * q}", f"#### {2 * q + 1}"], "gt_answer": f"#### {2 * q}",
               "is_corrects": [True, False]}  # fmt: skip
        (folder / f"{q}.yaml").write_text(yaml.dump(doc))
    return folder


def _run_page(monkeypatch, root):
    monkeypatch.setenv("TTC_STORE", str(root))
    at = app_test(APP)
    at.run(timeout=300)
    at.switch_page("app_pages/run.py").run(timeout=300)
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def test_every_format_s_options_render_in_the_panel(tmp_path, monkeypatch):
    """Each registered format's options model becomes its controls (nested models and lists as JSON) with no internal
    error; a format whose defaults are not enough (openai_batch needs where correctness comes from) says so."""
    from backend.importers import IMPORTERS

    root = tmp_path / "store"
    Store.open(root)
    at = _run_page(monkeypatch, root)
    for fmt in IMPORTERS:
        at.selectbox(key="import_format").set_value(fmt).run(timeout=120)
        errors = [e.value for e in [*at.exception, *at.error]]
        assert all(e.startswith("options:") for e in errors), (fmt, errors)
        assert at.button(key="import_go").disabled == bool(errors), fmt


def test_the_panel_imports_paths_as_the_cli_does(tmp_path, monkeypatch):
    folder = _problems(tmp_path / "llmonk")
    root = tmp_path / "store"
    Store.open(root)
    at = _run_page(monkeypatch, root)
    at.selectbox(key="import_format").set_value("monkeys").run(timeout=120)
    at.text_input(key="import_paths").input(f"{folder}/*.yaml")
    at.text_input(key="import_model").input("llama-3-8b")
    at.text_input(key="import_monkeys_dataset").input("gsm8k")
    at.button(key="import_go").click().run(timeout=300)
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    (done,) = [s.value for s in at.success]
    assert "6 samples of 3 questions imported" in done, done
    store = Store.open(root, create=False)
    df = store.query("SELECT model, dataset, count(*) n, count(answer) answered FROM samples GROUP BY ALL")
    assert df.values.tolist() == [["llama-3-8b", "gsm8k", 6, 6]]
    # the same files through the backend function the panel calls: already imported, nothing written
    again = import_from_dashboard(store, "monkeys", paths=f"{folder}/*.yaml", model="llama-3-8b",
                                  options={"dataset": "gsm8k"})  # fmt: skip
    assert again.already


def test_a_pattern_that_matches_nothing_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    root = tmp_path / "store"
    Store.open(root)
    at = _run_page(monkeypatch, root)
    at.selectbox(key="import_format").set_value("monkeys").run(timeout=120)
    at.text_input(key="import_paths").input(f"{tmp_path}/nowhere/*.yaml")
    at.button(key="import_go").click().run(timeout=300)
    (err,) = [e.value for e in at.error]
    assert "paths" in err and "matches no file" in err, err
    assert Store.open(root, create=False).query("SELECT count(*) n FROM samples")["n"].tolist() == [0]


def test_the_panel_recounts_missing_token_counts_with_the_tokenizer_named(tmp_path, monkeypatch):
    """The Tokenizer choices are the installed shipped models and a path (a Hugging Face tokenizer directory here):
    the files' missing counts are the tokenizer's own, as `ttc import --tokenizer` makes them."""
    tokenizers = pytest.importorskip("tokenizers")
    from backend.models.registry import SHIPPED_MODELS, parts_installed
    from tests.unit.test_import_tokens import hf_tokenizer_dir

    folder = _problems(tmp_path / "llmonk")
    tok = hf_tokenizer_dir(tmp_path / "tok")
    root = tmp_path / "store"
    Store.open(root)
    at = _run_page(monkeypatch, root)
    at.selectbox(key="import_format").set_value("monkeys").run(timeout=120)
    choices = at.selectbox(key="import_tokenizer").options
    installed = [n for n, m in SHIPPED_MODELS.items() if parts_installed(m)]
    assert choices[1:-1] == installed and len(choices) == len(installed) + 2, choices
    at.selectbox(key="import_tokenizer").set_value(choices[-1]).run(timeout=120)
    at.text_input(key="import_tokenizer_path").input(str(tok))
    at.text_input(key="import_paths").input(f"{folder}/*.yaml")
    at.button(key="import_go").click().run(timeout=300)
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    (done,) = [s.value for s in at.success]
    assert "completion token counts recounted with" in done, done  # these problems have no prompt
    df = Store.open(root, create=False).query("SELECT completion, completion_tokens d FROM samples")
    direct = tokenizers.Tokenizer.from_file(str(tok / "tokenizer.json"))
    assert df["d"].tolist() == [len(direct.encode(c, add_special_tokens=False).ids) for c in df["completion"]]
