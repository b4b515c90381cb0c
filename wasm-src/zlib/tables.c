/* The constants of RFC 1951 (DEFLATE) and Adler-32 of RFC 1950. */
#include <wasm_simd128.h>

#define CHONKLE_SECONDARY_FILE
#include "zlib_internal.h"

const uint16_t LENGTH_BASE[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                  31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
const uint8_t LENGTH_EXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                  2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
const uint16_t DIST_BASE[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
const uint8_t DIST_EXTRA[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
const uint8_t CODE_LENGTH_ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

#define ADLER_MOD 65521u
/* Bytes that can be summed before the 32-bit sums must be reduced (as in RFC 1950's NMAX),
 * rounded down to whole 16-byte vectors. */
#define ADLER_BLOCK 5536u

/* 16 bytes per step: s1 gains their sum; s2 gains 16 * s1 before the step plus the bytes
 * weighted 16..1. Both come from i32x4.dot_i16x8_s, which wasmer 1.1 also compiles. */
__attribute__((target("simd128"))) uint32_t adler32(const uint8_t *data, size_t length) {
    uint32_t s1 = 1, s2 = 0;
    const v128_t ones = wasm_i16x8_splat(1);
    const v128_t weights_low = wasm_i16x8_make(16, 15, 14, 13, 12, 11, 10, 9);
    const v128_t weights_high = wasm_i16x8_make(8, 7, 6, 5, 4, 3, 2, 1);
    while (length >= 16) {
        size_t block = length < ADLER_BLOCK ? length & ~(size_t)15 : ADLER_BLOCK;
        v128_t sums = wasm_i32x4_splat(0), weighted = wasm_i32x4_splat(0),
               earlier = wasm_i32x4_splat(0);
        for (size_t i = 0; i < block; i += 16) {
            v128_t bytes = wasm_v128_load(data + i);
            v128_t low = wasm_u16x8_extend_low_u8x16(bytes), high = wasm_u16x8_extend_high_u8x16(bytes);
            earlier = wasm_i32x4_add(earlier, sums);
            sums = wasm_i32x4_add(sums, wasm_i32x4_add(wasm_i32x4_dot_i16x8(low, ones),
                                                       wasm_i32x4_dot_i16x8(high, ones)));
            weighted = wasm_i32x4_add(weighted,
                                      wasm_i32x4_add(wasm_i32x4_dot_i16x8(low, weights_low),
                                                     wasm_i32x4_dot_i16x8(high, weights_high)));
        }
        uint32_t lanes[3][4];
        wasm_v128_store(lanes[0], sums);
        wasm_v128_store(lanes[1], weighted);
        wasm_v128_store(lanes[2], earlier);
        uint64_t block_sum = (uint64_t)lanes[0][0] + lanes[0][1] + lanes[0][2] + lanes[0][3];
        uint64_t block_weighted = (uint64_t)lanes[1][0] + lanes[1][1] + lanes[1][2] + lanes[1][3];
        uint64_t block_earlier = (uint64_t)lanes[2][0] + lanes[2][1] + lanes[2][2] + lanes[2][3];
        s2 = (uint32_t)((s2 + (uint64_t)s1 * block + 16 * block_earlier + block_weighted) % ADLER_MOD);
        s1 = (uint32_t)((s1 + block_sum) % ADLER_MOD);
        data += block, length -= block;
    }
    for (size_t i = 0; i < length; i++) s1 += data[i], s2 += s1;
    return ((s2 % ADLER_MOD) << 16) | (s1 % ADLER_MOD);
}
