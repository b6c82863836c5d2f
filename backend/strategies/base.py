"""The contract of a search strategy: the `Strategy` protocol (`run`) and the optional sequential:parallel sweep.
What a strategy declares beside it (name, help, parameters as an options model, whether it needs a verifier) is its
registry entry (backend/strategies/__init__.py). What strategies share lives beside this module: parameters
(params.py), the tree (tree.py), the search context and its ledger rules (context.py), final selection
(selectors.py)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from backend.strategies.context import SearchContext


@runtime_checkable
class Strategy(Protocol):
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        """Grow every question's tree in ctx, mark finals and exactly one selected node per question. `cfg`: the
        strategy's options, checked (`validate_config`)."""
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
