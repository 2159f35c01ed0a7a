/*
 * Bare-metal x86_64 test guest (see boot.S): the targets of
 * ../common/targets.h, plus a syscall instruction handled by its own LSTAR
 * entry, and a workload that every vCPU runs at once. Output goes to the
 * debug console (port 0xe9); main's return value becomes QEMU's exit status
 * (2 * value + 1). It also loads a register where no device is mapped and
 * stores to and loads the local APIC's task priority register, from every
 * vCPU, for the MMIO callback tests.
 */
#include <stdint.h>

#include "../common/targets.h"

static void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static void outw(uint16_t port, uint16_t value)
{
    __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port));
}

static uint8_t inb(uint16_t port)
{
    uint8_t value;

    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
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

static void print_hex(unsigned long value)
{
    char buf[19];
    int i = sizeof(buf);

    buf[--i] = 0;
    do {
        buf[--i] = "0123456789abcdef"[value % 16];
        value /= 16;
    } while (value);
    buf[--i] = 'x';
    buf[--i] = '0';
    print(&buf[i]);
}

/*
 * Device accesses: a 32-bit register at 0xfe000000, where the pc machine
 * maps no device (QEMU: unassigned memory, loads return 0), which the MMIO
 * callback tests make a plugin serve with MMIO_VALUE; and the local APIC's
 * task priority register. boot.S maps both pages uncached.
 */
#define UNASSIGNED_REG ((volatile uint32_t *)0xfe000000)
#define LAPIC_TPR ((volatile uint32_t *)0xfee00080)
#define MMIO_VALUE 0x600dcafe
/* Loads of UNASSIGNED_REG by each vCPU during the workload */
#define MMIO_LOADS 1000

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

/*
 * The multi-vCPU workload: once every vCPU is up, each calls compute(5)
 * ROUNDS times and sums the results. The other vCPUs are started with INIT
 * and startup IPIs to all but the boot vCPU (the firmware has parked them)
 * and enter ap_main() from boot.S.
 */
#define MAX_CPUS 8
#define ROUNDS 100000
/* Hypercall pings of each vCPU during the workload */
#define PINGS 1000
#define PATIENCE 400000000
#define AP_BASE 0x8000
#define LAPIC_ICR_LOW ((volatile uint32_t *)0xfee00300)
#define LAPIC_ICR_HIGH ((volatile uint32_t *)0xfee00310)
#define IPI_ALL_BUT_SELF 0xc0000
#define IPI_INIT 0x4500
#define IPI_STARTUP 0x4600

extern char ap_trampoline[], ap_trampoline_end[];
static long sums[MAX_CPUS];
/* How many of each vCPU's MMIO_LOADS loads returned MMIO_VALUE */
static int mmio_hits[MAX_CPUS];
static int cpus, arrived, finished;

/* Spins until *counter reaches cpus, or gives up; returns its value. */
static int wait_for_all(int *counter)
{
    for (long spins = 0; spins < PATIENCE; spins++) {
        if (__atomic_load_n(counter, __ATOMIC_ACQUIRE) == cpus) {
            break;
        }
    }
    return __atomic_load_n(counter, __ATOMIC_ACQUIRE);
}

static void work(int cpu)
{
    long sum = 0;
    int hits = 0;

    __atomic_add_fetch(&arrived, 1, __ATOMIC_RELEASE);
    wait_for_all(&arrived);
    for (int i = 0; i < ROUNDS; i++) {
        sum += compute(5);
        /* Hypercalls from every vCPU at once; the result is not used. */
        if (i % (ROUNDS / PINGS) == 0) {
            hypercall(HC_PING, cpu, i);
        }
        /* Device accesses from every vCPU at once. */
        if (i % (ROUNDS / MMIO_LOADS) == 0) {
            hits += *UNASSIGNED_REG == MMIO_VALUE;
        }
    }
    sums[cpu] = sum;
    mmio_hits[cpu] = hits;
    __atomic_add_fetch(&finished, 1, __ATOMIC_RELEASE);
}

void ap_main(int cpu)
{
    work(cpu);
}

/* The machine's vCPU count, from fw_cfg (FW_CFG_NB_CPUS). */
static int fw_cfg_cpus(void)
{
    unsigned int low, high;

    outw(0x510, 0x05);
    low = inb(0x511);
    high = inb(0x511);
    return low | high << 8;
}

static void send_ipi(uint32_t command)
{
    *LAPIC_ICR_HIGH = 0;
    *LAPIC_ICR_LOW = IPI_ALL_BUT_SELF | command;
}

static void delay(long n)
{
    for (volatile long i = 0; i < n; i++) {
    }
}

/* Runs work() on every vCPU; returns how many finished it. */
static int run_on_every_cpu(void)
{
    volatile char *dest = (volatile char *)AP_BASE;

    if (cpus > 1) {
        for (char *p = ap_trampoline; p < ap_trampoline_end; p++) {
            *dest++ = *p;
        }
        send_ipi(IPI_INIT);
        delay(10000);
        send_ipi(IPI_STARTUP | AP_BASE >> 12);
    }
    work(0);
    return wait_for_all(&finished);
}

int main(void)
{
    int licensed, finished_cpus;

    wrmsr(0xc0000081, (uint64_t)0x08 << 32);            /* STAR: kernel CS */
    wrmsr(0xc0000082, (uint64_t)(uintptr_t)syscall_entry); /* LSTAR */
    wrmsr(0xc0000084, 0);                               /* FMASK */

    licensed = is_licensed();
    print("is_licensed() = ");
    print_int(licensed);
    print(", its body ran ");
    print_int(body_ran);
    print(" times\n");
    hypercall(HC_TRACE_START, 0, 0);
    for (int i = 1; i <= 3; i++) {
        print("call ");
        print_int(i);
        print(": compute(5) = ");
        print_int(compute(5));
        print("\n");
    }
    hypercall(HC_TRACE_STOP, 0, 0);
    hypercall(HC_LOG, (unsigned long)hypercall_note,
              sizeof(hypercall_note) - 1);
    print("hypercall ping(40, 2) = ");
    print_int((long)hypercall(HC_PING, 40, 2));
    print("\n");
    show();
    print("syscall 7(5) = ");
    print_int(guest_syscall(7, 5));
    print("\n");
    print("unassigned 0xfe000000 = ");
    print_hex(*UNASSIGNED_REG);
    print("\n");
    *LAPIC_TPR = 0x10;
    print("TPR after storing 0x10 = ");
    print_hex(*LAPIC_TPR);
    print("\n");
    *LAPIC_TPR = 0;

    cpus = fw_cfg_cpus();
    if (cpus > MAX_CPUS) {
        print("too many vCPUs\n");
        return 1;
    }
    finished_cpus = run_on_every_cpu();
    for (int cpu = 0; cpu < cpus; cpu++) {
        print("cpu ");
        print_int(cpu);
        print(": ");
        print_int(ROUNDS);
        print(" calls of compute(5) summed to ");
        print_int(sums[cpu]);
        print("\n");
    }
    for (int cpu = 0; cpu < cpus; cpu++) {
        print("cpu ");
        print_int(cpu);
        print(": ");
        print_int(mmio_hits[cpu]);
        print(" of ");
        print_int(MMIO_LOADS);
        print(" loads of 0xfe000000 returned ");
        print_hex(MMIO_VALUE);
        print("\n");
    }
    print("vCPUs that ran the workload: ");
    print_int(finished_cpus);
    print(" of ");
    print_int(cpus);
    print("\n");
    return finished_cpus == cpus ? 0 : 1;
}
