"""A strategy's parameters as a typed options model (backend/options.py): name, default, range or choices and help
per field, so the spec check, the CLI listing, README's table and the dashboard's form are all derived from it. The
parameters several strategies share are defined once here, as annotated types.

A strategy's parameters are strict (an int is not given as 2.0 or "8", a bool is no number) and a bad value reads
`must be int, got '8'`, `41 is out of range` or `'max' is not allowed`, each with what is allowed. A search stores
the validated model's values as its configuration (nodes.config, strategies/runner.py `search_record`) and is found
again by them, so a parameter's name, type and default must not change under stored searches
(tests/unit/test_strategies.py pins them)."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from pydantic.fields import FieldInfo

from backend.options import Options, allowed_values, base_type

_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number")


class StrategyOptions(Options):
    """Base of every strategy's options model."""

    model_config = ConfigDict(strict=True)

    @classmethod
    def explain(cls, error: dict, field: FieldInfo) -> tuple[str, str | None] | None:
        value, allowed = error.get("input"), allowed_values(field)
        base = base_type(field.annotation)
        choices = typing.get_args(base) if typing.get_origin(base) is typing.Literal else None
        expected = type(choices[0]) if choices else base
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # as the value is taken: 1 is 1.0
        if choices is not None and isinstance(value, expected) and not isinstance(value, bool):
            return f"{value!r} is not allowed", allowed
        if error["type"] in _RANGE_ERRORS:
            return f"{value!r} is out of range", allowed
        if str(error["type"]).endswith(("_type", "_parsing")) or choices is not None:
            return f"must be {expected.__name__}, got {value!r}", allowed
        return None


def parameter_table(model: type[Options]) -> list[dict[str, Any]]:
    """The parameters as rows (name, type, default, allowed, help): what `ttc strategies` lists."""
    rows = []
    for name, f in model.model_fields.items():
        base = base_type(f.annotation)
        kind = type(typing.get_args(base)[0]) if typing.get_origin(base) is typing.Literal else base
        rows.append(
            {
                "name": name,
                "type": kind.__name__,
                "default": f.default,
                "allowed": allowed_values(f),
                "help": f.description,
            }
        )
    return rows


Candidates = Annotated[int, Field(8, ge=1, le=4096, description="number of candidates: samples, beams or particles")]
Beams = Annotated[int, Field(16, ge=1, le=4096, description="number of beams N (candidates per round)")]
Width = Annotated[
    int, Field(4, ge=1, le=1024, description="beam width M: each kept beam is expanded M times, N/M beams are kept")
]
MaxRounds = Annotated[
    int,
    Field(40, ge=1, le=40, description="at most this many search steps; leaves still open then are closed as final"),
]
StepTokens = Annotated[int, Field(256, ge=1, le=32768, description="tokens generated per step at most")]
SampleTokens = Annotated[int, Field(512, ge=1, le=32768, description="tokens per sample at most")]
Delimiter = Annotated[str, Field("\n\n", description="text that ends a step (generation stops there)")]
Aggregation = Annotated[
    Literal["last", "min", "product", "mean"],
    Field("last", description="how a solution's step scores become one score"),
]
Temperature = Annotated[float, Field(0.8, ge=0.0, le=2.0, description="sampling temperature of the generator")]
SoftmaxTemperature = Annotated[
    float,
    Field(1.0, ge=1e-3, le=100.0, description="temperature of the softmax over verifier scores (lower = greedier)"),
]


class SampleOptions(StrategyOptions):
    """Whole samples drawn at once (majority, first-finish)."""

    n: Candidates
    max_tokens: SampleTokens
    temperature: Temperature


class ScoredSampleOptions(SampleOptions):
    """Whole samples scored by the verifier (best-of-N, weighted best-of-N)."""

    aggregation: Aggregation
    delimiter: Delimiter
