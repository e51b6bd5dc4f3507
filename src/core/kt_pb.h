/* kt_pb: the protobuf wire format, as much as OTLP needs: a writer
 * (varints, fixed64/32, length-delimited fields, nested messages) and a
 * reader that walks the fields of one message.
 *
 * The writer grows one buffer and has a sticky error: after a failure
 * (ENOMEM, or the limit passed) every call is a no-op and kt_pb_error()
 * says why, so an encoder checks once at the end. Nested messages are
 * written in place: kt_pb_begin() reserves one length byte, kt_pb_end()
 * fills in the length and moves the body when it needs a longer varint,
 * so the output is canonical (minimal varints). */
#ifndef KT_PB_H
#define KT_PB_H
#include <stddef.h>
#include <stdint.h>

enum kt_pb_wire { KT_PB_VARINT = 0, KT_PB_I64 = 1, KT_PB_LEN = 2, KT_PB_I32 = 5 };

struct kt_pb {
  uint8_t *buf; /* owned; take it with kt_pb_take() or free with kt_pb_free() */
  size_t len, cap;
  size_t limit; /* max bytes; 0 = 1 GiB */
  int err;      /* 0 or the first negative errno code */
};

/* Field writers. A proto3 writer omits default values; these write what
 * they are given and the caller decides. */
void kt_pb_varint_field(struct kt_pb *pb, uint32_t field, uint64_t v);
void kt_pb_fixed64_field(struct kt_pb *pb, uint32_t field, uint64_t v);
void kt_pb_fixed32_field(struct kt_pb *pb, uint32_t field, uint32_t v);
void kt_pb_bytes_field(struct kt_pb *pb, uint32_t field, const void *p,
                       size_t n);
void kt_pb_string_field(struct kt_pb *pb, uint32_t field, const char *s);
/* Appends already encoded bytes (e.g. a message encoded earlier). */
void kt_pb_raw(struct kt_pb *pb, const void *p, size_t n);
/* Starts a nested message in field; returns a mark for kt_pb_end(). */
size_t kt_pb_begin(struct kt_pb *pb, uint32_t field);
void kt_pb_end(struct kt_pb *pb, size_t mark);
int kt_pb_error(const struct kt_pb *pb);
/* Hands the buffer over (caller frees) and resets pb. NULL if empty. */
uint8_t *kt_pb_take(struct kt_pb *pb, size_t *len);
void kt_pb_free(struct kt_pb *pb);
/* Bytes a varint of v takes (1..10). */
size_t kt_pb_varint_len(uint64_t v);

/* Reader over one message's bytes (borrowed). */
struct kt_pb_reader {
  const uint8_t *p, *end;
};
struct kt_pb_field {
  uint32_t num;
  enum kt_pb_wire wire;
  uint64_t v;         /* VARINT, I64, I32 */
  const uint8_t *data; /* LEN: points into the reader's bytes */
  size_t len;
};
/* Next field: 1 and *f, 0 at the end, -EBADMSG for malformed input
 * (truncated, field number 0, a group or an unknown wire type). */
int kt_pb_next(struct kt_pb_reader *r, struct kt_pb_field *f);

#endif
