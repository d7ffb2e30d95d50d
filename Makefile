# ironic-wasm-agent: build, run on a simulated machine, test, benchmark.
#
#   make run    build everything, create the default simulated machine, start the agent on it
#   make test   build everything and run every test
#   make ramdisk     kernel + initramfs with the static agent (target/ramdisk;
#                    ARCH=aarch64 or `make ramdisk-aarch64`: target/ramdisk-aarch64)
#   make vm-test     boot that ramdisk in VMs under a real Ironic (direct boot,
#                    Redfish virtual media BIOS/UEFI, into the deployed OS)
#   make vm-test-aarch64  the aarch64 ramdisk in qemu-system-aarch64 (TCG)
#                    through a full cycle under a real Ironic

CARGO        ?= cargo
GUEST_TARGET := wasm32-wasip2
GUEST_DIR    := target/$(GUEST_TARGET)/guest
SIM_DIR      ?= .sim/default
PORT         ?= 9999
TOKEN        ?= dev-token

# Every guest crate: the generic manager, examples, and the test managers.
GUEST_CRATES := generic-manager \
	$(shell sed -n 's/^name *= *"\(.*\)"/\1/p' tests/managers/*/Cargo.toml 2>/dev/null)

# The ramdisk's architecture: x86_64 (default) or aarch64. Another
# architecture than x86_64 builds into directories of its own.
ARCH ?= x86_64
RAMDISK_SUFFIX := $(if $(filter x86_64,$(ARCH)),,-$(ARCH))
RAMDISK_TARGET := $(ARCH)-unknown-linux-musl
RAMDISK_CARGO_DIR := target/ramdisk-build$(RAMDISK_SUFFIX)
RAMDISK_AGENT := $(RAMDISK_CARGO_DIR)/$(RAMDISK_TARGET)/ramdisk/ironic-agent
RAMDISK_OUT := target/ramdisk$(RAMDISK_SUFFIX)
# C compiler (ring, wasmtime's fiber) and linker per architecture, for
# cargo through its environment: musl-gcc natively, Debian's GNU cross
# toolchain for aarch64 (Rust links its own static musl, `crt-static`).
RAMDISK_CARGO_ENV_x86_64 := CC_x86_64_unknown_linux_musl=musl-gcc
RAMDISK_CARGO_ENV_aarch64 := CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
RAMDISK_CARGO_ENV := $(RAMDISK_CARGO_ENV_$(ARCH))

.PHONY: setup managers examples build run test lint bench clean ramdisk vm-test \
	ramdisk-aarch64 vm-test-aarch64

## Install what the build needs on a fresh machine of this kind.
setup:
	@command -v rustup >/dev/null || { echo "rustup is required"; exit 1; }
	@rustup target list --installed | grep -qx $(GUEST_TARGET) || rustup target add $(GUEST_TARGET)
	@bash tests/setup-tools.sh
	@bash tests/c-toolchain-setup.sh

## Hardware managers and test managers as components.
managers: setup
	$(CARGO) build --locked --target $(GUEST_TARGET) --profile guest $(addprefix -p ,$(GUEST_CRATES))

## Example managers in Python and JavaScript (their toolchains install into
## target/ and managers/examples/js/node_modules; exit 77 = toolchain unavailable).
examples:
	bash tests/examples-setup.sh || [ $$? -eq 77 ]

## The agent and the test binaries.
build: managers
	$(CARGO) build --locked

## Start the agent in standalone mode on the default simulated machine.
run: build
	@test -d $(SIM_DIR) || ./target/debug/ironic-agent sim create $(SIM_DIR)
	@mkdir -p .sim/managers && cp $(GUEST_DIR)/generic_manager.wasm .sim/managers/generic.wasm
	@echo
	@echo "Agent on http://127.0.0.1:$(PORT) (token: $(TOKEN)). Try:"
	@echo "  curl -s http://127.0.0.1:$(PORT)/v1/status"
	@echo "  curl -s -XPOST 'http://127.0.0.1:$(PORT)/v1/commands/?wait=true&agent_token=$(TOKEN)' -d '{\"name\": \"poll.get_hardware_info\", \"params\": {}}'"
	@echo
	./target/debug/ironic-agent --standalone --hardware-root $(SIM_DIR) --managers-dir .sim/managers \
		--listen_host 127.0.0.1 --listen_port $(PORT) --agent_token $(TOKEN)

## Every test.
test: build examples
	$(CARGO) test --locked --no-fail-fast --workspace --exclude generic-manager \
		$(addprefix --exclude ,$(filter-out generic-manager,$(GUEST_CRATES)))

## The ramdisk: static (musl) agent, precompiled generic manager, Debian's
## kernel and programs. Sizes in target/ramdisk/sizes.txt.
ramdisk: managers
	@test -n "$(RAMDISK_CARGO_ENV)" || { echo "ARCH=$(ARCH): ramdisks build for x86_64 or aarch64" >&2; exit 2; }
	@rustup target list --installed | grep -qx $(RAMDISK_TARGET) || rustup target add $(RAMDISK_TARGET)
	@bash ramdisk/setup.sh $(ARCH)
	$(RAMDISK_CARGO_ENV) CARGO_TARGET_DIR=$(RAMDISK_CARGO_DIR) \
		$(CARGO) build --locked --profile ramdisk --target $(RAMDISK_TARGET) -p ironic-agent
	RAMDISK_ARCH=$(ARCH) bash ramdisk/build.sh $(RAMDISK_AGENT) $(GUEST_DIR)/generic_manager.wasm $(RAMDISK_OUT)

ramdisk-aarch64:
	$(MAKE) ramdisk ARCH=aarch64

## Boot the ramdisk of `make ramdisk` in VMs under a real Ironic: direct
## kernel boot (ramdisk_vm), Redfish virtual media through sushy-tools and a
## libvirtd of the test's own, BIOS and UEFI, into the deployed OS
## (ramdisk_redfish). VM_MEMORY_MIB sets the VMs' RAM.
vm-test: ramdisk build
	RAMDISK_DIR=target/ramdisk $(CARGO) test --locked -p agent-tests \
		--test ramdisk_vm --test ramdisk_redfish -- --nocapture --test-threads 1 \
		--include-ignored --skip redfish_ipxe_uefi_cycle

## The aarch64 ramdisk in qemu-system-aarch64 (`virt`, TCG) through
## inspection, cleaning, deploy, undeploy and a hot-loaded manager under a
## real Ironic; not in `make test` (CI time).
vm-test-aarch64: ramdisk-aarch64 build
	RAMDISK_DIR_AARCH64=target/ramdisk-aarch64 $(CARGO) test --locked -p agent-tests \
		--test ramdisk_vm -- --ignored --nocapture --test-threads 1 aarch64

# The second clippy run checks the agent built without Cranelift
# (`--no-default-features`: loads precompiled managers only).
lint: managers
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked -p ironic-host -p ironic-agent --all-targets --no-default-features -- -D warnings
	$(CARGO) clippy --locked --target $(GUEST_TARGET) $(addprefix -p ,$(GUEST_CRATES)) -- -D warnings
	@# The ramdisk's agent is built for musl, whose libc types differ (ioctl requests).
	@rustup target list --installed | grep -qx $(RAMDISK_TARGET) || rustup target add $(RAMDISK_TARGET)
	$(RAMDISK_CARGO_ENV) CARGO_TARGET_DIR=$(RAMDISK_CARGO_DIR) \
		$(CARGO) clippy --locked --target $(RAMDISK_TARGET) -p ironic-agent -- -D warnings

## Benchmarks (release build); results go to docs/benchmarks.md by hand.
bench: managers
	$(CARGO) build --locked --release
	bash tests/bench/run.sh

clean:
	$(CARGO) clean
	rm -rf .sim managers/examples/js/node_modules
