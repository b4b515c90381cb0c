/* LZW as TIFF uses it (compression 5): codes of 9 to 12 bits packed most significant bit
 * first, 256 = clear the table, 257 = end of information, and the code width growing one code
 * early ("early change"). No configuration.
 *
 * Every string in the table is a substring of the output already written, so a table entry
 * is just (offset, length) into the output, and emitting a code is one memcpy. A stream must
 * end with the end-of-information code (libtiff and imagecodecs always write it): one that
 * runs out before it is truncated, and refused.
 */
#include "chonkle_codec.h"

enum { CLEAR = 256, END = 257, FIRST = 258, LIMIT = 4096, MAX_BITS = 12 };

typedef struct {
    uint8_t *data;
    size_t length, capacity;
} buffer;

enum { GROWN, OVER_LIMIT, NO_MEMORY };

/* Make room for `extra` more bytes: the capacity doubles, but never past chonkle_output_limit,
 * so a bomb stops at the limit having allocated no more than it. */
static int reserve(buffer *b, size_t extra) {
    if (extra <= b->capacity - b->length) return GROWN;
    if (extra > chonkle_output_limit - b->length) return OVER_LIMIT; /* length <= limit */
    size_t need = b->length + extra;
    size_t limit = chonkle_output_limit;
    size_t capacity = b->capacity > limit / 2 ? limit : b->capacity * 2;
    if (capacity < need) capacity = need;
    uint8_t *grown = realloc(b->data, capacity);
    if (!grown) return NO_MEMORY;
    b->data = grown, b->capacity = capacity;
    return GROWN;
}

CHONKLE_EXPORT(decode) int64_t decode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    (void)config, (void)config_length;
    static uint32_t offset[LIMIT], size[LIMIT];
    /* a first guess at the size (TIFF data often shrinks 2 to 3 times), within the limit */
    uint64_t guess = (uint64_t)length * 3 + 64;
    if (guess > chonkle_output_limit) guess = chonkle_output_limit;
    buffer out = {malloc(guess ? (size_t)guess : 1), 0, (size_t)guess};
    if (!out.data) return chonkle_fail("out of memory");
    int grown;
    uint64_t bits = 0;
    unsigned have = 0, width = 9, next = FIRST;
    uint32_t at = 0;
    int previous = -1;
    for (;;) {
        while (have < width && at < length) bits = (bits << 8) | input[at++], have += 8;
        if (have < width) {
            free(out.data);
            return chonkle_fail("truncated input: the stream ends after %u bytes without its "
                                "end-of-information code", length);
        }
        unsigned code = (unsigned)(bits >> (have - width)) & ((1u << width) - 1);
        have -= width;
        if (code == END) break;
        if (code == CLEAR) {
            width = 9, next = FIRST, previous = -1;
            continue;
        }
        size_t start = out.length;
        if (code < CLEAR) {
            if ((grown = reserve(&out, 1)) != GROWN) goto no_room;
            out.data[out.length++] = (uint8_t)code;
        } else if (code < next && code >= FIRST) {
            if ((grown = reserve(&out, size[code])) != GROWN) goto no_room;
            memcpy(out.data + out.length, out.data + offset[code], size[code]);
            out.length += size[code];
        } else if (code == next && previous >= 0) { /* the string being defined: prev + first */
            size_t n = previous < CLEAR ? 1 : size[previous];
            size_t from = previous < CLEAR ? 0 : offset[previous];
            if ((grown = reserve(&out, n + 1)) != GROWN) goto no_room;
            if (previous < CLEAR) out.data[out.length] = (uint8_t)previous;
            else memcpy(out.data + out.length, out.data + from, n);
            out.data[out.length + n] = out.data[out.length];
            out.length += n + 1;
        } else {
            free(out.data);
            return chonkle_fail("corrupt input: code %u at byte %u is not in the table (next %u)",
                                code, at, next);
        }
        if (previous >= 0 && next < LIMIT) {
            /* new entry: the previous string followed by this string's first byte, which is
             * exactly what the output holds from the previous string's start */
            size_t previous_size = previous < CLEAR ? 1 : size[previous];
            offset[next] = (uint32_t)(start - previous_size);
            size[next] = (uint32_t)previous_size + 1;
            next++;
            if (next == (1u << width) - 1 && width < MAX_BITS) width++;
        }
        previous = (int)code;
    }
    return chonkle_result(out.data, (uint32_t)out.length);
no_room:
    free(out.data);
    if (grown == OVER_LIMIT) return chonkle_fail_limit(0);
    return chonkle_fail("out of memory for %zu output bytes", out.length);
}

/* Hash table from (prefix code, next byte) to code, sized well above the 4096 entries. */
enum { SLOTS = 1 << 14 };

CHONKLE_EXPORT(encode) int64_t encode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    (void)config, (void)config_length;
    static uint32_t keys[SLOTS];
    static uint16_t codes[SLOTS];
    /* worst case: one 12-bit code per byte, plus clear codes and the end code */
    uint64_t bound = (uint64_t)length * 3 / 2 + (length / 4000 + 2) * 2 + 8;
    if (bound > chonkle_output_limit) return chonkle_fail_limit(bound);
    uint8_t *out = malloc(bound), *at = out;
    if (!out) return chonkle_fail("out of memory");
    uint64_t bits = 0;
    unsigned have = 0, width = 9, next = FIRST;
#define EMIT(code)                                                                      \
    do {                                                                                \
        bits = (bits << width) | (code), have += width;                                 \
        while (have >= 8) have -= 8, *at++ = (uint8_t)(bits >> have);                   \
    } while (0)
    memset(keys, 0, sizeof keys);
    EMIT(CLEAR);
    if (length == 0) {
        EMIT(END);
    } else {
        unsigned prefix = input[0];
        for (uint32_t i = 1; i < length; i++) {
            uint8_t byte = input[i];
            uint32_t key = (prefix << 8 | byte) + 1; /* 0 marks an empty slot */
            uint32_t slot = (key * 2654435761u) >> (32 - 14);
            while (keys[slot] && keys[slot] != key) slot = (slot + 1) & (SLOTS - 1);
            if (keys[slot]) {
                prefix = codes[slot];
                continue;
            }
            EMIT(prefix);
            keys[slot] = key, codes[slot] = (uint16_t)next++;
            if (next == (1u << width) && width < MAX_BITS) width++;
            if (next == LIMIT - 2) { /* table full: start over, as libtiff does */
                EMIT(CLEAR);
                memset(keys, 0, sizeof keys);
                width = 9, next = FIRST;
            }
            prefix = byte;
        }
        EMIT(prefix);
        next++; /* the decoder adds an entry for this code before reading the end code */
        if (next == (1u << width) && width < MAX_BITS) width++;
        EMIT(END);
    }
    if (have) *at++ = (uint8_t)(bits << (8 - have));
#undef EMIT
    return chonkle_result(out, (uint32_t)(at - out));
}
