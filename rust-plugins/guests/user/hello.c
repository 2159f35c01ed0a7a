/* A small static user-mode guest: a loop, a few syscalls, a result. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    unsigned long sum = 0;

    for (unsigned long i = 1; i <= 100000; i++) {
        sum += i * i % 7;
    }
    printf("pid %d: sum of i*i%%7 for i=1..100000 is %lu\n", (int)getpid(), sum);
    return 0;
}
