"""ttc-lab dashboard: navigation only. Each page lives in pages/ and calls backend/ and store/.

    ttc dashboard --store DIR        (or: TTC_STORE=DIR streamlit run app.py)"""

import streamlit as st

PAGES = [
    ("pages/run.py", "Run", ":material/play_circle:", "run"),
    ("pages/coverage.py", "Coverage", ":material/trending_up:", "coverage"),
    ("pages/strategies.py", "Strategies", ":material/compare_arrows:", "strategies"),
    ("pages/cost_of_pass.py", "Cost-of-pass", ":material/payments:", "cost-of-pass"),
    ("pages/compute_optimal.py", "Compute-optimal", ":material/grid_on:", "compute-optimal"),
    ("pages/samples.py", "Samples", ":material/list_alt:", "samples"),
]


def run() -> None:
    st.set_page_config(page_title="ttc-lab", page_icon=":material/bolt:", layout="wide")
    pages = [st.Page(path, title=title, icon=icon, url_path=url) for path, title, icon, url in PAGES]
    st.navigation(pages).run()


run()
