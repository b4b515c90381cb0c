/* TIFF predictor 2: horizontal differencing of each row, per sample of a pixel.
 *
 * Configuration: bytes_per_sample (1, 2, 4 or 8), width, samples_per_pixel (default 1),
 * endian ("little", the default, or "big"). Samples are unsigned integers in that byte order
 * (signed samples give the same bytes); arithmetic wraps, as the TIFF specification says and
 * libtiff does. Each sample follows the same sample of the previous pixel, as libtiff's
 * horizontal differencing does with samples_per_pixel interleaved samples (PlanarConfiguration
 * 1); planes stored separately are rows of samples_per_pixel 1.
 */
#include <wasm_simd128.h>

#include "tiff_layout.h"

/* Differences of one row with one sample per pixel, a vector at a time: each lane minus the
 * lane before it, read with an unaligned load one sample back. Returns the samples done. */
#define DEFINE_SIMD_ENCODE(T, SUB)                                                           \
    __attribute__((target("simd128"))) static size_t encode_row_##T(const T *in, T *out,      \
                                                                    size_t row) {            \
        size_t lanes = 16 / sizeof(T), i = 1;                                                \
        for (; i + lanes <= row; i += lanes)                                                 \
            wasm_v128_store(out + i, SUB(wasm_v128_load(in + i), wasm_v128_load(in + i - 1))); \
        return i;                                                                            \
    }
DEFINE_SIMD_ENCODE(uint8_t, wasm_i8x16_sub)
DEFINE_SIMD_ENCODE(uint16_t, wasm_i16x8_sub)
DEFINE_SIMD_ENCODE(uint32_t, wasm_i32x4_sub)
DEFINE_SIMD_ENCODE(uint64_t, wasm_i64x2_sub)

#define DEFINE_ROWS(T)                                                                       \
    static void encode_##T(const T *restrict in, T *restrict out, size_t n, size_t row,      \
                           size_t spp) {                                                     \
        for (size_t start = 0; start < n; start += row) {                                    \
            if (spp == 1) {                                                                  \
                out[start] = in[start];                                                      \
                size_t i = start + encode_row_##T(in + start, out + start, row);             \
                for (; i < start + row; i++) out[i] = (T)(in[i] - in[i - 1]);                \
                continue;                                                                    \
            }                                                                                \
            for (size_t i = 0; i < spp; i++) out[start + i] = in[start + i];                 \
            for (size_t i = spp; i < row; i++)                                               \
                out[start + i] = (T)(in[start + i] - in[start + i - spp]);                   \
        }                                                                                    \
    }                                                                                        \
    static void decode_##T(const T *restrict in, T *restrict out, size_t n, size_t row,      \
                           size_t spp) {                                                     \
        for (size_t start = 0; start < n; start += row) {                                    \
            if (spp == 1) { /* the common case: keep the running sum in a register */        \
                T sum = 0;                                                                   \
                for (size_t i = start; i < start + row; i++) out[i] = sum = (T)(sum + in[i]); \
                continue;                                                                    \
            }                                                                                \
            for (size_t i = 0; i < spp; i++) out[start + i] = in[start + i];                 \
            for (size_t i = spp; i < row; i++)                                               \
                out[start + i] = (T)(in[start + i] + out[start + i - spp]);                  \
        }                                                                                    \
    }
DEFINE_ROWS(uint8_t)
DEFINE_ROWS(uint16_t)
DEFINE_ROWS(uint32_t)
DEFINE_ROWS(uint64_t)

/* Reverse the byte order of each `size`-byte sample of `data`, in place. */
static void swap_bytes(void *data, size_t n, size_t size) {
    if (size == 2) {
        uint16_t *p = data;
        for (size_t i = 0; i < n; i++) p[i] = __builtin_bswap16(p[i]);
    } else if (size == 4) {
        uint32_t *p = data;
        for (size_t i = 0; i < n; i++) p[i] = __builtin_bswap32(p[i]);
    } else if (size == 8) {
        uint64_t *p = data;
        for (size_t i = 0; i < n; i++) p[i] = __builtin_bswap64(p[i]);
    }
}

static int64_t run(int decode, const uint8_t *input, uint32_t length, const uint8_t *config,
                   uint32_t config_length) {
    tiff_layout t;
    if (!tiff_layout_read(config, config_length, length, 0x116, &t)) return 0; /* 1, 2, 4, 8 */
    if (length > chonkle_output_limit) return chonkle_fail_limit(length);
    void *out = malloc(length ? length : 1);
    if (!out) return chonkle_fail("out of memory for %u output bytes", length);
    size_t n = length / t.bytes_per_sample, row = t.row_samples, spp = t.samples_per_pixel;
    /* Big-endian samples: work on them in the machine's order. The input buffer is this
     * module's memory, freed by the host right after the call, so it is swapped in place. */
    int swap = t.big_endian && t.bytes_per_sample > 1;
    if (swap) swap_bytes((void *)(uintptr_t)input, n, t.bytes_per_sample);
    switch (t.bytes_per_sample) {
    case 1: (decode ? decode_uint8_t : encode_uint8_t)(input, out, n, row, spp); break;
    case 2: (decode ? decode_uint16_t : encode_uint16_t)((const void *)input, out, n, row, spp); break;
    case 4: (decode ? decode_uint32_t : encode_uint32_t)((const void *)input, out, n, row, spp); break;
    default: (decode ? decode_uint64_t : encode_uint64_t)((const void *)input, out, n, row, spp);
    }
    if (swap) swap_bytes(out, n, t.bytes_per_sample);
    return chonkle_result(out, length);
}

CHONKLE_EXPORT_ENCODE_DECODE(run)
