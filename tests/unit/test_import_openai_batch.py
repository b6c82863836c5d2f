"""`ttc import openai_batch`: OpenAI Batch output lines, written to the documented batch output schema (one line
per request: id, custom_id, response {status_code, request_id, body: a chat.completion with usage}, error), with
the errors file's lines kept as failed samples; a custom_id the pattern does not match is one line naming the
file, the line and the field, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backend.errors import ImportFileError, SpecError
from backend.importers.ingest import import_files
from store import Store


def _ok(cid: str, text: str, prompt: int = 20, completion: int = 7, cached: int = 0, **extra) -> dict:
    return {
        "id": f"batch_req_{cid}",
        "custom_id": cid,
        "response": {
            "status_code": 200,
            "request_id": f"req_{cid}",
            "body": {
                "id": f"chatcmpl-{cid}",
                "object": "chat.completion",
                "created": 1711652795,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": cached},
                },
                "system_fingerprint": "fp_3ba",
            },
        },
        "error": None,
        **extra,
    }


def _failed(cid: str) -> dict:
    return {
        "id": f"batch_req_{cid}",
        "custom_id": cid,
        "response": None,
        "error": {"code": "batch_expired", "message": "This request could not be executed before the batch expired."},
    }


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


OUTPUT = [
    _ok("gsm-1-s0", "1 + 1 = 2\n#### 2", cached=16),
    _ok("gsm-1-s1", "#### 3", completion=3),
    _ok("gsm-2-s1", "so #### 4"),
    _ok("gsm-1-s2", "no idea"),
]


def test_output_and_errors_files_import_with_tokens_references_and_failed_rows(tmp_path):
    out = _jsonl(tmp_path / "batch_out.jsonl", OUTPUT)
    errors = _jsonl(tmp_path / "batch_errors.jsonl", [_failed("gsm-2-s0")])
    refs = _jsonl(
        tmp_path / "refs.jsonl",
        [{"question_id": "gsm-1", "reference": "2"}, {"question_id": "gsm-2", "reference": "4"}],
    )
    store = Store.open(tmp_path / "store")
    result = import_files(store, "openai_batch", [out, errors], model="gpt-4o-mini", options={"references": str(refs)})
    assert (result.samples, result.questions) == (5, 2)
    df = store.query(
        "SELECT question_id, sample_idx, answer, correct, prompt_tokens, cached_prompt_tokens, completion_tokens, "
        "finish_reason, grade_error, completion FROM samples ORDER BY question_id, sample_idx"
    )
    assert df[["question_id", "sample_idx"]].values.tolist() == [
        ["gsm-1", 0],
        ["gsm-1", 1],
        ["gsm-1", 2],
        ["gsm-2", 0],
        ["gsm-2", 1],
    ]
    assert df["correct"].tolist() == [True, False, False, False, True]
    assert df["answer"].tolist()[:2] == ["2", "3"] and df["answer"].isna().tolist()[2:4] == [True, True]
    assert df["completion_tokens"].tolist()[:3] == [7, 3, 7] and df["cached_prompt_tokens"].iloc[0] == 16
    failed = df.iloc[3]
    assert failed["finish_reason"] == "error" and pd.isna(failed["completion"]) and pd.isna(failed["completion_tokens"])
    assert "batch_expired" in failed["grade_error"]


def test_a_grading_key_of_each_line_gives_the_verdict(tmp_path):
    rows = [_ok("q7-s0", "x", correct=True), _ok("q7-s1", "y", correct="false")]
    store = Store.open(tmp_path / "store")
    import_files(store, "openai_batch", [_jsonl(tmp_path / "o.jsonl", rows)], options={"correct_key": "correct"})
    assert store.query("SELECT correct FROM samples ORDER BY sample_idx")["correct"].tolist() == [True, False]


def test_a_custom_id_the_pattern_does_not_match_is_one_line_and_nothing_is_written(tmp_path):
    rows = [
        _ok("gsm-1-s0", "#### 2", correct=1),
        _ok("gsm-1_sample-1", "#### 2", correct=1),
        _ok("gsm-2-s0", "x", correct=0),
    ]
    path = _jsonl(tmp_path / "out.jsonl", rows)
    store = Store.open(tmp_path / "store")
    with pytest.raises(ImportFileError) as e:
        import_files(store, "openai_batch", [path], options={"correct_key": "correct"})
    msg = str(e.value)
    assert msg.startswith(f"{path}: record 2: custom_id: 'gsm-1_sample-1' does not match custom_id_pattern")
    assert "\n" not in msg
    assert store.query("SELECT count(*) AS n FROM samples")["n"].iloc[0] == 0
    assert not [p for p in (tmp_path / "store").rglob("*.parquet")]


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "exactly one of correct_key and references"),
        ({"correct_key": "c", "custom_id_pattern": r"(?P<q>.+)"}, "named group `question`"),
        ({"correct_key": "c", "custom_id_pattern": "(unclosed"}, "not a regular expression"),
    ],
)
def test_options_are_checked_before_reading(tmp_path, options, message):
    path = _jsonl(tmp_path / "o.jsonl", OUTPUT)
    with pytest.raises(SpecError, match=message):
        import_files(Store.open(tmp_path / "store"), "openai_batch", [path], options=options)
