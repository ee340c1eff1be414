/*
 * log.h - structured logging on stderr.
 *
 * One line per record, key=value: ts, level, svc, event (a stable name),
 * then the caller's fields. pond_log checks the level before anything is
 * formatted, so a disabled debug line costs one comparison.
 *
 *   pond_log_info("listening", "url=%s", url);
 *
 * Values that may hold spaces or quotes go through pond_log_quote().
 */
#ifndef POND_LOG_H
#define POND_LOG_H

#include <stddef.h>

typedef enum pond_log_level {
	POND_LOG_ERROR = 0,
	POND_LOG_WARN = 1,
	POND_LOG_INFO = 2,
	POND_LOG_DEBUG = 3,
} pond_log_level;

extern int pond_log_threshold;

#define pond_log(level, event, ...)                                           \
	do {                                                                  \
		if ((int)(level) <= pond_log_threshold) {                     \
			pond__log((level), (event), __VA_ARGS__);             \
		}                                                             \
	} while (0)

#define pond_log_error(event, ...) pond_log(POND_LOG_ERROR, event, __VA_ARGS__)
#define pond_log_warn(event, ...)  pond_log(POND_LOG_WARN, event, __VA_ARGS__)
#define pond_log_info(event, ...)  pond_log(POND_LOG_INFO, event, __VA_ARGS__)
#define pond_log_debug(event, ...) pond_log(POND_LOG_DEBUG, event, __VA_ARGS__)

/* pond_log_init sets the service name printed as svc= and the threshold
 * from its name (error, warn, info, debug); returns POND_EINVAL for an
 * unknown level name. */
int pond_log_init(const char *service, const char *level);

/* pond__log formats and writes one record; use the pond_log macros. */
void pond__log(int level, const char *event, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* pond_log_quote writes s into buf as a double-quoted, escaped value
 * (truncated to fit) and returns buf. */
const char *pond_log_quote(const char *s, char *buf, size_t len);

#endif
