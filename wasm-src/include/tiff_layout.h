/* tiff_layout.h: the row layout shared by the TIFF predictors.
 *
 * Configuration: bytes_per_sample, width (pixels per row), samples_per_pixel (default 1),
 * endian ("little", the default, or "big": the byte order of the samples).
 * A chunk is whole rows of width * samples_per_pixel samples.
 */
#ifndef TIFF_LAYOUT_H
#define TIFF_LAYOUT_H

#include "chonkle_codec.h"

typedef struct {
    size_t bytes_per_sample; /* 1, 2, 4 or 8 */
    size_t samples_per_pixel;
    size_t row_samples; /* width * samples_per_pixel */
    size_t rows;
    int big_endian; /* samples are big-endian ("endian": "big") */
} tiff_layout;

/* Fill *layout from the configuration and check `length` bytes form whole rows. `allowed` is a
 * bit mask of permitted bytes_per_sample values (bit n set: n bytes allowed). Returns 1 when
 * valid; else 0, the failure result, with the reason recorded by chonkle_fail. */
static int tiff_layout_read(const uint8_t *config, uint32_t config_length, uint32_t length,
                                unsigned allowed, tiff_layout *layout) {
    int64_t bps = 0, width = 0, spp = 1;
    CHONKLE_REQUIRE_INT(config, config_length, "bytes_per_sample", 1, 8, &bps);
    if (!(allowed & (1u << bps))) {
        char list[32] = "";
        for (int n = 1; n <= 8; n++)
            if (allowed & (1u << n)) snprintf(list + strlen(list), 4, "%s%d", *list ? "," : "", n);
        return chonkle_fail("configuration \"bytes_per_sample\" must be one of %s, not %lld",
                            list, (long long)bps);
    }
    CHONKLE_REQUIRE_INT(config, config_length, "width", 1, 1 << 30, &width);
    CHONKLE_OPTIONAL_INT(config, config_length, "samples_per_pixel", 1, 1 << 16, &spp);
    char endian[8] = "little";
    chonkle_lookup found = chonkle_config_string(config, config_length, "endian", endian,
                                                 sizeof endian);
    if (found == CHONKLE_INVALID || (strcmp(endian, "little") != 0 && strcmp(endian, "big") != 0))
        return chonkle_fail("configuration \"endian\" must be \"little\" or \"big\"");
    layout->big_endian = strcmp(endian, "big") == 0;
    layout->bytes_per_sample = (size_t)bps;
    layout->samples_per_pixel = (size_t)spp;
    layout->row_samples = (size_t)width * (size_t)spp;
    if (length % layout->bytes_per_sample)
        return chonkle_fail("input of %u bytes is not a whole number of %zu-byte samples", length,
                            layout->bytes_per_sample);
    size_t samples = length / layout->bytes_per_sample;
    if ((uint64_t)layout->row_samples * layout->bytes_per_sample > 0xFFFFFFFFu ||
        samples % layout->row_samples)
        return chonkle_fail("%zu samples do not form whole rows of %zu samples", samples,
                            layout->row_samples);
    layout->rows = samples / layout->row_samples;
    return 1;
}

#endif
