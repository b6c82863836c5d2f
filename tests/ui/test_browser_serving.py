"""The Serving page in a real browser: headless Chromium opens it on a store the scripted engine served two requests
into (`streamlit run app.py`), sees them under their policy version, labels one answer through the page's form, and
the label is stored and counted on the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ui import CHROMIUM, chromium, load_page, page_problems, streamlit_server, wait_ready

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    from backend.serving.runtime import Runtime
    from store import Store
    from tests.unit.test_serving import _backend, _policy
    from tests.unit.test_serving_log import _ask

    root = tmp_path_factory.mktemp("serving") / "store"
    runtime = Runtime(_policy(), _backend(), Store.open(root))
    answered = [_ask(runtime, "What is 2+2?", 3e7), _ask(runtime, "a hard one", 1e7)]
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    with streamlit_server(root, log, start_timeout_s=600) as base:
        yield base, root, runtime, answered


def test_the_serving_page_shows_requests_and_a_label_given_in_the_browser_is_counted(server):
    from backend.serving import log as served
    from store import Store

    base, root, runtime, answered = server
    first = served.served_log(Store.open(root, create=False))["run_id"].iloc[0]  # the answer the selectbox starts on
    with chromium() as ctx:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        load_page(page, base, "serving", "serving", timeout_s=600)
        assert page_problems(page) == []
        body = page.inner_text("body")
        assert runtime.policy.version in body and "0 of 2" in body
        form = page.locator('[data-testid="stForm"]')
        form.get_by_text("incorrect", exact=True).click()
        form.get_by_role("button", name="Save label").click()
        page.get_by_text("1 of 2").wait_for(timeout=120_000)
        wait_ready(page, "serving")
        assert page_problems(page) == []
        assert "No answer is labelled yet" not in page.inner_text("body")
    labels = served.labels(Store.open(root, create=False))
    assert labels[["run_id", "choice", "correct"]].values.tolist() == [[first, 0, False]]
    assert first in {a.run_id for a in answered}
