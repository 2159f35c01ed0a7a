/*
 * What the plugin tests aim at, shared by the user-mode and the bare-metal
 * guest: a function a hook skips (is_licensed), one whose argument an
 * injector rewrites (compute), and a buffer an injector overwrites
 * (message). noipa keeps every call, and the argument in its register.
 */
#ifndef GUESTS_TARGETS_H
#define GUESTS_TARGETS_H

int body_ran;
char message[32] = "hello";

__attribute__((noipa)) int is_licensed(void)
{
    body_ran++;
    return 0;
}

__attribute__((noipa)) int compute(int x)
{
    return x * 2;
}

/*
 * Hypercalls to the hypercall plugin: CPUID with the number in EAX, the
 * arguments in RBX, RCX, RDX and RSI, the result in RAX. Without the
 * plugin they are plain CPUIDs of leaves nobody uses: the guest gets
 * CPUID's EAX, and prints the same lines either way.
 */
#define HC_PING         0x4c580000
#define HC_LOG          0x4c580001
#define HC_TRACE_START  0x4c580002
#define HC_TRACE_STOP   0x4c580003

static inline unsigned long hypercall(unsigned int num, unsigned long a1,
                                      unsigned long a2)
{
    unsigned long rax = num, rcx = a2, rdx = 0;

    asm volatile("cpuid"
                 : "+a" (rax), "+b" (a1), "+c" (rcx), "+d" (rdx)
                 : "S" (0UL)
                 : "memory");
    return rax;
}

static const char hypercall_note[] = "hello from the guest";

#endif
