/* mysqld.c - start, kill, restart and remove a real MariaDB server for the
 * MySQL tests (see mysqld.h). */
#define _GNU_SOURCE
#include "mysqld.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <mysql.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mx_testutil.h"

#define PASSWORD "mx-test-pw"
/* run argv with stdout and stderr appended to logpath */
static int spawn(struct mx_proc *p, const char *const argv[], const char *logpath)
{
    struct mx_proc_opts o = {
        .argv = argv, .out = MX_PROC_FILE, .err = MX_PROC_FILE, .file = logpath};
    return mx_proc_start(p, &o);
}

static void show_log(const struct mysqld *m)
{
    char path[128], buf[2048];
    snprintf(path, sizeof(path), "%s/err.log", m->dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    lseek(fd, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        fprintf(stderr, "mysqld: tail of %s:\n%s\n", path, buf);
    }
}

static MYSQL *root_conn(struct mysqld *m, unsigned timeout_s)
{
    MYSQL *my = mysql_init(NULL);
    if (!my)
        return NULL;
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s);
    if (!mysql_real_connect(my, NULL, "root", NULL, NULL, 0, m->sock, 0)) {
        mysql_close(my);
        return NULL;
    }
    return my;
}

static int launch(struct mysqld *m)
{
    char a_data[128], a_port[32], a_sock[128], a_pid[128], a_err[128], a_tmp[96];
    snprintf(a_data, sizeof(a_data), "--datadir=%s/data", m->dir);
    snprintf(a_port, sizeof(a_port), "--port=%d", m->port);
    snprintf(a_sock, sizeof(a_sock), "--socket=%s", m->sock);
    snprintf(a_pid, sizeof(a_pid), "--pid-file=%s/mysqld.pid", m->dir);
    snprintf(a_err, sizeof(a_err), "--log-error=%s/err.log", m->dir);
    snprintf(a_tmp, sizeof(a_tmp), "--tmpdir=%s", m->dir);
    const char *argv[] = {"mariadbd",
                          "--no-defaults",
                          a_data,
                          a_port,
                          a_sock,
                          a_pid,
                          a_err,
                          a_tmp,
                          "--bind-address=127.0.0.1",
                          "--skip-name-resolve",
                          "--skip-log-bin",
                          "--innodb-buffer-pool-size=16M",
                          "--innodb-log-file-size=4M",
                          "--innodb-flush-log-at-trx-commit=2",
                          "--max-connections=64",
                          geteuid() == 0 ? "--user=root" : "--skip-ssl",
                          NULL};
    char logp[128];
    snprintf(logp, sizeof(logp), "%s/stdout.log", m->dir);
    mx_proc_release(&m->proc); /* the previous life's, after a kill or stop */
    if (spawn(&m->proc, argv, logp) != 0)
        return -1;
    m->pid = m->proc.pid;
    long long deadline = tu_now_ms() + 30000;
    while (tu_now_ms() < deadline) {
        if (!mx_proc_running(&m->proc)) {
            fprintf(stderr, "mysqld: mariadbd exited during start\n");
            m->pid = 0;
            show_log(m);
            return -1;
        }
        MYSQL *my = root_conn(m, 1);
        if (my) {
            mysql_close(my);
            return 0;
        }
        usleep(50000);
    }
    fprintf(stderr, "mysqld: not ready after 30 s\n");
    show_log(m);
    mysqld_kill(m);
    return -1;
}

int mysqld_root_exec(struct mysqld *m, const char *sql)
{
    MYSQL *my = root_conn(m, 2);
    if (!my)
        return -1;
    int rc = mysql_query(my, sql) == 0 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "mysqld: '%s': %s\n", sql, mysql_error(my));
    else {
        MYSQL_RES *r = mysql_store_result(my);
        if (r)
            mysql_free_result(r);
    }
    mysql_close(my);
    return rc;
}

long long mysqld_root_int(struct mysqld *m, const char *sql)
{
    long long v = -1;
    MYSQL *my = root_conn(m, 2);
    if (!my)
        return -1;
    if (mysql_query(my, sql) == 0) {
        MYSQL_RES *r = mysql_store_result(my);
        MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
        if (row && row[0])
            v = atoll(row[0]);
        if (r)
            mysql_free_result(r);
    } else {
        fprintf(stderr, "mysqld: '%s': %s\n", sql, mysql_error(my));
    }
    mysql_close(my);
    return v;
}

int mysqld_start(struct mysqld *m)
{
    memset(m, 0, sizeof(*m));
    mysql_library_init(0, NULL, NULL);
    if (mx_proc_tmpdir(NULL, "mysqld", m->dir, sizeof m->dir) != 0)
        return -1;
    snprintf(m->sock, sizeof(m->sock), "%s/sock", m->dir);

    char a_data[128], a_tmp[128], logp[128];
    snprintf(a_data, sizeof(a_data), "--datadir=%s/data", m->dir);
    /* its own tmpdir: bootstraps running at once in a shared /tmp remove
     * each other's temporary tables and fail */
    snprintf(a_tmp, sizeof(a_tmp), "--tmpdir=%s", m->dir);
    snprintf(logp, sizeof(logp), "%s/install.log", m->dir);
    const char *iargv[] = {"mariadb-install-db",
                           "--no-defaults",
                           a_data,
                           a_tmp,
                           "--skip-test-db",
                           "--auth-root-authentication-method=normal",
                           geteuid() == 0 ? "--user=root" : "--skip-name-resolve",
                           "--innodb-buffer-pool-size=16M",
                           "--innodb-log-file-size=4M",
                           NULL};
    struct mx_proc inst;
    int st = spawn(&inst, iargv, logp) == 0 ? mx_proc_wait(&inst, 120000) : -1;
    mx_proc_release(&inst);
    if (st != 0) {
        fprintf(stderr, "mysqld: mariadb-install-db failed (see %s)\n", logp);
        return -1;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        m->port = mx_proc_free_port();
        if (m->port > 0 && launch(m) == 0)
            break;
        m->port = 0;
    }
    if (!m->pid)
        return -1;
    if (mysqld_root_exec(m,
                         "CREATE DATABASE mx CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci") ||
        mysqld_root_exec(m, "CREATE USER 'mx'@'127.0.0.1' IDENTIFIED BY '" PASSWORD "'") ||
        mysqld_root_exec(m, "GRANT ALL PRIVILEGES ON mx.* TO 'mx'@'127.0.0.1'")) {
        mysqld_kill(m);
        return -1;
    }
    snprintf(m->url, sizeof(m->url), "mysql://mx:" PASSWORD "@127.0.0.1:%d/mx", m->port);
    snprintf(m->bad_url, sizeof(m->bad_url), "mysql://mx:wrong@127.0.0.1:%d/mx", m->port);
    return 0;
}

int mysqld_kill(struct mysqld *m)
{
    if (m->proc.pid <= 0)
        return -1;
    mx_proc_kill(&m->proc);
    m->pid = 0;
    return 0;
}

int mysqld_stop(struct mysqld *m)
{
    if (m->proc.pid <= 0)
        return -1;
    mx_proc_stop(&m->proc, SIGTERM, 10000);
    m->pid = 0;
    return 0;
}

int mysqld_restart(struct mysqld *m)
{
    if (m->pid > 0)
        return -1;
    return launch(m);
}

void mysqld_destroy(struct mysqld *m)
{
    mx_proc_release(&m->proc);
    m->pid = 0;
    mx_proc_rmdir(m->dir);
    m->dir[0] = '\0';
}
