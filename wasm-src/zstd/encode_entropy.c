/* The entropy coders of the Zstandard encoder: FSE tables (normalizing counts, describing
 * and building tables) and Huffman-coded literals (length-limited codes, tree descriptions,
 * 1 or 4 streams). Each table is built to match what the decoder builds from its
 * description (RFC 8878 4.1 and 4.2), so both sides agree on every state and code.
 */
#define CHONKLE_SECONDARY_FILE
#include "encoder.h"

uint16_t LOG2_256[513];

/* log2(x) in 1/256ths of a bit, by repeated squaring of the mantissa: no libm needed. */
static uint16_t log2_256(uint32_t x) {
    unsigned whole = highbit(x);
    uint64_t y = ((uint64_t)x << 32) >> whole; /* x / 2^whole in [1, 2), 32 fraction bits */
    unsigned fraction = 0;
    for (int i = 0; i < 8; i++) {
        y = (y * y) >> 32;
        fraction <<= 1;
        if (y >= ((uint64_t)2 << 32)) fraction |= 1, y >>= 1;
    }
    return (uint16_t)(whole * 256 + fraction);
}

void encoder_init_tables(void) {
    LOG2_256[0] = 0;
    for (uint32_t x = 1; x <= 512; x++) LOG2_256[x] = log2_256(x);
}

/* ---- FSE ------------------------------------------------------------------------------- */

int fse_normalize(fse_norm *n, const uint32_t *counts, unsigned symbols, uint32_t total,
                  unsigned log) {
    uint32_t size = 1u << log;
    int64_t sum = 0;
    n->symbols = symbols, n->log = log;
    for (unsigned s = 0; s < symbols; s++) {
        if (!counts[s]) { n->counts[s] = 0; continue; }
        uint64_t share = (uint64_t)counts[s] * size / total;
        n->counts[s] = (int16_t)(share ? share : 1);
        sum += n->counts[s];
    }
    /* Hand out (or take back) the cells rounding left over, one at a time, each where it
     * changes the coded size the most (least): counts[s] * log2((c + 1) / c). */
    while (sum < size) {
        unsigned best = 0;
        uint64_t best_gain = 0;
        for (unsigned s = 0; s < symbols; s++) {
            int c = n->counts[s];
            if (!c || c >= 511) continue;
            uint64_t gain = (uint64_t)counts[s] * (LOG2_256[c + 1] - LOG2_256[c]);
            if (gain > best_gain) best_gain = gain, best = s;
        }
        if (!best_gain) return 0;
        n->counts[best]++, sum++;
    }
    while (sum > size) {
        unsigned best = symbols;
        uint64_t best_loss = UINT64_MAX;
        for (unsigned s = 0; s < symbols; s++) {
            int c = n->counts[s];
            if (c <= 1) continue;
            uint64_t loss = (uint64_t)counts[s] * (LOG2_256[c] - LOG2_256[c - 1]);
            if (loss < best_loss) best_loss = loss, best = s;
        }
        if (best == symbols) return 0; /* more symbols than cells */
        n->counts[best]--, sum--;
    }
    return 1;
}

void fse_build_ctable(fse_ctable *t, const fse_norm *n) {
    unsigned log = n->log, size = 1u << log, high = size - 1, mask = size - 1;
    uint8_t spread[1 << FSE_MAX_LOG];
    uint16_t cumulative[256], next[256];
    t->log = log;
    t->rle = 0;
    /* spread symbols over the cells as the decoder does (fse_build) */
    for (unsigned s = 0; s < n->symbols; s++)
        if (n->counts[s] == -1) spread[high--] = (uint8_t)s;
    unsigned step = (size >> 1) + (size >> 3) + 3, position = 0;
    for (unsigned s = 0; s < n->symbols; s++) {
        for (int i = 0; i < n->counts[s]; i++) {
            spread[position] = (uint8_t)s;
            do position = (position + step) & mask; while (position > high);
        }
    }
    unsigned total = 0;
    for (unsigned s = 0; s < n->symbols; s++) {
        cumulative[s] = (uint16_t)total, next[s] = 0;
        total += n->counts[s] == -1 ? 1 : (unsigned)n->counts[s];
    }
    /* a symbol's cells in increasing order: the k-th is the state after coding it from any
     * X with X >> bits == count + k */
    for (unsigned state = 0; state < size; state++) {
        unsigned s = spread[state];
        t->states[cumulative[s] + next[s]++] = (uint16_t)(size + state);
    }
    for (unsigned s = 0; s < n->symbols; s++) {
        int c = n->counts[s];
        if (c == 0) continue;
        unsigned count = c == -1 ? 1 : (unsigned)c;
        unsigned bits = log - highbit(count); /* the larger of the symbol's two bit counts */
        t->symbols[s].delta_bits = (bits << 16) - (count << bits);
        t->symbols[s].delta_state = (int32_t)cumulative[s] - (int32_t)count;
        t->symbols[s].first = t->states[cumulative[s]];
    }
}

/* An RLE "table": one symbol, no bits. */
void fse_rle_ctable(fse_ctable *t, unsigned symbol) {
    t->log = 0, t->rle = 1, t->rle_symbol = (uint8_t)symbol;
    t->states[0] = 1;
    t->symbols[symbol].delta_bits = 0;
    t->symbols[symbol].delta_state = -1;
    t->symbols[symbol].first = 1;
}

size_t fse_write_norm(uint8_t *dst, const fse_norm *n) {
    bit_out b;
    bits_init(&b, dst);
    unsigned log = n->log, last = 0;
    for (unsigned s = 0; s < n->symbols; s++)
        if (n->counts[s]) last = s;
    bits_add(&b, log - 5, 4);
    int remaining = (1 << log) + 1, threshold = 1 << log;
    unsigned nbits = log + 1;
    for (unsigned s = 0; s <= last; s++) {
        int count = n->counts[s];
        unsigned value = (unsigned)(count + 1), max = (unsigned)(2 * threshold - 1 - remaining);
        if (value < max) bits_add(&b, value, nbits - 1);
        else if (value < (unsigned)threshold) bits_add(&b, value, nbits);
        else bits_add(&b, value + max, nbits);
        remaining -= count < 0 ? -count : count;
        while (remaining < threshold) nbits--, threshold >>= 1;
        if (count == 0) { /* the zeros that follow: 2-bit repeat codes, 3 meaning "and more" */
            unsigned run = 0;
            while (s + 1 + run <= last && n->counts[s + 1 + run] == 0) run++;
            s += run;
            for (; run >= 3; run -= 3) {
                bits_add(&b, 3, 2);
                if (b.count > 48) bits_flush(&b);
            }
            bits_add(&b, run, 2);
        }
        if (b.count > 40) bits_flush(&b);
    }
    return bits_close_forward(&b);
}

unsigned fse_norm_bits(const fse_norm *n) {
    uint8_t scratch[512];
    return (unsigned)fse_write_norm(scratch, n) * 8;
}

uint64_t fse_cost(const fse_norm *n, const uint32_t *counts, unsigned symbols) {
    uint64_t cost = 0;
    for (unsigned s = 0; s < symbols; s++) {
        if (!counts[s]) continue;
        if (s >= n->symbols || n->counts[s] == 0) return UINT64_MAX;
        unsigned c = n->counts[s] == -1 ? 1 : (unsigned)n->counts[s];
        cost += (uint64_t)counts[s] * (n->log * 256 - LOG2_256[c]);
    }
    return cost;
}

/* ---- Huffman --------------------------------------------------------------------------- */

/* Sort keys (count << 8 | symbol) by count, keeping symbol order among equal counts: a
 * radix sort on the count's three low bytes (block counts are below 2^24). */
static void sort_keys(uint32_t *keys, unsigned n) {
    uint32_t other[256], *from = keys, *to = other;
    for (unsigned shift = 8; shift < 32; shift += 8) {
        unsigned start[256] = {0};
        for (unsigned i = 0; i < n; i++) start[(from[i] >> shift) & 0xFF]++;
        unsigned total = 0;
        for (unsigned d = 0; d < 256; d++) {
            unsigned c = start[d];
            start[d] = total, total += c;
        }
        for (unsigned i = 0; i < n; i++) to[start[(from[i] >> shift) & 0xFF]++] = from[i];
        uint32_t *t = from;
        from = to, to = t;
    }
    if (from != keys) memcpy(keys, from, n * sizeof *keys);
}

/* Optimal code lengths (two-queue Huffman over the sorted leaves), then lengths over the
 * limit are cut to it and the Kraft sum restored by lengthening the longest codes that
 * still fit: rare symbols pay, frequent ones keep their short codes. */
void huffman_build_ctable(huffman_ctable *h, const uint32_t *counts, unsigned symbols,
                          unsigned max_bits) {
    uint32_t keys[256]; /* count << 8 | symbol, sorted: rarest first */
    uint32_t weight[512];
    uint16_t parent[512];
    uint8_t depth[512];
    unsigned used = 0;
    memset(h->length, 0, sizeof h->length);
    for (unsigned s = 0; s < symbols; s++)
        if (counts[s]) keys[used++] = (counts[s] > 0xFFFFFF ? 0xFFFFFF : counts[s]) << 8 | s;
    sort_keys(keys, used);
    for (unsigned i = 0; i < used; i++) weight[i] = keys[i] >> 8;
    unsigned leaf = 0, node = used, next = used;
    for (unsigned k = 0; k + 1 < used; k++) {
        unsigned pick[2];
        for (int p = 0; p < 2; p++)
            pick[p] = leaf < used && (node >= next || weight[leaf] <= weight[node]) ? leaf++ : node++;
        weight[next] = weight[pick[0]] + weight[pick[1]];
        parent[pick[0]] = parent[pick[1]] = (uint16_t)next;
        next++;
    }
    depth[next - 1] = 0;
    for (unsigned i = next - 1; i-- > 0;) {
        unsigned d = depth[parent[i]] + 1u;
        depth[i] = (uint8_t)(d > 255 ? 255 : d);
    }
    /* lengths per count, limited */
    unsigned per_length[256] = {0};
    for (unsigned i = 0; i < used; i++) per_length[depth[i] > max_bits ? max_bits : depth[i]]++;
    uint64_t kraft = 0; /* in units of 2^-max_bits */
    for (unsigned l = 1; l <= max_bits; l++) kraft += (uint64_t)per_length[l] << (max_bits - l);
    while (kraft > ((uint64_t)1 << max_bits)) {
        /* lengthen one code of the longest length below the limit: frees 2^(max-l-1) */
        unsigned l = max_bits - 1;
        while (l > 0 && !per_length[l]) l--;
        per_length[l]--, per_length[l + 1]++;
        kraft -= (uint64_t)1 << (max_bits - l - 1);
    }
    /* rarest symbols get the longest codes */
    unsigned i = 0;
    for (unsigned l = max_bits; l >= 1; l--)
        for (unsigned c = 0; c < per_length[l]; c++) h->length[keys[i++] & 0xFF] = (uint8_t)l;
    /* If the cut left the code incomplete (Kraft sum below 1), shorten the most frequent
     * codes that still fit: the decoder needs a complete code. */
    while (kraft < ((uint64_t)1 << max_bits)) {
        unsigned best = 256;
        for (unsigned s = 0; s < symbols; s++) {
            unsigned l = h->length[s];
            if (l > 1 && kraft + ((uint64_t)1 << (max_bits - l)) <= ((uint64_t)1 << max_bits) &&
                (best == 256 || counts[s] > counts[best]))
                best = s;
        }
        if (best == 256) break;
        kraft += (uint64_t)1 << (max_bits - h->length[best]);
        h->length[best]--;
    }
    /* canonical codes as the decoder assigns them: by weight (longest codes first), then by
     * symbol, from table position 0 up */
    unsigned longest = 0;
    h->symbols = 0;
    for (unsigned s = 0; s < symbols; s++)
        if (h->length[s]) {
            if (h->length[s] > longest) longest = h->length[s];
            h->symbols = s + 1;
        }
    h->max_bits = longest;
    uint32_t position = 0;
    for (unsigned len = longest; len >= 1; len--) {
        for (unsigned s = 0; s < h->symbols; s++) {
            if (h->length[s] != len) continue;
            h->code[s] = (uint16_t)(position >> (longest - len));
            position += 1u << (longest - len);
        }
    }
}

/* Whether the decoder reads exactly h's code from a description: a compressed description
 * is checked before it is sent (its stream must end exactly where the decoder stops). */
static int same_code(const uint8_t *description, size_t size, const huffman_ctable *h) {
    static huffman_table decoded;
    if (huffman_read_table(&decoded, description, size) != size || decoded.max_bits != h->max_bits)
        return 0;
    for (unsigned s = 0; s < h->symbols; s++) {
        unsigned l = h->length[s];
        if (l && decoded.table[(unsigned)h->code[s] << (h->max_bits - l)] != (s << 8 | l)) return 0;
    }
    return 1;
}

size_t huffman_write_table(uint8_t *dst, const huffman_ctable *h) {
    uint8_t weights[256];
    unsigned n = h->symbols - 1; /* the last symbol's weight is implied */
    for (unsigned s = 0; s < n; s++) weights[s] = h->length[s] ? (uint8_t)(h->max_bits + 1 - h->length[s]) : 0;
    /* FSE-compressed weights: two interleaved states over one stream */
    size_t best = 0;
    uint32_t counts[16] = {0};
    unsigned distinct = 0;
    for (unsigned s = 0; s < n; s++) distinct += counts[weights[s]]++ == 0;
    if (n >= 2 && distinct >= 2) {
        static uint8_t candidate[512];
        for (unsigned log = 5; log <= 6; log++) {
            fse_norm norm;
            fse_ctable table;
            if (!fse_normalize(&norm, counts, h->max_bits + 1, n, log)) continue;
            fse_build_ctable(&table, &norm);
            uint8_t *p = candidate + 1;
            size_t header = fse_write_norm(p, &norm);
            bit_out b;
            bits_init(&b, p + header);
            /* w[n-1] and w[n-2] start the two states; the rest alternate between them */
            uint32_t state[2];
            state[(n - 1) & 1] = fse_init_state(&table, weights[n - 1]);
            state[(n - 2) & 1] = fse_init_state(&table, weights[n - 2]);
            for (unsigned k = n - 2; k-- > 0;) {
                fse_encode(&b, &table, &state[k & 1], weights[k]);
                if (b.count > 48) bits_flush(&b);
            }
            bits_add(&b, state[1] - (1u << log), log); /* read second: written first */
            bits_add(&b, state[0] - (1u << log), log);
            size_t size = header + bits_close_backward(&b);
            if (size >= 128 || (best && size >= best)) continue;
            candidate[0] = (uint8_t)size;
            if (!same_code(candidate, size + 1, h)) continue;
            memcpy(dst, candidate, size + 1);
            best = size + 1;
        }
    }
    size_t direct = 1 + (n + 1) / 2;
    if (n <= 128 && (!best || direct <= best)) {
        dst[0] = (uint8_t)(127 + n);
        for (unsigned i = 0; i < n; i += 2)
            dst[1 + i / 2] = (uint8_t)(weights[i] << 4 | (i + 1 < n ? weights[i + 1] : 0));
        return direct;
    }
    return best;
}

uint64_t huffman_cost(const huffman_ctable *h, const uint32_t *counts, unsigned symbols) {
    uint64_t bits = 0;
    for (unsigned s = 0; s < symbols; s++) {
        if (!counts[s]) continue;
        if (s >= h->symbols || !h->length[s]) return UINT64_MAX;
        bits += (uint64_t)counts[s] * h->length[s];
    }
    return bits;
}

/* One stream: symbols are written last to first, so the decoder reads them in order. */
static size_t huffman_stream(uint8_t *dst, const uint32_t *entry, const uint8_t *src, size_t n) {
    bit_out b;
    bits_init(&b, dst);
    size_t i = n;
    while (i & 3) { /* up to 3 symbols, then groups of 4 (44 bits + 7 left over) */
        uint32_t e = entry[src[--i]];
        bits_add(&b, e >> 8, e & 0xFF);
    }
    bits_flush(&b);
    while (i) {
        uint32_t e3 = entry[src[i - 1]], e2 = entry[src[i - 2]], e1 = entry[src[i - 3]], e0 = entry[src[i - 4]];
        i -= 4;
        bits_add(&b, e3 >> 8, e3 & 0xFF);
        bits_add(&b, e2 >> 8, e2 & 0xFF);
        bits_add(&b, e1 >> 8, e1 & 0xFF);
        bits_add(&b, e0 >> 8, e0 & 0xFF);
        bits_flush(&b);
    }
    return bits_close_backward(&b);
}

/* Four streams of `segment` symbols (the last has `last` <= segment), coded in one loop so
 * their independent dependency chains overlap. Each is written at its own worst-case offset
 * in dst; sizes[] gets their sizes. */
static void huffman_four(uint8_t *dst, size_t room, const uint32_t *entry, const uint8_t *src,
                         size_t segment, size_t last, size_t *sizes) {
    bit_out b[4];
    const uint8_t *s[4];
    for (int k = 0; k < 4; k++) bits_init(&b[k], dst + room * (size_t)k), s[k] = src + segment * (size_t)k;
    size_t i = segment;
    /* the first three streams' extra symbols, then all four in step */
    for (; i > last; i--)
        for (int k = 0; k < 3; k++) {
            uint32_t e = entry[s[k][i - 1]];
            bits_add(&b[k], e >> 8, e & 0xFF);
        }
    for (int k = 0; k < 3; k++) bits_flush(&b[k]);
    while (i & 3) {
        i--;
        for (int k = 0; k < 4; k++) {
            uint32_t e = entry[s[k][i]];
            bits_add(&b[k], e >> 8, e & 0xFF);
        }
    }
    bit_out b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
    bits_flush(&b0), bits_flush(&b1), bits_flush(&b2), bits_flush(&b3);
    const uint8_t *s0 = s[0], *s1 = s[1], *s2 = s[2], *s3 = s[3];
#define CODE(bk, sk, j)                              \
    do {                                             \
        uint32_t e_ = entry[sk[j]];                  \
        bits_add(&bk, e_ >> 8, e_ & 0xFF);           \
    } while (0)
    while (i) {
        i -= 4;
        CODE(b0, s0, i + 3); CODE(b1, s1, i + 3); CODE(b2, s2, i + 3); CODE(b3, s3, i + 3);
        CODE(b0, s0, i + 2); CODE(b1, s1, i + 2); CODE(b2, s2, i + 2); CODE(b3, s3, i + 2);
        CODE(b0, s0, i + 1); CODE(b1, s1, i + 1); CODE(b2, s2, i + 1); CODE(b3, s3, i + 1);
        CODE(b0, s0, i); CODE(b1, s1, i); CODE(b2, s2, i); CODE(b3, s3, i);
        bits_flush(&b0), bits_flush(&b1), bits_flush(&b2), bits_flush(&b3);
    }
#undef CODE
    sizes[0] = bits_close_backward(&b0), sizes[1] = bits_close_backward(&b1);
    sizes[2] = bits_close_backward(&b2), sizes[3] = bits_close_backward(&b3);
}

size_t huffman_encode(uint8_t *dst, const huffman_ctable *h, const uint8_t *src, size_t n,
                      int four_streams) {
    uint32_t entry[256];
    for (unsigned s = 0; s < 256; s++) entry[s] = s < h->symbols ? (uint32_t)h->code[s] << 8 | h->length[s] : 0;
    if (!four_streams) return huffman_stream(dst, entry, src, n);
    size_t segment = (n + 3) / 4, sizes[4];
    /* worst case per stream: 11 bits a symbol, the end marker, 8 bytes of flush slack */
    size_t room = segment * HUF_MAX_BITS / 8 + 16;
    huffman_four(dst + 6, room, entry, src, segment, n - 3 * segment, sizes);
    size_t at = 6 + sizes[0];
    for (int k = 1; k < 4; k++) {
        memmove(dst + at, dst + 6 + room * (size_t)k, sizes[k]);
        at += sizes[k];
    }
    for (int k = 0; k < 3; k++) dst[2 * k] = (uint8_t)sizes[k], dst[2 * k + 1] = (uint8_t)(sizes[k] >> 8);
    return at;
}
