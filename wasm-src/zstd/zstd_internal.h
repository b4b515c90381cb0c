/* Shared by the Zstandard codec's files: format constants, bit readers, FSE and Huffman
 * tables, XXH64. */
#ifndef ZSTD_INTERNAL_H
#define ZSTD_INTERNAL_H

#include "chonkle_codec.h"

#define ZSTD_MAGIC 0xFD2FB528u
#define BLOCK_MAX (128 * 1024)


/* Sequence codes (RFC 8878 3.1.1.3.2.1): baselines and extra bits of literal length and
 * match length codes, and the predefined distributions of the three code kinds. */
extern const uint32_t LL_BASE[36], ML_BASE[53];
extern const uint8_t LL_BITS[36], ML_BITS[53];
extern const int16_t LL_DEFAULT[36], ML_DEFAULT[53], OF_DEFAULT[29];

static inline uint64_t read64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline unsigned highbit(uint32_t v) { return 31u - (unsigned)__builtin_clz(v); }

/* A bitstream read backwards from its end (Huffman and FSE streams), bits taken from the
 * top. `consumed` counts bits already read from `container`; ptr walks toward `start`. */
typedef struct {
    const uint8_t *start, *ptr;
    uint64_t container;
    unsigned consumed;
} backward_bits;

/* Inline, so a reader's fields can live in Wasm locals: a reader whose address escapes into
 * a call stays in the shadow stack, in linear memory, and every bit read becomes a load and
 * a store. */
static inline int backward_init(backward_bits *b, const uint8_t *src, size_t size) {
    if (size == 0 || src[size - 1] == 0) return 0; /* the last byte holds the end marker */
    b->start = src;
    unsigned padding = 8 - highbit(src[size - 1]);
    if (size >= 8) {
        b->ptr = src + size - 8;
        b->container = read64(b->ptr);
        b->consumed = padding;
    } else { /* short stream: the missing top bytes count as read */
        b->ptr = src;
        b->container = 0;
        for (size_t i = 0; i < size; i++) b->container |= (uint64_t)src[i] << (8 * i);
        b->consumed = padding + (unsigned)(8 - size) * 8;
    }
    return 1;
}

static inline uint64_t backward_read(backward_bits *b, unsigned n) {
    uint64_t value = n ? (b->container << (b->consumed & 63)) >> (64 - n) : 0;
    b->consumed += n;
    return value;
}

/* The same without a branch for n == 0 (shifting by 1 then 63 - n is defined for 0..63). */
static inline uint64_t backward_bits_read(backward_bits *b, unsigned n) {
    uint64_t value = ((b->container << (b->consumed & 63)) >> 1) >> (63 - n);
    b->consumed += n;
    return value;
}

static inline void backward_reload(backward_bits *b) {
    if (b->ptr - b->start >= 8 && b->consumed <= 64) { /* the usual case: one branch */
        b->ptr -= b->consumed >> 3;
        b->consumed &= 7;
        b->container = read64(b->ptr);
        return;
    }
    if (b->consumed > 64) return; /* overread: left for backward_done to report */
    size_t bytes = b->consumed >> 3;
    if ((size_t)(b->ptr - b->start) < bytes) bytes = (size_t)(b->ptr - b->start);
    if (bytes == 0) return;
    b->ptr -= bytes;
    b->consumed -= (unsigned)bytes * 8;
    b->container = read64(b->ptr);
}

/* True when every bit was read exactly. */
static inline int backward_done(const backward_bits *b) {
    return b->ptr == b->start && b->consumed == 64;
}

/* An FSE decoding table entry. */
typedef struct {
    uint16_t base;  /* next state = base + read(bits) */
    uint8_t symbol;
    uint8_t bits;
} fse_entry;

enum { FSE_MAX_LOG = 9, HUF_MAX_BITS = 11 };

typedef struct {
    fse_entry table[1 << FSE_MAX_LOG];
    unsigned log;
} fse_table;

/* Read an FSE table description (RFC 8878 4.1.1) from src; returns bytes used, 0 if corrupt. */
size_t fse_read_table(fse_table *t, const uint8_t *src, size_t size, unsigned max_symbol,
                      unsigned max_log);
int fse_build(fse_table *t, const int16_t *counts, unsigned symbols, unsigned log);
void fse_rle(fse_table *t, uint8_t symbol);

typedef struct {
    uint16_t table[1 << HUF_MAX_BITS]; /* one symbol: symbol << 8 | bits */
    /* Two symbols where both codes fit in max_bits: first | second << 8 | bits << 16 |
     * count << 24, count being 1 or 2 (the second byte is then junk). */
    uint32_t pairs[1 << HUF_MAX_BITS];
    unsigned max_bits;
} huffman_table;

/* Read a Huffman tree description; returns bytes used, 0 if corrupt. */
size_t huffman_read_table(huffman_table *h, const uint8_t *src, size_t size);
/* Decode `regenerated` literals from 1 or 4 streams. Returns 0 if corrupt. */
int huffman_decode(const huffman_table *h, const uint8_t *src, size_t size, int four_streams,
                   uint8_t *out, size_t regenerated);

uint64_t xxh64(const uint8_t *data, size_t length);

#endif
