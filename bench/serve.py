"""`ttc serve` against the raw engine, and the policy's served accuracy against uniform best-of-N at the same FLOPs.

    python -m bench.serve [--study DIR | --policy FILE] [--questions 16] [--clients 1 8] [--budget-samples 4]
        [--max-tokens N] [--no-warmup]

The policy is frozen from the study (`ttc policy freeze --n-bins 2`) unless `--policy` names one; `--max-tokens`
cuts every phase's completions (a quicker, cheaper policy: the same bins, cells and budgets). The questions are
held out: drawn from the study's task with another seed, less any the study asked.

**Overhead.** Every question is sent to an in-process `ttc serve` (the HTTP front, the runtime, the store) as a chat
completion with its own seed and `X-TTC-Budget: B samples`, from 1 and from 8 concurrent clients. Each request's
engine calls are recorded as they happen (every `generate` call with its requests, and the calls made from its
`on_complete` callbacks: the judges run on the slot of the sample they judge); the raw engine then answers the same
samples directly, by replaying those calls with the same requests (prompts, seeds, parameters), with the same
nesting and at the same concurrency. What is left is the serving layer: parsing, the policy's decisions, the
strategies' bookkeeping, the ledger, the store and HTTP. Per client count:
    RESULT clients=C requests=N served_rps=… raw_rps=… served_p50_s=… served_p95_s=… raw_p50_s=… raw_p95_s=…
        overhead_p50=… pool_requests=K overhead_p50_pool=…
`overhead_p50` = served p50 latency / raw p50 latency (goal <= 1.1 for best-of-N configurations: `_pool` is over
the requests whose every choice ran a pool rule, NaN when none did). A warm-up pass (served, discarded) fills
llama.cpp's prompt cache first, so neither side reads a prompt cold that the other read warm.

**Served accuracy.** The first measured pass's answers, graded by the study's task, against uniform best-of-N with
the policy's verifier, as many samples (up to the study's pool size) as fit in the FLOPs that question's served
request was charged (the ledger's cap, pilot included), on the same engine:
    RESULT served_gain=… [low, high] served_accuracy=… best_of_n_accuracy=… questions=… test=… p=…
the paired difference (served − best-of-N) with its paired bootstrap interval and test (backend/metrics/paired.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.config import parse_spec  # noqa: E402
from backend.metrics.paired import paired_difference  # noqa: E402
from backend.serving.http import make_server  # noqa: E402
from backend.serving.policy import SERVABLE_POOL_RULES, content_version, load_policy  # noqa: E402
from backend.serving.runtime import BUDGET_HEADER, Runtime, answer_text, open_backend  # noqa: E402
from backend.strategies.runner import run_search  # noqa: E402
from backend.tasks import create_task  # noqa: E402
from backend.tasks.base import Question, grade_or_error  # noqa: E402
from store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT_SEED = 1_000  # the study draws its questions with its spec's seed; these come from another


@dataclass
class Call:
    """One `generate` call as a request made it, and the calls its callbacks made per request index."""

    requests: list
    follow_ups: dict[int, list[Call]] = field(default_factory=dict)


class Recorder:
    """Wraps an engine's `generate` (on the instance, so the verifier's calls pass through it too) and records the
    calls of the request being answered on this thread (`local.log`), callbacks' calls under their parent."""

    def __init__(self, engine):
        self.raw = engine.generate
        self.local = threading.local()
        engine.generate = self

    def __call__(self, requests, on_complete=None, should_stop=None):
        log = getattr(self.local, "log", None)
        if log is None:
            return self.raw(requests, on_complete, should_stop)
        call = Call(list(requests))
        log.append(call)
        if on_complete is None:
            return self.raw(requests, None, should_stop)

        def hook(ri, req, comps):
            outer = getattr(self.local, "log", None)
            self.local.log = call.follow_ups.setdefault(ri, [])
            try:
                on_complete(ri, req, comps)
            finally:
                self.local.log = outer

        return self.raw(requests, hook, should_stop)

    def replay(self, calls: list[Call]) -> None:
        """The raw engine answering the recorded calls, in order, each callback's calls from its callback."""
        for call in calls:

            def hook(ri, req, comps, follow_ups=call.follow_ups):
                self.replay(follow_ups.get(ri, []))

            self.raw(call.requests, hook if call.follow_ups else None)


class RecordingRuntime(Runtime):
    """The runtime, keeping each answered request's engine calls by run id."""

    def __init__(self, *args, recorder: Recorder, **kw):
        super().__init__(*args, **kw)
        self.recorder, self.calls = recorder, {}

    def answer(self, request, header_budget=None):
        log: list[Call] = []
        self.recorder.local.log = log
        try:
            answered = super().answer(request, header_budget)
        finally:
            self.recorder.local.log = None
        self.calls[answered.run_id] = log
        return answered


def freeze(study: Path, out: Path) -> Path:
    """The study frozen as README's serving section does it (a copy of its store: the committed one stays as is)."""
    import shutil

    copy = out.parent / "study"
    shutil.copytree(study, copy)
    cmd = [sys.executable, "-m", "backend.cli", "policy", "freeze", "--store", str(copy), "--n-bins", "2"]
    proc = subprocess.run(cmd + ["--band-boot", "0", "-o", str(out)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"ttc policy freeze failed: {proc.stderr.strip()}")
    return out


def cut(policy_file: Path, max_tokens: int, out: Path) -> Path:
    """The policy with every phase's completions cut to `max_tokens` (its version rehashed)."""
    data = json.loads(policy_file.read_text())
    data["predictor"]["max_tokens"] = min(data["predictor"]["max_tokens"], max_tokens)
    for b in data["bins"]:
        for cell in b["cells"]:
            if "max_tokens" in cell["config"]:
                cell["config"]["max_tokens"] = min(cell["config"]["max_tokens"], max_tokens)
    data["version"] = content_version(data)
    out.write_text(json.dumps(data))
    return out


def held_out(policy, study: Path, n: int) -> tuple[list[Question], object]:
    """`n` questions of the study's task drawn with another seed, none of them a question the study asked (and
    the task, which grades them)."""
    spec = json.loads(json.dumps(policy.spec))
    datasets = spec["task"].get("datasets") or []
    for d in datasets:  # enough of every level to leave n after removing the study's own
        d["size"] = max(int(d["size"]), 4 * n // max(1, len(datasets)) + 4)
    asked = set(Store.open(study, create=False).query("SELECT DISTINCT question FROM questions")["question"])
    task = create_task(parse_spec(spec, "the policy's spec").task, HELD_OUT_SEED)
    fresh = [q for q in task.questions() if q.text not in asked]
    by_level: dict[object, list[Question]] = {}
    for q in fresh:
        by_level.setdefault(q.level, []).append(q)
    picked = []  # round-robin over the levels: every difficulty in the set
    while len(picked) < n and any(by_level.values()):
        for qs in by_level.values():
            if qs and len(picked) < n:
                picked.append(qs.pop(0))
    if len(picked) < n:
        sys.exit(f"only {len(picked)} held-out questions in the study's task; ask for fewer with --questions")
    return picked, task


def post(url: str, body: dict, headers: dict) -> tuple[dict, float]:
    req = urllib.request.Request(
        f"{url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=3600) as r:
        out = json.loads(r.read())
    return out, time.perf_counter() - t0


def served_pass(url: str, bodies: list[dict], headers: dict, clients: int) -> tuple[list[dict], list[float], float]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(lambda b: post(url, b, headers), bodies))
    return [o for o, _ in done], [s for _, s in done], time.perf_counter() - t0


def raw_pass(recorder: Recorder, calls: list[list[Call]], clients: int) -> tuple[list[float], float]:
    def one(c: list[Call]) -> float:
        t0 = time.perf_counter()
        recorder.replay(c)
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        seconds = list(pool.map(one, calls))
    return seconds, time.perf_counter() - t0


def best_of_n(backend, policy, question: Question, flops: float, seed: int) -> str:
    """Uniform best-of-N with the policy's verifier, capped at `flops` on the ledger; the selected answer's text."""
    p = policy.predictor  # the study's sampling (max_tokens as cut, if cut)
    cfg = {
        "n": int(policy.spec.get("samples_per_question", 8)),
        "max_tokens": p.max_tokens,
        "temperature": p.temperature,
    }
    result = run_search(
        "best_of_n",
        [question],
        backend.task,
        backend.model,
        backend.engine,
        backend.verifier,
        config=cfg,
        budget_flops=flops,
        seed=seed,
    )
    return answer_text(result.context.trees[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", type=Path, default=ROOT / "examples" / "studies" / "compute-optimal")
    ap.add_argument("--policy", type=Path, default=None, help="a frozen policy (default: freeze --study)")
    ap.add_argument("--questions", type=int, default=16, help="held-out questions, one request each")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent clients of each pass")
    ap.add_argument("--budget-samples", type=float, default=4, help="every request's budget, in samples")
    ap.add_argument("--max-tokens", type=int, default=None, help="cut every phase's completions to this")
    ap.add_argument("--no-warmup", action="store_true", help="skip the discarded served pass that warms the cache")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    policy_file = args.policy or freeze(args.study, tmp / "policy.json")
    if args.max_tokens is not None:
        policy_file = cut(policy_file, args.max_tokens, tmp / "policy-cut.json")
    policy = load_policy(policy_file)
    questions, task = held_out(policy, args.study, args.questions)
    backend = open_backend(policy)
    recorder = Recorder(backend.engine)
    runtime = RecordingRuntime(policy, backend, Store.open(tmp / "served"), recorder=recorder)
    server = make_server(runtime, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    headers = {BUDGET_HEADER: f"{args.budget_samples:g} samples"}
    bodies = [
        {"model": policy.model, "messages": [{"role": "user", "content": q.text}], "seed": i}
        for i, q in enumerate(questions)
    ]
    print(
        f"policy {policy.version} ({policy.model}), {len(questions)} held-out questions, budget "
        f"{args.budget_samples:g} samples, {runtime.concurrency} requests at once on the engine",
        flush=True,
    )
    try:
        if not args.no_warmup:
            served_pass(url, bodies, headers, max(args.clients))
        first: list[dict] | None = None
        for clients in args.clients:
            answers, served_s, served_wall = served_pass(url, bodies, headers, clients)
            first = first or answers
            calls = [runtime.calls[a["ttc"]["run_id"]] for a in answers]
            raw_s, raw_wall = raw_pass(recorder, calls, clients)
            pool = [
                i
                for i, a in enumerate(answers)
                if all(c["ttc"]["configuration"]["strategy"] in SERVABLE_POOL_RULES for c in a["choices"])
            ]
            p50 = float(np.median(served_s)) / float(np.median(raw_s))
            pool_p50 = (
                float(np.median([served_s[i] for i in pool])) / float(np.median([raw_s[i] for i in pool]))
                if pool
                else float("nan")
            )
            print(
                f"RESULT clients={clients} requests={len(answers)} served_rps={len(answers) / served_wall:.4g} "
                f"raw_rps={len(answers) / raw_wall:.4g} served_p50_s={np.median(served_s):.4g} "
                f"served_p95_s={np.quantile(served_s, 0.95):.4g} raw_p50_s={np.median(raw_s):.4g} "
                f"raw_p95_s={np.quantile(raw_s, 0.95):.4g} overhead_p50={p50:.4g} pool_requests={len(pool)} "
                f"overhead_p50_pool={pool_p50:.4g}",
                flush=True,
            )
        assert first is not None
        served_ok = [
            float(grade_or_error(task, q, a["choices"][0]["message"]["content"]).correct)
            for q, a in zip(questions, first)
        ]
        with ThreadPoolExecutor(runtime.concurrency) as pool_:
            bon = list(
                pool_.map(
                    lambda qa: best_of_n(
                        backend,
                        policy,
                        Question(qa[1]["ttc"]["run_id"], backend.task.name, "held-out", qa[0].text, ""),
                        qa[1]["ttc"]["flops"],
                        qa[1]["ttc"]["seed"],
                    ),
                    zip(questions, first),
                )
            )
        bon_ok = [float(grade_or_error(task, q, text).correct) for q, text in zip(questions, bon)]
        d = paired_difference(np.array(served_ok), np.array(bon_ok))
        print(
            f"RESULT served_gain={d.difference:.4g} [{d.ci_low:.4g}, {d.ci_high:.4g}] served_accuracy="
            f"{d.accuracy_a:.4g} best_of_n_accuracy={d.accuracy_b:.4g} questions={d.questions} p={d.p_value:.4g}",
            flush=True,
        )
    finally:
        server.shutdown()
        server.server_close()
        backend.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
