"""The FLOPs ledger: one way of counting compute for every strategy, so budgets compare fairly.

Forward FLOPs for one token at context position t: `ModelArch.token_flops` (the formula, its convention and
its citation); processing positions a+1 .. b costs its closed-form sum, `span_flops`.

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
read from the GGUF metadata (`backend.models.gguf_meta.GGUFHeader.arch`) or, for a Hugging Face model, from
its config (`backend.engines.vllm_engine.arch_from_model_config`), never hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelArch:
    """What the ledger needs to know about a model.

    `d_attn` is the attention width n_heads · head_dim: the length of the vectors the attention products multiply,
    which need not be d_model (Gemma 3 uses head_dim 256 whatever its width: 4 × 256 = 1024 against d_model 640
    for the 270M model). With grouped-query attention every query head still takes its own products, so n_heads
    counts query heads, not key/value heads. Where the key and value head sizes differ, d_attn is their mean
    (n_heads · (d_k + d_v) / 2), which keeps `token_flops` exact. 0 (the default, for callers that predate it)
    means d_model."""

    n_params: int  # forward-matmul parameters (see module docstring)
    n_layers: int
    d_model: int
    n_ctx_train: int = 0
    vocab_size: int = 0
    architecture: str = ""
    d_attn: int = 0  # n_heads · head_dim; 0: d_model

    @property
    def attention_width(self) -> int:
        return self.d_attn or self.d_model

    @staticmethod
    def attention_width_of(n_heads: int, d_model: int, d_k: int | None = None, d_v: int | None = None) -> int:
        """d_attn from a model's header: n_heads query heads of d_k (keys) and d_v (values), each d_model / n_heads
        where the header does not say (as llama.cpp and Hugging Face read them)."""
        if n_heads < 1:
            raise ValueError(f"a model needs at least one attention head, got {n_heads}")
        d_k = d_k or d_model // n_heads
        d_v = d_v or d_model // n_heads
        return n_heads * (d_k + d_v) // 2

    def token_flops(self, position: float) -> float:
        """Forward FLOPs of one token at context position t:

            f(t) = 2·N + 4 · n_layers · d_attn · t

        2·N: one multiply-add per parameter of the forward matmuls (Kaplan et al. 2020, "Scaling Laws for Neural
        Language Models", §2.1 and Table 1: C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn). Attention over the t
        positions a token attends to takes two products per layer, each 2·t·d_attn FLOPs: the logits QKᵀ and the
        weighted sum of the values AV. Kaplan et al.'s Table 1 counts only the first (its context-dependent
        attention row, 2·n_layer·n_ctx·d_attn: the masked QKᵀ logits), so this counts twice their attention term,
        on purpose: both products are computed for every token. Softmax, norms and activations are left out
        (lower order, as in Kaplan et al.). Full causal attention on every layer is assumed: a sliding-window
        layer (Gemma 3's local layers) attends to at most its window, so beyond the window this overcounts it."""
        return 2.0 * self.n_params + 4.0 * self.n_layers * self.attention_width * position


def span_flops(arch: ModelArch, start, stop):
    """FLOPs for positions start+1 .. stop (vectorised: numpy arrays or scalars): Σ `ModelArch.token_flops`(t)
    over t = start+1 .. stop, in closed form."""
    start = np.asarray(start, dtype=np.float64)
    stop = np.asarray(stop, dtype=np.float64)
    n = np.maximum(stop - start, 0.0)
    pos_sum = (start + 1.0 + stop) * n / 2.0  # Σ t for t in (start, stop]
    out = 2.0 * arch.n_params * n + 4.0 * arch.n_layers * arch.attention_width * pos_sum
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
    return np.clip(np.nan_to_num(n, nan=0.0, posinf=2.0**62), 0, 2.0**62).astype(np.int64)  # no int64 wrap-around


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
