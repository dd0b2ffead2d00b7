"""Problem sets: every format read from a file the test writes itself, mapped, checked and hashed."""

from __future__ import annotations

import base64
import csv
import json
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import datasets
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.common.errors import InvalidArgument
from services.orchestrator.problemsets import (
    FORMATS,
    BadRow,
    ProblemSetError,
    load_problem_set,
    problem_set_from_problems,
    problems_from_table,
    problems_table,
)
from start.v1 import common_pb2 as pb

GPQA_COLUMNS = [
    "Pre-Revision Question",
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
    "Explanation",
    "Record ID",
    "High-level domain",
    "Subdomain",
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> str:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> str:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def gpqa_row(n: int) -> dict[str, str]:
    return {
        "Pre-Revision Question": f"old {n}",
        "Question": f"Which particle number {n}?",
        "Correct Answer": f"right {n}",
        "Incorrect Answer 1": f"wrong a {n}",
        "Incorrect Answer 2": f"wrong b {n}",
        "Incorrect Answer 3": f"wrong c {n}",
        "Explanation": "because",
        "Record ID": f"rec{n}",
        "High-level domain": "Physics",
        "Subdomain": "Particle physics",
    }


def packed(value: Any) -> str:
    """LiveCodeBench's private tests: base64(zlib(pickle(json text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(value))).decode()


def test_start_jsonl_rows_map_to_problems_with_other_columns_as_metadata(tmp_path: Path) -> None:
    url = write_jsonl(
        tmp_path / "set.jsonl",
        [
            {"id": "m1", "question": "1+1?", "reference": " 2 ", "subject": "algebra", "level": 3, "note": None},
            {"question": "Pick one", "task_type": "Multiple_Choice", "choices": '["x", "y"]', "reference": "b"},
            {
                "id": 7,
                "question": "Add",
                "task_type": "code",
                "tests": [
                    {"input": "1 2\n", "expected_output": "3\n"},
                    {"fn_name": "add", "args": [1, 2], "expected": 3},
                    {"fn_name": "add", "args_json": "[2, 2]", "expected_json": "4"},
                ],
            },
        ],
    )
    result = load_problem_set(url)
    assert result.format == "start" and result.source == url
    math, choice, code = result.problems
    assert (math.id, math.question, math.reference, math.task_type) == ("m1", "1+1?", "2", pb.TASK_TYPE_MATH)
    assert dict(math.metadata) == {"subject": "algebra", "level": "3"}, "None is omitted, numbers are their JSON"
    assert result.metadata_columns == ["subject", "level", "note"]
    assert choice.id == "row-2" and choice.task_type == pb.TASK_TYPE_MULTIPLE_CHOICE
    assert list(choice.choices) == ["x", "y"] and choice.reference == "B"
    assert code.id == "7" and code.task_type == pb.TASK_TYPE_CODE
    assert code.tests[0] == pb.TestCase(input="1 2\n", expected_output="3\n")
    assert code.tests[1] == pb.TestCase(fn_name="add", args_json="[1, 2]", expected_json="3")
    assert code.tests[2] == pb.TestCase(fn_name="add", args_json="[2, 2]", expected_json="4")


def test_math500_parquet_maps_problem_and_answer_and_tags_the_source(tmp_path: Path) -> None:
    rows = [
        {
            "problem": "What is $2^3$?",
            "solution": "8",
            "answer": "8",
            "subject": "Prealgebra",
            "level": 1,
            "unique_id": "test/prealgebra/1.json",
        }
    ]
    result = load_problem_set(write_parquet(tmp_path / "math.parquet", rows))
    assert result.format == "math500"
    (problem,) = result.problems
    assert (problem.id, problem.question, problem.reference) == ("test/prealgebra/1.json", "What is $2^3$?", "8")
    assert problem.task_type == pb.TASK_TYPE_MATH
    assert dict(problem.metadata) == {"solution": "8", "subject": "Prealgebra", "level": "1", "source": "math500"}
    assert result.metadata_columns == ["solution", "subject", "level", "source"]


def test_aime_csv_with_capitalised_columns_keeps_the_answer_as_written(tmp_path: Path) -> None:
    columns = ["ID", "Problem", "Solution", "Answer"]
    rows = [{"ID": "2024-I-1", "Problem": "Find n.", "Solution": "...", "Answer": " 033 "}]
    detected = load_problem_set(write_csv(tmp_path / "aime_2024.csv", columns, rows))
    named = load_problem_set(write_csv(tmp_path / "contest.csv", columns, rows), "aime")
    for result in (detected, named):
        assert result.format == "aime"
        (problem,) = result.problems
        assert (problem.id, problem.question, problem.reference) == ("2024-I-1", "Find n.", "033")
        assert dict(problem.metadata) == {"Solution": "...", "source": "aime"}
    assert load_problem_set(str(tmp_path / "contest.csv")).format == "math500", "no 'aime' in the name: math500"


def test_hugging_face_save_to_disk_directories_are_read(tmp_path: Path) -> None:
    rows = [{"problem": "1+2?", "answer": "3", "level": "Level 1"}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "plain"))
    assert load_problem_set(str(tmp_path / "plain")).problems[0].reference == "3"

    other = datasets.Dataset.from_list([{"problem": "9?", "answer": "9"}])
    datasets.DatasetDict({"train": other, "test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dd"))
    assert load_problem_set(str(tmp_path / "dd")).problems[0].question == "1+2?", "the test split is taken"

    datasets.DatasetDict({"train": other, "validation": other}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(ProblemSetError, match="train, validation and none is named test"):
        load_problem_set(str(tmp_path / "two"))
    assert load_problem_set(str(tmp_path / "two" / "validation")).problems[0].question == "9?"


def test_gpqa_csv_becomes_lettered_multiple_choice_pointing_at_the_correct_answer(tmp_path: Path) -> None:
    url = write_csv(tmp_path / "gpqa_diamond.csv", GPQA_COLUMNS, [gpqa_row(n) for n in range(12)])
    result = load_problem_set(url, shuffle_seed=3)
    assert result.format == "gpqa" and result.shuffle_seed == 3
    for n, problem in enumerate(result.problems):
        assert problem.id == f"rec{n}" and problem.task_type == pb.TASK_TYPE_MULTIPLE_CHOICE
        assert sorted(problem.choices) == sorted([f"right {n}", f"wrong a {n}", f"wrong b {n}", f"wrong c {n}"])
        assert problem.choices["ABCD".index(problem.reference)] == f"right {n}"
        options = "\n".join(f"{letter}) {choice}" for letter, choice in zip("ABCD", problem.choices, strict=True))
        assert problem.question == f"Which particle number {n}?\n\n{options}"
        assert problem.metadata["High-level domain"] == "Physics" and problem.metadata["source"] == "gpqa"
        assert "Correct Answer" not in problem.metadata and "Question" not in problem.metadata
    assert len({p.reference for p in result.problems}) > 1, "the correct answer is not always at one letter"


def test_gpqa_shuffle_is_reproducible_with_a_seed_and_changes_with_another(tmp_path: Path) -> None:
    url = write_csv(tmp_path / "gpqa.csv", GPQA_COLUMNS, [gpqa_row(n) for n in range(12)])

    def orders(seed: int) -> list[list[str]]:
        return [list(p.choices) for p in load_problem_set(url, "gpqa", shuffle_seed=seed).problems]

    assert orders(1) == orders(1)
    assert orders(1) != orders(2)
    assert len({tuple(c.split()[0] for c in choices) for choices in orders(1)}) > 1, "orders differ per problem"


def test_livecodebench_public_and_packed_private_tests_become_stdin_and_call_tests(tmp_path: Path) -> None:
    stdin_row = {
        "question_title": "Sum",
        "question_content": "Read two numbers and print their sum.",
        "platform": "atcoder",
        "question_id": "abc001_a",
        "contest_date": "2024-01-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
        "private_test_cases": packed(json.dumps([{"input": "5 5\n", "output": "10\n", "testtype": "stdin"}])),
        "metadata": "{}",
    }
    call_row = {
        **stdin_row,
        "question_id": "2847",
        "question_content": "Return the larger of a list's sum and k.",
        "platform": "leetcode",
        "starter_code": "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        ",
        "public_test_cases": json.dumps([{"input": "[1, 2]\n4", "output": "4", "testtype": "functional"}]),
        "private_test_cases": packed(json.dumps([{"input": '[5]\n"x"', "output": "5", "testtype": "functional"}])),
        "metadata": json.dumps({"func_name": "maxSum"}),
    }
    result = load_problem_set(write_jsonl(tmp_path / "lcb.jsonl", [stdin_row, call_row]))
    assert result.format == "livecodebench"
    stdin, call = result.problems
    assert stdin.id == "abc001_a" and stdin.task_type == pb.TASK_TYPE_CODE and stdin.reference == ""
    assert list(stdin.tests) == [
        pb.TestCase(input="1 2\n", expected_output="3\n"),
        pb.TestCase(input="5 5\n", expected_output="10\n"),
    ]
    assert stdin.question == "Read two numbers and print their sum."
    assert list(call.tests) == [
        pb.TestCase(fn_name="maxSum", args_json="[[1, 2], 4]", expected_json="4"),
        pb.TestCase(fn_name="maxSum", args_json='[[5], "x"]', expected_json="5"),
    ]
    assert "def maxSum(self, nums: List[int], k: int)" in call.question, "the model sees the signature it must write"
    assert call.metadata["difficulty"] == "easy" and call.metadata["platform"] == "leetcode"
    assert call.metadata["metadata"] == '{"func_name": "maxSum"}' and call.metadata["source"] == "livecodebench"
    assert "private_test_cases" not in call.metadata


class _RunsAShellCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


def test_a_hostile_pickle_in_private_tests_is_a_bad_row_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsAShellCommand(f"touch {marker}"))
    assert b"system" in payload, "the payload names os.system, as a real attack would"
    good = {
        "question_content": "Print 1.",
        "public_test_cases": json.dumps([{"input": "", "output": "1", "testtype": "stdin"}]),
        "question_id": "ok",
    }
    hostile = {**good, "question_id": "evil", "private_test_cases": base64.b64encode(zlib.compress(payload)).decode()}
    url = write_jsonl(tmp_path / "lcb.jsonl", [good, hostile])

    with pytest.raises(ProblemSetError) as raised:
        load_problem_set(url)
    (bad,) = raised.value.bad_rows
    assert (bad.row, bad.field) == (2, "private_test_cases") and "refused" in bad.message
    result = load_problem_set(url, skip_bad_rows=True)
    assert [p.id for p in result.problems] == ["ok"] and result.skipped == [bad]
    assert not marker.exists(), "the pickle's os.system call must never run"


def test_detection_names_each_format_and_what_an_unknown_file_lacks(tmp_path: Path) -> None:
    with pytest.raises(ProblemSetError) as raised:
        load_problem_set(write_jsonl(tmp_path / "odd.jsonl", [{"prompt": "hi", "target": "x"}]))
    message = raised.value.message
    assert "prompt, target" in message
    assert "gpqa needs Question, Correct Answer" in message and "livecodebench needs question_content" in message

    both = write_jsonl(tmp_path / "both.jsonl", [{"question": "q?", "problem": "p?", "answer": "1"}])
    with pytest.raises(ProblemSetError, match="name the format"):
        load_problem_set(both)
    assert load_problem_set(both, "start").problems[0].question == "q?"
    assert load_problem_set(both, "math500").problems[0].question == "p?"


def test_a_named_format_whose_columns_are_missing_names_them(tmp_path: Path) -> None:
    url = write_jsonl(tmp_path / "set.jsonl", [{"question": "1+1?"}])
    with pytest.raises(ProblemSetError, match="lacks the gpqa column.*Correct Answer, Incorrect Answer 1"):
        load_problem_set(url, "gpqa")
    with pytest.raises(ProblemSetError, match="format 'mmlu' unknown"):
        load_problem_set(url, "mmlu")
    assert set(FORMATS) == {"start", "math500", "aime", "gpqa", "livecodebench"}


def test_every_bad_row_is_reported_with_its_row_and_column(tmp_path: Path) -> None:
    rows = [
        {"id": "ok", "question": "fine?"},
        {"id": "a", "question": "  "},
        {"id": "b", "question": "q", "task_type": "essay"},
        {"id": "c", "question": "q", "task_type": "multiple_choice", "choices": ["x", "y"], "reference": "C"},
        {"id": "d", "question": "q", "task_type": "multiple_choice"},
        {"id": "e", "question": "q", "task_type": "code"},
        {
            "id": "f",
            "question": "q",
            "task_type": "code",
            "tests": [{"fn_name": "f", "args_json": "[1,", "expected": 1}],
        },
        {"id": "g", "question": "q", "task_type": "code", "tests": '[{"stdin": "1"}]'},
        {"id": "ok", "question": "again?"},
    ]
    path = tmp_path / "set.jsonl"
    write_jsonl(path, rows)
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ProblemSetError) as raised:
        load_problem_set(str(path))
    error = raised.value
    assert isinstance(error, InvalidArgument) and error.field == "problem_set"
    found = {(bad.row, bad.field) for bad in error.bad_rows}
    assert found == {
        (2, "question"),
        (3, "task_type"),
        (4, "reference"),
        (5, "reference"),
        (6, "tests"),
        (7, "tests"),
        (8, "tests"),
        (9, "id"),
        (10, "json"),
    }
    by_row = {bad.row: bad.message for bad in error.bad_rows}
    assert "use one of math, multiple_choice, code" in by_row[3]
    assert "'C' is not a letter of the 2 choices; use one of A, B" in by_row[4]
    assert by_row[7].startswith("tests[0]: args_json is not JSON")
    assert "unknown key(s) stdin" in by_row[8]
    assert "repeats the id of row 1" in by_row[9]
    assert error.message.startswith("problem_set: row 2 field question: empty")


def test_skip_bad_rows_keeps_the_good_rows_and_lists_the_others(tmp_path: Path) -> None:
    rows = [{"question": "a?"}, {"question": ""}, {"question": "c?", "task_type": "code"}, {"question": "d?"}]
    result = load_problem_set(write_jsonl(tmp_path / "set.jsonl", rows), skip_bad_rows=True)
    assert [p.id for p in result.problems] == ["row-1", "row-4"]
    assert [(b.row, b.field) for b in result.skipped] == [(2, "question"), (3, "tests")]


def test_the_message_lists_twenty_bad_rows_and_counts_the_rest(tmp_path: Path) -> None:
    rows = [{"question": ""} for _ in range(25)]
    with pytest.raises(ProblemSetError) as raised:
        load_problem_set(write_jsonl(tmp_path / "set.jsonl", rows))
    assert len(raised.value.bad_rows) == 25
    assert raised.value.message.count("field question") == 20 and raised.value.message.endswith("; and 5 more")


def test_limit_keeps_the_first_good_problems(tmp_path: Path) -> None:
    rows = [{"question": f"q{n}?"} for n in range(10)]
    rows[1]["question"] = ""
    result = load_problem_set(write_jsonl(tmp_path / "set.jsonl", rows), limit=3, skip_bad_rows=True)
    assert [p.question for p in result.problems] == ["q0?", "q2?", "q3?"]


def test_the_same_rows_give_the_same_hash_from_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = [
        {"id": "1", "question": "1+1?", "reference": "2", "subject": "a"},
        {"id": "2", "question": "2+2?", "reference": "4", "subject": "b"},
    ]
    from_jsonl = load_problem_set(write_jsonl(tmp_path / "set.jsonl", rows))
    from_parquet = load_problem_set(write_parquet(tmp_path / "set.parquet", rows))
    assert from_jsonl.sha256 == from_parquet.sha256 and len(from_jsonl.sha256) == 64
    rows[1]["reference"] = "5"
    assert load_problem_set(write_jsonl(tmp_path / "changed.jsonl", rows)).sha256 != from_jsonl.sha256


def test_a_directory_of_parquet_parts_is_one_set(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    write_parquet(tmp_path / "parts" / "part-0.parquet", [{"question": "a?", "id": "a"}])
    write_parquet(tmp_path / "parts" / "part-1.parquet", [{"question": "b?", "id": "b"}])
    assert [p.id for p in load_problem_set(str(tmp_path / "parts")).problems] == ["a", "b"]


def test_problems_table_round_trips_the_problems(tmp_path: Path) -> None:
    problems = [
        pb.Problem(id="m", question="1+1?", reference="2", task_type=pb.TASK_TYPE_MATH, metadata={"level": "1"}),
        pb.Problem(
            id="c",
            question="code",
            task_type=pb.TASK_TYPE_CODE,
            tests=[
                pb.TestCase(input="1", expected_output="1"),
                pb.TestCase(fn_name="f", args_json="[]", expected_json="0"),
            ],
            metadata={"question": "a column named like ours", "level": "2"},
        ),
        pb.Problem(id="mc", question="pick", reference="A", task_type=pb.TASK_TYPE_MULTIPLE_CHOICE, choices=["x", "y"]),
    ]
    columns = ["level", "question"]
    table = problems_table(problems, columns)
    assert table.column_names[0] == "problem_index" and "meta_question" in table.column_names
    pq.write_table(table, tmp_path / "problems.parquet")
    assert problems_from_table(pq.read_table(tmp_path / "problems.parquet"), columns) == problems


def test_fsspec_urls_read_local_and_in_memory_files(tmp_path: Path) -> None:
    rows = [{"question": "1+1?", "reference": "2"}]
    local = load_problem_set("file://" + write_jsonl(tmp_path / "set.jsonl", rows))
    memory = fsspec.filesystem("memory")
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    memory.pipe("/problemsets-test/set.parquet", sink.getvalue().to_pybytes())
    try:
        in_memory = load_problem_set("memory://problemsets-test/set.parquet")
    finally:
        memory.rm("/problemsets-test", recursive=True)
    assert local.problems == in_memory.problems and local.sha256 == in_memory.sha256


def test_inline_problems_get_the_same_checks() -> None:
    problems = [
        pb.Problem(question="1+1?", reference="2", task_type=pb.TASK_TYPE_MATH, metadata={"b": "1", "a": "2"}),
        pb.Problem(question="pick", task_type=pb.TASK_TYPE_MULTIPLE_CHOICE, choices=["x"], reference="B"),
        pb.Problem(question="code", task_type=pb.TASK_TYPE_CODE, tests=[pb.TestCase(fn_name="f", expected_json="{")]),
        pb.Problem(question="bad type", task_type=7),
        pb.Problem(question="unset type is math"),
    ]
    with pytest.raises(ProblemSetError) as raised:
        problem_set_from_problems(problems)
    assert [(b.row, b.field) for b in raised.value.bad_rows] == [(2, "reference"), (3, "tests"), (4, "task_type")]
    result = problem_set_from_problems(problems, skip_bad_rows=True)
    assert [p.task_type for p in result.problems] == [pb.TASK_TYPE_MATH, pb.TASK_TYPE_MATH]
    assert (result.format, result.source, result.metadata_columns) == ("start", "inline", ["a", "b"])
    assert result.problems[0].id == "row-1" and problems[0].id == "", "the caller's message is not changed"


def test_unreadable_sets_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "set.txt").write_text("question\n")
    with pytest.raises(ProblemSetError, match=r"unknown file type '.txt'.*\.jsonl.*\.parquet.*\.csv"):
        load_problem_set(str(tmp_path / "set.txt"))
    with pytest.raises(ProblemSetError, match="not found"):
        load_problem_set(str(tmp_path / "missing.jsonl"))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ProblemSetError, match="has no rows"):
        load_problem_set(str(tmp_path / "empty.jsonl"))
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(ProblemSetError, match="cannot read"):
        load_problem_set(str(tmp_path / "broken.parquet"))


def test_bad_row_reads_as_row_field_message() -> None:
    assert str(BadRow(3, "question", "empty")) == "row 3 field question: empty"


def test_start_csv_takes_choices_and_tests_as_json_text(tmp_path: Path) -> None:
    columns = ["id", "question", "task_type", "reference", "choices", "tests", "split"]
    rows = [
        {"id": "mc", "question": "Pick", "task_type": "multiple_choice", "reference": "A", "choices": '["4", "5"]'},
        {"id": "code", "question": "Echo", "task_type": "CODE", "tests": '[{"input": "x", "expected_output": "x"}]'},
    ]
    result = load_problem_set(write_csv(tmp_path / "set.csv", columns, rows))
    mc, code = result.problems
    assert list(mc.choices) == ["4", "5"] and mc.metadata["split"] == ""
    assert list(code.tests) == [pb.TestCase(input="x", expected_output="x")]


def test_a_functional_livecodebench_test_without_func_name_is_a_bad_row(tmp_path: Path) -> None:
    row = {
        "question_content": "Return 1.",
        "public_test_cases": json.dumps([{"input": "", "output": "1", "testtype": "functional"}]),
        "metadata": "{}",
    }
    with pytest.raises(ProblemSetError, match="row 1 field public_test_cases: test 0: a functional test, but"):
        load_problem_set(write_jsonl(tmp_path / "lcb.jsonl", [row]))
