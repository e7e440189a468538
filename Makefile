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

.PHONY: install run test lint test-rootless bench editor system-packages test-packages clean

install: system-packages $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

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

# Rebuilds static/editor/{app.js,theme.js} and static/vendor/htmx from the pinned lock file.
editor:
	cd static/editor/src && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) build *.egg-info
