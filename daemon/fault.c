/* fault.c — what a crash in module code leaves behind: one line naming
 * the module, the server and the callback.
 *
 * A server that is not isolated runs its module inside the daemon: a
 * crash there ends the daemon. fault_init makes that end legible. A fatal
 * signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) writes one line to
 * stderr and is raised again with its default action, so the daemon dies
 * of it (a core, systemd's view); a stack overflow too, the handler
 * running on a stack of its own. An exit() that is not the daemon's own
 * return from main (fault_exiting) writes one line and ends the daemon
 * with FAULT_EXIT_STATUS instead of the module's status. */
#include "gsd.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FAULT_EXIT_STATUS 70 /* EX_SOFTWARE: something but main called exit() */
#define NAME_MAX_SHOWN 100   /* a server's name is cut there in the line */

const char *const callback_names[CB_COUNT] = {
    [CB_NONE] = "-",
    [CB_INIT] = "init",
    [CB_HANDLE_CALL] = "handle_call",
    [CB_HANDLE_CAST] = "handle_cast",
    [CB_HANDLE_INFO] = "handle_info",
    [CB_TERMINATE] = "terminate",
    [CB_FORMAT_STATE] = "format_state",
    [CB_CODE_CHANGE] = "code_change",
    [CB_HIBERNATE] = "hibernate",
    [CB_HANDLE_CONTINUE] = "handle_continue",
    [CB_FREE_STATE] = "free_state",
};

const enum callback msg_callbacks[MSG_KINDS] = {[MSG_INIT] = CB_INIT,
                                                [MSG_CALL] = CB_HANDLE_CALL,
                                                [MSG_CAST] = CB_HANDLE_CAST,
                                                [MSG_INFO] = CB_HANDLE_INFO,
                                                [MSG_STOP] = CB_TERMINATE,
                                                [MSG_STATE] = CB_FORMAT_STATE,
                                                [MSG_CONTINUE] = CB_HANDLE_CONTINUE,
                                                [MSG_HIBERNATE] = CB_HIBERNATE};

volatile struct running running;

static volatile sig_atomic_t orderly; /* main is returning: exit() is the daemon's own */
static pid_t daemon_pid;              /* a forked child's exit is its own business */
static bool journal;                  /* under systemd: a "<2>" (critical) prefix */

/* A line built without malloc or stdio: everything below runs in a signal
 * handler or in exit(), and may only call what is async-signal-safe. */
struct line {
    char buf[512];
    size_t len;
};

static void put(struct line *l, const char *s, size_t max)
{
    for (size_t i = 0; s[i] && i < max && l->len < sizeof l->buf - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        l->buf[l->len++] = c < 0x20 || c == 0x7f ? '?' : (char)c; /* cannot split the line */
    }
}

static void put_str(struct line *l, const char *s)
{
    put(l, s, sizeof l->buf);
}

static void put_int(struct line *l, long long n)
{
    char digits[24];
    size_t i = sizeof digits;
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    digits[--i] = '\0';
    do
        digits[--i] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (n < 0)
        digits[--i] = '-';
    put_str(l, digits + i);
}

/* " in handle_call of server 3 (name, module probe)", or " outside any
 * module callback". running is plain memory: the server it names is
 * alive while its callback runs. */
static void put_running(struct line *l)
{
    const struct server *s = running.server;
    enum callback cb = running.cb;
    if (cb <= CB_NONE || cb >= CB_COUNT || s == NULL) {
        put_str(l, " outside any module callback");
        return;
    }
    put_str(l, " in ");
    put_str(l, callback_names[cb]);
    put_str(l, " of server ");
    put_int(l, (long long)s->id);
    put_str(l, " (");
    put(l, s->name ? s->name : "-", NAME_MAX_SHOWN);
    put_str(l, ", module ");
    put(l, s->mod && s->mod->name ? s->mod->name : "?", NAME_MAX_SHOWN);
    put_str(l, ")");
}

static void put_start(struct line *l)
{
    l->len = 0;
    put_str(l, journal ? "<2>gsd: " : "gsd: ");
}

/* Writes the line whole, waiting a little for a full pipe (log.c made
 * stderr non-blocking); gives up rather than hang a dying daemon. */
static void emit(struct line *l)
{
    l->buf[l->len++] = '\n';
    int saved = errno;
    for (size_t off = 0, tries = 0; off < l->len && tries < 20;) {
        ssize_t k = write(2, l->buf + off, l->len - off);
        if (k > 0) {
            off += (size_t)k;
        } else if (k < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = 2, .events = POLLOUT};
            poll(&p, 1, 100);
            tries++;
        } else if (k == 0 || errno != EINTR) {
            break;
        }
    }
    errno = saved;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGABRT:
        return "SIGABRT";
    default:
        return "signal";
    }
}

static void on_fatal(int sig)
{
    struct line l;
    put_start(&l);
    put_str(&l, "fatal ");
    put_str(&l, signal_name(sig));
    put_running(&l);
    emit(&l);
    /* SA_RESETHAND put the default action back. The signal is blocked
     * while this runs: raised again, it kills the daemon once unblocked
     * (a fault would also recur on return, but abort() and kill would not). */
    raise(sig);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    _exit(128 + sig); /* not reached */
}

static void on_exit_called(int status, void *arg)
{
    (void)arg;
    if (orderly || getpid() != daemon_pid)
        return;
    struct line l;
    put_start(&l);
    put_str(&l, running.cb != CB_NONE ? "a module called exit(" : "exit(");
    put_int(&l, status);
    put_str(&l, running.cb != CB_NONE ? ")" : ") called");
    put_running(&l);
    put_str(&l, ": the daemon ends");
    emit(&l);
    /* Nothing else of exit() runs: atexit handlers and stdio are the
     * daemon's, and its state is whatever the module left it in. */
    _exit(FAULT_EXIT_STATUS);
}

void fault_init(void)
{
    daemon_pid = getpid();
    journal = getenv("JOURNAL_STREAM") != NULL;
    /* Its own stack: a handler on the stack that overflowed would fault
     * again at once and die without a word. */
    long min = sysconf(_SC_SIGSTKSZ);
    size_t size = min > 65536 ? (size_t)min : 65536;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack != MAP_FAILED) {
        stack_t ss = {.ss_sp = stack, .ss_size = size};
        if (sigaltstack(&ss, NULL) < 0)
            log_msg(LOG_WARN, "sigaltstack: %s: a stack overflow will die unlogged",
                    strerror(errno));
    }
    struct sigaction sa = {.sa_handler = on_fatal, .sa_flags = SA_ONSTACK | SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    on_exit(on_exit_called, NULL);
}

void fault_exiting(void)
{
    orderly = 1;
}
