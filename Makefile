# The two commands of the README: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: deps build demo test bench lint clean-labs

deps:
	./scripts/install-deps

build: deps
	$(CARGO) build --workspace

# Every shipped drill on a lab of its shape; reports into reports/.
demo: build
	./target/debug/corodrill demo

# The end-to-end tests run the agent binary, which `cargo test` alone does
# not build: build the workspace first.
test: deps
	$(CARGO) build --workspace
	$(CARGO) test --workspace

bench: deps
	$(CARGO) build --release --workspace
	$(CARGO) bench --bench lab_up --bench agent --bench drills --bench oracle --bench failover --bench chaos

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Removes every lab on this machine (safe to run at any time).
clean-labs:
	$(CARGO) run -q --bin corodrill -- lab down --all
