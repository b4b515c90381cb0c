/* TIFF predictor 3: the floating-point predictor of TIFF Technical Note 3, as libtiff does it.
 *
 * Per row, the bytes of the samples are regrouped by significance (all most significant bytes
 * first, then the next, ...) and the resulting byte string is differenced with a distance of
 * samples_per_pixel bytes. Configuration: bytes_per_sample (2, 4 or 8), width,
 * samples_per_pixel (default 1), endian ("little", the default, or "big").
 *
 * The encoded bytes do not depend on a byte order: a TIFF stores the same predicted bytes
 * whether the file is II or MM, and libtiff hands the decoded floats to its caller in the
 * machine's order. `endian` is the byte order of the decoded samples (what decode returns and
 * encode takes), so it is set like the `bytes` step next to this one.
 */
#include "tiff_layout.h"

/* Offset, within a sample, of the byte of significance plane `p` (0: most significant). */
#define PLANE_BYTE(p, bps, big_endian) ((big_endian) ? (p) : (bps) - 1 - (p))

static void encode_row(const uint8_t *restrict in, uint8_t *restrict out, size_t n, size_t bps,
                       size_t spp, int big_endian) {
    for (size_t p = 0; p < bps; p++) {
        uint8_t *plane = out + p * n;
        const uint8_t *from = in + PLANE_BYTE(p, bps, big_endian);
        for (size_t i = 0; i < n; i++) plane[i] = from[i * bps];
    }
    for (size_t k = n * bps; k-- > spp;) out[k] = (uint8_t)(out[k] - out[k - spp]);
}

static void decode_row(const uint8_t *restrict in, uint8_t *restrict out, uint8_t *restrict sums,
                       size_t n, size_t bps, size_t spp, int big_endian) {
    size_t total = n * bps;
    if (spp == 1) {
        uint8_t sum = 0;
        for (size_t k = 0; k < total; k++) sums[k] = sum = (uint8_t)(sum + in[k]);
    } else {
        for (size_t k = 0; k < total; k++) sums[k] = k < spp ? in[k] : (uint8_t)(in[k] + sums[k - spp]);
    }
    for (size_t p = 0; p < bps; p++) {
        const uint8_t *plane = sums + p * n;
        uint8_t *to = out + PLANE_BYTE(p, bps, big_endian);
        for (size_t i = 0; i < n; i++) to[i * bps] = plane[i];
    }
}

static int64_t run(int decode, const uint8_t *input, uint32_t length, const uint8_t *config,
                   uint32_t config_length) {
    tiff_layout t;
    if (!tiff_layout_read(config, config_length, length, 0x114, &t)) return 0; /* 2, 4, 8 */
    if (length > chonkle_output_limit) return chonkle_fail_limit(length);
    size_t row_bytes = t.row_samples * t.bytes_per_sample;
    uint8_t *out = malloc(length ? length : 1);
    uint8_t *sums = decode ? malloc(t.rows ? row_bytes : 1) : NULL; /* row_bytes <= length */
    if (!out || (decode && !sums)) {
        free(out);
        return chonkle_fail("out of memory for %u output bytes", length);
    }
    for (size_t r = 0; r < t.rows; r++) {
        const uint8_t *row_in = input + r * row_bytes;
        uint8_t *row_out = out + r * row_bytes;
        if (decode)
            decode_row(row_in, row_out, sums, t.row_samples, t.bytes_per_sample,
                       t.samples_per_pixel, t.big_endian);
        else
            encode_row(row_in, row_out, t.row_samples, t.bytes_per_sample, t.samples_per_pixel,
                       t.big_endian);
    }
    free(sums);
    return chonkle_result(out, length);
}

CHONKLE_EXPORT_ENCODE_DECODE(run)
