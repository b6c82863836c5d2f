"""A run with `engine: {kind: vllm}` launched from the dashboard's Run page (Streamlit AppTest) and run to the end by
a real `ttc worker` process in this environment: the queued spec names vLLM and the store gets every sample."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("vllm", reason="vllm is not installed here: ./scripts/test.sh runs this tier in .venv-vllm")

from streamlit.testing.v1 import AppTest  # noqa: E402

from store import Store  # noqa: E402
from tests.conftest import ttc  # noqa: E402
from tests.ui.conftest import APP  # noqa: E402
from tests.vllm.test_vllm_runs import ARITHMETIC, NULLS  # noqa: E402


def test_run_page_queues_a_vllm_run_and_the_worker_finishes_it(monkeypatch, tmp_path):
    store_dir = tmp_path / "store"
    monkeypatch.setenv("TTC_STORE", str(store_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/run.py").run()
    at.radio(key="engine").set_value("vllm").run()
    at.text_area(key="rg_config_basic_arithmetic").set_value(json.dumps(ARITHMETIC)).run()
    at.number_input(key="rg_size_basic_arithmetic").set_value(2).run()
    at.number_input(key="spq").set_value(2).run()
    at.number_input(key="max_tokens").set_value(24).run()
    at.text_input(key="engine_vllm_n_ctx_per_slot").set_value("1024").run()
    at.text_input(key="engine_vllm_kv_cache_gib").set_value("1").run()
    at.button(key="queue").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [run] = Store.open(store_dir, create=False).runs_arrow().to_pylist()
    assert run["status"] == "queued" and json.loads(run["spec_json"])["engine"]["kind"] == "vllm"
    done = ttc("worker", "--store", str(store_dir), "--once", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    store = Store.open(store_dir, create=False)
    [run] = store.runs_arrow().to_pylist()
    assert run["status"] == "done", run
    assert store.query(NULLS).to_dict("records")[0] == {"n": 4, "nulls": 0, "distinct_keys": 4}
