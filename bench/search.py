"""Benchmark: beam search (N=16) against best-of-16 on the same questions, default model, CPU llama.cpp.

Prints one last line:
  RESULT calls_per_round=<x> prefix_cache_hit=<ratio> ledger_matches_recount=<true|false> seconds_per_token_over_bon=<x>
- calls_per_round: beam search's generator engine calls per search round (goal 1);
- prefix_cache_hit: cached prompt tokens / prompt tokens over every completion the engine reported during beam
  search (generation and self-verification);
- ledger_matches_recount: the ledgers' totals equal an independent recount from the node rows read back from the
  store (generator: the ledger's prefix rule over each node's stored tokens; verifier: the stored per-node FLOPs,
  and the charged verifier tokens never above what the engine reports reading);
- seconds_per_token_over_bon: beam search's wall time per generated token / best-of-N's (goal <= 1.3).

Usage: TTC_CACHE_DIR=/tmp/ttccache .venv/bin/python bench/search.py [--questions 20 --n 16 --width 4 ...]"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TTC_CACHE_DIR", "/tmp/ttccache")

from backend.engines.llamacpp import LlamaCppEngine  # noqa: E402
from backend.ledger import decode_flops, prefill_flops  # noqa: E402
from backend.models.registry import DEFAULT_MODEL, resolve_model  # noqa: E402
from backend.strategies.runner import run_search  # noqa: E402
from backend.tasks.reasoning_gym_task import ReasoningGymTask  # noqa: E402
from backend.verifiers import create_verifier  # noqa: E402
from store import Store  # noqa: E402


class RecordingEngine:
    """The real engine, with every completion's token report kept. A request is the verifier's when it is a
    judge pass (one token, with logprobs); judges run inside the generator's call when verification is eager."""

    def __init__(self, engine):
        self.engine, self.name, self.arch = engine, engine.name, engine.arch
        self.inline_follow_ups = getattr(engine, "inline_follow_ups", False)
        self.reports: list[tuple[str, int, int, int]] = []
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    @staticmethod
    def role(request) -> str:
        return "verifier" if request.params.max_tokens == 1 and request.params.logprobs is not None else "generator"

    def generate(self, requests, on_complete=None, should_stop=None):
        role = "generator" if any(self.role(r) == "generator" for r in requests) else "verifier"
        out = self.engine.generate(requests, on_complete, should_stop)
        with self.lock:
            self.calls[role] = self.calls.get(role, 0) + 1
            for req, comps in zip(requests, out):
                for c in comps:
                    if c is not None:
                        self.reports.append(
                            (self.role(req), c.prompt_tokens, c.cached_prompt_tokens, c.completion_tokens)
                        )
        return out

    def close(self):
        self.engine.close()


def recount(store: Store, run_id: str, arch, prompts: dict[int, dict[str, str]]) -> tuple[float, float]:
    """Generator FLOPs recounted from the stored node tokens with the ledger's rule (backend.strategies.base): a
    prompt is cached up to the most tokens of a text this question's search processed before (an earlier prompt,
    or prompt + completion) that is a prefix of it; the engine's cached_prompt_tokens report is not used."""
    df = store.query(
        "SELECT question_id, node_id, prompt_tokens, completion_tokens, verifier_flops, kind FROM nodes "
        "WHERE run_id = ? ORDER BY question_id, node_id",
        [run_id],
    )
    g = 0.0
    for qid, rows in df[df["kind"] != "root"].groupby("question_id", sort=False):
        seen: dict[str, int] = {}
        for r in rows.itertuples():
            prompt, text = prompts[qid][r.node_id]
            cached = min(max((t for s, t in seen.items() if prompt.startswith(s)), default=0), r.prompt_tokens)
            g += float(
                prefill_flops(arch, r.prompt_tokens, cached) + decode_flops(arch, r.prompt_tokens, r.completion_tokens)
            )
            seen.setdefault(prompt, int(r.prompt_tokens))
            seen.setdefault(prompt + text, int(r.prompt_tokens + r.completion_tokens))
    return g, float(df["verifier_flops"].sum())


def arithmetic_task(n_questions: int) -> ReasoningGymTask:
    """The search benchmarks' questions: 3–4 terms of 1–2 digits, hard enough that the 0.5B model often errs."""
    config = {"min_terms": 3, "max_terms": 4, "min_digits": 1, "max_digits": 2}
    return ReasoningGymTask([{"name": "basic_arithmetic", "size": n_questions, "config": config}], seed=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--step-tokens", type=int, default=48)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument(
        "--verifier",
        default="self_verify",
        choices=["self_verify", "self_verify_chat", "oracle"],
        help="self_verify: the inline judge (9 tokens a step); self_verify_chat: the judge in a chat turn; "
        "oracle: free scores from the task's checker, to time the search machinery alone",
    )
    args = ap.parse_args()

    model = resolve_model(DEFAULT_MODEL)
    task = arithmetic_task(args.questions)
    questions = task.questions()
    engine = RecordingEngine(LlamaCppEngine(model, n_parallel=args.parallel, n_ctx_per_slot=1024))
    verifier = create_verifier(args.verifier, task=task, engine=engine, model=model)
    store = Store.open(Path(tempfile.mkdtemp(prefix="ttc-bench-search-")) / "store")

    runs = {}
    for name, config in [
        ("best_of_n", {"n": args.n, "max_tokens": args.step_tokens * args.rounds}),
        ("beam_search", {"n": args.n, "width": args.width, "max_rounds": args.rounds, "max_tokens": args.step_tokens}),
    ]:
        engine.reports, engine.calls = [], {}
        t0 = time.perf_counter()
        result = run_search(
            name, questions, task, model, engine, verifier, config=config, store=store, run_id=f"bench-{name}", seed=0
        )
        wall = time.perf_counter() - t0
        reports, calls = list(engine.reports), dict(engine.calls)
        gen_tokens = sum(r[3] for r in reports if r[0] == "generator")
        prompt = sum(r[1] for r in reports)
        cached = sum(r[2] for r in reports)
        gen_prompt = sum(r[1] for r in reports if r[0] == "generator")
        gen_cached = sum(r[2] for r in reports if r[0] == "generator")
        ver_prompt, ver_cached = prompt - gen_prompt, cached - gen_cached
        ledger_gen = sum(lg.generator_flops for lg in result.ledgers)
        ledger_ver = sum(lg.verifier_flops for lg in result.ledgers)
        # node prompts are not stored (only step text), so the recount reads them off the trees; tokens from the store
        prompts = {
            t.question.question_id: {n.node_id: (n.prompt, n.text) for n in t.nodes} for t in result.context.trees
        }
        re_gen, re_ver = recount(store, result.run_id, model.arch, prompts)
        engine_ver_tokens = sum(p + d for role, p, c, d in reports if role == "verifier")
        matches = (
            math.isclose(ledger_gen, re_gen, rel_tol=1e-9)
            and math.isclose(ledger_ver, re_ver, rel_tol=1e-9)
            and sum(lg.verifier_tokens for lg in result.ledgers) <= engine_ver_tokens  # charged <= read by the engine
        )
        correct = sum(bool(t.selected and t.selected.correct) for t in result.context.trees)
        runs[name] = dict(
            wall=wall,
            tokens=gen_tokens,
            rounds=result.context.rounds,
            calls=calls,
            hit=cached / max(prompt, 1),
            gen_hit=gen_cached / max(gen_prompt, 1),
            ver_hit=ver_cached / max(ver_prompt, 1),
            matches=matches,
            correct=correct,
            flops=ledger_gen + ledger_ver,
        )
        print(
            f"{name}: wall={wall:.1f}s generated_tokens={gen_tokens} s/token={wall / max(gen_tokens, 1):.4f} rounds={result.context.rounds} "
            f"engine_calls={calls} prefix_cache_hit={runs[name]['hit']:.3f} (generation {runs[name]['gen_hit']:.3f}, verification {runs[name]['ver_hit']:.3f}) "
            f"uncached_prompt_tokens={prompt - cached} (generation {gen_prompt - gen_cached}, verification {ver_prompt - ver_cached}) "
            f"ledger_flops={ledger_gen + ledger_ver:.3e} (verifier {ledger_ver:.3e}) recount_ok={matches} "
            f"eager_judged={result.context.prescored_hits} accuracy={correct}/{len(questions)}",
            flush=True,
        )
    engine.close()
    beam, bon = runs["beam_search"], runs["best_of_n"]
    ratio = (beam["wall"] / max(beam["tokens"], 1)) / (bon["wall"] / max(bon["tokens"], 1))
    print(
        f"RESULT calls_per_round={beam['calls'].get('generator', 0) / max(beam['rounds'], 1):.2f} prefix_cache_hit={beam['hit']:.3f} "
        f"ledger_matches_recount={'true' if beam['matches'] and bon['matches'] else 'false'} seconds_per_token_over_bon={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
