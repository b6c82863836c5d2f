"""Search strategies behind one `Strategy` protocol (backend/strategies/base.py) and ONE registry.

Each strategy carries its parameter table (`params`: name, default, range or choices, help) as data: the
dashboard's forms and the docs are generated from it, and `validate_config` checks a spec against it."""

from __future__ import annotations

from backend.errors import SpecError, require
from backend.strategies.base import Strategy
from backend.strategies.beam_search import BeamSearch
from backend.strategies.best_of_n import BestOfN
from backend.strategies.budget_forcing import BudgetForcing
from backend.strategies.context import SearchContext
from backend.strategies.dvts import DVTS
from backend.strategies.first_finish import FirstFinish
from backend.strategies.lookahead import Lookahead
from backend.strategies.majority import Majority
from backend.strategies.params import Param
from backend.strategies.particle_filtering import ParticleFiltering
from backend.strategies.rebase import Rebase
from backend.strategies.sequential_revisions import SequentialRevisions
from backend.strategies.weighted_best_of_n import WeightedBestOfN

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        BestOfN(),
        WeightedBestOfN(),
        Majority(),
        BeamSearch(),
        Lookahead(),
        DVTS(),
        SequentialRevisions(),
        BudgetForcing(),
        ParticleFiltering(),
        FirstFinish(),
        Rebase(),
    )
}


def get_strategy(name: str) -> Strategy:
    return require(STRATEGIES, name, field="strategy.name", kind="strategy")


def param_table(name: str) -> list[dict]:
    """The strategy's parameters as rows (name, type, default, allowed, help): what a form is built from."""
    return [
        {"name": p.name, "type": p.type.__name__, "default": p.default, "allowed": p.allowed(), "help": p.help}
        for p in get_strategy(name).params
    ]


def validate_config(name: str, config: dict | None = None) -> dict:
    """Defaults filled in, every value checked against the table, cross-field rules applied. A typo fails
    with the field's name and the allowed names."""
    strategy = get_strategy(name)
    table = {p.name: p for p in strategy.params}
    config = dict(config or {})
    for key in config:
        if key not in table:
            raise SpecError(f"strategy.{key}", f"not a parameter of {name}", ", ".join(table))
    cfg = {p.name: p.check(config.get(p.name, p.default), f"strategy.{p.name}") for p in strategy.params}
    strategy.check(cfg)
    return cfg


__all__ = ["STRATEGIES", "Param", "SearchContext", "Strategy", "get_strategy", "param_table", "validate_config"]
