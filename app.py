"""ttc-lab dashboard: navigation only. Each page lives in app_pages/ and calls backend/ and store/.

The folder is deliberately not named `pages/`: Streamlit 1.67 decides at server start that an app with a
`pages/` folder is a v1 multipage app, and a browser that opens a page URL first (a shared link) then runs
that file directly, never this script: no st.navigation, no page config, every helper module listed as a page.

    ttc dashboard --store DIR        (or: TTC_STORE=DIR streamlit run app.py)"""

import streamlit as st

PAGES = [
    ("app_pages/run.py", "Run", ":material/play_circle:", "run"),
    ("app_pages/coverage.py", "Coverage", ":material/trending_up:", "coverage"),
    ("app_pages/strategies.py", "Strategies", ":material/compare_arrows:", "strategies"),
    ("app_pages/cost_of_pass.py", "Cost-of-pass", ":material/payments:", "cost-of-pass"),
    ("app_pages/compute_optimal.py", "Compute-optimal", ":material/grid_on:", "compute-optimal"),
    ("app_pages/samples.py", "Samples", ":material/list_alt:", "samples"),
]


def run() -> None:
    st.set_page_config(page_title="ttc-lab", page_icon=":material/bolt:", layout="wide")
    pages = [st.Page(path, title=title, icon=icon, url_path=url) for path, title, icon, url in PAGES]
    st.navigation(pages).run()


run()
