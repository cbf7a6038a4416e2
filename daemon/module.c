/* module.c — loading callback modules: by name, from the module
 * directories only, checked before any of their code runs.
 *
 * Each load copies the file into a sealed memory file and maps that copy.
 * dlopen of a path already loaded returns the old handle, so a reload of
 * the same path needs a new name; and since the daemon never maps the file
 * on disk, overwriting it (cp new.so counter.so) cannot change code that
 * is running. A loaded version lives until it is neither current nor
 * run by any server. */
#include "gsd.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static struct module *loaded; /* the current version of each module, by name */
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
    if (d->abi != GS_ABI_VERSION) {
        static char why[96];
        snprintf(why, sizeof why, "built for module ABI %u; this daemon runs ABI %u", d->abi,
                 GS_ABI_VERSION);
        return why;
    }
    if (d->size < offsetof(gs_module, state_vsn)) /* the first release's descriptor ended there */
        return "descriptor too small";
    if (d->api == NULL)
        return "descriptor has no api slot (declare it with GS_MODULE)";
    if (d->name == NULL || strcmp(d->name, name) != 0)
        return "descriptor name differs from the file name";
    if (d->init == NULL)
        return "no init callback";
    if (d->code_change && d->free_state == NULL)
        return "code_change without free_state";
    return NULL;
}

uint32_t desc_state_vsn(const gs_module *d)
{
    bool has = d->size >= offsetof(gs_module, state_vsn) + sizeof d->state_vsn;
    return has && d->state_vsn ? d->state_vsn : d->vsn;
}

uint32_t module_state_vsn(const struct module *m)
{
    return desc_state_vsn(m->desc);
}

/* A file others could write to would let them run code as the daemon. */
static const char *check_file(const struct stat *st, char *why, size_t n)
{
    if (!S_ISREG(st->st_mode))
        snprintf(why, n, "not a regular file");
    else if (st->st_mode & (S_IWGRP | S_IWOTH))
        snprintf(why, n, "writable by %s; refused (chmod go-w)",
                 st->st_mode & S_IWOTH ? "others" : "its group");
    else if (st->st_uid != 0 && st->st_uid != geteuid())
        snprintf(why, n, "belongs to uid %d, neither root nor the daemon's; refused",
                 (int)st->st_uid);
    else
        return NULL;
    return why;
}

/* The module's file, opened from the first directory that has it. */
static int open_file(const char *name, char *path, size_t pathlen, char *err, size_t errlen)
{
    for (size_t i = 0; i < ndirs; i++) {
        snprintf(path, pathlen, "%s/%s.so", dirs[i], name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != ENOENT) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    snprintf(err, errlen, "module %s not found in the module directories", name);
    return -1;
}

/* Copies all of in to out: the bytes copied, or -1 with errno. */
static off_t copy_all(int in, int out)
{
    char buf[65536];
    off_t total = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0)
            return total;
        if (n < 0 && errno != EINTR)
            return -1;
        for (ssize_t off = 0, w; off < n; off += w)
            if ((w = write(out, buf + off, (size_t)(n - off))) < 0) {
                if (errno != EINTR)
                    return -1;
                w = 0;
            }
        total += n > 0 ? n : 0;
    }
}

/* The ELF headers of the copy, against its size: the loader maps each
 * segment whole, and touching a page past the end of the file is SIGBUS,
 * so a file cut short (one still being copied into place) must be refused
 * here, not found out by the first callback. NULL if it holds, else why. */
static const char *check_elf(int fd, uint64_t size, char *why, size_t n)
{
    ElfW(Ehdr) eh;
    if (size < sizeof eh || pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh) {
        snprintf(why, n, "%llu bytes, shorter than an ELF header", (unsigned long long)size);
        return why;
    }
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        return "no ELF magic";
    if (eh.e_ident[EI_CLASS] != (__ELF_NATIVE_CLASS == 64 ? ELFCLASS64 : ELFCLASS32))
        return __ELF_NATIVE_CLASS == 64 ? "not ELF class 64" : "not ELF class 32";
    if (eh.e_type != ET_DYN)
        return "not of type ET_DYN";
    /* Each table within the file; counts are 16 bits and sizes checked, so
     * the products cannot overflow. */
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 || eh.e_phoff > size ||
        (uint64_t)eh.e_phnum * eh.e_phentsize > size - eh.e_phoff)
        return "program header table missing or past the end of the file";
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        off_t at = (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph);
        if (pread(fd, &ph, sizeof ph, at) != (ssize_t)sizeof ph)
            return "program header unreadable";
        if (ph.p_filesz > 0 && (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)) {
            snprintf(why, n, "%s %u ends at byte %llu, past the file's %llu",
                     ph.p_type == PT_LOAD ? "PT_LOAD segment" : "segment", i,
                     (unsigned long long)ph.p_offset + ph.p_filesz, (unsigned long long)size);
            return why;
        }
    }
    /* Last: a file cut short loses it first, the segments say more. */
    if (eh.e_shoff != 0 &&
        (eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shoff > size ||
         (uint64_t)(eh.e_shnum ? eh.e_shnum : 1) * eh.e_shentsize > size - eh.e_shoff))
        return "section header table past the end of the file";
    return NULL;
}

/* A private copy of the file, as a memory file; -1 with err on failure. */
static int copy_file(int fd, const char *name, const char *path, char *err, size_t errlen)
{
    struct stat st;
    char text[128];
    const char *why = fstat(fd, &st) < 0 ? strerror(errno) : check_file(&st, text, sizeof text);
    if (why) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    char tag[GSP_NAME_MAX + 8];
    snprintf(tag, sizeof tag, "gsd:%s", name);
    int mfd = memfd_create(tag, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    off_t copied = copy_all(fd, mfd);
    /* Sealed: not even our own uid can change the code once it is mapped. */
    if (copied != st.st_size ||
        fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
        snprintf(err, errlen, "%s: copying: %s", path,
                 copied < 0 || copied == st.st_size ? strerror(errno) : "the file changed size");
        close(mfd);
        return -1;
    }
    /* On the sealed copy: what is checked is what dlopen maps. */
    if ((why = check_elf(mfd, (uint64_t)copied, text, sizeof text)) != NULL) {
        snprintf(err, errlen, "%s: truncated or not an ELF shared object (%s)", path, why);
        close(mfd);
        return -1;
    }
    return mfd;
}

struct module *module_open(const char *name, char *err, size_t errlen)
{
    char path[4096];
    if (!gsp_module_name_valid(name, strlen(name))) {
        snprintf(err, errlen, "invalid module name");
        return NULL;
    }
    int fd = open_file(name, path, sizeof path, err, errlen);
    int mfd = fd < 0 ? -1 : copy_file(fd, name, path, err, errlen);
    if (fd >= 0)
        close(fd);
    if (mfd < 0) {
        log_msg(LOG_ERR, "module %s: %s", name, err);
        return NULL;
    }
    /* The memory file stays open while it is mapped: its /proc name is
     * then unique among the loaded objects. */
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", mfd);
    void *dl = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        snprintf(err, errlen, "%s: %s", path, dlerror());
        log_msg(LOG_ERR, "module %s: cannot load %s", name, err);
        close(mfd);
        return NULL;
    }
    const gs_module *desc = dlsym(dl, GS_MODULE_SYMBOL);
    const char *why = desc ? check(desc, name) : "no " GS_MODULE_SYMBOL " symbol";
    if (why) {
        snprintf(err, errlen, "%s: %s", path, why);
        log_msg(LOG_ERR, "module %s: refused %s", name, err);
        dlclose(dl);
        close(mfd);
        return NULL;
    }
    struct module *m = xcalloc(1, sizeof *m);
    m->name = xstrndup(name, strlen(name));
    m->path = xstrndup(path, strlen(path));
    m->dl = dl;
    m->fd = mfd;
    m->desc = desc;
    *desc->api = &gsd_api;
    log_msg(LOG_INFO, "module %s vsn %u loaded from %s", name, desc->vsn, path);
    return m;
}

static void unload(struct module *m)
{
    log_msg(LOG_DEBUG, "module %s vsn %u unloaded", m->name, m->desc->vsn);
    if (m->dl) /* none for a built-in module (module_add_builtin) */
        dlclose(m->dl);
    if (m->fd >= 0)
        close(m->fd);
    free(m->name);
    free(m->path);
    free(m);
}

struct module *module_add_builtin(const gs_module *desc, char *err, size_t errlen)
{
    const char *name = desc->name ? desc->name : "";
    const char *why = !gsp_module_name_valid(name, strlen(name)) ? "invalid module name"
                      : module_find(name)                        ? "a module of that name is loaded"
                                                                 : check(desc, name);
    if (why) {
        snprintf(err, errlen, "%s: %s", name, why);
        return NULL;
    }
    struct module *m = xcalloc(1, sizeof *m);
    m->name = xstrndup(name, strlen(name));
    m->path = xstrndup("(built in)", strlen("(built in)"));
    m->fd = -1;
    m->desc = desc;
    *desc->api = &gsd_api;
    module_install(m);
    return m;
}

void module_install(struct module *m)
{
    struct module *old;
    HASH_FIND_STR(loaded, m->name, old);
    if (old) {
        HASH_DEL(loaded, old);
        metrics_carry(m, old); /* its histograms go on */
        old->current = false;
        module_release(old);
    }
    m->current = true;
    HASH_ADD_KEYPTR(hh, loaded, m->name, strlen(m->name), m);
}

void module_release(struct module *m)
{
    if (!m->current && m->servers == 0)
        unload(m);
}

struct module *module_find(const char *name)
{
    struct module *m;
    HASH_FIND_STR(loaded, name, m);
    return m;
}

struct module *module_get(const char *name, char *err, size_t errlen)
{
    struct module *m = module_find(name);
    if (m == NULL && (m = module_open(name, err, errlen)) != NULL)
        module_install(m);
    return m;
}

bool module_run(const gs_module *d, gs_server *self, enum msg_kind kind, const gs_value *v,
                gs_from from, void **state, gs_result *r)
{
    switch (kind) {
    case MSG_INIT:
        *r = d->init(self, v, state);
        return true;
    case MSG_CALL:
        *r = d->handle_call ? d->handle_call(self, v, from, state)
                            : gs_stop(gs_str("undef_handle_call"));
        return true;
    case MSG_CAST:
        *r = d->handle_cast ? d->handle_cast(self, v, state) : gs_stop(gs_str("undef_handle_cast"));
        return true;
    case MSG_INFO:
        if (d->handle_info == NULL)
            return false;
        *r = d->handle_info(self, v, state);
        return true;
    case MSG_CONTINUE:
        *r = d->handle_continue ? d->handle_continue(self, v, state)
                                : gs_stop(gs_str("undef_handle_continue"));
        return true;
    case MSG_HIBERNATE: /* the host runs d->hibernate, as for any result that asks */
        *r = gs_noreply_hibernate();
        return true;
    default:
        return false;
    }
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
        unload(m);
    }
    for (size_t i = 0; i < ndirs; i++)
        free(dirs[i]);
    free(dirs);
    dirs = NULL;
    ndirs = 0;
}
