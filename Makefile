# imageorigin: every developer task. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 3000
IMAGES ?= samples
EVENT ?= events/api_resize.json
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt functions/resize/requirements.txt | cksum | cut -d' ' -f1)

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements-dev.txt functions/resize/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## Create .venv with everything the other targets need (run by them when needed)

test: $(STAMP) ## Run every test: spec, transform, S3 on moto, handler on events/, template lint
	$(BIN)/python -m pytest

serve: $(STAMP) ## Run the service at http://127.0.0.1:$(PORT) on an embedded S3 (IMAGES=dir for your images)
	$(BIN)/python -m devserver.serve --port $(PORT) --images $(IMAGES)

invoke: $(STAMP) ## Run the handler on EVENT=events/<name>.json locally; print the answer, write the image to out/
	$(BIN)/python -m devserver.invoke $(EVENT)

bench: $(STAMP) ## Benchmark against libvips and the usual Pillow recipe (corpus photos when ../shared is there)
	$(BIN)/python -m bench.bench

edge: $(STAMP) ## Embed edge/viewer-request.js (minified) into infra/template.yaml after editing it
	$(BIN)/python edge/embed.py

lint: $(STAMP) ## sam validate --lint and cfn-lint on infra/template.yaml
	$(BIN)/sam validate --lint --template infra/template.yaml --region us-east-1
	$(BIN)/cfn-lint infra/template.yaml
	$(BIN)/python edge/embed.py --check

build: $(STAMP) ## Build the deployable artifact without Docker (arm64 wheels) and report its size
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam build --template infra/template.yaml --build-dir .aws-sam/build
	@printf 'artifact: %s unpacked, ' "$$(du -sh .aws-sam/build/ResizeFunction | cut -f1)"
	@cd .aws-sam/build/ResizeFunction && $(CURDIR)/$(BIN)/python -c "import io, os, zipfile; \
	buf = io.BytesIO(); z = zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED); \
	[z.write(os.path.join(d, f)) for d, _, fs in os.walk('.') for f in fs]; z.close(); \
	print(f'{len(buf.getvalue()) / 1e6:.1f} MB zipped (Lambda limits: 250 MB unpacked, 50 MB zipped upload)')"

deploy: build ## Deploy with SAM, asking for the stack's settings the first time
	$(BIN)/sam deploy --guided --template-file .aws-sam/build/template.yaml

clean: ## Remove the virtual environment, build output and caches
	rm -rf $(VENV) .aws-sam out .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help install test serve invoke bench edge lint build deploy clean
