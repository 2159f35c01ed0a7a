/*
 * Benchmark probe, C side of rust-plugins/tests/fixtures/probe: on every
 * executed instruction, reads register rax (what=reg) or 8 bytes of guest
 * memory at rsp (what=mem) with the plugin API directly, into one buffer
 * per vCPU thread: the fastest way the C API allows.
 */
#include <glib.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static struct qemu_plugin_register *rax, *rsp;
static bool read_mem;
static uint64_t sum;

static uint64_t read_u64(struct qemu_plugin_register *reg, GByteArray *buf)
{
    uint64_t value = 0;

    g_byte_array_set_size(buf, 0);
    qemu_plugin_read_register(reg, buf);
    memcpy(&value, buf->data, MIN(buf->len, sizeof(value)));
    return value;
}

static __thread GByteArray *buf;

static void insn_exec(unsigned int vcpu_index, void *udata)
{
    if (!buf) {
        buf = g_byte_array_new();
    }

    if (read_mem) {
        uint64_t addr = read_u64(rsp, buf);

        if (qemu_plugin_read_memory_vaddr(addr, buf, 8)) {
            __atomic_fetch_add(&sum, buf->data[0], __ATOMIC_RELAXED);
        }
    } else {
        __atomic_fetch_add(&sum, read_u64(rax, buf), __ATOMIC_RELAXED);
    }
}

static void vcpu_init(qemu_plugin_id_t id, unsigned int vcpu_index)
{
    g_autoptr(GArray) regs = qemu_plugin_get_registers();

    for (guint i = 0; i < regs->len; i++) {
        qemu_plugin_reg_descriptor *rd =
            &g_array_index(regs, qemu_plugin_reg_descriptor, i);
        if (strcmp(rd->name, "rax") == 0) {
            rax = rd->handle;
        } else if (strcmp(rd->name, "rsp") == 0) {
            rsp = rd->handle;
        }
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    for (size_t i = 0; i < qemu_plugin_tb_n_insns(tb); i++) {
        qemu_plugin_register_vcpu_insn_exec_cb(qemu_plugin_tb_get_insn(tb, i),
                                               insn_exec,
                                               QEMU_PLUGIN_CB_R_REGS, NULL);
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    g_autofree char *msg = g_strdup_printf("probe: %" PRIu64 "\n", sum);
    qemu_plugin_outs(msg);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    read_mem = argc > 0 && strcmp(argv[0], "what=mem") == 0;
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
