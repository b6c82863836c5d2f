"""`ttc serve`'s runtime on real vLLM in-process: the committed study's policy (completions cut short) answering 32
requests at mixed budgets sent at once exactly as the same requests sent one by one. vLLM in-process takes one
`generate` caller at a time, so the runtime admits one request at a time there (first come, first served); what
this checks is that nothing a request decides is shared and that vLLM answers a request alike whatever ran before
it (its prefix cache holding the other requests' prompts or not)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("vllm", reason="vllm is not installed here: ./scripts/test.sh runs this tier in .venv-vllm")

from backend.config import parse_spec
from backend.models.registry import DEFAULT_MODEL
from backend.serving.policy import load_policy
from backend.serving.runtime import Answered, Backend, ChatRequest, Runtime, ServedTask, parse_request
from backend.tasks import create_task
from backend.verifiers import create_verifier
from bench.serve import cut, freeze
from tests.conftest import ROOT

TINY_TOKENS = 4


def _answered(a: Answered) -> tuple:
    """What a request answered, less what names this one request (its run id and time)."""
    choices = [(c.text, c.finish_reason, c.extension()) for c in a.choices]
    return choices, a.usage, a.budget, a.seed


def test_32_requests_at_once_answer_as_the_same_requests_one_by_one_on_vllm(vllm_engine, default_model, tmp_path):
    policy_file = freeze(ROOT / "examples" / "studies" / "compute-optimal", tmp_path / "policy.json")
    policy = load_policy(cut(policy_file, TINY_TOKENS, tmp_path / "tiny.json"))
    assert policy.model == DEFAULT_MODEL  # the study ran the default model, which the engine holds converted
    spec = parse_spec(policy.spec, "the policy's spec")
    task = ServedTask(create_task(spec.task, spec.seed))
    verifier = create_verifier(
        policy.verifier, policy.verifier_options, task=task, engine=vllm_engine, model=default_model
    )
    runtime = Runtime(policy, Backend(default_model, vllm_engine, verifier, task))
    assert runtime.concurrency == 1  # vLLM in-process: one generate caller at a time
    reserve = max(b.cells[0].budget_flops for b in policy.bins)
    budgets = [{"ttc_budget_flops": k * reserve} for k in (1.5, 3, 6)] + [{"ttc_budget_samples": 3}, {}]
    requests = [
        parse_request(
            {
                "model": policy.model,
                "messages": [{"role": "user", "content": f"What is {i % 8 + 2} + {i % 5 + 3}?"}],
                "seed": i,
                **budgets[i % len(budgets)],
            },
            ChatRequest,
        )
        for i in range(32)
    ]
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(runtime.answer, requests))
    alone = [runtime.answer(r) for r in requests]
    differ = [i for i, (a, b) in enumerate(zip(together, alone)) if _answered(a) != _answered(b)]
    assert differ == [], [(_answered(together[i]), _answered(alone[i])) for i in differ[:2]]
    assert len({c.cell.budget_flops for a in alone for c in a.choices}) >= 2  # the budgets reached different cells
