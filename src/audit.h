/* The audit stages behind airlock-audit: verify the custody log, list its
 * entries, show one bundle's trail. They read the log through
 * custody_verify, so every listing is also a verification: what can be
 * read is printed, and a log that does not verify makes them fail with
 * the first problem (ALERR_REJECT) after printing. Results go to the
 * stream the caller gives (stdout in airlock-audit). */
#ifndef AIRLOCK_AUDIT_H
#define AIRLOCK_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "alerr.h"
#include "custody.h"

enum audit_format {
	AUDIT_FORMAT_TABLE = 0,         /* aligned columns for people */
	AUDIT_FORMAT_JSON,              /* the entries as they are in the log */
	AUDIT_FORMAT_CSV,               /* RFC 4180, one header row */
};

/* Which entries audit_list prints: all of the given conditions hold.
 * NULL strings and has_* == 0 match everything. */
struct audit_filter {
	int has_since, has_until;
	int64_t since_us, until_us;     /* inclusive bounds, UTC microseconds */
	const char *channel;            /* bundle.channel */
	const char *bundle;             /* bundle.bundle_id, or a prefix of it */
	const char *device;             /* device serial or devnode, or signed media serial */
	const char *event;
	const char *outcome;            /* ok, refused, error, info */
};

/* "table", "json", "csv"; 0 or -EINVAL. */
int audit_format_parse(const char *s, enum audit_format *fmt);

/* A time for --since and --until: YYYY-MM-DD, optionally followed by T
 * (or a space) and HH:MM, HH:MM:SS or HH:MM:SS.fraction (1 to 6 digits),
 * optionally followed by Z or an offset +HH:MM / -HH:MM; UTC when no
 * offset is given. Into microseconds since the epoch; 0 or -EINVAL. */
int audit_parse_time(const char *s, int64_t *us);

/* Check a filter's values (outcome one of four, event a name); a bad
 * value is ALERR_USAGE "audit.bad_filter". */
int audit_filter_check(const struct audit_filter *f, struct alerr *e);

/* Verify the log against the anchors given and, when target (a libpq
 * conninfo) is not NULL, every anchor that database's airlock.imports
 * records (restore_read_anchors; its errors and pg's "db.*" as they
 * are). On success print "custody log OK: N entries, head seq N hash H"
 * and what was matched to out. Errors as custody_verify's: a log cut
 * before an anchor is ALERR_REJECT "custody.log_cut". */
int audit_verify(const char *log, const struct custody_anchor *anchors, size_t n_anchors,
                 const char *target, FILE *out, struct alerr *e);

/* Print the entries f selects in the format given. */
int audit_list(const char *log, const struct audit_filter *f, enum audit_format fmt,
               FILE *out, struct alerr *e);

/* Print the trail of one bundle (its id or a unique prefix of at least
 * AUDIT_BUNDLE_PREFIX_MIN characters): the signed low-side facts, then
 * every entry about the bundle or belonging to a run that handled it.
 * An unknown bundle is ALERR_NOINPUT "audit.bundle_unknown"; a prefix of
 * several, ALERR_USAGE "audit.bundle_ambiguous". */
#define AUDIT_BUNDLE_PREFIX_MIN 8u
int audit_show(const char *log, const char *bundle, FILE *out, struct alerr *e);

#endif
