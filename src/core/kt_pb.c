/* kt_pb: see the header. */
#include "core/kt_pb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT ((size_t)1 << 30)

static int reserve(struct kt_pb *pb, size_t n)
{
  size_t limit = pb->limit ? pb->limit : DEFAULT_LIMIT;
  if (pb->err)
    return pb->err;
  if (n > limit || pb->len > limit - n)
    return pb->err = -EMSGSIZE;
  if (pb->len + n <= pb->cap)
    return 0;
  size_t cap = pb->cap ? pb->cap : 256;
  while (cap < pb->len + n)
    cap *= 2;
  uint8_t *b = realloc(pb->buf, cap);
  if (!b)
    return pb->err = -ENOMEM;
  pb->buf = b;
  pb->cap = cap;
  return 0;
}

size_t kt_pb_varint_len(uint64_t v)
{
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static size_t put_varint(uint8_t *out, uint64_t v)
{
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

static void varint(struct kt_pb *pb, uint64_t v)
{
  if (reserve(pb, 10) == 0)
    pb->len += put_varint(pb->buf + pb->len, v);
}

static void tag(struct kt_pb *pb, uint32_t field, enum kt_pb_wire w)
{
  varint(pb, ((uint64_t)field << 3) | (uint64_t)w);
}

static void le(struct kt_pb *pb, uint64_t v, size_t n)
{
  if (reserve(pb, n))
    return;
  for (size_t i = 0; i < n; i++)
    pb->buf[pb->len++] = (uint8_t)(v >> (8 * i));
}

void kt_pb_varint_field(struct kt_pb *pb, uint32_t field, uint64_t v)
{
  tag(pb, field, KT_PB_VARINT);
  varint(pb, v);
}

void kt_pb_fixed64_field(struct kt_pb *pb, uint32_t field, uint64_t v)
{
  tag(pb, field, KT_PB_I64);
  le(pb, v, 8);
}

void kt_pb_fixed32_field(struct kt_pb *pb, uint32_t field, uint32_t v)
{
  tag(pb, field, KT_PB_I32);
  le(pb, v, 4);
}

void kt_pb_raw(struct kt_pb *pb, const void *p, size_t n)
{
  if (n && reserve(pb, n) == 0) {
    memcpy(pb->buf + pb->len, p, n);
    pb->len += n;
  }
}

void kt_pb_bytes_field(struct kt_pb *pb, uint32_t field, const void *p,
                       size_t n)
{
  tag(pb, field, KT_PB_LEN);
  varint(pb, n);
  kt_pb_raw(pb, p, n);
}

void kt_pb_string_field(struct kt_pb *pb, uint32_t field, const char *s)
{
  kt_pb_bytes_field(pb, field, s ? s : "", s ? strlen(s) : 0);
}

size_t kt_pb_begin(struct kt_pb *pb, uint32_t field)
{
  tag(pb, field, KT_PB_LEN);
  if (reserve(pb, 1))
    return 0;
  pb->buf[pb->len++] = 0;
  return pb->len; /* the body starts here; its length byte is just before */
}

void kt_pb_end(struct kt_pb *pb, size_t mark)
{
  if (pb->err)
    return;
  size_t body = pb->len - mark, k = kt_pb_varint_len(body);
  if (k > 1) {
    if (reserve(pb, k - 1))
      return;
    memmove(pb->buf + mark + k - 1, pb->buf + mark, body);
    pb->len += k - 1;
  }
  put_varint(pb->buf + mark - 1, body);
}

int kt_pb_error(const struct kt_pb *pb)
{
  return pb->err;
}

uint8_t *kt_pb_take(struct kt_pb *pb, size_t *len)
{
  uint8_t *b = pb->buf;
  *len = pb->len;
  pb->buf = NULL;
  pb->len = pb->cap = 0;
  pb->err = 0;
  return b;
}

void kt_pb_free(struct kt_pb *pb)
{
  free(pb->buf);
  pb->buf = NULL;
  pb->len = pb->cap = 0;
  pb->err = 0;
}

static int get_varint(struct kt_pb_reader *r, uint64_t *v)
{
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end)
      return -EBADMSG;
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -EBADMSG; /* more than 10 bytes */
}

static int get_le(struct kt_pb_reader *r, size_t n, uint64_t *v)
{
  if ((size_t)(r->end - r->p) < n)
    return -EBADMSG;
  *v = 0;
  for (size_t i = 0; i < n; i++)
    *v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  return 0;
}

int kt_pb_next(struct kt_pb_reader *r, struct kt_pb_field *f)
{
  uint64_t key;
  if (r->p >= r->end)
    return 0;
  if (get_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
    return -EBADMSG;
  memset(f, 0, sizeof *f);
  f->num = (uint32_t)(key >> 3);
  f->wire = (enum kt_pb_wire)(key & 7);
  switch (f->wire) {
  case KT_PB_VARINT:
    return get_varint(r, &f->v) ? -EBADMSG : 1;
  case KT_PB_I64:
    return get_le(r, 8, &f->v) ? -EBADMSG : 1;
  case KT_PB_I32:
    return get_le(r, 4, &f->v) ? -EBADMSG : 1;
  case KT_PB_LEN:
    if (get_varint(r, &f->v) || f->v > (uint64_t)(r->end - r->p))
      return -EBADMSG;
    f->data = r->p;
    f->len = (size_t)f->v;
    r->p += f->len;
    return 1;
  }
  return -EBADMSG;
}
