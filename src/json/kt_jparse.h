/* kt_jparse: a JSON parser (RFC 8259) that builds cJSON trees.
 *
 * The webhook parses every audit event it accepts; cJSON's parser tests
 * each value against "null", "false" and "true" with strncmp before
 * looking at its first byte, measures and copies every string twice,
 * calls strtod for every integer and memsets each node through an
 * allocation hook. This one looks at the first byte, finds a string's end
 * with memchr, builds integers itself, and takes its memory from the
 * caller (an arena, kt_jmem). The trees are ordinary cJSON trees, equal to
 * what cJSON_Parse builds for the same text (a fuzz harness checks it).
 *
 * Stricter than cJSON where cJSON is lenient: the whole text must be one
 * value (trailing non-whitespace is an error), numbers follow the JSON
 * grammar (no leading zeros, no lone '-'), at most 63 characters. */
#ifndef KT_JPARSE_H
#define KT_JPARSE_H
#include <stddef.h>

#include <cjson/cJSON.h>

/* Where nodes and strings come from: alloc(ud, n), 8-byte aligned, NULL
 * when out of memory. The caller owns what it hands out (an arena frees
 * it as a whole; with alloc = cJSON_malloc the tree is cJSON_Delete-able). */
typedef void *kt_jparse_alloc_fn(void *ud, size_t n);

/* The tree, or NULL with *err_at set to the offset of the first byte that
 * could not be parsed (len when the text ended early). */
cJSON *kt_jparse(const char *buf, size_t len, kt_jparse_alloc_fn *alloc,
                 void *ud, size_t *err_at);

#endif
