"""Problem sets: the rows a job runs the START recipe over, read, mapped to our schema and checked.

A job starts here, before any episode: `load_problem_set(url)` reads a file (JSONL, Parquet,
CSV, or a Hugging Face `save_to_disk` directory; a local path or any fsspec URL), maps a public
benchmark's columns (MATH-500, AIME, GPQA, LiveCodeBench) to `pb.Problem`, and checks every
row. All bad rows are reported at once with their row number and column, so a person fixes the
file in one pass instead of learning of one bad row per failed episode an hour into a job.
`problem_set_from_problems` gives rows sent inline over gRPC the same checks.

The job stores the result with `problems_table` as its `problems.parquet` and records `sha256`
(a hash of the normalised problems, the same whatever file format they came in) in its
manifest; workers read the set back with `problems_from_table`. The schema, each format's
mapping and the checks are documented in docs/jobs.md, "Problem sets".
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import pickle
import posixpath
import random
import string
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from services.common.errors import InvalidArgument
from services.orchestrator.results import PROBLEM_COLUMNS, metadata_column, problem_columns, problem_from_row
from start.v1 import common_pb2 as pb

FORMATS = ("start", "math500", "aime", "gpqa", "livecodebench")

# The columns each format needs (matched case-insensitively); detection looks for these.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "start": ("question",),
    "math500": ("problem", "answer"),
    "aime": ("problem", "answer"),
    "gpqa": ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
    "livecodebench": ("question_content", "public_test_cases"),
}

TASK_TYPES = {"math": pb.TASK_TYPE_MATH, "multiple_choice": pb.TASK_TYPE_MULTIPLE_CHOICE, "code": pb.TASK_TYPE_CODE}
# The multiple-choice grader (services/scoring/extract.py) reads the letters A-J only.
CHOICE_LETTERS = string.ascii_uppercase[:10]
LISTED_BAD_ROWS = 20
# A LiveCodeBench private-test cell inflates to megabytes; past this it is refused, not decoded.
MAX_DECODED_TESTS_BYTES = 512 << 20

_HF_MARKERS = {"dataset_info.json", "state.json", "dataset_dict.json"}
_ACCEPTED = (
    ".jsonl or .json (JSON lines, or one JSON array), .parquet, .csv, a directory of .parquet files, "
    "or a Hugging Face save_to_disk directory"
)
_TEST_KEYS = ("input", "expected_output", "fn_name", "args", "args_json", "expected", "expected_json")


@dataclass(frozen=True)
class BadRow:
    row: int  # 1-based row number in the file (CSV header not counted; JSONL: the line number)
    field: str  # the column (or our field) at fault
    message: str  # what is wrong and what would be valid

    def __str__(self) -> str:
        return f"row {self.row} field {self.field}: {self.message}"


class ProblemSetError(InvalidArgument):
    """A problem set that cannot run, on field 'problem_set': its bad rows (the first 20 in the
    message, then 'and N more'), or what is wrong with the file itself (then `bad_rows` is empty)."""

    def __init__(self, bad_rows: Sequence[BadRow] = (), problem: str = "") -> None:
        self.bad_rows = list(bad_rows)
        listed = "; ".join(str(bad) for bad in self.bad_rows[:LISTED_BAD_ROWS])
        more = len(self.bad_rows) - LISTED_BAD_ROWS
        if more > 0:
            listed += f"; and {more} more"
        super().__init__("problem_set", ": ".join(part for part in (problem, listed) if part))


@dataclass
class ProblemSet:
    problems: list[pb.Problem]  # each problem's metadata holds the set's other columns as text
    format: str  # the format used (detected or named)
    source: str  # the URL/path, or "inline"
    sha256: str  # hash of the normalised problems (stable: same rows -> same hash)
    skipped: list[BadRow] = field(default_factory=list)  # rows left out with skip_bad_rows
    shuffle_seed: int = 0  # GPQA choice shuffle seed (recorded)
    metadata_columns: list[str] = field(default_factory=list)  # the other columns, in file order


# -- public entry points ----------------------------------------------------------------------


def load_problem_set(
    url: str, format: str = "", *, skip_bad_rows: bool = False, shuffle_seed: int = 0, limit: int = 0
) -> ProblemSet:
    """Read, map and check the problem set at `url`; `format` empty detects it from the columns.

    Raises ProblemSetError listing every bad row unless `skip_bad_rows`, which keeps the good
    rows and lists the others in `skipped`. `limit` keeps the first N good problems (rows after
    them are neither mapped nor checked).
    """
    name = format.strip().lower()
    if name and name not in FORMATS:
        raise ProblemSetError(problem=f"format {format!r} unknown; use one of {', '.join(FORMATS)}, or '' to detect")
    if limit < 0:
        raise ProblemSetError(problem=f"limit {limit} must be >= 0 (0: every row)")
    rows = _read(url)
    if not rows.rows:
        raise ProblemSetError(problem=f"{url} has no rows")
    columns = _Columns(rows.columns)
    name = name or _detect(columns, url)
    missing = columns.missing(REQUIRED_COLUMNS[name])
    if missing:
        raise ProblemSetError(
            problem=f"{url} lacks the {name} column(s) {', '.join(missing)}; it has {', '.join(columns.names)}"
        )
    plan = _PLANS[name](columns, name, shuffle_seed)
    metadata_columns = [c for c in columns.names if c not in plan.used]
    metadata_columns += [key for key in plan.added if columns.get(key) is None]
    problems, skipped = _collect(_mapped(rows, plan, metadata_columns), plan.field_columns, skip_bad_rows, limit)
    return ProblemSet(problems, name, url, problems_sha256(problems), skipped, shuffle_seed, metadata_columns)


def problem_set_from_problems(problems: Sequence[pb.Problem], *, skip_bad_rows: bool = False) -> ProblemSet:
    """Problems sent inline (gRPC), given the checks a file's rows get; format 'start', source 'inline'.
    A problem without a task type is math, as a file row without one is."""
    if not problems:
        raise ProblemSetError(problem="no problems; send at least one")

    def candidates() -> Iterator[tuple[_Faults, pb.Problem | None]]:
        for number, given in enumerate(problems, start=1):
            problem = pb.Problem()
            problem.CopyFrom(given)  # the caller's message stays as it was sent
            problem.id = problem.id.strip() or f"row-{number}"
            if problem.task_type == pb.TASK_TYPE_UNSPECIFIED:
                problem.task_type = pb.TASK_TYPE_MATH
            yield _Faults(number), problem

    kept, skipped = _collect(candidates(), {}, skip_bad_rows, limit=0)
    metadata_columns: list[str] = []
    for problem in kept:
        metadata_columns += [key for key in sorted(problem.metadata) if key not in metadata_columns]
    return ProblemSet(kept, "start", "inline", problems_sha256(kept), skipped, 0, metadata_columns)


def problems_sha256(problems: Sequence[pb.Problem]) -> str:
    """A hash of the problems in order. Deterministic serialisation sorts map keys, and each
    problem is length-prefixed, so the same rows give the same hash from any file format."""
    digest = hashlib.sha256()
    for problem in problems:
        data = problem.SerializeToString(deterministic=True)
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


# -- the normalised set as a table (a job's problems.parquet) ---------------------------------

def problems_table(problems: Sequence[pb.Problem], metadata_columns: Sequence[str]) -> pa.Table:
    """One row per problem, `problem_index` first, then the problem's columns as the results
    have them (results.PROBLEM_COLUMNS), then the metadata columns."""
    names = [metadata_column(c) for c in metadata_columns]
    clash = sorted({n for n in names if names.count(n) > 1})  # e.g. both `question` and `meta_question`
    if clash:
        raise ValueError(f"metadata columns {clash} clash in the problems table")
    schema = pa.schema([("problem_index", pa.int32()), *PROBLEM_COLUMNS, *((name, pa.string()) for name in names)])
    rows = [{"problem_index": i, **problem_columns(p, metadata_columns)} for i, p in enumerate(problems)]
    return pa.Table.from_pylist(rows, schema=schema)


def problems_from_table(table: pa.Table, metadata_columns: Sequence[str]) -> list[pb.Problem]:
    """The problems `problems_table` wrote, in problem_index order."""
    rows = sorted(table.to_pylist(), key=lambda r: r["problem_index"])
    return [problem_from_row(row, metadata_columns) for row in rows]


# -- reading a file into rows ----------------------------------------------------------------


@dataclass
class _Rows:
    """A file's rows in order, each with its number; a row that could not be read is its BadRow."""

    columns: list[str]
    rows: list[tuple[int, dict[str, Any] | BadRow]]


def _read(url: str) -> _Rows:
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # e.g. s3:// without s3fs installed
        raise ProblemSetError(problem=f"cannot open {url}: {exc}") from exc
    if not fs.exists(path):
        raise ProblemSetError(problem=f"{url} not found")
    try:
        if fs.isdir(path):
            names = {posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)}
            if names & _HF_MARKERS:
                return _read_hugging_face(url)
            parts = sorted(p for p in fs.find(path) if p.endswith(".parquet"))
            if parts:
                return _read_parquet_parts(fs, parts)
            raise ProblemSetError(
                problem=f"{url} is a directory with neither .parquet files nor a dataset; use {_ACCEPTED}"
            )
        suffix = posixpath.splitext(path)[1].lower()
        readers = {".jsonl": _read_json, ".json": _read_json, ".parquet": _read_parquet, ".csv": _read_csv}
        if suffix not in readers:
            raise ProblemSetError(problem=f"{url}: unknown file type {suffix or '(no extension)'!r}; use {_ACCEPTED}")
        return readers[suffix](fs, path)
    except (OSError, ValueError, csv.Error, pa.ArrowException) as exc:  # a corrupt or mislabelled file
        raise ProblemSetError(problem=f"cannot read {url}: {exc}") from exc


def _read_text(fs: fsspec.AbstractFileSystem, path: str) -> str:
    with fs.open(path, "rb") as handle:
        return handle.read().decode("utf-8-sig")


def _read_json(fs: fsspec.AbstractFileSystem, path: str) -> _Rows:
    text = _read_text(fs, path)
    if text.lstrip().startswith("["):  # a .json file holding one array of rows
        items = list(enumerate(json.loads(text), start=1))
    else:
        items = []
        # Split on "\n" only: str.splitlines would also split inside strings at U+2028 and friends.
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                items.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                items.append((number, BadRow(number, "json", f"not JSON ({exc.msg} at column {exc.colno})")))
    columns: dict[str, None] = {}
    rows: list[tuple[int, dict[str, Any] | BadRow]] = []
    for number, item in items:
        if isinstance(item, dict):
            columns.update(dict.fromkeys(item))
        elif not isinstance(item, BadRow):
            item = BadRow(number, "json", f"a JSON {type(item).__name__}; each row must be a JSON object")
        rows.append((number, item))
    return _Rows(list(columns), rows)


def _read_csv(fs: fsspec.AbstractFileSystem, path: str) -> _Rows:
    # LiveCodeBench-sized cells run to megabytes; the csv module's default limit is 128 KiB.
    csv.field_size_limit(2**31 - 1)
    reader = csv.DictReader(io.StringIO(_read_text(fs, path), newline=""))
    columns = list(reader.fieldnames or [])
    rows: list[tuple[int, dict[str, Any] | BadRow]] = []
    for number, row in enumerate(reader, start=1):
        if None in row:  # DictReader files the cells past the header under the key None
            rows.append((number, BadRow(number, "(row)", f"more cells than the header's {len(columns)} columns")))
        else:
            rows.append((number, row))
    return _Rows(columns, rows)


def _read_parquet(fs: fsspec.AbstractFileSystem, path: str) -> _Rows:
    return _read_parquet_parts(fs, [path])


def _read_parquet_parts(fs: fsspec.AbstractFileSystem, paths: Sequence[str]) -> _Rows:
    """One table from Parquet files, in the order given (a directory's parts sorted by name)."""
    tables = []
    for path in paths:
        with fs.open(path, "rb") as handle:
            tables.append(pq.read_table(handle))
    table = pa.concat_tables(tables, promote_options="default")
    return _Rows(table.column_names, list(enumerate(table.to_pylist(), start=1)))


def _read_hugging_face(url: str) -> _Rows:
    import datasets  # slow to import; only this kind of problem set needs it

    loaded = datasets.load_from_disk(url)
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if "test" in loaded:
            loaded = loaded["test"]
        elif len(splits) == 1:
            loaded = loaded[splits[0]]
        else:
            raise ProblemSetError(
                problem=f"{url} holds the splits {', '.join(splits)} and none is named test; "
                f"point the URL at one split's directory, e.g. {url.rstrip('/')}/{splits[0]}"
            )
    return _Rows(list(loaded.column_names), list(enumerate(loaded.to_list(), start=1)))


# -- formats: a row to a problem ---------------------------------------------------------------


class _Columns:
    """A file's column names, looked up case-insensitively (AIME sets write `Problem`, MATH-500 `problem`)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self._by_lower: dict[str, str] = {}
        for name in self.names:
            self._by_lower.setdefault(name.lower(), name)

    def get(self, name: str) -> str | None:
        return self._by_lower.get(name.lower())

    def missing(self, required: Sequence[str]) -> list[str]:
        return [name for name in required if self.get(name) is None]


class _Faults:
    """The bad fields of one row as they are found; the first fault of a field is the one reported."""

    def __init__(self, row: int) -> None:
        self.row = row
        self.found: list[BadRow] = []

    def add(self, column: str, message: str) -> None:
        if not any(bad.field == column for bad in self.found):
            self.found.append(BadRow(self.row, column, message))


@dataclass(frozen=True)
class _Plan:
    """How one file's rows become problems, built once from its columns."""

    to_problem: Callable[[dict[str, Any], _Faults], pb.Problem]
    used: frozenset[str]  # the columns that became fields of the problem; the others are metadata
    field_columns: dict[str, str]  # our field -> its column, so a check names what a person can fix
    added: dict[str, str] = field(default_factory=dict)  # metadata every row gets, unless a column has it


def _detect(columns: _Columns, url: str) -> str:
    """The format whose columns the file has. GPQA and LiveCodeBench columns are distinctive; a
    problem/answer set is aime when its file name says so, else math500."""
    for name in ("gpqa", "livecodebench"):
        if not columns.missing(REQUIRED_COLUMNS[name]):
            return name
    fits = [name for name in ("math500", "start") if not columns.missing(REQUIRED_COLUMNS[name])]
    if fits == ["math500"]:
        return "aime" if "aime" in posixpath.basename(url.rstrip("/")).lower() else "math500"
    if fits == ["start"]:
        return "start"
    if fits:
        raise ProblemSetError(
            problem="the columns fit both start (question) and math500/aime (problem, answer); name the format"
        )
    needs = "; ".join(f"{name} needs {', '.join(cols)}" for name, cols in REQUIRED_COLUMNS.items())
    raise ProblemSetError(
        problem=f"cannot tell the format from the columns {', '.join(columns.names)}; {needs}; or name the format"
    )


def _text(value: Any) -> str | None:
    """A cell as text: strings as they are, numbers, lists and objects as their JSON, missing as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float, list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)  # dates, decimals


def _cell(row: Mapping[str, Any], column: str | None) -> str:
    return (_text(row.get(column)) or "") if column else ""


def _row_id(row: Mapping[str, Any], column: str | None, faults: _Faults) -> str:
    return _cell(row, column).strip() or f"row-{faults.row}"


def _start_plan(columns: _Columns, name: str, shuffle_seed: int) -> _Plan:
    col = {f: columns.get(f) for f in ("id", "question", "reference", "task_type", "choices", "tests")}

    def to_problem(row: dict[str, Any], faults: _Faults) -> pb.Problem:
        def value(name: str) -> Any:
            return row.get(col[name]) if col[name] else None

        return pb.Problem(
            id=_row_id(row, col["id"], faults),
            question=_cell(row, col["question"]),
            reference=_cell(row, col["reference"]),
            task_type=_task_type(value("task_type"), col["task_type"] or "task_type", faults),
            choices=_choices(value("choices"), col["choices"] or "choices", faults),
            tests=_tests(value("tests"), col["tests"] or "tests", faults),
        )

    return _Plan(to_problem, frozenset(c for c in col.values() if c), {f: c for f, c in col.items() if c})


def _task_type(value: Any, column: str, faults: _Faults) -> int:
    text = (_text(value) or "").strip().lower().removeprefix("task_type_")
    if not text:
        return pb.TASK_TYPE_MATH
    if text not in TASK_TYPES:
        faults.add(column, f"{text!r} unknown; use one of {', '.join(TASK_TYPES)} (default math)")
    return TASK_TYPES.get(text, pb.TASK_TYPE_UNSPECIFIED)


def _json_list(value: Any, column: str, what: str, faults: _Faults) -> list[Any]:
    """A list cell: a list (Parquet, JSONL) or the JSON text of one (CSV); missing is empty."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            faults.add(column, f"not JSON ({exc.msg}); use a JSON list of {what}")
            return []
    if not isinstance(value, list):
        faults.add(column, f"a {type(value).__name__}; use a list of {what}")
        return []
    return value


def _choices(value: Any, column: str, faults: _Faults) -> list[str]:
    items = _json_list(value, column, "the options as text", faults)
    if any(isinstance(item, (list, dict)) or item is None for item in items):
        faults.add(column, "use a list of the options as text")
        return []
    return [(_text(item) or "").strip() for item in items]


def _tests(value: Any, column: str, faults: _Faults) -> list[pb.TestCase]:
    tests = []
    for index, item in enumerate(_json_list(value, column, "tests", faults)):
        try:
            tests.append(_test_case(item))
        except ValueError as exc:
            faults.add(column, f"tests[{index}]: {exc}")
    return tests


def _test_case(item: Any) -> pb.TestCase:
    """One test of our schema: stdin/stdout, or a call of `fn_name` (what services/sandbox/testcases.py runs)."""
    if not isinstance(item, dict):
        raise ValueError(f"a {type(item).__name__}; use an object with input/expected_output or fn_name/args/expected")
    given = {key: value for key, value in item.items() if value is not None}  # Parquet structs give None for absent
    unknown = sorted(set(given) - set(_TEST_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; use {', '.join(_TEST_KEYS)}")
    call_keys = [key for key in ("args", "args_json", "expected", "expected_json") if given.get(key) not in ("", None)]
    fn_name = _text(given.get("fn_name")) or ""
    if not fn_name:
        if call_keys:
            raise ValueError(f"{', '.join(call_keys)} without fn_name; a function test names its function")
        if "expected_output" not in given:
            raise ValueError("expected_output missing (a stdin test: input and expected_output)")
        return pb.TestCase(input=_text(given.get("input")) or "", expected_output=_text(given["expected_output"]) or "")
    if given.get("input") or given.get("expected_output"):
        raise ValueError("a function test takes args and expected, not input/expected_output")
    if "args" in given and "args_json" in given:
        raise ValueError("both args and args_json; give one")
    if "expected" in given and "expected_json" in given:
        raise ValueError("both expected and expected_json; give one")
    args_json = json.dumps(given["args"]) if "args" in given else _text(given.get("args_json")) or "[]"
    if "expected" in given:
        expected_json = json.dumps(given["expected"])
    elif "expected_json" in given:
        expected_json = _text(given["expected_json"]) or ""
    else:
        raise ValueError('expected missing (or expected_json; "null" for a function that returns None)')
    test = pb.TestCase(fn_name=fn_name, args_json=args_json, expected_json=expected_json)
    problem = _test_fault(test)
    if problem:
        raise ValueError(problem)
    return test


def _test_fault(test: pb.TestCase) -> str:
    """What is wrong with a test the sandbox would run, or ''."""
    if not test.fn_name:
        if test.args_json or test.expected_json:
            return "args_json/expected_json without fn_name; a function test names its function"
        return ""
    if not test.fn_name.isidentifier():
        return f"fn_name {test.fn_name!r} is not a Python name"
    for name, text in (("args_json", test.args_json or "[]"), ("expected_json", test.expected_json)):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return f"{name} is not JSON ({exc.msg})"
    return ""


def _math_plan(columns: _Columns, name: str, shuffle_seed: int) -> _Plan:
    problem_col, answer_col = columns.get("problem"), columns.get("answer")
    id_col = columns.get("unique_id") or columns.get("id")

    def to_problem(row: dict[str, Any], faults: _Faults) -> pb.Problem:
        return pb.Problem(
            id=_row_id(row, id_col, faults),
            question=_cell(row, problem_col),
            reference=_cell(row, answer_col).strip(),  # as written: AIME's "033" stays "033"
            task_type=pb.TASK_TYPE_MATH,
        )

    used = frozenset(c for c in (problem_col, answer_col, id_col) if c)
    fields = {"question": problem_col or "problem", "reference": answer_col or "answer", "id": id_col or "id"}
    return _Plan(to_problem, used, fields, {"source": name})


_GPQA_ANSWERS = REQUIRED_COLUMNS["gpqa"][1:]  # the correct answer first


def gpqa_choice_order(shuffle_seed: int, problem_id: str) -> list[int]:
    """Which answer is shown at each letter (0 is the correct one). Seeded by the set's seed and the
    problem's id, so the order is reproducible, differs from problem to problem and does not
    depend on row order; a string seed is hashed by `random` itself, the same in every process."""
    order = list(range(len(_GPQA_ANSWERS)))
    random.Random(f"{shuffle_seed}:{problem_id}").shuffle(order)
    return order


def _gpqa_plan(columns: _Columns, name: str, shuffle_seed: int) -> _Plan:
    question_col, id_col = columns.get("Question"), columns.get("Record ID")
    answer_cols = [columns.get(answer) or answer for answer in _GPQA_ANSWERS]

    def to_problem(row: dict[str, Any], faults: _Faults) -> pb.Problem:
        problem_id = _row_id(row, id_col, faults)
        answers = []
        for column in answer_cols:
            answers.append(_cell(row, column).strip())
            if not answers[-1]:
                faults.add(column, "empty; GPQA needs the correct answer and three incorrect ones")
        order = gpqa_choice_order(shuffle_seed, problem_id)
        choices = [answers[i] for i in order]
        question = _cell(row, question_col).strip()
        options = "\n".join(f"{letter}) {choice}" for letter, choice in zip(CHOICE_LETTERS, choices, strict=False))
        return pb.Problem(
            id=problem_id,
            question=f"{question}\n\n{options}" if question else "",  # the model sees the lettered options
            reference=CHOICE_LETTERS[order.index(0)],
            task_type=pb.TASK_TYPE_MULTIPLE_CHOICE,
            choices=choices,
        )

    used = frozenset(c for c in (question_col, id_col, *answer_cols) if c)
    return _Plan(
        to_problem, used, {"question": question_col or "Question", "id": id_col or "Record ID"}, {"source": name}
    )


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain data only. LiveCodeBench's private tests are a pickled string, but a pickle
    that names any global (a class, or a function such as os.system) can run code as it loads,
    so every global is refused: what is left can build only str, bytes, numbers and containers."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name}: only plain text may be unpickled")


def _lcb_cases(value: Any) -> Any:
    """A test-case cell: a JSON list, or (LiveCodeBench's private tests) that JSON text pickled,
    zlib-compressed and base64-encoded."""
    if isinstance(value, list):
        return value
    text = str(value).strip()
    if text.startswith("["):
        return json.loads(text)
    inflater = zlib.decompressobj()
    raw = inflater.decompress(base64.b64decode(text, validate=True), MAX_DECODED_TESTS_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"inflates past {MAX_DECODED_TESTS_BYTES >> 20} MiB")
    data = _PlainDataUnpickler(io.BytesIO(raw)).load()
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if not isinstance(data, str):
        raise ValueError(f"the pickle holds a {type(data).__name__}, not JSON text")
    return json.loads(data)


def _lcb_tests(value: Any, column: str, fn_name: str, faults: _Faults) -> list[pb.TestCase]:
    if value is None or value == "":
        return []
    try:
        cases = _lcb_cases(value)
    except Exception as exc:  # a malformed or hostile cell raises many kinds of error; each is a bad row
        faults.add(column, f"cannot decode the tests: {type(exc).__name__}: {exc}")
        return []
    if not isinstance(cases, list):
        faults.add(column, f"a JSON {type(cases).__name__}; use a list of {{input, output, testtype}}")
        return []
    tests = []
    for index, case in enumerate(cases):
        try:
            tests.append(_lcb_test(case, fn_name))
        except ValueError as exc:
            faults.add(column, f"test {index}: {exc}")
            return []
    return tests


def _lcb_test(case: Any, fn_name: str) -> pb.TestCase:
    """One LiveCodeBench case as the sandbox runs it (services/sandbox/testcases.py)."""
    if not isinstance(case, dict) or not isinstance(case.get("input"), str) or not isinstance(case.get("output"), str):
        raise ValueError("use an object with text input and output")
    kind = case.get("testtype", "stdin")
    if kind == "stdin":
        return pb.TestCase(input=case["input"], expected_output=case["output"])
    if kind != "functional":
        raise ValueError(f"testtype {kind!r} unknown; use stdin or functional")
    if not fn_name:
        raise ValueError("a functional test, but the metadata column names no func_name")
    try:  # LiveCodeBench's convention: one JSON value per input line, the positional arguments
        args = [json.loads(line) for line in case["input"].split("\n") if line.strip()]
        json.loads(case["output"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"input lines and output of a functional test must be JSON ({exc.msg})") from exc
    return pb.TestCase(fn_name=fn_name, args_json=json.dumps(args), expected_json=case["output"])


def _lcb_fn_name(value: Any, column: str, faults: _Faults) -> str:
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            faults.add(column, f"not JSON ({exc.msg}); LiveCodeBench's metadata is a JSON object")
            return ""
    return str(value.get("func_name") or "") if isinstance(value, dict) else ""


def _livecodebench_plan(columns: _Columns, name: str, shuffle_seed: int) -> _Plan:
    content_col, id_col = columns.get("question_content"), columns.get("question_id")
    starter_col = columns.get("starter_code")
    test_cols = [c for c in (columns.get("public_test_cases"), columns.get("private_test_cases")) if c]
    meta_col = columns.get("metadata")

    def to_problem(row: dict[str, Any], faults: _Faults) -> pb.Problem:
        fn_name = _lcb_fn_name(row.get(meta_col), meta_col, faults) if meta_col else ""
        tests = [test for column in test_cols for test in _lcb_tests(row.get(column), column, fn_name, faults)]
        question, starter = _cell(row, content_col).strip(), _cell(row, starter_col).strip()
        if question and starter:  # a function task is unanswerable without its signature
            question += f"\n\nUse this starter code:\n```python\n{starter}\n```"
        return pb.Problem(id=_row_id(row, id_col, faults), question=question, task_type=pb.TASK_TYPE_CODE, tests=tests)

    used = frozenset(c for c in (content_col, id_col, starter_col, *test_cols) if c)
    fields = {"question": content_col or "question_content", "tests": test_cols[0], "id": id_col or "question_id"}
    return _Plan(to_problem, used, fields, {"source": name})


_PLANS: dict[str, Callable[[_Columns, str, int], _Plan]] = {
    "start": _start_plan,
    "math500": _math_plan,
    "aime": _math_plan,
    "gpqa": _gpqa_plan,
    "livecodebench": _livecodebench_plan,
}


# -- checks, the same for every source ---------------------------------------------------------


def _mapped(rows: _Rows, plan: _Plan, metadata_columns: Sequence[str]) -> Iterator[tuple[_Faults, pb.Problem | None]]:
    """Each row as a problem with its metadata (lazily, so a `limit` stops the decoding too)."""
    for number, row in rows.rows:
        faults = _Faults(number)
        if isinstance(row, BadRow):
            faults.found.append(row)
            yield faults, None
            continue
        problem = plan.to_problem(row, faults)
        for column in metadata_columns:
            value = _text(row[column]) if column in row else plan.added.get(column)
            if value is not None:
                problem.metadata[column] = value
        yield faults, problem


def _collect(
    candidates: Iterator[tuple[_Faults, pb.Problem | None]],
    field_columns: Mapping[str, str],
    skip_bad_rows: bool,
    limit: int,
) -> tuple[list[pb.Problem], list[BadRow]]:
    """Check each row in order; keep the good problems (the first `limit`), list the bad rows."""
    problems: list[pb.Problem] = []
    bad: list[BadRow] = []
    first_row_of: dict[str, int] = {}
    for faults, problem in candidates:
        if problem is not None:
            _normalise(problem)
            _check(problem, field_columns, faults)
            first = first_row_of.setdefault(problem.id, faults.row)
            if first != faults.row:
                faults.add(
                    field_columns.get("id", "id"), f"{problem.id!r} repeats the id of row {first}; ids are unique"
                )
        if faults.found:
            bad.extend(faults.found)
            continue
        problems.append(problem)
        if limit and len(problems) >= limit:
            break
    if bad and not skip_bad_rows:
        raise ProblemSetError(bad)
    if not problems:
        raise ProblemSetError(bad, "no good rows")
    return problems, bad


def _normalise(problem: pb.Problem) -> None:
    """Whitespace off the reference; a multiple-choice letter in capitals (as the grader reads it)."""
    problem.reference = problem.reference.strip()
    if problem.task_type == pb.TASK_TYPE_MULTIPLE_CHOICE and len(problem.reference) == 1:
        problem.reference = problem.reference.upper()


def _check(problem: pb.Problem, field_columns: Mapping[str, str], faults: _Faults) -> None:
    """The checks every problem passes before a job starts, whatever file or request it came from."""

    def column(name: str) -> str:
        return field_columns.get(name, name)

    if not problem.question.strip():
        faults.add(column("question"), "empty; every problem needs the question to solve")
    if problem.task_type not in TASK_TYPES.values():
        faults.add(column("task_type"), f"{problem.task_type} unknown; use one of {', '.join(TASK_TYPES)}")
    if problem.task_type == pb.TASK_TYPE_MULTIPLE_CHOICE:
        letters = CHOICE_LETTERS[: len(problem.choices)]
        if len(problem.choices) > len(CHOICE_LETTERS):
            faults.add(column("choices"), f"{len(problem.choices)} choices; the grader reads at most 10 (A-J)")
        elif any(not choice.strip() for choice in problem.choices):
            faults.add(column("choices"), "an empty choice; every option needs its text")
        if not problem.reference:
            faults.add(column("reference"), "empty; a multiple-choice problem needs the letter of its correct choice")
        elif problem.choices and problem.reference not in tuple(letters):
            faults.add(
                column("reference"),
                f"{problem.reference!r} is not a letter of the {len(problem.choices)} choices; "
                f"use one of {', '.join(letters)}",
            )
    if problem.task_type == pb.TASK_TYPE_CODE:
        if not problem.tests:
            faults.add(column("tests"), "no tests; a code problem needs at least one (stdin/stdout or a function call)")
        for index, test in enumerate(problem.tests):
            fault = _test_fault(test)
            if fault:
                faults.add(column("tests"), f"tests[{index}]: {fault}")
