# The two commands of the README: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: deps build demo test test-long test-vm nextest bench lint fuzz clean-labs

deps:
	./scripts/install-deps

build: deps
	$(CARGO) build --workspace

# Every shipped drill on a lab of its shape; reports into reports/.
demo: build
	./target/debug/corodrill demo

# The tests' runs are recorded in a history of their own under target/,
# never in the machine's (/var/lib/corodrill/history.sqlite); so are
# cargo's own (.cargo/config.toml).
export CORODRILL_HISTORY ?= $(CURDIR)/target/test-history.sqlite

# The end-to-end tests run the agent binary, which the test build alone
# does not build: build the workspace first. cargo-nextest runs three labs at
# a time (.config/nextest.toml); it does not run doctests, cargo test does.
test: deps nextest
	$(CARGO) build --workspace
	$(CARGO) nextest run --workspace
	$(CARGO) test --workspace --doc

# Tests that are long by nature (every split of five nodes, a 62 s
# watchdog reset, a 10-minute random drill); CI does not run them.
test-long: deps nextest
	$(CARGO) build --workspace
	$(CARGO) nextest run -p corodrill --test long

# The VM lab: Debian 12 VMs under QEMU (KVM where this machine runs it,
# else TCG) with the agent from its .deb, the shipped drills, a reboot in
# the middle of a fault, install-agent over ssh; then the Vagrantfile up
# with Debian's vagrant-libvirt on a box of the same image, under a libvirtd
# of the test's own. The image is built once and cached in
# /var/cache/corodrill/vm. CI runs it after `make test`.
AGENT_DEB_DIR ?= target/debian
# The agent's .deb is packed from the dev build (no second, release build:
# 40 s); its files, unit, scripts and dependencies are the release package's.
test-vm: deps
	./scripts/install-deps --vm
	$(CARGO) build --workspace
	@command -v cargo-deb >/dev/null || $(CARGO) install cargo-deb --locked
	rm -f $(AGENT_DEB_DIR)/corodrill-agent_*.deb
	$(CARGO) deb -p corodrill-agent --profile dev --fast --maintainer "corodrill test-vm <root@localhost>" -o $(AGENT_DEB_DIR)/
	CORODRILL_AGENT_DEB=$$(ls $(abspath $(AGENT_DEB_DIR))/corodrill-agent_*.deb) \
		$(CARGO) test -p corodrill --test vm -- --nocapture --test-threads=1
	$(CARGO) test -p corodrill --test vagrant -- --nocapture

nextest:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest

bench: deps
	$(CARGO) build --release --workspace
	$(CARGO) bench --bench lab_up --bench agent --bench drills --bench oracle --bench failover --bench chaos --bench history

# Fuzzing (cargo-fuzz, nightly): FUZZ_SECONDS per target on one core. New
# inputs go to target/fuzz-corpus; the seeds in fuzz/corpus are left as
# they are (they replay as unit tests in `make test`).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := experiment inventory protocol corosync crm_mon ha_manager
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p ../target/fuzz-corpus/$$t && \
		$(CARGO) +nightly fuzz run -s none $$t ../target/fuzz-corpus/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Removes every lab on this machine (safe to run at any time).
clean-labs:
	$(CARGO) run -q --bin corodrill -- lab down --all
