"""The study report in a real browser: headless Debian Chromium opens `ttc report -o`'s file with every network
request blocked, finds every section and chart drawn, and prints it to an A4 PDF of several pages, none blank."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest

from backend.cli import main
from backend.report_html import SECTIONS
from bench.synthetic_store import make_synthetic_store
from bench.ui import CHROMIUM, chromium
from tests.ui.conftest import add_search_configurations

pytestmark = pytest.mark.browser
MODEL = "gemma-3-270m"
CHARTS = ("fig-coverage", "fig-strategies", "fig-cost", "fig-heatmap", "fig-curves")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium): no browser to drive")
    import json

    from store import Store

    tmp = tmp_path_factory.mktemp("browser-report")
    root = tmp / "store"
    make_synthetic_store(root, n_questions=40, n_samples=16, models=(MODEL,), n_trees=0, seed=3)
    add_search_configurations(root)
    # a price in the spec, as a study of a hosted model records it, so the cost-of-pass section draws its chart
    store = Store.open(root, create=False)
    [run] = store.query("SELECT run_id, spec_json FROM runs").itertuples(index=False)
    run_id, spec = run.run_id, json.loads(run.spec_json)
    spec["models"] = [{"name": MODEL, "price_in_per_m": 0.05, "price_out_per_m": 0.2}]
    with store.catalog.begin() as db:
        from sqlalchemy import text

        db.execute(text("UPDATE runs SET spec_json = :s WHERE run_id = :r"), {"s": json.dumps(spec), "r": run_id})
    out = tmp / "study.html"
    assert main(["report", "--store", str(root), "--model", MODEL, "--n-bins", "3", "-o", str(out)]) == 0
    return out


def pdf_pages(data: bytes) -> list[bytes]:
    """Each page's decoded content streams, read from the PDF's objects (Chromium writes them uncompressed, their
    streams Flate-compressed)."""
    objects = {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj\b(.*?)\bendobj", data, re.S)}

    def stream(body: bytes) -> bytes:
        m = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S)
        assert m, "a page's contents object holds no stream"
        return zlib.decompress(m[1]) if b"/FlateDecode" in body else m[1]

    pages = []
    for body in objects.values():
        if re.search(rb"/Type\s*/Page(?![a-zA-Z])", body):
            refs = re.search(rb"/Contents\s*(\[[^\]]*\]|\d+ 0 R)", body)
            assert refs, "a page without /Contents"
            pages.append(b"".join(stream(objects[int(n)]) for n in re.findall(rb"(\d+) 0 R", refs[1])))
    return pages


def test_the_report_opens_offline_draws_everything_and_prints(report_file, tmp_path):
    requests: list[str] = []
    with chromium() as ctx:
        ctx.set_offline(True)
        ctx.route(re.compile(r"^(?!file:|data:|blob:|about:)"), lambda route: route.abort())
        page = ctx.new_page()
        page.on("request", lambda r: requests.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report_file.as_uri())
        page.wait_for_selector('body[data-rendered="yes"]', timeout=60_000)
        assert not errors, errors
        for sid, _ in SECTIONS:
            assert page.locator(f"section#{sid} h2").is_visible(), sid
        for fid in CHARTS:
            chart = page.locator(f"#{fid}")
            assert chart.locator("svg.main-svg").count() >= 1, fid
            drawn = chart.locator(".scatterlayer .trace, .heatmaplayer image, .heatmaplayer .hm").count()
            assert drawn >= 1, f"{fid}: no trace drawn"
        assert page.locator("#fig-heatmap .heatmaplayer").count() == 1
        assert "the policy" in page.locator("section#reading").inner_text()
        pdf = page.pdf(format="A4", print_background=True)
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))] == []
    (tmp_path / "study.pdf").write_bytes(pdf)
    pages = pdf_pages(pdf)
    assert len(pages) > 1
    assert len(pages) == len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
    blank = [i + 1 for i, p in enumerate(pages) if not re.search(rb"\bT[Jj]\b", p)]
    assert not blank, f"page(s) {blank} of {len(pages)} show no text"
