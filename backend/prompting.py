"""Turn a task's question into the exact text a model reads.

Instruct models get their own chat template (read from the GGUF, rendered with Jinja as Hugging Face does);
base models get a raw few-shot prompt. Engines only ever see plain text, so prompt tokens, prefix caching and
search-step continuations work the same way on every engine."""

from __future__ import annotations

from functools import lru_cache

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from backend.models.registry import ResolvedModel
from backend.tasks.base import Question, Task


def _raise(message: str):
    raise jinja2.TemplateError(message)


@lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(template)


def render_chat(template: str, messages: list[dict], add_generation_prompt: bool = True) -> str:
    return _compile(template).render(messages=messages, add_generation_prompt=add_generation_prompt, tools=None)


def build_prompt(model: ResolvedModel, task: Task, question: Question) -> str:
    if model.prompt_style == "chat" and model.chat_template:
        messages = [
            {"role": "system", "content": task.system_prompt},
            {"role": "user", "content": task.user_message(question)},
        ]
        return render_chat(model.chat_template, messages)
    shots = "".join(f"{task.few_shot_format(q, a)}\n\n" for q, a in task.few_shot_examples())
    return shots + task.few_shot_format(question, None)


def stop_sequences(model: ResolvedModel, task: Task) -> tuple[str, ...]:
    """Base models keep writing the next few-shot question; stop them there."""
    return task.few_shot_stop if model.prompt_style == "few_shot" else task.chat_stop
