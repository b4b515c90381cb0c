/* chonkle_codec.h: everything a C codec needs to meet the chonkle Wasm codec contract.
 *
 * Include it in the codec's .c file. It exports alloc, dealloc, last_error and set_output_limit,
 * and gives you:
 *   - chonkle_result(ptr, len): pack an output buffer into the i64 return value;
 *   - chonkle_fail(fmt, ...): record a message for the host and return the failure value;
 *   - chonkle_fail_limit(size): the failure value for an output larger than the host allows;
 *   - chonkle_output_limit: the most bytes one call may return (set by the host);
 *   - chonkle_config_int(...): read an integer field from the JSON configuration.
 * Then define encode and/or decode with CHONKLE_EXPORT. See docs/wasm-codec-contract.md.
 */
#ifndef CHONKLE_CODEC_H
#define CHONKLE_CODEC_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHONKLE_EXPORT(name) __attribute__((export_name(#name)))
/* Helpers a codec may not use all of: no unused-function warnings for them. */
#define CHONKLE_HELPER static __attribute__((unused))

/* The most bytes one call may return. The host sets it right after instantiation through the
 * optional export set_output_limit (from CHONKLE_MAX_OUTPUT, 1 GiB by default); check sizes
 * against it before allocating, so a decompression bomb stops near the limit, not past it. */
#define CHONKLE_DEFAULT_OUTPUT_LIMIT ((uint32_t)1 << 30)

/* The largest single buffer: wasi-libc's malloc grows memory with sbrk, whose signed 32-bit
 * increment traps on a request of 2 GiB or more instead of failing, so larger requests are
 * refused first (NULL, a clean "out of memory"). */
#define CHONKLE_ALLOCATION_MAX ((uint64_t)0x7FF00000)

/* A codec of several .c files defines CHONKLE_SECONDARY_FILE before including this header in
 * all but one of them, so the exports and the error message buffer exist exactly once. */
extern char chonkle_error_text[512];
extern uint32_t chonkle_error_length;
extern uint32_t chonkle_output_limit;

#ifndef CHONKLE_SECONDARY_FILE
char chonkle_error_text[512];
uint32_t chonkle_error_length;
uint32_t chonkle_output_limit = CHONKLE_DEFAULT_OUTPUT_LIMIT;

CHONKLE_EXPORT(set_output_limit) void chonkle_set_output_limit(uint32_t limit) {
    chonkle_output_limit = limit;
}

CHONKLE_EXPORT(alloc) void *chonkle_alloc(uint32_t size) {
    if (size > CHONKLE_ALLOCATION_MAX) return NULL;
    return malloc(size ? (size_t)size : 1);
}

CHONKLE_EXPORT(dealloc) void chonkle_dealloc(void *ptr, uint32_t size) {
    (void)size;
    free(ptr);
}

/* The host reads this after a failure result to put the reason in its error message. */
CHONKLE_EXPORT(last_error) int64_t chonkle_last_error(void) {
    if (chonkle_error_length == 0) return 0;
    return (int64_t)(((uint64_t)(uintptr_t)chonkle_error_text << 32) | chonkle_error_length);
}
#endif

/* For a codec whose two directions share one function,
 *     static int64_t run(int decode, const uint8_t *input, uint32_t length,
 *                        const uint8_t *config, uint32_t config_length);
 * export encode (decode = 0) and decode (decode = 1) calling it. */
#define CHONKLE_EXPORT_ENCODE_DECODE(run)                                                      \
    CHONKLE_EXPORT(encode)                                                                     \
    int64_t encode(const uint8_t *input, uint32_t length, const uint8_t *config,              \
                   uint32_t config_length) {                                                   \
        return run(0, input, length, config, config_length);                                   \
    }                                                                                          \
    CHONKLE_EXPORT(decode)                                                                     \
    int64_t decode(const uint8_t *input, uint32_t length, const uint8_t *config,              \
                   uint32_t config_length) {                                                   \
        return run(1, input, length, config, config_length);                                   \
    }

/* Grow a buffer of old_size bytes to new_size, or NULL (the buffer is then untouched).
 * dlmalloc's realloc extends a chunk in place only when the free top of the heap already
 * holds the growth; otherwise it copies and leaves the old chunk as a hole, so a buffer grown
 * by doubling would hold twice its size of linear memory. Growing the top first (a malloc and
 * free of the difference) makes the realloc extend in place. */
CHONKLE_HELPER void *chonkle_grow(void *buffer, size_t old_size, uint64_t new_size) {
    if (new_size > CHONKLE_ALLOCATION_MAX) return NULL;
    if (buffer && new_size > old_size) {
        void *volatile pad = malloc((size_t)new_size - old_size); /* volatile: not elided */
        free(pad);
    }
    return realloc(buffer, (size_t)new_size);
}

/* Pack an output buffer (from malloc) as the contract's i64 result; ownership goes to the host. */
CHONKLE_HELPER int64_t chonkle_result(void *ptr, uint32_t length) {
    return (int64_t)(((uint64_t)(uintptr_t)ptr << 32) | length);
}

/* Record why the call failed and return the failure value (pointer 0, length 0). */
__attribute__((format(printf, 1, 2))) CHONKLE_HELPER int64_t chonkle_fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(chonkle_error_text, sizeof chonkle_error_text, format, args);
    va_end(args);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof chonkle_error_text) n = sizeof chonkle_error_text - 1;
    chonkle_error_length = (uint32_t)n;
    return 0;
}

/* The output would be larger than chonkle_output_limit: record it and return the limit
 * failure value (pointer 0, length 1), which the host reports as LimitExceeded. `size` is
 * what the output would need, when known (0 when not). */
CHONKLE_HELPER int64_t chonkle_fail_limit(uint64_t size) {
    if (size)
        chonkle_fail("output of %llu bytes would exceed the limit of %u bytes",
                     (unsigned long long)size, chonkle_output_limit);
    else
        chonkle_fail("output would exceed the limit of %u bytes", chonkle_output_limit);
    return 1;
}

/* ---- Reading the JSON configuration -------------------------------------------------
 * The configuration is the step's "configuration" object, serialized by the host as
 * compact UTF-8 JSON. These helpers scan its top level only; nested values are skipped.
 */

typedef enum { CHONKLE_FOUND = 0, CHONKLE_MISSING = 1, CHONKLE_INVALID = 2 } chonkle_lookup;

typedef struct {
    const char *at;
    const char *end;
} chonkle_json;

CHONKLE_HELPER void chonkle_json_space(chonkle_json *j) {
    while (j->at < j->end && (*j->at == ' ' || *j->at == '\t' || *j->at == '\n' || *j->at == '\r'))
        j->at++;
}

/* Skip a JSON string starting at its opening quote; report its body through raw and raw_len. */
CHONKLE_HELPER int chonkle_json_string(chonkle_json *j, const char **raw, size_t *raw_len) {
    if (j->at >= j->end || *j->at != '"') return 0;
    const char *start = ++j->at;
    while (j->at < j->end && *j->at != '"') {
        if (*j->at == '\\') j->at++;
        j->at++;
    }
    if (j->at >= j->end) return 0;
    *raw = start;
    *raw_len = (size_t)(j->at - start);
    j->at++;
    return 1;
}

/* Skip any JSON value; nesting is bounded so hostile input cannot exhaust the stack. */
CHONKLE_HELPER int chonkle_json_skip(chonkle_json *j, int depth) {
    const char *raw;
    size_t raw_len;
    chonkle_json_space(j);
    if (j->at >= j->end || depth > 64) return 0;
    char c = *j->at;
    if (c == '"') return chonkle_json_string(j, &raw, &raw_len);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->at++;
        chonkle_json_space(j);
        if (j->at < j->end && *j->at == close) { j->at++; return 1; }
        for (;;) {
            if (c == '{') {
                chonkle_json_space(j);
                if (!chonkle_json_string(j, &raw, &raw_len)) return 0;
                chonkle_json_space(j);
                if (j->at >= j->end || *j->at++ != ':') return 0;
            }
            if (!chonkle_json_skip(j, depth + 1)) return 0;
            chonkle_json_space(j);
            if (j->at >= j->end) return 0;
            if (*j->at == ',') { j->at++; continue; }
            if (*j->at == close) { j->at++; return 1; }
            return 0;
        }
    }
    /* number, true, false, null */
    const char *start = j->at;
    while (j->at < j->end && strchr(",}] \t\r\n", *j->at) == NULL) j->at++;
    return j->at > start;
}

/* Find the value of top-level key `key`; on success *value points at it (after spaces). */
CHONKLE_HELPER chonkle_lookup chonkle_config_find(const uint8_t *config, uint32_t length, const char *key,
                                          chonkle_json *value) {
    chonkle_json j = {(const char *)config, (const char *)config + length};
    const char *raw;
    size_t raw_len, key_len = strlen(key);
    chonkle_json_space(&j);
    if (j.at >= j.end || *j.at++ != '{') return CHONKLE_INVALID;
    chonkle_json_space(&j);
    if (j.at < j.end && *j.at == '}') return CHONKLE_MISSING;
    for (;;) {
        chonkle_json_space(&j);
        if (!chonkle_json_string(&j, &raw, &raw_len)) return CHONKLE_INVALID;
        chonkle_json_space(&j);
        if (j.at >= j.end || *j.at++ != ':') return CHONKLE_INVALID;
        chonkle_json_space(&j);
        if (raw_len == key_len && memcmp(raw, key, key_len) == 0) {
            *value = j;
            return CHONKLE_FOUND;
        }
        if (!chonkle_json_skip(&j, 0)) return CHONKLE_INVALID;
        chonkle_json_space(&j);
        if (j.at < j.end && *j.at == ',') { j.at++; continue; }
        return (j.at < j.end && *j.at == '}') ? CHONKLE_MISSING : CHONKLE_INVALID;
    }
}

/* Read integer field `key` into *out. A missing key gives CHONKLE_MISSING (and leaves *out
 * alone, so callers can preset a default); a non-integer value gives CHONKLE_INVALID. */
CHONKLE_HELPER chonkle_lookup chonkle_config_int(const uint8_t *config, uint32_t length, const char *key,
                                         int64_t *out) {
    chonkle_json value;
    chonkle_lookup found = chonkle_config_find(config, length, key, &value);
    if (found != CHONKLE_FOUND) return found;
    const char *p = value.at;
    int negative = 0;
    if (p < value.end && *p == '-') { negative = 1; p++; }
    if (p >= value.end || *p < '0' || *p > '9') return CHONKLE_INVALID;
    uint64_t magnitude = 0;
    while (p < value.end && *p >= '0' && *p <= '9') {
        uint64_t digit = (uint64_t)(*p++ - '0');
        /* checked before multiplying, so a huge number is refused, never wrapped */
        if (magnitude > ((uint64_t)INT64_MAX - digit) / 10) return CHONKLE_INVALID;
        magnitude = magnitude * 10 + digit;
    }
    if (p < value.end && strchr(",} \t\r\n", *p) == NULL) return CHONKLE_INVALID; /* 2.5, 1e3 */
    *out = negative ? -(int64_t)magnitude : (int64_t)magnitude;
    return CHONKLE_FOUND;
}

/* Read string field `key` into out (NUL-terminated, at most size - 1 bytes). Escapes other than
 * \" and \\ are refused as CHONKLE_INVALID: configuration strings are names, not prose. */
CHONKLE_HELPER chonkle_lookup chonkle_config_string(const uint8_t *config, uint32_t length, const char *key,
                                            char *out, size_t size) {
    chonkle_json value;
    const char *raw;
    size_t raw_len, n = 0;
    chonkle_lookup found = chonkle_config_find(config, length, key, &value);
    if (found != CHONKLE_FOUND) return found;
    if (!chonkle_json_string(&value, &raw, &raw_len)) return CHONKLE_INVALID;
    for (size_t i = 0; i < raw_len; i++) {
        char c = raw[i];
        if (c == '\\') {
            if (++i >= raw_len || (raw[i] != '"' && raw[i] != '\\')) return CHONKLE_INVALID;
            c = raw[i];
        }
        if (n + 1 >= size) return CHONKLE_INVALID;
        out[n++] = c;
    }
    out[n] = 0;
    return CHONKLE_FOUND;
}

/* chonkle_config_int for a required field in [min, max], failing with a clear message. */
#define CHONKLE_REQUIRE_INT(config, length, key, min, max, out)                                   \
    do {                                                                                          \
        chonkle_lookup found_ = chonkle_config_int(config, length, key, out);                     \
        if (found_ == CHONKLE_MISSING) return chonkle_fail("configuration lacks \"%s\"", key);    \
        if (found_ != CHONKLE_FOUND || *(out) < (min) || *(out) > (max))                          \
            return chonkle_fail("configuration \"%s\" must be an integer from %lld to %lld", key, \
                                (long long)(min), (long long)(max));                              \
    } while (0)

/* The same for an optional field: *out keeps its preset default when the key is absent. */
#define CHONKLE_OPTIONAL_INT(config, length, key, min, max, out)                                  \
    do {                                                                                          \
        chonkle_lookup found_ = chonkle_config_int(config, length, key, out);                     \
        if (found_ == CHONKLE_INVALID || *(out) < (min) || *(out) > (max))                        \
            return chonkle_fail("configuration \"%s\" must be an integer from %lld to %lld", key, \
                                (long long)(min), (long long)(max));                              \
    } while (0)

#endif
