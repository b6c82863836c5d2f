"""The dashboard's pages in sidebar order: the one list that app.py navigates and the tests and benchmarks visit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class PageEntry:
    path: str  # the page's script, relative to the repository root
    title: str
    icon: str
    url_path: str
    analysis: bool = True  # reads a pool of the store's runs (the pages with the run selection, quality strip, report)

    @property
    def name(self) -> str:
        """What the page writes in its ready marker (its file's stem)."""
        return PurePosixPath(self.path).stem


PAGES = (
    PageEntry("app_pages/run.py", "Run", ":material/play_circle:", "run", analysis=False),
    PageEntry("app_pages/coverage.py", "Coverage", ":material/trending_up:", "coverage"),
    PageEntry("app_pages/strategies.py", "Strategies", ":material/compare_arrows:", "strategies"),
    PageEntry("app_pages/cost_of_pass.py", "Cost-of-pass", ":material/payments:", "cost-of-pass"),
    PageEntry("app_pages/compute_optimal.py", "Compute-optimal", ":material/grid_on:", "compute-optimal"),
    PageEntry("app_pages/samples.py", "Samples", ":material/list_alt:", "samples"),
    PageEntry("app_pages/serving.py", "Serving", ":material/dns:", "serving", analysis=False),
)
"""The first is the default page, served at "/"."""
