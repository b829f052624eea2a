# PANfm — `make demo` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
NODE_STAMP := node_modules/.installed-$(shell cat package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
# Product code: the front doors (top-level modules), the panfm package and the simulator (tests and bench excluded).
PRODUCT_FILES = $(filter-out gunicorn.conf.py,$(wildcard *.py)) panfm $(wildcard panos_sim)
DEMO_DIR ?= demo-data

.PHONY: test demo screenshots run prereqs venv node lint check clean bench bench-sim bench-storage bench-clock bench-clock-2000 bench-web bench-web-pg bench-metrics bench-cpu bench-cpu-baseline soak \
        reliability reliability-faults reliability-kill9 reliability-storm reliability-diskfull reliability-sigstop \
        reliability-scaleout bench-scaleout

prereqs:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "PANfm needs Python 3.11 or newer (python3)."; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  { echo "Missing Python venv support. Install it with:"; echo "  sudo apt-get install -y python3-venv"; exit 1; }
	@command -v npm >/dev/null || { echo "Missing Node.js/npm. Install it with:"; echo "  sudo apt-get install -y nodejs npm"; exit 1; }

prereqs-test: prereqs
	@for tool in chromium curl ps prometheus promtool; do command -v $$tool >/dev/null || { \
	  echo "Missing $$tool (browser tests, cli-test.sh, process checks, Prometheus checks). Install the test prerequisites with:"; \
	  echo "  sudo apt-get install -y chromium curl procps prometheus postgresql"; exit 1; }; done
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  echo "Missing the PostgreSQL server (initdb, pg_ctl: the PostgreSQL tests start their own). Install the test prerequisites with:"; \
	  echo "  sudo apt-get install -y chromium curl procps prometheus postgresql"; exit 1; }

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

venv: prereqs $(STAMP)

$(NODE_STAMP): package.json
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
	@mkdir -p node_modules; rm -f node_modules/.installed-*; touch $@

node: prereqs venv $(NODE_STAMP)
	@$(PY) scripts/build_static.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy $(PRODUCT_FILES)
	$(VENV)/bin/bandit -q -c pyproject.toml -r $(PRODUCT_FILES)

test: prereqs-test venv node lint
	$(PY) -m pytest -n 2 --dist loadgroup

demo: venv node
	$(PY) -m panfm.ops.demo --data-dir $(DEMO_DIR)

# docs/img/*.png, linked from the README's opening: a fresh demo in Chromium (light, dark, phone).
screenshots: venv node
	$(PY) scripts/screenshots.py --out docs/img

run: venv node
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PANFM_DATA_DIR=$${PANFM_DATA_DIR:-data} $(VENV)/bin/honcho start -f Procfile

# ---- figures (docs/benchmarks.md) and long reliability runs (docs/reliability.md) ----------
# Not part of `make test`: each loads both cores for minutes. Run them one at a time.
BENCH_DB := bench/out/webdata/throughput_history.db
REL_OUT := test-artifacts/reliability

bench: bench-sim bench-storage bench-clock bench-web bench-metrics bench-cpu

bench-sim: venv
	$(PY) bench/sim_latency.py --devices 1000 --duration 120 --period 30

$(BENCH_DB): | venv
	$(PY) bench/gen_history_db.py --devices 100 --days 90 --out $(BENCH_DB)

bench-storage: venv $(BENCH_DB)
	$(PY) bench/bench_queries.py --db $(BENCH_DB) --runs 100 --cycles 20
	$(PY) bench/storage_real.py --devices 20 --interval 10 --minutes 12

bench-clock: venv
	$(PY) bench/clock_scale.py --devices 1000 --faults "blackhole:2%,slow:5%" --interval 30 --minutes 10

bench-clock-2000: venv
	$(PY) bench/clock_scale.py --devices 2000 --faults "blackhole:2%,slow:5%" --interval 30 --minutes 10 --max-rss 400

bench-web: venv $(BENCH_DB)
	$(PY) bench/bench_web.py --data $(dir $(BENCH_DB)) --seconds 30 --clients 20 --pace 5

bench-web-pg: venv
	$(PY) bench/bench_pg_web.py --devices 500 --days 30 --raw-days 1 --seconds 30 --clients 20 --pace 5

bench-cpu: venv
	$(PY) bench/bench_cpu.py --devices 100 --interval 10 --seconds 120

# The same on the code issue 17 was filed against (d1a7489), on this machine: its CPU targets' baseline.
bench-cpu-baseline: venv
	bench/bench_cpu_at.sh d1a7489 --devices 100 --interval 10 --seconds 120

# Clock memory over a long run (issue 17): RSS must stay flat after warm-up, < 5 MB per hour.
soak: venv
	$(PY) bench/clock_scale.py --devices 1000 --faults "blackhole:2%,slow:5%" --interval 30 --minutes 120 \
	  --warmup-minutes 10 --max-growth 5 --max-rss 400

bench-metrics: venv
	$(PY) bench/bench_metrics.py --devices 1000 --interfaces 16 --scrapes 50 --out bench/out/metrics.json

# S8 of the scale-out brief: 3 clocks on the run's own PostgreSQL, one kill -9-ed at minute 5.
bench-scaleout: venv
	$(PY) -m reliability.scaleout --bench --devices 1000 --interval 30 --minutes 10 --out bench/out/scaleout.json

# Each scenario's make target (reliability-NAME) and the reliability/ module that runs it.
REL_faults = fault_fleet
REL_kill9 = kill9
REL_storm = reader_storm
REL_diskfull = diskfull
REL_sigstop = sigstop
REL_TARGETS = $(addprefix reliability-,faults kill9 storm diskfull sigstop)

reliability: $(REL_TARGETS)

$(REL_TARGETS): reliability-%: venv
	@mkdir -p $(REL_OUT)
	$(PY) -m reliability.$(REL_$*) --out $(REL_OUT)/$(REL_$*).json

# S1-S7 of the scale-out brief (several clocks on one PostgreSQL), the long form.
reliability-scaleout: venv
	@mkdir -p $(REL_OUT)
	$(PY) -m reliability.scaleout --devices 300 --interval 5 --kills 20 --out $(REL_OUT)/scaleout.json

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
