/* A table-driven inflate for zlib streams (RFC 1950 around RFC 1951).
 *
 * Speed comes from a 64-bit bit buffer refilled 8 bytes at a time, two-level Huffman tables
 * whose entries carry the symbol's base value and extra-bit count, and match copies of 8
 * bytes at a time into an output buffer with slack at its end. The slow paths (input end,
 * output growth) are taken only near the edges. Every input is validated: a malformed
 * stream is a failure result, never a read or write out of bounds.
 */
#define CHONKLE_SECONDARY_FILE
#include "zlib_internal.h"

/* A table entry: value << 16 | flags << 8 | bits to consume. */
enum {
    F_LITERAL = 0x80,
    F_END = 0x40,
    F_SUBTABLE = 0x20, /* value = subtable offset; low nibble of flags = its index bits */
    F_INVALID = 0x10,  /* otherwise the low nibble of flags is the extra-bit count */
};
#define ENTRY(value, flags, bits) ((uint32_t)(value) << 16 | (uint32_t)(flags) << 8 | (bits))

enum { LITLEN_ROOT = 10, DIST_ROOT = 8, CODELEN_ROOT = 7 };
enum { LITLEN_TABLE = 2048 + 1024, DIST_TABLE = 1024 + 512, CODELEN_TABLE = 128 };

/* What a symbol decodes to, before its code length is known. */
static uint32_t litlen_symbol(unsigned symbol) {
    if (symbol < 256) return ENTRY(symbol, F_LITERAL, 0);
    if (symbol == 256) return ENTRY(0, F_END, 0);
    if (symbol < 286) return ENTRY(LENGTH_BASE[symbol - 257], LENGTH_EXTRA[symbol - 257], 0);
    return ENTRY(0, F_INVALID, 0);
}
static uint32_t dist_symbol(unsigned symbol) {
    return symbol < 30 ? ENTRY(DIST_BASE[symbol], DIST_EXTRA[symbol], 0) : ENTRY(0, F_INVALID, 0);
}
static uint32_t plain_symbol(unsigned symbol) { return ENTRY(symbol, 0, 0); }

/* Build a canonical-Huffman decode table for code lengths lens[0..n). Returns 0 for an
 * over-subscribed code, and for an incomplete one unless `single_ok` and it is a single
 * one-bit code (which RFC 1951 streams use for a block with one distance), as zlib does. */
static int build_table(const uint8_t *lens, unsigned n, unsigned root, uint32_t (*symbol)(unsigned),
                       uint32_t *table, unsigned capacity, int single_ok) {
    unsigned count[16] = {0}, offsets[16], max = 0;
    uint16_t sorted[288];
    for (unsigned s = 0; s < n; s++) count[lens[s]]++;
    for (unsigned len = 15; len > 0; len--)
        if (count[len]) { max = len; break; }
    int left = 1;
    for (unsigned len = 1; len <= 15; len++) {
        left = (left << 1) - (int)count[len];
        if (left < 0) return 0; /* over-subscribed */
    }
    if (max == 0 || left > 0) { /* no codes, or one short code: unused entries are invalid */
        if (max > 1 || (max == 1 && !single_ok)) return 0;
        for (unsigned i = 0; i < (1u << root); i++) table[i] = ENTRY(0, F_INVALID, 1);
        if (max == 0) return 1;
    }
    offsets[1] = 0;
    for (unsigned len = 1; len < 15; len++) offsets[len + 1] = offsets[len] + count[len];
    for (unsigned s = 0; s < n; s++)
        if (lens[s]) sorted[offsets[lens[s]]++] = (uint16_t)s;

    unsigned code = 0; /* the current code, bit-reversed (deflate sends codes MSB first) */
    unsigned next = 1u << root, open_low = ~0u, sub_bits = 0, sub_start = 0;
    unsigned index = 0;
    for (unsigned len = 1; len <= max; len++) {
        for (unsigned k = 0; k < count[len]; k++, index++) {
            uint32_t entry = symbol(sorted[index]);
            if (len <= root) {
                for (unsigned i = code; i < (1u << root); i += 1u << len) table[i] = entry | len;
            } else {
                unsigned low = code & ((1u << root) - 1);
                if (low != open_low) { /* open a subtable big enough for this prefix's codes */
                    sub_bits = len - root;
                    int room = 1 << sub_bits;
                    for (unsigned l = len; l < max;) {
                        room -= (int)count[l] - (l == len ? (int)k : 0);
                        if (room <= 0) break;
                        l++, sub_bits++, room <<= 1;
                    }
                    if (next + (1u << sub_bits) > capacity) return 0;
                    sub_start = next, next += 1u << sub_bits, open_low = low;
                    table[low] = ENTRY(sub_start, F_SUBTABLE | sub_bits, root);
                    for (unsigned i = 0; i < (1u << sub_bits); i++)
                        table[sub_start + i] = ENTRY(0, F_INVALID, 1);
                }
                for (unsigned i = code >> root; i < (1u << sub_bits); i += 1u << (len - root))
                    table[sub_start + i] = entry | (len - root);
            }
            unsigned step = 1u << (len - 1); /* increment the reversed code */
            while (code & step) step >>= 1;
            code = step ? (code & (step - 1)) + step : 0;
        }
    }
    return 1;
}

typedef struct {
    const uint8_t *in, *start, *end;
    uint64_t bits;
    unsigned count;   /* valid bits in `bits` */
    unsigned overrun; /* zero bytes fed past the end of the input */
    uint8_t *out_start, *out, *out_end; /* out_end leaves 16 bytes of slack */
    int64_t failure; /* the call's failure result: 0, or chonkle_fail_limit's */
} stream;

static void refill(stream *s) {
    if (s->end - s->in >= 8) {
        uint64_t word;
        memcpy(&word, s->in, 8);
        s->bits |= word << s->count;
        s->in += (63 - s->count) >> 3;
        s->count |= 56;
        return;
    }
    while (s->count <= 56) {
        if (s->in < s->end) s->bits |= (uint64_t)*s->in++ << s->count;
        else s->overrun++;
        s->count += 8;
    }
}

static uint32_t take(stream *s, unsigned n) {
    if (s->count < n) refill(s);
    uint32_t value = (uint32_t)(s->bits & ((1ull << n) - 1));
    s->bits >>= n, s->count -= n;
    return value;
}

enum { GROWN = 1, OVER_LIMIT = 0, OUT_OF_MEMORY = -1 };

/* Make room for `need` more output bytes: double the buffer, but never past the output limit
 * (so a bomb stops at the limit, having allocated about that much). 64-bit arithmetic. */
static int grow(stream *s, size_t need) {
    uint64_t used = (uint64_t)(s->out - s->out_start), capacity = (uint64_t)(s->out_end - s->out_start);
    if (used + need <= capacity) return GROWN;
    uint64_t limit = chonkle_output_limit, wanted = capacity * 2;
    if (used + need > limit) return OVER_LIMIT;
    if (wanted < used + need) wanted = used + need;
    if (wanted > limit) wanted = limit;
    if (wanted + 16 > CHONKLE_ALLOCATION_MAX && used + need + 16 <= CHONKLE_ALLOCATION_MAX) wanted = CHONKLE_ALLOCATION_MAX - 16;
    /* when linear memory cannot hold the doubled buffer, settle for less: halve the extra
     * room until it fits, down to exactly what is needed */
    uint8_t *grown;
    while (!(grown = chonkle_grow(s->out_start, (size_t)capacity + 16, wanted + 16)) && wanted > used + need)
        wanted = used + need + (wanted - used - need) / 2;
    if (!grown) return OUT_OF_MEMORY;
    s->out_start = grown, s->out = grown + (size_t)used, s->out_end = grown + (size_t)wanted;
    return GROWN;
}

/* The failure result for a grow() that did not succeed. */
static int64_t grow_failed(stream *s, size_t need, int status) {
    uint64_t size = (uint64_t)(s->out - s->out_start) + need;
    if (status == OVER_LIMIT) return s->failure = chonkle_fail_limit(size), 0;
    return chonkle_fail("out of memory for %llu bytes of output", (unsigned long long)size);
}

static uint32_t decode_symbol(stream *s, const uint32_t *table, unsigned root) {
    uint32_t entry = table[s->bits & ((1u << root) - 1)];
    if (entry & (F_SUBTABLE << 8)) {
        s->bits >>= root, s->count -= root;
        entry = table[(entry >> 16) + (s->bits & ((1u << ((entry >> 8) & 15)) - 1))];
    }
    s->bits >>= entry & 0xFF, s->count -= entry & 0xFF;
    return entry;
}

#define FAIL(...) return chonkle_fail(__VA_ARGS__)

static int64_t inflate_block(stream *s, const uint32_t *litlen, const uint32_t *dist) {
    int status;
    size_t need;
    for (;;) {
        refill(s); /* >= 56 bits: enough for a length and a distance with their extra bits */
        if (s->overrun > 8) FAIL("truncated input: the stream ends inside a block");
        uint32_t entry = decode_symbol(s, litlen, LITLEN_ROOT);
        if (entry & (F_LITERAL << 8)) {
            if (s->out >= s->out_end && (status = grow(s, need = 1)) != GROWN) goto failed;
            *s->out++ = (uint8_t)(entry >> 16);
            if (s->count >= 32) { /* room for a second literal without a refill */
                entry = decode_symbol(s, litlen, LITLEN_ROOT);
                if (entry & (F_LITERAL << 8)) {
                    if (s->out >= s->out_end && (status = grow(s, need = 1)) != GROWN) goto failed;
                    *s->out++ = (uint8_t)(entry >> 16);
                    continue;
                }
            } else {
                continue;
            }
        }
        if (entry & ((F_END | F_INVALID) << 8)) {
            if (entry & (F_END << 8)) return 1;
            FAIL("corrupt input: invalid literal/length code");
        }
        unsigned extra = (entry >> 8) & 15;
        unsigned length = (entry >> 16) + (unsigned)(s->bits & ((1u << extra) - 1));
        s->bits >>= extra, s->count -= extra;
        if (s->count < 28) refill(s);
        entry = decode_symbol(s, dist, DIST_ROOT);
        if (entry & (F_INVALID << 8)) FAIL("corrupt input: invalid distance code");
        extra = (entry >> 8) & 15;
        size_t distance = (entry >> 16) + (size_t)(s->bits & ((1u << extra) - 1));
        s->bits >>= extra, s->count -= extra;
        if (distance > (size_t)(s->out - s->out_start))
            FAIL("corrupt input: distance %zu reaches before the start of the data", distance);
        if ((size_t)(s->out_end - s->out) < length && (status = grow(s, need = length)) != GROWN)
            goto failed;
        uint8_t *to = s->out;
        const uint8_t *from = to - distance;
        s->out += length;
        if (distance >= 8) { /* may write up to 7 bytes past the match: the slack allows it */
            do {
                uint64_t word;
                memcpy(&word, from, 8);
                memcpy(to, &word, 8);
                to += 8, from += 8;
            } while (to < s->out);
        } else if (distance == 1) {
            memset(to, *from, length);
        } else {
            while (to < s->out) *to++ = *from++;
        }
    }
failed:
    return grow_failed(s, need, status);
}

static int64_t read_dynamic_tables(stream *s, uint32_t *litlen, uint32_t *dist) {
    static uint32_t codelen_table[CODELEN_TABLE];
    uint8_t lens[286 + 30] = {0}, codelen_lens[19] = {0};
    unsigned nlit = take(s, 5) + 257, ndist = take(s, 5) + 1, ncode = take(s, 4) + 4;
    if (nlit > 286 || ndist > 30) FAIL("corrupt input: %u literal/length or %u distance codes", nlit, ndist);
    for (unsigned i = 0; i < ncode; i++) codelen_lens[CODE_LENGTH_ORDER[i]] = (uint8_t)take(s, 3);
    if (!build_table(codelen_lens, 19, CODELEN_ROOT, plain_symbol, codelen_table, CODELEN_TABLE, 0))
        FAIL("corrupt input: invalid code length code");
    for (unsigned i = 0; i < nlit + ndist;) {
        if (s->count < 16) refill(s);
        if (s->overrun > 8) FAIL("truncated input: the stream ends inside a block header");
        uint32_t entry = decode_symbol(s, codelen_table, CODELEN_ROOT);
        if (entry & (F_INVALID << 8)) FAIL("corrupt input: invalid code length code");
        unsigned symbol = entry >> 16, repeat, value = 0;
        if (symbol < 16) {
            lens[i++] = (uint8_t)symbol;
            continue;
        }
        if (symbol == 16) {
            if (i == 0) FAIL("corrupt input: code length repeat with nothing to repeat");
            value = lens[i - 1], repeat = 3 + take(s, 2);
        } else {
            repeat = symbol == 17 ? 3 + take(s, 3) : 11 + take(s, 7);
        }
        if (i + repeat > nlit + ndist) FAIL("corrupt input: code lengths overflow the table");
        while (repeat--) lens[i++] = (uint8_t)value;
    }
    if (lens[256] == 0) FAIL("corrupt input: no end-of-block code");
    if (!build_table(lens, nlit, LITLEN_ROOT, litlen_symbol, litlen, LITLEN_TABLE, 1))
        FAIL("corrupt input: invalid literal/length code lengths");
    if (!build_table(lens + nlit, ndist, DIST_ROOT, dist_symbol, dist, DIST_TABLE, 1))
        FAIL("corrupt input: invalid distance code lengths");
    return 1;
}

static int fixed_tables(uint32_t *litlen, uint32_t *dist) {
    uint8_t lens[288];
    for (unsigned i = 0; i < 288; i++) lens[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    if (!build_table(lens, 288, LITLEN_ROOT, litlen_symbol, litlen, LITLEN_TABLE, 0)) return 0;
    for (unsigned i = 0; i < 32; i++) lens[i] = 5; /* 30 and 31 exist, and decode as invalid */
    return build_table(lens, 32, DIST_ROOT, dist_symbol, dist, DIST_TABLE, 0);
}

/* The byte position just after the bits consumed so far, after dropping a partial byte. */
static size_t align_to_byte(stream *s) {
    s->bits >>= s->count & 7, s->count &= ~7u;
    return (size_t)(s->in - s->start) + s->overrun - s->count / 8;
}

int64_t inflate_zlib(const uint8_t *input, uint32_t length) {
    static uint32_t litlen[LITLEN_TABLE], dist[DIST_TABLE], fixed_litlen[LITLEN_TABLE],
        fixed_dist[DIST_TABLE];
    static int have_fixed = 0;
    if (length < 6) FAIL("truncated input: %u bytes cannot hold a zlib stream", length);
    if ((input[0] & 0x0F) != 8 || (input[0] >> 4) > 7 || ((input[0] << 8) | input[1]) % 31)
        FAIL("not a zlib stream: bad header 0x%02x%02x", input[0], input[1]);
    if (input[1] & 0x20) FAIL("zlib streams with a preset dictionary are not supported");
    if (!have_fixed && !(have_fixed = fixed_tables(fixed_litlen, fixed_dist)))
        FAIL("internal error: cannot build the fixed Huffman tables");
    /* a first guess of 4x the input, in 64 bits (4 * length wraps for 1 GiB), capped at the
     * limit and at what one buffer can hold; grow() doubles it from there */
    uint64_t capacity = (uint64_t)length * 4 + 1024;
    if (capacity > chonkle_output_limit) capacity = chonkle_output_limit;
    if (capacity > CHONKLE_ALLOCATION_MAX - 16) capacity = CHONKLE_ALLOCATION_MAX - 16;
    stream s = {input + 2, input, input + length - 4, 0, 0, 0, NULL, NULL, NULL, 0};
    s.out_start = s.out = malloc((size_t)capacity + 16);
    if (!s.out) FAIL("out of memory");
    s.out_end = s.out + (size_t)capacity;
    int64_t ok = 1;
    for (int last = 0; !last && ok;) {
        last = (int)take(&s, 1);
        unsigned type = take(&s, 2);
        if (type == 0) {
            size_t at = align_to_byte(&s);
            if ((uint64_t)at + 4 > (uint64_t)(s.end - s.start)) { ok = chonkle_fail("truncated input: stored block header"); break; }
            const uint8_t *p = s.start + at;
            unsigned len = p[0] | p[1] << 8, nlen = p[2] | p[3] << 8;
            if (len != (~nlen & 0xFFFF)) { ok = chonkle_fail("corrupt input: stored block length check"); break; }
            if ((uint64_t)at + 4 + len > (uint64_t)(s.end - s.start)) { ok = chonkle_fail("truncated input: stored block"); break; }
            int status = grow(&s, len);
            if (status != GROWN) { ok = grow_failed(&s, len, status); break; }
            memcpy(s.out, p + 4, len);
            s.out += len;
            s.in = p + 4 + len, s.bits = 0, s.count = 0, s.overrun = 0;
        } else if (type == 1) {
            ok = inflate_block(&s, fixed_litlen, fixed_dist);
        } else if (type == 2) {
            ok = read_dynamic_tables(&s, litlen, dist) && inflate_block(&s, litlen, dist);
        } else {
            ok = chonkle_fail("corrupt input: reserved block type 3");
        }
    }
    if (!ok) {
        free(s.out_start);
        return s.failure;
    }
    size_t at = align_to_byte(&s);
    if (at > (size_t)(s.end - s.start)) {
        free(s.out_start);
        FAIL("truncated input: the stream ends inside its last block");
    }
    const uint8_t *trailer = s.start + at;
    if (trailer + 4 > input + length) {
        free(s.out_start);
        FAIL("truncated input: missing Adler-32 checksum");
    }
    size_t size = (size_t)(s.out - s.out_start);
    uint32_t expected = (uint32_t)trailer[0] << 24 | trailer[1] << 16 | trailer[2] << 8 | trailer[3];
    if (adler32(s.out_start, size) != expected) {
        free(s.out_start);
        FAIL("corrupt input: Adler-32 checksum mismatch");
    }
    return chonkle_result(s.out_start, (uint32_t)size);
}
