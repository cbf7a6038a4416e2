/* json.c — JSON text to msgpack objects and back, exactly; see json.h. */
#include "json.h"
#include "gsp.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Allocates in zone or ends the process. */
static void *zalloc(msgpack_zone *z, size_t n, bool align)
{
    void *p =
        align ? msgpack_zone_malloc(z, n ? n : 1) : msgpack_zone_malloc_no_align(z, n ? n : 1);
    if (p == NULL)
        gsp_oom(n); /* out of memory ends the process */
    return p;
}

/* A str object holding a copy of s[0..n) in zone. */
static void make_str(msgpack_zone *z, const char *s, size_t n, msgpack_object *o)
{
    char *p = zalloc(z, n, false);
    memcpy(p, s, n);
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = p;
    o->via.str.size = (uint32_t)n;
}

void json_mp_from_json(const json_t *j, msgpack_zone *z, msgpack_object *o)
{
    json_t *jj = (json_t *)j; /* jansson's iterators take non-const */
    memset(o, 0, sizeof *o);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(j);
        msgpack_object_kv *kv = zalloc(z, n * sizeof *kv, true);
        size_t i = 0;
        for (void *it = json_object_iter(jj); it && i < n;
             it = json_object_iter_next(jj, it), i++) {
            make_str(z, json_object_iter_key(it), json_object_iter_key_len(it), &kv[i].key);
            json_mp_from_json(json_object_iter_value(it), z, &kv[i].val);
        }
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.ptr = kv;
        o->via.map.size = (uint32_t)i;
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        msgpack_object *items = zalloc(z, n * sizeof *items, true);
        for (size_t i = 0; i < n; i++)
            json_mp_from_json(json_array_get(j, i), z, &items[i]);
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.ptr = items;
        o->via.array.size = (uint32_t)n;
        break;
    }
    case JSON_STRING:
        make_str(z, json_string_value(j), json_string_length(j), o);
        break;
    case JSON_INTEGER: {
        json_int_t v = json_integer_value(j);
        if (v >= 0) {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = (uint64_t)v;
        } else {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = (int64_t)v;
        }
        break;
    }
    case JSON_REAL:
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = json_is_true(j);
        break;
    case JSON_NULL:
    default:
        o->type = MSGPACK_OBJECT_NIL;
        break;
    }
}

/* A bare decimal that fits a uint64 but not jansson's long long. */
static bool big_uint(const char *text, uint64_t *v)
{
    const char *p = text + strspn(text, " \t\n\r");
    size_t n = strspn(p, "0123456789");
    if (n == 0 || p[n + strspn(p + n, " \t\n\r")] != '\0' || (p[0] == '0' && n > 1))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

bool json_mp_arg(const char *text, msgpack_zone *z, msgpack_object *out, char *errbuf,
                 size_t errlen)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (j) {
        json_mp_from_json(j, z, out);
        json_decref(j);
        return true;
    }
    uint64_t v;
    if (big_uint(text, &v)) {
        memset(out, 0, sizeof *out);
        out->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        out->via.u64 = v;
        return true;
    }
    /* Valid JSON with a number we cannot hold is not text to send as is. */
    if (json_error_code(&err) == json_error_numeric_overflow) {
        snprintf(errbuf, errlen, "a number in %s is out of range (64-bit integers, doubles)", text);
        return false;
    }
    /* Nor is text that starts as JSON does: a typo, not a string. */
    char first = text[strspn(text, " \t\n\r")];
    if (first == '[' || first == '{' || first == '"') {
        snprintf(errbuf, errlen,
                 "'%s' is not valid JSON: %s (at byte %d); text that starts with [, { or \" "
                 "must be JSON (to send such text as a string, write it as a JSON string)",
                 text, err.text, err.position);
        return false;
    }
    make_str(z, text, strlen(text), out);
    return true;
}

/* ---- printing ------------------------------------------------------------ */

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = gsp_utf8_seq(p + i, n - i)) == 0)
            return false;
    return true;
}

/* Prints s[0..n) as a JSON string; invalid UTF-8 becomes U+FFFD. */
static void print_string(FILE *f, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    putc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t k = gsp_utf8_seq(p + i, n - i);
        if (k == 0) {
            fputs("\xef\xbf\xbd", f);
            i++;
            continue;
        }
        if (k > 1) {
            fwrite(p + i, 1, k, f);
        } else if (c == '"' || c == '\\') {
            putc('\\', f);
            putc(c, f);
        } else if (c < 0x20) {
            switch (c) {
            case '\b':
                fputs("\\b", f);
                break;
            case '\f':
                fputs("\\f", f);
                break;
            case '\n':
                fputs("\\n", f);
                break;
            case '\r':
                fputs("\\r", f);
                break;
            case '\t':
                fputs("\\t", f);
                break;
            default:
                fprintf(f, "\\u%04x", c);
                break;
            }
        } else {
            putc(c, f);
        }
        i += k;
    }
    putc('"', f);
}

/* Prints bytes as a JSON string of their padded base64. */
static void print_base64(FILE *f, const char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s;
    putc('"', f);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        putc(tab[v >> 18 & 63], f);
        putc(tab[v >> 12 & 63], f);
        putc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
        putc(i + 2 < n ? tab[v & 63] : '=', f);
    }
    putc('"', f);
}

/* Prints a bin: its text if it is UTF-8, else its base64. */
static void print_bin(FILE *f, const char *s, size_t n)
{
    if (utf8_valid(s, n))
        print_string(f, s, n);
    else
        print_base64(f, s, n);
}

/* Prints the shortest decimal that reads back as d (as a float if single),
 * in plain notation for exponents -4..15 as most JSON printers do. */
static void print_float(FILE *f, double d, bool single)
{
    if (!isfinite(d)) {
        fputs("null", f);
        return;
    }
    char buf[48];
    int digits;
    for (digits = 1; digits < 17; digits++) {
        snprintf(buf, sizeof buf, "%.*e", digits - 1, d);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)d : back == d)
            break;
    }
    snprintf(buf, sizeof buf, "%.*e", digits - 1, d);
    char *e = strchr(buf, 'e');
    int exp = atoi(e + 1);
    if (exp >= -4 && exp < 16) {
        int decimals = digits - 1 - exp;
        fprintf(f, "%.*f", decimals > 0 ? decimals : 0, d);
        if (decimals <= 0)
            fputs(".0", f); /* stays a real when read back */
        return;
    }
    *e = '\0';
    fprintf(f, "%se%d", buf, exp);
}

static void newline(FILE *f, unsigned flags, int depth)
{
    if (!(flags & JSON_MP_PRETTY))
        return;
    putc('\n', f);
    for (int i = 0; i < depth; i++)
        fputs("  ", f);
}

static void print_value(FILE *f, const msgpack_object *v, unsigned flags, int depth);

/* Prints a map key: a string as is, anything else as its compact JSON text. */
static void print_key(FILE *f, const msgpack_object *k)
{
    if (k->type == MSGPACK_OBJECT_STR) {
        print_string(f, k->via.str.ptr, k->via.str.size);
    } else if (k->type == MSGPACK_OBJECT_BIN) {
        print_bin(f, k->via.bin.ptr, k->via.bin.size);
    } else {
        char *text = json_mp_dump(k, 0);
        print_string(f, text, strlen(text));
        free(text);
    }
}

static void print_value(FILE *f, const msgpack_object *v, unsigned flags, int depth)
{
    const char *colon = flags & JSON_MP_PRETTY ? ": " : ":";
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", f);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(v->via.boolean ? "true" : "false", f);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(f, "%" PRIu64, v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(f, "%" PRId64, v->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        print_float(f, v->via.f64, v->type == MSGPACK_OBJECT_FLOAT32);
        break;
    case MSGPACK_OBJECT_STR:
        print_string(f, v->via.str.ptr, v->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        print_bin(f, v->via.bin.ptr, v->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        putc('{', f);
        newline(f, flags, depth + 1);
        fprintf(f, "\"ext\"%s%d,", colon, (int)v->via.ext.type);
        newline(f, flags, depth + 1);
        fprintf(f, "\"base64\"%s", colon);
        print_base64(f, v->via.ext.ptr, v->via.ext.size);
        newline(f, flags, depth);
        putc('}', f);
        break;
    case MSGPACK_OBJECT_ARRAY:
        putc('[', f);
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            if (i > 0)
                putc(',', f);
            newline(f, flags, depth + 1);
            print_value(f, &v->via.array.ptr[i], flags, depth + 1);
        }
        if (v->via.array.size > 0)
            newline(f, flags, depth);
        putc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        putc('{', f);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            if (i > 0)
                putc(',', f);
            newline(f, flags, depth + 1);
            print_key(f, &v->via.map.ptr[i].key);
            fputs(colon, f);
            print_value(f, &v->via.map.ptr[i].val, flags, depth + 1);
        }
        if (v->via.map.size > 0)
            newline(f, flags, depth);
        putc('}', f);
        break;
    default:
        fputs("null", f);
        break;
    }
}

int json_mp_print(FILE *f, const msgpack_object *v, unsigned flags)
{
    print_value(f, v, flags, 0);
    return ferror(f) ? -1 : 0;
}

char *json_mp_dump(const msgpack_object *v, unsigned flags)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        abort(); /* out of memory ends the process */
    print_value(f, v, flags, 0);
    if (fclose(f) != 0 || text == NULL)
        abort();
    return text;
}
