# The two commands a new user needs: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin

.PHONY: demo bench bench-latency bench-plans bench-readiness bench-overhead bench-growth \
	test lint typecheck unit bootstrap sysdeps release clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

bootstrap: $(VENV)/.installed

# Debian packages the tests and the SSH demo need: a real OpenSSH server, flock, openssl,
# and chromium (headless) for the report.html tests.
sysdeps:
	@command -v /usr/sbin/sshd >/dev/null || { \
	  echo "installing openssh-server (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; }
	@command -v flock >/dev/null || { apt-get update -qq && apt-get install -y -qq util-linux >/dev/null; }
	@command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
	@command -v chromium >/dev/null || { echo "installing chromium (apt-get)"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@examples/kvfront/install.sh --deps-only  # nginx, redis-server, redis-tools, webdis (tests/daemons)

lint: bootstrap
	$(BIN)/ruff check gate bench tests tasks.py matrix.py examples scripts
	$(BIN)/ruff format --check gate bench tests tasks.py matrix.py examples scripts

typecheck: bootstrap
	$(BIN)/mypy

# Three workers (the end-to-end tests mostly wait on real daemons, not the CPU), one test
# file each at a time: files that share a box keep it to themselves. The slowest files
# start first (tests/conftest.py, tests/file_durations.json).
test: bootstrap sysdeps lint typecheck
	$(BIN)/pytest -q -n 3 --dist loadfile --no-loadscope-reorder --durations=15

unit: bootstrap
	$(BIN)/pytest -q tests/unit

# The sample stack, then the kvfront stack (real nginx, webdis, redis); both always run.
demo: bootstrap sysdeps
	@$(PY) scripts/demo.py; sample=$$?; \
	  $(PY) scripts/demo_kvfront.py; kvfront=$$?; \
	  echo "make demo: sample exit $$sample, kvfront exit $$kvfront"; \
	  [ $$sample -eq 0 ] && [ $$kvfront -eq 0 ]

# Figures, never assertions (docs/performance.md). `make bench` runs the five benches one
# after the other (about 20 minutes); each has its own target. Knobs: N= runs per method
# (latency), RESTARTS= (readiness), RUNS= (overhead), ROUNDS= (growth), GATE_ARGS= extra
# arguments for every gate run (overhead, growth). bench-latency installs pytest-testinfra
# and mitogen into the venv itself.
bench: bench-latency bench-plans bench-readiness bench-overhead bench-growth

bench-latency: bootstrap sysdeps
	$(PY) -m bench.command_latency $(if $(N),--n $(N))

bench-plans: bootstrap
	$(PY) -m bench.matrix_plans

bench-readiness: bootstrap sysdeps
	$(PY) -m bench.readiness_lag $(if $(RESTARTS),--n $(RESTARTS))

bench-overhead: bootstrap sysdeps
	$(PY) -m bench.gate_overhead $(if $(RUNS),--n $(RUNS)) \
	  $(if $(GATE_ARGS),--gate-args="$(GATE_ARGS)")

bench-growth: bootstrap sysdeps
	$(PY) -m bench.scenario_growth $(if $(ROUNDS),--n $(ROUNDS)) \
	  $(if $(GATE_ARGS),--gate-args="$(GATE_ARGS)")

# The release: the tests, then the gate against the release box (GATE_HOST, an inventory
# name, or a group: docs/fleets.md) with the destructive phases as a blocking step; only when the gate exits 0 are the
# sdist and wheel built (dist/) and the version tagged. RELEASE_TESTS=skip leaves the
# tests out; GATE_ARGS adds gate flags (e.g. --local on the box itself).
RELEASE_FLAGS := --lifecycle --fault-injection --safety-backup --strict
VERSION = $(shell $(PY) -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
release: bootstrap
	@[ "$(RELEASE_TESTS)" = skip ] || $(MAKE) test
	$(BIN)/invoke gate --host $${GATE_HOST:?set GATE_HOST to an inventory name} $(RELEASE_FLAGS) \
	  $(if $(MATRIX),--matrix $(MATRIX)) $(GATE_ARGS)
	$(BIN)/pip install --quiet build
	$(PY) -m build --sdist --wheel --outdir dist .
	git tag -a "v$(VERSION)" -m "gate $(VERSION): the gate passed on $(GATE_HOST)"
	@echo "released v$(VERSION): dist/ holds the sdist and the wheel"

clean:
	rm -rf $(VENV) results boxes dist
