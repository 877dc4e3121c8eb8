/* restore: the verified payload (doc/bundle-format.md section 5) into
 * PostgreSQL, atomically. catalog.json and the COPY text stream from the
 * unpack reader into a new staging schema per exported schema
 * (airlock_staging_<random>), created in the same transaction as the
 * COPY ... FROM STDIN (FREEZE) loads; then constraints, indexes, foreign
 * keys, sequences, views, comments, grants (the live schema's and
 * tables' privileges, re-applied), the row counts against MANIFEST's
 * Tables, ANALYZE, COMMIT. Then one short transaction locks every live
 * table ACCESS EXCLUSIVE under lock_timeout, renames each live schema
 * away, the staging schema in, drops the old one, records the import in
 * airlock.imports and commits. Any failure drops the staging schemas;
 * the live schemas stay as they were.
 *
 * The catalog's expression texts (types, defaults, constraint, index and
 * view definitions) are SQL from the signed payload: each runs as one
 * statement (the extended protocol refuses several) with search_path set
 * to the staging schema alone, so that unqualified names land there.
 *
 * With jobs > 1 the build runs in parallel instead: the staging schemas
 * and their sequences are committed first (the staging advisory lock
 * keeps them from a concurrent cleanup; a failure drops them), then the
 * workers run a graph of tasks, each in a transaction of its own: every
 * table's load first, in catalog order (created with its check
 * constraints, loaded with COPY FREEZE, its primary and unique keys
 * added), then each index, each ANALYZE (after its table's indexes) and
 * each foreign key between two loaded tables of a schema (after the
 * referenced table's unique indexes), the costliest first and never two
 * whose locks conflict; then one transaction sets the sequence values and
 * adds the views, comments, grants and any foreign key left (one to
 * another schema's table). Every worker reads the payload from its start,
 * validating the members it skips, so the worker that loads the last
 * table has checked the whole stream. Rows are frozen as they are loaded,
 * so a reader whose snapshot is older than the swap still sees them.
 *
 * A table's COPY stops as soon as its text holds more lines than
 * MANIFEST's row count for it ("restore.row_count"), without waiting for
 * the end of its data.
 *
 * Reason codes (besides the pg module's "db.*"): ALERR_REJECT
 * "restore.catalog" (catalog.json malformed, or not the manifest's
 * schemas and tables), "restore.payload" (members not as the catalog
 * announces), "restore.row_count" (rows loaded differ from MANIFEST),
 * "restore.data" (COPY text the target refuses: SQLSTATE class 22),
 * "restore.constraint" (rows violating a constraint: class 23),
 * "restore.schema" (a definition the target refuses: class 42);
 * ALERR_CONFIG "restore.dependents" (objects in other schemas depend on
 * the live schema: the swap would drop them; checked before the load and
 * again under the swap's locks);
 * ALERR_USAGE "restore.options"; ALERR_OSERR "restore.nomem";
 * "restore.before_swap" when the callback failed without saying why.
 * A lock not taken in time is ALERR_TEMPFAIL "db.lock_timeout"; a lost
 * or stopped server ALERR_UNAVAILABLE "db.unavailable". */
#ifndef AIRLOCK_RESTORE_H
#define AIRLOCK_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"
#include "manifest.h"
#include "pack.h"

#define RESTORE_STAGING_PREFIX   "airlock_staging_"
#define RESTORE_OLD_PREFIX       "airlock_old_"
#define RESTORE_BOOK_SCHEMA      "airlock"
#define RESTORE_LOCK_TIMEOUT_DEFAULT_MS 30000u
#define RESTORE_TIMEOUT_DEFAULT_MS (4u * 3600u * 1000u)
/* pg_advisory_lock(key1, key2) namespaces: 'AIRL' for channels, 'AIRS'
 * for staging schemas (held by the run that builds one). */
#define RESTORE_LOCK_CHANNEL     0x4149524c
#define RESTORE_LOCK_STAGING     0x41495253

struct restore_options {
	const char *conninfo;            /* the high-side target database */
	/* Load workers, each over its own connection and its own reader of
	 * the payload (open_payload): 0 or 1, or no open_payload, loads
	 * everything in one transaction over one connection. */
	unsigned int jobs;
	uint64_t lock_timeout_ms;        /* the swap's locks (0: the default) */
	/* per statement, COPY's on inactivity (0: RESTORE_TIMEOUT_DEFAULT_MS:
	 * an index on a large feed takes long; the unit's RuntimeMaxSec is
	 * the watchdog of the whole import) */
	unsigned int timeout_ms;
	/* COPY text bytes so far, at least once per MiB; non-zero stops
	 * the restore ("restore.cancelled"). May be NULL. */
	int (*progress)(void *ctx, uint64_t bytes);
	void *progress_ctx;
	/* jobs > 1: another reader of the same payload from its start, for
	 * each load worker beyond the first; called from restore_run's
	 * thread before the workers start. close_payload frees one. */
	int (*open_payload)(void *ctx, struct unpack **out, void **handle,
	                    struct alerr *e);
	void (*close_payload)(void *ctx, struct unpack *u, void *handle);
	void *payload_ctx;
};

/* What goes into airlock.imports. */
struct restore_record {
	const char *channel;
	uint64_t sequence;
	const char *bundle_id;
	const char *manifest_sha256;     /* 64 lower-case hex digits */
	const char *image_sha256;        /* may be NULL */
	const char *const *signers;      /* valid signers' primary fingerprints */
	size_t n_signers;
	uint64_t custody_seq;            /* the custody head, set by before_swap */
	const char *custody_hash;        /* may be NULL */
	int64_t created;                 /* Unix seconds (MANIFEST Created) */
	int64_t valid_until;
};

struct restore_result {
	size_t tables;
	uint64_t rows;
	uint64_t bytes;                  /* COPY text bytes loaded */
	double seconds;
	uint32_t source_version;         /* server_version_num (MANIFEST) */
	uint32_t target_version;
	int major_differs;               /* reported, not an error */
	int first_import;                /* no live schema was replaced */
};

/* What verify needs before it decides: the channel's last imported
 * sequence and MANIFEST SHA-256, and the newest Created of any import
 * (the station clock check). No airlock.imports yet: all zero. */
struct restore_state {
	uint64_t last_sequence;
	char last_manifest_sha256[65];
	int64_t newest_created;
	int has_last;
};

int restore_read_state(const char *conninfo, const char *channel,
                       struct restore_state *st, struct alerr *e);

/* The custody anchors the imports recorded, for airlock-audit verify:
 * each airlock.imports row's (custody_seq, custody_hash) pair, ordered by
 * custody_seq (RESTORE_ANCHOR_QUERY). *out is malloc'd (free() it; NULL
 * when *n is 0); no airlock.imports table gives none. A row with one of
 * the two NULL, a seq outside 1..2^53-1 or a hash other than 64
 * lower-case hex digits is ALERR_REJECT "restore.anchor" naming the
 * row's channel and sequence (the record was altered); more than
 * CUSTODY_MAX_ANCHORS rows, ALERR_REJECT "restore.anchors_too_many". */
#define RESTORE_ANCHOR_QUERY \
	"SELECT custody_seq, custody_hash, channel, sequence FROM " RESTORE_BOOK_SCHEMA \
	".imports WHERE custody_seq IS NOT NULL OR custody_hash IS NOT NULL" \
	" ORDER BY custody_seq, channel, sequence LIMIT $1"
struct custody_anchor;
int restore_read_anchors(const char *conninfo, struct custody_anchor **out, size_t *n,
                         struct alerr *e);

/* Serialize imports per channel: a session advisory lock, held on its own
 * connection until restore_lock_free. Waits (bounded by timeout_ms, 0:
 * PG_DEFAULT_TIMEOUT_MS) while another import of the channel runs. */
struct restore_lock;
int restore_lock_channel(const char *conninfo, const char *channel,
                         unsigned int timeout_ms, struct restore_lock **out,
                         struct alerr *e);
void restore_lock_free(struct restore_lock *l);

/* Drop the airlock_staging_* schemas a killed run left behind: only
 * those whose run no longer holds its staging advisory lock. *dropped
 * (may be NULL) gets their count. */
int restore_cleanup_stale(const char *conninfo, size_t *dropped, struct alerr *e);

/* The restore (see the top of this file). rec is inserted into
 * airlock.imports; before_swap (may be NULL) runs inside the swap
 * transaction once the locks are held, just before the import is
 * recorded and committed: it appends the custody intent and sets
 * rec->custody_seq/custody_hash; its failure aborts the swap. */
int restore_run(const struct restore_options *o, struct unpack *u,
                const struct manifest *m, struct restore_record *rec,
                int (*before_swap)(void *ctx, struct restore_record *rec,
                                   struct alerr *e),
                void *ctx, struct restore_result *res, struct alerr *e);

/* The major version of a server_version_num (150018 -> 15, 90624 -> 906). */
uint32_t restore_major(uint32_t version_num);

#endif
