/*
 * json.h — JSON text to msgpack objects and back: gsctl's arguments and
 * results, the daemon's args_json. Below both (common/), linked by each.
 *
 * Input is parsed by jansson and turned into msgpack objects; output is
 * printed straight from msgpack objects by a small printer of our own, so
 * every integer msgpack can hold (uint64 included) prints exactly.
 *
 * JSON → msgpack
 *     object → map (keys in the order written), array → array,
 *     string → str, integer → int, real → float64, true/false → bool,
 *     null → nil.
 *     Limit: jansson holds integers as long long, so a number outside the
 *     int64 range inside a JSON document cannot be sent (json_mp_arg
 *     refuses it). A bare uint64 argument such as 18446744073709551615 is
 *     read exactly.
 *
 * msgpack → JSON
 *     nil → null, bool → true/false, int → its exact decimal value,
 *     float32/float64 → the shortest decimal that reads back as the same
 *     value, always with a '.' or an exponent ("1.0"); NaN and ±infinity,
 *     which JSON cannot write, → null.
 *     str → string (bytes that are not UTF-8 become U+FFFD).
 *     bin → string: its text if it is valid UTF-8, else its base64
 *     (RFC 4648, padded). The two cannot be told apart afterwards: this is
 *     for reading, not for round trips.
 *     array → array.
 *     map → object: a str (or bin) key is used as is; any other key becomes
 *     its compact JSON text ({1: "a"} → {"1":"a"}, {[1,2]: 0} →
 *     {"[1,2]":0}). Duplicate keys may result and are all printed.
 *     ext → {"ext": type, "base64": "..."}.
 */
#ifndef GSD_CLIENT_JSON_H
#define GSD_CLIENT_JSON_H

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>

/*
 * A command-line value: text that is valid JSON (any value, top level
 * included) becomes that value; any other text becomes the string itself,
 * so "get" and get both give "get" -- except text that begins (after
 * blanks) with '[', '{' or '"': that must be valid JSON, so that a typo
 * never silently becomes a string. Returns false, with a message in err
 * (errlen bytes: what is wrong and at which byte), for such text that is
 * not JSON and for JSON holding a number out of range (it is neither
 * sendable nor a string). Everything *out refers to is allocated in zone,
 * which the caller owns.
 */
bool json_mp_arg(const char *text, msgpack_zone *zone, msgpack_object *out, char *err,
                 size_t errlen);

/* Converts a jansson value into msgpack objects allocated in zone. */
void json_mp_from_json(const json_t *j, msgpack_zone *zone, msgpack_object *out);

#define JSON_MP_PRETTY 1u /* newlines and two-space indents; default compact */

/* Prints v as JSON text to f, without a trailing newline. Returns 0, or -1
 * if writing to f failed. */
int json_mp_print(FILE *f, const msgpack_object *v, unsigned flags);

/* v as JSON text in a malloc'd, NUL-terminated string; the caller frees it. */
char *json_mp_dump(const msgpack_object *v, unsigned flags);

#endif /* GSD_CLIENT_JSON_H */
