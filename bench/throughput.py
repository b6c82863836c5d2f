"""Worker overhead: the same prompts, seeds and parallel slots through the full worker (prompting, grading,
Parquet shards, heartbeats) and straight through xllamacpp, in one process. Prints tokens/s of each and, last,
`RESULT worker_over_raw=<ratio>` (goal >= 0.95). Rounds alternate so drift on a shared machine hits both.

    python bench/throughput.py [--model qwen2.5-coder-0.5b-instruct] [--questions 8] [--samples 4] [--rounds 2]
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
from backend.engines.base import SamplingParams  # noqa: E402
from backend.engines.llamacpp import UNTRUNCATED, LlamaCppEngine, completion_body  # noqa: E402
from backend.prompting import build_prompt, stop_sequences  # noqa: E402
from backend.worker import execute, prepare_run, sample_seed  # noqa: E402
from store import Store  # noqa: E402


class KeepOpen:
    """The already-loaded engine, so both paths time generation only; the worker's close() must not drop it."""

    def __init__(self, engine):
        self.name, self.arch, self.generate = engine.name, engine.arch, engine.generate

    def close(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    spec_dict = {
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
        "engine": {"kind": "llamacpp", "n_parallel": args.slots},
    }
    prepared = prepare_run(parse_spec(spec_dict))
    (_, model), task = prepared.models[0], prepared.task
    engine = LlamaCppEngine(model, n_parallel=args.slots)
    server = engine._server
    stop = stop_sequences(model, task)
    bodies = [  # the distribution the engine samples (llama.cpp's truncating samplers off), no slot pinned
        completion_body(
            build_prompt(model, task, q),
            SamplingParams(temperature=0.8, top_p=1.0, max_tokens=args.max_tokens, stop=stop, logprobs=1),
            sample_seed(prepared.spec.seed, q.question_id, i),
        )
        | UNTRUNCATED
        for q in prepared.questions
        for i in range(args.samples)
    ]

    def raw_round() -> float:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.slots) as pool:
            responses = list(pool.map(server.handle_completions, bodies))
        dt = time.perf_counter() - t0
        return sum(r["usage"]["completion_tokens"] for r in responses) / dt

    def worker_round() -> float:
        with tempfile.TemporaryDirectory() as d:
            store = Store.open(Path(d) / "store")
            t0 = time.perf_counter()
            execute(prepared, store, engine_factory=lambda _m, _s: KeepOpen(engine))
            dt = time.perf_counter() - t0
            tokens = int(store.query("select sum(completion_tokens) t from samples")["t"][0])
        return tokens / dt

    raw_round()  # warm-up: page the weights in, fill caches
    raw, work = [], []
    for r in range(args.rounds):
        order = (raw_round, worker_round) if r % 2 == 0 else (worker_round, raw_round)
        for fn in order:
            (raw if fn is raw_round else work).append(fn())
        print(f"round {r}: raw {raw[-1]:.1f} tok/s, worker {work[-1]:.1f} tok/s", flush=True)
    ratio = (sum(work) / len(work)) / (sum(raw) / len(raw))
    print(f"model={args.model} slots={args.slots} samples={len(bodies)} max_tokens={args.max_tokens}")
    print(f"RESULT worker_over_raw={ratio:.3f}")


if __name__ == "__main__":
    main()
