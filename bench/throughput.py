"""Worker throughput against the raw engine, in one process, on the same prompts, per-sample seeds and batch.

    python bench/throughput.py [--engine llamacpp|vllm] [--questions 8] [--samples 4] [--max-tokens 64]
        [--slots 4] [--rounds 2]
    python bench/throughput.py --best [--engine llamacpp|vllm] [--sweep 4,8,16,32]

Plain mode sends the run through the full worker (chat template, batching, grading, Parquet shards, heartbeats)
and straight through the engine (xllamacpp's `handle_completions` from `--slots` threads, or one
`vllm.LLM.generate` call) with the same parallelism, alternating rounds so drift on a shared machine hits both;
last line `RESULT worker_over_raw=<ratio>` (goal >= 0.95).

`--best` sweeps the raw engine's parallelism (llama.cpp slots, vLLM's max_num_seqs) to find its best tokens/s on
this run, then runs the worker at its defaults (`n_parallel: auto`); last line `RESULT worker_over_best_raw=<ratio>`
(goal >= 0.9). vLLM needs .venv-vllm (scripts/vllm-env.sh): `.venv-vllm/bin/python bench/throughput.py --engine vllm`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.config import parse_spec  # noqa: E402
from backend.engines import create_engine  # noqa: E402
from backend.engines.base import SamplingParams  # noqa: E402
from backend.execution.execute import execute  # noqa: E402
from backend.execution.sampling import prepare_run, sample_seed  # noqa: E402
from backend.prompting import build_prompt, stop_sequences  # noqa: E402
from store import Store  # noqa: E402


class KeepOpen:
    """The already-loaded engine, so both paths time generation only; the worker's close() must not drop it."""

    def __init__(self, engine):
        self.name, self.arch, self.generate = engine.name, engine.arch, engine.generate
        self.chat_template = getattr(engine, "chat_template", None)

    def close(self) -> None:
        pass


def spec_for(args, engine: dict) -> dict:
    return {
        "name": "bench",
        "models": [args.model],
        "task": {
            "kind": "reasoning_gym",
            "datasets": [
                {
                    "name": "basic_arithmetic",
                    "size": args.questions,
                    "config": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2},
                }
            ],
        },
        "samples_per_question": args.samples,
        "temperature": 0.8,
        "max_tokens": args.max_tokens,
        "engine": engine,
    }


def jobs(prepared, max_tokens: int) -> list[tuple[str, SamplingParams]]:
    """(prompt, params) of every sample, exactly as the worker sends them."""
    (_, model), task = prepared.models[0], prepared.task
    stop = stop_sequences(model, task)
    return [
        (
            build_prompt(model, task, q),
            SamplingParams(
                temperature=0.8,
                top_p=1.0,
                max_tokens=max_tokens,
                stop=stop,
                logprobs=1,
                seed=sample_seed(prepared.spec.seed, q.question_id, i),
            ),
        )
        for q in prepared.questions
        for i in range(prepared.spec.samples_per_question)
    ]


def raw_llamacpp(engine, work, slots: int):
    from backend.engines.llamacpp import UNTRUNCATED, completion_body

    bodies = [completion_body(p, sp, sp.seed) | UNTRUNCATED for p, sp in work]  # no slot pinned: llama.cpp picks
    server = engine._server

    def round_() -> float:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=slots) as pool:
            responses = list(pool.map(server.handle_completions, bodies))
        return sum(r["usage"]["completion_tokens"] for r in responses) / (time.perf_counter() - t0)

    return round_


def raw_vllm(engine, work):
    from vllm import SamplingParams as VSamplingParams

    from backend.engines.vllm_engine import vllm_sampling_kwargs

    params = [VSamplingParams(**vllm_sampling_kwargs(sp, 1, sp.seed)) for _, sp in work]
    prompts = [p for p, _ in work]

    def round_() -> float:
        t0 = time.perf_counter()
        outs = engine.llm.generate(prompts, params, use_tqdm=False)
        return sum(len(c.token_ids) for o in outs for c in o.outputs) / (time.perf_counter() - t0)

    return round_


def worker_round(prepared, engine):
    def round_() -> float:
        with tempfile.TemporaryDirectory() as d:
            store = Store.open(Path(d) / "store")
            t0 = time.perf_counter()
            execute(prepared, store, engine_factory=lambda _m, _s: KeepOpen(engine))
            dt = time.perf_counter() - t0
            return int(store.query("select sum(completion_tokens) t from samples")["t"][0]) / dt

    return round_


def alternate(a, b, rounds: int, names: tuple[str, str]) -> tuple[float, float]:
    """Mean tok/s of a and b over `rounds`, alternating which goes first."""
    ra, rb = [], []
    for r in range(rounds):
        for fn in (a, b) if r % 2 == 0 else (b, a):
            (ra if fn is a else rb).append(fn())
        print(f"round {r}: {names[0]} {ra[-1]:.1f} tok/s, {names[1]} {rb[-1]:.1f} tok/s", flush=True)
    return sum(ra) / len(ra), sum(rb) / len(rb)


def engine_options(args, parallel: int | None) -> dict:
    """The spec's engine mapping: `parallel` slots (llama.cpp) or sequences (vLLM), None for the defaults (auto)."""
    return {"kind": args.engine, "n_ctx_per_slot": 1024} | ({} if parallel is None else {"n_parallel": parallel})


def load(args, prepared, parallel: int | None):
    """The engine the worker would create for this run with these options (auto resolved for its size)."""
    spec = parse_spec(spec_for(args, engine_options(args, parallel)))
    return create_engine(prepared.models[0][1], spec.engine, n_requests=prepared.total_samples)


def raw_round(args, engine, work, parallel: int | None):
    if args.engine == "vllm":
        return raw_vllm(engine, work)
    return raw_llamacpp(engine, work, parallel or engine.n_parallel)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["llamacpp", "vllm"], default="llamacpp")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=4, help="plain mode, llama.cpp: slots of both paths")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--best", action="store_true", help="worker at its defaults against the best raw parallelism")
    ap.add_argument("--sweep", default=None, help="raw parallelism to try with --best (comma-separated)")
    args = ap.parse_args()

    prepared = prepare_run(parse_spec(spec_for(args, engine_options(args, None))))  # the worker's defaults
    work = jobs(prepared, args.max_tokens)
    print(f"engine={args.engine} model={args.model} samples={len(work)} max_tokens={args.max_tokens}", flush=True)

    if not args.best:
        parallel = args.slots if args.engine == "llamacpp" else None
        engine = load(args, prepared, parallel)
        raw = raw_round(args, engine, work, parallel)
        raw()  # warm-up: page the weights in, fill caches
        r, w = alternate(raw, worker_round(prepared, engine), args.rounds, ("raw", "worker"))
        print(f"RESULT worker_over_raw={w / r:.3f}")
        return

    sweep = [int(x) for x in (args.sweep or ("4,8,16,32" if args.engine == "llamacpp" else "8,32,128")).split(",")]
    best_tps, best = 0.0, sweep[0]
    for parallel in sweep:
        engine = load(args, prepared, parallel)
        raw = raw_round(args, engine, work, parallel)
        raw()  # warm-up
        tps = raw()
        print(f"raw parallel={parallel}: {tps:.1f} tok/s", flush=True)
        if tps > best_tps:
            best_tps, best = tps, parallel
        engine.close()

    # one engine loaded at a time: an idle llama.cpp server's threads spin and would slow the other several-fold
    def raw_best() -> float:
        engine = load(args, prepared, best)
        try:
            raw = raw_round(args, engine, work, best)
            raw()  # warm-up
            return raw()
        finally:
            engine.close()

    used = {}

    def worker_defaults() -> float:
        engine = load(args, prepared, None)  # what the worker creates at its defaults
        used["n_parallel"] = getattr(engine, "n_parallel", "auto (vLLM's default)")
        try:
            run = worker_round(prepared, engine)
            run()  # warm-up, as for the raw path
            return run()
        finally:
            engine.close()

    r, w = alternate(raw_best, worker_defaults, args.rounds, (f"raw parallel={best}", "worker at defaults"))
    print(f"best raw parallel={best}; worker n_parallel={used['n_parallel']}")
    print(f"RESULT worker_over_best_raw={w / r:.3f}")


if __name__ == "__main__":
    main()
