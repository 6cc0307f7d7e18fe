# The two commands of the README: `make run` (the stack) and `make test` (every test).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test lint unit fuzz container bench deps build

## run: build and start the whole stack (redis → app → proxy on :8080) on this host
run:
	@ci/install-deps.sh run
	$(CARGO) build --release
	@mkdir -p .data .run
	SELFHEAL_DATA=$${SELFHEAL_DATA:-.data} SELFHEAL_RUN=$${SELFHEAL_RUN:-.run} ./target/release/selfheal --config supervisor.toml

## test: formatting, lints (code, Dockerfile, manifests), unit + integration tests, bounded fuzzing, container end-to-end tests
test: lint unit fuzz container

deps:
	@ci/install-deps.sh test

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@ci/lint-deploy.sh

unit: deps
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --no-fail-fast --profile ci --workspace --lib --test integration; \
	else \
	  $(CARGO) test --no-fail-fast --lib --test integration; \
	fi

## fuzz: every cargo-fuzz target for FUZZ_SECONDS (30 by default here; ci/fuzz.sh alone: 60)
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-30} FUZZ_SEED=$${FUZZ_SEED:-1} ci/fuzz.sh

container:
	@ci/container-test.sh

bench:
	@ci/install-deps.sh bench
	@for b in bench/*.sh; do echo "== $$b"; bash "$$b"; done
