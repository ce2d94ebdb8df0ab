# imageorigin: every developer task. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 3000
S3_PORT ?= 5005
IMAGES ?= samples
EVENT ?= events/api_resize.json
QUICK ?=

# One requirements file per purpose (requirements/*.txt); the runtime's own stay in functions/resize/requirements.txt.
# Each purpose has a stamp in .venv named by a checksum of every file it installs, so editing one reinstalls only
# the purposes that include it: `make test` never installs libvips, `make bench` adds it to the same .venv.
RUNTIME_REQUIREMENTS := functions/resize/requirements.txt
TEST_REQUIREMENTS := requirements/test.txt requirements/sam.txt $(RUNTIME_REQUIREMENTS)
BENCH_REQUIREMENTS := requirements/bench.txt $(TEST_REQUIREMENTS)
DEPLOY_REQUIREMENTS := requirements/deploy.txt requirements/sam.txt
stamp = $(VENV)/.installed-$(1)-$(shell cat $(2) | cksum | cut -d' ' -f1)
TEST_STAMP := $(call stamp,test,$(TEST_REQUIREMENTS))
BENCH_STAMP := $(call stamp,bench,$(BENCH_REQUIREMENTS))
DEPLOY_STAMP := $(call stamp,deploy,$(DEPLOY_REQUIREMENTS))
# checkov pins packages (boto3 among them) the test requirements pin otherwise: it gets its own venv inside .venv
LINT_VENV := $(VENV)/lint
LINT_STAMP := $(LINT_VENV)/.installed-lint-$(shell cat requirements/lint.txt | cksum | cut -d' ' -f1)
CHECKOV := $(LINT_VENV)/bin/checkov -f infra/template.yaml --framework cloudformation --compact --quiet --skip-download
# terser minifies the CloudFront Function (make edge; the tests and make lint compare the template's copy with its
# output): pinned with its integrity hashes in edge/package-lock.json, installed by npm ci into edge/node_modules
EDGE_STAMP := edge/node_modules/.installed-$(shell cat edge/package-lock.json | cksum | cut -d' ' -f1)

# pip's own lines as they come (unbuffered, also in CI logs), less those saying nothing happened: a line per package
# as it is collected and downloaded, then what was installed.
define install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@printf '\n==> Installing the $(1) requirements (requirements/$(1).txt) into $(VENV); the first time takes a while\n'
	@set -o pipefail; PYTHONUNBUFFERED=1 $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off \
		-r requirements/$(1).txt | { grep --line-buffered -v -e '^Requirement already satisfied' -e '^  Using cached' || true; }
	@rm -f $(VENV)/.installed-$(1)-* $(VENV)/.installed-[0-9]* && touch $@
	@printf '==> $(1) requirements installed\n\n'
endef

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(TEST_STAMP): $(TEST_REQUIREMENTS)
	$(call install,test)

$(BENCH_STAMP): $(BENCH_REQUIREMENTS) | $(TEST_STAMP)
	$(call install,bench)

$(DEPLOY_STAMP): $(DEPLOY_REQUIREMENTS)
	$(call install,deploy)

$(LINT_STAMP): requirements/lint.txt
	test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	@printf '\n==> Installing checkov (requirements/lint.txt) into $(LINT_VENV)\n'
	@set -o pipefail; PYTHONUNBUFFERED=1 $(LINT_VENV)/bin/python -m pip install --disable-pip-version-check \
		--progress-bar off -r requirements/lint.txt | { grep --line-buffered -v -e '^Requirement already satisfied' || true; }
	@rm -f $(LINT_VENV)/.installed-lint-* && touch $@

$(EDGE_STAMP): edge/package.json edge/package-lock.json
	@if command -v npm >/dev/null; then \
		printf '\n==> Installing terser (edge/package-lock.json) into edge/node_modules\n' && \
		npm ci --prefix edge --no-audit --no-fund && rm -f edge/node_modules/.installed-* && touch $@; \
	else printf '\n==> No npm: terser, which minifies the edge function, is not installed (make edge needs it; the tests that check the minified copy skip)\n\n'; fi

install: $(TEST_STAMP) $(BENCH_STAMP) $(DEPLOY_STAMP) $(EDGE_STAMP) ## Create .venv with what every target needs (each target installs its own part anyway)

# PYTHONDONTWRITEBYTECODE emptied: each of the workers compiles and rewrites every test module and the package again
# otherwise (3 s a worker); the .pyc files go to __pycache__/, which git ignores.
test: $(TEST_STAMP) $(LINT_STAMP) $(EDGE_STAMP) ## Run every test on every core: spec, transform, S3 on moto, handler on events/, template lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

serve: $(TEST_STAMP) ## The playground and service at http://127.0.0.1:$(PORT) on an embedded S3 (IMAGES=dir, S3_PORT=5005)
	$(BIN)/python -m devserver.serve --port $(PORT) --images $(IMAGES) --s3-port $(S3_PORT)

sam-env: $(TEST_STAMP) ## Write out/sam-env.json: sam local invoke --env-vars for make serve's S3 (S3_PORT, default 5005)
	$(BIN)/python -m devserver.sam_env --out out/sam-env.json

invoke: $(TEST_STAMP) ## Run the handler on EVENT=events/<name>.json (API or S3 event) locally; print the answer, image to out/
	$(BIN)/python -m devserver.invoke $(EVENT)

bench: $(BENCH_STAMP) ## Benchmark against libvips and the usual Pillow recipe (corpus photos when ../shared is there)
	$(BIN)/python -m bench.bench

worst: $(TEST_STAMP) ## Run the worst-case requests through the handler, each in a fresh process (QUICK=1: the few cheap ones)
	$(BIN)/python -m bench.worst $(if $(filter-out 0 no false,$(QUICK)),--quick)

edge: $(TEST_STAMP) $(EDGE_STAMP) ## Embed edge/viewer-request.js (minified) into infra/template.yaml after editing it
	$(BIN)/python edge/embed.py

ruff: $(TEST_STAMP) ## ruff check . (configured in pyproject.toml; CI runs it before the tests)
	$(BIN)/ruff check .

lint: $(TEST_STAMP) $(LINT_STAMP) $(EDGE_STAMP) ## ruff, the lock's pins, sam validate --lint, cfn-lint and checkov on the template, the edge function
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory -C functions/resize check-lock PYTHON="$(CURDIR)/$(BIN)/python"
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --lint --template infra/template.yaml --region us-east-1
	$(BIN)/cfn-lint infra/template.yaml
	$(CHECKOV)
	$(BIN)/python edge/embed.py --check

lock: $(DEPLOY_STAMP) ## Pin the Lambda artifact's packages with hashes (after editing functions/resize/requirements*.txt)
	$(MAKE) -C functions/resize lock UV="$(CURDIR)/$(BIN)/uv"

check-lock: ## Check functions/resize/requirements-lambda.lock pins what requirements*.txt pin (offline)
	$(MAKE) --no-print-directory -C functions/resize check-lock PYTHON=$(PYTHON)

build: $(DEPLOY_STAMP) ## Build the artifact without Docker (x86_64 wheels, from the lock) and report its size
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam build --template infra/template.yaml --build-dir .aws-sam/build
	@printf 'artifact: %s unpacked, ' "$$(du -sh .aws-sam/build/ResizeFunction | cut -f1)"
	@cd .aws-sam/build/ResizeFunction && $(CURDIR)/$(BIN)/python -c "import io, os, zipfile; \
	buf = io.BytesIO(); z = zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED); \
	[z.write(os.path.join(d, f)) for d, _, fs in os.walk('.') for f in fs]; z.close(); \
	print(f'{len(buf.getvalue()) / 1e6:.1f} MB zipped (Lambda limits: 250 MB unpacked, 50 MB zipped upload)')"

deploy: build ## Deploy with SAM, asking for the stack's settings the first time
	$(BIN)/sam deploy --guided --template-file .aws-sam/build/template.yaml

clean: ## Remove the virtual environment, build output and caches
	rm -rf $(VENV) .aws-sam out .pytest_cache .hypothesis .ruff_cache edge/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help install test serve sam-env invoke bench worst edge ruff lint lock check-lock build deploy clean
# Every install goes into the one .venv: never two pip runs at once, whatever -j says.
.NOTPARALLEL:
