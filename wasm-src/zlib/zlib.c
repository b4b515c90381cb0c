/* zlib (RFC 1950) compression, interoperable with numcodecs.Zlib: decode reads any valid
 * zlib stream; encode writes one at the configured level (0-9, or -1 for zlib's default 6;
 * default 1 as numcodecs). config.schema.json declares the configuration.
 */
#include "zlib_internal.h"

CHONKLE_EXPORT(decode) int64_t decode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    (void)config, (void)config_length; /* the level does not matter for decoding */
    return inflate_zlib(input, length);
}

CHONKLE_EXPORT(encode) int64_t encode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    int64_t level = 1;
    CHONKLE_OPTIONAL_INT(config, config_length, "level", -1, 9, &level);
    return deflate_zlib(input, length, level < 0 ? 6 : (int)level);
}
