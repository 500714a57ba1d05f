# The two commands of the README. Each does its own set-up on a fresh machine
# (Python 3.11 and Node 20 or later; no virtualenv, AWS credentials or Docker needed).

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
# Every requirements*.txt is a hash lock written by `make lock` from the .in file beside it:
# all transitive dependencies pinned, and pip refuses any download whose hash is not listed.
PIP_INSTALL := $(VENV_PYTHON) -m pip install --quiet --require-hashes
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
NODE_STAMP := node_modules/.installed
# Third-party Lambda runtime, as manylinux wheels for the functions' Python and architecture.
LAYER_DIR := build/lambda-layer
LAYER_STAMP := build/.lambda-layer-installed
# The model-training function runs on Python 3.12 (Amazon Linux 2023): onnxruntime's wheels
# need glibc 2.28, newer than the 3.11 runtime's Amazon Linux 2 has.
VISION_LAYER_DIR := build/vision-layer
VISION_LAYER_STAMP := build/.vision-layer-installed
# Real photographs for mes_vision's benchmark and tests: the image files of a few wheels,
# unpacked outside the venv (requirements-photos.in says which and their licences).
PHOTOS_DIR := build/photographs
PHOTOS_STAMP := build/.photographs-installed
# checkov, the policy scan of the Kubernetes manifests (tests/k8s), in a venv of its own: it pins
# boto3 and botocore older than the dev lock's (requirements-policy.in).
POLICY_VENV := build/policy-venv
POLICY_PIP_INSTALL := $(POLICY_VENV)/bin/python -m pip install --quiet --require-hashes
POLICY_STAMP := build/.policy-venv-installed

# Offline and quiet: no Node end-of-life banner from jsii, no CLI telemetry or version check.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_DISABLE_VERSION_CHECK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: synth test benchmark clean mosquitto postgresql jq schemas lock components

# `make synth PLANT=config/demo-plant-containers.yaml`: another plant config (cdk.json's default).
synth: $(RUNTIME_STAMP) $(NODE_STAMP) $(LAYER_STAMP) $(VISION_LAYER_STAMP)
	npx --no-install cdk synth --quiet $(if $(PLANT),--context plant=$(PLANT))
	@echo "Templates written to cdk.out/:" && ls cdk.out/*.template.json

# Two workers, a test file each at a time (its module fixtures stay in one process): 8 minutes
# on 2 cores instead of 13, as much of the suite waits on subprocesses, brokers and servers.
test: $(DEV_STAMP) $(NODE_STAMP) $(LAYER_STAMP) $(VISION_LAYER_STAMP) $(PHOTOS_STAMP) \
		$(POLICY_STAMP) mosquitto postgresql jq
	$(VENV_PYTHON) -m pytest -n 2 --dist loadfile

# Before `cdk deploy`: the EdgeFleet stack publishes DataCollector and QualityInspection only
# from these artifacts (greengrass-build/), and the line deployments name those versions.
# Each build downloads its wheels from PyPI, so neither synth nor test depends on this.
components: | $(VENV_PYTHON)
	$(VENV_PYTHON) greengrass_components/data_collector/build.py --gdk
	$(VENV_PYTHON) greengrass_components/quality_inspection/build.py --gdk

# The JSON schemas of the ERP/PLM documents and MES events; a test checks they are current.
schemas: $(RUNTIME_STAMP)
	$(VENV_PYTHON) -m mes_domain.schemas export docs/schemas

# `make benchmark QUICK=--quick`: every benchmark's smoke run, in seconds each.
benchmark: $(DEV_STAMP) $(PHOTOS_STAMP) mosquitto postgresql
	$(VENV_PYTHON) benchmarks/synth_time.py $(QUICK)
	$(VENV_PYTHON) benchmarks/ingest.py $(QUICK)
	$(VENV_PYTHON) benchmarks/kpi.py $(QUICK)
	$(VENV_PYTHON) benchmarks/vision.py $(QUICK)
	$(VENV_PYTHON) benchmarks/erp_import.py $(QUICK)
	$(VENV_PYTHON) benchmarks/quality_edge.py $(QUICK)
	$(VENV_PYTHON) benchmarks/collector.py $(QUICK)
	$(VENV_PYTHON) benchmarks/mes_services.py $(QUICK)
	$(VENV_PYTHON) benchmarks/datalake.py $(QUICK)

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(VENV_PYTHON)
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

# --no-compile and no bin/ (shebangs name this machine's python): the asset hash is reproducible.
$(LAYER_STAMP): lambdas/requirements.txt | $(VENV_PYTHON)
	rm -rf $(LAYER_DIR)
	$(PIP_INSTALL) --no-compile --only-binary=:all: \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.11 \
		--target $(LAYER_DIR)/python -r lambdas/requirements.txt
	rm -rf $(LAYER_DIR)/python/bin
	touch $@

$(VISION_LAYER_STAMP): lambdas/requirements-vision.txt | $(VENV_PYTHON)
	rm -rf $(VISION_LAYER_DIR)
	$(PIP_INSTALL) --no-compile --only-binary=:all: \
		--platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
		--implementation cp --python-version 3.12 --target $(VISION_LAYER_DIR)/python \
		-r lambdas/requirements-vision.txt
	rm -rf $(VISION_LAYER_DIR)/python/bin
	touch $@

$(PHOTOS_STAMP): requirements-photos.txt | $(VENV_PYTHON)
	rm -rf $(PHOTOS_DIR)
	$(PIP_INSTALL) --no-deps --no-compile --only-binary=:all: \
		--platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
		--implementation cp --python-version 3.11 --target $(PHOTOS_DIR) -r requirements-photos.txt
	touch $@

# Re-resolve the locks from the .in files (direct dependencies, edited by hand) against PyPI,
# keeping every pin that still fits; `make lock UPGRADE=--upgrade` moves all to the newest.
# The dev lock is the superset and comes first; the others are constrained to its versions.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --generate-hashes --custom-compile-command \
	"make lock" $(UPGRADE)
lock: $(DEV_STAMP)
	$(UV_COMPILE) --universal --python-version 3.11 requirements-dev.in -o requirements-dev.txt
	$(UV_COMPILE) --universal --python-version 3.11 -c requirements-dev.txt \
		requirements.in -o requirements.txt
	$(UV_COMPILE) --universal --python-version 3.11 -c requirements-dev.txt \
		requirements-vision.in -o requirements-vision.txt
# The edge artifact: CPython 3.11 on Linux x86_64 (build.py's default gateway).
	$(UV_COMPILE) --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--only-binary :all: -c requirements-dev.txt requirements-edge.in -o requirements-edge.txt
	$(UV_COMPILE) --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--only-binary :all: -c requirements-dev.txt requirements-collector.in \
		-o requirements-collector.txt
# The MES services' container images: CPython 3.11 on Linux x86_64 (services/*/Dockerfile).
	$(UV_COMPILE) --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--only-binary :all: -c requirements-dev.txt requirements-services.in \
		-o requirements-services.txt
# The layers: the functions' runtimes (3.11 on Amazon Linux 2; 3.12 on Amazon Linux 2023).
	$(UV_COMPILE) --python-version 3.11 --python-platform x86_64-manylinux_2_17 \
		--only-binary :all: -c requirements-dev.txt lambdas/requirements.in \
		-o lambdas/requirements.txt
	$(UV_COMPILE) --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
		--only-binary :all: -c requirements-dev.txt lambdas/requirements-vision.in \
		-o lambdas/requirements-vision.txt
	$(UV_COMPILE) --no-deps --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--only-binary :all: requirements-photos.in -o requirements-photos.txt
# checkov's own venv: not constrained to the dev lock, whose boto3 it cannot use.
	$(UV_COMPILE) --universal --python-version 3.11 requirements-policy.in \
		-o requirements-policy.txt

$(POLICY_STAMP): requirements-policy.txt
	rm -rf $(POLICY_VENV)
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_PIP_INSTALL) -r requirements-policy.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The edge tests and benchmark start their own broker on a free loopback port; nothing
# listens on 1883 for them, so Debian's mosquitto service (where systemd runs) is no clash.
mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || \
		((apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends mosquitto) >/dev/null 2>&1 || \
			(echo "error: apt-get install mosquitto failed" >&2; exit 1))

# The services' tests initdb their own cluster in a temp directory and start it on a free
# loopback port (tests/postgres.py finds initdb as this check does: pg_config, else Debian's
# /usr/lib/postgresql/*/bin). The package's postinst also creates a `main` cluster on the next
# free port (5432 up) and starts it only where init scripts may run (not behind Docker's
# policy-rc.d); without systemd that is the SysV script, so the install succeeds either way.
postgresql:
	@test -x "$$(pg_config --bindir 2>/dev/null)/initdb" || \
		ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		((apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends postgresql) >/dev/null 2>&1 || \
			(echo "error: apt-get install postgresql failed" >&2; exit 1))

# The data lake's tests run the Firehose partition queries through jq 1.6, Firehose's version
# (Debian bookworm's package).
jq:
	@command -v jq >/dev/null || \
		((apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends jq) >/dev/null 2>&1 || \
			(echo "error: apt-get install jq failed" >&2; exit 1))

clean:
	rm -rf cdk.out .pytest_cache build
