# mlfactory — the two commands:  make run  (start the hub)  ·  make test  (run every test)
# Everything lands in the repo: .venv/ (Python + the proxy), labextension/node_modules,
# and the hub's state in $(MLFACTORY_DATA) (default .mlfactory/, git-ignored).

# Debian's Python when present: per-user OS accounts must be able to run the servers'
# interpreter, and a pyenv/conda Python under /root is out of their reach.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
MLFACTORY_DATA ?= $(CURDIR)/.mlfactory
CHP_VERSION := 5.3.0
LAB := labextension
LAB_OUT := $(LAB)/build/mlfactory
LAB_SOURCES := $(wildcard $(LAB)/src/*.ts $(LAB)/src/*/*.ts $(LAB)/style/* $(LAB)/schema/*.json) $(LAB)/package.json $(LAB)/tsconfig.json

export MLFACTORY_DATA
export PATH := $(BIN):$(PATH)

.PHONY: run test setup lint format labextension browser postgres engine oidc wheel-check clean

run: setup
	$(BIN)/mlfactory hub

test: setup browser postgres engine oidc
	$(MAKE) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed $(BIN)/configurable-http-proxy $(LAB_OUT)/package.json $(VENV)/.linked

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(BIN)/configurable-http-proxy:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/chp configurable-http-proxy@$(CHP_VERSION)
	ln -sf ../chp/node_modules/.bin/configurable-http-proxy $@

# A real OpenID Connect provider for the single sign-on tests (tests/oidc/provider.mjs).
OIDC_PROVIDER_VERSION := 9.13.3
oidc: $(VENV)/oidc/node_modules/oidc-provider/package.json
$(VENV)/oidc/node_modules/oidc-provider/package.json:
	npm install --silent --no-audit --no-fund --prefix $(VENV)/oidc oidc-provider@$(OIDC_PROVIDER_VERSION)

$(LAB)/node_modules/.installed: $(LAB)/package.json $(LAB)/package-lock.json
	cd $(LAB) && npm ci --no-audit --no-fund
	touch $@

labextension: $(LAB_OUT)/package.json
$(LAB_OUT)/package.json: $(LAB)/node_modules/.installed $(VENV)/.installed $(LAB_SOURCES)
	cd $(LAB) && npm run build
	touch $@

# An editable install does not copy data_files: link the labextension and copy the
# server-extension switch and JupyterLab's default settings (news off) into the venv, as
# `jupyter labextension develop` and a wheel install would.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d
$(VENV)/.linked: $(VENV)/.installed server_ext/jupyter_server_config.d/mlfactory.json server_ext/lab_settings/mlfactory.json
	mkdir -p $(VENV)/share/jupyter/labextensions $(VENV)/etc/jupyter/jupyter_server_config.d $(LAB_OVERRIDES)
	ln -sfn $(CURDIR)/$(LAB_OUT) $(VENV)/share/jupyter/labextensions/mlfactory
	mkdir -p $(VENV)/share/jupyter/mlfactory/labextensions
	ln -sfn $(CURDIR)/$(LAB)/build/nbdime-jupyterlab $(VENV)/share/jupyter/mlfactory/labextensions/nbdime-jupyterlab
	cp server_ext/jupyter_server_config.d/mlfactory.json $(VENV)/etc/jupyter/jupyter_server_config.d/
	cp server_ext/lab_settings/mlfactory.json $(LAB_OVERRIDES)/
	touch $@

# Playwright drives Debian's Chromium (it cannot download its own browser here).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The platform service's tests run on SQLite and on a throw-away PostgreSQL cluster.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The container backend's tests: Podman (its Docker Engine API service, with runc for hosts
# with hybrid cgroups), Debian's registry and mmdebstrap for the images' base layer.
ENGINE_PACKAGES := podman runc docker-registry mmdebstrap
engine:
	@for p in podman runc docker-registry mmdebstrap; do command -v $$p >/dev/null || missing=1; done; \
	test -z "$$missing" || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(ENGINE_PACKAGES) >/dev/null; }

# The workspace images (images/catalog.yaml), built with the podman CLI and pushed to the
# registry on loopback (the packaged config's containers.registry.url; started when it is not
# running). `make run` then starts Podman's API service and runs servers in containers.
IMAGES_REGISTRY ?= 127.0.0.1:5055
.PHONY: images
images: setup engine
	$(BIN)/mlfactory images build --registry http://$(IMAGES_REGISTRY)

lint: $(VENV)/.installed $(LAB)/node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd $(LAB) && npm run --silent lint:check

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	cd $(LAB) && npm run --silent lint

clean:
	rm -rf $(VENV) $(LAB)/node_modules $(LAB)/lib $(LAB)/build build dist *.egg-info
