"""backend/importers/yaml_docs.py builds YAML documents from libyaml's events instead of PyYAML's composer: the
documents must be exactly `yaml.safe_load_all`'s, on random documents dumped in every style PyYAML writes and on
hand-written ones with what the builder leaves to PyYAML (anchors, merge keys, tags, complex keys); bad YAML
raises the YAMLError PyYAML raises."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.importers.yaml_docs import documents

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False)
    | st.text(max_size=120)
    | st.sampled_from(["yes", "No", "on", "OFF", "~", "null", "0x1f", "0o17", "1:20", "2001-12-14", "1e3", ".inf",
                       "<<", "=", "", " lead", "trail ", "a: b", "- x", "#c", "'q'", '"d"', "12", "3.5", "true"])
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12) | st.integers(), inner, max_size=6)
    ),
    max_leaves=40,
)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _check(tmp_path, text: str) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    want = list(yaml.safe_load_all(text))
    got = list(documents(path))
    assert _same(got, want), (text, got, want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(values, min_size=1, max_size=3),
    flow=st.sampled_from([False, True, None]),
    style=st.sampled_from([None, "'", '"', "|"]),
    width=st.sampled_from([20, 80, 10_000]),
    unicode=st.booleans(),
)
def test_dumped_documents_read_back_as_safe_load_all_reads_them(tmp_path, docs, flow, style, width, unicode):
    text = yaml.dump_all(docs, default_flow_style=flow, default_style=style, width=width, allow_unicode=unicode)
    _check(tmp_path, text)


HAND_WRITTEN = [
    "a: &x [1, 2]\nb: *x\n",  # anchor and alias
    "base: &b {k: 1}\nderived:\n  <<: *b\n  j: 2\n",  # merge key
    "? [a, b]\n: 1\n",  # complex key (SafeLoader refuses it: the same error)
    "a: !!str 12\nb: !!float 1\nc: !!binary aGk=\nd: !!set {x, y}\ne: !!timestamp 2001-12-14t21:59:43.10-05:00\n",
    "a: 1\na: 2\n",  # duplicate keys: the last wins
    "---\n---\nx\n...\n---\n- 1\n",  # an empty document, a scalar one, a list
    "samples:\n- plain text that goes on\n  over two lines\n- 'single ''quoted''\n\n  with a newline'\n"
    '- "double \\"quoted\\" \\u00e9\\\n  continued"\n- |\n  literal\n   block\n- >\n  folded\n  block\n'
    "is_corrects: [true, False, yes, off]\n",
    "nan: .nan\ninf: -.inf\nnull: ~\nempty:\n",
    "a: 1 # comment\n# only a comment\nb: [x, {y: z}]\n",
]


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_hand_written_documents_read_as_safe_load_all_reads_them(tmp_path, text):
    try:
        list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        path = tmp_path / "doc.yaml"
        path.write_text(text)
        with pytest.raises(type(e)):
            list(documents(path))
        return
    _check(tmp_path, text)


def test_a_truncated_file_raises_yamls_error_after_the_documents_before_it(tmp_path):
    path = tmp_path / "cut.yaml"
    path.write_text("a: 1\n---\nb: 'open quote\n")
    docs = documents(path)
    assert next(docs) == {"a": 1}
    with pytest.raises(yaml.YAMLError):
        next(docs)
