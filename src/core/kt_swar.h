/* kt_swar: byte tests on 8 bytes at once (SIMD within a register), for
 * the scans that look for a few special bytes in mostly plain text (the
 * JSON parser's string ends, the diff printer's escapes). Each returns a
 * mask with the high bit of every flagged byte set: the lowest flagged
 * byte is always a true match; bytes above it may be flagged falsely (a
 * borrow), so only "any" and "the first" are meaningful. */
#ifndef KT_SWAR_H
#define KT_SWAR_H
#include <stdint.h>

#define KT_SWAR_ONES 0x0101010101010101ull
#define KT_SWAR_HIGHS 0x8080808080808080ull

/* The bytes of w equal to c. */
static inline uint64_t kt_swar_eq(uint64_t w, unsigned char c)
{
  uint64_t x = w ^ (KT_SWAR_ONES * c);
  return (x - KT_SWAR_ONES) & ~x & KT_SWAR_HIGHS;
}

/* The bytes of w below n (n <= 128; bytes >= 0x80 never match). */
static inline uint64_t kt_swar_below(uint64_t w, unsigned char n)
{
  return (w - KT_SWAR_ONES * n) & ~w & KT_SWAR_HIGHS;
}

#endif
