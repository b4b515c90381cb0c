/* The entropy coders of Zstandard: FSE (tANS) tables and Huffman literals, plus XXH64. */
#define CHONKLE_SECONDARY_FILE
#include "zstd_internal.h"

/* 32 bits of a forward (LSB-first) bitstream at bitpos; zeros past the end. */
static uint32_t peek32(const uint8_t *src, size_t size, size_t bitpos) {
    uint64_t v = 0;
    size_t byte = bitpos >> 3;
    for (unsigned i = 0; i < 5 && byte + i < size; i++) v |= (uint64_t)src[byte + i] << (8 * i);
    return (uint32_t)(v >> (bitpos & 7));
}

size_t fse_read_table(fse_table *t, const uint8_t *src, size_t size, unsigned max_symbol,
                      unsigned max_log) {
    int16_t counts[256] = {0};
    if (size < 1) return 0;
    /* forward, LSB-first bit reading with a bounds-checked byte fetch */
    size_t bitpos = 0;
#define PEEK32() peek32(src, size, bitpos)
    uint32_t v = PEEK32();
    unsigned log = (v & 15) + 5;
    if (log > max_log) return 0;
    bitpos += 4;
    int remaining = (1 << log) + 1, threshold = 1 << log;
    unsigned nbits = log + 1, symbol = 0;
    int previous_zero = 0;
    while (remaining > 1 && symbol <= max_symbol) {
        if (previous_zero) {
            unsigned repeat;
            do {
                v = PEEK32();
                repeat = v & 3;
                bitpos += 2;
                symbol += repeat;
            } while (repeat == 3 && symbol <= max_symbol + 1);
            if (symbol > max_symbol + 1) return 0;
            previous_zero = 0;
            if (symbol > max_symbol) break;
        }
        v = PEEK32();
        int max = (2 * threshold - 1) - remaining, count;
        if ((int)(v & (unsigned)(threshold - 1)) < max) {
            count = (int)(v & (unsigned)(threshold - 1));
            bitpos += nbits - 1;
        } else {
            count = (int)(v & (unsigned)(2 * threshold - 1));
            if (count >= threshold) count -= max;
            bitpos += nbits;
        }
        count--; /* -1 means "less than 1": a probability of 1 / table size */
        remaining -= count < 0 ? -count : count;
        counts[symbol++] = (int16_t)count;
        previous_zero = count == 0;
        if (remaining < 1) return 0;
        while (remaining < threshold) nbits--, threshold >>= 1;
    }
#undef PEEK32
    if (remaining != 1 || bitpos > size * 8) return 0;
    if (!fse_build(t, counts, symbol, log)) return 0;
    return (bitpos + 7) / 8;
}

int fse_build(fse_table *t, const int16_t *counts, unsigned symbols, unsigned log) {
    unsigned size = 1u << log, high = size - 1;
    uint16_t next[256];
    uint8_t spread[1 << FSE_MAX_LOG];
    if (log > FSE_MAX_LOG || symbols > 256) return 0;
    for (unsigned s = 0; s < symbols; s++) { /* "less than 1" symbols take the top cells */
        if (counts[s] == -1) {
            spread[high--] = (uint8_t)s;
            next[s] = 1;
        } else {
            next[s] = (uint16_t)counts[s];
        }
    }
    unsigned step = (size >> 1) + (size >> 3) + 3, position = 0, mask = size - 1;
    for (unsigned s = 0; s < symbols; s++) {
        for (int i = 0; i < counts[s]; i++) {
            spread[position] = (uint8_t)s;
            do position = (position + step) & mask; while (position > high);
        }
    }
    if (position != 0) return 0; /* counts did not fill the table exactly */
    for (unsigned state = 0; state < size; state++) {
        unsigned s = spread[state], n = next[s]++;
        unsigned bits = log - highbit(n);
        t->table[state].symbol = (uint8_t)s;
        t->table[state].bits = (uint8_t)bits;
        t->table[state].base = (uint16_t)((n << bits) - size);
    }
    t->log = log;
    return 1;
}

void fse_rle(fse_table *t, uint8_t symbol) {
    t->table[0] = (fse_entry){0, symbol, 0};
    t->log = 0;
}

/* Huffman weights -> decode table. weights[n] is implied by the others (RFC 8878 4.2.1.3). */
static int huffman_build(huffman_table *h, uint8_t *weights, unsigned n) {
    uint32_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (weights[i] > HUF_MAX_BITS) return 0;
        if (weights[i]) total += 1u << (weights[i] - 1);
    }
    if (total == 0) return 0;
    unsigned max_bits = highbit(total) + 1;
    if (max_bits > HUF_MAX_BITS) return 0;
    uint32_t left = (1u << max_bits) - total;
    if (left & (left - 1)) return 0; /* the implied last weight must be a power of two */
    weights[n] = (uint8_t)(highbit(left) + 1);
    n++;
    /* canonical order: by weight ascending (longest codes first), then symbol */
    unsigned rank_start[HUF_MAX_BITS + 2] = {0}, count[HUF_MAX_BITS + 2] = {0};
    for (unsigned i = 0; i < n; i++) count[weights[i]]++;
    unsigned position = 0;
    for (unsigned w = 1; w <= max_bits; w++) {
        rank_start[w] = position;
        position += count[w] << (w - 1);
    }
    for (unsigned s = 0; s < n; s++) {
        unsigned w = weights[s];
        if (!w) continue;
        unsigned length = 1u << (w - 1), bits = max_bits + 1 - w;
        uint16_t entry = (uint16_t)(s << 8 | bits);
        for (unsigned i = 0; i < length; i++) h->table[rank_start[w] + i] = entry;
        rank_start[w] += length;
    }
    h->max_bits = max_bits;
    /* The pair table: after the first symbol's l1 bits, the next max_bits - l1 bits of the
     * index start the following code; the one-symbol table, looked up with those bits moved
     * to the top, gives the second symbol, valid if its code is no longer than what is left. */
    unsigned size = 1u << max_bits;
    for (unsigned i = 0; i < size; i++) {
        uint16_t first = h->table[i];
        unsigned l1 = first & 0xFF;
        uint16_t second = h->table[(i << l1) & (size - 1)];
        unsigned l2 = second & 0xFF;
        h->pairs[i] = l1 + l2 <= max_bits
                          ? (uint32_t)(first >> 8) | (uint32_t)(second & 0xFF00) |
                                (l1 + l2) << 16 | 2u << 24
                          : (uint32_t)(first >> 8) | l1 << 16 | 1u << 24;
    }
    return 1;
}

size_t huffman_read_table(huffman_table *h, const uint8_t *src, size_t size) {
    uint8_t weights[258] = {0};
    unsigned n;
    size_t used;
    if (size < 1) return 0;
    unsigned header = src[0];
    if (header >= 128) { /* direct: 4-bit weights */
        n = header - 127;
        used = 1 + (n + 1) / 2;
        if (used > size || n > 255) return 0;
        for (unsigned i = 0; i < n; i++)
            weights[i] = i & 1 ? src[1 + i / 2] & 15 : src[1 + i / 2] >> 4;
    } else { /* FSE-compressed weights, two interleaved states */
        used = 1 + header;
        if (used > size || header == 0) return 0;
        fse_table t;
        size_t table_size = fse_read_table(&t, src + 1, header, 255, 6);
        if (!table_size || table_size >= header) return 0;
        backward_bits b;
        if (!backward_init(&b, src + 1 + table_size, header - table_size)) return 0;
        unsigned s1 = (unsigned)backward_read(&b, t.log), s2 = (unsigned)backward_read(&b, t.log);
        n = 0;
        for (;;) {
            backward_reload(&b);
            if (n > 253) return 0; /* at most 255 explicit weights, and two more may come */
            weights[n++] = t.table[s1].symbol;
            s1 = t.table[s1].base + (unsigned)backward_read(&b, t.table[s1].bits);
            if (b.consumed > 64) { weights[n++] = t.table[s2].symbol; break; }
            weights[n++] = t.table[s2].symbol;
            s2 = t.table[s2].base + (unsigned)backward_read(&b, t.table[s2].bits);
            if (b.consumed > 64) { weights[n++] = t.table[s1].symbol; break; }
        }
        if (b.consumed > 64 + 8 || b.ptr != b.start) return 0;
    }
    if (!huffman_build(h, weights, n)) return 0;
    return used;
}

static inline uint8_t huffman_symbol(const huffman_table *h, backward_bits *b) {
    uint16_t entry = h->table[(b->container << (b->consumed & 63)) >> (64 - h->max_bits)];
    b->consumed += entry & 0xFF;
    return (uint8_t)(entry >> 8);
}

/* Finish one stream: checked reloads, one symbol at a time. */
static int huffman_tail(const huffman_table *h, backward_bits *b, uint8_t *out, uint8_t *end) {
    while (out < end) {
        backward_reload(b);
        if (b->consumed > 64) return 0;
        *out++ = huffman_symbol(h, b);
    }
    return backward_done(b);
}

int huffman_decode(const huffman_table *h, const uint8_t *src, size_t size, int four_streams,
                   uint8_t *out, size_t regenerated) {
    backward_bits b[4];
    if (!four_streams) {
        if (!backward_init(&b[0], src, size)) return 0;
        return huffman_tail(h, &b[0], out, out + regenerated);
    }
    if (size < 10) return 0;
    size_t sizes[4] = {src[0] | src[1] << 8, src[2] | src[3] << 8, src[4] | src[5] << 8, 0};
    if (sizes[0] + sizes[1] + sizes[2] > size - 6) return 0;
    sizes[3] = size - 6 - sizes[0] - sizes[1] - sizes[2];
    size_t segment = (regenerated + 3) / 4;
    if (segment * 3 > regenerated) return 0;
    const uint8_t *stream = src + 6;
    uint8_t *at[4], *end[4];
    for (int k = 0; k < 4; k++) {
        if (!backward_init(&b[k], stream, sizes[k])) return 0;
        stream += sizes[k];
        at[k] = out + k * segment;
        end[k] = k < 3 ? at[k] + segment : out + regenerated;
    }
    /* The four streams are independent: decoding them in one loop lets the CPU overlap
     * their table lookups. Their state is copied into scalars so it stays in Wasm locals
     * (registers) instead of linear memory. Five lookups per stream per reload: a reload
     * leaves >= 57 bits, and a lookup takes at most 11. */
    const uint32_t *pairs = h->pairs;
    const unsigned shift = 64 - h->max_bits;
    uint64_t c0 = b[0].container, c1 = b[1].container, c2 = b[2].container, c3 = b[3].container;
    unsigned n0 = b[0].consumed, n1 = b[1].consumed, n2 = b[2].consumed, n3 = b[3].consumed;
    const uint8_t *p0 = b[0].ptr, *p1 = b[1].ptr, *p2 = b[2].ptr, *p3 = b[3].ptr;
    uint8_t *o0 = at[0], *o1 = at[1], *o2 = at[2], *o3 = at[3];
#define RELOAD(c, n, p)                \
    p -= n >> 3, n &= 7, c = read64(p)
/* One lookup, one or two symbols: both bytes are stored, the output advances by the count. */
#define SYMBOL(c, n, o)                                    \
    do {                                                   \
        uint32_t e_ = pairs[(c << n) >> shift];            \
        n += (e_ >> 16) & 0xFF;                            \
        uint16_t two_ = (uint16_t)e_;                      \
        memcpy(o, &two_, 2);                               \
        o += e_ >> 24;                                     \
    } while (0)
    /* p_k - start_k >= 8 + 8 keeps every reload (which moves at most 8 bytes) in bounds; up to
     * 10 symbols per stream per round, so 11 bytes of room keeps every store in its segment. */
    while (o3 + 11 <= end[3] && o0 + 11 <= end[0] && o1 + 11 <= end[1] && o2 + 11 <= end[2] &&
           p0 - b[0].start >= 16 && p1 - b[1].start >= 16 && p2 - b[2].start >= 16 &&
           p3 - b[3].start >= 16) {
        RELOAD(c0, n0, p0), RELOAD(c1, n1, p1), RELOAD(c2, n2, p2), RELOAD(c3, n3, p3);
        for (int i = 0; i < 5; i++) {
            SYMBOL(c0, n0, o0);
            SYMBOL(c1, n1, o1);
            SYMBOL(c2, n2, o2);
            SYMBOL(c3, n3, o3);
        }
    }
#undef RELOAD
#undef SYMBOL
    b[0].container = c0, b[1].container = c1, b[2].container = c2, b[3].container = c3;
    b[0].consumed = n0, b[1].consumed = n1, b[2].consumed = n2, b[3].consumed = n3;
    b[0].ptr = p0, b[1].ptr = p1, b[2].ptr = p2, b[3].ptr = p3;
    at[0] = o0, at[1] = o1, at[2] = o2, at[3] = o3;
    for (int k = 0; k < 4; k++)
        if (!huffman_tail(h, &b[k], at[k], end[k])) return 0;
    return 1;
}

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t xxh_round(uint64_t acc, uint64_t input) {
    return rotl(acc + input * P2, 31) * P1;
}
static inline uint64_t xxh_merge(uint64_t acc, uint64_t v) {
    return (acc ^ xxh_round(0, v)) * P1 + P4;
}

uint64_t xxh64(const uint8_t *p, size_t length) {
    const uint8_t *end = p + length;
    uint64_t h;
    if (length >= 32) {
        uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1;
        for (; p + 32 <= end; p += 32) {
            v1 = xxh_round(v1, read64(p)), v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16)), v4 = xxh_round(v4, read64(p + 24));
        }
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = xxh_merge(h, v1), h = xxh_merge(h, v2), h = xxh_merge(h, v3), h = xxh_merge(h, v4);
    } else {
        h = P5;
    }
    h += length;
    for (; p + 8 <= end; p += 8) h = rotl(h ^ xxh_round(0, read64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
        uint32_t w;
        memcpy(&w, p, 4);
        h = rotl(h ^ (uint64_t)w * P1, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) h = rotl(h ^ (uint64_t)*p * P5, 11) * P1;
    h ^= h >> 33, h *= P2, h ^= h >> 29, h *= P3, h ^= h >> 32;
    return h;
}
