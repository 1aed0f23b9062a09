// The task sandbox launcher: clone() a child into new mount and UTS namespaces (and a new PID
// namespace when asked), move it into the task's named network namespace, give it its own
// /etc files by bind mounts, put it in its cgroups, and exec the task's command. Written in C
// because everything between clone() and execve() must be async-signal-safe; no Swift
// package does this (runc's nsexec is the same dance). A failing step reports its errno and
// its number through a close-on-exec pipe, so the parent learns why; a successful exec
// closes the pipe with nothing written. In a PID namespace of its own the launched process
// stays as the namespace's init (tini's job, `docker run --init`): it mounts a /proc of the
// namespace, forks the command, forwards every signal to it, reaps orphans, and exits with
// the command's status. A PID 1 without handlers would ignore the stop signal.
#define _GNU_SOURCE
#include "CShoal.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define SANDBOX_STACK (256 * 1024)

struct sandbox_child {
    const shoal_sandbox_spec *spec;
    int report_fd;
};

static void fail(int report_fd, int step) {
    int words[2] = {errno, step};
    ssize_t ignored = write(report_fd, words, sizeof words);
    (void)ignored;
    _exit(127);
}

static int write_all(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t length = strlen(text);
    ssize_t written = write(fd, text, length);
    int saved = errno;
    close(fd);
    errno = saved;
    return written == (ssize_t)length ? 0 : -1;
}

// The namespace's init: the command runs as its child; signals are taken synchronously
// (all blocked, sigwaitinfo), so a signal sent before the child exists is not lost.
static void run_as_init(const shoal_sandbox_spec *spec, int report) {
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, NULL) < 0) fail(report, 1);
    pid_t command = fork();
    if (command < 0) fail(report, 12);
    if (command == 0) {
        sigset_t none;
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) fail(report, 1);
        execvpe(spec->argv[0], spec->argv, spec->envp);
        fail(report, 10);
    }
    // The command's exec (or its failure report) closes the pipe for the parent.
    close(report);
    for (;;) {
        siginfo_t info;
        int signal_number = sigwaitinfo(&all, &info);
        if (signal_number < 0) continue;
        if (signal_number != SIGCHLD) {
            kill(command, signal_number);
            continue;
        }
        for (;;) {
            int status;
            pid_t reaped = waitpid(-1, &status, WNOHANG);
            if (reaped <= 0) break;
            if (reaped == command) _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
    }
}

static int sandbox_main(void *argument) {
    struct sandbox_child *child = argument;
    const shoal_sandbox_spec *spec = child->spec;
    int report = child->report_fd;
    // The parent blocked every signal around clone(); the task starts with none blocked.
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) fail(report, 1);
    for (int i = 0; i < spec->cgroup_count; i++) {
        if (write_all(spec->cgroup_procs[i], "0") < 0) fail(report, 2);
    }
    if (spec->netns_fd >= 0 && setns(spec->netns_fd, CLONE_NEWNET) < 0) fail(report, 3);
    // Private mounts: the bind mounts below stay inside this task.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail(report, 4);
    for (int i = 0; i < spec->bind_count; i++) {
        if (mount(spec->bind_sources[i], spec->bind_targets[i], NULL, MS_BIND, NULL) < 0) fail(report, 5);
    }
    if (spec->new_pid_namespace && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) fail(report, 11);
    if (spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0) fail(report, 6);
    if (dup2(spec->stdin_fd, 0) < 0 || dup2(spec->stdout_fd, 1) < 0 || dup2(spec->stderr_fd, 2) < 0) fail(report, 7);
    if (spec->workdir && chdir(spec->workdir) < 0) fail(report, 8);
    if (setsid() < 0) fail(report, 9);
    if (spec->new_pid_namespace) run_as_init(spec, report);
    execvpe(spec->argv[0], spec->argv, spec->envp);
    fail(report, 10);
    return 127;
}

pid_t shoal_sandbox_spawn(const shoal_sandbox_spec *spec, int *error_out, int *step_out) {
    int report[2];
    *error_out = 0;
    *step_out = 0;
    if (pipe2(report, O_CLOEXEC) < 0) {
        *error_out = errno;
        return -1;
    }
    char *stack = malloc(SANDBOX_STACK);
    if (!stack) {
        *error_out = ENOMEM;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    struct sandbox_child child = {spec, report[1]};
    int flags = CLONE_NEWNS | CLONE_NEWUTS | SIGCHLD;
    if (spec->new_pid_namespace) flags |= CLONE_NEWPID;
    // Signals blocked across clone(), so no handler of the parent runs in the child before it
    // resets its mask.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = clone(sandbox_main, stack + SANDBOX_STACK, flags, &child);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(report[1]);
    if (pid < 0) {
        *error_out = clone_errno;
        close(report[0]);
        free(stack);
        return -1;
    }
    int words[2];
    ssize_t got;
    do {
        got = read(report[0], words, sizeof words);
    } while (got < 0 && errno == EINTR);
    close(report[0]);
    free(stack);
    if (got == (ssize_t)sizeof words) {
        *error_out = words[0];
        *step_out = words[1];
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -1;
    }
    return pid;
}
