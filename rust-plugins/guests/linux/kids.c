/* Part of the Linux test guest's workload (rust-plugins/guests/linux/init):
 * forks N children (argv[1], default 3) that rename themselves with
 * prctl(PR_SET_NAME, "kid-<i>"), print their pid and make one getppid()
 * each, so that the tests can check the pid and the name every syscall
 * of theirs is attributed to. Built static by ci/linux-guest.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;

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
    printf("kids: pid %d done\n", (int)getpid());
    return 0;
}
