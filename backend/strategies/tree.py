"""A question's search tree: nodes (a step, a rollout, a revision, ...) with what each cost and how it was judged,
and the step helpers every strategy shares (where a step ends, how a whole sample is cut into scored steps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.engines.base import Completion
from backend.tasks.base import Question, extract_answer
from backend.verifiers.base import aggregate

MAX_SCORED_STEPS = 8  # a whole sample is scored as at most this many steps, so its verification cost is bounded


@dataclass(eq=False)
class Node:
    """One node of a question's search tree. `steps` is the solution so far (what a verifier scores)."""

    node_id: int
    parent: Node | None
    depth: int
    text: str = ""
    steps: tuple[str, ...] = ()
    prompt: str = ""  # the prompt this node's text was generated from
    kind: str = "step"  # root | step | rollout | revision | extension | answer
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # the engine's report
    ledger_cached_tokens: int | None = None  # what the ledger charged as cached (None: the root, nothing generated)
    completion_tokens: int = 0
    finish_reason: str = ""
    generator_flops: float = 0.0
    verifier_flops: float = 0.0
    # every verifier pass charged to this node, (prompt, cached, completion) tokens: verifier_flops is their sum
    verifier_passes: list[tuple[int, int, int]] = field(default_factory=list)
    score: float | None = None
    value: float | None = None  # aggregated path score, set by strategies that rank nodes
    is_final: bool = False
    selected: bool = False
    answer: str | None = None
    correct: bool | None = None
    grade_error: str | None = None

    @property
    def context_tokens(self) -> int:
        """Tokens of prompt + this node's text, as the engine counted them."""
        return self.prompt_tokens + self.completion_tokens

    def path(self) -> list[Node]:
        out: list[Node] = []
        n: Node | None = self
        while n is not None:
            out.append(n)
            n = n.parent
        return out[::-1]


@dataclass
class Tree:
    question: Question
    prompt: str
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes.append(Node(0, None, 0, kind="root", prompt=self.prompt, finish_reason="root"))

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add(self, parent: Node, **kw) -> Node:
        node = Node(len(self.nodes), parent, parent.depth + 1, **kw)
        self.nodes.append(node)
        return node

    @property
    def finals(self) -> list[Node]:
        return [n for n in self.nodes if n.is_final]

    @property
    def selected(self) -> Node | None:
        return next((n for n in self.nodes if n.selected), None)


def is_final_step(c: Completion) -> bool:
    """A step ends the solution when it states an answer or the model had nothing more to say.
    (OpenAI-shaped servers report "stop" for both the end-of-sequence token and a stop string.)"""
    return not c.text.strip() or extract_answer(c.text) is not None


def path_value(node: Node, how: str) -> float:
    return aggregate([n.score for n in node.path() if n.kind not in ("root", "rollout") and n.score is not None], how)


def split_steps(text: str, delimiter: str, max_steps: int = MAX_SCORED_STEPS) -> tuple[str, ...]:
    """A whole sample as steps; at most `max_steps` (leading steps merged) so its verification cost is bounded."""
    parts = [p for p in text.split(delimiter)] if delimiter else [text]
    parts = [p for p in parts if p.strip()] or [text]
    if len(parts) > max_steps:
        parts = [delimiter.join(parts[: len(parts) - max_steps + 1])] + parts[len(parts) - max_steps + 1 :]
    return tuple(parts)
