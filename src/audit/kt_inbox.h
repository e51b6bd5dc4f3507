/* kt_inbox: the webhook's write-ahead inbox. A 200 means the request's
 * body is committed to the inbox database, so a crash after the answer
 * loses nothing: at start, kt_inbox_recover() queues again every request
 * whose events were not all processed. Those events are marked as
 * recovered, and the consumer skips the ones already stored (span ids are
 * derived from the audit ID and the object's window), so each
 * acknowledged event ends up exactly once in the store.
 *
 * The inbox is a store of its own (the embedded setup: inbox.db beside
 * the spans' database) or the span store itself (PostgreSQL). Its own,
 * the 200 waits for a small commit only, never for the span writer, which
 * can then gather large batches; an entry is deleted once the span store
 * has committed the request's spans. */
#ifndef KT_INBOX_H
#define KT_INBOX_H
#include <stddef.h>

#include <cjson/cJSON.h>

struct kt_store;
struct kt_consumer;
struct kt_submit_result;
struct kt_inbox;

/* Entries are kept in box (may be spans). compress: store bodies as zstd
 * frames (about ten times less to write). Both stores must outlive the
 * inbox, and spans must be closed before box: closing spans runs the
 * deletions of the last entries. */
int kt_inbox_new(struct kt_store *box, struct kt_store *spans,
                 struct kt_consumer *c, int compress, struct kt_inbox **out);
void kt_inbox_free(struct kt_inbox *ib);
/* Records body durably, then queues its items (as kt_consumer_submit,
 * never waiting for room): 0 once both are done; else nothing was queued
 * (the items are still the caller's): -EIO when the store cannot commit
 * the body, -EBUSY when it is in an outage, or the submit's error
 * (-EAGAIN: queue full). */
int kt_inbox_accept(struct kt_inbox *ib, const char *cluster,
                    const char *source, const char *body, size_t len,
                    cJSON *items, int single, struct kt_submit_result *res);
/* Queues again what a crash left in the inbox (and, the inbox being a
 * store of its own, what an older version left in the span store);
 * returns the number of requests recovered, or a negative code. */
int kt_inbox_recover(struct kt_inbox *ib);

#endif
