/* kt_span: the span model shared by the aggregator, the stores and the
 * frontend. The schema follows kelemetry's (behaviour spec §1.13):
 * service is the span type (object, link, audit, event), tags are
 * string pairs, logs carry a type (the original's zzz-logType). */
#ifndef KT_SPAN_H
#define KT_SPAN_H
#include <stddef.h>
#include <stdint.h>

struct kt_tag {
  char *key;
  char *value;
};

struct kt_log {
  int64_t ts_us;
  char *type; /* realError, realVerbose, kelemetryError, audit/objectDiff, ... */
  char *msg;
  /* Display-only: a log made by the frontend from a collapsed span carries
   * named fields instead of type/msg. Never stored. */
  struct kt_tag *fields;
  size_t nfields;
};

struct kt_strblk; /* kt_span.c */

/* Tag keys and values and log types live in the span's own string blocks
 * (freed with the span); service, operation and log messages are separate
 * malloc'd strings, which code may replace. */
struct kt_span {
  uint8_t trace_id[16];
  uint64_t span_id;
  uint64_t parent_id; /* 0 for a trace root */
  char *service;      /* object | link | audit | event */
  char *operation;
  int64_t start_us, end_us;
  struct kt_tag *tags;
  size_t ntags, _tags_cap;
  struct kt_log *logs;
  size_t nlogs, _logs_cap;
  struct kt_strblk *_strs;
};

/* A growable array of owned spans. */
struct kt_span_vec {
  struct kt_span **v;
  size_t n, cap;
};

/* All strings are copied; the span owns its copies. NULL only on ENOMEM. */
struct kt_span *kt_span_new(const char *service, const char *operation);
void kt_span_free(struct kt_span *s);
struct kt_span *kt_span_clone(const struct kt_span *s);
/* Adds (or, with kt_span_set_tag, replaces) a tag. Returns 0 or -ENOMEM. */
int kt_span_add_tag(struct kt_span *s, const char *key, const char *value);
int kt_span_set_tag(struct kt_span *s, const char *key, const char *value);
/* Takes ownership of msg (malloc'd) so large diffs are not copied. */
int kt_span_add_log_owned(struct kt_span *s, int64_t ts_us, const char *type,
                          char *msg);
int kt_span_add_log(struct kt_span *s, int64_t ts_us, const char *type,
                    const char *msg);
/* Returns the tag's value (owned by the span) or NULL. */
const char *kt_span_tag(const struct kt_span *s, const char *key);
/* Removes a tag if present. */
void kt_span_del_tag(struct kt_span *s, const char *key);
/* Adds a display log with named fields; takes ownership of fields (an
 * array of n owned key/value pairs). 0 or -ENOMEM (fields freed). */
int kt_span_add_log_fields(struct kt_span *s, int64_t ts_us,
                           struct kt_tag *fields, size_t n);
/* Field value of a display log, or NULL. */
const char *kt_log_field(const struct kt_log *l, const char *key);

int kt_span_vec_push(struct kt_span_vec *v, struct kt_span *s);
void kt_span_vec_free(struct kt_span_vec *v); /* frees the spans too */

/* Hex helpers: 32 hex digits for trace ids, 16 for span ids. */
void kt_trace_id_hex(const uint8_t id[16], char out[33]);
int kt_trace_id_parse(const char *hex, uint8_t id[16]);
void kt_span_id_hex(uint64_t id, char out[17]);
/* Random ids from a thread-local xorshift seeded from getrandom(). */
void kt_random_trace_id(uint8_t id[16]);
uint64_t kt_random_u64(void);

#endif
