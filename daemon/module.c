/* module.c — loading callback modules: by name, from the module
 * directories only, checked before any of their code runs. */
#include "gsd.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct module *loaded;
static char **dirs;
static size_t ndirs;

void module_set_dirs(const char *colon_list)
{
    for (size_t i = 0; i < ndirs; i++) /* replaces the list: a reload may change it */
        free(dirs[i]);
    ndirs = 0;
    char *copy = xstrndup(colon_list, strlen(colon_list)), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        dirs = xrealloc(dirs, (ndirs + 1) * sizeof *dirs);
        dirs[ndirs++] = xstrndup(d, strlen(d));
    }
    free(copy);
}

/* Checks a descriptor before trusting any of it. */
static const char *check(const gs_module *d, const char *name)
{
    if (d->abi != GS_ABI_VERSION)
        return "built for another module ABI";
    if (d->size < sizeof(gs_module))
        return "descriptor too small";
    if (d->api == NULL)
        return "descriptor has no api slot (declare it with GS_MODULE)";
    if (d->name == NULL || strcmp(d->name, name) != 0)
        return "descriptor name differs from the file name";
    if (d->init == NULL)
        return "no init callback";
    return NULL;
}

/* A file others could write to would let them run code as the daemon. */
static const char *unsafe_file(const char *path, char *why, size_t n)
{
    struct stat st;
    if (stat(path, &st) < 0)
        snprintf(why, n, "%s: %s", path, strerror(errno));
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        snprintf(why, n, "%s is writable by %s; refused (chmod go-w)", path,
                 st.st_mode & S_IWOTH ? "others" : "its group");
    else if (st.st_uid != 0 && st.st_uid != geteuid())
        snprintf(why, n, "%s belongs to uid %d, neither root nor the daemon's; refused", path,
                 (int)st.st_uid);
    else
        return NULL;
    return why;
}

static struct module *load(const char *name, char *err, size_t errlen)
{
    char path[4096];
    size_t i;
    for (i = 0; i < ndirs; i++) {
        snprintf(path, sizeof path, "%s/%s.so", dirs[i], name);
        if (access(path, R_OK) == 0)
            break;
    }
    if (i == ndirs) {
        snprintf(err, errlen, "module %s not found in the module directories", name);
        return NULL;
    }
    if (unsafe_file(path, err, errlen)) {
        log_msg(LOG_ERR, "module %s: %s", name, err);
        return NULL;
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        snprintf(err, errlen, "%s", dlerror());
        log_msg(LOG_ERR, "module %s: cannot load %s", name, err);
        return NULL;
    }
    const gs_module *desc = dlsym(dl, GS_MODULE_SYMBOL);
    const char *why = desc ? check(desc, name) : "no " GS_MODULE_SYMBOL " symbol";
    if (why) {
        snprintf(err, errlen, "%s: %s", path, why);
        log_msg(LOG_ERR, "module %s: refused %s", name, err);
        dlclose(dl);
        return NULL;
    }
    struct module *m = xcalloc(1, sizeof *m);
    m->name = xstrndup(name, strlen(name));
    m->path = xstrndup(path, strlen(path));
    m->dl = dl;
    m->desc = desc;
    *desc->api = &gsd_api;
    HASH_ADD_KEYPTR(hh, loaded, m->name, strlen(m->name), m);
    log_msg(LOG_INFO, "module %s vsn %u loaded from %s", name, desc->vsn, path);
    return m;
}

struct module *module_get(const char *name, char *err, size_t errlen)
{
    struct module *m;
    if (!gsp_module_name_valid(name, strlen(name))) {
        snprintf(err, errlen, "invalid module name");
        return NULL;
    }
    HASH_FIND_STR(loaded, name, m);
    return m ? m : load(name, err, errlen);
}

void module_foreach(void (*fn)(struct module *m, void *arg), void *arg)
{
    struct module *m, *tmp;
    HASH_ITER(hh, loaded, m, tmp)
    fn(m, arg);
}

unsigned module_count(void)
{
    return HASH_COUNT(loaded);
}

void module_unload_all(void)
{
    struct module *m, *tmp;
    HASH_ITER(hh, loaded, m, tmp)
    {
        HASH_DEL(loaded, m);
        dlclose(m->dl);
        free(m->name);
        free(m->path);
        free(m);
    }
    for (size_t i = 0; i < ndirs; i++)
        free(dirs[i]);
    free(dirs);
    dirs = NULL;
    ndirs = 0;
}
