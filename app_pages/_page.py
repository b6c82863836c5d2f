"""The frame of every page: the one place typed errors are rendered, the stopped-worker banner, the empty-store
panel and the ready marker the browser tests wait on (`run_page`)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

import streamlit as st

from app_pages._store import has_samples, open_store, runs, store_dir
from backend.errors import TtcError
from store import Store

log = logging.getLogger("ttc.dashboard")


def render_error(err: BaseException) -> None:
    """The one place a failure becomes text on a page: one line, never a traceback."""
    if isinstance(err, TtcError):
        st.error(str(err), icon=":material/error:")
    elif isinstance(err, ValueError):  # metrics refuse bad selections with a one-line ValueError
        st.error(f"cannot compute this view: {err}", icon=":material/error:")
    else:
        log.error("dashboard error\n%s", "".join(traceback.format_exception(err)))
        st.error(
            f"internal error ({type(err).__name__}): {err}. Details are in the dashboard's log.",
            icon=":material/bug_report:",
        )


def worker_banner(store: Store) -> None:
    """A caption line per live worker (its run, its heartbeat's age) when all is well; a clear warning with a button
    that starts one when runs wait and no worker is alive. A fragment, so the heartbeat age stays current."""
    _worker_banner(store)


@st.fragment(run_every="5s")
def _worker_banner(store: Store) -> None:
    from backend.execution.workers import ensure_worker, worker_table

    try:
        live = [w for w in worker_table(store) if w.live]
    except Exception:  # noqa: BLE001 - an older catalog without the workers table
        live = []
    if live:
        st.caption(
            "  \n".join(
                f":material/memory: Worker {w.label}: {w.state} · heartbeat {w.heartbeat_age_s:.0f} s ago" for w in live
            )
        )
        return
    df = runs(store)
    waiting = df[df["status"].isin(["queued", "running"])] if not df.empty else df
    if waiting.empty:
        return
    with st.container(border=True):
        st.warning(
            f"**No worker is running.** {len(waiting)} run(s) are queued or marked running but nothing is "
            "generating. Start a worker here or with `ttc worker --store " + str(store.root) + "`.",
            icon=":material/warning:",
        )
        if st.button("Start worker", key="_start_worker_banner", icon=":material/play_arrow:"):
            try:
                with st.spinner("starting a worker…"):
                    start = ensure_worker(store)
            except TtcError as e:
                render_error(e)
                return
            st.toast(f"worker {start.worker.label} " + ("started" if start.started else "was already running"))
            st.rerun()


def how_to_start(store: Store | None) -> None:
    with st.container(border=True):
        st.subheader("This store has no samples yet")
        st.markdown(
            f"Store: `{store_dir()}` (set `TTC_STORE` or `ttc dashboard --store DIR` to use another).\n\n"
            "To get started:\n"
            "1. open **Run** in the sidebar, pick a model and a task suite, and queue a run; or\n"
            "2. from a shell: `ttc run examples/smoke.yaml --store "
            + str(store_dir())
            + "` (about a minute on CPU).\n\n"
            "Every page fills in as soon as the worker writes its first samples."
        )
        if st.button("Open the Run page", key="_goto_run"):
            st.switch_page("app_pages/run.py")


COPY_LINK_HTML = """
<button id="ttc-copy-link" class="ttc-copy-link" type="button"
  title="Copy the link of this view: the page with every selection in its URL"
  style="font: inherit; font-size: 0.875rem; color: inherit; background: transparent; cursor: pointer;
         border: 1px solid rgba(128, 132, 149, 0.4); border-radius: 0.5rem; padding: 0.25rem 0.75rem;">
  Copy link
</button>
<script>
(() => {
  const button = document.getElementById("ttc-copy-link");
  if (!button) return;
  const copy = async (text) => {
    try {  // the Clipboard API needs a secure context (https or localhost) ...
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {  // ... elsewhere the older way
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      return ok;
    }
  };
  button.onclick = async () => {
    const link = window.location.href;  // read at the click: the URL holds the selections made since
    const ok = await copy(link);
    button.dataset.copied = ok ? link : "";
    button.textContent = ok ? "Link copied" : "Copy failed: take the link from the address bar";
    setTimeout(() => { button.textContent = "Copy link"; }, 2500);
  };
})();
</script>
"""
"""A button that copies the page's URL, read in the browser at the click (the server does not know the address
the user reached it by), query parameters and all: every selection the page keeps in the URL."""


def copy_link_button() -> None:
    st.html(COPY_LINK_HTML, width="content", unsafe_allow_javascript=True)


def ready_marker(name: str) -> None:
    """An invisible element the browser tests and bench wait for: the page script ran to its end."""
    st.html(f'<div class="ttc-page-ready" data-page="{name}" style="display:none"></div>')


def run_page(
    name: str,
    title: str,
    body: Callable[[Store], None],
    *,
    needs_samples: bool = True,
    caption: str = "",
    share: bool = False,
) -> None:
    """Title, banner, empty-store panel, then `body(store)`; every exception ends as one st.error. `share`: a
    copy-link button under the title (the pages whose selections live in the URL)."""
    st.title(title)
    if caption:
        st.caption(caption)
    if share:
        copy_link_button()
    try:
        store = open_store()
        if store is not None:
            worker_banner(store)
        if needs_samples and not has_samples(store):
            how_to_start(store)
        else:
            body(store)
    except Exception as err:  # noqa: BLE001 - st.stop/st.rerun are BaseException and pass through
        render_error(err)
    finally:
        ready_marker(name)
