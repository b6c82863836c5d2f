"""Strategy controls generated from the strategy registry's parameter table (backend.strategies): a strategy or
parameter added there appears in the Run form without a page change. Values are checked by the registry's own
`validate_config`, so the form and a YAML spec fail the same way."""

from __future__ import annotations

import streamlit as st

from backend.errors import TtcError
from backend.strategies.base import sweeps_ratio


def _widget(strategy: str, p) -> object:
    key = f"strat_{strategy}_{p.name}"
    label = p.name
    if p.choices is not None:
        choices = list(p.choices)
        return st.selectbox(
            label, choices, index=choices.index(p.default) if p.default in choices else 0, key=key, help=p.help
        )
    if p.type is bool:
        return st.checkbox(label, value=bool(p.default), key=key, help=p.help)
    if p.type is int:
        return int(st.number_input(label, value=int(p.default), step=1, key=key, help=f"{p.help} ({p.allowed()})"))
    if p.type is float:
        return float(
            st.number_input(label, value=float(p.default), key=key, help=f"{p.help} ({p.allowed()})", format="%g")
        )
    raw = st.text_input(label, value=str(p.default).encode("unicode_escape").decode(), key=key, help=p.help)
    return raw.encode().decode("unicode_escape")


def strategy_controls(table: dict, problems: list) -> list[dict]:
    """A multiselect of registered strategies and, per chosen one, one widget per parameter. Returns
    [{"name": ..., "config": {...}}] with the registry's defaults filled in and checked."""
    from backend.strategies import validate_config

    names = list(table)
    chosen = st.multiselect("Search strategies", names, key="strategies", help="From backend.strategies.STRATEGIES")
    out = []
    for name in chosen:
        strategy = table[name]
        with st.expander(f"{name} parameters", expanded=True):
            doc = (type(strategy).__doc__ or "").strip().splitlines()
            if doc:
                st.caption(doc[0])
            cols = st.columns(3)
            config = {}
            for i, p in enumerate(strategy.params):
                with cols[i % 3]:
                    config[p.name] = _widget(name, p)
            entry = {"name": name}
            if sweeps_ratio(strategy):
                raw = st.text_input(
                    "sequential:parallel sweep",
                    value="",
                    key=f"strat_{name}_ratios",
                    help="e.g. 1:0, 1:1, 0:1 — at each budget one search per ratio, the budget's attempts split into "
                    "chain length × chains (Snell §6); empty: the chains and chain_length above",
                )
                ratios = [r.strip() for r in raw.split(",") if r.strip()]
                if ratios:
                    entry["ratios"] = ratios
            try:
                entry["config"] = validate_config(name, config)
                out.append(entry)
            except TtcError as e:
                st.error(str(e))
                problems.append(e)
    return out
