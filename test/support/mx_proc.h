/* mx_proc.h - the one way system tests start, watch and end processes.
 *
 * Every harness (mxnode, mxstub, cl_node, redis-server, redis-sentinel,
 * mariadbd, haproxy) starts its program through mx_proc_start: the child
 * dies with the test (PR_SET_PDEATHSIG), its stdout and stderr go where the
 * caller says (a pipe to read a ready line from, an unlinked temporary file
 * read back as the process's log, a named file, or /dev/null), and the
 * process is registered so that an atexit hook kills whatever is still
 * running and removes the temporary directories made with mx_proc_tmpdir,
 * even when a cmocka assertion longjmp'd out of the test (the registry
 * holds copies, never pointers into the tests' stacks).
 *
 * The registry is locked, so a helper thread may run mx_proc_run while the
 * test's thread starts and stops processes; one struct mx_proc belongs to
 * one thread. Nothing here blocks longer than the timeout it is given.
 */
#ifndef MX_TEST_PROC_H
#define MX_TEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Where one of the child's standard streams goes. */
enum mx_proc_io {
    MX_PROC_INHERIT = 0, /* the test's own */
    MX_PROC_NULL,        /* /dev/null */
    MX_PROC_PIPE,        /* stdin and stdout only: p->in, mx_proc_read_line */
    MX_PROC_CAPTURE,     /* an unlinked temporary file: mx_proc_log (stdout and stderr share
                            one when both capture) */
    MX_PROC_FILE,        /* opts.file, appended (stdout and stderr) */
};

struct mx_proc_opts {
    const char *path;            /* the program: a path, or a name looked up in PATH;
                                    NULL: argv[0] */
    const char *const *argv;     /* its arguments, argv[0] first */
    const char *const *env;      /* "K=V" strings set in the child over the test's
                                    environment, in order; may be NULL */
    const char *const *env_more; /* more, set after env (a harness's defaults
                                    in env, its caller's settings here) */
    enum mx_proc_io in, out, err;
    const char *file;               /* MX_PROC_FILE's path */
    void (*child_setup)(void *arg); /* runs in the child just before exec; may be NULL */
    void *child_arg;
};

struct mx_proc {
    pid_t pid;       /* 0 when not running (never started, or reaped) */
    int status;      /* once reaped: the exit code (0-255) or 128 + the signal */
    int in;          /* write end of its stdin (MX_PROC_PIPE), else -1 */
    int out;         /* read end of its stdout (MX_PROC_PIPE), else -1 */
    int log;         /* read fd of its captured output (MX_PROC_CAPTURE), else -1 */
    bool owns_fds;   /* in, out and log are p's (false in a zeroed struct: fd 0 is not ours) */
    char name[32];   /* for messages: argv[0]'s last component */
    char obuf[4096]; /* stdout read ahead of the line mx_proc_read_line returned */
    size_t olen;
};

/* mx_proc_start - fork and exec o->argv with the given streams. Returns 0
 * with p running, or -1 (p->pid 0; nothing left open). exec failing in
 * the child shows as exit status 127. */
int mx_proc_start(struct mx_proc *p, const struct mx_proc_opts *o);

/* mx_proc_read_line - read p's stdout pipe until a complete line containing
 * needle (any line when NULL) arrived; that line, without its newline, into
 * line (cap bytes, may be NULL). Lines before it are skipped; bytes after it
 * are kept for the next call. Returns 0, or -1 on timeout or EOF (line then
 * holds what came, for a message). */
int mx_proc_read_line(struct mx_proc *p, const char *needle, char *line, size_t cap,
                      int timeout_ms);

/* mx_proc_log - p's captured output so far (from its start) into buf, NUL
 * terminated; returns its length. Works after p exited too, until
 * mx_proc_release. */
size_t mx_proc_log(const struct mx_proc *p, char *buf, size_t cap);

/* mx_proc_wait_log - poll p's captured output until it contains needle;
 * true if it did within timeout_ms. */
bool mx_proc_wait_log(const struct mx_proc *p, const char *needle, int timeout_ms);

/* mx_proc_running - false once p exited (it is then reaped: p->status set,
 * p->pid 0). */
bool mx_proc_running(struct mx_proc *p);

/* mx_proc_wait - wait up to timeout_ms for p to exit; returns p->status, or
 * -1 on timeout (p still running) or when p was not running. */
int mx_proc_wait(struct mx_proc *p, int timeout_ms);

/* mx_proc_signal - send sig (SIGSTOP and SIGCONT pause and resume it).
 * Returns 0 or -1 (not running). */
int mx_proc_signal(struct mx_proc *p, int sig);

/* mx_proc_stop - send sig, wait up to timeout_ms, then SIGKILL. Returns the
 * exit status, or -1 if it had to be killed or was not running. The pipes
 * and the log stay readable until mx_proc_release. */
int mx_proc_stop(struct mx_proc *p, int sig, int timeout_ms);

/* mx_proc_kill - SIGKILL (after SIGCONT, should it be paused) and reap. */
void mx_proc_kill(struct mx_proc *p);

/* mx_proc_release - kill p if still running and close its pipes and log.
 * Harmless on a zeroed struct mx_proc and on one already released. */
void mx_proc_release(struct mx_proc *p);

/* mx_proc_run - run the shell command line fmt (printf-style; "exec " is
 * put before it, so the program itself dies with the test) to completion;
 * its stdout into out (cap bytes, NUL terminated; stderr stays the test's
 * unless the line redirects it). Returns its exit status, or -1 when it
 * did not end within timeout_ms (it is killed). */
int mx_proc_run(char *out, size_t cap, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* mx_proc_tmpdir - mkdtemp <parent>/mx-<tag>-XXXXXX into out (parent NULL:
 * $TMPDIR, or /tmp without it); the atexit hook removes it unless
 * mx_proc_rmdir did. 0 or -1. */
int mx_proc_tmpdir(const char *parent, const char *tag, char *out, size_t cap);

/* mx_proc_rmdir - remove dir and everything in it, and forget it. */
void mx_proc_rmdir(const char *dir);

/* mx_proc_free_port - a loopback TCP port free right now (0 on failure). */
int mx_proc_free_port(void);

/* mx_proc_bin - $MX_BIN_DIR/prog (./prog without MX_BIN_DIR) into out. */
const char *mx_proc_bin(const char *prog, char *out, size_t cap);

/* mx_proc_shared_dir - $MX_SHARED_DIR, or ../shared. */
const char *mx_proc_shared_dir(void);

#endif
