"""A checker for IoT SiteWise formula expressions, run on every generated transform and metric.

SiteWise accepts at most 10 variables and 10 functions per expression, expressions of at most
1,024 characters, and a chain of at most 10 cascading formula properties behind any metric. It
rejects these only at deploy time, so synth checks them first and names the property at fault.
Operators (``+ - * / % **`` and comparisons written as operators) are not functions; every
call such as ``sum(x)`` or ``if(...)`` counts, each time it appears.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

MAX_VARIABLES = 10
MAX_FUNCTIONS = 10
MAX_EXPRESSION_LENGTH = 1024
MAX_CASCADE_DEPTH = 10

VARIABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")
CONSTANTS = frozenset({"none", "pi", "e", "true", "false"})
FUNCTIONS = frozenset(
    {
        # common and comparison
        "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "cosh", "exp", "floor", "log",
        "log10", "log2", "power", "round", "signum", "sin", "sinh", "sqrt", "tan", "tanh",
        "eq", "ne", "gt", "gte", "lt", "lte", "isnan", "and", "or", "not", "if",
        # aggregation, temporal and string
        "avg", "count", "max", "min", "stdev", "sum", "first", "last", "earliest", "latest",
        "statetime", "timestamp", "tw_avg", "tw_sum", "len", "find", "contains", "upper",
        "lower", "concat", "jp",
    }
)  # fmt: skip

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>\*\*|[-+*/%(),\[\]:])
    )""",
    re.VERBOSE,
)


K = TypeVar("K")


class ExpressionError(ValueError):
    """An expression SiteWise would reject; the message names the property and the reason."""


@dataclass(frozen=True)
class ExpressionStats:
    variables: frozenset[str]
    function_calls: int
    functions: frozenset[str]


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        match = _TOKEN.match(expression, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"unexpected character at {position}: {expression[position:]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over the SiteWise grammar: operands, unary minus, binary operators,
    calls with comma-separated arguments, and the index/slice operator on strings."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.at = tokens, 0
        self.names: set[str] = set()
        self.calls: list[str] = []

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _take(self, value: str) -> None:
        token = self._peek()
        if token is None or token[1] != value:
            found = "the end" if token is None else repr(token[1])
            raise ExpressionError(f"expected {value!r} but found {found}")
        self.at += 1

    def parse(self) -> None:
        if not self.tokens:
            raise ExpressionError("the expression is empty")
        self._expression()
        if self._peek() is not None:
            raise ExpressionError(f"unexpected {self._peek()[1]!r} after a complete expression")

    def _expression(self) -> None:
        self._operand()
        while (token := self._peek()) is not None and token[1] in {"+", "-", "*", "/", "%", "**"}:
            self.at += 1
            self._operand()

    def _operand(self) -> None:
        token = self._peek()
        if token is None:
            raise ExpressionError("the expression ends where an operand is expected")
        kind, value = token
        self.at += 1
        if value == "-":
            self._operand()
        elif value == "(":
            self._expression()
            self._take(")")
        elif kind == "name":
            following = self._peek()
            if following is not None and following[1] == "(":
                self._call(value)
            else:
                self.names.add(value)
        elif kind not in {"number", "string"}:
            raise ExpressionError(f"unexpected {value!r} where an operand is expected")
        while (following := self._peek()) is not None and following[1] == "[":
            self._index()

    def _call(self, function: str) -> None:
        if function not in FUNCTIONS:
            raise ExpressionError(f"{function!r} is not a SiteWise function")
        self.calls.append(function)
        self._take("(")
        if (token := self._peek()) is not None and token[1] == ")":
            self.at += 1
            return
        self._expression()
        while (token := self._peek()) is not None and token[1] == ",":
            self.at += 1
            self._expression()
        self._take(")")

    def _index(self) -> None:
        self._take("[")
        while (token := self._peek()) is not None and token[1] != "]":
            if token[1] == ":":
                self.at += 1
            else:
                self._expression()
        self._take("]")


def analyse(expression: str) -> ExpressionStats:
    """Parse ``expression`` and count what SiteWise limits; raise ``ExpressionError`` if invalid."""
    parser = _Parser(_tokens(expression))
    parser.parse()
    return ExpressionStats(
        variables=frozenset(parser.names - CONSTANTS),
        function_calls=len(parser.calls),
        functions=frozenset(parser.calls),
    )


def check_expression(where: str, expression: str, declared: Iterable[str]) -> ExpressionStats:
    """Check one formula against SiteWise's limits and its declared variables."""
    declared = list(declared)
    try:
        if len(expression) > MAX_EXPRESSION_LENGTH:
            raise ExpressionError(
                f"{len(expression)} characters; SiteWise allows {MAX_EXPRESSION_LENGTH}"
            )
        for name in declared:
            if not VARIABLE_NAME.fullmatch(name):
                raise ExpressionError(f"variable name {name!r} must match [a-z][a-z0-9_]*")
        if len(set(declared)) != len(declared):
            raise ExpressionError("a variable is declared twice")
        stats = analyse(expression)
        undeclared = sorted(stats.variables - set(declared))
        unused = sorted(set(declared) - stats.variables)
        if undeclared:
            raise ExpressionError(f"uses undeclared variables {undeclared}")
        if unused:
            raise ExpressionError(f"declares unused variables {unused}")
        if len(stats.variables) > MAX_VARIABLES:
            raise ExpressionError(
                f"{len(stats.variables)} variables; SiteWise allows {MAX_VARIABLES}"
            )
        if stats.function_calls > MAX_FUNCTIONS:
            raise ExpressionError(
                f"{stats.function_calls} function calls; SiteWise allows {MAX_FUNCTIONS}"
            )
    except ExpressionError as error:
        shown = expression if len(expression) <= 100 else expression[:97] + "..."
        raise ExpressionError(f"{where}: {shown!r}: {error}") from None
    return stats


def cascade_depths(inputs: Mapping[K, Iterable[K]]) -> dict[K, int]:
    """For every formula property, the length of the longest chain of formulas ending at it.

    ``inputs`` maps each formula property to the formula properties it reads (measurements and
    attributes are leaves and left out). A cycle is an error, not an infinite loop.
    """
    depths: dict[K, int] = {}

    def depth(node: K, path: tuple[K, ...]) -> int:
        if node in path:
            raise ExpressionError("formula cycle: " + " -> ".join(map(str, (*path, node))))
        if node not in depths:
            depths[node] = 1 + max(
                (depth(child, (*path, node)) for child in inputs.get(node, ())), default=0
            )
        return depths[node]

    for node in inputs:
        depth(node, ())
    return depths
