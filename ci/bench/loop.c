/*
 * Benchmark workload: a fixed number of iterations of a small loop
 * (argv[1], default 100 million), deterministic, no syscalls inside.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000000UL;
    unsigned long x = 0;

    for (unsigned long i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + i;
    }
    printf("%lu\n", x);
    return 0;
}
