"""A strategy's parameter table as data (name, default, range or choices, help): the spec check, the CLI listing and
the dashboard's form are all built from it. The parameters several strategies share are defined once here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One strategy parameter, as the dashboard's form and the docs show it."""

    name: str
    default: Any
    help: str
    type: type[Any] = int
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None

    def check(self, value: Any, field: str) -> Any:
        from backend.errors import SpecError

        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise SpecError(field, f"must be {self.type.__name__}, got {value!r}", self.allowed())
        if self.choices is not None and value not in self.choices:
            raise SpecError(field, f"{value!r} is not allowed", self.allowed())
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise SpecError(field, f"{value!r} is out of range", self.allowed())
        return value

    def allowed(self) -> str:
        if self.choices is not None:
            return ", ".join(repr(c) for c in self.choices)
        if self.type is str:
            return "any text"
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"{self.type.__name__} in [{lo}, {hi}]"


N = Param("n", 8, "number of candidates: samples, beams or particles", int, 1, 4096)
WIDTH = Param("width", 4, "beam width M: each kept beam is expanded M times, N/M beams are kept", int, 1, 1024)
MAX_ROUNDS = Param(
    "max_rounds", 40, "at most this many search steps; leaves still open then are closed as final", int, 1, 40
)
STEP_TOKENS = Param("max_tokens", 256, "tokens generated per step at most", int, 1, 32768)
SAMPLE_TOKENS = Param("max_tokens", 512, "tokens per sample at most", int, 1, 32768)
DELIMITER = Param("delimiter", "\n\n", "text that ends a step (generation stops there)", str)
AGGREGATION = Param(
    "aggregation",
    "last",
    "how a solution's step scores become one score",
    str,
    choices=("last", "min", "product", "mean"),
)
TEMPERATURE = Param("temperature", 0.8, "sampling temperature of the generator", float, 0.0, 2.0)
SOFTMAX_T = Param(
    "softmax_temperature", 1.0, "temperature of the softmax over verifier scores (lower = greedier)", float, 1e-3, 100.0
)
