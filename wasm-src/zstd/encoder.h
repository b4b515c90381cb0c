/* Shared by the Zstandard encoder's files (encode.c, encode_entropy.c). */
#ifndef ZSTD_ENCODER_H
#define ZSTD_ENCODER_H

#include "zstd_internal.h"

static inline uint32_t read32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void write64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* A forward bitstream, least significant bit first, as every Zstandard bitstream is written.
 * Bits gather in a 64-bit container; flush() stores all 8 bytes of it and advances past the
 * whole ones, so a buffer needs 8 bytes of slack past the last byte the stream can reach.
 * Callers flush before the container could pass 63 bits. */
typedef struct {
    uint8_t *start, *ptr;
    uint64_t bits;
    unsigned count;
} bit_out;

static inline void bits_init(bit_out *b, uint8_t *dst) {
    b->start = b->ptr = dst;
    b->bits = 0, b->count = 0;
}

/* value must fit in n bits */
static inline void bits_add(bit_out *b, uint64_t value, unsigned n) {
    b->bits |= value << b->count;
    b->count += n;
}

static inline void bits_flush(bit_out *b) {
    write64(b->ptr, b->bits);
    b->ptr += b->count >> 3;
    b->bits >>= b->count & ~7u; /* count <= 63: a shift of at most 56 */
    b->count &= 7;
}

/* Close a stream read backwards (Huffman, FSE): a 1 bit marks where it ends. Returns the
 * stream's size in bytes. */
static inline size_t bits_close_backward(bit_out *b) {
    bits_add(b, 1, 1);
    bits_flush(b);
    return (size_t)(b->ptr - b->start) + (b->count > 0);
}

/* Close a forward stream (an FSE table description): pad to a whole byte. */
static inline size_t bits_close_forward(bit_out *b) {
    bits_flush(b);
    return (size_t)(b->ptr - b->start) + (b->count > 0);
}

/* ---- FSE encoding ---------------------------------------------------------------------- */

/* An FSE encoding table, built from normalized counts exactly as the decoder builds its
 * table from the same counts. To encode symbol s from state X (in [size, 2 * size)): write
 * the low (X + delta_bits) >> 16 bits of X, then X = states[(X >> bits) + delta_state]. */
typedef struct {
    uint16_t states[1 << FSE_MAX_LOG];
    struct {
        int32_t delta_state;
        uint32_t delta_bits;
        uint32_t first; /* the state of the symbol's first cell */
    } symbols[256];
    unsigned log;
    int rle;         /* a single symbol that costs nothing (mode RLE) */
    uint8_t rle_symbol;
} fse_ctable;

/* Counts normalized to sum to 1 << log; -1 is a "less than 1" count (one cell). */
typedef struct {
    int16_t counts[256];
    unsigned symbols; /* counts[0..symbols) */
    unsigned log;
} fse_norm;

int fse_normalize(fse_norm *n, const uint32_t *counts, unsigned symbols, uint32_t total,
                  unsigned log);
void fse_build_ctable(fse_ctable *t, const fse_norm *n);
/* The table of RLE mode: one symbol, coded in no bits. */
void fse_rle_ctable(fse_ctable *t, unsigned symbol);
/* Write a table description (RFC 8878 4.1.1); returns its size in bytes. */
size_t fse_write_norm(uint8_t *dst, const fse_norm *n);
/* Bits the table description would take. */
unsigned fse_norm_bits(const fse_norm *n);
/* Cost in 1/256 bits of coding `counts` with `n`; UINT64_MAX if a used symbol has no cell. */
uint64_t fse_cost(const fse_norm *n, const uint32_t *counts, unsigned symbols);

/* The state to start from when the last symbol coded (the first decoded) is `symbol`. */
static inline uint32_t fse_init_state(const fse_ctable *t, unsigned symbol) {
    return t->symbols[symbol].first;
}

static inline void fse_encode(bit_out *b, const fse_ctable *t, uint32_t *state, unsigned symbol) {
    uint32_t x = *state;
    unsigned n = (x + t->symbols[symbol].delta_bits) >> 16;
    bits_add(b, x & ((1u << n) - 1), n);
    *state = t->states[(int32_t)(x >> n) + t->symbols[symbol].delta_state];
}

/* ---- Huffman literals ------------------------------------------------------------------- */

typedef struct {
    uint16_t code[256];
    uint8_t length[256]; /* 0: the symbol has no code */
    unsigned max_bits;
    unsigned symbols; /* 1 + the largest symbol with a code */
} huffman_ctable;

/* Build a length-limited canonical code for `counts` (at least two symbols used). */
void huffman_build_ctable(huffman_ctable *h, const uint32_t *counts, unsigned symbols,
                          unsigned max_bits);
/* Write the tree description (RFC 8878 4.2.1); returns its size, 0 if it cannot be
 * described (the caller then sends the literals raw). */
size_t huffman_write_table(uint8_t *dst, const huffman_ctable *h);
/* Encode literals into 1 or 4 streams (with the jump table); returns bytes written. */
size_t huffman_encode(uint8_t *dst, const huffman_ctable *h, const uint8_t *src, size_t n,
                      int four_streams);
/* Bits to code `counts` with h; UINT64_MAX if a used symbol has no code. */
uint64_t huffman_cost(const huffman_ctable *h, const uint32_t *counts, unsigned symbols);

/* ---- Blocks ---------------------------------------------------------------------------- */

/* One sequence: literal_length literals, then a match of match_length bytes. off_base is
 * the Offset_Value of RFC 8878: 1-3 a repeat offset, offset + 3 otherwise. */
typedef struct {
    uint32_t literal_length, match_length, off_base;
} sequence;

/* A block's sequences and literals, as the match finder produced them. literals is buffer,
 * or the block itself when it is all literals. */
typedef struct {
    sequence *sequences;
    size_t count;
    uint8_t *buffer;
    const uint8_t *literals;
    size_t literal_count;
} sequence_store;

/* A block has at most BLOCK_MAX / 3 sequences (matches are at least 3 bytes). */
#define SEQUENCES_MAX (BLOCK_MAX / 3 + 1)

/* The entropy tables the decoder keeps from block to block of a frame, for repeat modes. */
typedef struct {
    huffman_ctable huffman;
    int have_huffman;
    fse_norm norm[3]; /* literal length, offset, match length */
    fse_ctable table[3];
    int have_table[3];
} entropy_tables;

/* Room compress_block needs in dst: four Huffman streams at their worst-case offsets while
 * they are written (BLOCK_MAX * 11 / 8 and slack), or the sequences (at most 12 bytes each). */
#define BLOCK_SCRATCH (BLOCK_MAX + 1024 + 12 * SEQUENCES_MAX)

/* Compress one block's literals and sequences into dst (BLOCK_SCRATCH bytes). Returns the compressed size, or 0 when it would not be smaller than block_size
 * (the caller then sends the block raw). `next` gets the tables as the decoder will have
 * them after this block; `previous` is what it has before. */
size_t compress_block(uint8_t *dst, size_t block_size, const sequence_store *store,
                      const entropy_tables *previous, entropy_tables *next,
                      int compress_literals);

/* 1/256ths of a bit: log2(x) * 256 for x in 0..512 (0 for 0). */
extern uint16_t LOG2_256[513];
void encoder_init_tables(void);

#endif
