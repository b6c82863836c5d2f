"""ttc-lab dashboard: navigation only. Each page lives in app_pages/ and calls backend/ and store/.

The folder is deliberately not named `pages/`: Streamlit 1.67 decides at server start that an app with a
`pages/` folder is a v1 multipage app, and a browser that opens a page URL first (a shared link) then runs
that file directly, never this script: no st.navigation, no page config, every helper module listed as a page.

    ttc dashboard --store DIR        (or: TTC_STORE=DIR streamlit run app.py)"""

import streamlit as st

from app_pages import PAGES


def run() -> None:
    st.set_page_config(page_title="ttc-lab", page_icon=":material/bolt:", layout="wide")
    pages = [st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path) for p in PAGES]
    st.navigation(pages).run()


run()
