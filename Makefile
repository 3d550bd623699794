# ec2-sessions: `make demo` and `make test` work on a fresh clone; everything else builds on them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PYTHON ?= $(shell tools/find-python)
VENV := .venv
SAM_VENV := .venv-sam
SCAN_VENV := .venv-scan
LOCK_VENV := .venv-lock
PY := $(VENV)/bin/python
SAM := PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(CURDIR)/$(SAM_VENV)/bin/sam
HOST_ARCH := $(shell uname -m | sed -e 's/aarch64/arm64/')
FUNCTION ?= collector
EVENT ?=
ENV_VARS ?=
SECRET ?=
PORT ?= 8787

# Locked installs. Every environment installs from a lock: each package of its
# closure pinned, with the hashes of all its files, installed with
# `pip install --require-hashes`. People edit the inputs; `make lock` writes
# the locks (uv pip compile) and nothing else does:
#
#   input (edit this)                      lock (`make lock` writes it)            environment
#   layers/session_naming/requirements.in  layers/session_naming/requirements.txt  the layer (`sam build` reads
#                                                                                   requirements.txt: the lock)
#   requirements-dev.txt                   requirements-dev.lock                   .venv (its layer part pinned
#                                                                                   to the layer's lock)
#   requirements-sam.txt                   requirements-sam.lock                   .venv-sam
#   requirements-scan.txt                  requirements-scan.lock                  .venv-scan
#   requirements-uv.txt                    requirements-uv.lock                    .venv-lock (uv, for make lock)
#
# Adding a package: add it to the input, run `make lock`, commit input and lock
# together (`make test` fails when an input's pin is missing from its lock:
# tests/tools/test_locks.py).
# `make lock` keeps every locked version that still satisfies the inputs;
# `make lock UPGRADE=1` moves everything to the newest versions allowed.
UV_COMPILE := $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.13 \
  --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
# A virtual environment from its lock: $(call locked_venv,<folder>,<lock>[,<then run this in it>]).
# Everything it prints goes to standard error: `make invoke`'s standard output is the handler's answer alone,
# even when its first run installs the environments.
define locked_venv
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required" >&2; exit 1; }
	@echo "installing $(1) from $(2)" >&2
	@{ $(PYTHON) -m venv $(1) && $(1)/bin/pip install --quiet --require-hashes -r $(2); } >&2
	@$(3) >&2
	@touch $(1)/.installed
endef

.PHONY: help install packer lock demo local deliver test suite lint typecheck template-check build invoke sign \
  credentials deploy delete soak bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# The project itself too, editable and without dependencies (the lock holds them): .venv/bin/ec2-sessions.
# pyproject.toml is a prerequisite so that an existing checkout gets the command once it pulls it.
$(VENV)/.installed: requirements-dev.lock pyproject.toml
	$(call locked_venv,$(VENV),requirements-dev.lock,$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .)

$(SAM_VENV)/.installed: requirements-sam.lock
	$(call locked_venv,$(SAM_VENV),requirements-sam.lock)

$(SCAN_VENV)/.installed: requirements-scan.lock
	$(call locked_venv,$(SCAN_VENV),requirements-scan.lock)

$(LOCK_VENV)/.installed: requirements-uv.lock
	$(call locked_venv,$(LOCK_VENV),requirements-uv.lock)

# The image recipe's test runs `packer validate` (tests/tools/test_image.py). Debian's package is the
# packer a package registry serves here (1.6: the test gives it what it can read); any packer on PATH does.
packer: ## Install packer with apt-get (Debian's package) unless one is on PATH
	@command -v packer >/dev/null || { command -v apt-get >/dev/null || { echo "install packer: tests/tools/test_image.py runs it" >&2; exit 1; }; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q && $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q --no-install-recommends packer; }

# The IAM simulator the suite evaluates every recorded AWS call with (tests/support/iam_simulate.mjs), from
# package-lock.json with the machine's node; without node the IAM check is skipped and says so.
node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null; then npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "node and npm are not installed: the suite's IAM check of recorded calls will be skipped" >&2; fi

install: $(VENV)/.installed $(SAM_VENV)/.installed $(SCAN_VENV)/.installed node_modules/.installed packer ## Create the three virtual environments from their locks, the IAM simulator from package-lock.json, packer; .venv/bin/ec2-sessions

lock: $(LOCK_VENV)/.installed ## Refresh every lock from its input (UPGRADE=1: newest versions); see the table above
	@# The layer's lock first: the test environment's is constrained to it.
	$(UV_COMPILE) layers/session_naming/requirements.in -o layers/session_naming/requirements.txt
	$(UV_COMPILE) requirements-dev.txt -o requirements-dev.lock
	$(UV_COMPILE) requirements-sam.txt -o requirements-sam.lock
	$(UV_COMPILE) requirements-scan.txt -o requirements-scan.lock
	$(UV_COMPILE) requirements-uv.txt -o requirements-uv.lock

demo: $(VENV)/.installed ## Demo: launch sessions, age some, sweep; embedded moto server, no AWS account
	$(PY) tools/demo.py

local: $(VENV)/.installed ## Serve the launcher's Function URL on 127.0.0.1:PORT (8787) over embedded moto; Ctrl-C stops [SECRET=...] [GITHUB=1]
	@PORT=$(PORT) $(PY) tools/local_server.py $(if $(filter-out 0,$(GITHUB)),--github)

deliver: $(VENV)/.installed ## Send a sample event over HTTP to EC2_SESSIONS_URL (make local's), signed with EC2_SESSIONS_SECRET: EVENT=events/...
	@$(PY) tools/deliver.py $(EVENT)

test: ## Everything: the suite (IAM against AWS's IAM database too), lint, typecheck, template checks, build
	@# The suite starts once its environment is ready, while the others install and the template is checked.
	$(MAKE) --no-print-directory -j3 --output-sync=target suite lint typecheck template-check

# The suite runs in an order shuffled by the commit (its hash is the seed): the same order, and verdict, on
# every run of one commit; another order on the next, so a test that passes only after another is found.
ORDER_SEED ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo 0)
suite: $(VENV)/.installed $(SAM_VENV)/.installed node_modules/.installed packer ## pytest alone, in the commit's shuffled order (ORDER_SEED=...): unit, integration, template, reliability, tools
	$(PY) -m pytest --random-order-bucket=module --random-order-seed=$(ORDER_SEED)

lint: $(VENV)/.installed ## ruff check and format check; shellcheck (the dev lock's) on the client and the image's scripts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/shellcheck clients/ec2-session $(wildcard image/*.sh) image/warm-up

typecheck: $(VENV)/.installed ## mypy: the layer strictly, each function (own run: both have app.py) and the command normally
	$(VENV)/bin/mypy layers/session_naming/session_naming
	$(VENV)/bin/mypy functions/collector
	$(VENV)/bin/mypy functions/launcher
	MYPYPATH=functions/launcher $(VENV)/bin/mypy clients/ec2_sessions

template-check: $(VENV)/.installed $(SAM_VENV)/.installed $(SCAN_VENV)/.installed ## cfn-lint, sam validate --lint, checkov, sam build + smoke test
	$(SAM_VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint
	$(SCAN_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download
	$(PY) tools/check_build.py --sam "$(CURDIR)/$(SAM_VENV)/bin/sam" --python "$(PYTHON)"

build: $(VENV)/.installed $(SAM_VENV)/.installed ## sam build for deployment (arm64 unless ARCH=x86_64)
	$(SAM) build --parameter-overrides Architecture=$(or $(ARCH),arm64)

# make invoke's build: its output (and make's echo of it) on standard error, the answer alone on standard output.
HOST_BUILD ?= .aws-sam/host-build
$(HOST_BUILD)/template.yaml: template.yaml $(shell find functions layers -name '*.py' -o -name requirements.txt) | $(VENV)/.installed $(SAM_VENV)/.installed
	@echo "sam build for $(HOST_ARCH) into $(HOST_BUILD)" >&2
	@$(SAM) build --build-dir $(HOST_BUILD) --cache-dir .aws-sam/host-cache --cached \
	  --parameter-overrides Architecture=$(HOST_ARCH) >&2

# Exit status: 0 when the answer is a 2xx (or the collector's summary); non-zero otherwise. tools/invoke.py
# says which (1: a 4xx or 5xx answer, or the handler raised; 2: bad usage), but make turns any failure into 2.
invoke: $(HOST_BUILD)/template.yaml ## Run a handler in-process like `sam local invoke`: FUNCTION=collector|launcher EVENT=events/... [ENV_VARS=file]; stdout: its answer alone
	@$(PY) tools/invoke.py --function $(FUNCTION) --event $(or $(EVENT),events/collector-dry-run.json) \
	  $(if $(ENV_VARS),--env-vars $(ENV_VARS)) --build-dir $(HOST_BUILD)

sign: $(VENV)/.installed ## Sign a launcher event into .aws-sam/signed/ and print its path: EVENT=events/... with SECRET in the environment [SCHEME=auto|standard|github|both]
	@# The secret stays in the environment: on a command line (this recipe's, python's) every user could read it.
	@$(PY) tools/sign.py $(EVENT) --scheme $(or $(SCHEME),auto) $(if $(OUT),--out $(OUT))

# Deployed before: `sam deploy --guided` saved its answers, stack name included, under [default.deploy.parameters].
SAMCONFIG ?= samconfig.toml
DEPLOYED_BEFORE = awk '/^\[/ { section = $$0 } section == "[default.deploy.parameters]" && /^stack_name *=/ { found = 1 } \
  END { exit !found }' $(SAMCONFIG)

credentials: $(VENV)/.installed
	@$(PY) tools/check_credentials.py

# credentials first: without them, one line, before anything is built or asked.
deploy: credentials build ## sam deploy: guided the first time (answers saved to samconfig.toml), then as saved; GUIDED=1 asks again
	@if [ -z "$(GUIDED)" ] && $(DEPLOYED_BEFORE); then \
	  echo "sam deploy with the answers in $(SAMCONFIG) (GUIDED=1 to be asked again)"; \
	  $(SAM) deploy --config-file $(SAMCONFIG); \
	else \
	  $(SAM) deploy --guided --config-file $(SAMCONFIG); \
	fi

delete: $(SAM_VENV)/.installed ## Remove the stack
	$(SAM) delete

# make test runs every property test derandomized (one verdict per commit); soak explores with a fresh seed.
soak: $(VENV)/.installed ## Property tests with a fresh seed, ten times the examples, 30 tests each alone; SEED=N replays
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; echo "soak: seed $$seed"; \
	EC2_SESSIONS_SOAK=1 $(PY) -m pytest tests/unit tests/reliability -q --hypothesis-seed=$$seed \
	  --random-order-bucket=module --random-order-seed=$$seed \
	  && $(PY) tools/alone.py --seed $$seed --count 30 \
	  || { echo "soak failed with seed $$seed: replay it with make soak SEED=$$seed" >&2; exit 1; }

bench: $(VENV)/.installed ## Benchmarks against their baselines (not part of make test)
	$(PY) bench/run.py $(BENCH_ARGS)

clean: ## Remove virtual environments and build output
	rm -rf $(VENV) $(SAM_VENV) $(SCAN_VENV) $(LOCK_VENV) .aws-sam .pytest_cache .hypothesis .ruff_cache .mypy_cache \
	  ec2_sessions.egg-info node_modules
