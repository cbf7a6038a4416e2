/*
 * check_upgrade.c — hot code upgrade end to end: load, reload and
 * code_change on a real gsd whose module directory is the test's own, so a
 * test can put a new version of a module in place and reload it.
 */
#include "harness.h"
#include <gsd/module.h> /* GS_ABI_VERSION */

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct gsd *D;
static gsc *C;
static char mods[64]; /* the daemon's module directory */

static void setup(void)
{
    snprintf(mods, sizeof mods, "/tmp/gsd-mods-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(mods));
    chmod(mods, 0755);
    char dirs[256];
    snprintf(dirs, sizeof dirs, "%s:%s/test-modules", mods, gsd_build());
    const char *extra[] = {"-M", dirs, NULL};
    D = gsd_start_with(extra);
    C = CLIENT(D);
}

static void teardown(void)
{
    client_close(&C);
    ck_assert_int_eq(gsd_stop(&D), 0);
    DIR *dir = opendir(mods);
    for (struct dirent *e; dir && (e = readdir(dir)) != NULL;)
        if (e->d_name[0] != '.') {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", mods, e->d_name);
            unlink(p);
        }
    if (dir)
        closedir(dir);
    rmdir(mods);
}

/* Copies BUILD/from over MODS/NAME.so in place, as `cp` does: the same
 * path, the same inode, new contents. */
static void install(const char *from, const char *name)
{
    char src[512], dst[512], buf[65536];
    snprintf(src, sizeof src, "%s/%s", gsd_build(), from);
    snprintf(dst, sizeof dst, "%s/%s.so", mods, name);
    int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(in >= 0 && out >= 0, "cannot copy %s to %s", src, dst);
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

static const msgpack_object *reload(const char *module)
{
    gsc_reply *r;
    return OK(gsc_reload(C, module, &r), &r);
}

static const msgpack_object *reload_refused(const char *module, const char *code)
{
    gsc_reply *r;
    return ERR(gsc_reload(C, module, &r), &r, code);
}

/* How many distinct files of that module are mapped in the daemon. */
static int mapped_copies(const char *module)
{
    char path[64], tag[128], line[1024], inodes[64][32];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)D->pid);
    snprintf(tag, sizeof tag, "gsd:%s ", module);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f)) {
        char inode[32];
        if (strstr(line, tag) == NULL || sscanf(line, "%*s %*s %*s %*s %31s", inode) != 1)
            continue;
        int i = 0;
        while (i < n && strcmp(inodes[i], inode) != 0)
            i++;
        if (i == n && n < 64)
            strcpy(inodes[n++], inode);
    }
    fclose(f);
    return n;
}

static int open_fds(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)D->pid);
    DIR *dir = opendir(path);
    int n = 0;
    for (struct dirent *e; dir && (e = readdir(dir)) != NULL;)
        n += e->d_name[0] != '.';
    if (dir)
        closedir(dir);
    return n;
}

/* ---- tests -------------------------------------------------------------------- */

START_TEST(same_path_reload_carries_state)
{
    install("modules/counter.so", "counter");
    START(C, "counter", "a", mp("5"));
    START(C, "counter", "b", mp("-7"));
    START(C, "counter", NULL, mp("40"));
    ck_assert_mp_eq(CALL(C, "a", mp("'increment'")), "6");
    ck_assert_mp_eq(CALL(C, "a", mp("'vsn'")), "1");

    install("modules/upgrade/counter.so", "counter");
    const msgpack_object *res = reload("counter");
    ck_assert_mp_eq(mp_get(res, "name"), "'counter'");
    ck_assert_mp_eq(mp_get(res, "vsn"), "2");
    ck_assert_mp_eq(mp_get(res, "upgraded"), "3");

    ck_assert_mp_eq(CALL(C, "a", mp("'get'")), "6");
    ck_assert_mp_eq(CALL(C, "b", mp("'get'")), "-7");
    ck_assert_mp_eq(CALL(C, "3", mp("'get'")), "40");
    ck_assert_mp_eq(CALL(C, "a", mp("'vsn'")), "2");
    ck_assert_mp_eq(CALL(C, "a", mp("'changes'")), "0"); /* the new field, built by code_change */
    ck_assert_mp_eq(CALL(C, "a", mp("'increment'")), "7");
    ck_assert_mp_eq(CALL(C, "a", mp("'changes'")), "1");

    gsc_reply *r;
    const msgpack_object *mods_now = OK(gsc_modules(C, &r), &r);
    ck_assert_uint_eq(mods_now->via.array.size, 1);
    ck_assert_mp_eq(mp_get(mp_item(mods_now, 0), "vsn"), "2");
    ck_assert_mp_eq(mp_get(OK(gsc_info(C, "a", &r), &r), "vsn"), "2");
}
END_TEST

START_TEST(servers_started_after_a_reload_run_the_new_version)
{
    install("modules/counter.so", "counter");
    START(C, "counter", "old", NULL);
    install("modules/upgrade/counter.so", "counter");
    reload("counter");
    START(C, "counter", "new", mp("3"));
    ck_assert_mp_eq(CALL(C, "new", mp("'vsn'")), "2");
    ck_assert_mp_eq(CALL(C, "new", mp("'changes'")), "0");
    gsc_reply *r;
    ck_assert_mp_eq(mp_get(OK(gsc_load(C, "counter", &r), &r), "vsn"), "2");
}
END_TEST

START_TEST(reload_of_a_module_not_loaded_loads_it)
{
    install("modules/counter.so", "counter");
    const msgpack_object *res = reload("counter");
    ck_assert_mp_eq(mp_get(res, "vsn"), "1");
    ck_assert_mp_eq(mp_get(res, "upgraded"), "0");
    START(C, "counter", "c", NULL);
    ck_assert_mp_eq(CALL(C, "c", mp("'vsn'")), "1");
}
END_TEST

/* Three servers would convert; the fourth refuses: none moves, and the
 * states the first three got were freed (the sanitizer build checks). */
START_TEST(refused_code_change_leaves_every_server_on_the_old_code)
{
    START(C, "versioned", "a", mp("1"));
    START(C, "versioned", "b", mp("2"));
    START(C, "versioned", "c", mp("3"));
    uint64_t bad = START(C, "versioned", "neg", mp("-5"));
    START(C, "versioned", "e", mp("4"));

    /* The test-modules directory comes after the test's own. */
    install("test-modules/v2/versioned.so", "versioned");
    const msgpack_object *why = reload_refused("versioned", "code_change");
    ck_assert_mp_eq(why, "{'id': %u, 'name': 'neg', 'reason': ['negative', -5]}", bad);

    const char *names[] = {"a", "b", "c", "neg", "e"};
    const int values[] = {1, 2, 3, -5, 4};
    for (int i = 0; i < 5; i++) {
        ck_assert_mp_eq(CALL(C, names[i], mp("'vsn'")), "1");
        ck_assert_mp_eq(CALL(C, names[i], mp("'get'")), "%d", values[i]);
    }
    gsc_reply *r;
    ck_assert_mp_eq(mp_get(mp_item(OK(gsc_modules(C, &r), &r), 0), "vsn"), "1");
    START(C, "versioned", "later", NULL);
    ck_assert_mp_eq(CALL(C, "later", mp("'vsn'")), "1");

    /* Fix what it refused: now every server moves. */
    OK(gsc_cast(C, "neg", mp("['set', 5]"), &r), &r);
    ck_assert_mp_eq(CALL(C, "neg", mp("'get'")), "5"); /* the cast has been handled */
    ck_assert_mp_eq(mp_get(reload("versioned"), "upgraded"), "6");
    for (int i = 0; i < 5; i++) {
        ck_assert_mp_eq(CALL(C, names[i], mp("'vsn'")), "2");
        ck_assert_mp_eq(CALL(C, names[i], mp("'from'")), "1");
    }
    ck_assert_mp_eq(CALL(C, "neg", mp("'get'")), "5");
}
END_TEST

START_TEST(code_change_returning_nonsense_refuses_the_reload)
{
    START(C, "versioned", "ok", mp("1"));
    START(C, "versioned", "thirteen", mp("13"));
    install("test-modules/v2/versioned.so", "versioned");
    const msgpack_object *why = reload_refused("versioned", "code_change");
    ck_assert_mp_eq(mp_get(why, "name"), "'thirteen'");
    ck_assert_mp_eq(mp_get(why, "reason"), "'bad_return_value'");
    ck_assert_mp_eq(CALL(C, "ok", mp("'vsn'")), "1");
    ck_assert_mp_eq(CALL(C, "thirteen", mp("'get'")), "13");
}
END_TEST

/* New code without code_change would read the old state as its own: a
 * reload to another state layout is refused, and every server stays. */
START_TEST(reload_to_another_layout_without_code_change_is_refused)
{
    uint64_t a = START(C, "versioned", "a", mp("5"));
    install("test-modules/v3bare/versioned.so", "versioned");
    ck_assert_mp_eq(reload_refused("versioned", "code_change"),
                    "{'id': %u, 'name': 'a', 'reason': ['no_code_change', 1, 3]}", a);
    ck_assert_mp_eq(CALL(C, "a", mp("'vsn'")), "1");
    ck_assert_mp_eq(CALL(C, "a", mp("'get'")), "5");
    install("test-modules/v2/versioned.so", "versioned");
    ck_assert_mp_eq(mp_get(reload("versioned"), "upgraded"), "1");
    install("test-modules/v3bare/versioned.so", "versioned");
    ck_assert_mp_eq(mp_get(reload_refused("versioned", "code_change"), "reason"),
                    "['no_code_change', 2, 3]");
    ck_assert_mp_eq(CALL(C, "a", mp("'vsn'")), "2");
    ck_assert_mp_eq(CALL(C, "a", mp("'get'")), "5");
}
END_TEST

/* A release that keeps the state's layout says so (state_vsn) and takes
 * the servers over without code_change; from another layout it may not. */
START_TEST(a_release_keeping_the_state_vsn_needs_no_code_change)
{
    START(C, "versioned", "a", mp("7"));
    install("test-modules/v3/versioned.so", "versioned"); /* version 2's layout */
    ck_assert_mp_eq(mp_get(reload_refused("versioned", "code_change"), "reason"),
                    "['no_code_change', 1, 3]");
    install("test-modules/v2/versioned.so", "versioned");
    ck_assert_mp_eq(mp_get(reload("versioned"), "upgraded"), "1");
    install("test-modules/v3/versioned.so", "versioned");
    ck_assert_mp_eq(mp_get(reload("versioned"), "upgraded"), "1");
    ck_assert_mp_eq(CALL(C, "a", mp("'vsn'")), "3");
    ck_assert_mp_eq(CALL(C, "a", mp("'get'")), "7");
    ck_assert_mp_eq(CALL(C, "a", mp("'from'")), "1"); /* the state version 2 built */
}
END_TEST

START_TEST(reload_of_a_file_for_another_abi_is_refused)
{
    START(C, "versioned", "v", mp("8"));
    install("test-modules/badabi/versioned.so", "versioned");
    const msgpack_object *why = reload_refused("versioned", "module");
    char both[64];
    snprintf(both, sizeof both, "built for module ABI %d; this daemon runs ABI %d",
             GS_ABI_VERSION + 1, GS_ABI_VERSION);
    ck_assert_msg(why->type == MSGPACK_OBJECT_STR &&
                      memmem(why->via.str.ptr, why->via.str.size, both, strlen(both)) != NULL,
                  "detail names both ABIs: %s", mp_str(why));
    ck_assert_mp_eq(CALL(C, "v", mp("'vsn'")), "1");
    ck_assert_mp_eq(CALL(C, "v", mp("'get'")), "8");
    START(C, "versioned", "w", NULL);
    ck_assert_mp_eq(CALL(C, "w", mp("'vsn'")), "1");
}
END_TEST

START_TEST(reload_of_a_missing_or_broken_file_is_refused)
{
    install("modules/counter.so", "counter");
    START(C, "counter", "c", mp("2"));
    char p[512];
    snprintf(p, sizeof p, "%s/counter.so", mods);
    FILE *f = fopen(p, "w");
    fputs("not an elf file\n", f);
    fclose(f);
    reload_refused("counter", "module");
    unlink(p);
    reload_refused("counter", "module");
    ck_assert_mp_eq(CALL(C, "c", mp("'increment'")), "3");
    reload_refused("../counter", "badarg");
}
END_TEST

START_TEST(a_module_file_others_may_write_is_refused)
{
    install("modules/counter.so", "counter");
    char p[512];
    snprintf(p, sizeof p, "%s/counter.so", mods);
    chmod(p, 0666);
    gsc_reply *r;
    const msgpack_object *why = ERR(gsc_load(C, "counter", &r), &r, "module");
    ck_assert_msg(memmem(why->via.str.ptr, why->via.str.size, "writable", 8) != NULL, "%s",
                  mp_str(why));
    chmod(p, 0644);
    OK(gsc_load(C, "counter", &r), &r);
}
END_TEST

START_TEST(twenty_reloads_leave_one_copy_mapped)
{
    install("modules/counter.so", "counter");
    START(C, "counter", "c", NULL);
    START(C, "counter", "d", mp("100"));
    ck_assert_int_eq(mapped_copies("counter"), 1);
    int fds = open_fds();
    /* 1 -> 2, then 2 -> 2 (its code_change keeps the state): each reload
     * maps the file anew. (2 -> 1 is refused: version 1 has no
     * code_change to take a version 2 state back.) */
    for (int i = 0; i < 20; i++) {
        install("modules/upgrade/counter.so", "counter");
        ck_assert_mp_eq(mp_get(reload("counter"), "upgraded"), "2");
        CALL(C, "c", mp("'increment'"));
    }
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "20");
    ck_assert_mp_eq(CALL(C, "d", mp("'get'")), "100");
    ck_assert_int_eq(mapped_copies("counter"), 1);
    ck_assert_int_eq(open_fds(), fds);
}
END_TEST

/* A client increments in a tight loop while another reloads the counter
 * twenty times: every call is answered, and none is lost. */
START_TEST(calls_during_reloads_are_all_answered)
{
    install("modules/counter.so", "counter");
    START(C, "counter", "c", NULL);
    install("modules/upgrade/counter.so", "counter");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        gsc *rc = gsc_connect(D->sock);
        int bad = rc == NULL;
        for (int i = 0; i < 20 && !bad; i++) {
            gsc_reply *r = NULL;
            bad = gsc_reload(rc, "counter", &r) != GSC_OK;
            gsc_reply_destroy(&r);
            usleep(2000);
        }
        gsc_close(&rc);
        _exit(bad);
    }
    int64_t n = 0, until = now_ms() + 20000;
    int status = -1;
    while (waitpid(pid, &status, WNOHANG) == 0 && now_ms() < until)
        ck_assert_mp_eq(CALL(C, "c", mp("'increment'")), "%l", ++n);
    if (now_ms() >= until) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "every reload succeeded");
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "%l", n);
    ck_assert_mp_eq(CALL(C, "c", mp("'vsn'")), "2");
    fprintf(stderr, "calls_during_reloads: %lld calls answered during 20 reloads\n", (long long)n);
}
END_TEST

START_TEST(gsctl_load_reload_and_modules)
{
    install("modules/counter.so", "counter");
    char *out, *err;
    ck_assert_int_eq(run_gsctl(D, &out, &err, "load", "counter", NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"name\":\"counter\",\"vsn\":1"));
    ck_assert_int_eq(run_gsctl(D, &out, &err, "start", "counter", "c", "1", NULL), 0);
    install("modules/upgrade/counter.so", "counter");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "reload", "counter", NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"upgraded\":1"));
    ck_assert_ptr_nonnull(strstr(out, "\"vsn\":2"));
    ck_assert_int_eq(run_gsctl(D, &out, &err, "modules", NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"vsn\":2"));
    ck_assert_int_eq(run_gsctl(D, &out, &err, "reload", "nosuch", NULL), 1);
    ck_assert_ptr_nonnull(strstr(err, "module: "));
}
END_TEST

static Suite *upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("reload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, same_path_reload_carries_state);
    tcase_add_test(tc, servers_started_after_a_reload_run_the_new_version);
    tcase_add_test(tc, reload_of_a_module_not_loaded_loads_it);
    tcase_add_test(tc, refused_code_change_leaves_every_server_on_the_old_code);
    tcase_add_test(tc, code_change_returning_nonsense_refuses_the_reload);
    tcase_add_test(tc, reload_to_another_layout_without_code_change_is_refused);
    tcase_add_test(tc, a_release_keeping_the_state_vsn_needs_no_code_change);
    tcase_add_test(tc, reload_of_a_file_for_another_abi_is_refused);
    tcase_add_test(tc, reload_of_a_missing_or_broken_file_is_refused);
    tcase_add_test(tc, a_module_file_others_may_write_is_refused);
    tcase_add_test(tc, twenty_reloads_leave_one_copy_mapped);
    tcase_add_test(tc, calls_during_reloads_are_all_answered);
    tcase_add_test(tc, gsctl_load_reload_and_modules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(upgrade_suite());
}
