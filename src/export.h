/* export: one consistent snapshot of the feed's schemas, as the payload
 * members of doc/bundle-format.md section 5, handed over in order to an
 * emit callback: "catalog.json", then each table's COPY text in segments
 * "data/<schema>/<table>/000000.copy", ... It also fills the manifest's
 * Snapshot, Source-Server-Version, Schemas and Tables fields.
 *
 * The snapshot: BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY and
 * pg_export_snapshot() on the main connection; with jobs > 1, jobs - 1
 * worker connections import it (SET TRANSACTION SNAPSHOT) and COPY the
 * tables ahead of the one being emitted into unlinked spool files in a
 * private directory under workdir, so that the payload still comes out
 * in catalog order. The main connection streams a table itself whenever
 * no worker has taken it. Memory stays bounded (one segment buffer, plus
 * one I/O buffer per worker) whatever the size of the feed.
 *
 * The tables are locked (ACCESS SHARE) right after they are listed, so
 * that their definitions, read afterwards through pg_get_*def(), are the
 * ones of the snapshot. A table that cannot be locked in time is
 * ALERR_TEMPFAIL "db.lock_timeout".
 *
 * Objects airlock cannot carry stop the export before any member is
 * emitted: ALERR_USAGE "export.unsupported", naming each one (all of
 * them in export_result.unsupported; as many as fit in the message). In
 * each exported schema these are refused:
 *   - functions, procedures, aggregates (not carried);
 *   - types of any kind defined there (enum, composite, domain, range,
 *     base), and table columns whose type is not a built-in one (from
 *     pg_catalog);
 *   - extensions installed there, and extension member objects;
 *   - partitioned tables and partitions, inheritance children, foreign
 *     tables, materialized views, views with options (check_option,
 *     security_barrier, ...);
 *   - triggers (other than the internal ones of foreign keys), rules
 *     (other than a view's own), row-level security and policies;
 *   - generated columns, columns with a collation other than their
 *     type's, exclusion constraints;
 *   - operators, operator classes and families, collations,
 *     conversions, text search objects, extended statistics;
 *   - tables whose name is not [A-Za-z_][A-Za-z0-9_]* (the manifest's
 *     identifier rule);
 *   - references from the schema's tables, views, defaults, constraints,
 *     indexes or sequences to anything in another schema (other than
 *     pg_catalog), including the other exported schemas: the importer
 *     restores each schema on its own.
 *
 * Other errors: "export.schema_missing", "export.schema_system",
 * "export.options" (ALERR_USAGE); "export.server_version",
 * "export.encoding" (ALERR_CONFIG: PostgreSQL before 10, a SQL_ASCII
 * database); "export.catalog_too_large", "export.table_too_large",
 * "export.row_count", "export.catalog" (a catalog value not as expected),
 * "export.emit" (the callback failed without saying why) (ALERR_SOFTWARE);
 * "export.spool" (ALERR_CANTCREAT: the work directory); "export.thread",
 * "export.nomem" (ALERR_OSERR); "export.cancelled" (the progress callback
 * asked to stop); and the pg module's "db.*" codes. An error from the emit
 * callback is returned as the callback recorded it. After a failure the
 * manifest may hold part of the fields: discard it. */
#ifndef AIRLOCK_EXPORT_H
#define AIRLOCK_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"
#include "manifest.h"
#include "pg.h"

#define EXPORT_CATALOG_NAME     "catalog.json"
#define EXPORT_CATALOG_FORMAT   "airlock-catalog/1"
#define EXPORT_SERVER_VERSION_MIN 100000u  /* pg_sequence, identity columns */
#define EXPORT_DEFAULT_WORKDIR  "/var/tmp"

/* Hand one payload member over: name and its whole content (for data
 * segments at most PAYLOAD_SEGMENT_SIZE bytes). data is valid during the
 * call only. Return 0, or a negative errno with e filled. */
typedef int (*export_emit_fn)(void *ctx, const char *name, const void *data,
                              size_t len, struct alerr *e);

struct export_options {
	const char *conninfo;           /* libpq conninfo or URI */
	const char *const *schemas;     /* 1..MANIFEST_MAX_SCHEMAS, unique */
	size_t n_schemas;
	unsigned int jobs;              /* connections, 1..CONFIG_MAX_JOBS (0: 1) */
	const char *workdir;            /* for jobs > 1 (NULL: EXPORT_DEFAULT_WORKDIR) */
	unsigned int timeout_ms;        /* per statement (0: PG_DEFAULT_TIMEOUT_MS) */
	/* Called on the calling thread with the COPY text bytes and rows so
	 * far, at least once per MiB and at the end of each table. Non-zero
	 * stops the export (see above). May be NULL. */
	int (*progress)(void *ctx, uint64_t bytes, uint64_t rows);
	void *progress_ctx;
};

struct export_result {
	char snapshot[PG_SNAPSHOT_MAX + 1];
	uint32_t server_version;        /* server_version_num */
	uint64_t bytes;                 /* COPY text bytes, all tables */
	uint64_t rows;                  /* rows, all tables */
	size_t tables;
	uint64_t members;               /* emitted, catalog.json included */
	uint64_t catalog_bytes;
	/* on "export.unsupported": every object refused, sorted */
	char **unsupported;
	size_t n_unsupported;
};

/* Export the schemas of o->conninfo through emit (called on the calling
 * thread only) and fill m and res (res is cleared first). */
int export_run(const struct export_options *o, struct manifest *m,
               export_emit_fn emit, void *emit_ctx, struct export_result *res,
               struct alerr *e);

/* Free what export_run left in res; safe on a cleared res. */
void export_result_clear(struct export_result *res);

#endif
