/*
 * Benchmark plugin: the per-call cost of an address space change callback
 * against an instruction callback, on cr3_loop.S's loads of CR3 (each one
 * a change of address space).
 *
 *   mode=none  no callback: what a loaded plugin costs the loads when no
 *              plugin registers for address space changes (the hook
 *              then tests a bit of the vCPU's event mask)
 *   mode=asid  an address space change callback (does nothing but count)
 *   mode=insn  an instruction callback on every MOV to CR3 (counts too;
 *              QEMU_PLUGIN_CB_NO_REGS), so both modes make one call per
 *              load of CR3
 *
 * Prints the number of calls at exit (-d plugin). `make bench` runs it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib.h>
#include <inttypes.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t calls;

static void asid_changed(unsigned int vcpu_index, uint64_t old_asid,
                         uint64_t new_asid, void *userdata)
{
    calls++;
}

static void insn_exec(unsigned int vcpu_index, void *userdata)
{
    calls++;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    for (size_t i = 0; i < qemu_plugin_tb_n_insns(tb); i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint8_t bytes[3];

        /* MOV CR3, r32/r64: 0f 22 /3 with a register operand */
        if (qemu_plugin_insn_size(insn) == 3 &&
            qemu_plugin_insn_data(insn, bytes, 3) == 3 &&
            bytes[0] == 0x0f && bytes[1] == 0x22 &&
            (bytes[2] & 0xf8) == 0xd8) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, insn_exec,
                                                   QEMU_PLUGIN_CB_NO_REGS,
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
    if (argc == 1 && !strcmp(argv[0], "mode=none")) {
        return 0;
    }
    if (argc == 1 && !strcmp(argv[0], "mode=asid")) {
        qemu_plugin_register_vcpu_asid_changed_cb(id, asid_changed, NULL);
        return 0;
    }
    if (argc == 1 && !strcmp(argv[0], "mode=insn")) {
        qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
        return 0;
    }
    return 1;
}
