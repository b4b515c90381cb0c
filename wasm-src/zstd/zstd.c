/* Zstandard decompression (RFC 8878), interoperable with numcodecs.Zstd; the encoder is in
 * encode.c.
 *
 * Frames (and skippable frames) in sequence; raw, RLE and compressed blocks; Huffman
 * literals in 1 or 4 streams; FSE-coded sequences with repeat offsets; XXH64 content
 * checksums. Dictionaries are not supported. All output of a call lives in one buffer,
 * so matches copy straight from it, with no separate window.
 *
 * Sizes: linear memory is 32-bit, so size_t is too. Every size read from the input (content
 * sizes, window sizes) and every sum of sizes is computed in 64 bits and checked against
 * chonkle_output_limit before it is used, so nothing wraps, and the output buffer never
 * grows past the limit: a frame that declares its content size gets a buffer of exactly
 * that size (after the check); otherwise the buffer doubles, capped at the limit.
 */
#include <wasm_simd128.h>

#include "zstd_internal.h"

#define SLACK 32 /* writable bytes past the end, for 16-byte copies */

const uint32_t LL_BASE[36] = {0,  1,  2,   3,   4,   5,    6,    7,    8,    9,     10,    11,
                                     12, 13, 14,  15,  16,  18,   20,   22,   24,   28,    32,    40,
                                     48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
const uint8_t LL_BITS[36] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0,  0,  1,  1,
                                    1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
const uint32_t ML_BASE[53] = {3,  4,  5,  6,  7,  8,  9,  10,  11,  12,   13,   14,   15,   16,
                                     17, 18, 19, 20, 21, 22, 23, 24,  25,  26,   27,   28,   29,   30,
                                     31, 32, 33, 34, 35, 37, 39, 41,  43,  47,   51,   59,   67,   83,
                                     99, 131, 259, 515, 1027, 2051, 4099, 8195, 16387, 32771, 65539};
const uint8_t ML_BITS[53] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0,  0,  0,  0,  0,
                                    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0,  1,  1,  1,  1,
                                    2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
const int16_t LL_DEFAULT[36] = {4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2,
                                       2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1};
const int16_t ML_DEFAULT[53] = {1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                       1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                       1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1};
const int16_t OF_DEFAULT[29] = {1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1,
                                       1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1};

/* A sequence-code decoding entry: the FSE transition plus what the code means, so decoding
 * a sequence takes one lookup per code. */
typedef struct {
    uint32_t value;      /* baseline: literal length, match length, or offset value */
    uint16_t next_base;  /* next state = next_base + read(next_bits) */
    uint8_t next_bits;
    uint8_t extra_bits;  /* bits read and added to value */
} code_entry;

typedef struct {
    code_entry table[1 << FSE_MAX_LOG];
    unsigned log;
} code_table;

typedef struct {
    uint8_t *start, *out, *end; /* output so far; `end` leaves SLACK bytes */
    uint8_t *frame_start;
    uint8_t *frame_end; /* where the frame's declared content ends, when frame_known */
    int frame_known;
    uint32_t block_max; /* the frame's Block_Maximum_Size: min(window size, 128 KiB) */
    uint32_t input_length; /* for the first guess at the size of an undeclared output */
    huffman_table huffman;
    int have_huffman;
    code_table ll, of, ml;
    int have_ll, have_of, have_ml;
    uint32_t rep[3];
    int64_t failure; /* the call's failure result: 0, or chonkle_fail_limit's */
    uint8_t literals[BLOCK_MAX + SLACK];
} decoder;

enum { RESERVED = 1, OVER_LIMIT = 0, OUT_OF_MEMORY = -1 };

/* Make room for n more bytes of output. `exact`: grow to exactly that (a frame's declared
 * size); otherwise at least double, starting from a guess of 4x the input. Never past
 * chonkle_output_limit: all arithmetic is 64-bit, so no size near 4 GiB wraps. */
static int reserve(decoder *d, uint64_t n, int exact) {
    uint64_t used = (uint64_t)(d->out - d->start), capacity = (uint64_t)(d->end - d->start);
    if (d->start && capacity - used >= n) return RESERVED;
    uint64_t need = used + n, limit = chonkle_output_limit;
    if (need > limit) return OVER_LIMIT;
    uint64_t wanted = need;
    if (!exact) {
        uint64_t guess = capacity ? capacity * 2 : (uint64_t)d->input_length * 4 + 1024;
        if (wanted < guess) wanted = guess;
        if (wanted > limit) wanted = limit;
    }
    if (wanted + SLACK > CHONKLE_ALLOCATION_MAX && need + SLACK <= CHONKLE_ALLOCATION_MAX) wanted = CHONKLE_ALLOCATION_MAX - SLACK;
    size_t frame = (size_t)(d->frame_start - d->start), old_size = d->start ? (size_t)capacity + SLACK : 0;
    /* when linear memory cannot hold the doubled buffer, settle for less: halve the extra
     * room until it fits, down to exactly what is needed */
    uint8_t *grown;
    while (!(grown = chonkle_grow(d->start, old_size, wanted + SLACK)) && wanted > need)
        wanted = need + (wanted - need) / 2;
    if (!grown) return OUT_OF_MEMORY;
    if (d->frame_known) d->frame_end = grown + (size_t)(d->frame_end - d->start);
    d->start = grown, d->out = grown + (size_t)used, d->end = grown + (size_t)wanted;
    d->frame_start = grown + frame;
    return RESERVED;
}

/* Internal functions return 0 for every failure; one over the output limit also records the
 * limit failure result here, for decode() to return. */
static int64_t over_limit(decoder *d, uint64_t size) {
    d->failure = chonkle_fail_limit(size);
    return 0;
}

/* The failure for a reserve() that did not succeed. */
static int64_t reserve_failed(decoder *d, uint64_t n, int status) {
    if (status == OVER_LIMIT) return over_limit(d, (uint64_t)(d->out - d->start) + n);
    return chonkle_fail("out of memory for %llu bytes of output",
                        (unsigned long long)((uint64_t)(d->out - d->start) + n));
}

#define FAIL(...) return chonkle_fail(__VA_ARGS__)

/* Literals section: returns bytes of src used, 0 on failure; sets *literals, *count. */
static size_t read_literals(decoder *d, const uint8_t *src, size_t size, const uint8_t **literals,
                            size_t *count) {
    if (size < 1) FAIL("corrupt input: empty block");
    unsigned type = src[0] & 3, format = (src[0] >> 2) & 3;
    if (type < 2) { /* raw or RLE */
        size_t header, n;
        if (format == 0 || format == 2) header = 1, n = src[0] >> 3;
        else if (format == 1) {
            if (size < 2) FAIL("truncated input: literals header");
            header = 2, n = (src[0] >> 4) + ((size_t)src[1] << 4);
        } else {
            if (size < 3) FAIL("truncated input: literals header");
            header = 3, n = (src[0] >> 4) + ((size_t)src[1] << 4) + ((size_t)src[2] << 12);
        }
        if (n > BLOCK_MAX) FAIL("corrupt input: %zu literals in one block", n);
        if (type == 0) {
            if (header + n > size) FAIL("truncated input: raw literals");
            memcpy(d->literals, src + header, n); /* the buffer's slack allows wild copies */
            *literals = d->literals;
        } else {
            if (header + 1 > size) FAIL("truncated input: RLE literals");
            memset(d->literals, src[header], n);
            *literals = d->literals;
            *count = n;
            return header + 1;
        }
        *count = n;
        return header + n;
    }
    size_t header, regenerated, compressed;
    int four_streams = format != 0;
    if (size < 5) FAIL("truncated input: literals header");
    uint64_t bits = src[0] | (uint64_t)src[1] << 8 | (uint64_t)src[2] << 16 | (uint64_t)src[3] << 24 |
                    (uint64_t)src[4] << 32;
    if (format < 2) header = 3, regenerated = (bits >> 4) & 1023, compressed = (bits >> 14) & 1023;
    else if (format == 2) header = 4, regenerated = (bits >> 4) & 16383, compressed = (bits >> 18) & 16383;
    else header = 5, regenerated = (bits >> 4) & 262143, compressed = (bits >> 22) & 262143;
    if (regenerated > BLOCK_MAX) FAIL("corrupt input: %zu literals in one block", regenerated);
    if (header + compressed > size) FAIL("truncated input: compressed literals");
    const uint8_t *p = src + header;
    size_t left = compressed;
    if (type == 2) {
        size_t used = huffman_read_table(&d->huffman, p, left);
        if (!used) FAIL("corrupt input: invalid Huffman table");
        d->have_huffman = 1;
        p += used, left -= used;
    } else if (!d->have_huffman) {
        FAIL("corrupt input: literals reuse a Huffman table that was never sent");
    }
    if (!huffman_decode(&d->huffman, p, left, four_streams, d->literals, regenerated))
        FAIL("corrupt input: invalid Huffman-coded literals");
    *literals = d->literals;
    *count = regenerated;
    return header + compressed;
}

enum code_kind { LITERAL_LENGTH, OFFSET, MATCH_LENGTH };

/* One of the three sequence code tables, per its compression mode; *used gets the bytes read.
 * Returns 0 (with the reason recorded) when the table is corrupt or missing. */
static int read_table(code_table *t, int *have, unsigned mode, enum code_kind kind,
                      const uint8_t *src, size_t size, size_t *used) {
    static const char *const NAMES[] = {"literal length", "offset", "match length"};
    static const unsigned MAX_SYMBOL[] = {35, 31, 52}, MAX_LOG[] = {9, 8, 9};
    const char *what = NAMES[kind];
    fse_table fse;
    *used = 0;
    switch (mode) {
    case 0: /* predefined */
        if (kind == LITERAL_LENGTH) fse_build(&fse, LL_DEFAULT, 36, 6);
        else if (kind == OFFSET) fse_build(&fse, OF_DEFAULT, 29, 5);
        else fse_build(&fse, ML_DEFAULT, 53, 6);
        break;
    case 1: /* RLE: one symbol */
        if (size < 1 || src[0] > MAX_SYMBOL[kind]) FAIL("corrupt input: %s RLE symbol", what);
        fse_rle(&fse, src[0]);
        *used = 1;
        break;
    case 2: /* FSE table description */
        if (!(*used = fse_read_table(&fse, src, size, MAX_SYMBOL[kind], MAX_LOG[kind])))
            FAIL("corrupt input: invalid %s table", what);
        break;
    default: /* repeat the previous block's table */
        if (!*have) FAIL("corrupt input: %s table repeated before one was sent", what);
        return 1;
    }
    /* every symbol is <= MAX_SYMBOL[kind] here, so the lookups below are in range */
    for (unsigned state = 0; state < (1u << fse.log); state++) {
        fse_entry e = fse.table[state];
        code_entry *c = &t->table[state];
        c->next_base = e.base, c->next_bits = e.bits;
        if (kind == LITERAL_LENGTH) c->value = LL_BASE[e.symbol], c->extra_bits = LL_BITS[e.symbol];
        else if (kind == MATCH_LENGTH) c->value = ML_BASE[e.symbol], c->extra_bits = ML_BITS[e.symbol];
        else c->value = 1u << e.symbol, c->extra_bits = e.symbol;
    }
    t->log = fse.log;
    *have = 1;
    return 1;
}

/* Copy n bytes in 16-byte steps; may write up to 15 bytes past `to + n` and read as far past
 * `from + n`: both buffers have SLACK bytes for it. One v128 load and store per step, where a
 * variable-size memcpy would be a comparatively slow memory.copy call. */
static inline __attribute__((always_inline, target("simd128"))) void wild_copy(
    uint8_t *to, const uint8_t *from, size_t n) {
    uint8_t *stop = to + n;
    do {
        wasm_v128_store(to, wasm_v128_load(from));
        to += 16, from += 16;
    } while (to < stop);
}

static inline __attribute__((always_inline, target("simd128"))) void copy_match(uint8_t *to, size_t offset, size_t length) {
    const uint8_t *from = to - offset;
    if (offset >= 16) {
        wild_copy(to, from, length);
    } else if (offset >= 8) {
        uint8_t *stop = to + length;
        do {
            memcpy(to, from, 8);
            to += 8, from += 8;
        } while (to < stop);
    } else {
        for (size_t i = 0; i < length; i++) to[i] = from[i];
    }
}

/* A block that would decode past its bound: the output limit, the frame's declared content
 * size, or the block size limit. */
static int64_t block_overflow(decoder *d, int limited) {
    if (limited) return over_limit(d, 0);
    if (d->frame_known && (size_t)(d->frame_end - d->out) < d->block_max)
        FAIL("corrupt input: the frame decodes to more than its declared %llu bytes",
             (unsigned long long)(d->frame_end - d->frame_start));
    FAIL("corrupt input: a block decodes to more than %u bytes", (unsigned)d->block_max);
}

/* simd128 for the 16-byte copies only (plain v128 loads and stores, which wasmer 1.1 runs). */
__attribute__((target("simd128"))) static int64_t decode_sequences(decoder *d, const uint8_t *src, size_t size,
                                const uint8_t *literals, size_t literal_count) {
    const uint8_t *literal_end = literals + literal_count;
    /* A block decodes to at most block_max bytes, never past the frame's declared size, and
     * never past the output limit: reserve that once, then check one bound per sequence. */
    size_t budget = d->block_max;
    if (d->frame_known && (size_t)(d->frame_end - d->out) < budget) budget = (size_t)(d->frame_end - d->out);
    uint64_t room = chonkle_output_limit - (uint64_t)(d->out - d->start);
    int limited = room < budget;
    if (limited) budget = (size_t)room;
    int status = reserve(d, budget, 0);
    if (status != RESERVED) return reserve_failed(d, budget, status);
    const uint8_t *block_end = d->out + budget;
    if (size < 1) FAIL("truncated input: sequences header");
    size_t n = src[0], header = 1;
    if (n >= 128) {
        if (n < 255) {
            if (size < 2) FAIL("truncated input: sequences header");
            n = ((n - 128) << 8) + src[1], header = 2;
        } else {
            if (size < 3) FAIL("truncated input: sequences header");
            n = src[1] + ((size_t)src[2] << 8) + 0x7F00, header = 3;
        }
    }
    if (n == 0) {
        if (header != size) FAIL("corrupt input: bytes after an empty sequences section");
    } else {
        if (header >= size) FAIL("truncated input: sequence modes");
        unsigned modes = src[header++];
        if (modes & 3) FAIL("corrupt input: reserved sequence mode bits set");
        size_t used;
        if (!read_table(&d->ll, &d->have_ll, modes >> 6, LITERAL_LENGTH, src + header,
                        size - header, &used))
            return 0;
        header += used;
        if (!read_table(&d->of, &d->have_of, (modes >> 4) & 3, OFFSET, src + header,
                        size - header, &used))
            return 0;
        header += used;
        if (!read_table(&d->ml, &d->have_ml, (modes >> 2) & 3, MATCH_LENGTH, src + header,
                        size - header, &used))
            return 0;
        header += used;
        backward_bits b;
        if (header >= size || !backward_init(&b, src + header, size - header))
            FAIL("corrupt input: invalid sequences bitstream");
        /* Hot state lives in locals: byte stores through pointers may alias anything, which
         * would make the compiler reload every field of *d after each copy. */
        const code_entry *ll_table = d->ll.table, *of_table = d->of.table, *ml_table = d->ml.table;
        uint32_t rep0 = d->rep[0], rep1 = d->rep[1], rep2 = d->rep[2];
        uint8_t *out = d->out;
        const uint8_t *frame_start = d->frame_start;
        unsigned ll_state = (unsigned)backward_read(&b, d->ll.log);
        unsigned of_state = (unsigned)backward_read(&b, d->of.log);
        unsigned ml_state = (unsigned)backward_read(&b, d->ml.log);
        for (size_t i = 0; i < n; i++) {
            code_entry ll = ll_table[ll_state], of = of_table[of_state], ml = ml_table[ml_state];
            /* a reload leaves >= 57 bits: offset (<= 31) and match length (<= 16) fit */
            backward_reload(&b);
            uint64_t offset_value = of.value + backward_bits_read(&b, of.extra_bits);
            size_t match = ml.value + (size_t)backward_bits_read(&b, ml.extra_bits);
            /* and then literal length (<= 16) and the three state updates (<= 26) */
            backward_reload(&b);
            size_t literal = ll.value + (size_t)backward_bits_read(&b, ll.extra_bits);
            if (i + 1 < n) {
                ll_state = ll.next_base + (unsigned)backward_bits_read(&b, ll.next_bits);
                ml_state = ml.next_base + (unsigned)backward_bits_read(&b, ml.next_bits);
                of_state = of.next_base + (unsigned)backward_bits_read(&b, of.next_bits);
            }
            if (b.consumed > 64) FAIL("corrupt input: sequences bitstream overrun");
            size_t offset;
            if (of.extra_bits > 1) { /* offset codes >= 2: a new offset */
                offset = (size_t)(offset_value - 3);
                rep2 = rep1, rep1 = rep0, rep0 = (uint32_t)offset;
            } else { /* a repeat offset: 1..3, shifted by one after a zero literal length */
                unsigned index = (unsigned)offset_value + (literal == 0);
                if (index == 1) {
                    offset = rep0;
                } else {
                    offset = index == 2 ? rep1 : index == 3 ? rep2 : rep0 - 1;
                    if (index != 2) rep2 = rep1;
                    rep1 = rep0, rep0 = (uint32_t)offset;
                }
            }
            if (literal > (size_t)(literal_end - literals))
                FAIL("corrupt input: sequences use more literals than sent");
            if (literal + match > (size_t)(block_end - out)) {
                d->out = out;
                return block_overflow(d, limited);
            }
            wild_copy(out, literals, literal);
            out += literal, literals += literal;
            if (offset == 0 || offset > (size_t)(out - frame_start))
                FAIL("corrupt input: match offset %zu outside the frame", offset);
            copy_match(out, offset, match);
            out += match;
        }
        d->out = out;
        d->rep[0] = rep0, d->rep[1] = rep1, d->rep[2] = rep2;
        if (!backward_done(&b)) FAIL("corrupt input: sequences bitstream not fully used");
    }
    size_t rest = (size_t)(literal_end - literals);
    if (rest > (size_t)(block_end - d->out)) return block_overflow(d, limited);
    memcpy(d->out, literals, rest);
    d->out += rest;
    return 1;
}

static uint32_t read32le(const uint8_t *p) {
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decode one frame starting at src (after the magic number); returns bytes used or 0. */
static size_t decode_frame(decoder *d, const uint8_t *src, size_t size) {
    const uint8_t *p = src, *end = src + size;
    if (p >= end) return (size_t)chonkle_fail("truncated input: frame header");
    unsigned descriptor = *p++;
    unsigned fcs_flag = descriptor >> 6, single = (descriptor >> 5) & 1, checksum = (descriptor >> 2) & 1;
    unsigned dict_flag = descriptor & 3;
    if (descriptor & 8) return (size_t)chonkle_fail("corrupt input: reserved frame header bit set");
    size_t dict_bytes = dict_flag == 3 ? 4 : dict_flag, fcs_bytes = fcs_flag ? 1u << fcs_flag : single;
    if ((size_t)(end - p) < !single + dict_bytes + fcs_bytes)
        return (size_t)chonkle_fail("truncated input: frame header");
    /* Window_Size reaches 2^41 + 7 * 2^38: 64-bit. All output is kept, so the window only
     * bounds block sizes. */
    uint64_t window = 0;
    if (!single) {
        unsigned exponent = *p >> 3, mantissa = *p & 7;
        uint64_t base = (uint64_t)1 << (10 + exponent);
        window = base + (base / 8) * mantissa;
        p++;
    }
    uint32_t dict = 0;
    for (size_t i = 0; i < dict_bytes; i++) dict |= (uint32_t)p[i] << (8 * i);
    if (dict) return (size_t)chonkle_fail("frames that need a dictionary (id %u) are not supported", dict);
    p += dict_bytes;
    uint64_t content = 0;
    for (size_t i = 0; i < fcs_bytes; i++) content |= (uint64_t)p[i] << (8 * i);
    if (fcs_bytes == 2) content += 256;
    p += fcs_bytes;
    int known = fcs_bytes > 0;
    if (single) window = content;
    d->block_max = window < BLOCK_MAX ? (uint32_t)window : BLOCK_MAX;
    if (known) { /* refused before anything is allocated when over the limit (or 4 GiB) */
        uint64_t used = (uint64_t)(d->out - d->start);
        if (content > chonkle_output_limit || used + content > chonkle_output_limit)
            return (size_t)over_limit(d, used + content);
        int status = reserve(d, content, 1);
        if (status != RESERVED) return (size_t)reserve_failed(d, content, status);
    }
    d->frame_start = d->out;
    d->frame_end = d->out + (size_t)content, d->frame_known = known;
    d->rep[0] = 1, d->rep[1] = 4, d->rep[2] = 8;
    d->have_huffman = d->have_ll = d->have_of = d->have_ml = 0;
    for (int last = 0; !last;) {
        if (end - p < 3) return (size_t)chonkle_fail("truncated input: block header");
        uint32_t header = p[0] | p[1] << 8 | (uint32_t)p[2] << 16;
        p += 3;
        last = header & 1;
        unsigned type = (header >> 1) & 3;
        size_t block = header >> 3;
        if (type == 3) return (size_t)chonkle_fail("corrupt input: reserved block type");
        if (block > d->block_max)
            return (size_t)chonkle_fail("corrupt input: block of %zu bytes, over the frame's maximum of %u",
                                        block, (unsigned)d->block_max);
        if (type < 2) { /* raw or RLE: `block` bytes of output */
            if ((size_t)(end - p) < (type == 1 ? 1 : block))
                return (size_t)chonkle_fail("truncated input: %s block", type == 1 ? "RLE" : "raw");
            if (d->frame_known && block > (size_t)(d->frame_end - d->out))
                return (size_t)chonkle_fail("corrupt input: the frame decodes to more than its declared %llu bytes",
                                            (unsigned long long)content);
            int status = reserve(d, block, 0);
            if (status != RESERVED) return (size_t)reserve_failed(d, block, status);
            if (type == 1) memset(d->out, *p++, block);
            else memcpy(d->out, p, block), p += block;
            d->out += block;
            continue;
        }
        if ((size_t)(end - p) < block) return (size_t)chonkle_fail("truncated input: block");
        const uint8_t *literals;
        size_t count, used = read_literals(d, p, block, &literals, &count);
        if (!used || !decode_sequences(d, p + used, block - used, literals, count)) return 0;
        p += block;
    }
    size_t produced = (size_t)(d->out - d->frame_start);
    if (known && produced != content)
        return (size_t)chonkle_fail("corrupt input: frame decodes to %zu bytes, not the declared %llu",
                                    produced, (unsigned long long)content);
    if (checksum) {
        if (end - p < 4) return (size_t)chonkle_fail("truncated input: missing content checksum");
        if ((uint32_t)xxh64(d->frame_start, produced) != read32le(p))
            return (size_t)chonkle_fail("corrupt input: content checksum mismatch");
        p += 4;
    }
    return (size_t)(p - src);
}

CHONKLE_EXPORT(decode) int64_t decode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    (void)config, (void)config_length;
    static decoder d;
    if (length < 4) FAIL("not a Zstandard stream: %u bytes", length);
    /* the buffer is allocated by the first frame: exactly its size when it declares one */
    d.start = d.out = d.end = d.frame_start = d.frame_end = NULL, d.frame_known = 0;
    d.input_length = length, d.failure = 0;
    const uint8_t *p = input, *end = input + length;
    while (p < end) {
        if (end - p < 4) goto corrupt_tail;
        uint32_t magic = read32le(p);
        p += 4;
        if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) { /* skippable frame */
            if (end - p < 4) goto corrupt_tail;
            uint32_t skip = read32le(p);
            p += 4;
            if ((size_t)(end - p) < skip) goto corrupt_tail;
            p += skip;
            continue;
        }
        if (magic != ZSTD_MAGIC) {
            free(d.start);
            FAIL("not a Zstandard stream: bad magic number 0x%08x at byte %zu", magic,
                 (size_t)(p - 4 - input));
        }
        size_t used = decode_frame(&d, p, (size_t)(end - p));
        if (!used) {
            free(d.start);
            return d.failure;
        }
        p += used;
    }
    if (!d.start && !(d.start = d.out = malloc(SLACK))) FAIL("out of memory");
    return chonkle_result(d.start, (uint32_t)(d.out - d.start));
corrupt_tail:
    free(d.start);
    FAIL("truncated input: incomplete frame header at the end");
}
