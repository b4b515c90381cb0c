/* LZW as TIFF uses it (compression 5): codes of 9 to 12 bits packed most significant bit
 * first, 256 = clear the table, 257 = end of information, and the code width growing one code
 * early ("early change"). No configuration.
 *
 * Every string in the table is a substring of the output already written, so a table entry
 * is just (offset, length) into the output, and emitting a code is one memcpy.
 */
#include "chonkle_codec.h"

enum { CLEAR = 256, END = 257, FIRST = 258, LIMIT = 4096, MAX_BITS = 12 };

/* Decoded data may be at most this many times the input (a 12-bit code yields <= 4096 bytes). */
#define MAX_RATIO 4096u

typedef struct {
    uint8_t *data;
    size_t length, capacity;
} buffer;

static int reserve(buffer *b, size_t extra) {
    if (b->length + extra <= b->capacity) return 1;
    size_t capacity = b->capacity * 2 > b->length + extra ? b->capacity * 2 : b->length + extra;
    if (capacity > chonkle_output_limit) capacity = chonkle_output_limit;
    if (b->length + extra > capacity) return 0;
    uint8_t *grown = realloc(b->data, capacity);
    if (!grown) return 0;
    b->data = grown, b->capacity = capacity;
    return 1;
}

CHONKLE_EXPORT(decode) int64_t decode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    (void)config, (void)config_length;
    static uint32_t offset[LIMIT], size[LIMIT];
    buffer out = {malloc((size_t)length * 3 + 64), 0, (size_t)length * 3 + 64};
    if (!out.data) return chonkle_fail("out of memory");
    uint64_t bits = 0;
    unsigned have = 0, width = 9, next = FIRST;
    uint32_t at = 0;
    int previous = -1;
    for (;;) {
        while (have < width && at < length) bits = (bits << 8) | input[at++], have += 8;
        if (have < width) break; /* out of input without an end code: accept what we have */
        unsigned code = (unsigned)(bits >> (have - width)) & ((1u << width) - 1);
        have -= width;
        if (code == END) break;
        if (code == CLEAR) {
            width = 9, next = FIRST, previous = -1;
            continue;
        }
        size_t start = out.length;
        if (code < CLEAR) {
            if (!reserve(&out, 1)) goto too_large;
            out.data[out.length++] = (uint8_t)code;
        } else if (code < next && code >= FIRST) {
            if (!reserve(&out, size[code])) goto too_large;
            memcpy(out.data + out.length, out.data + offset[code], size[code]);
            out.length += size[code];
        } else if (code == next && previous >= 0) { /* the string being defined: prev + first */
            size_t n = previous < CLEAR ? 1 : size[previous];
            size_t from = previous < CLEAR ? 0 : offset[previous];
            if (!reserve(&out, n + 1)) goto too_large;
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
        if (out.length > (uint64_t)length * MAX_RATIO) goto too_large;
    }
    return chonkle_result(out.data, (uint32_t)out.length);
too_large:
    free(out.data);
    return chonkle_fail("decoded data would exceed %u times the input or 2 GiB", MAX_RATIO);
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
