"""README's four pictures of the example study, taken from the committed store: the Compute-optimal page's heat map,
its curves against every configuration and its per-bin accuracy, and the Strategies page's chart, in headless
Chromium against `streamlit run app.py` on a copy of examples/studies/compute-optimal (the dashboard may write to
the store it opens; the committed one stays untouched).

    python scripts/study_screenshots.py [--out docs/screenshots] [--n-bins 4]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.ui import chromium, streamlit_server, wait_ready  # noqa: E402

PLOTS_DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')].every(
    (plot) => plot._fullLayout && plot.querySelector('.main-svg'))"""
SHOTS = {  # file: (page url, chart title's start)
    "study_heatmap.png": ("compute-optimal", "Best configuration per difficulty bin"),
    "study_curves.png": ("compute-optimal", "Compute-optimal against"),
    "study_by_bin.png": ("compute-optimal", "Accuracy against FLOPs per difficulty bin"),
    "study_strategies.png": ("strategies", "Accuracy against compute"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--n-bins", type=int, default=4)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        shutil.copytree(ROOT / "examples" / "studies" / "compute-optimal", store)
        with streamlit_server(store, Path(tmp) / "streamlit.log", start_timeout_s=600) as base, chromium() as ctx:
            page = ctx.new_page()
            page.set_viewport_size({"width": 1400, "height": 1000})
            for name, (url, title) in SHOTS.items():
                page.goto(f"{base}/{url}?nbins={args.n_bins}", wait_until="domcontentloaded")
                wait_ready(page, url.replace("-", "_"), timeout_s=600)
                page.wait_for_function(PLOTS_DRAWN)
                chart = page.locator('[data-testid="stPlotlyChart"]').filter(has_text=title).first
                chart.scroll_into_view_if_needed()
                chart.screenshot(path=str(args.out / name))
                print(f"{args.out / name}: {title}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
