/* haproxyd.c - see haproxyd.h. */
#define _GNU_SOURCE
#include "haproxyd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 8
static pid_t g_pids[MAX_PROCS];

static void kill_all(void)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (g_pids[i] > 0)
            kill(g_pids[i], SIGKILL);
}

int haproxyd_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

pid_t haproxyd_start(const char *dir, const char *cfg)
{
    static int hooked;
    char path[512];
    snprintf(path, sizeof path, "%s/haproxy.cfg", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(cfg, f);
    fclose(f);
    int slot = -1;
    for (int i = 0; i < MAX_PROCS && slot < 0; i++)
        if (g_pids[i] <= 0)
            slot = i;
    if (slot < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl("/usr/sbin/haproxy", "haproxy", "-db", "-f", path, (char *)NULL);
        _exit(127);
    }
    g_pids[slot] = pid;
    if (!hooked) {
        atexit(kill_all);
        hooked = 1;
    }
    return pid;
}

void haproxyd_stop(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    for (int i = 0; i < MAX_PROCS; i++)
        if (g_pids[i] == *pid)
            g_pids[i] = 0;
    *pid = 0;
}
