/* Delta, as numcodecs.Delta: encode stores the first item and the differences of neighbours;
 * decode is the running sum. Configuration: dtype (a numpy dtype string such as "<i4", "u2",
 * ">f8", "bool" or "complex64"; null means float64, as np.dtype(None) does) and astype
 * (default, or null: dtype), the type the differences are stored as.
 *
 * Same bytes as numcodecs (numpy 2), item for item:
 *   encode: enc[0] = arr[0]; enc[1:] = np.diff(arr)
 *     differences are taken in dtype (integers wrap; booleans differ by "not equal"; float16
 *     is computed in float32 and rounded; complex numbers part by part), then cast to astype.
 *     The first item is stored as numpy assigns a scalar: into a signed integer astype, a
 *     value out of its range (or a NaN) is refused, as numpy raises OverflowError/ValueError.
 *   decode: np.cumsum(enc, out=dec)
 *     the running sum is kept in np.promote_types(astype, dtype) (a boolean sum is "or";
 *     uint64 with a signed type sums in float64) and each sum is cast to dtype.
 * Casts are numpy's: integers wrap, floats round to nearest even, float16 conversions keep NaN
 * payloads as numpy's software conversions do, complex to real keeps the real part. A float
 * cast to an integer type it does not fit (NaN, infinite, out of range) is refused: C leaves
 * that conversion undefined, and numpy's result differs between machines and even between
 * positions in one array. An empty input gives an empty output (numcodecs' encode raises).
 */
#include <math.h>
#include <wasm_simd128.h>

#include "chonkle_codec.h"

typedef struct {
    char kind;     /* 'b' (bool), 'i', 'u', 'f' or 'c' (complex) */
    unsigned size; /* bytes per item; a complex item holds two floats of size / 2 */
    int big_endian;
} dtype;

/* ---- dtype strings: exactly those accepted by numpy whose meaning is the same everywhere ---- */

static const struct { const char *name; char kind; unsigned size; } NAMES[] = {
    {"bool", 'b', 1},      {"bool_", 'b', 1},     {"int8", 'i', 1},       {"int16", 'i', 2},
    {"int32", 'i', 4},     {"int64", 'i', 8},     {"uint8", 'u', 1},      {"uint16", 'u', 2},
    {"uint32", 'u', 4},    {"uint64", 'u', 8},    {"float16", 'f', 2},    {"float32", 'f', 4},
    {"float64", 'f', 8},   {"complex64", 'c', 8}, {"complex128", 'c', 16}, {"half", 'f', 2},
    {"single", 'f', 4},    {"double", 'f', 8},    {"float", 'f', 8},      {"csingle", 'c', 8},
    {"cdouble", 'c', 16},  {"complex", 'c', 16},  {"byte", 'i', 1},       {"ubyte", 'u', 1},
    {"short", 'i', 2},     {"ushort", 'u', 2},    {"intc", 'i', 4},       {"uintc", 'u', 4},
    {"longlong", 'i', 8},  {"ulonglong", 'u', 8},
};

/* numpy's one-letter type codes of fixed size */
static const struct { char code, kind; unsigned size; } CODES[] = {
    {'?', 'b', 1}, {'b', 'i', 1}, {'B', 'u', 1}, {'h', 'i', 2}, {'H', 'u', 2},
    {'i', 'i', 4}, {'I', 'u', 4}, {'q', 'i', 8}, {'Q', 'u', 8}, {'e', 'f', 2},
    {'f', 'f', 4}, {'d', 'f', 8}, {'F', 'c', 8}, {'D', 'c', 16},
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
    if (*text && strchr("<>=|", *text)) d->big_endian = *text++ == '>';
    if (text[0] && text[1] == 0) { /* a type code */
        for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++) {
            if (CODES[i].code == text[0]) {
                d->kind = CODES[i].kind;
                d->size = CODES[i].size;
                return 1;
            }
        }
        return 0;
    }
    /* kind and size: b1, i1..i8, u1..u8, f2/f4/f8, c8/c16 */
    d->kind = *text++;
    if (strcmp(text, "16") == 0) d->size = 16;
    else if (text[0] >= '1' && text[0] <= '8' && text[1] == 0) d->size = (unsigned)(text[0] - '0');
    else return 0;
    switch (d->kind) {
    case 'b': return d->size == 1;
    case 'i': case 'u': return d->size == 1 || d->size == 2 || d->size == 4 || d->size == 8;
    case 'f': return d->size == 2 || d->size == 4 || d->size == 8;
    case 'c': return d->size == 8 || d->size == 16;
    default: return 0;
    }
}

/* The type numpy sums in: np.promote_types(a, b). */
static dtype promote(dtype a, dtype b) {
    dtype r = {0, 0, 0};
    if (a.kind == 'b') return r = b, r.big_endian = 0, r;
    if (b.kind == 'b') return r = a, r.big_endian = 0, r;
    int a_int = a.kind == 'i' || a.kind == 'u', b_int = b.kind == 'i' || b.kind == 'u';
    if (a_int && b_int) {
        if (a.kind == b.kind) return r.kind = a.kind, r.size = a.size > b.size ? a.size : b.size, r;
        dtype s = a.kind == 'i' ? a : b, u = a.kind == 'i' ? b : a;
        if (s.size > u.size) return r.kind = 'i', r.size = s.size, r;
        if (u.size < 8) return r.kind = 'i', r.size = 2 * u.size, r;
        return r.kind = 'f', r.size = 8, r; /* int64 with uint64: float64 */
    }
    /* the float size each operand needs: integers by their precision, complex per part */
#define NEED(t) ((t).kind == 'f'   ? (t).size                                          \
                 : (t).kind == 'c' ? (t).size / 2                                      \
                                   : ((t).size == 1 ? 2u : (t).size == 2 ? 4u : 8u))
    unsigned part = NEED(a) > NEED(b) ? NEED(a) : NEED(b);
#undef NEED
    if (a.kind == 'c' || b.kind == 'c') return r.kind = 'c', r.size = 2 * (part > 4 ? part : 4), r;
    return r.kind = 'f', r.size = part, r;
}

static void describe(char *out, size_t size, dtype t) {
    const char *name = t.kind == 'i'   ? "int"
                       : t.kind == 'u' ? "uint"
                       : t.kind == 'f' ? "float"
                                       : "complex";
    if (t.kind == 'b') snprintf(out, size, "bool");
    else snprintf(out, size, "%s%s%u", t.big_endian && t.size > 1 ? "big-endian " : "", name,
                  8 * t.size);
}

/* ---- items: the raw bits of one value in its own type (complex: real and imaginary part) ---- */

typedef struct {
    uint64_t re, im;
} item;

static uint64_t load_bits(const uint8_t *p, unsigned n, int big_endian) {
    uint64_t bits = 0;
    for (unsigned b = 0; b < n; b++) bits |= (uint64_t)p[big_endian ? n - 1 - b : b] << (8 * b);
    return bits;
}

static void store_bits(uint8_t *p, uint64_t bits, unsigned n, int big_endian) {
    for (unsigned b = 0; b < n; b++) p[big_endian ? n - 1 - b : b] = (uint8_t)(bits >> (8 * b));
}

static item load(const uint8_t *p, dtype t) {
    item v = {0, 0};
    if (t.kind == 'c') {
        v.re = load_bits(p, t.size / 2, t.big_endian);
        v.im = load_bits(p + t.size / 2, t.size / 2, t.big_endian);
    } else {
        v.re = load_bits(p, t.size, t.big_endian);
    }
    return v;
}

static void store(uint8_t *p, item v, dtype t) {
    if (t.kind == 'c') {
        store_bits(p, v.re, t.size / 2, t.big_endian);
        store_bits(p + t.size / 2, v.im, t.size / 2, t.big_endian);
    } else {
        store_bits(p, v.re, t.size, t.big_endian);
    }
}

static float as_float(uint64_t bits) {
    uint32_t narrow = (uint32_t)bits;
    float f;
    memcpy(&f, &narrow, 4);
    return f;
}

static double as_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static uint64_t float_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return bits;
}

static uint64_t double_bits(double d) {
    uint64_t bits;
    memcpy(&bits, &d, 8);
    return bits;
}

/* float16 <-> wider, in software as numpy does it: exact widening that keeps a NaN's payload
 * (signalling or not), and narrowing rounded to nearest even, a NaN keeping the top bits of
 * its payload (at least one set). */
static uint64_t half_to_double_bits(uint16_t h) {
    uint64_t sign = (uint64_t)(h & 0x8000) << 48;
    unsigned exponent = (h >> 10) & 0x1F, fraction = h & 0x3FF;
    if (exponent == 0x1F) return sign | 0x7FF0000000000000ull | (uint64_t)fraction << 42;
    if (exponent == 0) {
        if (fraction == 0) return sign;
        int shift = 0; /* subnormal: normalize */
        while (!(fraction & 0x400)) fraction <<= 1, shift++;
        fraction &= 0x3FF;
        return sign | (uint64_t)(1023 - 15 + 1 - shift) << 52 | (uint64_t)fraction << 42;
    }
    return sign | (uint64_t)(exponent - 15 + 1023) << 52 | (uint64_t)fraction << 42;
}

static uint32_t half_to_float_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    unsigned exponent = (h >> 10) & 0x1F, fraction = h & 0x3FF;
    if (exponent == 0x1F) return sign | 0x7F800000u | (uint32_t)fraction << 13;
    /* every other half value is exactly a float */
    return float_bits((float)as_double(half_to_double_bits(h))) | sign;
}

static uint16_t double_bits_to_half(uint64_t d) {
    uint16_t sign = (uint16_t)((d >> 48) & 0x8000);
    int exponent = (int)((d >> 52) & 0x7FF);
    uint64_t fraction = d & 0xFFFFFFFFFFFFFull;
    if (exponent == 0x7FF) {
        if (fraction == 0) return sign | 0x7C00; /* infinity */
        uint16_t nan = (uint16_t)(0x7C00 | (fraction >> 42));
        return sign | (nan == 0x7C00 ? 0x7C01 : nan);
    }
    int e = exponent - 1023; /* value = 1.fraction * 2^e (double subnormals round to zero) */
    if (exponent == 0 || e < -26) return sign; /* below half the smallest subnormal */
    if (e > 15) return sign | 0x7C00;
    uint64_t significand = fraction | 1ull << 52;
    /* half normals keep 10 fraction bits (drop 42); subnormals count units of 2^-24 */
    unsigned shift = e >= -14 ? 42 : (unsigned)(28 - e);
    uint64_t kept = significand >> shift, rest = significand & ((1ull << shift) - 1);
    uint64_t half_way = 1ull << (shift - 1);
    uint32_t bits = e >= -14 ? (uint32_t)(e + 15) << 10 | (uint32_t)(kept & 0x3FF) : (uint32_t)kept;
    if (rest > half_way || (rest == half_way && (bits & 1))) bits++; /* a carry moves up a binade */
    return sign | (uint16_t)(bits >= 0x7C00 ? 0x7C00 : bits);
}

static uint16_t float_bits_to_half(uint32_t f) {
    /* float -> double keeping any NaN payload bit for bit (the hardware would quiet it) */
    uint64_t sign = (uint64_t)(f & 0x80000000u) << 32;
    unsigned exponent = (f >> 23) & 0xFF;
    if (exponent == 0xFF)
        return double_bits_to_half(sign | 0x7FF0000000000000ull | (uint64_t)(f & 0x7FFFFF) << 29);
    return double_bits_to_half(double_bits((double)as_float(f)));
}

/* One float part from `from` bytes to `to` bytes, as numpy casts it. */
static uint64_t convert_float(uint64_t bits, unsigned from, unsigned to) {
    if (from == to) return bits;
    switch (from * 16 + to) {
    case 2 * 16 + 4: return half_to_float_bits((uint16_t)bits);
    case 2 * 16 + 8: return half_to_double_bits((uint16_t)bits);
    case 4 * 16 + 8: return double_bits((double)as_float(bits));
    case 8 * 16 + 4: return float_bits((float)as_double(bits));
    case 4 * 16 + 2: return float_bits_to_half((uint32_t)bits);
    default: return double_bits_to_half(bits); /* 8 -> 2 */
    }
}

/* A float part's value as a double (exact for every non-NaN value). */
static double float_value(uint64_t bits, unsigned size) {
    if (size == 2) return as_double(half_to_double_bits((uint16_t)bits));
    return size == 4 ? as_float(bits) : as_double(bits);
}

/* An integer (its 64-bit value) as a float part of `to` bytes, rounded to nearest even. */
static uint64_t int_to_float(uint64_t value, int is_signed, unsigned to) {
    if (to == 8) return double_bits(is_signed ? (double)(int64_t)value : (double)value);
    float f = is_signed ? (float)(int64_t)value : (float)value;
    return to == 4 ? float_bits(f) : float_bits_to_half((uint32_t)float_bits(f));
}

static uint64_t mask(uint64_t bits, unsigned size) {
    return size >= 8 ? bits : bits & ((1ull << (8 * size)) - 1);
}

/* An integer's value as 64 bits: sign-extended for signed types, 0 or 1 for booleans. */
static uint64_t int_value(uint64_t bits, dtype t) {
    if (t.kind == 'b') return bits != 0;
    if (t.kind == 'u' || t.size == 8) return bits;
    unsigned shift = 64 - 8 * t.size;
    return (uint64_t)((int64_t)(bits << shift) >> shift);
}

static int is_nonzero(item v, dtype t) {
    if (t.kind == 'f') return float_value(v.re, t.size) != 0;
    if (t.kind == 'c')
        return float_value(v.re, t.size / 2) != 0 || float_value(v.im, t.size / 2) != 0;
    return v.re != 0;
}

/* Does float `x` truncate to a value of integer type `t`? */
static int fits(double x, dtype t) {
    double top = ldexp(1.0, (int)(8 * t.size) - (t.kind == 'i')); /* exclusive */
    double bottom = t.kind == 'i' ? -top : 0.0;                    /* inclusive, after truncation */
    if (x != x) return 0;
    double whole = trunc(x);
    return whole >= bottom && whole < top;
}

/* Cast one item from `from` to `to`, as numpy's unsafe cast does. Returns 0 (result undefined,
 * refused) for a float that does not fit an integer type. */
static int cast(item v, dtype from, dtype to, item *out) {
    out->re = out->im = 0;
    if (from.kind == to.kind && from.size == to.size) {
        *out = v; /* the same type: numpy copies the bytes, even a bool that is not 0 or 1 */
        return 1;
    }
    int from_int = from.kind != 'f' && from.kind != 'c';
    unsigned from_part = from.kind == 'c' ? from.size / 2 : from.size;
    switch (to.kind) {
    case 'b':
        out->re = (uint64_t)is_nonzero(v, from);
        return 1;
    case 'i': case 'u':
        if (from_int) {
            out->re = mask(int_value(v.re, from), to.size);
            return 1;
        }
        {
            double x = float_value(v.re, from_part); /* complex: the real part */
            if (!fits(x, to)) return 0;
            double whole = trunc(x);
            uint64_t bits = to.kind == 'i' ? (uint64_t)(int64_t)whole : (uint64_t)whole;
            out->re = mask(bits, to.size);
        }
        return 1;
    default: { /* 'f' or 'c' */
        unsigned to_part = to.kind == 'c' ? to.size / 2 : to.size;
        if (from_int) {
            out->re = int_to_float(int_value(v.re, from), from.kind == 'i', to_part);
        } else {
            out->re = convert_float(v.re, from_part, to_part);
            if (from.kind == 'c' && to.kind == 'c')
                out->im = convert_float(v.im, from_part, to_part);
        }
        return 1;
    }
    }
}

/* NaN results as numpy's loops give them (x86-64): an operation on a NaN returns the first NaN
 * operand, quieted; with no NaN operand (inf - inf) it is the hardware's default NaN, which
 * Wasm arithmetic gives too. Which operand comes "first" is numpy's compiled order, found by
 * running it: x[i] before x[i-1] in np.diff; in np.cumsum the running sum before the item for
 * float32, float64 and complex128, the item first for float16 and complex64, and the other
 * way round for complex numbers in an array of exactly two items. */
static float nan_float(float result, float first, float second) {
    if (result == result) return result;
    uint32_t quiet = 0x00400000u;
    if (first != first) return as_float(float_bits(first) | quiet);
    if (second != second) return as_float(float_bits(second) | quiet);
    return result;
}

static double nan_double(double result, double first, double second) {
    if (result == result) return result;
    uint64_t quiet = 0x0008000000000000ull;
    if (first != first) return as_double(double_bits(first) | quiet);
    if (second != second) return as_double(double_bits(second) | quiet);
    return result;
}

/* The first operand of numpy's addition of running sum and item is the item. */
static int item_first(dtype sum_type, size_t n) {
    if (sum_type.kind == 'c') return (sum_type.size == 8) != (n == 2);
    return sum_type.kind == 'f' && sum_type.size == 2;
}

/* x - y (subtract) or x + y (add) in type t, as numpy's ufunc loops compute them (y_first: y is
 * numpy's first operand). Always inlined with a constant `add`: a run-time choice lets the
 * compiler turn p - q into p + -q. */
__attribute__((always_inline)) static inline item arithmetic(item x, item y, dtype t, int add,
                                                             int y_first) {
    item r = {0, 0};
    switch (t.kind) {
    case 'b': /* np.diff of booleans is "not equal"; their sum is "or" */
        r.re = add ? (x.re != 0 || y.re != 0) : ((x.re != 0) != (y.re != 0));
        return r;
    case 'i': case 'u':
        r.re = mask(add ? x.re + y.re : x.re - y.re, t.size);
        return r;
    default: {
        unsigned part = t.kind == 'c' ? t.size / 2 : t.size;
        uint64_t a[2] = {x.re, x.im}, b[2] = {y.re, y.im}, c[2] = {0, 0};
        for (int k = 0; k < (t.kind == 'c' ? 2 : 1); k++) {
            if (part == 8) {
                double p = as_double(a[k]), q = as_double(b[k]);
                double v = nan_double(add ? p + q : p - q, y_first ? q : p, y_first ? p : q);
                c[k] = double_bits(v);
            } else { /* float16 is computed in float32 and rounded, as numpy does */
                float p = part == 4 ? as_float(a[k]) : as_float(half_to_float_bits((uint16_t)a[k]));
                float q = part == 4 ? as_float(b[k]) : as_float(half_to_float_bits((uint16_t)b[k]));
                float v = nan_float(add ? p + q : p - q, y_first ? q : p, y_first ? p : q);
                c[k] = part == 4 ? float_bits(v) : float_bits_to_half((uint32_t)float_bits(v));
            }
        }
        r.re = c[0], r.im = c[1];
        return r;
    }
    }
}

/* enc[0] = arr[0]: numpy assigns the scalar, refusing a value a signed integer type cannot
 * hold. Returns 0 when numpy raises. */
static int first_item_fits(item v, dtype from, dtype to) {
    if (to.kind != 'i' || from.kind == 'b') return 1;
    if (from.kind == 'i' || from.kind == 'u') {
        uint64_t value = int_value(v.re, from);
        uint64_t top = 1ull << (8 * to.size - 1);
        if (from.kind == 'u') return value < top;
        return to.size == 8 || ((int64_t)value >= -(int64_t)top && (int64_t)value < (int64_t)top);
    }
    return fits(float_value(v.re, from.kind == 'c' ? from.size / 2 : from.size), to);
}

/* The failure for item `index`, value v of type `from`, that cannot go to type `to`: `what` it
 * is (the first item, a difference, a running sum), or NULL for a first item numpy refuses. */
static int64_t refuse(size_t index, item v, dtype from, dtype to, const char *what) {
    char a[32], b[32], value[48];
    describe(a, sizeof a, from);
    describe(b, sizeof b, to);
    unsigned part = from.kind == 'c' ? from.size / 2 : from.size;
    if (from.kind == 'f' || from.kind == 'c')
        snprintf(value, sizeof value, "%.17g", float_value(v.re, part));
    else if (from.kind == 'i')
        snprintf(value, sizeof value, "%lld", (long long)int_value(v.re, from));
    else
        snprintf(value, sizeof value, "%llu", (unsigned long long)int_value(v.re, from));
    if (!what)
        return chonkle_fail("item 0: %s %s does not fit %s (numpy raises on it)", a, value, b);
    return chonkle_fail("item %zu: the %s, %s %s, does not fit %s: numpy's cast of it is undefined "
                        "(machine-dependent)", index, what, a, value, b);
}

static int64_t encode_values(const uint8_t *in, uint8_t *out, size_t n, dtype d, dtype a) {
    item previous = {0, 0};
    for (size_t i = 0; i < n; i++) {
        item value = load(in + i * d.size, d), stored;
        if (i == 0) {
            item first = value;
            if (d.kind == 'b') first.re = first.re != 0; /* arr[0] is numpy's True or False */
            if (!first_item_fits(first, d, a))
                return refuse(0, first, d, a, NULL);
            if (!cast(first, d, a, &stored))
                return refuse(0, first, d, a, "first item");
        } else {
            item difference = arithmetic(value, previous, d, 0, 0);
            if (!cast(difference, d, a, &stored))
                return refuse(i, difference, d, a, "difference");
        }
        store(out + i * a.size, stored, a);
        previous = value;
    }
    return 1;
}

static int64_t decode_values(const uint8_t *in, uint8_t *out, size_t n, dtype d, dtype a) {
    dtype sum_type = promote(a, d);
    int y_first = item_first(sum_type, n);
    item sum = {0, 0};
    for (size_t i = 0; i < n; i++) {
        item value, stored;
        cast(load(in + i * a.size, a), a, sum_type, &value); /* a widening cast: always defined */
        sum = i == 0 ? value : arithmetic(sum, value, sum_type, 1, y_first);
        if (!cast(sum, sum_type, d, &stored))
            return refuse(i, sum, sum_type, d, "running sum");
        store(out + i * d.size, stored, d);
    }
    return 1;
}

/* The common case, dtype == astype, integers or float32/float64 in little-endian order: typed
 * loops with the running value in a register (integers as unsigned: the same bits, and
 * wrapping is defined). Encoding takes each vector of items minus the vector one item back (an
 * unaligned load); lane-wise IEEE arithmetic rounds exactly as the scalar one does, and returns
 * the NaN numpy does. The first item is copied, as numpy copies it, so -0.0 and NaN payloads
 * survive; a NaN sum is fixed up to numpy's (FIX: the running sum is the first operand). */
#define TYPED_LOOPS(T, SUB, FIX)                                                      \
    __attribute__((target("simd128"))) static void encode_##T(const T *in, T *out,     \
                                                              size_t n) {             \
        size_t i = 1, lanes = 16 / sizeof(T);                                         \
        if (n) out[0] = in[0];                                                        \
        for (; i + lanes <= n; i += lanes)                                            \
            wasm_v128_store(out + i, SUB(wasm_v128_load(in + i), wasm_v128_load(in + i - 1))); \
        for (; i < n; i++) out[i] = (T)(in[i] - in[i - 1]);                           \
    }                                                                                 \
    static void decode_##T(const T *in, T *out, size_t n) {                           \
        if (!n) return;                                                               \
        T sum = out[0] = in[0];                                                       \
        for (size_t i = 1; i < n; i++) out[i] = sum = FIX((T)(sum + in[i]), sum, in[i]); \
    }
#define WRAPS(result, first, second) (result)
TYPED_LOOPS(uint8_t, wasm_i8x16_sub, WRAPS)
TYPED_LOOPS(uint16_t, wasm_i16x8_sub, WRAPS)
TYPED_LOOPS(uint32_t, wasm_i32x4_sub, WRAPS)
TYPED_LOOPS(uint64_t, wasm_i64x2_sub, WRAPS)
TYPED_LOOPS(float, wasm_f32x4_sub, nan_float)
TYPED_LOOPS(double, wasm_f64x2_sub, nan_double)
#undef WRAPS

static int typed(int decode, const uint8_t *in, uint8_t *out, size_t n, dtype d, dtype a) {
    if (d.kind != a.kind || d.size != a.size || (d.big_endian && d.size > 1) ||
        (a.big_endian && a.size > 1) || d.kind == 'b' || d.kind == 'c' ||
        (d.kind == 'f' && d.size == 2))
        return 0; /* bool, float16 and complex take the general path */
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

/* Read a dtype-valued key: a string, or null (absent or null: *found is 0). */
static int read_dtype(const uint8_t *config, uint32_t config_length, const char *key, dtype *d,
                      int *found) {
    char text[16];
    chonkle_json value;
    *found = 0;
    chonkle_lookup lookup = chonkle_config_find(config, config_length, key, &value);
    if (lookup == CHONKLE_MISSING) return 1;
    if (lookup == CHONKLE_FOUND && value.end - value.at >= 4 && memcmp(value.at, "null", 4) == 0)
        return 1;
    if (chonkle_config_string(config, config_length, key, text, sizeof text) != CHONKLE_FOUND ||
        !parse_dtype(text, d))
        return chonkle_fail("configuration \"%s\" must be a numpy dtype of fixed size and kind "
                            "bool, integer, float or complex, such as \"<i4\", \">f8\" or "
                            "\"uint16\"", key), 0;
    *found = 1;
    return 1;
}

static int64_t run(int decode, const uint8_t *input, uint32_t length, const uint8_t *config,
                   uint32_t config_length) {
    dtype d = {'f', 8, 0}, a; /* np.dtype(None) is float64 */
    int found;
    if (chonkle_config_find(config, config_length, "dtype", &(chonkle_json){0}) == CHONKLE_MISSING)
        return chonkle_fail("configuration lacks \"dtype\"");
    if (!read_dtype(config, config_length, "dtype", &d, &found)) return 0;
    a = d;
    if (!read_dtype(config, config_length, "astype", &a, &found)) return 0;
    dtype in_type = decode ? a : d, out_type = decode ? d : a;
    if (length % in_type.size)
        return chonkle_fail("input of %u bytes is not a whole number of %u-byte items", length,
                            in_type.size);
    size_t n = length / in_type.size;
    uint64_t out_length = (uint64_t)n * out_type.size;
    if (out_length > chonkle_output_limit) return chonkle_fail_limit(out_length);
    uint8_t *out = malloc(out_length ? (size_t)out_length : 1);
    if (!out)
        return chonkle_fail("out of memory for %llu output bytes", (unsigned long long)out_length);
    if (!typed(decode, input, out, n, d, a)) {
        int64_t done = (decode ? decode_values : encode_values)(input, out, n, d, a);
        if (done != 1) {
            free(out);
            return done;
        }
    }
    return chonkle_result(out, (uint32_t)out_length);
}

CHONKLE_EXPORT_ENCODE_DECODE(run)
