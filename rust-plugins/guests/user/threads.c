/* Two guest threads, for tests/tests/lifecycle.rs: the worker (vCPU 1)
 * makes one syscall, in whose plugin callback the plugin sleeps, while the
 * main thread (vCPU 0) runs guest code and makes syscalls. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static volatile unsigned long sink;

static void *worker(void *arg)
{
    (void)arg;
    getppid();
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    for (int i = 0; i < 200; i++) {
        for (int j = 0; j < 200000; j++) {
            sink += j; /* guest code: lets QEMU's safe work run */
        }
        usleep(5000); /* syscalls on vCPU 0 */
    }
    pthread_join(t, NULL);
    puts("guest: done");
    return 0;
}
