/* PackBits run-length coding (Apple, TIFF compression 32773). No configuration.
 *
 * A header byte n is followed by n + 1 literal bytes (0 <= n <= 127) or by one byte to repeat
 * 1 - n times (-127 <= n <= -1); n = -128 is skipped. Decoding sizes its output with a first
 * pass, so it allocates exactly once; a header whose literal bytes run past the end is corrupt.
 */
#include "chonkle_codec.h"

CHONKLE_EXPORT(decode) int64_t decode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    (void)config, (void)config_length;
    uint64_t size = 0;
    for (uint32_t i = 0; i < length;) {
        int8_t n = (int8_t)input[i++];
        if (n >= 0) {
            if ((uint32_t)n + 1 > length - i)
                return chonkle_fail("truncated input: a literal run of %d bytes at offset %u "
                                    "passes the end", n + 1, i - 1);
            size += (uint32_t)n + 1, i += (uint32_t)n + 1;
        } else if (n != -128) {
            if (i >= length)
                return chonkle_fail("truncated input: a repeat run at offset %u has no byte", i - 1);
            size += 1u - n, i++;
        }
    }
    if (size > chonkle_output_limit) return chonkle_fail_limit(size);
    /* Runs are at most 128 bytes: copy and fill them in 16-byte steps, into 16 bytes of slack
     * (a variable-size memcpy or memset would be a memory.copy or memory.fill call). */
    uint8_t *out = malloc(size + 16), *at = out;
    if (!out) return chonkle_fail("out of memory for %llu output bytes", (unsigned long long)size);
    for (uint32_t i = 0; i < length;) {
        int8_t n = (int8_t)input[i++];
        if (n >= 0) {
            size_t run = (size_t)n + 1;
            if (length - i >= 128) { /* the input has room to over-read too */
                for (size_t k = 0; k < run; k += 16) memcpy(at + k, input + i + k, 16);
            } else {
                for (size_t k = 0; k < run; k++) at[k] = input[i + k];
            }
            at += run, i += (uint32_t)run;
        } else if (n != -128) {
            uint64_t word = 0x0101010101010101ull * input[i++];
            size_t run = (size_t)(1 - n);
            for (size_t k = 0; k < run; k += 16) memcpy(at + k, &word, 8), memcpy(at + k + 8, &word, 8);
            at += run;
        }
    }
    return chonkle_result(out, (uint32_t)size);
}

/* Runs of 3 or more equal bytes become repeat runs (2 only when no literal run is open);
 * everything else goes into literal runs of up to 128 bytes. */
CHONKLE_EXPORT(encode) int64_t encode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    (void)config, (void)config_length;
    uint64_t bound = (uint64_t)length + (length + 127) / 128;
    if (bound > chonkle_output_limit) return chonkle_fail_limit(bound);
    uint8_t *out = malloc(bound ? bound : 1), *at = out, *literal = NULL;
    if (!out) return chonkle_fail("out of memory for %llu output bytes", (unsigned long long)bound);
    for (uint32_t i = 0; i < length;) {
        uint32_t run = 1;
        while (i + run < length && run < 128 && input[i + run] == input[i]) run++;
        if (run >= 3 || (run == 2 && literal == NULL)) {
            *at++ = (uint8_t)(1 - (int)run);
            *at++ = input[i];
            i += run;
            literal = NULL;
            continue;
        }
        if (literal == NULL || *literal == 127) {
            literal = at++;
            *literal = 0xFF; /* becomes 0 with the first byte */
        }
        (*literal)++;
        *at++ = input[i++];
    }
    return chonkle_result(out, (uint32_t)(at - out));
}
