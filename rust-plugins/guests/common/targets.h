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

#endif
