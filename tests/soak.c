/*
 * soak.c — `make soak`: mixed calls, casts, starts, stops, monitors and
 * reconnects for SOAK_SECONDS (default 60), then the daemon's RSS and open
 * descriptors must be back to where they were after a warm-up round.
 * Not part of `make check`.
 */
#include "harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n - 2;
}

/* One round: a few clients come, work, and go. */
static void round_of_work(struct gsd *d, int round)
{
    gsc *c = CLIENT(d);
    char name[32];
    snprintf(name, sizeof name, "c%d", round);
    gsc_reply *r;
    uint64_t id = START_OPTS(c, "counter", name, mp("%d", round), mp("{'link': true}"));
    gsc_start(c, "probe", "p", NULL, NULL, &r); /* or already_started */
    gsc_reply_destroy(&r);
    for (int i = 0; i < 50; i++) {
        CALL(c, name, mp("'increment'"));
        OK(gsc_cast(c, name, mp("['add', 2]"), &r), &r);
        CALL(c, "p", mp("['echo', %d]", i));
    }
    gsc_monitor(c, id_str(id), &r);
    gsc_reply_destroy(&r);
    struct raw *w = RAW_CONNECT(d);
    for (int i = 0; i < 100; i++)
        RAW_NOTIFY(w, "cast", mp("[%s, 'increment']", name));
    RAW_REQUEST(w, 1, "call", mp("[%s, 'get', nil]", name));
    RAW_RECV(w, 10000);
    raw_close(&w);
    if (round % 3 == 0)
        OK(gsc_stop(c, "p", NULL, 10000, &r), &r);
    if (round % 2 == 0)
        OK(gsc_stop(c, name, NULL, 10000, &r), &r);
    client_close(&c); /* a linked counter still running stops now */
}

START_TEST(soak)
{
    const char *env = getenv("SOAK_SECONDS");
    int seconds = env ? atoi(env) : 60;
    struct gsd *d = gsd_start();
    for (int i = 0; i < 20; i++) /* warm-up: the allocator's pools, the modules loaded */
        round_of_work(d, i);
    sleep_ms(200);
    long rss0 = rss_kib(d->pid);
    int fds0 = fd_count(d->pid);
    int64_t end = now_ms() + seconds * 1000LL;
    int rounds = 0;
    while (now_ms() < end)
        round_of_work(d, rounds++);
    /* Quiet again: every linked server stopped, every connection gone. */
    gsc *c = CLIENT(d);
    gsc_reply *r;
    ck_assert(WAIT_UNTIL(5000, (OK(gsc_which(c, &r), &r)->via.array.size <= 1)));
    client_close(&c);
    sleep_ms(200);
    long rss = rss_kib(d->pid);
    int fds = fd_count(d->pid);
    fprintf(stderr,
            "soak: %d rounds in %d s; daemon RSS %ld KiB after warm-up, %ld KiB at the end; "
            "fds %d then %d\n",
            rounds, seconds, rss0, rss, fds0, fds);
    ck_assert_int_eq(fds, fds0);
    ck_assert_int_le(rss, rss0 + rss0 / 10 + 512); /* back to its level: within 10% + 512 KiB */
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("soak");
    TCase *tc = tcase_create("soak");
    const char *env = getenv("SOAK_SECONDS");
    tcase_set_timeout(tc, (env ? atoi(env) : 60) + 120);
    tcase_add_test(tc, soak);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
