/* Byte shuffle, as numcodecs.Shuffle: byte j of element i moves to j * count + i, so equal
 * significance bytes of all elements sit together. Configuration: elementsize (default 4).
 */
#include "chonkle_codec.h"

static int64_t run(int decode, const uint8_t *input, uint32_t length, const uint8_t *config,
                   uint32_t config_length) {
    int64_t elementsize = 4;
    CHONKLE_OPTIONAL_INT(config, config_length, "elementsize", 1, 1 << 20, &elementsize);
    size_t size = (size_t)elementsize;
    if (length % size)
        return chonkle_fail("input of %u bytes is not a whole number of %zu-byte elements", length,
                            size);
    uint8_t *out = malloc(length ? length : 1);
    if (!out) return chonkle_fail("out of memory for %u output bytes", length);
    size_t count = length / size;
    if (decode) {
        for (size_t j = 0; j < size; j++) {
            const uint8_t *plane = input + j * count;
            for (size_t i = 0; i < count; i++) out[i * size + j] = plane[i];
        }
    } else {
        for (size_t j = 0; j < size; j++) {
            uint8_t *plane = out + j * count;
            for (size_t i = 0; i < count; i++) plane[i] = input[i * size + j];
        }
    }
    return chonkle_result(out, length);
}

CHONKLE_EXPORT(encode) int64_t encode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    return run(0, input, length, config, config_length);
}

CHONKLE_EXPORT(decode) int64_t decode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    return run(1, input, length, config, config_length);
}
