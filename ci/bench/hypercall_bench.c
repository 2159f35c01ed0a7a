/*
 * Benchmark plugin: the per-call cost of a hypercall against a plain
 * instruction callback, on cpuid_loop.c's CPUID instructions.
 *
 *   mode=hypercall  handles hypercall 0x4c5a0000 (returns its 1st argument)
 *   mode=insn       an instruction callback on every CPUID (does nothing;
 *                   QEMU_PLUGIN_CB_RW_REGS, as a hypercall gets)
 *
 * `make bench` runs it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib.h>
#include <inttypes.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t calls;

static bool hypercall(unsigned int vcpu_index, uint64_t num, uint64_t a1,
                      uint64_t a2, uint64_t a3, uint64_t a4, uint64_t *ret,
                      void *userdata)
{
    *ret = a1;
    calls++;
    return true;
}

static void insn_exec(unsigned int vcpu_index, void *userdata)
{
    calls++;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    static const uint8_t cpuid[2] = { 0x0f, 0xa2 };

    for (size_t i = 0; i < qemu_plugin_tb_n_insns(tb); i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint8_t bytes[2];

        if (qemu_plugin_insn_size(insn) == 2 &&
            qemu_plugin_insn_data(insn, bytes, 2) == 2 &&
            !memcmp(bytes, cpuid, 2)) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, insn_exec,
                                                   QEMU_PLUGIN_CB_RW_REGS,
                                                   NULL);
        }
    }
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    g_autofree char *out = g_strdup_printf("calls: %" PRIu64 "\n", calls);

    qemu_plugin_outs(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    if (argc == 1 && !strcmp(argv[0], "mode=hypercall")) {
        return qemu_plugin_register_vcpu_hypercall_cb(id, 0x4c5a0000,
                                                      hypercall, NULL) ? 0 : 1;
    }
    if (argc == 1 && !strcmp(argv[0], "mode=insn")) {
        qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
        return 0;
    }
    return 1;
}
