"""The run spec: one typed, strict document (YAML or the dashboard's form) that says what to generate.

Unknown keys are rejected (`extra="forbid"`), cross-field rules live here, and every validation failure becomes
a one-line `SpecError` naming the field and what is allowed. Nothing here touches the store, the network or
the process: a spec is checked completely before a run writes anything."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from backend.engines import engine_options
from backend.errors import SpecError
from backend.options import KindOptions, identity, options_error
from backend.tasks import task_options

MAX_SAMPLE_BUDGET = 1e6  # samples per question: beyond it a number is a FLOP count in the wrong unit
MIN_FLOP_BUDGET = 1e6  # FLOPs per question: below it no model generates a token, so it is a sample count
MAX_SAMPLES_PER_QUESTION = 100_000  # samples_per_question's bound, and so the most a FLOP budget may buy
BUDGETS_ALLOWED = "comma-separated positive FLOP counts per question, such as 5e11, 1e12, 2e12"


def parse_budget_list(raw: str) -> list[float]:
    """A form's budget list ("5e11, 1e12"; ';' also separates): every item a positive, finite number. An empty
    item (`1e12,,2e12`, a trailing comma) is an error naming it, never skipped: a skipped item is a typo kept."""
    if not raw.strip():
        return []
    out = []
    for i, item in enumerate(raw.replace(";", ",").split(","), 1):
        text = item.strip()
        if not text:
            raise SpecError("budgets", f"item {i} of {raw.strip()!r} is empty", BUDGETS_ALLOWED)
        try:
            value = float(text)
        except ValueError:
            raise SpecError("budgets", f"item {i} ({text!r}) is not a number", BUDGETS_ALLOWED) from None
        if not (math.isfinite(value) and value > 0):
            raise SpecError("budgets", f"item {i} ({text}) is not a positive, finite number", BUDGETS_ALLOWED)
        out.append(value)
    return out


def check_budget_samples(budgets, prefill: float, per_sample: float, model: str) -> None:
    """Refuse a FLOP budget that would buy more than MAX_SAMPLES_PER_QUESTION samples per question on `model` (as
    backend.ledger.samples_affordable counts them: one prefill, then `per_sample` each), naming what it would buy
    and the largest budget allowed there. Compared in FLOPs, so no sample count has to fit an integer."""
    cap = prefill + MAX_SAMPLES_PER_QUESTION * per_sample
    over = [float(b) for b in budgets if b > cap * (1 + 1e-12)]
    if not over:
        return
    budget = max(over)
    raise SpecError(
        "budgets",
        f"{budget:g} FLOPs per question would buy {(budget - prefill) / per_sample:.3g} samples per question on "
        f"{model}",
        f"at most {MAX_SAMPLES_PER_QUESTION:,} samples per question (the samples_per_question limit), i.e. up to "
        f"{cap:.3g} FLOPs per question on {model}",
    )


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(Strict):
    name: str = Field(description="a registry name (ttc models) or a path to a local .gguf file")
    price_in_per_m: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="USD per 1M input tokens (cost-of-pass)"
    )
    price_out_per_m: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="USD per 1M output tokens (cost-of-pass)"
    )
    prompt_style: Literal["chat", "few_shot"] | None = Field(None, description="override the model's prompting")


class StrategySpec(Strict):
    name: str = Field(description="a search strategy (ttc strategies lists them and their parameters)")
    config: dict[str, Any] = Field(default_factory=dict, description="parameters; missing ones take defaults")
    verifier: str | None = Field(None, description="scores candidates; default: the spec's first verifier")
    ratios: list[str] | None = Field(
        None,
        min_length=1,
        description="sequential:parallel sweep (sequential_revisions): at each budget, one search per ratio "
        "'S:P', the budget's attempts split into chain length x chains; '1:0' all sequential, '0:1' all parallel",
    )

    @field_validator("ratios", mode="before")
    @classmethod
    def _quoted(cls, ratios):
        # YAML 1.1 reads an unquoted 1:1 as the base-60 number 61: say so instead of "should be a valid string"
        for r in ratios if isinstance(ratios, list) else ():
            if isinstance(r, int) and not isinstance(r, bool):
                raise ValueError(
                    f"got the number {r}: YAML reads an unquoted S:P such as 1:1 as a base-60 number; "
                    "quote each ratio, e.g. ['4:1', '1:1', '0:1']"
                )
        return ratios

    @field_validator("ratios")
    @classmethod
    def _ratio_format(cls, ratios):
        if ratios is None:
            return None
        for r in ratios:
            m = re.fullmatch(r"(\d{1,4}):(\d{1,4})", str(r))
            if m is None or (m[1] == "0" and m[2] == "0") or int(m[1]) + int(m[2]) == 0:
                raise ValueError(
                    f"a ratio is 'S:P' with whole S, P >= 0 and not both 0, e.g. '4:1', '1:1', '0:1'; got {r!r}"
                )
        dup = {r for r in ratios if ratios.count(r) > 1}
        if dup:
            raise ValueError(f"ratio {sorted(dup)[0]!r} is listed twice")
        return ratios


class VerifierSpec(BaseModel):
    """A verifier with options, `{name: prm_vllm, model: <HF id or path>}`: the options are checked against the
    verifier's own options model when the run is prepared (backend.verifiers.verifier_options)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(description="a registered verifier (ttc strategies lists them)")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AdaptiveSpec(Strict):
    """Adaptive allocation (backend/execution/allocation.py): one total budget spread over the questions while the run goes,
    instead of `samples_per_question` for each (which becomes the cap per question)."""

    total_budget: float = Field(
        gt=0, description="the budget of the whole question set, in unit; with per_question, its mean per question"
    )
    unit: Literal["samples", "flops"] = Field(
        "samples", description="samples: multiples of one sample's FLOPs (prompt + max_tokens); flops: FLOPs"
    )
    per_question: bool = Field(False, description="total_budget is a mean per question, multiplied by their number")
    stop: Literal["beta", "supermajority"] = Field(
        "beta", description="when a question is settled: the Beta posterior rule, or a supermajority of its votes"
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="beta: stop once P(leader is the majority) >= this")
    supermajority: float = Field(0.75, gt=0.5, le=1, description="supermajority: stop once the leader has this share")
    first_round: int = Field(4, ge=1, le=1024, description="samples every question gets first")
    round_samples: int = Field(4, ge=1, le=1024, description="samples an open question gets per later round at most")
    hopeless_after: int = Field(8, ge=1, description="samples after which a question can be judged hopeless")
    hopeless_agreement: float = Field(
        0.25, ge=0, lt=1, description="a question whose leading answer has at most this share is predicted hopeless"
    )


class RunSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    models: list[str | ModelSpec] = Field(
        min_length=1,
        description="registry names (ttc models), paths to local .gguf files, or {name: ..., price_in_per_m: ...}",
    )
    task: SerializeAsAny[KindOptions] = Field(description="the task suite: {kind: ..., <its options>} (ttc tasks)")
    samples_per_question: int = Field(gt=0, le=MAX_SAMPLES_PER_QUESTION)
    temperature: float = Field(0.8, ge=0, le=5)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, gt=0, le=32768)
    seed: int = Field(0, ge=0, lt=2**31)
    engine: SerializeAsAny[KindOptions] = Field(
        default_factory=lambda: engine_options({}), description="the engine: {kind: ..., <its options>} (ttc engines)"
    )
    verifiers: list[str | VerifierSpec] = Field(
        default_factory=list,
        description="score every pooled sample with these: a name, or {name: ..., <option>: ...} for one with options",
    )
    strategies: list[StrategySpec] = Field(default_factory=list, description="search strategies run per budget")
    budgets: list[float] = Field(
        default_factory=list,
        description="FLOP budgets per question for the strategies, in units of one sample's FLOPs "
        "(prompt + max_tokens on that model); empty: each strategy runs once, uncapped",
    )

    budget_unit: Literal["samples", "flops"] = Field(
        "samples", description="samples: multiples of one sample's FLOPs on each model; flops: FLOPs per question"
    )
    adaptive: AdaptiveSpec | None = Field(
        None,
        description="spread one total budget over the questions as the run goes (samples_per_question is then the "
        "cap per question)",
    )

    @field_validator("samples_per_question", "temperature", "top_p", "max_tokens", "seed", mode="before")
    @classmethod
    def _not_a_boolean(cls, value):
        # YAML reads `yes`/`true` as a boolean, which pydantic would take as 1: a typo must not become a setting
        if isinstance(value, bool):
            raise ValueError("expected a number, not true/false")
        return value

    @field_validator("task", mode="before")
    @classmethod
    def _task_options(cls, task):
        return task_options(task, "task")  # a SpecError names the field; pydantic lets it through

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_options(cls, engine):
        return engine_options(engine, "engine")

    @field_validator("budgets")
    @classmethod
    def _positive_budgets(cls, budgets):
        bad = [b for b in budgets if not (b > 0 and math.isfinite(b))]
        if bad:
            raise ValueError(f"budgets must be > 0, got {bad[0]!r}" if not bad[0] > 0 else "budgets must be finite")
        return sorted(set(budgets))

    @model_validator(mode="after")
    def _budgets_fit_their_unit(self):
        """Budgets are spent by strategies, in `budget_unit`: a list without strategies, or numbers that read as the
        other unit (1e12 'samples', 4 'FLOPs'), is a mistake that would otherwise run for days or spend nothing."""
        if self.budgets and not self.strategies:  # (adaptive.total_budget is spent by sampling, not here)
            raise SpecError(
                "budgets", "given but the spec lists no strategies to spend them", "budgets together with strategies"
            )
        if self.budget_unit == "samples" and max(self.budgets, default=0) > MAX_SAMPLE_BUDGET:
            raise SpecError(
                "budgets",
                f"{max(self.budgets):g} samples per question looks like a FLOP count (budget_unit: samples)",
                f"with budget_unit: samples, up to {MAX_SAMPLE_BUDGET:g} (multiples of one sample's FLOPs); "
                "for FLOPs set budget_unit: flops",
            )
        if self.budget_unit == "flops" and min(self.budgets, default=MIN_FLOP_BUDGET) < MIN_FLOP_BUDGET:
            raise SpecError(
                "budgets",
                f"{min(self.budgets):g} FLOPs per question buys no token of any model (budget_unit: flops)",
                f"with budget_unit: flops, {MIN_FLOP_BUDGET:g} or more (e.g. 1e12); for sample counts set "
                "budget_unit: samples",
            )
        return self

    @model_validator(mode="after")
    def _adaptive_fits(self):
        a = self.adaptive
        if a is None:
            return self
        if getattr(self.engine, "replicas", 1) != 1:
            raise SpecError(
                "engine.replicas",
                "adaptive allocation decides each round from the last one on one engine; fanning it out is not built",
                "1 (the default) with adaptive",
            )
        if a.first_round > self.samples_per_question:
            raise SpecError(
                "adaptive.first_round",
                f"{a.first_round} is more than samples_per_question ({self.samples_per_question}), the cap per question",
                f"1 to {self.samples_per_question}",
            )
        if a.unit == "samples" and a.total_budget > MAX_SAMPLE_BUDGET * (1 if a.per_question else 1e4):
            raise SpecError(
                "adaptive.total_budget",
                f"{a.total_budget:g} samples looks like a FLOP count (adaptive.unit: samples)",
                "multiples of one sample's FLOPs; for FLOPs set adaptive.unit: flops",
            )
        if a.unit == "flops" and a.total_budget < MIN_FLOP_BUDGET:
            raise SpecError(
                "adaptive.total_budget",
                f"{a.total_budget:g} FLOPs buys no token of any model (adaptive.unit: flops)",
                f"{MIN_FLOP_BUDGET:g} or more; for sample counts set adaptive.unit: samples",
            )
        return self

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, models):
        names = [m if isinstance(m, str) else m.name for m in models]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"model {sorted(dup)[0]!r} is listed twice")
        return models

    @field_validator("verifiers")
    @classmethod
    def _distinct_verifiers(cls, verifiers):
        names = [v if isinstance(v, str) else v.name for v in verifiers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"verifier {sorted(dup)[0]!r} is listed twice (its scores are stored under its name)")
        return verifiers

    def budgets_flops(self, arch, prompt_tokens) -> list[float]:
        """`budgets:` in FLOPs per question on a model with architecture `arch`, for questions whose prompts have
        `prompt_tokens` tokens on its tokenizer (backend.pricing: in samples, multiples of "1 sample")."""
        from backend.pricing import budget_flops

        return budget_flops(arch, self.budgets, self.budget_unit, prompt_tokens, self.max_tokens)

    def verifier_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, options) of each listed verifier."""
        return [(v, {}) if isinstance(v, str) else (v.name, v.options()) for v in self.verifiers]

    def verifier_names(self) -> list[str]:
        return [name for name, _ in self.verifier_specs()]

    def model_specs(self) -> list[ModelSpec]:
        return [ModelSpec(name=m) if isinstance(m, str) else m for m in self.models]

    def run_id(self) -> str:
        """Same spec, same run: re-running resumes instead of starting over, also with other execution options."""
        data = self.model_dump(mode="json") | {"engine": identity(self.engine)}  # parallelism etc. do not count
        if data["adaptive"] is None:  # a field added later: specs without it keep the ids they always had
            del data["adaptive"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return f"{self.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


def spec_error(err: ValidationError, model: type[BaseModel] | None = None) -> SpecError:
    """One line for the first problem pydantic found (the one a user must fix first)."""
    return options_error(err, model or RunSpec)


def parse_spec(data: Any, source: str = "spec") -> RunSpec:
    if not isinstance(data, dict):
        got = "nothing (the spec is empty)" if data is None else type(data).__name__
        raise SpecError(source, f"must be a mapping of keys to values, got {got}", ", ".join(RunSpec.model_fields))
    try:
        return RunSpec.model_validate(data)
    except ValidationError as err:
        raise spec_error(err) from None


def load_spec(path: str | Path) -> RunSpec:
    p = Path(path)
    if not p.is_file():
        raise SpecError("SPEC", f"file {str(p)!r} does not exist", "a path to a YAML run spec")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(
            str(p),
            f"malformed YAML{where}: {getattr(e, 'problem', None) or e}",
            "a YAML mapping (see examples/smoke.yaml)",
        ) from None
    return parse_spec(data, str(p))
