/*
 * harness_proc.c - child processes for tests (see harness.h).
 *
 * A test starts real programs (the services, the CLI, or anything by path)
 * with its own environment additions and a log file under the artifacts
 * directory, then stops them and looks at how they exited. A child is
 * armed with PR_SET_PDEATHSIG before exec so that it cannot outlive the
 * test; the exit handler kills whatever is still running as well.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "harness.h"
#include "harness_int.h"

#define RUN_TIMEOUT_MS  60000
#define STOP_TIMEOUT_MS 10000

extern char **environ;

struct pond_test_proc {
	pid_t pid;
	bool reaped;
	int status; /* shell-style, once reaped */
	char prog[PATH_MAX];
	char log_path[PATH_MAX];
	pond_test_proc *next; /* in live_procs */
};

/* live_procs lists the processes not yet stopped; the lock guards it. */
static pthread_mutex_t procs_lock = PTHREAD_MUTEX_INITIALIZER;
static pond_test_proc *live_procs;

/* decode_status turns a wait status into a shell-style one. */
static int
decode_status(int ws)
{
	if (WIFEXITED(ws)) {
		return (WEXITSTATUS(ws));
	}
	if (WIFSIGNALED(ws)) {
		return (128 + WTERMSIG(ws));
	}
	return (255);
}

void
pond_test_log_path(const char *log_name, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/%s.log", pond_test_artifacts_dir(),
	                 log_name);

	cr_assert(n > 0 && (size_t)n < len, "log path too long");
}

/* resolve_prog writes the path of prog: a bare name is in POND_BIN_DIR. */
static void
resolve_prog(const char *prog, char *path, size_t len)
{
	const char *bindir = getenv("POND_BIN_DIR");
	int n;

	if (strchr(prog, '/') != NULL) {
		n = snprintf(path, len, "%s", prog);
	} else {
		cr_assert(bindir != NULL && *bindir != '\0',
		          "POND_BIN_DIR is not set, so %s cannot be found: "
		          "run the tests through tests/run.sh",
		          prog);
		n = snprintf(path, len, "%s/%s", bindir, prog);
	}
	cr_assert(n > 0 && (size_t)n < len, "program path too long");
	cr_assert(access(path, X_OK) == 0,
	          "%s: %s (is it built? make BUILD=asan test-build)", path,
	          strerror(errno));
}

/* env_key_len returns the length of the name in a "K=V" or "K" entry. */
static size_t
env_key_len(const char *kv)
{
	const char *eq = strchr(kv, '=');

	return (eq != NULL ? (size_t)(eq - kv) : strlen(kv));
}

/* env_overridden reports whether entry kv of environ is replaced or
 * removed by env_kv. */
static bool
env_overridden(const char *kv, const char *const *env_kv)
{
	size_t n = env_key_len(kv);

	for (const char *const *e = env_kv; e != NULL && *e != NULL; e++) {
		if (env_key_len(*e) == n && strncmp(*e, kv, n) == 0) {
			return (true);
		}
	}
	return (false);
}

/* env_build returns the child's environment: the test's own, changed by
 * env_kv. The array is freed with free(); the strings are borrowed. */
static char **
env_build(const char *const *env_kv)
{
	size_t n = 0, extra = 0, i = 0;
	char **envp;

	for (char **e = environ; *e != NULL; e++) {
		n++;
	}
	for (const char *const *e = env_kv; e != NULL && *e != NULL; e++) {
		extra++;
	}
	envp = calloc(n + extra + 1, sizeof(*envp));
	cr_assert(envp != NULL);
	for (char **e = environ; *e != NULL; e++) {
		if (!env_overridden(*e, env_kv)) {
			envp[i++] = *e;
		}
	}
	for (const char *const *e = env_kv; e != NULL && *e != NULL; e++) {
		if (strchr(*e, '=') != NULL) {
			envp[i++] = (char *)*e;
		}
	}
	envp[i] = NULL;
	return (envp);
}

/* log_note appends a line from the harness to a log, so that a log written
 * by several runs of a program says where each begins and ends. */
static void
log_note(const char *log_path, const char *fmt, ...)
{
	FILE *f = fopen(log_path, "a");
	char stamp[32];
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;

	if (f == NULL) {
		return;
	}
	strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime_r(&t, &tm));
	fprintf(f, "=== harness %s: ", stamp);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputs(" ===\n", f);
	fclose(f);
}

/* spawn_child runs in the child between fork and exec, so it makes only
 * async-signal-safe calls: the test process may have threads. */
static void
spawn_child(pid_t parent, int in_fd, int out_fd, int log_fd, int err_fd,
            const char *path, char *const *argv, char *const *envp)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int e;

	/* The child must not outlive the test process; if the parent died
	 * before the death signal was armed, nothing would send it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) {
		_exit(127);
	}
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(log_fd, 2) < 0) {
		goto fail;
	}
	/* Criterion and the shell may have blocked or ignored signals that
	 * the services rely on (SIGTERM for shutdown, SIGPIPE, SIGINT). */
	for (int sig = 1; sig < NSIG; sig++) {
		sigaction(sig, &dfl, NULL);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(path, argv, envp);
fail:
	e = errno;
	if (write(err_fd, &e, sizeof(e)) < 0) {
		_exit(127);
	}
	_exit(127);
}

/* proc_start forks and execs argv with stdout to out_fd (-1: the log). */
static pond_test_proc *
proc_start(const char *const *argv, const char *const *env_kv,
           const char *log_name, int out_fd)
{
	pond_test_proc *proc;
	char **envp;
	int in_fd, log_fd, errpipe[2], child_errno = 0;
	pid_t parent = getpid();
	ssize_t n;

	cr_assert(argv != NULL && argv[0] != NULL, "nothing to spawn");
	harness__register();
	proc = calloc(1, sizeof(*proc));
	cr_assert(proc != NULL);
	resolve_prog(argv[0], proc->prog, sizeof(proc->prog));
	if (log_name == NULL) {
		const char *slash = strrchr(argv[0], '/');

		log_name = slash != NULL ? slash + 1 : argv[0];
	}
	pond_test_log_path(log_name, proc->log_path, sizeof(proc->log_path));

	envp = env_build(env_kv);
	in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	log_fd = open(proc->log_path,
	              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	cr_assert(in_fd >= 0 && log_fd >= 0, "open %s: %s", proc->log_path,
	          strerror(errno));
	/* The child reports a failed exec through this pipe; a successful
	 * exec closes it (O_CLOEXEC), so the parent reads end-of-file. */
	cr_assert(pipe2(errpipe, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));

	log_note(proc->log_path, "start %s (test pid %ld)", proc->prog,
	         (long)parent);
	proc->pid = fork();
	cr_assert(proc->pid >= 0, "fork: %s", strerror(errno));
	if (proc->pid == 0) {
		spawn_child(parent, in_fd, out_fd >= 0 ? out_fd : log_fd,
		            log_fd, errpipe[1], proc->prog,
		            (char *const *)argv, envp);
	}
	close(errpipe[1]);
	close(in_fd);
	close(log_fd);
	free(envp);
	do {
		n = read(errpipe[0], &child_errno, sizeof(child_errno));
	} while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	if (n > 0) {
		waitpid(proc->pid, NULL, 0);
		free(proc);
		cr_assert_fail("cannot run %s: %s", argv[0],
		               strerror(child_errno));
	}

	pthread_mutex_lock(&procs_lock);
	proc->next = live_procs;
	live_procs = proc;
	pthread_mutex_unlock(&procs_lock);
	return (proc);
}

pond_test_proc *
pond_test_spawn_argv(const char *const *argv, const char *const *env_kv,
                     const char *log_name)
{
	return (proc_start(argv, env_kv, log_name, -1));
}

pond_test_proc *
pond_test_spawn(const char *prog, const char *const *env_kv,
                const char *log_name)
{
	const char *argv[] = {prog, NULL};

	return (proc_start(argv, env_kv, log_name, -1));
}

pid_t
pond_test_proc_pid(const pond_test_proc *proc)
{
	return (proc->pid);
}

const char *
pond_test_proc_log(const pond_test_proc *proc)
{
	return (proc->log_path);
}

void
pond_test_kill(pond_test_proc *proc, int sig)
{
	if (!proc->reaped) {
		kill(proc->pid, sig);
	}
}

/* proc_reap collects the process's status if it has exited. */
static bool
proc_reap(pond_test_proc *proc)
{
	int ws;
	pid_t r;

	if (proc->reaped) {
		return (true);
	}
	do {
		r = waitpid(proc->pid, &ws, WNOHANG);
	} while (r < 0 && errno == EINTR);
	if (r == proc->pid) {
		proc->status = decode_status(ws);
		proc->reaped = true;
	} else if (r < 0) {
		/* Someone else reaped it: the status is lost. */
		proc->status = 255;
		proc->reaped = true;
	}
	return (proc->reaped);
}

int
pond_test_wait_exit(pond_test_proc *proc, int timeout_ms, int *status)
{
	int64_t deadline = harness__now_ms() + timeout_ms;

	/* Short sleeps: a poll costs nothing next to what tests wait for. */
	while (!proc_reap(proc)) {
		if (timeout_ms >= 0 && harness__now_ms() >= deadline) {
			return (POND_ETIMEDOUT);
		}
		harness__sleep_ms(5);
	}
	if (status != NULL) {
		*status = proc->status;
	}
	return (0);
}

/* proc_forget removes proc from the processes killed at exit. */
static void
proc_forget(pond_test_proc *proc)
{
	pthread_mutex_lock(&procs_lock);
	for (pond_test_proc **p = &live_procs; *p != NULL; p = &(*p)->next) {
		if (*p == proc) {
			*p = proc->next;
			break;
		}
	}
	pthread_mutex_unlock(&procs_lock);
}

int
pond_test_stop_timeout(pond_test_proc *proc, int timeout_ms)
{
	int status;

	pond_test_kill(proc, SIGTERM);
	if (pond_test_wait_exit(proc, timeout_ms, &status) != 0) {
		log_note(proc->log_path,
		         "no exit %d ms after SIGTERM: SIGKILL", timeout_ms);
		pond_test_kill(proc, SIGKILL);
		(void)pond_test_wait_exit(proc, -1, &status);
	}
	log_note(proc->log_path, "%s stopped, status %d", proc->prog, status);
	proc_forget(proc);
	free(proc);
	return (status);
}

int
pond_test_stop(pond_test_proc *proc)
{
	return (pond_test_stop_timeout(proc, STOP_TIMEOUT_MS));
}

int
pond_test_run(const char *const *argv, const char *const *env_kv,
              const char *log_name, char **out)
{
	pond_test_proc *proc;
	int fds[2] = {-1, -1};
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int64_t deadline = harness__now_ms() + RUN_TIMEOUT_MS;
	int status, left;

	if (out != NULL) {
		cr_assert(pipe2(fds, O_CLOEXEC) == 0, "pipe: %s",
		          strerror(errno));
	}
	proc = proc_start(argv, env_kv, log_name, fds[1]);
	if (out != NULL) {
		close(fds[1]);
		harness__buf_append(&buf, &len, &cap, "", 0);
		for (;;) {
			struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
			char chunk[4096];
			ssize_t n;

			left = (int)(deadline - harness__now_ms());
			if (left <= 0 || poll(&pfd, 1, left) == 0) {
				break;
			}
			n = read(fds[0], chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR) {
				continue;
			}
			if (n <= 0) {
				break;
			}
			harness__buf_append(&buf, &len, &cap, chunk,
			                    (size_t)n);
		}
		close(fds[0]);
	}
	left = (int)(deadline - harness__now_ms());
	if (pond_test_wait_exit(proc, left > 0 ? left : 0, NULL) != 0) {
		const char *prog = argv[0];

		pond_test_stop_timeout(proc, 0);
		free(buf);
		cr_assert_fail("%s did not finish within %d s", prog,
		               RUN_TIMEOUT_MS / 1000);
	}
	status = pond_test_stop(proc);
	if (out != NULL) {
		*out = buf;
	}
	return (status);
}

/* file_read returns the contents of path (malloc'd, NUL-terminated), or
 * NULL if it cannot be read. */
static char *
file_read(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL, chunk[4096];
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		return (NULL);
	}
	harness__buf_append(&buf, &len, &cap, "", 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		harness__buf_append(&buf, &len, &cap, chunk, n);
	}
	fclose(f);
	return (buf);
}

bool
pond_test_log_wait(const char *log_name, const char *needle, int timeout_ms)
{
	char path[PATH_MAX];
	int64_t deadline = harness__now_ms() + timeout_ms;

	pond_test_log_path(log_name, path, sizeof(path));
	for (;;) {
		char *text = file_read(path);
		bool found = text != NULL && strstr(text, needle) != NULL;

		free(text);
		if (found) {
			return (true);
		}
		if (harness__now_ms() >= deadline) {
			return (false);
		}
		harness__sleep_ms(20);
	}
}

void
harness__procs_kill(void)
{
	pthread_mutex_lock(&procs_lock);
	while (live_procs != NULL) {
		pond_test_proc *proc = live_procs;

		live_procs = proc->next;
		if (!proc->reaped) {
			kill(proc->pid, SIGKILL);
			waitpid(proc->pid, NULL, 0);
			log_note(proc->log_path, "%s killed: the test ended",
			         proc->prog);
		}
		free(proc);
	}
	pthread_mutex_unlock(&procs_lock);
}
