# Two commands do everything on a fresh Debian/Ubuntu machine with Python 3.11:
#   make run    install if needed, then serve on http://127.0.0.1:8000
#   make test   install if needed, then run every test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
# What the sandbox needs from the system; what the browser tests drive, and the
# remote workers' tests' Redis.
RUN_PACKAGES := bubblewrap libseccomp2 graphviz
TEST_PACKAGES := chromium redis-server

# Lock files (make lock): every Python package at an exact version, with hashes,
# resolved from pyproject.toml for Linux x86_64 and Python 3.11.
#   requirements/test.txt  the app and its tests, CPU builds: make install, CI
#   requirements/web.txt   the app alone, CPU builds: the web image
#   requirements/gpu.txt   the app with torch's and TensorFlow's CUDA builds: the worker image
# tests/test_lock.py fails when pyproject.toml and the locks disagree.
LOCK := requirements/test.txt
# torch's CPU build (torch==X+cpu in the CPU locks) is not on PyPI, whose Linux
# torch wheels are CUDA builds of several GB. It comes from the wheel folders pip
# is set up with (PIP_FIND_LINKS) or else from the PyTorch CPU index, which
# make install asks only when pip can't find it otherwise: on a machine that
# can't reach that index, asking costs minutes of retries.
TORCH_CPU_WHEELS := https://download.pytorch.org/whl/cpu/torch/
TORCH_CPU_LINKS ?= $(or $(PIP_FIND_LINKS),$(TORCH_CPU_WHEELS))
torch_cpu_source = $(BIN)/pip install --quiet --dry-run --no-index --no-deps --ignore-installed \
	"$$(grep -o '^torch==[^ ]*' $(LOCK))" >/dev/null 2>&1 || echo --find-links $(TORCH_CPU_WHEELS)
UV ?= $(BIN)/uv
UV_COMPILE = $(UV) pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' pyproject.toml

.PHONY: install run test lint test-rootless bench bench-steps editor system-packages test-packages clean lock

install: system-packages $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes $$($(torch_cpu_source)) -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# The GPU lock is resolved without the CPU wheels in sight: torch==2.13.0 would
# take 2.13.0+cpu from them. tensorflow-cpu and tensorflow[and-cuda] install the
# same module, so the GPU lock leaves tensorflow-cpu out.
lock: $(STAMP)
	$(UV_COMPILE) --extra test $(addprefix --find-links ,$(TORCH_CPU_LINKS)) -o requirements/test.txt
	$(UV_COMPILE) -c requirements/test.txt $(addprefix --find-links ,$(TORCH_CPU_LINKS)) \
	  -o requirements/web.txt
	$(UV_COMPILE) --extra gpu --no-emit-package tensorflow-cpu -o requirements/gpu.txt
	@for lock in requirements/test.txt requirements/web.txt; do grep -q '^torch==.*+cpu ' $$lock \
	  || { echo "make lock: no CPU build of torch in $(TORCH_CPU_LINKS)"; exit 1; }; done

# Installs missing Debian packages when root; otherwise says exactly what to run.
define ensure_packages
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages: $$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "sidebyside needs these system packages: $$missing"; \
	    echo "install them with:  sudo apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi
endef

system-packages:
	$(call ensure_packages,$(RUN_PACKAGES))

test-packages:
	$(call ensure_packages,$(TEST_PACKAGES))

run: install
	$(BIN)/sidebyside serve

test: install test-packages lint
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy app sandbox
	$(BIN)/hadolint Dockerfile

# The hostile tests again as an ordinary user: the rootless sandbox (user
# namespaces, no cgroups). Run as root on a throwaway machine such as CI: it
# adds a system user and lets it reach the Python install (o+x on its folders).
ROOTLESS_USER := sidebyside-ci
test-rootless: install
	@id -u $(ROOTLESS_USER) >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin $(ROOTLESS_USER)
	@for dir in $$($(BIN)/python -c 'import os, sys, pathlib; print(*{str(p) for top in (sys.base_prefix, os.getcwd()) for p in pathlib.Path(top).parents})'); do chmod o+x "$$dir"; done
	runuser -u $(ROOTLESS_USER) -- env HOME=/tmp PYTHONDONTWRITEBYTECODE=1 \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_sandbox_hostile.py

bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/port.py
	$(BIN)/python bench/steps.py

# Lesson steps through the pool against their own work in a warm process, then a
# class of 30 on the ONNX step (make bench runs the default): the heavy steps by
# default; ARGS=--all for every step of every bundled lesson, --no-burst without the class.
bench-steps: install
	$(BIN)/python bench/steps.py $(ARGS)

# Builds the web and worker images (Dockerfile) and starts them as compose.yaml
# would, without Docker: buildah on a Debian stand-in for python:3.11-slim-bookworm,
# then checks them from outside (.ci/image-check says how, and what differs). Root;
# downloads and builds for minutes, so not part of make test.
.PHONY: image-check
image-check:
	.ci/image-check

# Rebuilds static/editor/{app.js,theme.js} and static/vendor/htmx from the pinned lock file.
editor:
	cd static/editor/src && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) build *.egg-info
