/* Part of the Linux test guest's workload (rust-plugins/guests/linux/init),
 * built static by ci/linux-guest.sh, so that the tests can check the pid
 * and the name each syscall is attributed to, and the process list:
 *
 * 1. forks N children (argv[1], default 3) that rename themselves with
 *    prctl(PR_SET_NAME, "kid-<i>"), print their pid and parent's, exit;
 * 2. starts a thread that renames itself "kids-thread" and prints its tid;
 * 3. while that thread waits, runs "/bin/ps -o pid,ppid,comm" (busybox),
 *    between the lines "ps: begin" and "ps: end". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int release[2], ready[2];

static void *thread(void *arg)
{
    char byte;

    (void)arg;
    prctl(PR_SET_NAME, "kids-thread", 0, 0, 0);
    printf("kids-thread: tid %ld pid %d\n", (long)syscall(SYS_gettid), (int)getpid());
    fflush(stdout);
    if (write(ready[1], "r", 1) != 1) {
        perror("write");
    }
    /* Alive until ps has run. */
    if (read(release[0], &byte, 1) != 1) {
        perror("read");
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    pthread_t tid;

    for (int i = 1; i <= n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            char name[16];
            snprintf(name, sizeof(name), "kid-%d", i);
            prctl(PR_SET_NAME, name, 0, 0, 0);
            printf("%s: pid %d ppid %d\n", name, (int)getpid(), (int)getppid());
            fflush(stdout);
            _exit(0);
        }
    }
    while (wait(NULL) > 0) {
    }
    printf("kids: pid %d\n", (int)getpid());
    fflush(stdout);

    if (pipe(release) || pipe(ready) || pthread_create(&tid, NULL, thread, NULL)) {
        perror("thread");
        return 1;
    }
    /* Wait until the thread has renamed itself and printed. */
    char byte;
    if (read(ready[0], &byte, 1) != 1) {
        perror("read");
        return 1;
    }

    puts("ps: begin");
    fflush(stdout);
    pid_t ps = fork();
    if (ps == 0) {
        execl("/bin/ps", "/bin/ps", "-o", "pid,ppid,comm", (char *)NULL);
        perror("exec /bin/ps");
        _exit(127);
    }
    waitpid(ps, NULL, 0);
    puts("ps: end");
    fflush(stdout);

    if (write(release[1], "x", 1) != 1) {
        perror("write");
    }
    pthread_join(tid, NULL);
    printf("kids: done\n");
    return 0;
}
