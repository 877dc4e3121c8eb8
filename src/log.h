/* All diagnostics go through here: stderr for people, syslog (the journal
 * picks it up) for unattended stations. Never stdout: that is for results. */
#ifndef AIRLOCK_LOG_H
#define AIRLOCK_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "alerr.h"

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_INFO,
	LOG_LEVEL_VERBOSE,
	LOG_LEVEL_DEBUG,
};

#define LOG_TO_STDERR 0x1
#define LOG_TO_SYSLOG 0x2

/* Set the program name shown in front of each line and where lines go.
 * Threshold: messages above it are dropped (default NOTICE). */
void log_init(const char *progname, unsigned int targets, enum log_level threshold);
/* The targets in effect (LOG_TO_*): log_init drops LOG_TO_SYSLOG when
 * stderr is systemd's journal stream, which has those lines already. */
unsigned int log_get_targets(void);
void log_set_threshold(enum log_level threshold);
enum log_level log_get_threshold(void);
void log_close(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_err(...)     log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)    log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_verbose(...) log_msg(LOG_LEVEL_VERBOSE, __VA_ARGS__)
#define log_dbg(...)     log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* One line for a failure: "<message> [<reason>]". */
void log_alerr(const struct alerr *e);

/* Make untrusted text safe to print on one line: control characters and
 * invalid UTF-8 become \xNN. Always NUL-terminates out (size >= 1). */
void log_sanitize(char *out, size_t size, const char *in, size_t len);

#endif
