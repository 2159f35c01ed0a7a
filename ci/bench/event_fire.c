/*
 * Benchmark plugin: the cost of qemu_plugin_fire_event() with 0, 1 and 8
 * subscribers, against calling the subscriber through a function pointer.
 * It measures in qemu_plugin_install() and prints the median of 5 rounds
 * of 10 million calls for each case;
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

static void subscriber(void *ev_data, void *udata)
{
    (*(uint64_t *)udata)++;
}

static void fire_loop(void)
{
    for (int i = 0; i < FIRES; i++) {
        qemu_plugin_fire_event(ev, NULL);
    }
}

static void direct_loop(void)
{
    void (*volatile direct)(void *, void *) = subscriber;

    for (int i = 0; i < FIRES; i++) {
        direct(NULL, &counters[0]);
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
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *name = qemu_plugin_get_name(id);

    ev = qemu_plugin_create_event(id, "bench", NULL);
    measure("direct indirect call", direct_loop, 1);
    measure("fire, 0 subscribers", fire_loop, 0);
    for (int subs = 1; subs <= 8; subs++) {
        qemu_plugin_subscribe_event(id, name, "bench", subscriber,
                                    &counters[subs - 1], NULL);
        if (subs == 1 || subs == 8) {
            g_autofree char *what = g_strdup_printf("fire, %d subscriber%s",
                                                    subs, subs > 1 ? "s" : "");
            measure(what, fire_loop, subs);
        }
    }
    return 0;
}
