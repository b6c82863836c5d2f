"""The run spec: one typed, strict document (YAML or the dashboard's form) that says what to generate.

Unknown keys are rejected (`extra="forbid"`), cross-field rules live here, and every validation failure becomes
a one-line `SpecError` naming the field and what is allowed. Nothing here touches the store, the network or
the process: a spec is checked completely before a run writes anything."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backend.errors import SpecError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(Strict):
    name: str = Field(description="a registry name (ttc models) or a path to a local .gguf file")
    price_in_per_m: float | None = Field(None, ge=0, description="USD per 1M input tokens (cost-of-pass)")
    price_out_per_m: float | None = Field(None, ge=0, description="USD per 1M output tokens (cost-of-pass)")
    prompt_style: Literal["chat", "few_shot"] | None = Field(None, description="override the model's prompting")


class ReasoningGymDatasetSpec(Strict):
    name: str
    size: int = Field(gt=0, le=100_000)
    config: dict[str, Any] = Field(default_factory=dict)
    level: float | None = Field(None, description="difficulty label; defaults to the position in the list")


class ReasoningGymSuite(Strict):
    kind: Literal["reasoning_gym"]
    datasets: list[ReasoningGymDatasetSpec] = Field(min_length=1)


class HumanEvalSuite(Strict):
    kind: Literal["humaneval"]
    size: int | None = Field(None, gt=0, le=164, description="the first N problems")
    ids: list[str] | None = Field(None, min_length=1, description="these problems only, e.g. [HumanEval/2]")
    timeout_s: float = Field(10.0, gt=0, le=120)


class MathJsonlSuite(Strict):
    kind: Literal["math_jsonl"]
    path: str
    size: int | None = Field(None, gt=0)


TaskSuite = Annotated[ReasoningGymSuite | HumanEvalSuite | MathJsonlSuite, Field(discriminator="kind")]


class EngineSpec(Strict):
    kind: Literal["llamacpp", "openai", "vllm"] = "llamacpp"
    n_parallel: int = Field(4, ge=1, le=256, description="parallel slots (continuous batching)")
    n_ctx_per_slot: int = Field(2048, ge=256, le=131072)
    threads: int | None = Field(None, ge=1, le=256)
    base_url: str | None = Field(None, description="for kind=openai: the server's /v1 URL")

    @model_validator(mode="after")
    def _openai_needs_url(self):
        if self.kind == "openai" and not self.base_url:
            raise ValueError("kind openai needs base_url, e.g. http://127.0.0.1:8000/v1")
        if self.kind != "openai" and self.base_url:
            raise ValueError(f"base_url is only used by kind openai, not {self.kind}")
        return self


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


class RunSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    models: list[str | ModelSpec] = Field(min_length=1)
    task: TaskSuite
    samples_per_question: int = Field(gt=0, le=100_000)
    temperature: float = Field(0.8, ge=0, le=5)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, gt=0, le=32768)
    seed: int = Field(0, ge=0, lt=2**31)
    engine: EngineSpec = Field(default_factory=EngineSpec)
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

    @field_validator("budgets")
    @classmethod
    def _positive_budgets(cls, budgets):
        bad = [b for b in budgets if not b > 0]
        if bad:
            raise ValueError(f"budgets must be > 0, got {bad[0]!r}")
        return sorted(set(budgets))

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

    def verifier_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, options) of each listed verifier."""
        return [(v, {}) if isinstance(v, str) else (v.name, v.options()) for v in self.verifiers]

    def verifier_names(self) -> list[str]:
        return [name for name, _ in self.verifier_specs()]

    def model_specs(self) -> list[ModelSpec]:
        return [ModelSpec(name=m) if isinstance(m, str) else m for m in self.models]

    def run_id(self) -> str:
        """Same spec, same run: re-running resumes instead of starting over."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return f"{self.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("reasoning_gym", "humaneval", "math_jsonl", "str", "ModelSpec") or str(part).startswith(
            "function-"
        ):
            continue  # pydantic's union-branch tags are noise to a user
        else:
            out += ("." if out else "") + str(part)
    return out or "spec"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> str | None:
    """Walk the schema along `loc` to list the keys allowed where an unknown one appeared."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or cur is None:
            continue
        if part in ("reasoning_gym", "humaneval", "math_jsonl"):
            cur = {"reasoning_gym": ReasoningGymSuite, "humaneval": HumanEvalSuite, "math_jsonl": MathJsonlSuite}[part]
            continue
        if part == "ModelSpec":
            cur = ModelSpec
            continue
        fld = cur.model_fields.get(part) if isinstance(cur, type) and issubclass(cur, BaseModel) else None
        if fld is None:
            return None
        ann = fld.annotation
        cur = _first_model(ann)
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return ", ".join(cur.model_fields)
    return None


def _first_model(ann) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def spec_error(err: ValidationError, model: type[BaseModel] | None = None) -> SpecError:
    """One line for the first problem pydantic found (the one a user must fix first)."""
    model = model or RunSpec
    e = err.errors()[0]
    loc = tuple(e["loc"])
    field = _field_path(loc)
    if e["type"] == "extra_forbidden":
        return SpecError(field, "unknown key", _allowed_keys(model, loc))
    if e["type"] == "missing":
        return SpecError(field, "required but missing")
    if e["type"] == "union_tag_invalid" or e["type"] == "union_tag_not_found":
        return SpecError(
            field + ".kind" if not field.endswith("kind") else field,
            "unknown or missing task kind",
            "reasoning_gym, humaneval, math_jsonl",
        )
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return SpecError(
        field, f"{msg} (got {e.get('input')!r})" if "input" in e and not isinstance(e.get("input"), dict) else msg
    )


def parse_spec(data: Any, source: str = "spec") -> RunSpec:
    if not isinstance(data, dict):
        raise SpecError(
            source, f"must be a mapping of keys to values, got {type(data).__name__}", ", ".join(RunSpec.model_fields)
        )
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
