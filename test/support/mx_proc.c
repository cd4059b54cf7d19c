/* mx_proc.c - start, read, signal, reap and clean up test processes
 * (mx_proc.h). One registry of what is running and which temporary
 * directories exist, emptied by one atexit hook. */
#define _GNU_SOURCE
#include "mx_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mx_testutil.h"

#define MAX_PROCS 64
#define MAX_DIRS 32

/* copies, not pointers: a failed assertion leaves the callers' structs
 * behind. All three under g_mu. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t g_pids[MAX_PROCS];
static char g_dirs[MAX_DIRS][256];
static bool g_hooked;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup_all(void)
{
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_PROCS; i++)
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGCONT); /* a paused child dies only once resumed */
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
            g_pids[i] = 0;
        }
    for (int i = 0; i < MAX_DIRS; i++)
        if (g_dirs[i][0]) {
            nftw(g_dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
            g_dirs[i][0] = '\0';
        }
    pthread_mutex_unlock(&g_mu);
}

/* under g_mu */
static void hook(void)
{
    if (!g_hooked) {
        atexit(cleanup_all);
        g_hooked = true;
    }
}

static void track(pid_t pid, bool add)
{
    pthread_mutex_lock(&g_mu);
    hook();
    int i = 0;
    while (i < MAX_PROCS && !(add ? g_pids[i] == 0 : g_pids[i] == pid))
        i++;
    if (i < MAX_PROCS)
        g_pids[i] = add ? pid : 0;
    pthread_mutex_unlock(&g_mu);
    if (add && i == MAX_PROCS)
        fprintf(stderr, "mx_proc: more than %d processes; pid %d is not tracked\n", MAX_PROCS,
                (int)pid);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* an unlinked temporary file: (write fd, read fd) */
static int capture_file(int *w, int *r)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/mx-proc-log.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    *w = mkstemp(path);
    if (*w < 0)
        return -1;
    *r = open(path, O_RDONLY | O_CLOEXEC);
    unlink(path);
    if (*r < 0) {
        close_fd(w);
        return -1;
    }
    return 0;
}

/* the child's end of one stream, opened in the parent (-1: inherit) */
static int child_end(enum mx_proc_io io, int fd_no, const char *file, int pipefd[2], int *capw,
                     int *capr)
{
    switch (io) {
    case MX_PROC_INHERIT:
        return -1;
    case MX_PROC_NULL:
        return open("/dev/null", fd_no == 0 ? O_RDONLY : O_WRONLY);
    case MX_PROC_PIPE:
        if (fd_no == 2 || pipe2(pipefd, O_CLOEXEC) != 0)
            return -2; /* a stderr pipe nobody drains would block the child: capture it */
        return fd_no == 0 ? pipefd[0] : pipefd[1];
    case MX_PROC_CAPTURE:
        if (*capw < 0 && capture_file(capw, capr) != 0)
            return -2;
        return dup(*capw);
    case MX_PROC_FILE:
        return file ? open(file, O_WRONLY | O_CREAT | O_APPEND, 0644) : -2;
    }
    return -2;
}

int mx_proc_start(struct mx_proc *p, const struct mx_proc_opts *o)
{
    memset(p, 0, sizeof *p);
    p->in = p->out = p->log = -1;
    const char *prog = o->path ? o->path : o->argv[0];
    const char *slash = strrchr(prog, '/');
    snprintf(p->name, sizeof p->name, "%s", slash ? slash + 1 : prog);
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, capw = -1, capr = -1;
    int c_in = child_end(o->in, 0, o->file, pin, &capw, &capr);
    int c_out = child_end(o->out, 1, o->file, pout, &capw, &capr);
    int c_err = child_end(o->err, 2, o->file, NULL, &capw, &capr);
    pid_t pid = -1;
    if (c_in != -2 && c_out != -2 && c_err != -2)
        pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (c_in >= 0)
            dup2(c_in, 0);
        if (c_out >= 0)
            dup2(c_out, 1);
        if (c_err >= 0)
            dup2(c_err, 2);
        for (int *fd = (int[]){c_in, c_out, c_err, capw}, i = 0; i < 4; i++)
            if (fd[i] > 2)
                close(fd[i]);
        for (int i = 0; o->env && o->env[i]; i++)
            putenv((char *)o->env[i]);
        for (int i = 0; o->env_more && o->env_more[i]; i++)
            putenv((char *)o->env_more[i]);
        if (o->child_setup)
            o->child_setup(o->child_arg);
        execvp(prog, (char *const *)o->argv);
        _exit(127);
    }
    /* the parent keeps only its own ends */
    for (int *fd = (int[]){c_in, c_out, c_err}, i = 0; i < 3; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    close_fd(&capw);
    if (pid < 0) { /* the child ends are closed: close the parent's */
        close_fd(&pin[1]);
        close_fd(&pout[0]);
        close_fd(&capr);
        fprintf(stderr, "mx_proc: cannot start %s: %s\n", p->name, strerror(errno));
        return -1;
    }
    p->pid = pid;
    p->in = pin[1];
    p->out = pout[0];
    p->log = capr;
    p->owns_fds = true;
    track(pid, true);
    return 0;
}

int mx_proc_read_line(struct mx_proc *p, const char *needle, char *line, size_t cap, int timeout_ms)
{
    int64_t dl = tu_now_ms() + timeout_ms;
    if (line && cap)
        line[0] = '\0';
    for (;;) {
        /* whole lines already buffered */
        char *nl;
        while ((nl = memchr(p->obuf, '\n', p->olen))) {
            size_t ll = (size_t)(nl - p->obuf);
            *nl = '\0';
            bool hit = !needle || strstr(p->obuf, needle);
            if (hit && line && cap)
                snprintf(line, cap, "%s", p->obuf);
            memmove(p->obuf, nl + 1, p->olen - ll - 1);
            p->olen -= ll + 1;
            if (hit)
                return 0;
        }
        if (p->olen + 1 >= sizeof p->obuf)
            p->olen = 0; /* a line longer than the buffer: never a ready line */
        int left = (int)(dl - tu_now_ms());
        struct pollfd pfd = {.fd = p->out, .events = POLLIN};
        if (p->out < 0 || left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        ssize_t r = read(p->out, p->obuf + p->olen, sizeof p->obuf - 1 - p->olen);
        if (r <= 0)
            break;
        p->olen += (size_t)r;
    }
    if (line && cap)
        snprintf(line, cap, "%.*s", (int)p->olen, p->obuf);
    return -1;
}

size_t mx_proc_log(const struct mx_proc *p, char *buf, size_t cap)
{
    if (!cap)
        return 0;
    size_t len = 0;
    while (p->log >= 0 && len + 1 < cap) {
        ssize_t r = pread(p->log, buf + len, cap - 1 - len, (off_t)len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return len;
}

bool mx_proc_wait_log(const struct mx_proc *p, const char *needle, int timeout_ms)
{
    enum { CAP = 1 << 20 };
    char *buf = malloc(CAP);
    if (!buf) {
        fprintf(stderr, "mx_proc: out of memory\n");
        abort();
    }
    int64_t dl = tu_now_ms() + timeout_ms;
    bool found = false;
    for (;;) {
        mx_proc_log(p, buf, CAP);
        if ((found = strstr(buf, needle) != NULL) || tu_now_ms() >= dl)
            break;
        usleep(5000); /* polling interval */
    }
    free(buf);
    return found;
}

static void reaped(struct mx_proc *p, int st)
{
    track(p->pid, false);
    p->pid = 0;
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

bool mx_proc_running(struct mx_proc *p)
{
    int st;
    if (p->pid <= 0)
        return false;
    if (waitpid(p->pid, &st, WNOHANG) != p->pid)
        return true;
    reaped(p, st);
    return false;
}

int mx_proc_wait(struct mx_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    int64_t dl = tu_now_ms() + timeout_ms;
    while (mx_proc_running(p)) {
        if (tu_now_ms() >= dl)
            return -1;
        usleep(2000); /* polling interval: waitpid has no timeout */
    }
    return p->status;
}

int mx_proc_signal(struct mx_proc *p, int sig)
{
    return p->pid > 0 && kill(p->pid, sig) == 0 ? 0 : -1;
}

void mx_proc_kill(struct mx_proc *p)
{
    int st;
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGCONT);
    kill(p->pid, SIGKILL);
    if (waitpid(p->pid, &st, 0) == p->pid)
        reaped(p, st);
    else {
        track(p->pid, false);
        p->pid = 0;
    }
}

int mx_proc_stop(struct mx_proc *p, int sig, int timeout_ms)
{
    if (mx_proc_signal(p, sig) != 0)
        return -1;
    if (mx_proc_wait(p, timeout_ms) >= 0)
        return p->status;
    mx_proc_kill(p);
    return -1;
}

void mx_proc_release(struct mx_proc *p)
{
    mx_proc_kill(p);
    if (p->owns_fds) {
        close_fd(&p->in);
        close_fd(&p->out);
        close_fd(&p->log);
    }
    p->owns_fds = false;
    p->olen = 0;
}

int mx_proc_run(char *out, size_t cap, int timeout_ms, const char *fmt, ...)
{
    char line[8192] = "exec ";
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + 5, sizeof line - 5, fmt, ap);
    va_end(ap);
    if (cap)
        out[0] = '\0';
    if (n < 0 || (size_t)n >= sizeof line - 5)
        return -1;
    const char *argv[] = {"/bin/sh", "-c", line, NULL};
    struct mx_proc_opts o = {.argv = argv, .out = MX_PROC_CAPTURE};
    struct mx_proc p;
    if (mx_proc_start(&p, &o) != 0)
        return -1;
    int st = mx_proc_wait(&p, timeout_ms);
    mx_proc_log(&p, out, cap);
    mx_proc_release(&p);
    return st;
}

int mx_proc_tmpdir(const char *parent, const char *tag, char *out, size_t cap)
{
    const char *tmp = parent ? parent : getenv("TMPDIR");
    int rc = -1;
    pthread_mutex_lock(&g_mu);
    hook();
    int slot = 0;
    while (slot < MAX_DIRS && g_dirs[slot][0])
        slot++;
    if (slot < MAX_DIRS &&
        (size_t)snprintf(out, cap, "%s/mx-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag) < cap &&
        mkdtemp(out)) {
        snprintf(g_dirs[slot], sizeof g_dirs[slot], "%s", out);
        rc = 0;
    } else if (cap) {
        out[0] = '\0';
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

void mx_proc_rmdir(const char *dir)
{
    if (!dir || !dir[0])
        return;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < MAX_DIRS; i++)
        if (!strcmp(g_dirs[i], dir))
            g_dirs[i][0] = '\0';
    pthread_mutex_unlock(&g_mu);
}

int mx_proc_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    if (fd < 0)
        return 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

const char *mx_proc_bin(const char *prog, char *out, size_t cap)
{
    const char *d = getenv("MX_BIN_DIR");
    snprintf(out, cap, "%s/%s", d && *d ? d : ".", prog);
    return out;
}

const char *mx_proc_shared_dir(void)
{
    const char *d = getenv("MX_SHARED_DIR");
    return d && *d ? d : "../shared";
}
