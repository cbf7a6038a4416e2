/* value.c — deep copies and equality of msgpack values. */
#include "gsp.h"

#include <stdlib.h>
#include <string.h>

/* A copy lives in one block: the root, then every child object, then every
 * string's bytes, so objects stay aligned and one free() releases it all. */
struct layout {
    size_t objects; /* bytes of child objects and map entries */
    size_t bytes;   /* bytes of strings, bins and exts */
};

static void measure(const msgpack_object *v, struct layout *l)
{
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        l->bytes += v->via.str.size;
        break;
    case MSGPACK_OBJECT_EXT:
        l->bytes += v->via.ext.size;
        break;
    case MSGPACK_OBJECT_ARRAY:
        l->objects += v->via.array.size * sizeof(msgpack_object);
        for (uint32_t i = 0; i < v->via.array.size; i++)
            measure(&v->via.array.ptr[i], l);
        break;
    case MSGPACK_OBJECT_MAP:
        l->objects += v->via.map.size * sizeof(msgpack_object_kv);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            measure(&v->via.map.ptr[i].key, l);
            measure(&v->via.map.ptr[i].val, l);
        }
        break;
    default:
        break;
    }
}

struct cursor {
    char *objects, *bytes;
};

static void copy_into(msgpack_object *dst, const msgpack_object *src, struct cursor *c)
{
    *dst = *src;
    switch (src->type) {
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        if (src->via.str.size)
            memcpy(c->bytes, src->via.str.ptr, src->via.str.size);
        dst->via.str.ptr = c->bytes;
        c->bytes += src->via.str.size;
        break;
    case MSGPACK_OBJECT_EXT:
        if (src->via.ext.size)
            memcpy(c->bytes, src->via.ext.ptr, src->via.ext.size);
        dst->via.ext.ptr = c->bytes;
        c->bytes += src->via.ext.size;
        break;
    case MSGPACK_OBJECT_ARRAY: {
        msgpack_object *items = (msgpack_object *)c->objects;
        c->objects += src->via.array.size * sizeof *items;
        dst->via.array.ptr = items;
        for (uint32_t i = 0; i < src->via.array.size; i++)
            copy_into(&items[i], &src->via.array.ptr[i], c);
        break;
    }
    case MSGPACK_OBJECT_MAP: {
        msgpack_object_kv *kv = (msgpack_object_kv *)c->objects;
        c->objects += src->via.map.size * sizeof *kv;
        dst->via.map.ptr = kv;
        for (uint32_t i = 0; i < src->via.map.size; i++) {
            copy_into(&kv[i].key, &src->via.map.ptr[i].key, c);
            copy_into(&kv[i].val, &src->via.map.ptr[i].val, c);
        }
        break;
    }
    default:
        break;
    }
}

msgpack_object *gsp_value_copy(const msgpack_object *v)
{
    struct layout l = {0, 0};
    measure(v, &l);
    size_t size = sizeof(msgpack_object) + l.objects + l.bytes;
    msgpack_object *root = malloc(size);
    if (root == NULL)
        gsp_oom(size);
    struct cursor c = {(char *)(root + 1), (char *)(root + 1) + l.objects};
    copy_into(root, v, &c);
    return root;
}

static bool as_int(const msgpack_object *v, bool *neg, uint64_t *mag)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *neg = false;
        *mag = v->via.u64;
        return true;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *neg = v->via.i64 < 0;
        *mag = *neg ? (uint64_t)0 - (uint64_t)v->via.i64 : (uint64_t)v->via.i64;
        return true;
    }
    return false;
}

bool gsp_value_equal(const msgpack_object *a, const msgpack_object *b)
{
    bool an, bn;
    uint64_t am, bm;
    if (as_int(a, &an, &am) && as_int(b, &bn, &bm))
        return an == bn && am == bm;
    bool astr = a->type == MSGPACK_OBJECT_STR || a->type == MSGPACK_OBJECT_BIN;
    bool bstr = b->type == MSGPACK_OBJECT_STR || b->type == MSGPACK_OBJECT_BIN;
    if (astr && bstr)
        return a->via.str.size == b->via.str.size &&
               (a->via.str.size == 0 ||
                memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL:
        return true;
    case MSGPACK_OBJECT_BOOLEAN:
        return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return a->via.f64 == b->via.f64;
    case MSGPACK_OBJECT_EXT:
        return a->via.ext.type == b->via.ext.type && a->via.ext.size == b->via.ext.size &&
               (a->via.ext.size == 0 ||
                memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) == 0);
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!gsp_value_equal(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return false;
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!gsp_value_equal(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !gsp_value_equal(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return false;
        return true;
    default:
        return false;
    }
}
