import pytest

from backend.tasks.base import extract_answer
from backend.tasks.humaneval import extract_program


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("2 + 3 = 5\nAnswer: 5", "5"),
        ("Answer: 4\nwait, no.\nAnswer: -7.", "-7"),
        ("**Answer:** 12", "12"),
        ("Final answer: $\\frac{1}{2}$", "\\frac{1}{2}"),
        ("so the result is \\boxed{42}.", "42"),
        ("\\boxed{\\frac{3}{4}} and later \\boxed{x^{2}}", "x^{2}"),
        ("Answer: \\boxed{9}", "9"),
        ("no answer here", None),
        ("\\boxed{unbalanced", None),
    ],
)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_extract_program_prefers_fenced_function():
    prompt = 'def f(x):\n    """doc"""\n'
    chat = "Here:\n```python\ndef f(x):\n    return x + 1\n```\nDone."
    assert extract_program(prompt, chat) == "def f(x):\n    return x + 1\n"
    assert extract_program(prompt, "    return x\n") == prompt + "    return x\n"
    assert extract_program(prompt, "```python\n    return 1\n```") == prompt + "    return 1\n"


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("Therefore, the final answer is: Answer: -1", "-1"),
        ("2 - 1 = 1\n\nAnswer: <answer>1</answer>", "1"),
        ("The final answer is: 8.\nThanks!", "8"),
        ("Answer:\n\\boxed{5}", "5"),  # an empty Answer line falls back to the box
    ],
)
def test_extract_answer_in_running_text(completion, expected):
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(
    "text, expected", [(r"Answer: \(-4\)", "-4"), (r"Answer: \[ 12 \]", "12"), (r"Answer: \(\boxed{7}\)", "7")]
)
def test_inline_math_delimiters_around_the_answer_are_dropped(text, expected):
    assert extract_answer(text) == expected
