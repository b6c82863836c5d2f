"""Dashboard load times in a real browser: every page of `streamlit run app.py`, opened in headless Chromium
(Playwright driving Debian's /usr/bin/chromium) against a synthetic store of about 1M samples.

A page counts as loaded when its script has run to the end (the invisible `.ttc-page-ready` marker every page
writes last) and Streamlit's running indicator is gone. Three timings per page: `first load` (a full browser
load with cold caches: the pool is read from the shards and its metrics computed), `reload` (a full browser
load again, results now cached on the store's shard fingerprint; includes booting Streamlit's JavaScript) and
`navigate` (opening the page from the sidebar of the running app, the slower of two rounds: what a user sees
moving between pages). Then the study report of the store's first model (`ttc report --model M -o FILE`, in a fresh
process as a user runs it: imports, pool, study and HTML). The last line is
`RESULT slowest_page_s=<slowest navigate> report_s=<the report's seconds>`.

    python -m bench.ui [--store DIR] [--questions 500 --samples 1000]

The server and browser helpers here are shared with tests/ui/test_browser_e2e.py."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/ui.py` as well as `python -m bench.ui`
from app_pages import PAGES as APP_PAGES  # noqa: E402 - after the path fix above

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# (url path, page name written in the ready marker) of app_pages.PAGES; the default page lives at "/"
PAGES = [("" if i == 0 else p.url_path, p.name) for i, p in enumerate(APP_PAGES)]
TITLES = {url: p.title for (url, _), p in zip(PAGES, APP_PAGES)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@contextmanager
def streamlit_server(
    store_dir: Path, log_path: Path | None = None, env: dict | None = None, start_timeout_s: float = 60
):
    """`streamlit run app.py` on a free loopback port against `store_dir`; yields the base URL; killed after."""
    port = free_port()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
            "--server.runOnSave",
            "false",
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {}), "TTC_STORE": str(store_dir)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", start_timeout_s, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()


@contextmanager
def chromium(downloads: bool = False):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=downloads)
            yield context
        finally:
            browser.close()


def wait_ready(page, name: str, timeout_s: float = 120) -> None:
    """Until the page script has run to its end and Streamlit is idle."""
    page.wait_for_selector(f'.ttc-page-ready[data-page="{name}"]', state="attached", timeout=timeout_s * 1000)
    page.wait_for_function(
        '() => !document.querySelector(\'[data-testid="stStatusWidget"] [data-testid="stStatusWidgetRunningIcon"]\')'
        " && !document.querySelector('[data-testid=\"stSpinner\"]')",
        timeout=timeout_s * 1000,
    )


def load_page(page, base: str, url_path: str, name: str, timeout_s: float = 120) -> float:
    t0 = time.perf_counter()
    page.goto(f"{base}/{url_path}", wait_until="domcontentloaded")
    wait_ready(page, name, timeout_s)
    return time.perf_counter() - t0


def navigate(page, url_path: str, name: str, timeout_s: float = 120) -> float:
    """Open a page from the sidebar, as a user moves around the running app (no browser reload)."""
    t0 = time.perf_counter()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=TITLES[url_path], exact=True).click()
    wait_ready(page, name, timeout_s)
    return time.perf_counter() - t0


def page_problems(page) -> list[str]:
    """Exceptions or tracebacks visible on the page."""
    out = [e.inner_text()[:300] for e in page.query_selector_all('[data-testid="stException"]')]
    body = page.inner_text("body")
    if "Traceback (most recent call last)" in body:
        out.append("traceback text on the page")
    return out


def study_report_seconds(store_dir: Path, out: Path) -> float:
    """Seconds `ttc report` takes to write the first model's study (every run of the store) as one HTML file."""
    from store import Store

    model = Store.open(store_dir, create=False).query("SELECT min(model) AS m FROM samples")["m"].iloc[0]
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "backend.cli", "report", "--store", str(store_dir), "--model", model, "-o", str(out)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - t
    if not out.is_file():
        raise RuntimeError(f"ttc report wrote no {out}")
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=None, help="an existing store (default: build a synthetic one)")
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--samples", type=int, default=1000)
    a = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt install chromium", file=sys.stderr)
        return 2
    tmp = tempfile.TemporaryDirectory(prefix="ttc-bench-ui-")
    store_dir = a.store
    if store_dir is None:
        from bench.synthetic_store import make_synthetic_store

        store_dir = Path(tmp.name) / "store"
        t = time.perf_counter()
        make_synthetic_store(store_dir, a.questions, a.samples)
        n = 2 * a.questions * a.samples
        print(f"synthetic store: {n:,} samples in {time.perf_counter() - t:.1f} s at {store_dir}")
    reload_s, nav_s = {}, {}
    with streamlit_server(store_dir, Path(tmp.name) / "streamlit.log") as base, chromium() as ctx:
        page = ctx.new_page()
        for url_path, name in PAGES:  # first visit: full page load, pool loaded and metrics computed
            reload_s[url_path] = [load_page(page, base, url_path, name)]
            problems = page_problems(page)
            if problems:
                print(f"{url_path}: PROBLEMS {problems}")
        for url_path, name in PAGES:  # full reload again, results now cached
            reload_s[url_path].append(load_page(page, base, url_path, name))
        for _ in range(2):  # moving between pages in the running app, as a user does
            for url_path, name in PAGES[1:] + PAGES[:1]:
                nav_s.setdefault(url_path, []).append(navigate(page, url_path, name))
    print(f"{'page':16s} {'first load':>10s} {'reload':>8s} {'navigate':>9s}")
    for url_path, _ in PAGES:
        first, again = reload_s[url_path]
        print(f"{url_path or 'run':16s} {first:9.2f}s {again:7.2f}s {max(nav_s[url_path]):8.2f}s")
    print(f"slowest first load (cold cache, incl. browser boot): {max(v[0] for v in reload_s.values()):.2f} s")
    print(f"slowest full reload (warm cache, incl. browser boot): {max(v[1] for v in reload_s.values()):.2f} s")
    slowest = max(max(v) for v in nav_s.values())
    report_s = study_report_seconds(store_dir, Path(tmp.name) / "study.html")
    print(f"study report (ttc report, first model, fresh process): {report_s:.2f} s")
    tmp.cleanup()
    print(f"RESULT slowest_page_s={slowest:.2f} report_s={report_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
