"""Final answers extracted from imported completions, by the rule the pool's own grader used, so majority and
weighted votes can count them (a pool that carries only verdicts otherwise votes over nothing).

- `gsm8k`: Large Language Monkeys' GSM8K grader (Brown et al. 2024; reference code
  `llmonk/evaluate/math_datasets.py`, `extract_answer_gsm8k`): the first `#### <number>` (digits, `-`, `$`, `.`,
  `,`), then `,` and `$` removed and one trailing `.` dropped.
- `math`: the Minerva rule llmonk grades MATH with (Lewkowycz et al. 2022, appendix D; lm-evaluation-harness
  `lm_eval/tasks/minerva_math/utils.py`, `get_unnormalized_answer` then `normalize_final_answer`): the text between
  "Final Answer: The final answer is" and ". I hope it is correct." (the sentence is appended first, so an answer
  that ends the completion is found), then the paper's substitutions, removed expressions and TeX rewrites.

Both run as Arrow compute kernels (RE2) over a problem's column of completions: no per-sample Python. RE2 and
Python's `re` agree on these patterns (leftmost-first, `.` stops at a newline); one difference is documented
where it is handled. A completion with no answer by the rule gets NULL (the graders' "[invalid]" strings), which
never joins a vote."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

Rule = Literal["gsm8k", "math"]

GSM8K_ANSWER = r"#### (?P<answer>-?[$0-9.,]+)"

MINERVA_FINAL = r"Final Answer: The final answer is(?P<answer>.*?). I hope it is correct."
MINERVA_END = "I hope it is correct."
MINERVA_SUBSTITUTIONS = (
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
)
MINERVA_REMOVED = (
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "ft",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    "\\mathrm{th}",
    "^\\circ",
    "^{\\circ}",
    "\\;",
    ",\\!",
    "{,}",
    '"',
    "\\dots",
)
MINERVA_REWRITES = (  # (pattern, RE2 rewrite), in the paper's order
    (r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$"),
    (r"(\\text\{)(.*?)(\})", "\\2"),
    (r"(\\textbf\{)(.*?)(\})", "\\2"),
    (r"(\\overline\{)(.*?)(\})", "\\2"),
    (r"(\\boxed\{)(.*)(\})", "\\2"),
    (r"(frac)([^{])(.)", "frac{\\2}{\\3}"),
    (r"(sqrt)([^{])", "sqrt{\\2}"),
)


def extract(rule: Rule, completions: pa.Array) -> pa.Array:
    """The answers of `completions` (strings, NULL allowed) by `rule`, NULL where the rule finds none."""
    text = pc.cast(completions, pa.string())
    return _gsm8k(text) if rule == "gsm8k" else _math(text)


def _group(text: pa.Array, pattern: str) -> pa.Array:
    """The first match's `answer` group, NULL where the pattern does not match."""
    return pc.struct_field(pc.extract_regex(text, pattern), "answer")


def _gsm8k(text: pa.Array) -> pa.Array:
    found = _group(text, GSM8K_ANSWER)
    found = pc.replace_substring(found, ",", "")
    found = pc.replace_substring(found, "$", "")
    return pc.replace_substring_regex(found, r"\.$", "")


def _math(text: pa.Array) -> pa.Array:
    found = _group(pc.binary_join_element_wise(text, pa.scalar(MINERVA_END), ""), MINERVA_FINAL)
    return normalize_final_answer(pc.utf8_trim_whitespace(found))


def normalize_final_answer(answer: pa.Array) -> pa.Array:
    """Lewkowycz et al. 2022, appendix D, over a column: the last `=`-separated part, substitutions, removed
    expressions, the TeX rewrites, `$` dropped, and thousands commas dropped from an all-digit answer."""
    out = pc.replace_substring_regex(answer, r"(?s)^.*=", "")  # split("=")[-1]
    for before, after in MINERVA_SUBSTITUTIONS:
        out = pc.replace_substring(out, before, after)
    for expr in MINERVA_REMOVED:
        out = pc.replace_substring(out, expr, "")
    for pattern, rewrite in MINERVA_REWRITES:
        out = pc.replace_substring_regex(out, pattern, rewrite)
    out = pc.replace_substring(out, "$", "")
    # str.isdigit() of the comma-free text; Python's isdigit also accepts non-ASCII digits (², ٣), not seen here
    digits = pc.match_substring_regex(pc.replace_substring(out, ",", ""), r"^[0-9]+$")
    return pc.if_else(digits, pc.replace_substring(out, ",", ""), out)
