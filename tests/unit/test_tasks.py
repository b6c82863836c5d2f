import json

import pytest

from backend.config import parse_spec
from backend.models.registry import resolve_model
from backend.prompting import build_prompt, stop_sequences
from backend.tasks import create_task
from backend.tasks.humaneval import HumanEvalTask
from backend.tasks.math_jsonl import MathJsonlTask
from backend.tasks.reasoning_gym_task import ReasoningGymTask


@pytest.fixture
def math_file(tmp_path):
    path = tmp_path / "math.jsonl"
    rows = [
        {"problem": "What is half of one?", "answer": "\\frac{1}{2}", "level": "Level 2", "subject": "Algebra"},
        {"problem": "2+2?", "answer": "4", "level": 1, "id": "easy"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return path


def test_math_jsonl_grades_with_math_verify(math_file):
    task = MathJsonlTask(str(math_file))
    half, four = task.questions()
    assert (half.level, half.dataset, four.question_id) == (2.0, "Algebra", "easy")
    assert task.grade(half, "so it is \\boxed{0.5}").correct
    assert task.grade(half, "Answer: 1/2").correct
    assert not task.grade(half, "Answer: 0.25").correct
    assert task.grade(four, "no idea").answer is None


def test_reasoning_gym_questions_carry_difficulty_and_grade():
    task = ReasoningGymTask(
        [
            {
                "name": "basic_arithmetic",
                "size": 2,
                "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
                "level": 3,
            }
        ],
        seed=1,
    )
    q = task.questions()[0]
    assert q.level == 3.0 and q.difficulty["config"]["max_terms"] == 2 and q.question_id == "basic_arithmetic/0/0"
    assert task.grade(q, f"Answer: {q.reference}").correct
    wrong = task.grade(q, "Answer: 12345")
    assert not wrong.correct and 0 < wrong.score < 1  # reasoning-gym's partial credit is kept, not counted correct
    assert task.grade(q, f" {q.reference}").correct  # a base model's bare few-shot reply


def test_same_seed_same_questions_other_seed_others():
    spec = parse_spec(
        {
            "name": "x",
            "models": ["gemma-3-270m"],
            "samples_per_question": 1,
            "task": {"kind": "reasoning_gym", "datasets": [{"name": "chain_sum", "size": 3}]},
        }
    )
    a = [q.text for q in create_task(spec.task, seed=0).questions()]
    assert a == [q.text for q in create_task(spec.task, seed=0).questions()]
    assert a != [q.text for q in create_task(spec.task, seed=1).questions()]


def test_humaneval_grades_in_the_sandbox():
    task = HumanEvalTask(size=2)
    q = task.questions()[0]
    assert q.question_id == "HumanEval/0"
    good = "```python\n" + q.text + q.reference + "\n```"
    assert task.grade(q, good).correct
    assert task.grade(q, q.reference).correct  # base-model continuation
    assert not task.grade(q, "    return True\n").correct


def test_prompts_follow_the_model(math_file):
    task = MathJsonlTask(str(math_file))
    q = task.questions()[1]
    chat = build_prompt(resolve_model("qwen2.5-coder-0.5b-instruct"), task, q)
    assert chat.startswith("<|im_start|>system\n") and chat.endswith("<|im_start|>assistant\n") and "2+2?" in chat
    gemma = resolve_model("gemma-3-270m")
    raw = build_prompt(gemma, task, q)
    assert raw.count("Problem:") == 3 and raw.endswith("Problem: 2+2?\nSolution:")
    assert stop_sequences(gemma, task) == ("\nProblem:",)
