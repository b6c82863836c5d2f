"""A process reward model served by vLLM's pooling runner (a GPU, or the CPU build in .venv-vllm).

Wraps `backend.engines.vllm_engine.VLLMRewardScorer` (`score(prompts) -> list[list[float]]`, one reward per
step of each prompt), imported only when first used so the CPU install never needs vLLM. The PRM reads the
question and the steps joined by its step separator; it returns one score per step in a single pass, so
`first` only trims what is returned."""

from __future__ import annotations

from collections.abc import Sequence

from backend.errors import EngineError
from backend.ledger import ModelArch, prefill_flops
from backend.verifiers.base import ScoreRequest, StepScores, Usage

STEP_SEPARATOR = "\n\n"


class PRMVerifier:
    name = "prm_vllm"

    def __init__(self, model: str, step_separator: str = STEP_SEPARATOR, scorer=None, arch: ModelArch | None = None):
        self.model = model
        self.step_separator = step_separator
        self._scorer = scorer
        self._arch = arch

    @property
    def scorer(self):
        if self._scorer is None:
            from backend.engines.vllm_engine import VLLMRewardScorer
            from backend.models.registry import resolve_model

            # a registry name reaches vLLM as its converted directory, priced by its GGUF's numbers
            resolved = resolve_model(self.model, field="verifiers.prm_vllm.model", hub_ok=True)
            self._scorer = VLLMRewardScorer(
                resolved.hf_source or self.model, step_separator=self.step_separator, arch=self._arch or resolved.arch
            )
        return self._scorer

    @property
    def arch(self) -> ModelArch:
        """The reward model's own architecture: its passes are charged at its size, never the generator's, never 0."""
        arch = self._arch or getattr(self.scorer, "arch", None)
        if arch is None:
            raise EngineError(
                f"prm_vllm: the architecture of reward model {self.model!r} is unknown; cannot charge its FLOPs"
            )
        return arch

    def _tokens(self, text: str) -> int:
        count = getattr(self.scorer, "count_tokens", None)
        return int(count(text)) if count else len(text.encode("utf-8"))  # bytes bound the tokens of a BPE model

    def prompt(self, r: ScoreRequest) -> str:
        return f"{r.question.text}{self.step_separator}" + "".join(s + self.step_separator for s in r.steps)

    def score(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        prompts = [self.prompt(r) for r in requests]
        rewards = self.scorer.score(prompts) if prompts else []
        out = []
        for r, p, per_step in zip(requests, prompts, rewards):
            scores = [float(x) for x in list(per_step)[: len(r.steps)]]
            scores += [0.0] * (len(r.steps) - len(scores))
            out.append(StepScores(scores[r.first :], [Usage(self._tokens(p))]))
        return out

    def estimate_flops(self, context_tokens: int, new_tokens: int, n_steps: int = 1) -> float:
        return float(prefill_flops(self.arch, 2 * (context_tokens + new_tokens)))
