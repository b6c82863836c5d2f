"""Search strategies behind one `Strategy` protocol (backend/strategies/base.py) and one registry (backend/registry.py).

An entry declares the strategy's name, help, parameters as a typed options model (backend/strategies/params.py:
name, default, range or choices, help per field), a factory and whether it needs a verifier: the spec check
(`validate_config`), `ttc strategies`, README's table and the dashboard's form are derived from it. A new strategy is
one module and one `register_strategy` line."""

from __future__ import annotations

from dataclasses import dataclass

from backend.registry import Entry, Registry
from backend.strategies.base import Strategy, sweeps_ratio
from backend.strategies.beam_search import BeamSearch, StepSearchOptions
from backend.strategies.best_of_n import BestOfN
from backend.strategies.budget_forcing import BudgetForcing, BudgetForcingOptions
from backend.strategies.context import SearchContext
from backend.strategies.dvts import DVTS
from backend.strategies.first_finish import FirstFinish
from backend.strategies.lookahead import Lookahead, LookaheadOptions
from backend.strategies.majority import Majority
from backend.strategies.params import SampleOptions, ScoredSampleOptions, StrategyOptions, parameter_table
from backend.strategies.particle_filtering import ParticleFiltering, ParticleFilteringOptions
from backend.strategies.rebase import Rebase, RebaseOptions
from backend.strategies.sequential_revisions import SequentialRevisions, SequentialRevisionsOptions
from backend.strategies.weighted_best_of_n import WeightedBestOfN


@dataclass(frozen=True)
class StrategyEntry(Entry):
    """factory() -> Strategy; its options model's fields are the strategy's parameters."""

    needs_verifier: bool = True

    def requires_verifier(self, cfg: dict) -> bool:
        """Whether this configuration needs a verifier (the one home of that rule): a strategy that needs one does,
        unless it is set to pick by majority."""
        return self.needs_verifier and cfg.get("select", "verifier") != "majority"

    @property
    def takes_ratios(self) -> bool:
        """Whether `ratios:` may be given: the strategy implements the sequential:parallel sweep (`RatioSweep`)."""
        return sweeps_ratio(self.factory())


STRATEGIES: Registry[StrategyEntry] = Registry("strategy", unknown="not a parameter of {name}")


def register_strategy(entry: StrategyEntry) -> StrategyEntry:
    """Add a strategy to the registry; the spec check, `ttc strategies`, README and the Run form read it from here."""
    return STRATEGIES.register(entry)


register_strategy(
    StrategyEntry(
        "best_of_n", "Sample N solutions, keep the one the verifier scores highest.", ScoredSampleOptions, BestOfN
    )
)
register_strategy(
    StrategyEntry(
        "weighted_best_of_n",
        "Sample N solutions; the answer with the largest sum of verifier scores wins.",
        ScoredSampleOptions,
        WeightedBestOfN,
    )
)
register_strategy(
    StrategyEntry(
        "majority",
        "Sample N solutions; the most frequent answer wins (ties: the earliest sampled).",
        SampleOptions,
        Majority,
        needs_verifier=False,
    )
)
register_strategy(
    StrategyEntry(
        "beam_search",
        "Step-level beam search guided by the verifier: keep the top N/M beams, expand each M times.",
        StepSearchOptions,
        BeamSearch,
    )
)
register_strategy(
    StrategyEntry(
        "lookahead",
        "Beam search that scores each candidate by the verifier's score at the end of a k-step greedy rollout.",
        LookaheadOptions,
        Lookahead,
    )
)
register_strategy(
    StrategyEntry(
        "dvts", "Diverse verifier tree search: N/M independent greedy subtrees of width M.", StepSearchOptions, DVTS
    )
)
register_strategy(
    StrategyEntry(
        "sequential_revisions",
        "Chains of revisions, each seeing the chain's last attempts; pick by verifier or majority.",
        SequentialRevisionsOptions,
        SequentialRevisions,
    )
)
register_strategy(
    StrategyEntry(
        "budget_forcing",
        "s1 budget forcing: append 'Wait' when the model stops early, force an answer at the thinking cap.",
        BudgetForcingOptions,
        BudgetForcing,
        needs_verifier=False,
    )
)
register_strategy(
    StrategyEntry(
        "particle_filtering",
        "Extend every particle one step, weight by softmax(score / T), resample N particles by weight.",
        ParticleFilteringOptions,
        ParticleFiltering,
    )
)
register_strategy(
    StrategyEntry(
        "first_finish",
        "Launch n samples, keep the first to finish (fewest tokens among those that ended on their own).",
        SampleOptions,
        FirstFinish,
        needs_verifier=False,
    )
)
register_strategy(
    StrategyEntry(
        "rebase",
        "Reward-balanced tree search: share each round's width among open nodes by softmax of their reward.",
        RebaseOptions,
        Rebase,
    )
)


def get_strategy(name: str, field: str = "strategy.name") -> StrategyEntry:
    return STRATEGIES.lookup(name, field)


def create_strategy(name: str) -> Strategy:
    return get_strategy(name).factory()


def param_table(name: str) -> list[dict]:
    """The strategy's parameters as rows (name, type, default, allowed, help), from its options model."""
    return parameter_table(get_strategy(name).options)


def validate_config(name: str, config: dict | None = None, field: str = "strategy", name_field: str = "") -> dict:
    """Defaults filled in, every value checked against the options model, cross-field rules applied. A typo fails
    with the field's name (`field`.<parameter>; an unknown strategy: `name_field`, default `field`.name) and the
    allowed names. The result is what a search stores as its configuration."""
    return STRATEGIES.options(name, dict(config or {}), field, name_field or f"{field}.name").model_dump()


__all__ = [
    "STRATEGIES",
    "SearchContext",
    "Strategy",
    "StrategyEntry",
    "StrategyOptions",
    "create_strategy",
    "get_strategy",
    "param_table",
    "register_strategy",
    "validate_config",
]
