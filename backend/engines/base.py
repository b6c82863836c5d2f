"""The `Engine` contract every inference backend implements (llama.cpp in-process, vLLM, any OpenAI-compatible
server). Strategies and the worker only ever see this protocol.

An engine takes a *batch* of requests and schedules all of them at once (continuous batching across its
parallel slots); `on_complete` fires as each request finishes so callers can stream results to the store
instead of waiting for the slowest request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from backend.ledger import ModelArch


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # None: no logprobs; K >= 0: chosen-token logprob plus the top K alternatives


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt, `n` completions. Each completion gets seed `params.seed + i` so results are reproducible and
    independent of how the engine schedules them."""

    prompt: str
    params: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1
    tag: Any = None  # caller's bookkeeping (question id, sample index, beam id...), returned untouched
    affinity: object = None  # requests with equal affinity share a prefix: an engine with per-slot KV caches runs them on one slot, in order


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | ...
    latency_s: float
    cached_prompt_tokens: int = 0  # the engine's report: stored, never charged
    seed: int | None = None
    logprobs: list[TokenLogprob] | None = None
    ledger_cached_tokens: int | None = None  # what a search's ledger charged as cached (strategies/context.py)

    @property
    def logprob_sum(self) -> float | None:
        return None if self.logprobs is None else float(sum(t.logprob for t in self.logprobs))

    @property
    def logprob_mean(self) -> float | None:
        if not self.logprobs:
            return None if self.logprobs is None else 0.0
        return float(sum(t.logprob for t in self.logprobs)) / len(self.logprobs)


OnComplete = Callable[[int, GenerationRequest, list[Completion]], None]
"""Called with (request index, request, its n completions) as soon as a request finishes, from any thread."""


@runtime_checkable
class Engine(Protocol):
    name: str  # the model's registry name or path
    arch: ModelArch  # architecture numbers for the FLOPs ledger
    exact_token_counts: bool  # count_tokens is the model's tokenizer (False: an upper bound, see the engine)

    def count_tokens(self, text: str) -> int:
        """The prompt tokens the engine reports for a completion of `text`, without generating: what
        backend.pricing prices a question's "1 sample" with."""
        ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: OnComplete | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[Completion]]:
        """Run every request concurrently; return completions in request order. If `should_stop()` turns true,
        requests not yet started are skipped (their entries stay None), an engine that can stop a completion mid-way
        (llama.cpp) gives up those in flight too (their entries stay None as well), and the call returns early."""
        ...

    def close(self) -> None: ...


def runs_follow_ups_inline(engine: object) -> bool:
    """Whether a `generate` called from `on_complete` runs on the slot that produced the completion, while the
    rest of the batch goes on (engines/threaded.py). Only then is judging a completion the moment it appears
    worthwhile; an engine that fires callbacks after the whole batch (vLLM) would run one small call per judge."""
    return bool(getattr(engine, "inline_follow_ups", False))
