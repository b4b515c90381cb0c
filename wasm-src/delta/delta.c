/* Delta, as numcodecs.Delta: encode stores the first element and the differences of neighbours;
 * decode is the running sum. Configuration: dtype (a numpy dtype string such as "<i4", "u2",
 * "int16" or "float64") and astype (default dtype), the type the differences are stored as.
 *
 * Same results as numpy, bit for bit: integer differences are taken in dtype and wrap, then
 * cast to astype; the running sum accumulates in dtype. Floats take differences in dtype; the
 * running sum is kept in the wider of dtype and astype and rounded to dtype as it is stored.
 */
#include <wasm_simd128.h>

#include "chonkle_codec.h"

typedef struct {
    char kind; /* 'i', 'u' or 'f' */
    unsigned size;
    int big_endian;
} dtype;

static const struct { const char *name; char kind; unsigned size; } NAMES[] = {
    {"int8", 'i', 1},  {"int16", 'i', 2},  {"int32", 'i', 4},  {"int64", 'i', 8},
    {"uint8", 'u', 1}, {"uint16", 'u', 2}, {"uint32", 'u', 4}, {"uint64", 'u', 8},
    {"float32", 'f', 4}, {"float64", 'f', 8},
};

static int parse_dtype(const char *text, dtype *d) {
    d->big_endian = 0;
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
        if (strcmp(text, NAMES[i].name) == 0) {
            d->kind = NAMES[i].kind;
            d->size = NAMES[i].size;
            return 1;
        }
    }
    if (*text == '<' || *text == '|' || *text == '=') text++;
    else if (*text == '>') d->big_endian = 1, text++;
    d->kind = *text++;
    if (d->kind != 'i' && d->kind != 'u' && d->kind != 'f') return 0;
    if (text[0] < '1' || text[0] > '8' || text[1] != 0) return 0;
    d->size = (unsigned)(text[0] - '0');
    if (d->kind == 'f') return d->size == 4 || d->size == 8;
    return d->size == 1 || d->size == 2 || d->size == 4 || d->size == 8;
}

static uint64_t load(const uint8_t *p, dtype t) {
    uint64_t bits = 0;
    for (unsigned b = 0; b < t.size; b++) bits |= (uint64_t)p[t.big_endian ? t.size - 1 - b : b] << (8 * b);
    return bits;
}

static void store(uint8_t *p, uint64_t bits, dtype t) {
    for (unsigned b = 0; b < t.size; b++) p[t.big_endian ? t.size - 1 - b : b] = (uint8_t)(bits >> (8 * b));
}

/* An integer's value as 64 bits: sign-extended for signed types. */
static uint64_t extend(uint64_t bits, dtype t) {
    if (t.size == 8) return bits;
    unsigned shift = 64 - 8 * t.size;
    if (t.kind == 'i') return (uint64_t)((int64_t)(bits << shift) >> shift);
    return bits & (~0ull >> shift);
}

static double load_float(const uint8_t *p, dtype t) {
    uint64_t bits = load(p, t);
    if (t.size == 8) {
        double d;
        memcpy(&d, &bits, 8);
        return d;
    }
    uint32_t narrow = (uint32_t)bits;
    float f;
    memcpy(&f, &narrow, 4);
    return f;
}

static void store_float(uint8_t *p, double value, dtype t) {
    if (t.size == 8) {
        uint64_t bits;
        memcpy(&bits, &value, 8);
        store(p, bits, t);
    } else {
        float f = (float)value;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        store(p, bits, t);
    }
}

static void encode_values(const uint8_t *in, uint8_t *out, size_t n, dtype d, dtype a) {
    if (d.kind == 'f') {
        double previous = 0;
        for (size_t i = 0; i < n; i++) {
            double value = load_float(in + i * d.size, d);
            /* np.diff computes in dtype: round float32 differences to float32 */
            double difference = i == 0 ? value
                                : d.size == 4 ? (double)((float)value - (float)previous)
                                              : value - previous;
            store_float(out + i * a.size, difference, a);
            previous = value;
        }
        return;
    }
    uint64_t previous = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t value = load(in + i * d.size, d);
        uint64_t difference = i == 0 ? value : value - previous;
        store(out + i * a.size, extend(extend(difference, d), d), a); /* wrap in dtype */
        previous = value;
    }
}

static void decode_values(const uint8_t *in, uint8_t *out, size_t n, dtype d, dtype a) {
    if (d.kind == 'f') {
        double sum = 0;
        int wide = d.size == 8 || a.size == 8;
        for (size_t i = 0; i < n; i++) {
            double value = load_float(in + i * a.size, a);
            sum = wide ? sum + value : (double)((float)sum + (float)value);
            store_float(out + i * d.size, sum, d);
        }
        return;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += extend(load(in + i * a.size, a), a);
        store(out + i * d.size, sum, d);
    }
}

/* The common case, dtype == astype and little-endian: typed loops with the running value in
 * a register (integers as unsigned: the same bits, and wrapping is defined). Encoding takes
 * each vector of items minus the vector one item back (an unaligned load); lane-wise IEEE
 * subtraction rounds exactly as the scalar one does, so floats come out bit for bit. */
#define TYPED_LOOPS(T, SUB)                                                           \
    __attribute__((target("simd128"))) static void encode_##T(const T *in, T *out,     \
                                                              size_t n) {             \
        size_t i = 1, lanes = 16 / sizeof(T);                                         \
        if (n) out[0] = in[0];                                                        \
        for (; i + lanes <= n; i += lanes)                                            \
            wasm_v128_store(out + i, SUB(wasm_v128_load(in + i), wasm_v128_load(in + i - 1))); \
        for (; i < n; i++) out[i] = (T)(in[i] - in[i - 1]);                           \
    }                                                                                 \
    static void decode_##T(const T *in, T *out, size_t n) {                           \
        T sum = 0;                                                                    \
        for (size_t i = 0; i < n; i++) out[i] = sum = (T)(sum + in[i]);               \
    }
TYPED_LOOPS(uint8_t, wasm_i8x16_sub)
TYPED_LOOPS(uint16_t, wasm_i16x8_sub)
TYPED_LOOPS(uint32_t, wasm_i32x4_sub)
TYPED_LOOPS(uint64_t, wasm_i64x2_sub)
TYPED_LOOPS(float, wasm_f32x4_sub)
TYPED_LOOPS(double, wasm_f64x2_sub)

static int typed(int decode, const uint8_t *in, uint8_t *out, size_t n, dtype d, dtype a) {
    if (d.kind != a.kind || d.size != a.size || (d.big_endian && d.size > 1) || (a.big_endian && a.size > 1))
        return 0;
#define CASE(T) (decode ? decode_##T : encode_##T)((const T *)(const void *)in, (T *)(void *)out, n)
    if (d.kind == 'f') {
        if (d.size == 4) CASE(float);
        else CASE(double);
        return 1;
    }
    switch (d.size) {
    case 1: CASE(uint8_t); break;
    case 2: CASE(uint16_t); break;
    case 4: CASE(uint32_t); break;
    default: CASE(uint64_t);
    }
#undef CASE
    return 1;
}

static int64_t run(int decode, const uint8_t *input, uint32_t length, const uint8_t *config,
                   uint32_t config_length) {
    char dtype_text[16], astype_text[16];
    dtype d, a;
    chonkle_lookup found = chonkle_config_string(config, config_length, "dtype", dtype_text,
                                                 sizeof dtype_text);
    if (found == CHONKLE_MISSING) return chonkle_fail("configuration lacks \"dtype\"");
    if (found != CHONKLE_FOUND || !parse_dtype(dtype_text, &d))
        return chonkle_fail("configuration \"dtype\" must be an integer or float32/float64 "
                            "numpy dtype such as \"<i4\" or \"uint16\"");
    found = chonkle_config_string(config, config_length, "astype", astype_text, sizeof astype_text);
    if (found == CHONKLE_MISSING) a = d;
    else if (found != CHONKLE_FOUND || !parse_dtype(astype_text, &a))
        return chonkle_fail("configuration \"astype\" must be an integer or float32/float64 "
                            "numpy dtype such as \"<i2\"");
    if ((d.kind == 'f') != (a.kind == 'f'))
        return chonkle_fail("dtype and astype must both be integers or both floating point");
    dtype in_type = decode ? a : d, out_type = decode ? d : a;
    if (length % in_type.size)
        return chonkle_fail("input of %u bytes is not a whole number of %u-byte items", length,
                            in_type.size);
    size_t n = length / in_type.size;
    uint64_t out_length = (uint64_t)n * out_type.size;
    if (out_length > chonkle_output_limit) return chonkle_fail_limit(out_length);
    uint8_t *out = malloc(out_length ? (size_t)out_length : 1);
    if (!out) return chonkle_fail("out of memory for %llu output bytes", (unsigned long long)out_length);
    if (!typed(decode, input, out, n, d, a)) (decode ? decode_values : encode_values)(input, out, n, d, a);
    return chonkle_result(out, (uint32_t)out_length);
}

CHONKLE_EXPORT_ENCODE_DECODE(run)
