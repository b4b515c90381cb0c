/* Compressed blocks (RFC 8878 3.1.1.3): the literals section (raw, RLE, or Huffman-coded
 * with a new or the previous block's tree) and the sequences section (each of the three
 * code kinds coded with the predefined, an RLE, the previous or a new FSE table, whichever
 * is cheapest by estimated size).
 */
#define CHONKLE_SECONDARY_FILE
#include "encoder.h"

enum { LITERAL_LENGTH, OFFSET, MATCH_LENGTH };
static const unsigned MAX_LOG[3] = {9, 8, 9}, SYMBOLS[3] = {36, 32, 53};

static uint8_t LL_CODE[64], ML_CODE[128];
static fse_norm DEFAULT_NORM[3];
static fse_ctable DEFAULT_TABLE[3];

static void init_block_tables(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    encoder_init_tables();
    for (unsigned v = 0, c = 0; v < 64; v++) {
        while (c + 1 < 36 && LL_BASE[c + 1] <= v) c++;
        LL_CODE[v] = (uint8_t)c;
    }
    for (unsigned v = 0, c = 0; v < 128; v++) {
        while (c + 1 < 53 && ML_BASE[c + 1] <= v + 3) c++;
        ML_CODE[v] = (uint8_t)c;
    }
    const int16_t *defaults[3] = {LL_DEFAULT, OF_DEFAULT, ML_DEFAULT};
    const unsigned count[3] = {36, 29, 53}, log[3] = {6, 5, 6};
    for (int k = 0; k < 3; k++) {
        DEFAULT_NORM[k].symbols = count[k], DEFAULT_NORM[k].log = log[k];
        memcpy(DEFAULT_NORM[k].counts, defaults[k], count[k] * sizeof(int16_t));
        fse_build_ctable(&DEFAULT_TABLE[k], &DEFAULT_NORM[k]);
    }
}

static inline unsigned literal_length_code(uint32_t length) {
    return length < 64 ? LL_CODE[length] : highbit(length) + 19;
}

static inline unsigned match_length_code(uint32_t length) {
    uint32_t base = length - 3;
    return base < 128 ? ML_CODE[base] : highbit(base) + 36;
}

/* ---- Literals section ------------------------------------------------------------------ */

static size_t raw_literals(uint8_t *dst, unsigned type, const uint8_t *literals, size_t n) {
    size_t header;
    if (n < 32) dst[0] = (uint8_t)(type | n << 3), header = 1;
    else if (n < 4096) dst[0] = (uint8_t)(type | 1 << 2 | n << 4), dst[1] = (uint8_t)(n >> 4), header = 2;
    else dst[0] = (uint8_t)(type | 3 << 2 | n << 4), dst[1] = (uint8_t)(n >> 4), dst[2] = (uint8_t)(n >> 12), header = 3;
    if (type == 1) dst[header] = literals[0];
    else memcpy(dst + header, literals, n);
    return header + (type == 1 ? 1 : n);
}

static size_t compressed_literals_header(size_t regenerated, size_t compressed, int four_streams) {
    size_t larger = regenerated > compressed ? regenerated : compressed;
    if (!four_streams || larger < 1024) return 3;
    return larger < 16384 ? 4 : 5;
}

static void count_bytes(uint32_t *counts, const uint8_t *p, size_t n) {
    uint32_t extra[3][256];
    memset(counts, 0, 256 * sizeof *counts);
    memset(extra, 0, sizeof extra);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v = read32(p + i);
        counts[v & 0xFF]++, extra[0][(v >> 8) & 0xFF]++, extra[1][(v >> 16) & 0xFF]++, extra[2][v >> 24]++;
    }
    for (; i < n; i++) counts[p[i]]++;
    for (unsigned s = 0; s < 256; s++) counts[s] += extra[0][s] + extra[1][s] + extra[2][s];
}

static size_t write_literals(uint8_t *dst, const uint8_t *literals, size_t n,
                             const entropy_tables *previous, entropy_tables *next, int compress) {
    if (n == 0 || !compress) return raw_literals(dst, 0, literals, n);
    uint32_t counts[256];
    count_bytes(counts, literals, n);
    unsigned distinct = 0;
    for (unsigned s = 0; s < 256; s++) distinct += counts[s] != 0;
    if (distinct == 1) return raw_literals(dst, 1, literals, n);
    size_t raw_size = n + (n < 32 ? 1 : n < 4096 ? 2 : 3);
    if (n <= 32) return raw_literals(dst, 0, literals, n);
    int four_streams = n >= 256;
    size_t overhead = (four_streams ? 6 + 4 : 1) + 3; /* jump table, stream padding, header */
    /* the previous block's tree, when it codes every byte here */
    size_t reuse_size = SIZE_MAX, fresh_size = SIZE_MAX, description = 0;
    if (previous->have_huffman) {
        uint64_t bits = huffman_cost(&previous->huffman, counts, 256);
        if (bits != UINT64_MAX) reuse_size = (size_t)(bits / 8) + overhead;
    }
    static uint8_t table_description[160];
    huffman_build_ctable(&next->huffman, counts, 256, HUF_MAX_BITS);
    description = huffman_write_table(table_description, &next->huffman);
    if (description) fresh_size = (size_t)(huffman_cost(&next->huffman, counts, 256) / 8) + overhead + description;
    int fresh = fresh_size < reuse_size;
    if ((fresh ? fresh_size : reuse_size) >= raw_size) {
        next->huffman = previous->huffman;
        return raw_literals(dst, 0, literals, n);
    }
    const huffman_ctable *h = fresh ? &next->huffman : &previous->huffman;
    /* streams go after the largest header, then move down to the header they need */
    uint8_t *body = dst + 5;
    size_t size = 0;
    if (fresh) memcpy(body, table_description, description), size = description;
    size += huffman_encode(body + size, h, literals, n, four_streams);
    size_t header = compressed_literals_header(n, size, four_streams);
    if (header + size >= raw_size) {
        next->huffman = previous->huffman;
        return raw_literals(dst, 0, literals, n);
    }
    if (fresh) next->have_huffman = 1;
    else next->huffman = previous->huffman;
    unsigned type = fresh ? 2 : 3;
    uint64_t fields;
    if (header == 3) fields = type | (uint64_t)(four_streams ? 1 : 0) << 2 | (uint64_t)n << 4 | (uint64_t)size << 14;
    else if (header == 4) fields = type | 2u << 2 | (uint64_t)n << 4 | (uint64_t)size << 18;
    else fields = type | 3u << 2 | (uint64_t)n << 4 | (uint64_t)size << 22;
    memmove(dst + header, body, size);
    for (size_t i = 0; i < header; i++) dst[i] = (uint8_t)(fields >> (8 * i));
    return header + size;
}

/* ---- Sequences section ----------------------------------------------------------------- */

enum { MODE_PREDEFINED = 0, MODE_RLE = 1, MODE_FSE = 2, MODE_REPEAT = 3 };

/* Choose how to code one kind of code: the cheapest of the predefined table, RLE (a single
 * symbol), the previous block's table and a new table, each costed in 1/256ths of a bit with
 * its description. Writes the description to dst; returns the mode. */
static unsigned choose_table(int kind, const uint32_t *counts, size_t sequences,
                             const entropy_tables *previous, entropy_tables *next, uint8_t *dst,
                             size_t *description) {
    unsigned symbols = SYMBOLS[kind], distinct = 0, last = 0;
    for (unsigned s = 0; s < symbols; s++)
        if (counts[s]) distinct++, last = s;
    *description = 0;
    unsigned mode = MODE_PREDEFINED;
    uint64_t best = fse_cost(&DEFAULT_NORM[kind], counts, symbols);
    if (previous->have_table[kind]) {
        uint64_t cost = fse_cost(&previous->norm[kind], counts, symbols);
        if (cost < best) best = cost, mode = MODE_REPEAT;
    }
    if (distinct == 1 && 8 * 256 < best) best = 8 * 256, mode = MODE_RLE;
    fse_norm norm, chosen;
    int have_new = 0;
    if (distinct >= 2 && (sequences >= 8 || best == UINT64_MAX)) {
        unsigned low = 5, high = MAX_LOG[kind];
        unsigned fit = highbit((uint32_t)sequences) + 1; /* no point in more cells than codes */
        if (high > fit) high = fit > low ? fit : low;
        for (unsigned log = low; log <= high; log++) {
            if (!fse_normalize(&norm, counts, last + 1, (uint32_t)sequences, log)) continue;
            uint64_t cost = fse_cost(&norm, counts, symbols);
            if (cost == UINT64_MAX) continue;
            cost += (uint64_t)fse_norm_bits(&norm) * 256;
            if (cost < best) best = cost, mode = MODE_FSE, chosen = norm, have_new = 1;
        }
    }
    if (mode == MODE_FSE && have_new) {
        next->norm[kind] = chosen;
        fse_build_ctable(&next->table[kind], &chosen);
        *description = fse_write_norm(dst, &chosen);
    } else if (mode == MODE_RLE) {
        next->norm[kind].symbols = last + 1, next->norm[kind].log = 0;
        memset(next->norm[kind].counts, 0, sizeof next->norm[kind].counts);
        next->norm[kind].counts[last] = 1;
        fse_rle_ctable(&next->table[kind], last);
        dst[0] = (uint8_t)last;
        *description = 1;
    } else if (mode == MODE_PREDEFINED) {
        next->norm[kind] = DEFAULT_NORM[kind];
        next->table[kind] = DEFAULT_TABLE[kind];
    } /* MODE_REPEAT: next already holds the previous table */
    next->have_table[kind] = 1;
    return mode;
}

static size_t write_sequences(uint8_t *dst, const sequence *seqs, size_t n,
                              const entropy_tables *previous, entropy_tables *next) {
    static uint8_t codes[3][SEQUENCES_MAX];
    uint8_t *p = dst;
    if (n < 128) *p++ = (uint8_t)n;
    else if (n < 0x7F00) *p++ = (uint8_t)((n >> 8) + 128), *p++ = (uint8_t)n;
    else *p++ = 255, *p++ = (uint8_t)(n - 0x7F00), *p++ = (uint8_t)((n - 0x7F00) >> 8);
    if (n == 0) return (size_t)(p - dst);
    uint32_t counts[3][64];
    memset(counts, 0, sizeof counts);
    uint8_t *ll_codes = codes[LITERAL_LENGTH], *of_codes = codes[OFFSET], *ml_codes = codes[MATCH_LENGTH];
    for (size_t i = 0; i < n; i++) {
        unsigned ll = literal_length_code(seqs[i].literal_length);
        unsigned of = highbit(seqs[i].off_base);
        unsigned ml = match_length_code(seqs[i].match_length);
        ll_codes[i] = (uint8_t)ll, of_codes[i] = (uint8_t)of, ml_codes[i] = (uint8_t)ml;
        counts[LITERAL_LENGTH][ll]++, counts[OFFSET][of]++, counts[MATCH_LENGTH][ml]++;
    }
    uint8_t *modes = p++;
    unsigned mode[3];
    for (int k = 0; k < 3; k++) {
        size_t description;
        mode[k] = choose_table(k, counts[k], n, previous, next, p, &description);
        p += description;
    }
    *modes = (uint8_t)(mode[LITERAL_LENGTH] << 6 | mode[OFFSET] << 4 | mode[MATCH_LENGTH] << 2);
    const fse_ctable *ll_table = &next->table[LITERAL_LENGTH], *of_table = &next->table[OFFSET],
                     *ml_table = &next->table[MATCH_LENGTH];
    /* The decoder reads the stream backwards: write the last sequence first, and within a
     * sequence the reverse of the decoder's reading order. */
    bit_out b;
    bits_init(&b, p);
    size_t i = n - 1;
    uint32_t ll_state = fse_init_state(ll_table, ll_codes[i]);
    uint32_t of_state = fse_init_state(of_table, of_codes[i]);
    uint32_t ml_state = fse_init_state(ml_table, ml_codes[i]);
    for (;;) {
        const sequence *s = &seqs[i];
        unsigned ll = ll_codes[i], ml = ml_codes[i], of = of_codes[i];
        bits_add(&b, s->literal_length - LL_BASE[ll], LL_BITS[ll]);
        bits_flush(&b);
        bits_add(&b, s->match_length - ML_BASE[ml], ML_BITS[ml]);
        bits_add(&b, s->off_base - (1u << of), of);
        bits_flush(&b);
        if (i == 0) break;
        i--;
        fse_encode(&b, of_table, &of_state, of_codes[i]);
        fse_encode(&b, ml_table, &ml_state, ml_codes[i]);
        fse_encode(&b, ll_table, &ll_state, ll_codes[i]);
    }
    bits_add(&b, ml_state - (1u << ml_table->log), ml_table->log);
    bits_add(&b, of_state - (1u << of_table->log), of_table->log);
    bits_add(&b, ll_state - (1u << ll_table->log), ll_table->log);
    p += bits_close_backward(&b);
    return (size_t)(p - dst);
}

size_t compress_block(uint8_t *dst, size_t block_size, const sequence_store *store,
                      const entropy_tables *previous, entropy_tables *next,
                      int compress_literals) {
    init_block_tables();
    memcpy(next, previous, sizeof *next);
    size_t size = write_literals(dst, store->literals, store->literal_count, previous, next,
                                 compress_literals);
    if (size >= block_size) return 0;
    size += write_sequences(dst + size, store->sequences, store->count, previous, next);
    return size < block_size ? size : 0;
}
