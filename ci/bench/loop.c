/*
 * Benchmark workload: a fixed number of iterations of a small loop
 * (argv[1], default 100 million), deterministic, no syscalls inside.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long n = 100000000UL;
    unsigned long x = 0;

    if (argc > 2) {
        fprintf(stderr, "usage: %s [ITERATIONS]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;

        errno = 0;
        n = strtoul(argv[1], &end, 10);
        if (errno || end == argv[1] || *end || argv[1][0] == '-') {
            fprintf(stderr, "%s: ITERATIONS must be a non-negative decimal "
                    "number, not '%s'\n", argv[0], argv[1]);
            return 2;
        }
    }
    for (unsigned long i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + i;
    }
    printf("%lu\n", x);
    return 0;
}
