"""Any reasoning-gym dataset, several configurations mixed into one suite so a demo spans difficulty
(reasoning-gym's default configs are mostly too hard for 0.5B models; mixing easy knobs gives a spread:
docs/ARCHITECTURE.md, "Facts the design rests on")."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from pydantic import Field

from backend.errors import SpecError, TaskError, UnknownNameError
from backend.options import KindOptions, Options
from backend.tasks.base import Grade, Question, extract_answer


class ReasoningGymDatasetSpec(Options):
    name: str = Field(description="a reasoning-gym dataset (ttc tasks --all lists them and their knobs)")
    size: int = Field(gt=0, le=100_000, description="questions drawn from it")
    config: dict[str, Any] = Field(default_factory=dict, description="the dataset's difficulty knobs")
    level: float | None = Field(None, description="difficulty label; defaults to the position in the list")


class ReasoningGymSuite(KindOptions):
    kind: Literal["reasoning_gym"] = "reasoning_gym"
    datasets: list[ReasoningGymDatasetSpec] = Field(
        min_length=1, description="mix several configurations to span difficulty"
    )


SYSTEM_PROMPT = "You are a careful assistant who solves problems step by step."
INSTRUCTION = "Solve the problem. Think briefly, then give the final answer on its own last line as 'Answer: <answer>'."


def gym_datasets() -> dict:
    """reasoning-gym's own registry, {dataset name: (dataset class, config class)}: what a suite may draw from."""
    from reasoning_gym.factory import DATASETS

    return DATASETS


def config_fields(name: str) -> list[str]:
    _, config_cls = gym_datasets()[name]
    return [f.name for f in dataclasses.fields(config_cls) if f.name not in ("seed", "size")]


def knob_defaults(name: str) -> dict[str, Any]:
    """The dataset's difficulty knobs with reasoning-gym's defaults (a knob without one is left out)."""
    _, config_cls = gym_datasets()[name]
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.name in ("seed", "size"):
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _knob_type_error(value: Any, default: Any) -> str | None:
    """What is wrong with a knob's value by the type of its default (reasoning-gym's own checks would otherwise
    fail on it with a TypeError about '>=' between str and int), or None."""
    if default is None:
        return None
    if isinstance(default, bool):
        ok, what = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, what = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float):
        ok, what = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(default, str):
        ok, what = isinstance(value, str), "text"
    elif isinstance(default, (list, tuple, set)):
        ok, what = isinstance(value, list), "a list"
    else:
        return None
    return None if ok else what


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


class ReasoningGymTask:
    name = "reasoning_gym"
    system_prompt = SYSTEM_PROMPT
    chat_stop: tuple[str, ...] = ()
    few_shot_stop: tuple[str, ...] = ("\nQuestion:", "\n\nQuestion")

    def __init__(self, datasets: list[dict], seed: int, field: str = "task"):
        """`datasets`: [{"name", "size", "config", "level"}]; validated here, before anything runs."""
        import reasoning_gym

        known = gym_datasets()
        self._sets = []
        for i, d in enumerate(datasets):
            where = f"{field}.datasets[{i}]"
            if d["name"] not in known:
                raise UnknownNameError(f"{where}.name", "reasoning-gym dataset", d["name"], known)
            allowed = config_fields(d["name"])
            defaults = knob_defaults(d["name"])
            for key, value in (d.get("config") or {}).items():
                if key not in allowed:
                    raise SpecError(f"{where}.config.{key}", f"not a {d['name']} setting", ", ".join(allowed))
                what = _knob_type_error(value, defaults.get(key))
                if what is not None:
                    raise SpecError(
                        f"{where}.config.{key}",
                        f"{value!r} is not {what}",
                        f"{what}, e.g. the default {defaults[key]!r}",
                    )
            try:
                ds = reasoning_gym.create_dataset(d["name"], size=d["size"], seed=seed + i, **(d.get("config") or {}))
                shots = reasoning_gym.create_dataset(
                    d["name"], size=3, seed=seed + 10_000 + i, **(d.get("config") or {})
                )
            except (AssertionError, ValueError, TypeError) as e:
                shown = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
                raise SpecError(
                    f"{where}.config",
                    f"rejected by reasoning-gym: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                    f"knob values reasoning-gym accepts; its defaults: {shown[:300]}",
                ) from None
            level = d["level"] if d.get("level") is not None else i
            self._sets.append((d, ds, shots, level, i))

    def questions(self) -> list[Question]:
        out = []
        for d, ds, _, level, i in self._sets:
            for j, entry in enumerate(ds):
                meta = entry.get("metadata") or {}
                difficulty = _jsonable({"config": d.get("config") or {}, **(meta.get("difficulty") or {})})
                out.append(
                    Question(
                        question_id=f"{d['name']}/{i}/{j}",
                        task=self.name,
                        dataset=d["name"],
                        text=entry["question"],
                        reference=str(entry["answer"]),
                        difficulty=difficulty,
                        level=float(level),
                        payload=(ds, entry),
                    )
                )
        return out

    def user_message(self, question: Question) -> str:
        return f"{question.text}\n\n{INSTRUCTION}"

    def few_shot_examples(self) -> list[tuple[Question, str]]:
        _, _, shots, _, _ = self._sets[0]
        return [(Question("shot", self.name, "", e["question"], str(e["answer"])), str(e["answer"])) for e in shots]

    def few_shot_format(self, question: Question, answer: str | None) -> str:
        return f"Question: {question.text}\nAnswer:" + (f" {answer}" if answer is not None else "")

    def grade(self, question: Question, completion: str) -> Grade:
        ds, entry = question.payload
        answer = extract_answer(completion)
        if answer is None:
            # Base models answer right after "Answer:" in the few-shot format: a bare one-line reply is the answer.
            bare = completion.strip()
            answer = bare if bare and "\n" not in bare and len(bare) <= 40 else None
        try:
            score = float(ds.score_answer(answer, entry)) if answer is not None else 0.0
        except Exception as e:  # a checker bug must not kill a run; record it as ungraded-wrong
            raise TaskError(f"reasoning-gym {question.dataset} failed to grade {answer!r}: {e}") from e
        return Grade(answer, score)
