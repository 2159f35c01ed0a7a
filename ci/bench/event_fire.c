/*
 * Benchmark plugin: the cost of qemu_plugin_fire_event() with 0, 1 and 8
 * subscribers, against calling the subscriber through a function pointer.
 * It measures on a vCPU thread, in the first executed block, as plugins
 * fire events from their callbacks, and prints the median of 5 rounds of
 * 10 million calls for each case;
 * `make bench` runs it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define FIRES 10000000
#define ROUNDS 5

static uint64_t counters[8];
static struct qemu_plugin_named_event *ev;

static void subscriber(void *ev_data, size_t ev_size, void *udata)
{
    (*(uint64_t *)udata)++;
}

static void fire_loop(void)
{
    for (int i = 0; i < FIRES; i++) {
        qemu_plugin_fire_event(ev, NULL, 0);
    }
}

static void direct_loop(void)
{
    void (*volatile direct)(void *, size_t, void *) = subscriber;

    for (int i = 0; i < FIRES; i++) {
        direct(NULL, 0, &counters[0]);
    }
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median ns per call of @loop over ROUNDS rounds; checks the call count. */
static void measure(const char *what, void (*loop)(void), int subscribers)
{
    double ns[ROUNDS];
    uint64_t total = 0;

    memset(counters, 0, sizeof(counters));
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t = g_get_monotonic_time();

        loop();
        ns[r] = (g_get_monotonic_time() - t) * 1000.0 / FIRES;
    }
    for (int s = 0; s < 8; s++) {
        total += counters[s];
    }
    qsort(ns, ROUNDS, sizeof(double), compare_double);
    printf("%-28s %7.2f ns%s\n", what, ns[ROUNDS / 2],
           total == (uint64_t)FIRES * ROUNDS * subscribers ? ""
                                                           : "  WRONG COUNT");
    /* the guest's exit does not flush stdio */
    fflush(stdout);
}

static qemu_plugin_id_t self;

static void run_benchmark(unsigned int vcpu_index, void *udata)
{
    static gint started;
    const char *name = qemu_plugin_get_name(self);

    if (!g_atomic_int_compare_and_exchange(&started, 0, 1)) {
        return;
    }
    measure("direct indirect call", direct_loop, 1);
    measure("fire, 0 subscribers", fire_loop, 0);
    for (int subs = 1; subs <= 8; subs++) {
        if (qemu_plugin_subscribe_event(self, name, "bench", subscriber,
                                        &counters[subs - 1]) !=
            QEMU_PLUGIN_LINK_OK) {
            fprintf(stderr, "event_fire: cannot subscribe\n");
            exit(1);
        }
        if (subs == 1 || subs == 8) {
            g_autofree char *what = g_strdup_printf("fire, %d subscriber%s",
                                                    subs, subs > 1 ? "s" : "");
            measure(what, fire_loop, subs);
        }
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_cb(tb, run_benchmark,
                                         QEMU_PLUGIN_CB_NO_REGS, NULL);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    self = id;
    if (qemu_plugin_create_event(id, "bench", &ev) != QEMU_PLUGIN_LINK_OK) {
        fprintf(stderr, "event_fire: cannot create its event\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    return 0;
}
