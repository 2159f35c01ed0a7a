/*
 * Bare-metal x86_64 test guest (see boot.S): the targets of
 * ../common/targets.h, plus a syscall instruction handled by its own LSTAR
 * entry. Output goes to the debug console (port 0xe9); main's return value
 * becomes QEMU's exit status (2 * value + 1).
 */
#include <stdint.h>

#include "../common/targets.h"

static void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static void print(const char *s)
{
    while (*s) {
        outb(0xe9, *s++);
    }
}

static void print_int(long value)
{
    char buf[24];
    int i = sizeof(buf);
    unsigned long v = value < 0 ? -(unsigned long)value : (unsigned long)value;

    buf[--i] = 0;
    do {
        buf[--i] = '0' + v % 10;
        v /= 10;
    } while (v);
    if (value < 0) {
        buf[--i] = '-';
    }
    print(&buf[i]);
}

__attribute__((noipa)) void show(void)
{
    print("message: ");
    print(message);
    print("\n");
}

/* Called by syscall_entry with the guest's syscall number and argument. */
long syscall_dispatch(long nr, long arg)
{
    return nr == 7 ? arg + 1000 : -38;
}

extern void syscall_entry(void);

static void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value),
                     "d"((uint32_t)(value >> 32)));
}

__attribute__((noipa)) long guest_syscall(long nr, long arg)
{
    long ret;

    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(arg)
                     : "rcx", "r11", "rsi", "rdx", "r8", "r9", "r10",
                       "memory");
    return ret;
}

int main(void)
{
    int licensed;

    wrmsr(0xc0000081, (uint64_t)0x08 << 32);            /* STAR: kernel CS */
    wrmsr(0xc0000082, (uint64_t)(uintptr_t)syscall_entry); /* LSTAR */
    wrmsr(0xc0000084, 0);                               /* FMASK */

    licensed = is_licensed();
    print("is_licensed() = ");
    print_int(licensed);
    print(", its body ran ");
    print_int(body_ran);
    print(" times\n");
    for (int i = 1; i <= 3; i++) {
        print("call ");
        print_int(i);
        print(": compute(5) = ");
        print_int(compute(5));
        print("\n");
    }
    show();
    print("syscall 7(5) = ");
    print_int(guest_syscall(7, 5));
    print("\n");
    return 0;
}
