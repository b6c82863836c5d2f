"""Tokens per second of one run's sampling on Ray engine replicas against one local engine, in one process.

The same spec (the default model on llama.cpp, per-sample seeds) runs twice, each into a fresh store, alternating
`--rounds` times so drift on a shared machine hits both: once on one local engine using every core (`threads`:
the machine's cores, `n_parallel: auto`), once fanned out on a local Ray cluster with `--replicas` replicas of
`cores / replicas` threads each. Both times are wall clock from the run's start to its last sample, model loads
included (the replicas load the model in parallel).

    python -m bench.fanout [--replicas 2] [--questions 16] [--samples 4] [--max-tokens 64] [--rounds 1]

Prints `RESULT local_tokens_per_s=<x> ray_tokens_per_s=<y> ray_over_local=<y/x>`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.config import parse_spec  # noqa: E402
from backend.execution.execute import execute  # noqa: E402
from backend.execution.sampling import prepare_run  # noqa: E402
from backend.models.registry import DEFAULT_MODEL  # noqa: E402
from store import Store  # noqa: E402


def _spec(args, engine: dict):
    return parse_spec(
        {
            "name": "fanout-bench",
            "models": [DEFAULT_MODEL],
            "task": {"kind": "reasoning_gym", "datasets": [{"name": "chain_sum", "size": args.questions}]},
            "samples_per_question": args.samples,
            "max_tokens": args.max_tokens,
            "engine": {"kind": "llamacpp", **engine},
        }
    )


def _timed(spec, tmp: Path, tag: str) -> float:
    store = Store.open(tmp / tag)
    t0 = time.perf_counter()
    execute(prepare_run(spec), store)
    wall = time.perf_counter() - t0
    tokens = int(store.query("SELECT sum(completion_tokens) AS t FROM samples")["t"][0])
    print(f"{tag}: {tokens} tokens in {wall:.1f} s: {tokens / wall:.1f} tokens/s", flush=True)
    return tokens / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    import ray

    cores = os.cpu_count() or 2
    ray.init(
        num_cpus=cores,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    local = _spec(args, {"threads": cores})
    fanned = _spec(args, {"threads": max(1, cores // args.replicas), "replicas": args.replicas})
    rates: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="ttc-fanout-") as tmp:
        for r in range(args.rounds):
            rates["local"].append(_timed(local, Path(tmp), f"local-{r}"))
            rates["ray"].append(_timed(fanned, Path(tmp), f"ray-{r}"))
    ray.shutdown()
    lo, fo = (sum(v) / len(v) for v in (rates["local"], rates["ray"]))
    print(f"RESULT local_tokens_per_s={lo:.1f} ray_tokens_per_s={fo:.1f} ray_over_local={fo / lo:.2f}", flush=True)


if __name__ == "__main__":
    main()
