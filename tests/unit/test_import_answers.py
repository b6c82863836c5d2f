"""The imported pools' answer extraction (backend/importers/answers.py) against the graders' own rules written out
in plain Python `re`, from Large Language Monkeys' `llmonk/evaluate/math_datasets.py` (GSM8K) and Lewkowycz et al.
2022 appendix D as lm-evaluation-harness's minerva_math utils give it (MATH), on many random completions built
from the fragments those rules react to."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

from backend.importers.answers import MINERVA_REMOVED, MINERVA_SUBSTITUTIONS, extract


def gsm8k_reference(completion: str) -> str | None:
    match = re.compile(r"#### (\-?[\$0-9\.\,]+)").search(completion)
    if not match:
        return None  # "[invalid]"
    s = match.group(1).strip()
    for pattern in [",", "\\$", "\\.$"]:
        s = re.sub(pattern, "", s)
    return s


def minerva_reference(completion: str) -> str | None:
    text = completion + "I hope it is correct."
    match = re.search(r"Final Answer: The final answer is(.*?). I hope it is correct.", text)
    if not match:
        return None  # "[invalidanswer]"
    a = match.group(1).strip()
    a = a.split("=")[-1]
    for before, after in MINERVA_SUBSTITUTIONS:
        a = a.replace(before, after)
    for expr in MINERVA_REMOVED:
        a = a.replace(expr, "")
    a = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", a)
    a = re.sub(r"(\\text\{)(.*?)(\})", "\\2", a)
    a = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", a)
    a = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", a)
    a = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", a)
    a = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", a)
    a = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", a)
    a = a.replace("$", "")
    if a.replace(",", "").isdigit():
        a = a.replace(",", "")
    return a


FRAGMENTS = [
    "#### ",
    "####",
    "-",
    "$",
    ".",
    ",",
    "12",
    "7",
    "1,000",
    " ",
    "\n",
    "x",
    "=",
    "Final Answer: The final answer is ",
    "Final Answer: The final answer is",
    ". I hope it is correct.",
    "I hope it is correct",
    "\\frac",
    "12",
    "ab",
    "\\sqrt",
    "{",
    "}",
    "\\boxed{",
    "\\text{",
    "\\textbf{",
    "\\overline{",
    "an ",
    "a ",
    "dollars",
    "\\text{and}",
    "^\\circ",
    "\\!",
    "\\ ",
    "mbox",
    "units",
    "{,}",
    '"',
    "\\dots",
    "sqrt2",
    "frac34",
]


def _corpus(seed: int, n: int = 3000) -> list[str | None]:
    rng = np.random.default_rng(seed)
    out: list[str | None] = [None, "", "#### 1,234.", "#### $18", "Final Answer: The final answer is $\\frac{2}{3}$."]
    for _ in range(n):
        k = int(rng.integers(1, 14))
        out.append("".join(FRAGMENTS[i] for i in rng.integers(0, len(FRAGMENTS), k)))
    return out


@pytest.mark.parametrize("rule, reference", [("gsm8k", gsm8k_reference), ("math", minerva_reference)])
@pytest.mark.parametrize("seed", [0, 1])
def test_extraction_matches_the_graders_rule_on_random_completions(rule, reference, seed):
    corpus = _corpus(seed)
    got = extract(rule, pa.array(corpus, pa.string())).to_pylist()
    want = [None if c is None else reference(c) for c in corpus]
    bad = [(c, g, w) for c, g, w in zip(corpus, got, want) if g != w]
    assert not bad, bad[:5]
    assert sum(w is not None for w in want) > 50  # the corpus exercises the rule, not only its misses


def test_the_graders_examples():
    assert extract("gsm8k", pa.array(["so #### 1,234.", "#### $18 and #### 3", "no answer"])).to_pylist() == [
        "1234",
        "18",
        None,
    ]
    math = [
        "Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.",
        "Final Answer: The final answer is 100,000. I hope it is correct.",
    ]
    assert extract("math", pa.array(math)).to_pylist() == ["\\frac{2}{3}", "100000"]
