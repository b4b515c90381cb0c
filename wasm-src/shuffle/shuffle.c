/* Byte shuffle, as numcodecs.Shuffle: byte j of element i moves to j * count + i, so equal
 * significance bytes of all elements sit together. Configuration: elementsize (default 4).
 * As in numcodecs, an elementsize of at most 1 (0, negative, a boolean, or a number such as
 * 0.5) leaves the bytes as they are, and any other value must be an integer.
 *
 * Element sizes 2 and 4 (uint16, int32, float32: most arrays) transpose 16 elements at a
 * time with i8x16.shuffle; other sizes, and the tail, go byte by byte.
 */
#include <wasm_simd128.h>

#include "chonkle_codec.h"

#define SIMD __attribute__((target("simd128")))

/* planes -> interleaved, for 16 elements at a time; returns elements done */
SIMD static size_t unshuffle2(const uint8_t *in, uint8_t *out, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        v128_t a = wasm_v128_load(in + i), b = wasm_v128_load(in + count + i);
        wasm_v128_store(out + 2 * i, wasm_i8x16_shuffle(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20,
                                                         5, 21, 6, 22, 7, 23));
        wasm_v128_store(out + 2 * i + 16, wasm_i8x16_shuffle(a, b, 8, 24, 9, 25, 10, 26, 11, 27,
                                                              12, 28, 13, 29, 14, 30, 15, 31));
    }
    return i;
}

SIMD static size_t unshuffle4(const uint8_t *in, uint8_t *out, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        v128_t a = wasm_v128_load(in + i), b = wasm_v128_load(in + count + i);
        v128_t c = wasm_v128_load(in + 2 * count + i), d = wasm_v128_load(in + 3 * count + i);
        v128_t ab0 = wasm_i8x16_shuffle(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        v128_t ab1 = wasm_i8x16_shuffle(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        v128_t cd0 = wasm_i8x16_shuffle(c, d, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        v128_t cd1 = wasm_i8x16_shuffle(c, d, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        uint8_t *o = out + 4 * i;
        wasm_v128_store(o, wasm_i8x16_shuffle(ab0, cd0, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23));
        wasm_v128_store(o + 16, wasm_i8x16_shuffle(ab0, cd0, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31));
        wasm_v128_store(o + 32, wasm_i8x16_shuffle(ab1, cd1, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23));
        wasm_v128_store(o + 48, wasm_i8x16_shuffle(ab1, cd1, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31));
    }
    return i;
}

/* interleaved -> planes */
SIMD static size_t shuffle2(const uint8_t *in, uint8_t *out, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        v128_t x = wasm_v128_load(in + 2 * i), y = wasm_v128_load(in + 2 * i + 16);
        wasm_v128_store(out + i, wasm_i8x16_shuffle(x, y, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                                     22, 24, 26, 28, 30));
        wasm_v128_store(out + count + i, wasm_i8x16_shuffle(x, y, 1, 3, 5, 7, 9, 11, 13, 15, 17,
                                                             19, 21, 23, 25, 27, 29, 31));
    }
    return i;
}

SIMD static size_t shuffle4(const uint8_t *in, uint8_t *out, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        const uint8_t *p = in + 4 * i;
        v128_t w = wasm_v128_load(p), x = wasm_v128_load(p + 16);
        v128_t y = wasm_v128_load(p + 32), z = wasm_v128_load(p + 48);
        /* even/odd 16-bit halves, then even/odd bytes */
        v128_t lo0 = wasm_i8x16_shuffle(w, x, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29);
        v128_t lo1 = wasm_i8x16_shuffle(y, z, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29);
        v128_t hi0 = wasm_i8x16_shuffle(w, x, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
        v128_t hi1 = wasm_i8x16_shuffle(y, z, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
        wasm_v128_store(out + i, wasm_i8x16_shuffle(lo0, lo1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
        wasm_v128_store(out + count + i, wasm_i8x16_shuffle(lo0, lo1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
        wasm_v128_store(out + 2 * count + i, wasm_i8x16_shuffle(hi0, hi1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
        wasm_v128_store(out + 3 * count + i, wasm_i8x16_shuffle(hi0, hi1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
    }
    return i;
}

/* Read "elementsize" as numcodecs takes it: *size is 1 for every value at most 1 (no shuffle),
 * else the integer. Returns 0 (with the reason recorded) for a value numcodecs refuses. */
static int read_elementsize(const uint8_t *config, uint32_t config_length, uint64_t *size) {
    chonkle_json value;
    *size = 4;
    chonkle_lookup found = chonkle_config_find(config, config_length, "elementsize", &value);
    if (found == CHONKLE_MISSING) return 1;
    if (found != CHONKLE_FOUND) return chonkle_fail("configuration is not a JSON object"), 0;
    const char *start = value.at, *end = value.at;
    while (end < value.end && strchr(",} \t\r\n", *end) == NULL) end++;
    size_t n = (size_t)(end - start);
    char token[64];
    if (n == 0 || n >= sizeof token) goto invalid;
    memcpy(token, start, n);
    token[n] = 0;
    if (strcmp(token, "true") == 0 || strcmp(token, "false") == 0 || token[0] == '-') {
        *size = 1; /* True, False and negative numbers are all at most 1 */
        return 1;
    }
    if (token[0] < '0' || token[0] > '9') goto invalid;
    if (strspn(token, "0123456789") == n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
            if (v > (UINT64_MAX - 9) / 10) goto invalid;
            v = v * 10 + (uint64_t)(token[i] - '0');
        }
        if (v > INT64_MAX) goto invalid;
        *size = v > 1 ? v : 1;
        return 1;
    }
    char *parsed;
    double number = strtod(token, &parsed);
    if (*parsed != 0) goto invalid;
    if (number <= 1) {
        *size = 1;
        return 1;
    }
    return chonkle_fail("configuration \"elementsize\" must be an integer when it is over 1, "
                        "not %s", token), 0;
invalid:
    return chonkle_fail("configuration \"elementsize\" must be an integer up to %lld",
                        (long long)INT64_MAX), 0;
}

static int64_t run(int decode, const uint8_t *input, uint32_t length, const uint8_t *config,
                   uint32_t config_length) {
    uint64_t size;
    if (!read_elementsize(config, config_length, &size)) return 0;
    if (length % size)
        return chonkle_fail("input of %u bytes is not a whole number of %llu-byte elements",
                            length, (unsigned long long)size);
    if (length > chonkle_output_limit) return chonkle_fail_limit(length);
    uint8_t *out = malloc(length ? length : 1);
    if (!out) return chonkle_fail("out of memory for %u output bytes", length);
    if (size == 1 || length == 0) { /* nothing to shuffle (and size may be huge if empty) */
        memcpy(out, input, length);
        return chonkle_result(out, length);
    }
    size_t count = length / size, done = 0; /* size <= length from here on */
    if (decode) {
        if (size == 2) done = unshuffle2(input, out, count);
        else if (size == 4) done = unshuffle4(input, out, count);
        for (size_t j = 0; j < size; j++) {
            const uint8_t *plane = input + j * count;
            for (size_t i = done; i < count; i++) out[i * size + j] = plane[i];
        }
    } else {
        if (size == 2) done = shuffle2(input, out, count);
        else if (size == 4) done = shuffle4(input, out, count);
        for (size_t j = 0; j < size; j++) {
            uint8_t *plane = out + j * count;
            for (size_t i = done; i < count; i++) plane[i] = input[i * size + j];
        }
    }
    return chonkle_result(out, length);
}

CHONKLE_EXPORT_ENCODE_DECODE(run)
