/* kt_replay: `kelemetry replay FILE...` — audit logs (JSON lines, as
 * --audit-log-path writes them, old format included), EventList JSON
 * documents (one per line, or one pretty-printed document per file),
 * gzip-compressed or not, "-" for stdin, fed through the same consumer as
 * the webhook. Shows a progress bar on a terminal and ends with a summary:
 * read, accepted, filtered, rejected by reason with line numbers. Events
 * already stored (a rerun, an interrupted replay) are skipped, so a replay
 * can be repeated without duplicating anything. */
#ifndef KT_REPLAY_H
#define KT_REPLAY_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct kt_consumer;

struct kt_replay_stats {
  uint64_t lines, events, accepted, rejected;
  uint64_t by_reason[5];     /* indexed by enum kt_audit_err */
  uint64_t example_line[5];  /* first offending line per reason */
  char example_file[5][256];
};

/* Replays one file into the consumer (blocking when its queue is full).
 * progress: FILE to draw the bar on, or NULL. Returns 0, or -errno when
 * the file cannot be read (reason logged). */
int kt_replay_file(struct kt_consumer *c, const char *path,
                   const char *cluster, FILE *progress,
                   struct kt_replay_stats *st);
struct kt_consumer_stats;

/* Prints the summary lines. */
void kt_replay_summary(FILE *out, const struct kt_replay_stats *st,
                       const struct kt_consumer_stats *cs);

#endif
