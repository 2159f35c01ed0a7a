/*
 * Benchmark workload: argv[1] (default 10 million) CPUID instructions with
 * EAX = 0x4c5a0000, the number hypercall_bench.c handles; deterministic,
 * no syscalls inside.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000000UL;
    unsigned long sum = 0;

    for (unsigned long i = 0; i < n; i++) {
        unsigned long rax = 0x4c5a0000, rbx = i, rcx = 0, rdx = 0;

        asm volatile("cpuid" : "+a"(rax), "+b"(rbx), "+c"(rcx), "+d"(rdx));
        sum += rax;
    }
    printf("%lu\n", sum);
    return 0;
}
