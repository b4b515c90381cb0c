/* Shared by the zlib codec's files: deflate constants and Adler-32.
 *
 * Sizes: linear memory is 32-bit, so size_t is too. Capacities and bounds are computed in
 * 64 bits and checked against chonkle_output_limit (the most bytes a call may return)
 * before anything is allocated, so none wraps near 4 GiB.
 */
#ifndef ZLIB_INTERNAL_H
#define ZLIB_INTERNAL_H

#include "chonkle_codec.h"


extern const uint16_t LENGTH_BASE[29];
extern const uint8_t LENGTH_EXTRA[29];
extern const uint16_t DIST_BASE[30];
extern const uint8_t DIST_EXTRA[30];
extern const uint8_t CODE_LENGTH_ORDER[19];

uint32_t adler32(const uint8_t *data, size_t length);
int64_t inflate_zlib(const uint8_t *input, uint32_t length);
int64_t deflate_zlib(const uint8_t *input, uint32_t length, int level);

#endif
