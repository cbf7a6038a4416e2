/* names.c — error codes, name rules and the socket path, shared by all. */
#include "gsp.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

static const char *const code_names[GSP_CODE_COUNT] = {
    [GSP_OK] = "ok",
    [GSP_BADARG] = "badarg",
    [GSP_UNKNOWN_METHOD] = "unknown_method",
    [GSP_NOPROC] = "noproc",
    [GSP_TIMEOUT] = "timeout",
    [GSP_EXIT] = "exit",
    [GSP_ALREADY_STARTED] = "already_started",
    [GSP_INIT_STOP] = "init_stop",
    [GSP_IGNORE] = "ignore",
    [GSP_MODULE] = "module",
    [GSP_CODE_CHANGE] = "code_change",
    [GSP_UNSUPPORTED] = "unsupported",
    [GSP_UNAUTHORIZED] = "unauthorized",
    [GSP_TOO_LARGE] = "too_large",
    [GSP_PROTOCOL] = "protocol",
    [GSP_SHUTTING_DOWN] = "shutting_down",
    [GSP_OVERLOADED] = "overloaded",
    [GSP_NODEDOWN] = "nodedown",
};

const char *gsp_code_name(enum gsp_code code)
{
    return (unsigned)code < GSP_CODE_COUNT ? code_names[code] : "unknown";
}

/* Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF. */
size_t gsp_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else
        return 0;
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static bool utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0, k; i < len; i += k)
        if ((k = gsp_utf8_seq(s + i, len - i)) == 0)
            return false;
    return true;
}

bool gsp_name_valid(const char *s, size_t len)
{
    if (len < 1 || len > GSP_NAME_MAX)
        return false;
    bool digits = true;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0')
            return false; /* C strings end there: two names would collide */
        digits = digits && s[i] >= '0' && s[i] <= '9';
    }
    return !digits && utf8_valid((const unsigned char *)s, len);
}

bool gsp_module_name_valid(const char *s, size_t len)
{
    if (len < 1 || len > GSP_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

int gsp_socket_path(const char *explicit_path, char *out, size_t n)
{
    const char *env = getenv("GSD_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int len;
    if (explicit_path && *explicit_path)
        len = snprintf(out, n, "%s", explicit_path);
    else if (env && *env)
        len = snprintf(out, n, "%s", env);
    else if (geteuid() == 0)
        len = snprintf(out, n, "/run/gsd/gsd.sock");
    else if (xdg && *xdg)
        len = snprintf(out, n, "%s/gsd.sock", xdg);
    else
        len = snprintf(out, n, "/tmp/gsd-%u/gsd.sock", (unsigned)geteuid());
    struct sockaddr_un sun;
    if (len < 0 || (size_t)len >= n || (size_t)len >= sizeof sun.sun_path)
        return -1;
    return 0;
}
