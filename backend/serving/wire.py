"""The OpenAI API's response shapes for an answered request: chat completions (`chat.completion`, streamed as
`chat.completion.chunk`s) and completions (`text_completion`, streamed as `text_completion` chunks), plus the `ttc`
extension (the request's totals on the response, each choice's own on the choice).

Streaming: a policy's answer is known only once its strategy has selected it (best-of-N scores every sample, a
vote counts them, a search prunes to its last round), so nothing can be streamed while the strategy runs; the
selected answer is sent after selection, as chunks of its words, then a chunk with the choice's `finish_reason`
(and its `ttc`), then, with `stream_options.include_usage`, a chunk with empty `choices` and the request's `usage`
(every other chunk carries `usage: null`), then `data: [DONE]`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from backend.serving.runtime import Answered, ChatRequest, Request

PIECE = re.compile(r"\S+\s*|\s+")  # a word and the blank after it: the pieces join back to the text


def usage_body(answered: Answered) -> dict[str, int]:
    u = answered.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


def _head(answered: Answered, request: Request, obj: str) -> dict[str, Any]:
    prefix = "chatcmpl" if isinstance(request, ChatRequest) else "cmpl"
    return {
        "id": f"{prefix}-{answered.run_id}",
        "object": obj,
        "created": answered.created,
        "model": request.model,
        "system_fingerprint": f"ttc-policy-{answered.policy_version}",
    }


def response_body(answered: Answered, request: Request) -> dict[str, Any]:
    """The non-streamed response."""
    if isinstance(request, ChatRequest):
        choices = [
            {
                "index": c.index,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": c.finish_reason,
                "logprobs": None,
                "ttc": c.extension(),
            }
            for c in answered.choices
        ]
        obj = "chat.completion"
    else:
        choices = [
            {"index": c.index, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None, "ttc": c.extension()}
            for c in answered.choices
        ]
        obj = "text_completion"
    return {
        **_head(answered, request, obj),
        "choices": choices,
        "usage": usage_body(answered),
        "ttc": answered.extension(),
    }


def stream_chunks(answered: Answered, request: Request) -> Iterator[dict[str, Any]]:
    """The streamed response's chunks, in order (the SSE framing and `[DONE]` are the transport's)."""
    chat = isinstance(request, ChatRequest)
    head = _head(answered, request, "chat.completion.chunk" if chat else "text_completion")
    include_usage = request.stream_options is not None and request.stream_options.include_usage
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(index: int, content: str | None, finish: str | None = None, role: bool = False) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {} if content is None else {"content": content}
            if role:
                delta = {"role": "assistant", **delta}
            choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": index, "text": content or "", "finish_reason": finish, "logprobs": None}
        return {**head, "choices": [choice], **extra}

    last = len(answered.choices) - 1
    for c in answered.choices:
        if chat:
            yield chunk(c.index, "", role=True)
        for piece in PIECE.findall(c.text):
            yield chunk(c.index, piece)
        end = chunk(c.index, None, c.finish_reason)
        end["choices"][0]["ttc"] = c.extension()
        if c.index == last and not include_usage:
            end["ttc"] = answered.extension()
        yield end
    if include_usage:
        yield {**head, "choices": [], "usage": usage_body(answered), "ttc": answered.extension()}
