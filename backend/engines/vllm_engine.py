"""GPU engine: vLLM in-process (`vllm.LLM`), plus a process-reward scorer through vLLM's pooling runner.

Written against vLLM 0.33 (read in its source: `vllm/entrypoints/llm.py`, `vllm/sampling_params.py`,
`vllm/outputs.py`, `vllm/v1/engine/parallel_sampling.py`, `vllm/entrypoints/pooling/offline.py`). Facts the design
rests on:
- `LLM.generate(prompts, [SamplingParams, ...])` schedules the whole list itself (continuous batching, prefix
  caching) and returns one `RequestOutput` per prompt in input order, so a batch is ONE `generate` call and
  `on_complete` fires per request once it returns.
- With `n > 1` and `seed = s`, vLLM gives child i the seed `s + i` (`ParentRequest._get_child_sampling_params`):
  exactly this project's contract, so a request maps to one vLLM request with `n`.
- Greedy sampling (temperature < 1e-5) with `n > 1` is rejected ("n must be 1 when using greedy sampling"), so such
  a request is sent as n requests with n = 1.
- vLLM 0.33 ships no GGUF loader; the shipped GGUF models run on llama.cpp, and vLLM takes a Hugging Face model id
  or a local HF directory. Architecture numbers then come from vLLM's `ModelConfig` (layers, hidden size, vocab)
  and the parameter count from the checkpoint's safetensors headers (no weights are read twice, nothing is
  shipped to the engine-core process, which would need VLLM_ALLOW_INSECURE_SERIALIZATION).

The mapping from vLLM outputs to `Completion` is pure (duck-typed) so it is unit-tested without vLLM or a GPU."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from backend.engines.base import (
    Completion,
    GenerationRequest,
    OnComplete,
    SamplingParams,
    TokenLogprob,
)
from backend.errors import EngineError
from backend.ledger import ModelArch
from backend.models.registry import ResolvedModel

GPU_INSTALL_HINT = "pip install -e '.[gpu]' on a CUDA machine"
GREEDY_EPS = 1e-5  # vllm.sampling_params._SAMPLING_EPS: below this temperature vLLM samples greedily


# ---- pure mapping (unit-tested with stand-ins) -------------------------------------------------------------------


def vllm_sampling_kwargs(params: SamplingParams, n: int, seed: int | None) -> dict:
    """Keyword arguments for `vllm.SamplingParams`."""
    kw: dict[str, Any] = {
        "n": n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "seed": seed,
    }
    if params.stop:
        kw["stop"] = list(params.stop)
    if params.logprobs is not None:
        kw["logprobs"] = max(int(params.logprobs), 1)  # same as the llama.cpp body: at least the top alternative
    return kw


def plan_batch(requests: Sequence[GenerationRequest]) -> list[tuple[int, int, int, int | None]]:
    """Split requests into vLLM requests: (request index, first completion index, n, seed).

    One vLLM request per request (vLLM seeds child i with seed + i), except greedy requests with n > 1, which vLLM
    rejects and which go as n single requests."""
    plan: list[tuple[int, int, int, int | None]] = []
    for ri, r in enumerate(requests):
        seed = r.params.seed
        if r.n > 1 and r.params.temperature < GREEDY_EPS:
            plan.extend((ri, i, 1, None if seed is None else seed + i) for i in range(r.n))
        elif r.n > 0:
            plan.append((ri, 0, r.n, seed))
    return plan


def _decoded(token_id: int, lp: Any) -> str:
    tok = getattr(lp, "decoded_token", None)
    return str(token_id) if tok is None else tok


def map_logprobs(token_ids: Sequence[int], positions: Iterable[Mapping[int, Any] | None], k: int) -> list[TokenLogprob]:
    """vLLM's per-position `{token_id: Logprob(logprob, rank, decoded_token)}` (list or FlatLogprobs) to
    TokenLogprobs: the sampled token's logprob, and the top-k alternatives (by rank; the sampled token is among
    them when it ranks within k, as llama.cpp reports it)."""
    out = []
    for tid, pos in zip(token_ids, positions):
        pos = pos or {}
        chosen = pos.get(tid)
        ranked = sorted(pos.items(), key=lambda kv: (getattr(kv[1], "rank", None) or 1 << 30, -kv[1].logprob))
        top = {_decoded(t, lp): float(lp.logprob) for t, lp in ranked if (getattr(lp, "rank", None) or 1 << 30) <= k}
        if not top:  # ranks missing: keep the k best by value
            top = {_decoded(t, lp): float(lp.logprob) for t, lp in ranked[:k]}
        out.append(
            TokenLogprob(
                _decoded(tid, chosen) if chosen is not None else str(tid),
                float(chosen.logprob) if chosen is not None else float("-inf"),
                top,
            )
        )
    return out


def request_latency(request_output: Any, fallback_s: float) -> float:
    """Queue-to-last-token time from vLLM's engine-core timestamps when stats were kept, else `fallback_s`."""
    m = getattr(request_output, "metrics", None)
    queued, last = getattr(m, "queued_ts", 0.0) or 0.0, getattr(m, "last_token_ts", 0.0) or 0.0
    return float(last - queued) if queued > 0 and last > queued else float(fallback_s)


def map_request_output(
    request_output: Any, first_seed: int | None, logprobs_k: int | None, latency_s: float
) -> list[Completion]:
    """One vLLM `RequestOutput` (prompt_token_ids, num_cached_tokens, outputs: [CompletionOutput(index, text,
    token_ids, cumulative_logprob, logprobs, finish_reason)]) to its completions, ordered by `index`.

    `num_cached_tokens` is per request: with n > 1 every completion carries it, and the ledger counts the prompt
    once per distinct prefix anyway."""
    prompt_tokens = len(getattr(request_output, "prompt_token_ids", None) or [])
    cached = int(getattr(request_output, "num_cached_tokens", None) or 0)
    comps = []
    for out in sorted(request_output.outputs, key=lambda o: o.index):
        token_ids = list(out.token_ids)
        lps = None
        if logprobs_k is not None:
            lps = map_logprobs(token_ids, out.logprobs or [], max(int(logprobs_k), 1))
        comps.append(
            Completion(
                text=out.text,
                prompt_tokens=prompt_tokens,
                completion_tokens=len(token_ids),
                finish_reason=str(out.finish_reason or "stop"),
                latency_s=latency_s,
                cached_prompt_tokens=min(cached, prompt_tokens),
                seed=None if first_seed is None else first_seed + out.index,
                logprobs=lps,
            )
        )
    return comps


def step_rewards(data: Any, positive_label: int = 1) -> list[float]:
    """A pooled token-classify output to one reward per row. PRMs give a row of label probabilities per step tag
    (Qwen2.5-Math-PRM: [P(bad), P(good)] per `<extra_0>`): take `positive_label`. One-label heads give a scalar."""
    rows = data.tolist() if hasattr(data, "tolist") else list(data)
    rewards = []
    for row in rows:
        if isinstance(row, (list, tuple)):
            rewards.append(float(row[positive_label] if len(row) > positive_label else row[-1]))
        else:
            rewards.append(float(row))
    return rewards


# ---- architecture numbers for an HF checkpoint -------------------------------------------------------------------

EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight")
OUTPUT_SUFFIXES = ("lm_head.weight", "output.weight")


def safetensors_shapes(files: Iterable[Path]) -> dict[str, list[int]]:
    """Tensor name -> shape from safetensors headers (8-byte little-endian length, then JSON); no weights read."""
    shapes: dict[str, list[int]] = {}
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def forward_params(shapes: Mapping[str, Sequence[int]]) -> int:
    """Forward-matmul parameters, by the rule of backend/ledger.py: all tensors minus the embedding lookup, unless
    the embedding is tied (no separate output projection), in which case it is the projection and stays."""
    sizes = {k: _numel(v) for k, v in shapes.items()}
    total = sum(sizes.values())
    embed = sum(v for k, v in sizes.items() if k.endswith(EMBEDDING_SUFFIXES))
    has_output = any(k.endswith(OUTPUT_SUFFIXES) for k in sizes)
    return total - embed if has_output else total


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _checkpoint_files(model_config: Any, download_dir: str | None) -> list[Path]:
    local = Path(str(model_config.model))
    if local.is_dir():
        return sorted(local.glob("*.safetensors"))
    try:
        from huggingface_hub import snapshot_download

        snap = snapshot_download(
            str(model_config.model),
            revision=getattr(model_config, "revision", None),
            allow_patterns=["*.safetensors"],
            cache_dir=download_dir,
            local_files_only=True,  # vLLM has just downloaded it
        )
    except Exception:
        return []
    return sorted(Path(snap).glob("*.safetensors"))


def arch_from_model_config(model_config: Any, download_dir: str | None = None) -> ModelArch:
    files = _checkpoint_files(model_config, download_dir)
    if not files:
        raise EngineError(
            f"{model_config.model}: no safetensors checkpoint found to count parameters for the FLOPs ledger; "
            "pass arch=ModelArch(...) to VLLMEngine"
        )
    text_cfg = getattr(model_config, "hf_text_config", None) or model_config.hf_config
    return ModelArch(
        n_params=forward_params(safetensors_shapes(files)),
        n_layers=int(model_config.get_total_num_hidden_layers()),
        d_model=int(model_config.get_hidden_size()),
        n_ctx_train=int(getattr(text_cfg, "max_position_embeddings", 0) or 0),
        vocab_size=int(model_config.get_vocab_size()),
        architecture=str(getattr(model_config.hf_config, "model_type", "") or ""),
    )


# ---- engines -----------------------------------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _has_gguf_loader() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("vllm.model_executor.model_loader.gguf_loader") is not None
    except ImportError:
        return False


def _model_source(model: ResolvedModel | str) -> tuple[str, str]:
    """(name for the store, what vllm.LLM loads)."""
    if isinstance(model, str):
        return model, model
    if model.path is None:  # a Hugging Face model id (engines/__init__.py passes these by name)
        return model.name, model.name
    import vllm

    if not _has_gguf_loader():
        raise EngineError(
            f"{model.name}: vLLM {vllm.__version__} has no GGUF loader, so it cannot run {model.path.name}; give the "
            "vLLM engine a Hugging Face model id or a local HF directory, or use the llamacpp engine for GGUF files"
        )
    return model.name, str(model.path)


class VLLMEngine:
    """`vllm.LLM` with prefix caching on. `n_ctx_per_slot` becomes `max_model_len` (prompt + completion);
    `llm_kwargs` go to `vllm.LLM` (dtype, gpu_memory_utilization, tensor_parallel_size, download_dir, ...)."""

    def __init__(
        self,
        model: ResolvedModel | str,
        n_ctx_per_slot: int = 4096,
        *,
        arch: ModelArch | None = None,
        seed: int = 0,
        **llm_kwargs: Any,
    ):
        try:
            from vllm import LLM
        except ImportError as e:
            raise EngineError(f"engine.kind: vllm is not installed ({e}); {GPU_INSTALL_HINT}") from None
        self.name, source = _model_source(model)
        llm_kwargs.setdefault("enable_prefix_caching", True)
        llm_kwargs.setdefault("max_model_len", n_ctx_per_slot)
        try:
            self.llm = LLM(model=source, seed=seed, **llm_kwargs)
        except Exception as e:  # vLLM raises ValueError/RuntimeError/pydantic errors, with long multi-line texts
            raise EngineError(f"{self.name}: vLLM could not load {source}: {_first_line(e)}") from e
        try:  # the prompt format of a Hugging Face model is its tokenizer's chat template
            self.chat_template = getattr(self.llm.get_tokenizer(), "chat_template", None)
        except Exception:
            self.chat_template = None
        if arch is None and isinstance(model, ResolvedModel):
            arch = model.arch  # None for a Hugging Face model id: read below, as for a name
        if arch is None:
            arch = arch_from_model_config(self.llm.llm_engine.model_config, llm_kwargs.get("download_dir"))
        self.arch: ModelArch = arch

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: OnComplete | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[Completion]]:
        from vllm import SamplingParams as VSamplingParams

        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        if should_stop is not None and should_stop():
            return results  # type: ignore[return-value]
        plan = plan_batch(requests)
        if not plan:
            return results  # type: ignore[return-value]
        prompts = [requests[ri].prompt for ri, _, _, _ in plan]
        try:
            vparams = [VSamplingParams(**vllm_sampling_kwargs(requests[ri].params, n, seed)) for ri, _, n, seed in plan]
            t0 = time.perf_counter()
            outputs = self.llm.generate(prompts, vparams, use_tqdm=False)
            wall = time.perf_counter() - t0
        except Exception as e:
            raise EngineError(f"{self.name}: vLLM generation failed: {_first_line(e)}") from e
        if len(outputs) != len(plan):
            raise EngineError(f"{self.name}: vLLM returned {len(outputs)} outputs for {len(plan)} requests")
        for (ri, first, _n, seed), out in zip(plan, outputs):
            req = requests[ri]
            comps = map_request_output(out, seed, req.params.logprobs, request_latency(out, wall))
            results[ri][first : first + len(comps)] = comps
        if on_complete is not None:
            for ri, req in enumerate(requests):
                if req.n:
                    on_complete(ri, req, results[ri])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.llm = None


class VLLMRewardScorer:
    """A (process) reward model through vLLM's pooling runner: `LLM(model, runner="pooling")` and
    `llm.encode(prompts, pooling_task="token_classify")` (vLLM 0.33 removed `LLM.reward`).

    Prompts carry the step separator the model was trained on; the model's STEP pooler returns one row per
    separator. Qwen2.5-Math-PRM needs nothing more (vLLM defaults its `step_tag_id` to `<extra_0>`); other PRMs
    take `step_tag_id` / `returned_token_ids` (e.g. math-shepherd's good/bad token ids), which become the
    `PoolerConfig`. An outcome reward model (one label, ALL pooling) gives one value per token: the last one scores
    the whole text."""

    def __init__(
        self,
        model: str,
        *,
        positive_label: int = 1,
        step_tag_id: int | None = None,
        returned_token_ids: list[int] | None = None,
        **llm_kwargs: Any,
    ):
        try:
            from vllm import LLM
            from vllm.config import PoolerConfig
        except ImportError as e:
            raise EngineError(f"verifier: vllm is not installed ({e}); {GPU_INSTALL_HINT}") from None
        self.name = model
        self.positive_label = positive_label
        if step_tag_id is not None or returned_token_ids:
            llm_kwargs.setdefault(
                "pooler_config",
                PoolerConfig(tok_pooling_type="STEP", step_tag_id=step_tag_id, returned_token_ids=returned_token_ids),
            )
        try:
            self.llm = LLM(model=model, runner="pooling", **llm_kwargs)
        except Exception as e:
            raise EngineError(f"{model}: vLLM could not load the reward model: {_first_line(e)}") from e

    def score(self, prompts: list[str]) -> list[list[float]]:
        if not prompts:
            return []
        try:
            outs = self.llm.encode(list(prompts), pooling_task="token_classify", use_tqdm=False)
        except Exception as e:
            raise EngineError(f"{self.name}: vLLM reward scoring failed: {_first_line(e)}") from e
        return [step_rewards(o.outputs.data, self.positive_label) for o in outs]

    def close(self) -> None:
        self.llm = None
