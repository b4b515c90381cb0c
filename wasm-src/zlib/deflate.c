/* A deflate encoder for zlib streams: hash-chain LZ77 over a 32 KiB window (greedy at low
 * levels, lazy matching from level 4), blocks of up to 16384 symbols, each sent as whichever
 * of dynamic Huffman, fixed Huffman or stored is smallest. Level 0 stores.
 */
#define CHONKLE_SECONDARY_FILE
#include "zlib_internal.h"

enum { WINDOW = 32768, HASH_BITS = 15, MIN_MATCH = 3, MAX_MATCH = 258, BLOCK_SYMBOLS = 16384 };

typedef struct {
    uint16_t good, lazy, nice, chain;
} level_params;

/* good: a match length after which the lazy search is shortened; lazy: only look for a
 * better match when the current one is shorter; nice: stop searching at this length;
 * chain: candidates examined per search. */
static const level_params LEVELS[10] = {
    {0, 0, 0, 0},       {4, 0, 8, 4},       {4, 0, 16, 8},       {4, 0, 32, 32},
    {4, 4, 16, 16},     {8, 16, 32, 32},    {8, 16, 128, 128},   {8, 32, 128, 256},
    {32, 128, 258, 1024}, {32, 258, 258, 4096},
};

typedef struct {
    uint8_t *out, *at, *end; /* end: the capacity, at most the output limit */
    uint64_t bits;
    unsigned count;
} bit_writer;

/* Whether `bits` more bits fit in the output. */
static int room(const bit_writer *w, uint64_t bits) {
    return (w->count + bits + 7) / 8 <= (uint64_t)(w->end - w->at);
}

static void put(bit_writer *w, uint32_t value, unsigned n) {
    w->bits |= (uint64_t)value << w->count;
    w->count += n;
    while (w->count >= 8) *w->at++ = (uint8_t)w->bits, w->bits >>= 8, w->count -= 8;
}

static void flush_to_byte(bit_writer *w) {
    if (w->count) *w->at++ = (uint8_t)w->bits;
    w->bits = 0, w->count = 0;
}

/* Symbols of one block: literals (dist 0) and matches. */
typedef struct {
    uint16_t litlen[BLOCK_SYMBOLS]; /* literal byte, or match length */
    uint16_t dist[BLOCK_SYMBOLS];   /* 0 for a literal */
    unsigned n;
    size_t start; /* input offset of the block's first byte */
} block;

static unsigned length_code(unsigned length) { /* 3..258 -> 0..28 (symbol - 257) */
    unsigned c = 0;
    while (c < 28 && LENGTH_BASE[c + 1] <= length) c++;
    return c;
}

static unsigned dist_code(unsigned distance) {
    unsigned c = 0;
    while (c < 29 && DIST_BASE[c + 1] <= distance) c++;
    return c;
}

static uint8_t LENGTH_CODE[MAX_MATCH + 1];
static uint8_t DIST_CODE_SMALL[513]; /* distances 1..512; larger ones use (d - 1) >> 7 */
static uint8_t DIST_CODE_LARGE[256];

static void init_codes(void) {
    for (unsigned l = MIN_MATCH; l <= MAX_MATCH; l++) LENGTH_CODE[l] = (uint8_t)length_code(l);
    for (unsigned d = 1; d <= 512; d++) DIST_CODE_SMALL[d] = (uint8_t)dist_code(d);
    for (unsigned k = 4; k < 256; k++) DIST_CODE_LARGE[k] = (uint8_t)dist_code((k << 7) + 1);
}

static unsigned dist_symbol(unsigned d) { return d <= 512 ? DIST_CODE_SMALL[d] : DIST_CODE_LARGE[(d - 1) >> 7]; }

/* Huffman code lengths for `freq`, limited to `limit` bits: build an optimal tree, then
 * move overlong codes up to the limit and lengthen the shortest ones until the Kraft sum
 * is exact again. */
static void code_lengths(const uint32_t *freq, unsigned n, unsigned limit, uint8_t *lens) {
    uint32_t weight[2 * 288];
    int16_t parent[2 * 288];
    uint16_t symbols[288];
    unsigned used = 0;
    memset(lens, 0, n);
    for (unsigned s = 0; s < n; s++)
        if (freq[s]) symbols[used++] = (uint16_t)s;
    if (used == 0) return;
    if (used == 1) { lens[symbols[0]] = 1; return; }
    /* sort symbols by frequency (insertion sort: n <= 288) */
    for (unsigned i = 1; i < used; i++) {
        uint16_t s = symbols[i];
        unsigned j = i;
        while (j > 0 && freq[symbols[j - 1]] > freq[s]) symbols[j] = symbols[j - 1], j--;
        symbols[j] = s;
    }
    /* two-queue Huffman: leaves in order, internal nodes created in nondecreasing order */
    for (unsigned i = 0; i < used; i++) weight[i] = freq[symbols[i]];
    unsigned leaf = 0, node = used, next_node = used;
    for (unsigned k = 0; k < used - 1; k++) {
        unsigned pick[2];
        for (int p = 0; p < 2; p++) {
            if (leaf < used && (node >= next_node || weight[leaf] <= weight[node])) pick[p] = leaf++;
            else pick[p] = node++;
        }
        weight[next_node] = weight[pick[0]] + weight[pick[1]];
        parent[pick[0]] = parent[pick[1]] = (int16_t)next_node;
        next_node++;
    }
    unsigned depth[2 * 288], count[33] = {0};
    depth[next_node - 1] = 0;
    for (unsigned i = next_node - 1; i-- > 0;) depth[i] = depth[parent[i]] + 1;
    for (unsigned i = 0; i < used; i++) count[depth[i] > 32 ? 32 : depth[i]]++;
    /* limit lengths, keeping the Kraft sum at exactly 1 */
    for (unsigned l = limit + 1; l <= 32; l++) count[limit] += count[l], count[l] = 0;
    uint64_t kraft = 0;
    for (unsigned l = 1; l <= limit; l++) kraft += (uint64_t)count[l] << (limit - l);
    while (kraft > (1ull << limit)) {
        count[limit]--;
        for (unsigned l = limit - 1; l > 0; l--) {
            if (count[l]) { count[l]--, count[l + 1] += 2; break; }
        }
        kraft--;
    }
    /* most frequent symbols get the shortest codes */
    unsigned i = used;
    for (unsigned l = 1; l <= limit; l++)
        for (unsigned c = 0; c < count[l]; c++) lens[symbols[--i]] = (uint8_t)l;
}

/* Canonical codes for `lens`, bit-reversed for deflate's LSB-first packing. */
static void canonical_codes(const uint8_t *lens, unsigned n, uint16_t *codes) {
    unsigned count[16] = {0}, next[16];
    for (unsigned s = 0; s < n; s++) count[lens[s]]++;
    count[0] = 0;
    unsigned code = 0;
    for (unsigned l = 1; l < 16; l++) code = (code + count[l - 1]) << 1, next[l] = code;
    for (unsigned s = 0; s < n; s++) {
        if (!lens[s]) continue;
        unsigned c = next[lens[s]]++, reversed = 0;
        for (unsigned b = 0; b < lens[s]; b++) reversed |= ((c >> b) & 1) << (lens[s] - 1 - b);
        codes[s] = (uint16_t)reversed;
    }
}

typedef struct {
    uint8_t litlen[288], dist[30];
    uint16_t litlen_code[288], dist_code[30];
} huffman;

static uint64_t symbols_cost(const block *b, const huffman *h) {
    uint64_t bits = h->litlen[256];
    for (unsigned i = 0; i < b->n; i++) {
        if (!b->dist[i]) { bits += h->litlen[b->litlen[i]]; continue; }
        unsigned lc = LENGTH_CODE[b->litlen[i]], dc = dist_symbol(b->dist[i]);
        bits += h->litlen[257 + lc] + LENGTH_EXTRA[lc] + h->dist[dc] + DIST_EXTRA[dc];
    }
    return bits;
}

static void put_symbols(bit_writer *w, const block *b, const huffman *h) {
    for (unsigned i = 0; i < b->n; i++) {
        unsigned v = b->litlen[i], d = b->dist[i];
        if (!d) { put(w, h->litlen_code[v], h->litlen[v]); continue; }
        unsigned lc = LENGTH_CODE[v], dc = dist_symbol(d);
        put(w, h->litlen_code[257 + lc], h->litlen[257 + lc]);
        put(w, v - LENGTH_BASE[lc], LENGTH_EXTRA[lc]);
        put(w, h->dist_code[dc], h->dist[dc]);
        put(w, d - DIST_BASE[dc], DIST_EXTRA[dc]);
    }
    put(w, h->litlen_code[256], h->litlen[256]);
}

/* Run-length code the concatenated code lengths with symbols 16 (repeat), 17, 18 (zeros). */
static unsigned rle_lengths(const uint8_t *lens, unsigned n, uint8_t *symbols, uint8_t *extras) {
    unsigned out = 0;
    for (unsigned i = 0; i < n;) {
        unsigned run = 1;
        while (i + run < n && lens[i + run] == lens[i]) run++;
        if (lens[i] == 0 && run >= 3) {
            unsigned take = run > 138 ? 138 : run;
            symbols[out] = take >= 11 ? 18 : 17, extras[out++] = (uint8_t)(take - (take >= 11 ? 11 : 3));
            i += take;
        } else if (lens[i] != 0 && run >= 4) {
            symbols[out] = lens[i], extras[out++] = 0;
            unsigned take = run - 1 > 6 ? 6 : run - 1;
            symbols[out] = 16, extras[out++] = (uint8_t)(take - 3);
            i += 1 + take;
        } else {
            symbols[out] = lens[i], extras[out++] = 0;
            i++;
        }
    }
    return out;
}

/* Write the block as whichever encoding is smallest; 0 if that does not fit the output. */
static int write_block(bit_writer *w, const block *b, const uint8_t *input, int last) {
    static const uint8_t EXTRA_BITS[19] = {[16] = 2, [17] = 3, [18] = 7};
    uint32_t lit_freq[288] = {0}, dist_freq[30] = {0}, cl_freq[19] = {0};
    for (unsigned i = 0; i < b->n; i++) {
        if (!b->dist[i]) { lit_freq[b->litlen[i]]++; continue; }
        lit_freq[257 + LENGTH_CODE[b->litlen[i]]]++;
        dist_freq[dist_symbol(b->dist[i])]++;
    }
    lit_freq[256] = 1;
    huffman dynamic, fixed;
    code_lengths(lit_freq, 286, 15, dynamic.litlen);
    code_lengths(dist_freq, 30, 15, dynamic.dist);
    unsigned nlit = 286, ndist = 30;
    while (nlit > 257 && !dynamic.litlen[nlit - 1]) nlit--;
    while (ndist > 1 && !dynamic.dist[ndist - 1]) ndist--;
    uint8_t all[286 + 30], rle[286 + 30], rle_extra[286 + 30], cl_lens[19];
    memcpy(all, dynamic.litlen, nlit);
    memcpy(all + nlit, dynamic.dist, ndist);
    unsigned nrle = rle_lengths(all, nlit + ndist, rle, rle_extra);
    for (unsigned i = 0; i < nrle; i++) cl_freq[rle[i]]++;
    code_lengths(cl_freq, 19, 7, cl_lens);
    unsigned ncl = 19;
    while (ncl > 4 && !cl_lens[CODE_LENGTH_ORDER[ncl - 1]]) ncl--;
    canonical_codes(dynamic.litlen, 286, dynamic.litlen_code);
    canonical_codes(dynamic.dist, 30, dynamic.dist_code);
    uint64_t dynamic_bits = 3 + 14 + 3 * ncl + symbols_cost(b, &dynamic);
    for (unsigned i = 0; i < nrle; i++) dynamic_bits += cl_lens[rle[i]] + EXTRA_BITS[rle[i]];

    for (unsigned i = 0; i < 288; i++) fixed.litlen[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    for (unsigned i = 0; i < 30; i++) fixed.dist[i] = 5;
    canonical_codes(fixed.litlen, 288, fixed.litlen_code);
    canonical_codes(fixed.dist, 30, fixed.dist_code);
    uint64_t fixed_bits = 3 + symbols_cost(b, &fixed);

    size_t raw = 0;
    for (unsigned i = 0; i < b->n; i++) raw += b->dist[i] ? b->litlen[i] : 1;
    uint64_t stored_bits = 3 + 7 + 32 + 8 * (uint64_t)raw + 40 * (raw / 65535);

    uint64_t best = stored_bits < fixed_bits ? stored_bits : fixed_bits;
    if (!room(w, best < dynamic_bits ? best : dynamic_bits)) return 0;
    if (stored_bits <= fixed_bits && stored_bits <= dynamic_bits) {
        const uint8_t *data = input + b->start;
        do {
            size_t len = raw > 65535 ? 65535 : raw;
            raw -= len;
            put(w, last && raw == 0, 1), put(w, 0, 2);
            flush_to_byte(w);
            put(w, (uint32_t)len, 16), put(w, (uint32_t)(~len & 0xFFFF), 16);
            memcpy(w->at, data, len);
            w->at += len, data += len;
        } while (raw);
        return 1;
    }
    if (fixed_bits <= dynamic_bits) {
        put(w, last, 1), put(w, 1, 2);
        put_symbols(w, b, &fixed);
        return 1;
    }
    uint16_t cl_codes[19];
    canonical_codes(cl_lens, 19, cl_codes);
    put(w, last, 1), put(w, 2, 2);
    put(w, nlit - 257, 5), put(w, ndist - 1, 5), put(w, ncl - 4, 4);
    for (unsigned i = 0; i < ncl; i++) put(w, cl_lens[CODE_LENGTH_ORDER[i]], 3);
    for (unsigned i = 0; i < nrle; i++) {
        put(w, cl_codes[rle[i]], cl_lens[rle[i]]);
        if (rle[i] >= 16) put(w, rle_extra[i], EXTRA_BITS[rle[i]]);
    }
    put_symbols(w, b, &dynamic);
    return 1;
}

static uint32_t hash3(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
    return (v * 2654435761u) >> (32 - HASH_BITS);
}

int64_t deflate_zlib(const uint8_t *input, uint32_t length, int level) {
    static uint32_t head[1 << HASH_BITS], prev[WINDOW]; /* positions + 1; 0 = none */
    static block b;
    static int have_codes = 0;
    if (!have_codes) init_codes(), have_codes = 1;
    /* Stored blocks are the worst case of write_block's choice: 5 bytes per block and per
     * 65535 stored bytes. The buffer is that bound (64-bit arithmetic), or the output limit
     * when smaller: blocks are checked as they are written, so an input whose output fits
     * the limit is encoded even when its worst case would not fit. */
    uint64_t bound = (uint64_t)length + 5 * ((uint64_t)length / 16384 + (uint64_t)length / 65535 + 2) + 64;
    uint64_t capacity = bound < chonkle_output_limit ? bound : chonkle_output_limit;
    int capped = capacity >= CHONKLE_ALLOCATION_MAX; /* then running out is memory, not the limit */
    if (capped) capacity = CHONKLE_ALLOCATION_MAX - 1;
    bit_writer w = {malloc((size_t)capacity + 1), NULL, NULL, 0, 0};
    if (!w.out) return chonkle_fail("out of memory for %llu bytes of output", (unsigned long long)capacity);
    w.at = w.out, w.end = w.out + (size_t)capacity;
    if (!room(&w, 16 + 32)) goto over_limit; /* header and trailer */
    *w.at++ = 0x78; /* 32 KiB window, deflate */
    *w.at++ = level == 0 ? 0x01 : level < 6 ? 0x5E : level == 6 ? 0x9C : 0xDA; /* FLEVEL + FCHECK */
    const level_params p = LEVELS[level];
    memset(head, 0, sizeof head);
    b.n = 0, b.start = 0;
    size_t i = 0, block_end_pos = 0;
    unsigned prev_length = 0, prev_distance = 0;
    int pending_literal = 0;
#define EMIT_LITERAL(pos) (b.litlen[b.n] = input[pos], b.dist[b.n++] = 0)
#define EMIT_MATCH(len, d) (b.litlen[b.n] = (uint16_t)(len), b.dist[b.n++] = (uint16_t)(d))
#define INSERT(pos)                                                         \
    do {                                                                    \
        if (length - (pos) >= MIN_MATCH) {                                  \
            uint32_t h_ = hash3(input + (pos));                             \
            prev[(pos) & (WINDOW - 1)] = head[h_];                          \
            head[h_] = (uint32_t)(pos) + 1;                                 \
        }                                                                   \
    } while (0)
    while (level > 0 && i < length) {
        unsigned best = 0, best_distance = 0;
        if (length - i >= MIN_MATCH) {
            uint32_t candidate = head[hash3(input + i)];
            INSERT(i);
            unsigned chain = p.chain, limit = length - i < MAX_MATCH ? (unsigned)(length - i) : MAX_MATCH;
            if (p.lazy && prev_length >= p.good) chain >>= 2;
            while (candidate && chain--) {
                size_t from = candidate - 1;
                if (i - from > WINDOW) break;
                if (input[from + best] == input[i + best] && input[from] == input[i]) {
                    unsigned len = 0;
                    while (len < limit && input[from + len] == input[i + len]) len++;
                    if (len > best) {
                        best = len, best_distance = (unsigned)(i - from);
                        if (len >= p.nice) break;
                    }
                }
                candidate = prev[from & (WINDOW - 1)];
            }
            if (best < MIN_MATCH) best = 0;
        }
        if (!p.lazy) { /* greedy */
            if (best) {
                EMIT_MATCH(best, best_distance);
                for (size_t k = i + 1; k < i + best; k++) INSERT(k);
                i += best;
            } else {
                EMIT_LITERAL(i);
                i++;
            }
        } else if (prev_length && best <= prev_length) { /* the previous match wins */
            EMIT_MATCH(prev_length, prev_distance);
            for (size_t k = i + 1; k < i - 1 + prev_length; k++) INSERT(k);
            i = i - 1 + prev_length;
            prev_length = 0, pending_literal = 0;
        } else {
            if (pending_literal) EMIT_LITERAL(i - 1);
            pending_literal = 1;
            prev_length = best >= p.lazy ? 0 : best, prev_distance = best_distance;
            if (best >= p.lazy) { /* long enough: take it now */
                EMIT_MATCH(best, best_distance);
                for (size_t k = i + 1; k < i + best; k++) INSERT(k);
                i += best, pending_literal = 0;
            } else {
                i++;
            }
        }
        if (b.n >= BLOCK_SYMBOLS - 2) { /* a pending literal starts the next block */
            if (!write_block(&w, &b, input, 0)) goto over_limit;
            b.n = 0, b.start = i - (size_t)pending_literal;
        }
        block_end_pos = i;
    }
    if (pending_literal) EMIT_LITERAL(block_end_pos - 1);
    if (level == 0) { /* stored blocks straight from the input */
        size_t left = length;
        const uint8_t *data = input;
        do {
            size_t len = left > 65535 ? 65535 : left;
            left -= len;
            if (!room(&w, 3 + 7 + 32 + 8 * (uint64_t)len + 32)) goto over_limit;
            put(&w, left == 0, 1), put(&w, 0, 2);
            flush_to_byte(&w);
            put(&w, (uint32_t)len, 16), put(&w, (uint32_t)(~len & 0xFFFF), 16);
            memcpy(w.at, data, len);
            w.at += len, data += len;
        } while (left);
    } else {
        if (!write_block(&w, &b, input, 1)) goto over_limit;
        flush_to_byte(&w);
    }
#undef EMIT_LITERAL
#undef EMIT_MATCH
#undef INSERT
    if (w.end - w.at < 4) goto over_limit;
    uint32_t check = adler32(input, length);
    for (int k = 3; k >= 0; k--) *w.at++ = (uint8_t)(check >> (8 * k));
    return chonkle_result(w.out, (uint32_t)(w.at - w.out));
over_limit:
    free(w.out);
    return capped ? chonkle_fail("out of memory for the output") : chonkle_fail_limit(0);
}
