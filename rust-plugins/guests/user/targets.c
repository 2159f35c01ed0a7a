/*
 * User-mode guest for the plugin tests: the targets of ../common/targets.h
 * and a made-up syscall a filter can fake. Every line it prints is checked.
 */
#include <stdio.h>
#include <unistd.h>

/* No such syscall: Linux returns -ENOSYS, unless a plugin fakes it. */
#define MADE_UP_SYSCALL 1000

#include "../common/targets.h"

__attribute__((noipa)) void show(void)
{
    printf("message: %s\n", message);
}

int main(void)
{
    int licensed = is_licensed();

    printf("is_licensed() = %d, its body ran %d times\n", licensed, body_ran);
    hypercall(HC_TRACE_START, 0, 0);
    for (int i = 1; i <= 3; i++) {
        printf("call %d: compute(5) = %d\n", i, compute(5));
    }
    hypercall(HC_TRACE_STOP, 0, 0);
    hypercall(HC_LOG, (unsigned long)hypercall_note,
              sizeof(hypercall_note) - 1);
    printf("hypercall ping(40, 2) = %lu\n", hypercall(HC_PING, 40, 2));
    show();
    printf("syscall(%d) returned %ld\n", MADE_UP_SYSCALL,
           syscall(MADE_UP_SYSCALL, 1L, 2L));
    return 0;
}
