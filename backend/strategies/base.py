"""The contract of a search strategy: the `Strategy` protocol (a parameter table, cross-field checks, `run`), the
optional sequential:parallel sweep, and `BaseStrategy` with the defaults. What strategies share lives beside it:
parameters (params.py), the tree (tree.py), the search context and its ledger rules (context.py), final
selection (selectors.py)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from backend.strategies.context import SearchContext
from backend.strategies.params import Param


@runtime_checkable
class Strategy(Protocol):
    name: str
    help: str
    params: tuple[Param, ...]
    needs_verifier: bool

    def check(self, cfg: dict) -> None:
        """Cross-field rules (e.g. n divisible by width); raise SpecError."""
        ...

    def requires_verifier(self, cfg: dict) -> bool:
        """Whether this configuration needs a verifier (the one home of that rule)."""
        ...

    def run(self, ctx: SearchContext, cfg: dict) -> None:
        """Grow every question's tree in ctx, mark finals and exactly one selected node per question."""
        ...


@runtime_checkable
class RatioSweep(Protocol):
    """A strategy that takes a sequential:parallel sweep (StrategySpec.ratios): it says how to split a budget."""

    def ratio_config(self, cfg: dict, n_attempts: int, ratio: str) -> dict:
        """The configuration of one point of the sweep at a budget of `n_attempts`."""
        ...


def sweeps_ratio(strategy: object) -> bool:
    """Whether `ratios:` may be given for this strategy: it implements `RatioSweep`."""
    return isinstance(strategy, RatioSweep)


class BaseStrategy:
    name = ""
    help = ""
    params: tuple[Param, ...] = ()
    needs_verifier = True

    def requires_verifier(self, cfg: dict) -> bool:
        """Whether this configuration needs a verifier: the strategy does, unless it is set to pick by majority."""
        return self.needs_verifier and cfg.get("select", "verifier") != "majority"

    def check(self, cfg: dict) -> None:
        return None
