/* The one wrapper around libpq: no other file includes libpq-fe.h.
 *
 * A connection pins the session settings that shape COPY text (DateStyle
 * 'ISO, YMD', IntervalStyle postgres, extra_float_digits 3, bytea_output
 * hex, TimeZone UTC, client_encoding UTF8) and turns off the server-side
 * timeouts and row-level security (as pg_dump does: a silently filtered
 * COPY would lose rows). Queries go through PQexecParams' asynchronous
 * form only, each one bounded by the connection's timeout: when it
 * passes, the statement is cancelled (PQcancel), its result drained, and
 * the call fails with ALERR_TEMPFAIL "db.timeout". Results are always
 * drained before a call returns.
 *
 * Errors: "db.conninfo" (ALERR_USAGE, unparsable conninfo),
 * "db.unavailable" (ALERR_UNAVAILABLE: cannot connect, connection lost,
 * server shutting down: SQLSTATE class 08, 57P01-57P03),
 * "db.timeout" (ALERR_TEMPFAIL: our timeout, or 57014),
 * "db.lock_timeout" (ALERR_TEMPFAIL, 55P03), "db.conflict"
 * (ALERR_TEMPFAIL, 40001 and 40P01), "db.resources" (ALERR_TEMPFAIL:
 * disk full, out of memory, too many connections: class 53),
 * "db.permission" (ALERR_CONFIG,
 * 42501), "db.settings" (ALERR_CONFIG, a pinned setting did not take),
 * "db.query" (ALERR_SOFTWARE, any other SQL error), "db.result_shape"
 * (ALERR_SOFTWARE, not the columns the caller expected), "db.quote"
 * (ALERR_USAGE, an identifier or literal libpq cannot quote), "db.state"
 * (ALERR_SOFTWARE, a call out of order). SQL errors say "SQLSTATE xxxxx:
 * <primary message>"; messages are one sanitized line.
 *
 * A connection is used by one thread at a time; different connections
 * may be used by different threads when pg_threadsafe() says so. */
#ifndef AIRLOCK_PG_H
#define AIRLOCK_PG_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"

#define PG_CONNECT_TIMEOUT_S    10u         /* when the conninfo has none */
#define PG_DEFAULT_TIMEOUT_MS   300000u     /* per statement; see pg_set_timeout */
#define PG_CANCEL_GRACE_MS      10000u      /* wait for a cancelled statement */
#define PG_APPLICATION_NAME     "airlock"
#define PG_SNAPSHOT_MAX         64u         /* bytes in a snapshot id */

struct pg_conn;
struct pg_result;

/* Connect (conninfo string or URI; NULL or "" uses the PG* environment),
 * with connect_timeout PG_CONNECT_TIMEOUT_S and application_name airlock
 * unless the conninfo sets them, then pin and verify the session
 * settings. */
int pg_connect(const char *conninfo, struct pg_conn **out, struct alerr *e);

/* Close and free; NULL is allowed. */
void pg_close(struct pg_conn *c);

/* Bound every later statement to timeout_ms (0: PG_DEFAULT_TIMEOUT_MS).
 * For COPY the bound is on inactivity: no data for timeout_ms. */
void pg_set_timeout(struct pg_conn *c, unsigned int timeout_ms);

/* The server's server_version_num (e.g. 150018). */
uint32_t pg_server_version(const struct pg_conn *c);

/* The SQLSTATE of the last SQL error on c ("" when none). */
const char *pg_last_sqlstate(const struct pg_conn *c);

/* The row count of the last COPY (PQcmdTuples). */
uint64_t pg_last_copy_rows(const struct pg_conn *c);

/* Ask the server to cancel c's statement in progress; callable from
 * another thread (or a signal handler) while c is in use. */
void pg_cancel(struct pg_conn *c);

/* 1 when connections may be used from several threads (PQisthreadsafe). */
int pg_threadsafe(void);

/* *out = s as a double-quoted SQL identifier or a quoted literal
 * (PQescapeIdentifier, PQescapeLiteral); malloc'd, free() it. */
int pg_quote_ident(struct pg_conn *c, const char *s, char **out, struct alerr *e);
int pg_quote_literal(struct pg_conn *c, const char *s, char **out, struct alerr *e);

/* Run one statement with text parameters (params[i] NULL is SQL NULL).
 * pg_exec accepts any successful result and discards it; pg_query wants
 * rows with exactly ncols columns and hands them over in *out. */
int pg_exec(struct pg_conn *c, const char *sql, int nparams,
            const char *const *params, struct alerr *e);
int pg_query(struct pg_conn *c, const char *sql, int nparams,
             const char *const *params, int ncols, struct pg_result **out,
             struct alerr *e);

/* Rows and columns of a result, a value ("" for NULL) and its NULL flag;
 * row and col must be in range. */
size_t pg_result_ntuples(const struct pg_result *r);
int pg_result_nfields(const struct pg_result *r);
const char *pg_result_get(const struct pg_result *r, size_t row, int col);
int pg_result_isnull(const struct pg_result *r, size_t row, int col);
void pg_result_free(struct pg_result *r);

/* Run sql (a COPY ... TO STDOUT) and hand each buffer of COPY data to cb
 * (libpq's buffers: one row each in practice). A callback that fails
 * (returns < 0, its reason in e) cancels the COPY; the connection stays
 * usable when the cancellation completes in time. On success
 * pg_last_copy_rows() gives the server's row count. */
int pg_copy_out(struct pg_conn *c, const char *sql,
                int (*cb)(void *ctx, const void *buf, size_t len, struct alerr *e),
                void *ctx, struct alerr *e);

/* COPY ... FROM STDIN: begin with the statement, put data in pieces of
 * any size, end. pg_copy_in_end with abort_reason set aborts the COPY
 * (the transaction then fails) and returns 0 once the server agreed;
 * otherwise *rows (may be NULL) gets the server's row count. */
int pg_copy_in_begin(struct pg_conn *c, const char *sql, struct alerr *e);
int pg_copy_in_put(struct pg_conn *c, const void *buf, size_t len, struct alerr *e);
int pg_copy_in_end(struct pg_conn *c, const char *abort_reason, uint64_t *rows,
                   struct alerr *e);

/* BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY, then
 * pg_export_snapshot() into snapshot (size > PG_SNAPSHOT_MAX). */
int pg_begin_snapshot_export(struct pg_conn *c, char *snapshot, size_t size,
                             struct alerr *e);

/* BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY, then SET TRANSACTION
 * SNAPSHOT to an id exported by another, still open, transaction. */
int pg_begin_snapshot_import(struct pg_conn *c, const char *snapshot,
                             struct alerr *e);

#endif
