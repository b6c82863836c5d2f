"""The FLOPs ledger: one way of counting compute for every strategy, so budgets compare fairly.

Forward FLOPs for one token at context position t (DESIGN.md §5, Kaplan et al.):
    f(t) = 2 · (N + 2 · n_layers · d_model · t)
so processing tokens at positions a+1 .. b costs the closed form
    F(a, b) = 2·N·(b−a) + 4·n_layers·d_model · (Σ_{t=a+1..b} t).

A generation of D tokens after a prompt of P tokens, of which c were served from the prefix cache, costs
    prefill = F(c, P)           (the cached positions are not recomputed)
    decode  = F(P, P + D)
Prompt tokens are counted once per distinct cached prefix: a pool of n samples of one prompt pays one prefill.
Verifier calls are charged at the verifier model's size through the same function, in their own column.
What a budget unit ("1 sample") costs and how a pass is priced live in `backend.pricing`, the one pricing home.

"Served from the prefix cache" is the *idealised* cache of one search (`PrefixCache`): a prompt counts as cached
up to the longest text this search has already processed that is a prefix of it. Not the engine's report: with
llama.cpp that depends on which slot a request happened to land in, so charging it would make the ledger
irreproducible and budgets soft. The engine's report is still stored (it is what `bench/search.py` measures).

N is the number of parameters touched by the forward matmuls: every tensor but the token-embedding lookup,
plus the output projection (which *is* the embedding matrix when the two are tied). Architecture numbers are
read from the GGUF metadata (`backend.models.gguf_arch`), never hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelArch:
    """What the ledger needs to know about a model."""

    n_params: int  # forward-matmul parameters (see module docstring)
    n_layers: int
    d_model: int
    n_ctx_train: int = 0
    vocab_size: int = 0
    architecture: str = ""

    def token_flops(self, position: float) -> float:
        """FLOPs of one forward token at context position `position`."""
        return 2.0 * (self.n_params + 2.0 * self.n_layers * self.d_model * position)


def span_flops(arch: ModelArch, start, stop):
    """FLOPs for positions start+1 .. stop (vectorised: numpy arrays or scalars)."""
    start = np.asarray(start, dtype=np.float64)
    stop = np.asarray(stop, dtype=np.float64)
    n = np.maximum(stop - start, 0.0)
    pos_sum = (start + 1.0 + stop) * n / 2.0  # Σ t for t in (start, stop]
    out = 2.0 * arch.n_params * n + 4.0 * arch.n_layers * arch.d_model * pos_sum
    return out if out.ndim else float(out)


def prefill_flops(arch: ModelArch, prompt_tokens, cached_tokens=0):
    """Cost of reading a prompt, minus the positions served from the prefix cache."""
    cached = np.minimum(np.asarray(cached_tokens, dtype=np.float64), np.asarray(prompt_tokens, dtype=np.float64))
    return span_flops(arch, cached, prompt_tokens)


def decode_flops(arch: ModelArch, prompt_tokens, completion_tokens):
    """Cost of generating `completion_tokens` after a prompt of `prompt_tokens`."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    return span_flops(arch, p, p + np.asarray(completion_tokens, dtype=np.float64))


def pass_flops(arch: ModelArch, prompt_tokens, cached_tokens, completion_tokens):
    """One forward pass: the uncached part of the prompt plus the generated tokens, prefill(P, c) + decode(P, D).
    What every charge and every price is made of (backend.pricing re-exports it as the pricing home's)."""
    return prefill_flops(arch, prompt_tokens, cached_tokens) + decode_flops(arch, prompt_tokens, completion_tokens)


def sampling_flops(arch: ModelArch, prompt_tokens: float, completion_tokens: float, n_samples) -> np.ndarray:
    """Budget of n independent samples of one prompt: one shared prefill plus n decodes (prefix cached)."""
    n = np.asarray(n_samples, dtype=np.float64)
    return prefill_flops(arch, prompt_tokens) + n * decode_flops(arch, prompt_tokens, completion_tokens)


def samples_affordable(budget_flops, once, per_sample) -> np.ndarray:
    """Whole samples a budget buys when they share one prefill `once` and each costs `per_sample` (its decode, plus a
    verifier pass where one scores it): floor((budget − once) / per_sample), 0 when not even the prefill fits.
    The one budget → samples rule; vectorised over any broadcastable shapes."""
    b, once, per = (np.asarray(x, dtype=np.float64) for x in (budget_flops, once, per_sample))
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.floor((b - once) / np.maximum(per, 1e-300))
    return np.maximum(np.nan_to_num(n, nan=0.0, posinf=2.0**62), 0).astype(np.int64)


@dataclass
class Ledger:
    """Running totals for one strategy execution, split by who spent it.

    Strategies charge every engine call here; `remaining()` lets them stop before overspending."""

    budget_flops: float | None = None
    generator_flops: float = 0.0
    verifier_flops: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    verifier_tokens: int = 0

    @property
    def total(self) -> float:
        return self.generator_flops + self.verifier_flops

    def remaining(self) -> float:
        return float("inf") if self.budget_flops is None else self.budget_flops - self.total

    def charge_generation(
        self, arch: ModelArch, prompt_tokens: int, cached_tokens: int, completion_tokens: int
    ) -> float:
        cost = float(pass_flops(arch, prompt_tokens, cached_tokens, completion_tokens))
        self.generator_flops += cost
        self.prompt_tokens += int(prompt_tokens) - int(min(cached_tokens, prompt_tokens))
        self.completion_tokens += int(completion_tokens)
        return cost

    def charge_verifier(
        self, arch: ModelArch, prompt_tokens: int, cached_tokens: int, completion_tokens: int = 0
    ) -> float:
        cost = float(pass_flops(arch, prompt_tokens, cached_tokens, completion_tokens))
        self.verifier_flops += cost
        self.verifier_tokens += int(prompt_tokens) - int(min(cached_tokens, prompt_tokens)) + int(completion_tokens)
        return cost


class PrefixCache:
    """Every text one question's search has processed (prompts, prompt + completion, verifier contexts) with its
    token count. `cached(prompt)` is what the ledger charges as cached: deterministic, given the tree.

    The answer is the most tokens of *any* stored text that prefixes the prompt (not just the longest text), so
    it never shrinks as texts are added: an estimate made earlier never finds more cached than the charge."""

    def __init__(self) -> None:
        self._tokens: dict[str, int] = {}

    def cached(self, prompt: str, prompt_tokens: int | None = None) -> int:
        best = max((t for text, t in self._tokens.items() if prompt.startswith(text)), default=0)
        return best if prompt_tokens is None else min(best, int(prompt_tokens))

    def add(self, text: str, tokens: int) -> None:
        if text:
            self._tokens.setdefault(text, max(int(tokens), 0))  # the first count stays: values never shrink

    def __len__(self) -> int:
        return len(self._tokens)


def matched_compute_multiplier(m: float, r: float) -> float:
    """Snell et al. §7: a model M× larger costs the small one M + 3·(D_pretrain/D_inference)·(M−1) times its
    inference compute, with R = D_inference / D_pretrain."""
    if r <= 0:
        raise ValueError("R = D_inference / D_pretrain must be > 0")
    if m < 1:
        raise ValueError("M (size ratio of the larger model) must be >= 1")
    return m + 3.0 * (1.0 / r) * (m - 1.0)
