#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

static const char *log_progname = "airlock";
static unsigned int log_targets = LOG_TO_STDERR;
static enum log_level log_threshold = LOG_LEVEL_NOTICE;
static int log_syslog_open;

/* stderr is systemd's journal stream (JOURNAL_STREAM names its device
 * and inode, systemd.exec(5)): the journal has every stderr line already. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char tail;

	if (!js || sscanf(js, "%ju:%ju%c", &dev, &ino, &tail) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void log_init(const char *progname, unsigned int targets, enum log_level threshold)
{
	if (progname && *progname)
		log_progname = progname;
	/* not the same line twice in the journal */
	if ((targets & LOG_TO_SYSLOG) && (targets & LOG_TO_STDERR) && stderr_is_journal())
		targets &= ~(unsigned int)LOG_TO_SYSLOG;
	log_targets = targets;
	log_threshold = threshold;
	if ((targets & LOG_TO_SYSLOG) && !log_syslog_open) {
		openlog(log_progname, LOG_PID, LOG_DAEMON);
		log_syslog_open = 1;
	}
}

unsigned int log_get_targets(void)
{
	return log_targets;
}

void log_set_threshold(enum log_level threshold)
{
	log_threshold = threshold;
}

enum log_level log_get_threshold(void)
{
	return log_threshold;
}

void log_close(void)
{
	if (log_syslog_open) {
		closelog();
		log_syslog_open = 0;
	}
}

static int syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERROR:   return LOG_ERR;
	case LOG_LEVEL_WARNING: return LOG_WARNING;
	case LOG_LEVEL_NOTICE:  return LOG_NOTICE;
	case LOG_LEVEL_INFO:    return LOG_INFO;
	case LOG_LEVEL_VERBOSE: return LOG_INFO;
	case LOG_LEVEL_DEBUG:   return LOG_DEBUG;
	}
	return LOG_INFO;
}

static const char *level_prefix(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERROR:   return "error: ";
	case LOG_LEVEL_WARNING: return "warning: ";
	case LOG_LEVEL_DEBUG:   return "debug: ";
	default:                return "";
	}
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];

	if (level > log_threshold)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_targets & LOG_TO_STDERR)
		fprintf(stderr, "%s: %s%s\n", log_progname, level_prefix(level), line);
	if ((log_targets & LOG_TO_SYSLOG) && log_syslog_open)
		syslog(syslog_priority(level), "%s", line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_alerr(const struct alerr *e)
{
	if (!e || e->cls == ALERR_NONE)
		return;
	log_err("%s [%s]", e->message, e->reason);
}

void log_sanitize(char *out, size_t size, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, i = 0, n;

	if (size == 0)
		return;
	while (i < len) {
		n = text_utf8_seq_len(s + i, len - i);
		if (n == 1 && s[i] >= 0x20 && s[i] != 0x7f && s[i] != '\\') {
			if (o + 1 >= size)
				break;
			out[o++] = (char)s[i];
		} else if (n > 1) {
			if (o + n >= size)
				break;
			memcpy(out + o, s + i, n);
			o += n;
		} else {
			if (o + 4 >= size)
				break;
			snprintf(out + o, 5, "\\x%02x", s[i]);
			o += 4;
			n = 1;
		}
		i += n;
	}
	out[o] = '\0';
}
