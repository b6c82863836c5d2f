"""Verifiers behind one `Verifier` protocol (backend/verifiers/base.py), one registry. A factory takes keyword
arguments: `task` always, `engine` and `model` for LM judges, `model_name` for a served PRM."""

from __future__ import annotations

from collections.abc import Callable

from backend.errors import require
from backend.verifiers.base import AGGREGATIONS, ScoreRequest, StepScores, Usage, Verifier, aggregate, charge


def _oracle(*, task, **_):
    from backend.verifiers.oracle import OracleVerifier

    return OracleVerifier(task)


def _self_verify(judge: str) -> Callable[..., Verifier]:
    def factory(*, task, engine, model, **_):
        from backend.verifiers.self_verify import SelfVerifier

        return SelfVerifier(engine, model, task, judge=judge)

    return factory


def _prm_vllm(*, model_name, **kw):
    from backend.verifiers.prm_vllm import PRMVerifier

    return PRMVerifier(model_name, scorer=kw.get("scorer"))


VERIFIERS: dict[str, Callable[..., Verifier]] = {
    "oracle": _oracle,
    "self_verify": _self_verify("inline"),  # the judge question written on in the answer (9 tokens a judge)
    "self_verify_chat": _self_verify("chat"),  # the judge question as a chat user turn
    "prm_vllm": _prm_vllm,
}


def create_verifier(name: str, **kwargs) -> Verifier:
    return require(VERIFIERS, name, field="verifier", kind="verifier")(**kwargs)


__all__ = [
    "AGGREGATIONS",
    "VERIFIERS",
    "ScoreRequest",
    "StepScores",
    "Usage",
    "Verifier",
    "aggregate",
    "charge",
    "create_verifier",
]
