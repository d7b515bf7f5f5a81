"""The methods section: docs/fidelity.md parsed into the report, and the table covering every seed method."""

import re
from pathlib import Path

import pytest

from salbench.report.fidelity import COLUMNS, read_fidelity, segments, table_rows

ROOT = Path(__file__).resolve().parents[2]
#: seed methods (registered names) and the words that name the seed steps without a method of their own
SEED_METHODS = ("rap", "rsp", "mdm", "fem", "coda_contributions")
SEED_STEPS = ("grid localisation", "layer-wise")


def test_table_rows_keep_escaped_pipes_and_skip_the_separator(tmp_path):
    path = tmp_path / "f.md"
    path.write_text("intro\n\n| Method | Reference | Difference | Why | Effect on the numbers |\n|:--|--|--|--|--|\n"
                    "| `a` | r | x \\| y | w | e |\n\nafter | not | a | row |\n")
    section = read_fidelity(path)
    assert section.rows == [dict(zip(COLUMNS, ["`a`", "r", "x | y", "w", "e"]))]


def test_a_file_without_the_table_is_a_clear_error(tmp_path):
    path = tmp_path / "f.md"
    path.write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    with pytest.raises(ValueError, match=r"f\.md: no fidelity table with the columns method \| reference"):
        read_fidelity(path)


def test_a_row_with_missing_cells_names_the_file_and_row(tmp_path):
    path = tmp_path / "f.md"
    path.write_text("| method | reference | difference | why | effect on the numbers |\n|---|---|---|---|---|\n| a | b |\n")
    with pytest.raises(ValueError, match=r"f\.md: fidelity table row has 2 cells, expected 5"):
        read_fidelity(path)


def test_inline_code_becomes_segments_and_methods_not_run_are_greyed(tmp_path):
    path = tmp_path / "f.md"
    path.write_text("| method | reference | difference | why | effect on the numbers |\n|---|---|---|---|---|\n"
                    "| `gradcam` | see `x/y.py` | <b>bold</b> | w | e |\n| `rap` | r | d | w | e |\n| all | r | d | w | e |\n")
    rows = table_rows(read_fidelity(path), ["gradcam", "gradient"])
    assert [r["ran"] for r in rows] == [True, False, True]  # a row naming no method is never greyed
    assert rows[0]["cells"][1] == [{"text": "see ", "code": False}, {"text": "x/y.py", "code": True}]
    assert segments("<b>bold</b>") == [{"text": "<b>bold</b>", "code": False}]  # text: the template escapes it


def test_the_fidelity_table_lists_every_seed_method():
    section = read_fidelity(ROOT / "docs" / "fidelity.md")
    named = " ".join(row["method"] for row in section.rows).lower()
    for method in SEED_METHODS:
        assert f"`{method}`" in named, method
    for step in SEED_STEPS:
        assert step in named, step
    for row in section.rows:
        assert all(row[c].strip() for c in COLUMNS), row


@pytest.mark.parametrize("method", SEED_METHODS)
def test_each_seed_method_names_the_reference_repository_the_table_gives(method):
    import inspect
    import sys

    from salbench.methods import METHODS

    row = next(r for r in read_fidelity(ROOT / "docs" / "fidelity.md").rows if f"`{method}`" in r["method"])
    repository = next(token for token in re.findall(r"`([^`]+)`", row["reference"]) if "/" in token)
    cls = METHODS.get(method)
    docs = (inspect.getdoc(cls) or "") + (sys.modules[cls.__module__].__doc__ or "")
    assert repository in docs, (method, repository)
