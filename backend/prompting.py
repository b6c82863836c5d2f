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


def chat_template_in_use(model: ResolvedModel) -> str | None:
    """The chat template the model is prompted through, or None where it gets a raw few-shot prompt."""
    return model.chat_template if model.prompt_style == "chat" and model.chat_template else None


def chat_messages(task: Task, user_content: str, *turns: tuple[str, str]) -> list[dict]:
    """The one way a conversation with a task is assembled: the task's system prompt, the user's message, then any
    further (role, content) turns. The first prompt, revisions and the chat judge all start the same way, so their
    rendered texts share the prefix the engine has cached."""
    messages = [{"role": "system", "content": task.system_prompt}, {"role": "user", "content": user_content}]
    return messages + [{"role": role, "content": content} for role, content in turns]


def build_prompt(model: ResolvedModel, task: Task, question: Question) -> str:
    template = chat_template_in_use(model)
    if template is not None:
        return render_chat(template, chat_messages(task, task.user_message(question)))
    shots = "".join(f"{task.few_shot_format(q, a)}\n\n" for q, a in task.few_shot_examples())
    return shots + task.few_shot_format(question, None)


def stop_sequences(model: ResolvedModel, task: Task) -> tuple[str, ...]:
    """Base models keep writing the next few-shot question; stop them there."""
    return task.few_shot_stop if model.prompt_style == "few_shot" else task.chat_stop
