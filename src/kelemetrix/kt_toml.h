/* kt_toml: a strict parser for the subset of TOML 1.0 that kelemetry's
 * config files use (the original's hack/kelemetrix.toml):
 *
 *   # comments            key = value            [[array.of.tables]]
 *
 * Values: basic "strings" (all escapes, single line), literal 'strings',
 * true/false, decimal integers and floats (with _ separators, exponents,
 * inf, nan), and one-level arrays of those (may span lines, trailing
 * comma, comments inside). Keys are bare (A-Za-z0-9_-) or quoted.
 *
 * Everything else TOML allows is refused with a reason rather than half
 * understood: [standard] tables, dotted keys, inline tables, multi-line
 * strings, nested arrays, dates, 0x/0o/0b integers, and \u0000 (values
 * are C strings). The text must be UTF-8 without control characters
 * outside strings other than tab and newline. A key given twice in one
 * table is an error, as in TOML.
 *
 * The result is the list of tables in file order, each with its pairs in
 * file order and the line of everything, so a schema on top can report
 * "file:line: reason". The parser knows no schema. */
#ifndef KT_TOML_H
#define KT_TOML_H
#include <stddef.h>

enum kt_toml_type { KT_TOML_STRING, KT_TOML_INT, KT_TOML_FLOAT, KT_TOML_BOOL,
                    KT_TOML_ARRAY };

struct kt_toml_value {
  enum kt_toml_type type;
  int line;
  char *s;                      /* STRING: NUL-terminated UTF-8 */
  double num;                   /* INT (exact up to 2^53) and FLOAT */
  int b;                        /* BOOL */
  struct kt_toml_value *items;  /* ARRAY: scalars only */
  size_t nitems, _cap;
};

struct kt_toml_pair {
  char *key;
  int line;
  struct kt_toml_value v;
};

/* tables[0] is the root (name "", line 0). Every other table is one
 * [[name]] header; parent is the index of the table it belongs to: for
 * [[a.b]] the latest [[a]] before it, -1 for a top-level [[a]]. */
struct kt_toml_table {
  char *name; /* dotted path as normalised text, "metrics.tagFilters" */
  int line;
  int parent;
  struct kt_toml_pair *pairs;
  size_t npairs, _cap;
};

struct kt_toml_doc {
  struct kt_toml_table *tables;
  size_t ntables, _cap;
};

/* Limits that keep a hostile file from costing much: the text, tables,
 * pairs per table and items per array. */
#define KT_TOML_MAX_TEXT (1u << 20)
#define KT_TOML_MAX_TABLES 4096
#define KT_TOML_MAX_PAIRS 256
#define KT_TOML_MAX_ITEMS 1024

/* Parses text (len bytes, need not be NUL-terminated) into doc. 0, or
 * -EINVAL with *line (1-based) and a one-line reason in err, or -ENOMEM.
 * doc is always left freeable with kt_toml_free (partial on failure). */
int kt_toml_parse(const char *text, size_t len, struct kt_toml_doc *doc,
                  int *line, char *err, size_t errlen);
void kt_toml_free(struct kt_toml_doc *doc);
/* "string", "integer", "float", "boolean", "array". */
const char *kt_toml_type_name(enum kt_toml_type t);

#endif
