/* Errors that travel from the library to a main: a class that decides the
 * exit code, a negative errno, a stable machine-readable reason code
 * ("manifest.field_duplicate") and one human sentence. */
#ifndef AIRLOCK_ALERR_H
#define AIRLOCK_ALERR_H

#include <stdarg.h>
#include <stddef.h>

/* What kind of failure: the one input to the exit-code mapping. */
enum alerr_class {
	ALERR_NONE = 0,
	ALERR_USAGE,       /* bad command line                          64 */
	ALERR_REJECT,      /* bundle rejected: signature, checksum...   65 */
	ALERR_NOINPUT,     /* media or image missing, not an airlock    66 */
	ALERR_UNAVAILABLE, /* database unavailable                      69 */
	ALERR_SOFTWARE,    /* internal error                            70 */
	ALERR_OSERR,       /* system error (memory, fork...)            71 */
	ALERR_CANTCREAT,   /* quarantine cannot be created or is full   73 */
	ALERR_IOERR,       /* media I/O error                           74 */
	ALERR_TEMPFAIL,    /* try again later (lock not taken)          75 */
	ALERR_CONFIG,      /* configuration error                       78 */
};

#define ALERR_REASON_MAX 64
#define ALERR_MESSAGE_MAX 512

struct alerr {
	enum alerr_class cls;
	int errnum;                        /* negative errno, or 0 */
	char reason[ALERR_REASON_MAX];     /* stable code, e.g. "checksum.mismatch" */
	char message[ALERR_MESSAGE_MAX];   /* one line for people */
};

/* Reset to "no error". */
void alerr_clear(struct alerr *e);

/* Record a failure and return errnum (negative errno) so callers can
 * write "return alerr_set(e, ...);". A NULL e is allowed. The first
 * failure recorded wins: later calls do not overwrite it. */
int alerr_set(struct alerr *e, enum alerr_class cls, int errnum,
              const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
int alerr_vset(struct alerr *e, enum alerr_class cls, int errnum,
               const char *reason, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

/* Prefix the message with context ("MANIFEST: "), keeping the reason. */
void alerr_prefix(struct alerr *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* True when a failure has been recorded. */
int alerr_failed(const struct alerr *e);

/* The sysexits.h exit status for a failure class: the one mapping. */
int alerr_exit_code(enum alerr_class cls);

/* Name of a class, for logs and --json ("rejected", "usage"...). */
const char *alerr_class_name(enum alerr_class cls);

#endif
