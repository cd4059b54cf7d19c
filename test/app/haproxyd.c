/* haproxyd.c - see haproxyd.h. */
#define _GNU_SOURCE
#include "haproxyd.h"

#include <stdio.h>
#include <string.h>

#include "support/mx_proc.h"

/* the running haproxys, found by the pid the callers hold */
#define MAX_PROCS 8
static struct mx_proc g_procs[MAX_PROCS];

int haproxyd_free_port(void)
{
    return mx_proc_free_port();
}

pid_t haproxyd_start(const char *dir, const char *cfg)
{
    char path[512];
    snprintf(path, sizeof path, "%s/haproxy.cfg", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(cfg, f);
    fclose(f);
    struct mx_proc *p = NULL;
    for (int i = 0; i < MAX_PROCS && !p; i++)
        if (g_procs[i].pid <= 0)
            p = &g_procs[i];
    if (!p)
        return -1;
    mx_proc_release(p);
    const char *argv[] = {"/usr/sbin/haproxy", "-db", "-f", path, NULL};
    struct mx_proc_opts o = {.argv = argv, .out = MX_PROC_NULL, .err = MX_PROC_NULL};
    return mx_proc_start(p, &o) == 0 ? p->pid : -1;
}

void haproxyd_stop(pid_t *pid)
{
    if (*pid <= 0)
        return;
    for (int i = 0; i < MAX_PROCS; i++)
        if (g_procs[i].pid == *pid)
            mx_proc_release(&g_procs[i]);
    *pid = 0;
}
