/* kt_hex: the value of a hexadecimal digit, for the decoders of percent
 * escapes (URLs) and \u escapes (TOML). */
#ifndef KT_HEX_H
#define KT_HEX_H

/* 0..15, or -1 when c is not a hex digit. */
static inline int kt_hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

#endif
