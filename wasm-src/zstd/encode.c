/* Zstandard compression (RFC 8878): one frame per call, with the content size in its header
 * and, when configured, an XXH64 checksum, as numcodecs.Zstd writes them.
 *
 * Configuration: "level" as numcodecs.Zstd takes it (0 means the default, 3; negative
 * levels trade ratio for speed; above 22 is 22; below -131072 is -131072) and "checksum"
 * (false by default).
 *
 * The input is cut into blocks of 128 KiB. A match finder chosen by the level turns each
 * block into sequences (literals, then a match): a single hash table probed with growing
 * steps over incompressible stretches (levels 1-2 and negative levels), a long and a short
 * hash table (3-4), or hash rows (5-9) or chains (10-22) searched greedily (5) or with one
 * or two steps of lazy evaluation (6 and up), all checking the repeat offsets first.
 * encode_block.c then codes the block; a block that does not shrink is sent raw, one of a
 * single repeated byte as RLE. Positions are 32-bit offsets from the input's start, which
 * is below 4 GiB; every bound on the output is computed in 64 bits.
 */
#define CHONKLE_SECONDARY_FILE
#include "encoder.h"

enum strategy { FAST, DOUBLE_FAST, GREEDY, LAZY, LAZY2 };

typedef struct {
    uint8_t strategy;
    uint8_t window_log;
    uint8_t hash_log;   /* FAST: the table; DOUBLE_FAST: the long table; else chain heads,
                           or the entries of all hash rows */
    uint8_t chain_log;  /* DOUBLE_FAST: the short table; else the chain table */
    uint8_t search_log; /* candidates per search: 1 << search_log; hash rows up to 4 */
    uint8_t min_match;  /* bytes hashed, and the shortest match taken */
    uint16_t target;    /* a match this long ends the search */
} params;

/* Levels 1-22 (index 0: the base of negative levels), for inputs over 256 KiB; smaller
 * inputs get smaller tables and windows (level_params). Windows are libzstd's up to level
 * 19, so frame headers match numcodecs'; past level 12 more search buys little without
 * optimal parsing, which this encoder does not do. */
static const params LEVELS[23] = {
    {FAST, 19, 13, 0, 0, 6, 0},          /* negative */
    {FAST, 19, 14, 0, 0, 6, 0},          /* 1 */
    {FAST, 20, 16, 0, 0, 6, 0},          /* 2 */
    {DOUBLE_FAST, 21, 17, 16, 0, 5, 0},  /* 3 */
    {DOUBLE_FAST, 21, 18, 18, 0, 5, 0},  /* 4 */
    {GREEDY, 21, 19, 18, 3, 5, 32},      /* 5 */
    {LAZY, 21, 19, 18, 3, 5, 32},        /* 6 */
    {LAZY, 21, 20, 19, 3, 5, 32},        /* 7 */
    {LAZY2, 21, 20, 19, 4, 5, 64},       /* 8 */
    {LAZY2, 22, 21, 20, 4, 5, 64},       /* 9 */
    {LAZY2, 22, 21, 21, 5, 5, 64},       /* 10 */
    {LAZY2, 22, 22, 21, 5, 5, 128},      /* 11 */
    {LAZY2, 22, 22, 22, 6, 5, 128},      /* 12 */
    {LAZY2, 22, 22, 22, 6, 5, 256},      /* 13 */
    {LAZY2, 22, 22, 22, 7, 5, 256},      /* 14 */
    {LAZY2, 22, 23, 22, 7, 5, 256},      /* 15 */
    {LAZY2, 22, 23, 22, 7, 5, 256},      /* 16 */
    {LAZY2, 23, 23, 23, 7, 5, 512},      /* 17 */
    {LAZY2, 23, 23, 23, 8, 5, 512},      /* 18 */
    {LAZY2, 23, 23, 23, 8, 5, 999},      /* 19 */
    {LAZY2, 24, 24, 24, 8, 5, 999},      /* 20 */
    {LAZY2, 24, 24, 24, 8, 5, 999},      /* 21 */
    {LAZY2, 24, 24, 24, 8, 5, 999},      /* 22 */
};

static params level_params(int level, uint64_t size) {
    params p = LEVELS[level > 0 ? level : 0];
    /* no window (or table) larger than the input needs */
    unsigned size_log = size <= 1024 ? 10 : highbit((uint32_t)(size - 1)) + 1;
    if (size > 0xFFFFFFFFu) size_log = 32;
    if (p.window_log > size_log) p.window_log = (uint8_t)size_log;
    if (p.hash_log > p.window_log + 1) p.hash_log = (uint8_t)(p.window_log + 1);
    if (p.chain_log > p.window_log) p.chain_log = p.window_log;
    if (size <= 256 * 1024 && p.min_match > 4 && p.strategy != FAST) p.min_match--;
    return p;
}

/* ---- Match finding ------------------------------------------------------------------- */

typedef struct {
    const uint8_t *base, *end; /* the input */
    uint32_t *hash, *chain;
    params p;
    uint32_t window;          /* largest offset */
    uint32_t accelerate;      /* negative levels: extra step */
    uint32_t next_to_update;  /* hash chains and rows: first position not yet inserted */
    uint8_t *tags, *heads;    /* hash rows (NULL: hash chains) */
    uint32_t rep[3];
    sequence_store *store;
} matcher;

static const uint64_t PRIME = 0x9E3779B185EBCA87ull;

static inline uint32_t hash_bytes(const uint8_t *p, unsigned bytes, unsigned log) {
    return (uint32_t)(((read64(p) << (64 - 8 * bytes)) * PRIME) >> (64 - log));
}

/* Bytes in common from ip and match on, up to limit (match < ip). */
static inline size_t common_length(const uint8_t *ip, const uint8_t *match, const uint8_t *limit) {
    const uint8_t *start = ip;
    while (limit - ip >= 8) {
        uint64_t diff = read64(ip) ^ read64(match);
        if (diff) return (size_t)(ip - start) + ((unsigned)__builtin_ctzll(diff) >> 3);
        ip += 8, match += 8;
    }
    while (ip < limit && *ip == *match) ip++, match++;
    return (size_t)(ip - start);
}

/* The Offset_Value for a match at `offset` after `literals` literals, updating the repeat
 * offsets exactly as the decoder will (RFC 8878 3.1.2.5). */
static inline uint32_t offset_value(uint32_t *rep, uint32_t offset, size_t literals) {
    if (literals) {
        if (offset == rep[0]) return 1;
        if (offset == rep[1]) { rep[1] = rep[0], rep[0] = offset; return 2; }
        if (offset == rep[2]) { rep[2] = rep[1], rep[1] = rep[0], rep[0] = offset; return 3; }
    } else { /* after no literals the codes shift: rep1, rep2, rep0 - 1 */
        if (offset == rep[1]) { rep[1] = rep[0], rep[0] = offset; return 1; }
        if (offset == rep[2]) { rep[2] = rep[1], rep[1] = rep[0], rep[0] = offset; return 2; }
        if (offset == rep[0] - 1) { rep[2] = rep[1], rep[1] = rep[0], rep[0] = offset; return 3; }
    }
    rep[2] = rep[1], rep[1] = rep[0], rep[0] = offset;
    return offset + 3;
}

static inline void copy_literals(uint8_t *to, const uint8_t *from, size_t n, const uint8_t *end) {
    if ((size_t)(end - from) >= n + 16) { /* 16-byte steps may read past n, never past end */
        uint8_t *stop = to + n;
        do {
            memcpy(to, from, 16);
            to += 16, from += 16;
        } while (to < stop);
    } else {
        memcpy(to, from, n);
    }
}

static inline void store_sequence(matcher *m, const uint8_t *anchor, size_t literals,
                                  uint32_t offset, size_t length) {
    sequence_store *s = m->store;
    copy_literals(s->buffer + s->literal_count, anchor, literals, m->end);
    s->literal_count += literals;
    sequence *q = &s->sequences[s->count++];
    q->literal_length = (uint32_t)literals;
    q->match_length = (uint32_t)length;
    q->off_base = offset_value(m->rep, offset, literals);
}

/* Whether a repeat offset can be used at position cur. */
static inline int rep_usable(const matcher *m, uint32_t offset, uint32_t cur) {
    return offset <= cur && offset <= m->window;
}

/* After a match, sequences with no literals at the second repeat offset, as long as they
 * continue; returns the new position (anchor moves with it). */
static inline const uint8_t *repeat_run(matcher *m, const uint8_t *ip, const uint8_t *limit,
                                        const uint8_t *block_end) {
    while (ip < limit) {
        uint32_t cur = (uint32_t)(ip - m->base), offset = m->rep[1];
        if (!rep_usable(m, offset, cur) || read32(ip) != read32(ip - offset)) break;
        size_t length = 4 + common_length(ip + 4, ip + 4 - offset, block_end);
        store_sequence(m, ip, 0, offset, length);
        ip += length;
    }
    return ip;
}

/* One hash table; when nothing matches, the step grows with the distance from the last match,
 * so incompressible data is skimmed. */
static const uint8_t *find_fast(matcher *m, const uint8_t *ip, const uint8_t *block_end) {
    const uint8_t *base = m->base, *anchor = ip;
    const uint8_t *limit = block_end - base > 8 ? block_end - 8 : base;
    const unsigned mls = m->p.min_match, log = m->p.hash_log;
    uint32_t *table = m->hash;
    if (ip == base) ip++;
    while (ip < limit) {
        uint32_t cur = (uint32_t)(ip - base);
        uint32_t h = hash_bytes(ip, mls, log), candidate = table[h];
        table[h] = cur;
        uint32_t rep = m->rep[0];
        size_t length;
        if (rep_usable(m, rep, cur + 1) && read32(ip + 1) == read32(ip + 1 - rep)) {
            length = 4 + common_length(ip + 5, ip + 5 - rep, block_end);
            ip++;
            store_sequence(m, anchor, (size_t)(ip - anchor), rep, length);
        } else if (candidate < cur && cur - candidate <= m->window &&
                   read32(base + candidate) == read32(ip) &&
                   (length = common_length(ip, base + candidate, block_end)) >= mls) {
            const uint8_t *match = base + candidate;
            while (ip > anchor && match > base && ip[-1] == match[-1]) ip--, match--, length++;
            store_sequence(m, anchor, (size_t)(ip - anchor), (uint32_t)(ip - match), length);
        } else { /* one more byte of step every 128 bytes without a match */
            ip += ((size_t)(ip - anchor) >> 7) + 1 + m->accelerate;
            continue;
        }
        ip += length;
        anchor = ip;
        if (ip < limit) {
            table[hash_bytes(ip - 2, mls, log)] = (uint32_t)(ip - 2 - base);
            anchor = ip = repeat_run(m, ip, limit, block_end);
        }
    }
    return anchor;
}

/* Two hash tables: 8-byte matches first, then min_match-byte ones (trying for an 8-byte
 * match one position later before taking a short one). */
static const uint8_t *find_double_fast(matcher *m, const uint8_t *ip, const uint8_t *block_end) {
    const uint8_t *base = m->base, *anchor = ip;
    const uint8_t *limit = block_end - base > 8 ? block_end - 8 : base;
    const unsigned mls = m->p.min_match, long_log = m->p.hash_log, short_log = m->p.chain_log;
    uint32_t *long_table = m->hash, *short_table = m->chain;
    const uint32_t window = m->window;
    if (ip == base) ip++;
    while (ip < limit) {
        uint32_t cur = (uint32_t)(ip - base);
        uint32_t hl = hash_bytes(ip, 8, long_log), hs = hash_bytes(ip, mls, short_log);
        uint32_t long_candidate = long_table[hl], short_candidate = short_table[hs];
        long_table[hl] = short_table[hs] = cur;
        uint32_t rep = m->rep[0];
        size_t length;
        const uint8_t *match;
        if (rep_usable(m, rep, cur + 1) && read32(ip + 1) == read32(ip + 1 - rep)) {
            length = 4 + common_length(ip + 5, ip + 5 - rep, block_end);
            ip++;
            store_sequence(m, anchor, (size_t)(ip - anchor), rep, length);
            goto matched;
        }
        if (long_candidate < cur && cur - long_candidate <= window &&
            read64(base + long_candidate) == read64(ip)) {
            match = base + long_candidate;
            length = 8 + common_length(ip + 8, match + 8, block_end);
        } else if (short_candidate < cur && cur - short_candidate <= window &&
                   read32(base + short_candidate) == read32(ip)) {
            uint32_t next = cur + 1, hl1 = hash_bytes(ip + 1, 8, long_log);
            uint32_t candidate1 = long_table[hl1];
            long_table[hl1] = next;
            if (candidate1 < next && next - candidate1 <= window &&
                read64(base + candidate1) == read64(ip + 1)) {
                ip++;
                match = base + candidate1;
                length = 8 + common_length(ip + 8, match + 8, block_end);
            } else {
                match = base + short_candidate;
                length = 4 + common_length(ip + 4, match + 4, block_end);
                if (length < mls) {
                    ip += ((size_t)(ip - anchor) >> 8) + 1;
                    continue;
                }
            }
        } else {
            ip += ((size_t)(ip - anchor) >> 8) + 1;
            continue;
        }
        while (ip > anchor && match > base && ip[-1] == match[-1]) ip--, match--, length++;
        store_sequence(m, anchor, (size_t)(ip - anchor), (uint32_t)(ip - match), length);
    matched:
        ip += length;
        anchor = ip;
        if (ip < limit) {
            uint32_t p1 = cur + 2, p2 = (uint32_t)(ip - 2 - base);
            long_table[hash_bytes(base + p1, 8, long_log)] = p1;
            short_table[hash_bytes(base + p1, mls, short_log)] = p1;
            long_table[hash_bytes(base + p2, 8, long_log)] = p2;
            short_table[hash_bytes(base + p2 + 1, mls, short_log)] = p2 + 1;
            anchor = ip = repeat_run(m, ip, limit, block_end);
        }
    }
    return anchor;
}

/* Hash chains: every position is inserted; a search walks the chain of the position's hash. */
static inline void chain_insert(matcher *m, uint32_t target) {
    const uint8_t *base = m->base;
    const unsigned mls = m->p.min_match, log = m->p.hash_log;
    const uint32_t mask = (1u << m->p.chain_log) - 1;
    uint32_t *head = m->hash, *chain = m->chain;
    for (uint32_t i = m->next_to_update; i <= target; i++) {
        uint32_t h = hash_bytes(base + i, mls, log);
        chain[i & mask] = head[h];
        head[h] = i;
    }
    m->next_to_update = target + 1;
}

/* The longest match at ip (ending by block_end), if at least min_match long. */
static inline size_t chain_search(matcher *m, const uint8_t *ip, const uint8_t *block_end,
                                  uint32_t *offset) {
    const uint8_t *base = m->base;
    uint32_t cur = (uint32_t)(ip - base);
    chain_insert(m, cur);
    const uint32_t mask = (1u << m->p.chain_log) - 1;
    uint32_t low = cur > m->window ? cur - m->window : 0;
    uint32_t chain_low = cur > mask ? cur - mask : 0;
    if (low < chain_low) low = chain_low;
    size_t best = m->p.min_match - 1, room = (size_t)(block_end - ip);
    const size_t target = m->p.target;
    uint32_t candidate = m->chain[cur & mask];
    for (unsigned attempts = 1u << m->p.search_log; candidate > low && attempts; attempts--) {
        const uint8_t *match = base + candidate;
        if (match[best] == ip[best] && read32(match) == read32(ip)) {
            size_t length = 4 + common_length(ip + 4, match + 4, block_end);
            if (length > best) {
                best = length, *offset = cur - candidate;
                if (length >= target || length == room) break;
            }
        }
        candidate = m->chain[candidate & mask];
    }
    return best >= m->p.min_match ? best : 0;
}

/* Hash rows (levels 5-9): each hash value owns a row of ROW_SIZE recent positions, kept with
 * an 8-bit tag of each one's hash (more hash bits than pick the row). A search compares the
 * tag with the whole row's at once (two 64-bit words) and checks only positions whose tag
 * matches, newest first: about one position checked per search where a chain of the same
 * depth would touch every one, each a likely cache miss. */
enum { ROW_LOG = 4, ROW_SIZE = 1 << ROW_LOG };

static inline uint32_t row_hash(const matcher *m, const uint8_t *p) {
    return hash_bytes(p, m->p.min_match, m->p.hash_log - ROW_LOG + 8); /* row << 8 | tag */
}

static inline void row_insert(matcher *m, uint32_t position) {
    uint32_t h = row_hash(m, m->base + position), row = h >> 8;
    unsigned head = (m->heads[row] - 1u) & (ROW_SIZE - 1);
    m->heads[row] = (uint8_t)head;
    m->tags[row * ROW_SIZE + head] = (uint8_t)h;
    m->hash[row * ROW_SIZE + head] = position;
}

/* Bit k set where byte k of x is zero (and, rarely, where a byte just above a zero byte is
 * 1: such a false match only costs a check). */
static inline uint32_t zero_bytes(uint64_t x) {
    uint64_t t = (x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull;
    return (uint32_t)(((t >> 7) * 0x0102040810204080ull) >> 56);
}

static inline size_t row_search(matcher *m, const uint8_t *ip, const uint8_t *block_end,
                                uint32_t *offset) {
    const uint8_t *base = m->base;
    uint32_t cur = (uint32_t)(ip - base);
    for (uint32_t i = m->next_to_update; i < cur; i++) row_insert(m, i);
    uint32_t h = row_hash(m, ip), row = h >> 8;
    const uint8_t *tags = m->tags + row * ROW_SIZE;
    const uint32_t *positions = m->hash + row * ROW_SIZE;
    uint64_t pattern = 0x0101010101010101ull * (h & 0xFF);
    uint32_t found = zero_bytes(read64(tags) ^ pattern) | zero_bytes(read64(tags + 8) ^ pattern) << 8;
    unsigned head = m->heads[row];
    found = ((found >> head) | (found << (ROW_SIZE - head))) & 0xFFFF; /* bit j: j-th newest */
    size_t best = m->p.min_match - 1, room = (size_t)(block_end - ip);
    const size_t target = m->p.target;
    for (unsigned attempts = 1u << m->p.search_log; found && attempts; attempts--) {
        uint32_t candidate = positions[(head + (unsigned)__builtin_ctz(found)) & (ROW_SIZE - 1)];
        found &= found - 1;
        if (candidate >= cur || cur - candidate > m->window) continue;
        const uint8_t *match = base + candidate;
        if (match[best] == ip[best] && read32(match) == read32(ip)) {
            size_t length = 4 + common_length(ip + 4, match + 4, block_end);
            if (length > best) {
                best = length, *offset = cur - candidate;
                if (length >= target || length == room) break;
            }
        }
    }
    if (cur >= m->next_to_update) row_insert(m, cur), m->next_to_update = cur + 1;
    return best >= m->p.min_match ? best : 0;
}

static inline size_t find_match(matcher *m, const uint8_t *ip, const uint8_t *block_end,
                                uint32_t *offset) {
    return m->tags ? row_search(m, ip, block_end, offset) : chain_search(m, ip, block_end, offset);
}

/* How much a match is worth, in quarter bits: its length against its offset's cost. */
static inline int match_gain(size_t length, uint32_t off_value) {
    return (int)(length * 4) - (int)highbit(off_value);
}

/* Greedy (depth 0) or lazy matching: before taking a match, look one (or two) positions on
 * for a better one. */
static const uint8_t *find_lazy(matcher *m, const uint8_t *ip, const uint8_t *block_end, int depth) {
    const uint8_t *base = m->base, *anchor = ip;
    const uint8_t *limit = block_end - base > 8 ? block_end - 8 : base;
    if (ip == base) ip++;
    while (ip < limit) {
        uint32_t cur = (uint32_t)(ip - base);
        size_t length = 0;
        uint32_t offset = 0;
        int gain = 0, is_rep = 0;
        const uint8_t *start = ip;
        /* the repeat offsets one position on (after at least one literal: codes 1-3) */
        for (unsigned r = 0; r < 3; r++) {
            uint32_t rep = m->rep[r];
            if (!rep_usable(m, rep, cur + 1) || read32(ip + 1) != read32(ip + 1 - rep)) continue;
            size_t l = 4 + common_length(ip + 5, ip + 5 - rep, block_end);
            int g = match_gain(l, r + 1);
            if (g > gain) length = l, offset = rep, start = ip + 1, is_rep = 1, gain = g;
        }
        uint32_t found_offset;
        size_t found = length >= m->p.target ? 0 : find_match(m, ip, block_end, &found_offset);
        if (found && (!length || match_gain(found, found_offset + 3) > gain)) {
            length = found, offset = found_offset, start = ip, is_rep = 0;
            gain = match_gain(found, found_offset + 3);
        }
        if (!length) {
            ip += ((size_t)(ip - anchor) >> 8) + 1;
            continue;
        }
        /* lazy evaluation: a better match one or two positions on wins */
        while (depth >= 1 && start + 1 < limit) {
            int switched = 0;
            for (int step = 1; step <= depth && start + step < limit; step++) {
                const uint8_t *at = start + step;
                uint32_t at_cur = (uint32_t)(at - base);
                int penalty = step == 1 ? 4 : 7;
                for (unsigned k = 0; k < 3 && !switched; k++) {
                    uint32_t r = m->rep[k];
                    if (!rep_usable(m, r, at_cur) || read32(at) != read32(at - r)) continue;
                    size_t l = 4 + common_length(at + 4, at + 4 - r, block_end);
                    int g = match_gain(l, k + 1);
                    if (g > gain + penalty)
                        length = l, offset = r, start = at, is_rep = 1, gain = g, switched = 1;
                }
                if (switched) break;
                size_t l = find_match(m, at, block_end, &found_offset);
                if (l) {
                    int g = match_gain(l, found_offset + 3);
                    if (g > gain + penalty) {
                        length = l, offset = found_offset, start = at, is_rep = 0, gain = g, switched = 1;
                        break;
                    }
                }
            }
            if (!switched) break;
        }
        if (!is_rep) { /* extend backwards into the literals */
            const uint8_t *match = start - offset;
            while (start > anchor && match > base && start[-1] == match[-1]) start--, match--, length++;
        }
        store_sequence(m, anchor, (size_t)(start - anchor), offset, length);
        ip = anchor = start + length;
        if (ip < limit) anchor = ip = repeat_run(m, ip, limit, block_end);
    }
    return anchor;
}

/* ---- Frames ------------------------------------------------------------------------- */

/* The block's sequences, and its last literals. */
static void find_sequences(matcher *m, const uint8_t *start, const uint8_t *block_end) {
    sequence_store *s = m->store;
    s->count = 0, s->literal_count = 0;
    const uint8_t *anchor;
    switch (m->p.strategy) {
    case FAST: anchor = find_fast(m, start, block_end); break;
    case DOUBLE_FAST: anchor = find_double_fast(m, start, block_end); break;
    default: anchor = find_lazy(m, start, block_end, m->p.strategy - GREEDY); break;
    }
    if (s->count == 0) { /* no matches: the block is its own literals */
        s->literals = start, s->literal_count = (size_t)(block_end - start);
        return;
    }
    memcpy(s->buffer + s->literal_count, anchor, (size_t)(block_end - anchor));
    s->literals = s->buffer, s->literal_count += (size_t)(block_end - anchor);
}

static int all_equal(const uint8_t *p, size_t n) {
    if (n < 2 || p[0] != p[n - 1]) return 0;
    uint64_t pattern = 0x0101010101010101ull * p[0];
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (read64(p + i) != pattern) return 0;
    for (; i < n; i++)
        if (p[i] != p[0]) return 0;
    return 1;
}

/* Read an optional boolean field; returns 0 after recording the failure when it is not. */
static int config_bool(const uint8_t *config, uint32_t length, const char *key, int *out) {
    chonkle_json value;
    chonkle_lookup found = chonkle_config_find(config, length, key, &value);
    if (found == CHONKLE_MISSING) return 1;
    size_t left = found == CHONKLE_FOUND ? (size_t)(value.end - value.at) : 0;
    for (int truth = 0; truth < 2; truth++) {
        const char *word = truth ? "true" : "false";
        size_t n = strlen(word);
        if (left >= n && memcmp(value.at, word, n) == 0 &&
            (left == n || strchr(",} \t\r\n", value.at[n]) != NULL)) {
            *out = truth;
            return 1;
        }
    }
    chonkle_fail("configuration \"%s\" must be true or false", key);
    return 0;
}

CHONKLE_EXPORT(encode) int64_t encode(const uint8_t *input, uint32_t length, const uint8_t *config,
                                      uint32_t config_length) {
    int64_t level = 0;
    int checksum = 0;
    CHONKLE_OPTIONAL_INT(config, config_length, "level", INT32_MIN, INT32_MAX, &level);
    if (!config_bool(config, config_length, "checksum", &checksum)) return 0;
    if (level == 0) level = 3;
    if (level > 22) level = 22;
    if (level < -131072) level = -131072;
    params p = level_params((int)level, length);

    /* The frame: header (at most 14 bytes), blocks (raw at worst: 3 bytes of header per
     * 128 KiB), checksum. All in 64 bits; the buffer is that bound or the output limit,
     * whichever is smaller, and each block checks it fits. */
    uint64_t blocks = length ? ((uint64_t)length + BLOCK_MAX - 1) / BLOCK_MAX : 1;
    uint64_t bound = 14 + (uint64_t)length + 3 * blocks + 4;
    uint64_t capacity = bound < chonkle_output_limit ? bound : chonkle_output_limit;
    int capped = capacity >= CHONKLE_ALLOCATION_MAX; /* then running out is memory, not the limit */
    if (capped) capacity = CHONKLE_ALLOCATION_MAX - 1;
    uint8_t *out = malloc((size_t)capacity + 1);
    uint8_t *scratch = malloc(BLOCK_SCRATCH);
    sequence_store store = {malloc(SEQUENCES_MAX * sizeof(sequence)), 0, malloc(BLOCK_MAX + 32), NULL, 0};
    entropy_tables *tables = malloc(2 * sizeof(entropy_tables));
    size_t hash_size = (size_t)1 << p.hash_log;
    int rows = p.strategy >= GREEDY && p.search_log <= ROW_LOG;
    /* the chain table, or the rows' tags and heads (a byte per position and per row) */
    size_t chain_size = p.strategy == FAST ? 0
                        : rows ? (hash_size + (hash_size >> ROW_LOG)) / sizeof(uint32_t)
                               : (size_t)1 << p.chain_log;
    uint32_t *hash = malloc((hash_size + chain_size) * sizeof(uint32_t));
    uint8_t *at = out, *end = out + (size_t)capacity;
    int64_t result = 0;
    if (!out || !scratch || !store.sequences || !store.buffer || !tables || !hash) {
        result = chonkle_fail("out of memory");
        goto done;
    }
    memset(hash, 0, (hash_size + chain_size) * sizeof(uint32_t));
    memset(&tables[0], 0, sizeof tables[0]);

    /* header: single segment when the window covers the whole input */
    int single = (uint64_t)length <= ((uint64_t)1 << p.window_log);
    unsigned fcs_bytes = length < 256 ? (single ? 1 : 2) : length < 65536 + 256 ? 2 : 4;
    unsigned fcs_flag = fcs_bytes == 1 ? 0 : fcs_bytes == 2 ? 1 : 2;
    if (end - at < 6 + (ptrdiff_t)fcs_bytes) goto over_limit;
    for (int k = 0; k < 4; k++) *at++ = (uint8_t)(ZSTD_MAGIC >> (8 * k));
    *at++ = (uint8_t)(fcs_flag << 6 | single << 5 | checksum << 2);
    if (!single) *at++ = (uint8_t)((p.window_log - 10) << 3);
    uint32_t content = fcs_bytes == 2 ? length - 256 : length;
    for (unsigned k = 0; k < fcs_bytes; k++) *at++ = (uint8_t)(content >> (8 * k));

    matcher m = {input, input + length, hash, hash + hash_size, p,
                 single ? UINT32_MAX : (uint32_t)1 << p.window_log,
                 level < 0 ? (uint32_t)(-level) : 0, 0, NULL, NULL, {1, 4, 8}, &store};
    if (rows) m.tags = (uint8_t *)(hash + hash_size), m.heads = m.tags + hash_size;
    int compress_literals = level > 0;
    entropy_tables *current = &tables[0], *next = &tables[1];
    size_t position = 0;
    do {
        size_t size = length - position < BLOCK_MAX ? length - position : BLOCK_MAX;
        const uint8_t *block = input + position;
        int last = position + size == length;
        size_t written;
        uint32_t header;
        if (all_equal(block, size)) { /* RLE block: the byte once */
            if (end - at < 4) goto over_limit;
            header = (uint32_t)(size << 3 | 1 << 1 | last);
            at[3] = block[0];
            written = 1;
            if (m.next_to_update < position + size) m.next_to_update = (uint32_t)(position + size);
        } else {
            uint32_t saved_rep[3] = {m.rep[0], m.rep[1], m.rep[2]};
            find_sequences(&m, block, block + size);
            /* straight into the output when it has the room compress_block works in */
            int direct = (size_t)(end - at) >= 3 + BLOCK_SCRATCH;
            uint8_t *target = direct ? at + 3 : scratch;
            written = size >= 64 ? compress_block(target, size, &store, current, next, compress_literals) : 0;
            if (written) { /* the decoder now has these tables */
                entropy_tables *t = current;
                current = next, next = t;
                if (end - at < 3 + (ptrdiff_t)written) goto over_limit;
                header = (uint32_t)(written << 3 | 2 << 1 | last);
                if (!direct) memcpy(at + 3, scratch, written);
            } else { /* raw: the decoder's repeat offsets stay as they were */
                memcpy(m.rep, saved_rep, sizeof saved_rep);
                if ((size_t)(end - at) < 3 + size) goto over_limit;
                header = (uint32_t)(size << 3 | last);
                memcpy(at + 3, block, size);
                written = size;
            }
        }
        at[0] = (uint8_t)header, at[1] = (uint8_t)(header >> 8), at[2] = (uint8_t)(header >> 16);
        at += 3 + written;
        position += size;
    } while (position < length);
    if (checksum) {
        if (end - at < 4) goto over_limit;
        uint32_t digest = (uint32_t)xxh64(input, length);
        for (int k = 0; k < 4; k++) *at++ = (uint8_t)(digest >> (8 * k));
    }
    result = chonkle_result(out, (uint32_t)(at - out));
    out = NULL; /* the host owns it now */
    goto done;
over_limit:
    result = capped ? chonkle_fail("out of memory for the output") : chonkle_fail_limit(0);
done:
    free(out), free(scratch), free(store.sequences), free(store.buffer), free(tables), free(hash);
    return result;
}
