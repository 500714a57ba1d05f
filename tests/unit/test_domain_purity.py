"""mes_domain is bundled into Lambda assets and Greengrass artifacts: no AWS SDK, no I/O."""

import ast
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

ALLOWED_THIRD_PARTY = {"pydantic", "numpy"}
FORBIDDEN_CALLS = {"open"}


def imported_roots(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def domain_modules():
    return sorted((PROJECT_ROOT / "mes_domain").rglob("*.py"))


def test_domain_imports_only_stdlib_pydantic_numpy_and_itself():
    offenders = {}
    for path in domain_modules():
        roots = set(imported_roots(ast.parse(path.read_text())))
        foreign = {
            r
            for r in roots
            if r not in sys.stdlib_module_names
            and r not in ALLOWED_THIRD_PARTY
            and r != "mes_domain"
        }
        if foreign:
            offenders[path.name] = foreign
    assert offenders == {}


def test_domain_does_no_file_io():
    calls = [
        f"{Path(path).name}:{node.lineno}"
        for path in domain_modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in FORBIDDEN_CALLS
    ]
    assert calls == []
