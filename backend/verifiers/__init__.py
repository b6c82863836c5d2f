"""Verifiers behind one `Verifier` protocol (backend/verifiers/base.py) and one registry (backend/registry.py). An
entry declares the verifier's name, its typed options (what a spec may set: `verifiers: [self_verify, {name: prm_vllm, model: ...}]`),
a factory, and what it needs: ground truth (the oracle), the generator's own engine (LM self-judges), a GPU."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from backend.options import Options
from backend.registry import Entry, Registry
from backend.verifiers.base import AGGREGATIONS, ScoreRequest, StepScores, Usage, Verifier, aggregate, charge


class VerifierOptions(Options):
    """No options: the verifier is fully named by its registry name."""


class PRMOptions(VerifierOptions):
    model: str = Field(
        description="the process reward model: a Hugging Face id, a local HF directory or a registry name (vLLM loads it)"
    )
    step_separator: str = Field(
        "\n\n", description="text the PRM reads between steps (its step tag; one token: one reward per step)"
    )


@dataclass(frozen=True)
class VerifierEntry(Entry):
    """factory(options, *, task, engine, model) -> Verifier."""

    needs_ground_truth: bool = False
    scores_steps: bool = True
    reads_generator: bool = False  # runs on the generator's engine and shares its prefix cache
    needs_gpu: bool = False

    def needs(self) -> list[str]:
        """What it needs to run, in the words the CLI listing and README's table use."""
        flags = (
            ("ground truth", self.needs_ground_truth),
            ("a GPU", self.needs_gpu),
            ("the generator's engine", self.reads_generator),
        )
        return [word for word, on in flags if on]


def _oracle(options, *, task, **_):
    from backend.verifiers.oracle import OracleVerifier

    return OracleVerifier(task)


def _self_verify(judge: str) -> Callable[..., Verifier]:
    def factory(options, *, task, engine, model, **_):
        from backend.verifiers.self_verify import SelfVerifier

        return SelfVerifier(engine, model, task, judge=judge)

    return factory


def _prm_vllm(options: PRMOptions, *, scorer=None, **_):
    """The reward model is the one the options name, never the generator; `scorer` (tests) stands in for vLLM's."""
    from backend.verifiers.prm_vllm import PRMVerifier

    return PRMVerifier(options.model, step_separator=options.step_separator, scorer=scorer)


VERIFIERS: Registry[VerifierEntry] = Registry("verifier", unknown="not an option of {name}")


def register_verifier(entry: VerifierEntry) -> VerifierEntry:
    """Add a verifier to the registry; the spec check, `ttc verifiers`, the Run form and README read it from here."""
    return VERIFIERS.register(entry)


for _entry in (
    VerifierEntry(
        "oracle",
        "the task's own grader: an upper bound, not a deployable verifier",
        VerifierOptions,
        _oracle,
        needs_ground_truth=True,
    ),
    VerifierEntry(
        "self_verify",
        "the generator judges its last step, the question written on in its answer (9 tokens)",
        VerifierOptions,
        _self_verify("inline"),
        reads_generator=True,
    ),
    VerifierEntry(
        "self_verify_chat",
        "the generator judges its last step in a chat user turn (~21 tokens)",
        VerifierOptions,
        _self_verify("chat"),
        reads_generator=True,
    ),
    VerifierEntry(
        "prm_vllm",
        "a process reward model on vLLM's pooling runner (vLLM: GPU, or CPU in .venv-vllm)",
        PRMOptions,
        _prm_vllm,
    ),
):
    register_verifier(_entry)


def verifier_options(name: str, options: dict[str, Any] | None, field: str) -> Options:
    """A verifier's options checked against its entry; a bad one fails naming `field`.<option> and what is allowed."""
    return VERIFIERS.options(name, options or {}, field, f"{field}.name" if options else field)


def create_verifier(name: str, options: Options | dict | None = None, **context) -> Verifier:
    """The verifier `name` with its options; `context`: task always, engine and model for judges on the generator."""
    entry = VERIFIERS.lookup(name, "verifier")
    opts = options if isinstance(options, Options) else verifier_options(name, options, "verifier")
    return entry.factory(opts, **context)


__all__ = [
    "AGGREGATIONS",
    "VERIFIERS",
    "PRMOptions",
    "ScoreRequest",
    "StepScores",
    "Usage",
    "Verifier",
    "VerifierEntry",
    "VerifierOptions",
    "aggregate",
    "charge",
    "create_verifier",
    "register_verifier",
    "verifier_options",
]
