/* kt_log: leveled logging to stderr (or a file), as text or JSON lines.
 * Thread-safe; one line per call. */
#ifndef KT_LOG_H
#define KT_LOG_H

enum kt_log_level { KT_LOG_DEBUG, KT_LOG_INFO, KT_LOG_WARN, KT_LOG_ERROR };

/* Returns 0, or -EINVAL for an unknown level/format name. */
int kt_log_configure(const char *level, const char *format, const char *file);
void kt_log(enum kt_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define kt_debug(...) kt_log(KT_LOG_DEBUG, __VA_ARGS__)
#define kt_info(...) kt_log(KT_LOG_INFO, __VA_ARGS__)
#define kt_warn(...) kt_log(KT_LOG_WARN, __VA_ARGS__)
#define kt_error(...) kt_log(KT_LOG_ERROR, __VA_ARGS__)

#endif
