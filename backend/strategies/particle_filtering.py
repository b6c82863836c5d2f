"""Particle filtering (Puri et al.): N particles; every round each open particle is extended by one step, each
particle is weighted by softmax(verifier score / T), and N particles are resampled with replacement by weight
(seeded, so a run is reproducible). Finished particles stay in the population and keep competing; the search
ends when every resampled particle is finished. Final pick: weighted vote over the final population."""

from __future__ import annotations

import numpy as np

from backend.engines.base import SamplingParams
from backend.strategies.context import SearchContext, last_step_of, seed_for
from backend.strategies.params import (
    Aggregation,
    Candidates,
    Delimiter,
    MaxRounds,
    SoftmaxTemperature,
    StepTokens,
    StrategyOptions,
    Temperature,
)
from backend.strategies.selectors import select
from backend.strategies.tree import Node, is_final_step, path_value


def resample(particles: list[Node], temperature: float, n: int, rng: np.random.Generator) -> list[Node]:
    values = np.array([p.value or 0.0 for p in particles], dtype=np.float64) / temperature
    w = np.exp(values - values.max())
    idx = rng.choice(len(particles), size=n, replace=True, p=w / w.sum())
    return [particles[i] for i in sorted(idx)]


class ParticleFilteringOptions(StrategyOptions):
    n: Candidates
    max_rounds: MaxRounds
    max_tokens: StepTokens
    delimiter: Delimiter
    aggregation: Aggregation
    temperature: Temperature
    softmax_temperature: SoftmaxTemperature


class ParticleFiltering:
    def run(self, ctx: SearchContext, cfg: dict) -> None:
        n, delim, agg = cfg["n"], cfg["delimiter"], cfg["aggregation"]
        population = {qi: [t.root] * n for qi, t in enumerate(ctx.trees)}
        done: set[int] = set()
        for rnd in range(1, cfg["max_rounds"] + 1):
            params = SamplingParams(
                temperature=cfg["temperature"], max_tokens=cfg["max_tokens"], seed=rnd, stop=(delim,) + ctx.stop
            )
            exps, wanted = [], {}
            for qi, parts in population.items():
                if qi in done:
                    continue
                groups: dict[int, list[Node]] = {}
                for p in parts:
                    if not p.is_final:
                        groups.setdefault(p.node_id, []).append(p)
                for same in groups.values():
                    exps.append(ctx.expansion(qi, same[0], len(same), params, delim))
                wanted[qi] = sum(len(g) for g in groups.values())
            exps = ctx.trim(exps)
            if not exps:
                break
            ctx.rounds += 1
            children: dict[int, list[Node]] = {qi: [] for qi in wanted}
            new = []
            for e, comps in zip(exps, ctx.generate(exps, last_step_of(delim))):
                for c, cost, _ in comps:
                    node = ctx.add_child(e, c, cost)
                    if is_final_step(c) or rnd == cfg["max_rounds"]:
                        ctx.close(e.qi, node, delim)
                    children[e.qi].append(node)
                    new.append((e.qi, node))
            ctx.score_last(new, delim)
            for _, nd in new:
                nd.value = path_value(nd, agg)
            for qi in wanted:
                got = children[qi]
                pool = [p for p in population[qi] if p.is_final] + got
                if len(got) < wanted[qi]:  # the budget cut this round: no more rounds for this question
                    done.add(qi)
                if not pool:
                    done.add(qi)
                    continue
                rng = np.random.default_rng(seed_for(ctx.seed, ctx.questions[qi].question_id, "resample", rnd))
                population[qi] = resample(pool, cfg["softmax_temperature"], n, rng)
                if all(p.is_final for p in population[qi]):
                    done.add(qi)
            if len(done) == len(population):
                break
        for qi, parts in population.items():
            for p in parts:
                if not p.is_final and p.kind != "root":
                    ctx.close(qi, p, delim)
            finals = [p for p in parts if p.is_final]
            if not finals:
                finals = ctx.trees[qi].finals
            select(finals, "weighted")
