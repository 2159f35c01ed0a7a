# Patched QEMU with an extended TCG plugin API, plus Rust SDK and plugins.
#
#   make demo    build everything and run the demo scenario
#   make test    install deps, build, and run every test (what CI runs)
#
# See README.md for every target.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := qemu

TOP         := $(abspath .)
BUILD       ?= $(TOP)/build
QEMU_SRC    ?= $(BUILD)/qemu-src
QEMU_BUILD  ?= $(BUILD)/qemu-build
VENV        ?= $(BUILD)/venv
QEMU_TARBALL ?=
# The second base, upstream master, for the submission set (patches/upstream/).
MASTER_SRC   ?= $(BUILD)/qemu-master-src
MASTER_BUILD ?= $(BUILD)/qemu-master-build
MASTER_CHECK ?= $(BUILD)/master-check
export QEMU_SRC QEMU_TARBALL MASTER_SRC
export DOWNLOAD_DIR := $(BUILD)/downloads

# Debian's firmware packages, searched after QEMU's own data directory.
FIRMWARE_PATH := /usr/share/seabios:/usr/lib/ipxe/qemu:/usr/share/qemu

CONFIGURE_ARGS := \
	--python=$(VENV)/bin/python3 \
	--target-list=x86_64-softmmu,x86_64-linux-user \
	--enable-plugins --disable-docs --without-default-features \
	--enable-tcg --enable-fdt=system --enable-capstone \
	--disable-install-blobs --firmwarepath=$(FIRMWARE_PATH)

QEMU_SYSTEM := $(QEMU_BUILD)/qemu-system-x86_64
QEMU_USER   := $(QEMU_BUILD)/qemu-x86_64
PATCHQ      := $(TOP)/ci/patchq.sh
DEPS_STAMP  := $(BUILD)/.deps-installed

# ccache: paths under build/ count relative to the compiler's directory, so
# the per-patch builds (build/patch-check) share the main build's entries.
export CCACHE_BASEDIR := $(BUILD)
export CCACHE_NOHASHDIR := 1

# The Rust side finds the patched QEMU (header, symbols, binaries) via these.
export QEMU_SYSTEM QEMU_USER QEMU_BUILD

.PHONY: deps qemu-src qemu reset-qemu-src export-patches submission check-exported \
	master-src qemu-master reset-master-src check-master record-forms \
	check-patches check-patches-build check-upstream rust check-rust linux-guest \
	check-sanitizers check-asan check-tsan check-cfi \
	lint-rust test demo bench bench-tools bench-counters bench-asid clean \
	distclean FORCE

## Dependencies -------------------------------------------------------------

deps:
	@mkdir -p $(BUILD)
	$(TOP)/ci/install-deps.sh $(VENV)
	@touch $(DEPS_STAMP)

$(DEPS_STAMP): ci/install-deps.sh
	@$(MAKE) --no-print-directory deps

## QEMU source and patch queue ----------------------------------------------

qemu-src: $(DEPS_STAMP)
	@$(PATCHQ) prepare
	@$(PATCHQ) apply

reset-qemu-src:
	@$(PATCHQ) reset

export-patches:
	@$(PATCHQ) export

# The patches to send to qemu-devel, as SENDER: standalone/ and upstream/
# (with its cover letter) in build/submission, the placeholder identity of
# the working repo replaced; refused without a real 'Name <address>'.
SUBMISSION_DIR := $(BUILD)/submission
submission:
	@SENDER="$(SENDER)" SUBMISSION_DIR=$(SUBMISSION_DIR) $(PATCHQ) submission

check-exported:
	@$(PATCHQ) check-exported

check-patches: qemu-src
	@$(PATCHQ) check-patches

# Every patch must build on its own: build after each one.
check-patches-build: qemu-src $(BUILD)/configure-args
	@CONFIGURE_ARGS_FILE=$(BUILD)/configure-args \
	 PATCH_BUILD_DIR=$(BUILD)/patch-check $(PATCHQ) check-builds

## The submission set on upstream master ------------------------------------

# The master working repo: upstream's tree from shared/upstream/ (pristine,
# tag master-base), the three subprojects it cannot download copied from
# the 10.2.2 source, patches/upstream/ on top. docs/upstream.md.
master-src: qemu-src
	@$(PATCHQ) prepare-master
	@$(PATCHQ) apply-master

reset-master-src: qemu-src
	@$(PATCHQ) reset-master

# A developer's build of the master working repo.
$(MASTER_BUILD)/config-host.mak: $(BUILD)/configure-args | master-src
	@mkdir -p $(MASTER_BUILD)
	cd $(MASTER_BUILD) && \
	    eval "$(MASTER_SRC)/configure $$(cat $(BUILD)/configure-args) --disable-download"

qemu-master: master-src $(MASTER_BUILD)/config-host.mak
	ninja -C $(MASTER_BUILD) qemu-system-x86_64 qemu-x86_64 test-plugins
	$(call link-firmware,$(MASTER_BUILD))

# After a change meant to differ between the set's two forms.
record-forms:
	@$(PATCHQ) record-forms

# What CI checks of the set on master: the same commits as the product's
# form (by subject), each applies to master, passes checkpatch and builds
# (QEMU and the test plugins, after every patch: the set is bisectable on
# the base it is sent for); then master's check-tcg for x86_64, new tests
# included, on the build of the last patch.
check-master: master-src $(BUILD)/configure-args
	@CONFIGURE_ARGS_FILE=$(BUILD)/configure-args \
	 PATCH_BUILD_DIR=$(MASTER_CHECK) $(PATCHQ) check-master
	$(call link-firmware,$(MASTER_CHECK)/qemu-build)
	$(MAKE) -C $(MASTER_CHECK)/qemu-build check-tcg GITLAB_CI=1

## QEMU build ---------------------------------------------------------------

# Rewritten only when the arguments change, so that configure reruns then.
# ccache is looked for here, after deps may have installed it.
$(BUILD)/configure-args: $(DEPS_STAMP) FORCE
	@args="$(CONFIGURE_ARGS)$$(command -v ccache >/dev/null && echo " --cc='ccache cc'")"; \
	echo "$$args" | cmp -s - $@ || echo "$$args" > $@

$(QEMU_BUILD)/config-host.mak: $(DEPS_STAMP) $(BUILD)/configure-args | qemu-src
	@mkdir -p $(QEMU_BUILD)
	cd $(QEMU_BUILD) && eval "$(QEMU_SRC)/configure $$(cat $(BUILD)/configure-args)"

# Run from a build tree ($(1)), QEMU looks for firmware under qemu-bundle/.
define link-firmware
	@for d in $(subst :, ,$(FIRMWARE_PATH)); do \
	    mkdir -p $(1)/qemu-bundle$$(dirname $$d); \
	    ln -sfn $$d $(1)/qemu-bundle$$d; \
	done
endef

qemu: qemu-src $(QEMU_BUILD)/config-host.mak
	ninja -C $(QEMU_BUILD) qemu-system-x86_64 qemu-x86_64
	$(call link-firmware,$(QEMU_BUILD))

## Tests --------------------------------------------------------------------

# QEMU's own TCG tests (x86_64 linux-user and softmmu, with test plugins).
# The test plugins are built explicitly: check-tcg only gets them via "all".
# GITLAB_CI=1 skips what upstream's CI skips as flaky (only vma-pthread).
check-upstream: qemu
	ninja -C $(QEMU_BUILD) test-plugins
	$(MAKE) -C $(QEMU_BUILD) check-tcg GITLAB_CI=1

## Rust workspace ------------------------------------------------------------

# Bindings are generated from the patched header, so the source comes first.
rust: qemu
	cargo build --workspace --release

# The Linux test guest: Debian's kernel and a busybox initramfs.
LINUX_GUEST_DIR := $(BUILD)/linux
export LINUX_GUEST_DIR

linux-guest: $(LINUX_GUEST_DIR)/initramfs.gz

$(LINUX_GUEST_DIR)/initramfs.gz: ci/linux-guest.sh rust-plugins/guests/linux/init \
		rust-plugins/guests/linux/kids.c $(DEPS_STAMP)
	$(TOP)/ci/linux-guest.sh $(LINUX_GUEST_DIR)

# The integration tests load the plugins from target/debug: build them first.
check-rust: qemu linux-guest
	cargo build --workspace
	cargo test --workspace

lint-rust: qemu
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## Sanitizers (not part of `make test`: three more full QEMU builds) ----------

QEMU_ASAN    := $(BUILD)/qemu-asan
QEMU_TSAN    := $(BUILD)/qemu-tsan
QEMU_CFI     := $(BUILD)/qemu-cfi
TSAN_REPORTS := $(BUILD)/tsan-reports
CFI_REPORTS  := $(BUILD)/cfi-reports

# QEMU and its C test plugins, built with sanitizers into $(1) (configure
# arguments $(2)).
define sanitizer-build
	@mkdir -p $(1)
	test -f $(1)/config-host.mak || (cd $(1) && \
	    eval "$(QEMU_SRC)/configure $$(cat $(BUILD)/configure-args) $(2)")
	ninja -C $(1) qemu-system-x86_64 qemu-x86_64 test-plugins
	$(call link-firmware,$(1))
endef

check-sanitizers: check-asan check-tsan check-cfi

# AddressSanitizer and UBSan stop QEMU at the first report: the plugin
# integration tests and check-tcg (the C test plugins) must pass under
# them. Leak reports are off: QEMU does not free everything at exit.
check-asan: qemu-src $(BUILD)/configure-args linux-guest
	$(call sanitizer-build,$(QEMU_ASAN),--enable-asan --enable-ubsan)
	cargo build --workspace
	export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1; \
	QEMU_USER=$(QEMU_ASAN)/qemu-x86_64 QEMU_SYSTEM=$(QEMU_ASAN)/qemu-system-x86_64 \
	    cargo test -p xplugin-tests; \
	$(MAKE) -C $(QEMU_ASAN) check-tcg GITLAB_CI=1

# ThreadSanitizer: glib is not built with it here, so its locks look like
# no synchronisation and some reports can be false. Reports are collected,
# not fatal; ci/tsan-summary.sh groups them and names those with plugin
# code on the stack. Runs linux-user only (multi-threaded guests: one vCPU
# thread per guest thread) and system mode with one vCPU: with gcc 12's
# TSan, qemu-system-x86_64 with several vCPUs crashes inside the TSan
# runtime, even without plugins (docs/reliability.md).
check-tsan: qemu-src $(BUILD)/configure-args
	$(call sanitizer-build,$(QEMU_TSAN),--enable-tsan)
	cargo build --workspace
	rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	export TSAN_OPTIONS="suppressions=$(QEMU_SRC)/tests/tsan/suppressions.tsan \
	    exitcode=0 detect_deadlocks=false history_size=4 log_path=$(TSAN_REPORTS)/report"; \
	QEMU_USER=$(QEMU_TSAN)/qemu-x86_64 QEMU_SYSTEM=$(QEMU_TSAN)/qemu-system-x86_64 \
	    cargo test -p xplugin-tests --test user --test errors --test lifecycle \
	    -- --skip four_vcpus; \
	$(MAKE) -k -C $(QEMU_TSAN) run-tcg-tests-x86_64-linux-user GITLAB_CI=1 || \
	    echo "check-tsan: some check-tcg tests fail under TSan (listed above)"
	$(TOP)/ci/tsan-summary.sh $(TSAN_REPORTS)

# Control-flow integrity: QEMU built with clang's -fsanitize=cfi-icall
# (QEMU's --enable-cfi; it needs LTO, here ThinLTO linked by lld, and
# llvm-ar for the bitcode archives), otherwise configured as the main
# build. Every indirect call QEMU makes is checked against the types of the
# functions QEMU itself defines, so a call into a plugin (a dlopen()ed
# library) fails unless the calling function carries QEMU_DISABLE_CFI.
# --enable-cfi-debug makes a violation print a UBSan report naming the call
# site (collected in build/cfi-reports, then listed) instead of dying on
# SIGILL. The plugin integration tests and check-tcg (the C test plugins,
# among them the inter-plugin provider and consumer) must pass; both run
# to the end (--no-fail-fast, -k) before the target fails, so that the
# summary lists every failing call site. About 15 minutes of build on 2
# busy cores with a cold ccache (13.5 measured), then 4 of tests.
CFI_LLVM := 14
CFI_CONFIGURE_ARGS = \
	--cc='$(if $(shell command -v ccache),ccache )clang-$(CFI_LLVM)' \
	--cxx='$(if $(shell command -v ccache),ccache )clang++-$(CFI_LLVM)' \
	--enable-cfi --enable-cfi-debug -Db_lto_mode=thin --extra-ldflags=-fuse-ld=lld

check-cfi: qemu-src $(BUILD)/configure-args linux-guest
	$(TOP)/ci/install-deps.sh $(VENV) cfi
	@mkdir -p $(QEMU_CFI)
	test -f $(QEMU_CFI)/config-host.mak || (cd $(QEMU_CFI) && \
	    export AR=llvm-ar-$(CFI_LLVM) && \
	    eval "$(QEMU_SRC)/configure $$(cat $(BUILD)/configure-args) $(CFI_CONFIGURE_ARGS)")
	ninja -C $(QEMU_CFI) qemu-system-x86_64 qemu-x86_64 test-plugins
	$(call link-firmware,$(QEMU_CFI))
	cargo build --workspace
	rm -rf $(CFI_REPORTS) && mkdir -p $(CFI_REPORTS)
	export UBSAN_OPTIONS=print_stacktrace=1:log_path=$(CFI_REPORTS)/report; \
	rust=0 tcg=0; \
	QEMU_USER=$(QEMU_CFI)/qemu-x86_64 QEMU_SYSTEM=$(QEMU_CFI)/qemu-system-x86_64 \
	    cargo test --no-fail-fast -p xplugin-tests || rust=$$?; \
	$(MAKE) -k -C $(QEMU_CFI) check-tcg GITLAB_CI=1 || tcg=$$?; \
	$(TOP)/ci/cfi-summary.sh $(CFI_REPORTS); \
	if [ $$rust != 0 ] || [ $$tcg != 0 ]; then \
	    echo "check-cfi: FAILED (plugin integration tests: status $$rust, check-tcg: status $$tcg)"; \
	    exit 1; \
	fi; \
	echo "check-cfi: passed"

## Demo and the whole test suite -----------------------------------------------

# The plugins change the bundled guests and talk to each other; the demo
# prints each change as before -> after.
demo: qemu linux-guest
	cargo build --workspace
	cargo run -q -p xplugin-tests --bin demo

## Benchmarks (never run as tests) --------------------------------------------

BENCH_BUILD := $(BUILD)/bench
BENCH_RUNS  ?= 5
PLUGIN_INCLUDES = -I$(QEMU_SRC)/include/qemu $$(pkg-config --cflags glib-2.0)

$(BENCH_BUILD)/libevent_fire.so: ci/bench/event_fire.c $(QEMU_SRC)/include/qemu/qemu-plugin.h | qemu-src
	@mkdir -p $(@D)
	cc -O2 -shared -fPIC -Wall $(PLUGIN_INCLUDES) -o $@ $<

$(BENCH_BUILD)/libmin_counter.so: ci/bench/min_counter.c $(QEMU_SRC)/include/qemu/qemu-plugin.h | qemu-src
	@mkdir -p $(@D)
	cc -O2 -shared -fPIC -Wall $(PLUGIN_INCLUDES) -o $@ $<

$(BENCH_BUILD)/libprobe.so: ci/bench/probe.c $(QEMU_SRC)/include/qemu/qemu-plugin.h | qemu-src
	@mkdir -p $(@D)
	cc -O2 -shared -fPIC -Wall $(PLUGIN_INCLUDES) -o $@ $<

$(BENCH_BUILD)/loop: ci/bench/loop.c
	@mkdir -p $(@D)
	cc -O1 -static -Wall -o $@ $<

$(BENCH_BUILD)/libhypercall_bench.so: ci/bench/hypercall_bench.c $(QEMU_SRC)/include/qemu/qemu-plugin.h | qemu-src
	@mkdir -p $(@D)
	cc -O2 -shared -fPIC -Wall $(PLUGIN_INCLUDES) -o $@ $<

$(BENCH_BUILD)/cpuid_loop: ci/bench/cpuid_loop.c
	@mkdir -p $(@D)
	cc -O1 -static -Wall -o $@ $<

$(BENCH_BUILD)/libasid_bench.so: ci/bench/asid_bench.c $(QEMU_SRC)/include/qemu/qemu-plugin.h | qemu-src
	@mkdir -p $(@D)
	cc -O2 -shared -fPIC -Wall $(PLUGIN_INCLUDES) -o $@ $<

# A bare-metal 32-bit kernel (PVH entry), loaded at 1 MiB.
$(BENCH_BUILD)/cr3_loop: ci/bench/cr3_loop.S
	@mkdir -p $(@D)
	cc -m32 -nostdlib -static -no-pie -fno-pic -Wl,--build-id=none \
	    -Wl,-Ttext-segment=0x100000 -Wl,--no-warn-rwx-segments -o $@ $<

# Instruction counters on a user-mode loop of 5-instruction iterations,
# register and memory access through the SDK and the C API (20M
# iterations), the cost of firing a named event, a hypercall against a
# plain instruction callback (30M CPUIDs), an address space change
# callback against an instruction callback (BENCH_CR3_LOADS loads of CR3
# in a bare-metal kernel, `make bench-asid` alone), and the Linux guest's
# boot with the syscall plugins. Each row: min, median and max of
# BENCH_RUNS runs (interleaved), and the ratio of its median to the first
# row's; the hypercall and CR3 rows also the cost per call in ns, from
# QEMU's CPU time (CLOCK=cpu: a few ns per call, under the wall time's
# noise on a busy machine).
# Results: build/bench/{counters,access,events,hypercall,asid,linux}.json.
# About 11 minutes with BENCH_RUNS=3 on the idle 2-core CI machine
# (estimate); `make bench-counters` runs the first section alone.
#
# Counters: the no-plugin floor and the inline counters run
# BENCH_COUNTER_ITERS iterations (2G: 10G instructions, a floor of about
# 2.5 s on that machine; the 100M of before gave a floor of 0.2-0.5 s and
# inline ratios from 1.04x to 1.48x). The per-instruction callbacks cost
# about 25 times the floor, so they run BENCH_CALLBACK_ITERS (300M, about
# 10 s each) and their ratio is per iteration.
BENCH_COUNTER_ITERS  ?= 2000000000
BENCH_CALLBACK_ITERS ?= 300000000
# Loads of CR3 in cr3_loop.S (paging off: about 40 ns of CPU each
# without a plugin on that machine, a floor of about 2.4 s).
BENCH_CR3_LOADS ?= 60000000
BENCH_TOOLS := $(BENCH_BUILD)/libevent_fire.so $(BENCH_BUILD)/libmin_counter.so \
	$(BENCH_BUILD)/libprobe.so $(BENCH_BUILD)/loop \
	$(BENCH_BUILD)/libhypercall_bench.so $(BENCH_BUILD)/cpuid_loop \
	$(BENCH_BUILD)/libasid_bench.so $(BENCH_BUILD)/cr3_loop

bench-tools: qemu linux-guest $(BENCH_TOOLS)
	ninja -C $(QEMU_BUILD) test-plugins
	cargo build -q --release -p counter -p probe -p syscalls -p strace -p osi \
	    -p asid-timeline
	cargo build -q --release --manifest-path ci/bench/peer-counter/Cargo.toml \
	    --target-dir $(BENCH_BUILD)/peer

bench-counters: bench-tools
	@echo "== instruction counters: $(BENCH_COUNTER_ITERS) iterations of 5 instructions" \
	    "($(BENCH_CALLBACK_ITERS) with callbacks), $(BENCH_RUNS) runs"
	@MIN_BASE_MS=2000 $(TOP)/ci/bench/counters.sh $(QEMU_USER) \
	    "$(BENCH_BUILD)/loop $(BENCH_COUNTER_ITERS)" $(BENCH_RUNS) \
	    $(BENCH_BUILD)/counters.json \
	    "no plugin=-" \
	    "insn.c inline=$(TEST_PLUGINS)/libinsn.so,inline=true" \
	    "insn.c callback@$(BENCH_CALLBACK_ITERS)=$(TEST_PLUGINS)/libinsn.so" \
	    "minimal C callback@$(BENCH_CALLBACK_ITERS)=$(BENCH_BUILD)/libmin_counter.so" \
	    "crates.io qemu-plugin callback@$(BENCH_CALLBACK_ITERS)=$(BENCH_BUILD)/peer/release/libpeer_counter.so" \
	    "qemu-xplugin callback@$(BENCH_CALLBACK_ITERS)=$(TOP)/target/release/libcounter.so,mode=callback" \
	    "qemu-xplugin inline=$(TOP)/target/release/libcounter.so"

# The address space change callback's cost per call: the CR3 loop with no
# plugin, an empty ASID callback, an empty instruction callback on each
# MOV to CR3 (one call per load either way; the first load, the loop's
# setup, is one more call in both).
bench-asid: bench-tools
	$(BENCH_ASID)

define BENCH_ASID
@echo "== address space changes: $(BENCH_CR3_LOADS) loads of CR3, plain, a plugin without callback, ASID callback, instruction callback"
@CR3_LOOP=$(BENCH_BUILD)/cr3_loop CR3_LOOP_LOADS=$(BENCH_CR3_LOADS) \
    CALLS=$(BENCH_CR3_LOADS) CLOCK=cpu MIN_BASE_MS=2000 \
    $(TOP)/ci/bench/counters.sh $(TOP)/ci/bench/cr3-qemu.sh "" $(BENCH_RUNS) \
    $(BENCH_BUILD)/asid.json \
    "CR3 load, no plugin=-" \
    "CR3 load, plugin without ASID callback=$(BENCH_BUILD)/libasid_bench.so,mode=none" \
    "CR3 load + ASID callback=$(BENCH_BUILD)/libasid_bench.so,mode=asid" \
    "CR3 load + instruction callback=$(BENCH_BUILD)/libasid_bench.so,mode=insn"
endef

bench: bench-counters
	@echo "== a register read, and a register and 8-byte memory read, per instruction (100M)"
	@$(TOP)/ci/bench/counters.sh $(QEMU_USER) "$(BENCH_BUILD)/loop 20000000" $(BENCH_RUNS) \
	    $(BENCH_BUILD)/access.json \
	    "C API: rax=$(BENCH_BUILD)/libprobe.so,what=reg" \
	    "qemu-xplugin: rax=$(TOP)/target/release/libprobe.so,what=reg" \
	    "qemu-xplugin: rax by name=$(TOP)/target/release/libprobe.so,what=reg-name" \
	    "C API: rsp + memory=$(BENCH_BUILD)/libprobe.so,what=mem" \
	    "qemu-xplugin: rsp + memory=$(TOP)/target/release/libprobe.so,what=mem" \
	    "qemu-xplugin: rsp + memory as a Vec=$(TOP)/target/release/libprobe.so,what=mem-vec"
	@echo "== named events: cost of qemu_plugin_fire_event() per call"
	@$(TOP)/ci/bench/events.sh $(QEMU_USER) $(BENCH_BUILD)/libevent_fire.so \
	    $(BENCH_BUILD)/events.json
	@echo "== hypercalls: 30M CPUIDs, plain, with an instruction callback, handled as a hypercall"
	@CALLS=30000000 CLOCK=cpu $(TOP)/ci/bench/counters.sh $(QEMU_USER) "$(BENCH_BUILD)/cpuid_loop 30000000" $(BENCH_RUNS) \
	    $(BENCH_BUILD)/hypercall.json \
	    "CPUID, no plugin=-" \
	    "CPUID + instruction callback=$(BENCH_BUILD)/libhypercall_bench.so,mode=insn" \
	    "CPUID handled as a hypercall=$(BENCH_BUILD)/libhypercall_bench.so,mode=hypercall"
	$(BENCH_ASID)
	@echo "== the Linux guest, boot to power-off (strace logs to QEMU's log: -d plugin)"
	@$(TOP)/ci/bench/counters.sh $(TOP)/ci/bench/linux-qemu.sh "" $(BENCH_RUNS) \
	    $(BENCH_BUILD)/linux.json \
	    "no plugin=-" \
	    "syscalls=$(TOP)/target/release/libsyscalls.so" \
	    "syscalls + strace=$(TOP)/target/release/libsyscalls.so $(TOP)/target/release/libstrace.so -d plugin -D /dev/null" \
	    "syscalls + osi + strace=$(TOP)/target/release/libosi.so,kernel=$(LINUX_GUEST_DIR)/vmlinux.btf $(TOP)/target/release/libsyscalls.so $(TOP)/target/release/libstrace.so -d plugin -D /dev/null" \
	    "asid-timeline=$(TOP)/target/release/libasid_timeline.so -d plugin -D /dev/null" \
	    "asid-timeline, instruction clock=$(TOP)/target/release/libasid_timeline.so,clock=insns -d plugin -D /dev/null"

TEST_PLUGINS := $(QEMU_BUILD)/tests/tcg/plugins

# Installs what it needs, builds, runs every check; what CI runs.
test:
	@$(TOP)/ci/run-tests.sh

## Housekeeping -------------------------------------------------------------

clean:
	rm -rf $(QEMU_BUILD)
	cargo clean

distclean:
	rm -rf $(BUILD)

FORCE:
