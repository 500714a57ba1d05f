# The two commands of the README. Each does its own set-up on a fresh machine
# (Python 3.11 and Node 20 or later; no virtualenv, AWS credentials or Docker needed).

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
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

# Offline and quiet: no Node end-of-life banner from jsii, no CLI telemetry or version check.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_DISABLE_VERSION_CHECK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: synth test benchmark clean mosquitto schemas

synth: $(RUNTIME_STAMP) $(NODE_STAMP) $(LAYER_STAMP) $(VISION_LAYER_STAMP)
	npx --no-install cdk synth --quiet
	@echo "Templates written to cdk.out/:" && ls cdk.out/*.template.json

test: $(DEV_STAMP) $(NODE_STAMP) $(LAYER_STAMP) $(VISION_LAYER_STAMP) mosquitto
	$(VENV_PYTHON) -m pytest

# The JSON schemas of the ERP/PLM documents and MES events; a test checks they are current.
schemas: $(RUNTIME_STAMP)
	$(VENV_PYTHON) -m mes_domain.schemas export docs/schemas

benchmark: $(DEV_STAMP)
	$(VENV_PYTHON) benchmarks/synth_time.py
	$(VENV_PYTHON) benchmarks/ingest.py
	$(VENV_PYTHON) benchmarks/kpi.py
	$(VENV_PYTHON) benchmarks/vision.py
	$(VENV_PYTHON) benchmarks/erp_import.py
	$(VENV_PYTHON) benchmarks/quality_edge.py

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt lambdas/requirements.txt | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt requirements-vision.txt requirements-edge.txt $(RUNTIME_STAMP)
	$(VENV_PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

# --no-compile and no bin/ (shebangs name this machine's python): the asset hash is reproducible.
$(LAYER_STAMP): lambdas/requirements.txt | $(VENV_PYTHON)
	rm -rf $(LAYER_DIR)
	$(VENV_PYTHON) -m pip install --quiet --no-compile --only-binary=:all: \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.11 \
		--target $(LAYER_DIR)/python -r lambdas/requirements.txt
	rm -rf $(LAYER_DIR)/python/bin
	touch $@

$(VISION_LAYER_STAMP): requirements-vision.txt lambdas/requirements.txt | $(VENV_PYTHON)
	rm -rf $(VISION_LAYER_DIR)
	$(VENV_PYTHON) -m pip install --quiet --no-compile --only-binary=:all: \
		--platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
		--implementation cp --python-version 3.12 --target $(VISION_LAYER_DIR)/python \
		-r requirements-vision.txt -r lambdas/requirements.txt
	rm -rf $(VISION_LAYER_DIR)/python/bin
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

clean:
	rm -rf cdk.out .pytest_cache build
