"""The SiteWise expression checker: what it counts, and what it refuses."""

import pytest

from stacks.constructs.sitewise_expressions import (
    ExpressionError,
    analyse,
    cascade_depths,
    check_expression,
)


def test_counts_every_call_and_each_distinct_variable():
    stats = analyse("if(gt(run + down, 0), run / (run + down), none)")
    assert stats.variables == {"run", "down"}
    assert stats.function_calls == 2 and stats.functions == {"if", "gt"}


def test_a_repeated_call_counts_each_time_and_operators_are_not_functions():
    stats = analyse("statetime(a) + statetime(b) - -statetime(c) * 2 ** 3 % 4")
    assert stats.function_calls == 3 and stats.variables == {"a", "b", "c"}


def test_names_inside_string_literals_are_neither_variables_nor_calls():
    stats = analyse("eq(state, 'sum(x) + it''s')")
    assert stats.variables == {"state"} and stats.function_calls == 1


def test_constants_index_and_slice_are_understood():
    stats = analyse('if(eq(s[0:2], "AB"), pi * e, none)')
    assert stats.variables == {"s"} and stats.function_calls == 2


@pytest.mark.parametrize(
    "expression, reason",
    [
        ("", "empty"),
        ("sum(a", r"expected '\)'"),
        ("a +", "operand"),
        ("a b", "unexpected 'b'"),
        ("summ(a)", "'summ' is not a SiteWise function"),
        ("a ; b", "unexpected character"),
        ("(a))", r"unexpected '\)'"),
    ],
)
def test_malformed_expressions_are_refused_with_the_reason(expression, reason):
    with pytest.raises(ExpressionError, match=reason):
        check_expression("m/p", expression, ["a", "b"] if "b" in expression else ["a"])


def test_ten_variables_and_ten_functions_pass_eleven_fail():
    names = [f"v{i}" for i in range(11)]
    ten = " + ".join(f"sum({n})" for n in names[:10])
    assert check_expression("m/p", ten, names[:10]).function_calls == 10

    with pytest.raises(ExpressionError, match="11 variables; SiteWise allows 10"):
        check_expression("m/p", " + ".join(names), names)
    with pytest.raises(ExpressionError, match="11 function calls; SiteWise allows 10"):
        check_expression("m/p", "sum(v0) + " + ten, names[:10])


def test_declared_and_used_variables_must_agree():
    with pytest.raises(ExpressionError, match=r"undeclared variables \['b'\]"):
        check_expression("m/p", "a + b", ["a"])
    with pytest.raises(ExpressionError, match=r"unused variables \['b'\]"):
        check_expression("m/p", "a", ["a", "b"])
    with pytest.raises(ExpressionError, match="must match"):
        check_expression("m/p", "A", ["A"])


def test_the_error_names_where_and_the_expression():
    with pytest.raises(ExpressionError, match=r"^model 'M', property 'P': 'x \+': "):
        check_expression("model 'M', property 'P'", "x +", ["x"])


def test_overlong_expressions_are_refused():
    expression = " + ".join(["a"] * 600)
    with pytest.raises(ExpressionError, match=r"'a \+ a.*\.\.\.': 2397 characters; Site") as error:
        check_expression("m/p", expression, ["a"])
    assert len(str(error.value)) < 200


def test_cascade_depth_is_the_longest_chain_and_a_cycle_is_an_error():
    inputs = {"oee": ["a", "p"], "a": ["run"], "p": ["run", "ideal"], "run": [], "ideal": []}
    assert cascade_depths(inputs) == {"oee": 3, "a": 2, "p": 2, "run": 1, "ideal": 1}
    with pytest.raises(ExpressionError, match="formula cycle: x -> y -> x"):
        cascade_depths({"x": ["y"], "y": ["x"]})
