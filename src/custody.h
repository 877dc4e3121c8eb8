/* The chain-of-custody log (doc/custody-log.md, normative): JSON Lines,
 * one entry per event, each line carrying the previous entry's SHA-256
 * and its own, written under a file lock as one write() and synced.
 *
 * Writers build an entry, then append it:
 *
 *	struct custody_entry *en;
 *	if (custody_entry_new(&en, CUSTODY_SIDE_HIGH, CUSTODY_EV_BUNDLE_REJECTED,
 *	                      CUSTODY_REFUSED, e) < 0) ...
 *	custody_entry_set_reason(en, "signature.untrusted");
 *	custody_entry_set_bundle(en, &bundle);
 *	r = custody_append(path, en, &seq, hash, e);   (stop the operation on r < 0)
 *	custody_entry_free(en);
 *
 * The setters never fail silently: the first bad value is remembered and
 * custody_append refuses the entry (ALERR_SOFTWARE "custody.bad_entry"),
 * so a caller may check the setters' results or only custody_append's.
 * Untrusted text (device facts, manifest text) is stored printable: a
 * value that is not printable UTF-8 is escaped as log_sanitize does, and
 * cut at CUSTODY_MAX_TEXT bytes on a character boundary.
 *
 * Readers (airlock-audit) go through custody_verify, which checks the
 * whole chain and hands each entry to a callback. json-c stays inside
 * custody.c: entries are read through the custody_record accessors. */
#ifndef AIRLOCK_CUSTODY_H
#define AIRLOCK_CUSTODY_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"
#include "digest.h"

struct manifest;

#define CUSTODY_FORMAT_VERSION 1
#define CUSTODY_HASH_HEX_LEN   DIGEST_SHA256_HEX_LEN
#define CUSTODY_TIME_LEN       27u     /* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
#define CUSTODY_RUN_ID_LEN     36u     /* a lower-case UUID */
#define CUSTODY_NAME_MAX       63u     /* event names, reasons, detail keys */

/* The events airlock writes; doc/auditor-guide.md says what each means.
 * Other names of the same shape (lower-case words joined by dots) are
 * accepted, so that a newer writer's log still verifies. */
#define CUSTODY_EV_BUNDLE_WRITTEN      "bundle.written"
#define CUSTODY_EV_BUNDLE_WRITE_FAILED "bundle.write_failed"
#define CUSTODY_EV_MEDIA_INSERTED      "media.inserted"
#define CUSTODY_EV_MEDIA_IGNORED       "media.ignored"
#define CUSTODY_EV_MEDIA_QUARANTINED   "media.quarantined"
#define CUSTODY_EV_BUNDLE_VERIFIED     "bundle.verified"
#define CUSTODY_EV_BUNDLE_REJECTED     "bundle.rejected"
#define CUSTODY_EV_RESTORE_INTENT      "restore.intent"
#define CUSTODY_EV_RESTORE_DONE        "restore.done"
#define CUSTODY_EV_RESTORE_FAILED      "restore.failed"
#define CUSTODY_EV_RECONCILED          "custody.reconciled"
#define CUSTODY_EV_TORN_TAIL           "custody.torn_tail"   /* written by custody_append only */

enum custody_side {
	CUSTODY_SIDE_LOW = 0,   /* airlock-write */
	CUSTODY_SIDE_HIGH,      /* airlock-import */
};

enum custody_outcome {
	CUSTODY_OK = 0,         /* the step succeeded */
	CUSTODY_REFUSED,        /* the bundle or media was refused by policy */
	CUSTODY_ERROR,          /* the step failed (I/O, database...) */
	CUSTODY_INFO,           /* a fact, no verdict */
};

/* The bundle an entry is about. NULL pointers and has_sequence == 0 are
 * written as null. verified: channel, sequence and bundle_id come from a
 * MANIFEST whose signatures verified (high side) or that this host wrote
 * (low side); 0 when they were read from a MANIFEST not (yet) verified. */
struct custody_bundle {
	const char *channel;
	uint64_t sequence;
	int has_sequence;
	const char *bundle_id;
	const uint8_t *manifest_sha256;         /* DIGEST_SHA256_LEN bytes */
	const uint8_t *image_sha256;            /* the quarantine copy (high side) */
	int verified;
};

/* Facts about the media, from udev and blkid: untrusted text. */
struct custody_device {
	const char *devnode;
	const char *vendor;
	const char *model;
	const char *serial;
	const char *bus_path;
	uint64_t size;                          /* bytes */
	int has_size;
};

/* An entry under construction. */
struct custody_entry;

/* A new entry. event must be lower-case words joined by dots, at most
 * CUSTODY_NAME_MAX bytes; "custody.torn_tail" is reserved. Errors:
 * ALERR_SOFTWARE "custody.bad_entry", ALERR_OSERR "custody.memory". */
int custody_entry_new(struct custody_entry **out, enum custody_side side,
                      const char *event, enum custody_outcome outcome,
                      struct alerr *e);

/* NULL is allowed. */
void custody_entry_free(struct custody_entry *en);

/* A stable reason code ("checksum.mismatch"): [a-z0-9_.], at most
 * CUSTODY_NAME_MAX bytes. */
int custody_entry_set_reason(struct custody_entry *en, const char *reason);

/* The run this entry belongs to: every entry of one import (or one write)
 * carries the same id, so that airlock-audit show can join the insertion
 * and quarantine entries to the bundle's. A lower-case UUID. */
int custody_entry_set_run(struct custody_entry *en, const char *run_id);

/* A new random run id (libuuid), lower-case, NUL-terminated. */
void custody_run_id(char out[CUSTODY_RUN_ID_LEN + 1]);

/* Who carries the media (the writer's --courier). */
int custody_entry_set_courier(struct custody_entry *en, const char *courier);

int custody_entry_set_bundle(struct custody_entry *en, const struct custody_bundle *b);
int custody_entry_set_device(struct custody_entry *en, const struct custody_device *d);

/* The low-side custody facts of a MANIFEST: writer host, courier, media
 * vendor, model and serial, snapshot, created, valid until, signers. On
 * the high side call it only once the MANIFEST's signatures verified:
 * the log presents these as signed facts. */
int custody_entry_set_signed(struct custody_entry *en, const struct manifest *m);

/* Free-form details. key: [a-z][a-z0-9_]*, at most CUSTODY_NAME_MAX
 * bytes, unique within the entry, not one custody_append reserves
 * (clock_behind_us, torn_offset, torn_bytes, torn_sha256); at most
 * CUSTODY_MAX_DETAILS keys. Integers within +-(2^53 - 1), so that every
 * JSON reader (jq) reads them exactly. */
int custody_entry_add_detail_str(struct custody_entry *en, const char *key, const char *value);
int custody_entry_add_detail_int(struct custody_entry *en, const char *key, int64_t value);
int custody_entry_add_detail_bool(struct custody_entry *en, const char *key, int value);

/* Send each appended entry to syslog as one line (default on). */
void custody_set_syslog(int enabled);

/* Append en to the log at path: open (creating the file 0640, and its
 * directory 0750, when missing; a symlink, a non-regular file, a file or
 * directory writable by group or others, a file owned by another user or
 * with several links is refused, ALERR_CONFIG "custody.unsafe_file"),
 * take the lock (ALERR_TEMPFAIL "custody.lock_timeout" after
 * CUSTODY_LOCK_WAIT_MS; the path is opened again if the file was renamed
 * meanwhile, "custody.replaced" after three tries), read the tail, record a torn tail if one is
 * found (a custody.torn_tail entry), write the entry in one write() and
 * fdatasync. A short write, a write error or a sync error is
 * ALERR_IOERR "custody.write" / "custody.sync": the caller must stop the
 * operation the entry records; nothing is retried. A tail that holds no
 * whole entry within the last CUSTODY_MAX_TORN bytes is ALERR_IOERR
 * "custody.corrupt". seq_out and hash_out (may be NULL) get the new
 * entry's seq and hash: the anchor the importer stores. */
int custody_append(const char *path, struct custody_entry *en, uint64_t *seq_out,
                   char hash_out[CUSTODY_HASH_HEX_LEN + 1], struct alerr *e);

/* The newest whole entry's seq and hash (0 and 64 zeros for an empty or
 * missing-entries log), read under a shared lock; *torn (may be NULL) is
 * set when bytes after it await a custody.torn_tail entry. A missing
 * file is ALERR_NOINPUT "custody.missing". */
int custody_head(const char *path, uint64_t *seq, char hash[CUSTODY_HASH_HEX_LEN + 1],
                 int *torn, struct alerr *e);

/* An anchor: the head of the log as the database recorded it. */
struct custody_anchor {
	uint64_t seq;
	char hash[CUSTODY_HASH_HEX_LEN + 1];
};

/* "SEQ:HASH" (decimal seq >= 1, 64 lower-case hex digits) into a;
 * 0 or -EINVAL. */
int custody_anchor_parse(const char *s, struct custody_anchor *a);

/* One entry handed to a custody_verify callback; valid during the call. */
struct custody_record;

uint64_t custody_record_line(const struct custody_record *r);
uint64_t custody_record_seq(const struct custody_record *r);

/* The text of a member: member alone for a top-level member ("event"),
 * member and sub for one inside an object ("bundle", "bundle_id").
 * Strings as they are, integers in decimal, booleans true/false, arrays
 * and objects as compact JSON. NULL for null or a missing member. */
const char *custody_record_text(const struct custody_record *r, const char *member,
                                const char *sub);

/* The index-th member of an object member ("details") or element of an
 * array member ("signed", "signers" is reached with member "signed" and
 * sub "signers"): *key gets its name (NULL for an array element), the
 * return value its text as custody_record_text gives it (the string
 * "null" for null). NULL past the end. */
const char *custody_record_item(const struct custody_record *r, const char *member,
                                const char *sub, size_t index, const char **key);

/* The line as it is in the log, without the newline. */
const char *custody_record_raw(const struct custody_record *r, size_t *len);

/* Called for every entry whose own hash is right, in log order, also
 * after a problem in the chain; a non-zero return stops the scan and is
 * returned by custody_verify. */
typedef int (*custody_record_fn)(const struct custody_record *r, void *arg);

/* What a scan found. On a problem, the first one: its line, the seq the
 * line claims (0 when it has none) and one sentence. */
struct custody_summary {
	uint64_t lines;                 /* lines read, torn ones included */
	uint64_t entries;               /* whole entries */
	uint64_t torn_recorded;         /* torn regions a custody.torn_tail records */
	uint64_t head_seq;
	char head_hash[CUSTODY_HASH_HEX_LEN + 1];
	char head_time[CUSTODY_TIME_LEN + 1];
	int problem;                    /* 1 when the log does not verify */
	uint64_t bad_line;
	uint64_t bad_seq;
	char reason[ALERR_REASON_MAX];
	char what[ALERR_MESSAGE_MAX];
};

/* Read the whole log and check each line (length, UTF-8, canonical JSON,
 * members and their types, its hash), seq continuity from 1, each prev
 * link, non-decreasing time, recorded torn regions, and each anchor
 * (the entry at its seq has its hash; the log reaches its seq). fn may
 * be NULL. Returns 0 when the log verifies; on the first problem
 * -EBADMSG with ALERR_REJECT, the reason ("custody.hash_mismatch"...)
 * and "line N (seq S): what" (sum says the same). A missing log is
 * ALERR_NOINPUT "custody.missing"; a symlink or non-regular file
 * ALERR_NOINPUT "custody.unsafe_file"; a read error ALERR_IOERR. Only the
 * bytes present when the scan starts are read: appends made meanwhile
 * wait for the next scan. */
int custody_verify(const char *path, const struct custody_anchor *anchors, size_t n_anchors,
                   custody_record_fn fn, void *arg, struct custody_summary *sum,
                   struct alerr *e);

/* Parse a custody time ("YYYY-MM-DDTHH:MM:SS.uuuuuuZ", a real calendar
 * time) into microseconds since the epoch; 0 or -EINVAL. */
int custody_time_parse(const char *s, size_t n, int64_t *us);

#endif
