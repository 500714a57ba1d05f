"""CDK code never imports runtime code: `make synth` installs only requirements.txt, and editing
a handler must not break synth. The constructs name their code by path and handler string; the
names both sides share (environment variables, request models, event fields) live in mes_domain
or in a function's ``contract`` module, which imports only the standard library, pydantic and
mes_domain."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from tests.conftest import DEMO_PLANT, PROJECT_ROOT, cli_context
from tests.stacks.plants import with_containers
from tests.unit.test_domain_purity import imported_roots

# Runtime-only packages: the Lambda SDK and Powertools, the edge's inference runtime, and the
# project's own runtime packages (the onboarding CLI mes_gateway and the MES services among
# them). Only a function's package and its contract may be imported.
FORBIDDEN_ROOTS = (
    "boto3",
    "botocore",
    "aws_lambda_powertools",
    "onnxruntime",
    "mes_vision",
    "greengrass_components",
    "mes_gateway",
    "plant_sim",
    "asyncua",
    "pymodbus",
    # The MES services and their stack: containers, built in CodeBuild, never imported by synth.
    "services",
    "fastapi",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "confluent_kafka",
)
CONTRACT_ALLOWED_ROOTS = {"pydantic", "mes_domain"}

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, re, runpy, sys

    FORBIDDEN = set({forbidden!r})
    # lambdas, a function's package (its __init__) and its contract module: nothing else.
    ALLOWED_LAMBDAS = re.compile(r"^lambdas(\\.[a-z_]+(\\.contract)?)?$")
    attempts = []

    class RuntimeImportBlocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            root = name.partition(".")[0]
            if root in FORBIDDEN or (root == "lambdas" and not ALLOWED_LAMBDAS.match(name)):
                attempts.append(name)  # recorded too, in case a caller swallows the error
                raise ImportError(f"CDK code imported the runtime module {{name}}")
            return None

    sys.meta_path.insert(0, RuntimeImportBlocker())
    sys.argv = ["app.py"]
    try:
        runpy.run_path("app.py", run_name="__main__")
    finally:
        if attempts:
            print("RUNTIME IMPORTS:", sorted(set(attempts)), file=sys.stderr)
            sys.exit(3)
    """
)


def every_capability_on(tmp_path):
    """The demo plant with each optional part turned on, written as a plant config file inside
    the repository (build/, ignored by git): the delivery pipeline deploys the config the stacks
    were made from out of the source tree, and refuses one outside it."""
    document = yaml.safe_load(DEMO_PLANT.read_text())
    document["kpi"]["sitewise_monitor"] = {
        "enabled": True,
        "contact_email": "plant-it@example.com",
        "administrators": ["arn:aws:iam::123456789012:role/PlantEngineer"],
        "viewers": ["arn:aws:iam::123456789012:user/shift-lead"],
    }
    with_containers(document)
    document["erp_plm"]["export_files"] = True
    assert document["erp_plm"]["erp"] and document["erp_plm"]["plm"]
    path = PROJECT_ROOT / "build" / f"every-capability-{tmp_path.name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("plant", ["demo", "every-capability"])
def test_the_whole_app_synthesizes_without_any_runtime_module(plant, tmp_path):
    config = DEMO_PLANT if plant == "demo" else every_capability_on(tmp_path)
    env = {
        **os.environ,
        # What the CDK CLI passes to app.py: cdk.json's context and the output directory.
        "CDK_CONTEXT_JSON": json.dumps(cli_context(plant=str(config))),
        "CDK_OUTDIR": str(tmp_path / "cdk.out"),
    }
    script = BLOCKER.format(forbidden=FORBIDDEN_ROOTS)
    try:
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        if config != DEMO_PLANT:
            config.unlink()
    assert result.returncode == 0, result.stderr[-4000:]
    assert list((tmp_path / "cdk.out").glob("*.template.json")), "app.py wrote no templates"


def python_files(*roots):
    for root in roots:
        path = PROJECT_ROOT / root
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_cdk_code_imports_no_runtime_module_but_contracts():
    offenders = {
        f"{path.relative_to(PROJECT_ROOT)}: {module}"
        for path in python_files("app.py", "stacks")
        for module in imported_modules(ast.parse(path.read_text()))
        if module.partition(".")[0] in FORBIDDEN_ROOTS
        or (module.startswith("lambdas") and not module.endswith(".contract"))
    }
    assert offenders == set()


def test_contracts_import_only_stdlib_pydantic_and_mes_domain():
    contracts = sorted((PROJECT_ROOT / "lambdas").glob("*/contract.py"))
    assert contracts, "no contract modules found"
    offenders = {
        f"{path.parent.name}: {root}"
        for path in contracts
        for root in imported_roots(ast.parse(path.read_text()))
        if root not in sys.stdlib_module_names and root not in CONTRACT_ALLOWED_ROOTS
    }
    assert offenders == set()


def test_lambda_package_inits_import_nothing():
    """Importing ``lambdas.<function>.contract`` runs both package ``__init__`` modules."""
    inits = [
        PROJECT_ROOT / "lambdas" / "__init__.py",
        *(PROJECT_ROOT / "lambdas").glob("*/__init__.py"),
    ]
    importing = [
        str(path.relative_to(PROJECT_ROOT))
        for path in inits
        if any(
            isinstance(node, ast.Import | ast.ImportFrom)
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert importing == []


def test_ci_runs_make_synth_on_its_own_set_up_before_make_test():
    """`make test` installs the dev tools (boto3 among them) that synth must not need."""
    commands = [
        line.strip().removeprefix("timed ")
        for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().removeprefix("timed ").startswith("make ")
    ]
    assert commands == ["make synth", "make test"]
