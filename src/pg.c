#include "config.h"

#include <errno.h>
#include <limits.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pg.h"
#include "text.h"

struct pg_conn {
	PGconn *conn;
	PGcancel *cancel;       /* made once: PQcancel is thread-safe, PQgetCancel not */
	unsigned int timeout_ms;
	uint32_t server_version;
	int broken;             /* unusable: lost, or a cancel never completed */
	int in_copy_in;         /* between pg_copy_in_begin and _end */
	uint64_t copy_rows;
	char sqlstate[6];
};

struct pg_result {
	PGresult *res;
};

/* The settings that shape COPY text (doc/bundle-format.md section 5),
 * then the ones that keep a long export from being cut short or filtered
 * by the server's defaults (pg_dump sets the same). */
static const struct {
	const char *name;
	const char *value;
	uint32_t min_version;
} pinned[] = {
	{ "DateStyle", "ISO, YMD", 0 },
	{ "IntervalStyle", "postgres", 0 },
	{ "extra_float_digits", "3", 0 },
	{ "bytea_output", "hex", 0 },
	{ "TimeZone", "UTC", 0 },
	{ "client_encoding", "UTF8", 0 },
	{ "lc_monetary", "C", 0 },          /* money columns print the same everywhere */
	{ "row_security", "off", 0 },
	{ "statement_timeout", "0", 0 },
	{ "lock_timeout", "0", 0 },
	{ "idle_in_transaction_session_timeout", "0", 90600 },
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A libpq or server message as one printable line: runs of white space
 * (newlines and tabs included) become one space. */
static void one_line(char *out, size_t size, const char *in)
{
	char tmp[ALERR_MESSAGE_MAX];
	size_t o = 0;
	int space = 0;

	for (; in && *in && o + 2 < sizeof(tmp); in++) {
		char ch = *in;

		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
			space = 1;
			continue;
		}
		if (space && o > 0)
			tmp[o++] = ' ';
		space = 0;
		tmp[o++] = ch;
	}
	tmp[o] = '\0';
	log_sanitize(out, size, tmp, o);
}

static int nomem(struct alerr *e)
{
	return alerr_set(e, ALERR_OSERR, -ENOMEM, "db.nomem", "out of memory");
}

/* The connection failed under us: lost, or the socket broke. */
static int conn_lost(struct pg_conn *c, struct alerr *e)
{
	char msg[ALERR_MESSAGE_MAX];

	one_line(msg, sizeof(msg), PQerrorMessage(c->conn));
	c->broken = 1;
	c->in_copy_in = 0;
	return alerr_set(e, ALERR_UNAVAILABLE, -ECONNRESET, "db.unavailable",
	                 "connection to the database lost: %s",
	                 msg[0] ? msg : "no reason given");
}

static int conn_usable(struct pg_conn *c, struct alerr *e)
{
	if (!c || !c->conn)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "db.state",
		                 "no database connection");
	if (c->broken || PQstatus(c->conn) != CONNECTION_OK) {
		c->broken = 1;
		return alerr_set(e, ALERR_UNAVAILABLE, -ENOTCONN, "db.unavailable",
		                 "the database connection is no longer usable");
	}
	return 0;
}

static int timeout_error(struct pg_conn *c, struct alerr *e)
{
	return alerr_set(e, ALERR_TEMPFAIL, -ETIMEDOUT, "db.timeout",
	                 "the database did not answer within %u ms, nor to the "
	                 "cancel request", c->timeout_ms);
}

/* Map an error result to a class and reason; the message carries the
 * SQLSTATE. cancelled: we sent a cancel because our timeout passed. */
static int result_error(struct pg_conn *c, const PGresult *res, int cancelled,
                        struct alerr *e)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char msg[ALERR_MESSAGE_MAX];

	one_line(msg, sizeof(msg), primary ? primary : PQresultErrorMessage(res));
	if (!state || strlen(state) != 5) {
		/* libpq's own error: the connection went away */
		c->sqlstate[0] = '\0';
		c->broken = 1;
		return alerr_set(e, ALERR_UNAVAILABLE, -ECONNRESET, "db.unavailable",
		                 "connection to the database lost: %s",
		                 msg[0] ? msg : "no reason given");
	}
	memcpy(c->sqlstate, state, 6);
	if (PQstatus(c->conn) != CONNECTION_OK)
		c->broken = 1;
	if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)
		return alerr_set(e, ALERR_UNAVAILABLE, -ECONNRESET, "db.unavailable",
		                 "database unavailable: SQLSTATE %s: %s", state, msg);
	if (strcmp(state, "55P03") == 0)
		return alerr_set(e, ALERR_TEMPFAIL, -EAGAIN, "db.lock_timeout",
		                 "SQLSTATE %s: %s", state, msg);
	if (strcmp(state, "57014") == 0) {
		if (cancelled)
			return alerr_set(e, ALERR_TEMPFAIL, -ETIMEDOUT, "db.timeout",
			                 "statement cancelled: no answer within %u ms "
			                 "(SQLSTATE %s)", c->timeout_ms, state);
		return alerr_set(e, ALERR_TEMPFAIL, -ETIMEDOUT, "db.timeout",
		                 "SQLSTATE %s: %s", state, msg);
	}
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
		return alerr_set(e, ALERR_TEMPFAIL, -EAGAIN, "db.conflict",
		                 "SQLSTATE %s: %s", state, msg);
	/* disk full, out of memory, too many connections: try again later */
	if (strncmp(state, "53", 2) == 0)
		return alerr_set(e, ALERR_TEMPFAIL, strcmp(state, "53100") == 0 ? -ENOSPC :
		                 -EAGAIN, "db.resources", "the database server is out of "
		                 "resources: SQLSTATE %s: %s", state, msg);
	if (strcmp(state, "42501") == 0)
		return alerr_set(e, ALERR_CONFIG, -EACCES, "db.permission",
		                 "SQLSTATE %s: %s", state, msg);
	return alerr_set(e, ALERR_SOFTWARE, -EIO, "db.query", "SQLSTATE %s: %s",
	                 state, msg);
}

/* Wait until the socket is readable (or writable, with want_write) or
 * the deadline passes: 1 ready, 0 timed out, -errno. */
static int conn_wait(struct pg_conn *c, int want_write, int64_t deadline)
{
	int fd = PQsocket(c->conn);

	if (fd < 0)
		return -EBADF;
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p;
		int n;

		if (left <= 0)
			return 0;
		if (left > INT_MAX)
			left = INT_MAX;
		p.fd = fd;
		p.events = (short)(POLLIN | (want_write ? POLLOUT : 0));
		p.revents = 0;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static void conn_cancel(struct pg_conn *c)
{
	char buf[256];

	if (c->cancel)
		(void)PQcancel(c->cancel, buf, sizeof(buf));
}

static int64_t deadline_in(unsigned int ms)
{
	return now_ms() + (int64_t)ms;
}

/* Send what libpq has queued (nonblocking mode). */
static int conn_flush(struct pg_conn *c, int64_t deadline, struct alerr *e)
{
	for (;;) {
		int f = PQflush(c->conn), w;

		if (f == 0)
			return 0;
		if (f < 0)
			return conn_lost(c, e);
		w = conn_wait(c, 1, deadline);
		if (w < 0)
			return conn_lost(c, e);
		if (w == 0) {
			/* half a message sent: the protocol state is unknown */
			c->broken = 1;
			return alerr_set(e, ALERR_TEMPFAIL, -ETIMEDOUT, "db.timeout",
			                 "could not send to the database within %u ms",
			                 c->timeout_ms);
		}
		if (!PQconsumeInput(c->conn))
			return conn_lost(c, e);
	}
}

/* Read input until a result can be taken without blocking. When the
 * deadline passes, cancel once and allow PG_CANCEL_GRACE_MS more. */
static int conn_await(struct pg_conn *c, int64_t *deadline, int *cancelled,
                      struct alerr *e)
{
	while (PQisBusy(c->conn)) {
		int w = conn_wait(c, 0, *deadline);

		if (w < 0)
			return conn_lost(c, e);
		if (w == 0) {
			if (*cancelled) {
				c->broken = 1;
				return timeout_error(c, e);
			}
			conn_cancel(c);
			*cancelled = 1;
			*deadline = deadline_in(PG_CANCEL_GRACE_MS);
			continue;
		}
		if (!PQconsumeInput(c->conn))
			return conn_lost(c, e);
	}
	return 0;
}

/* Read and drop COPY data until the COPY ends (-1) or fails (-2). */
static int copy_discard(struct pg_conn *c, int64_t *deadline, int *cancelled,
                        struct alerr *e)
{
	for (;;) {
		char *buf = NULL;
		int n = PQgetCopyData(c->conn, &buf, 1), w;

		if (n > 0) {
			PQfreemem(buf);
			continue;
		}
		if (n == -1)
			return 0;
		if (n < -1)
			return conn_lost(c, e);
		w = conn_wait(c, 0, *deadline);
		if (w < 0)
			return conn_lost(c, e);
		if (w == 0) {
			if (*cancelled) {
				c->broken = 1;
				return timeout_error(c, e);
			}
			conn_cancel(c);
			*cancelled = 1;
			*deadline = deadline_in(PG_CANCEL_GRACE_MS);
			continue;
		}
		if (!PQconsumeInput(c->conn))
			return conn_lost(c, e);
	}
}

/* End a COPY FROM STDIN with CopyFail (reason) or CopyDone (NULL). */
static int copy_in_finish(struct pg_conn *c, const char *reason, int64_t deadline,
                          struct alerr *e)
{
	for (;;) {
		int rc = PQputCopyEnd(c->conn, reason), w;

		if (rc == 1)
			break;
		if (rc < 0)
			return conn_lost(c, e);
		w = conn_wait(c, 1, deadline);
		if (w < 0)
			return conn_lost(c, e);
		if (w == 0) {
			c->broken = 1;
			return timeout_error(c, e);
		}
		if (!PQconsumeInput(c->conn) || PQflush(c->conn) < 0)
			return conn_lost(c, e);
	}
	c->in_copy_in = 0;
	return conn_flush(c, deadline, e);
}

static int is_error_result(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
	       st == PGRES_NONFATAL_ERROR;
}

/* Drain every result of the command in flight. *out gets the first error
 * result, else the last one (NULL when there was none). A COPY the
 * caller did not expect is ended and reported as "db.state". */
static int conn_results(struct pg_conn *c, int64_t *deadline, int *cancelled,
                        PGresult **out, struct alerr *e)
{
	PGresult *keep = NULL, *res;
	int r, bad = 0;

	*out = NULL;
	for (;;) {
		ExecStatusType st;

		r = conn_await(c, deadline, cancelled, e);
		if (r < 0)
			goto fail;
		res = PQgetResult(c->conn);
		if (!res)
			break;
		st = PQresultStatus(res);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
			PQclear(res);
			bad = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
			                "unexpected COPY in a plain statement");
			if (st == PGRES_COPY_IN)
				r = copy_in_finish(c, "airlock: unexpected COPY", *deadline, e);
			else if (st == PGRES_COPY_OUT) {
				/* cancel rather than read a whole table */
				if (!*cancelled) {
					conn_cancel(c);
					*cancelled = 1;
					*deadline = deadline_in(PG_CANCEL_GRACE_MS);
				}
				r = copy_discard(c, deadline, cancelled, e);
			}
			else
				r = conn_lost(c, e);
			if (r < 0)
				goto fail;
			continue;
		}
		if (!keep) {
			keep = res;
		} else if (is_error_result(res) && !is_error_result(keep)) {
			PQclear(keep);
			keep = res;
		} else {
			PQclear(res);
		}
	}
	if (bad < 0) {
		r = bad;
		goto fail;
	}
	*out = keep;
	return 0;
fail:
	PQclear(keep);
	return r;
}

/* Send one statement with text parameters. */
static int conn_send(struct pg_conn *c, const char *sql, int nparams,
                     const char *const *params, int64_t *deadline, struct alerr *e)
{
	char msg[ALERR_MESSAGE_MAX];
	int r = conn_usable(c, e);

	if (r < 0)
		return r;
	if (c->in_copy_in)
		return alerr_set(e, ALERR_SOFTWARE, -EBUSY, "db.state",
		                 "a COPY FROM STDIN is in progress");
	if (nparams < 0 || (nparams > 0 && !params))
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "db.state",
		                 "bad parameter list");
	c->sqlstate[0] = '\0';
	if (!PQsendQueryParams(c->conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
		if (PQstatus(c->conn) != CONNECTION_OK)
			return conn_lost(c, e);
		one_line(msg, sizeof(msg), PQerrorMessage(c->conn));
		return alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
		                 "cannot send the statement: %s", msg);
	}
	*deadline = deadline_in(c->timeout_ms);
	return conn_flush(c, *deadline, e);
}

static int run(struct pg_conn *c, const char *sql, int nparams,
               const char *const *params, PGresult **out, struct alerr *e)
{
	int64_t deadline;
	int cancelled = 0, r;
	PGresult *res;
	ExecStatusType st;

	*out = NULL;
	r = conn_send(c, sql, nparams, params, &deadline, e);
	if (r < 0)
		return r;
	r = conn_results(c, &deadline, &cancelled, &res, e);
	if (r < 0)
		return r;
	if (!res)
		return alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
		                 "no result for the statement");
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		*out = res;
		return 0;
	}
	if (st == PGRES_EMPTY_QUERY)
		r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "db.state", "empty statement");
	else
		r = result_error(c, res, cancelled, e);
	PQclear(res);
	return r;
}

static int pin_settings(struct pg_conn *c, struct alerr *e)
{
	size_t i;
	int r;

	for (i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
		const char *params[2] = { pinned[i].name, pinned[i].value };
		struct pg_result *res;
		const char *got;

		if (c->server_version < pinned[i].min_version)
			continue;
		/* set_config returns the value now in force */
		r = pg_query(c, "SELECT pg_catalog.set_config($1, $2, false)", 2,
		             params, 1, &res, e);
		if (r < 0)
			return r;
		got = pg_result_ntuples(res) == 1 ? pg_result_get(res, 0, 0) : "";
		if (strcmp(got, pinned[i].value) != 0) {
			char shown[128];

			log_sanitize(shown, sizeof(shown), got, strlen(got));
			r = alerr_set(e, ALERR_CONFIG, -EINVAL, "db.settings",
			              "the database kept %s = '%s' instead of '%s'",
			              pinned[i].name, shown, pinned[i].value);
			pg_result_free(res);
			return r;
		}
		pg_result_free(res);
	}
	return 0;
}

/* libpq takes a string as a conninfo (rather than a database name) when
 * it has a URI prefix or an '='. */
static int is_conninfo(const char *s)
{
	return strchr(s, '=') || strncmp(s, "postgresql://", 13) == 0 ||
	       strncmp(s, "postgres://", 11) == 0;
}

/* Server NOTICEs ("... already exists, skipping", the list a DROP
 * CASCADE prints) are for debugging, not for the operator's terminal. */
static void notice_to_log(void *arg, const PGresult *res)
{
	char msg[512];

	(void)arg;
	one_line(msg, sizeof(msg), PQresultErrorMessage(res));
	log_dbg("server: %s", msg);
}

int pg_connect(const char *conninfo, struct pg_conn **out, struct alerr *e)
{
	static const char *const keys[] = {
		"connect_timeout", "application_name", "dbname", NULL
	};
	char timeout[16], msg[ALERR_MESSAGE_MAX];
	const char *vals[4];
	struct pg_conn *c;
	int r;

	*out = NULL;
	if (conninfo && is_conninfo(conninfo)) {
		char *err = NULL;
		PQconninfoOption *opts = PQconninfoParse(conninfo, &err);

		if (!opts) {
			if (!err)
				return nomem(e);
			one_line(msg, sizeof(msg), err);
			PQfreemem(err);
			return alerr_set(e, ALERR_USAGE, -EINVAL, "db.conninfo",
			                 "bad connection string: %s", msg);
		}
		PQconninfoFree(opts);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return nomem(e);
	c->timeout_ms = PG_DEFAULT_TIMEOUT_MS;
	/* entries before dbname are defaults that the conninfo overrides */
	snprintf(timeout, sizeof(timeout), "%u", PG_CONNECT_TIMEOUT_S);
	vals[0] = timeout;
	vals[1] = PG_APPLICATION_NAME;
	vals[2] = conninfo ? conninfo : "";
	vals[3] = NULL;
	c->conn = PQconnectdbParams(keys, vals, 1);
	if (!c->conn) {
		free(c);
		return nomem(e);
	}
	if (PQstatus(c->conn) != CONNECTION_OK) {
		one_line(msg, sizeof(msg), PQerrorMessage(c->conn));
		r = alerr_set(e, ALERR_UNAVAILABLE, -ECONNREFUSED, "db.unavailable",
		              "cannot connect to the database: %s",
		              msg[0] ? msg : "no reason given");
		goto fail;
	}
	PQsetNoticeReceiver(c->conn, notice_to_log, NULL);
	if (PQsetnonblocking(c->conn, 1) != 0) {
		r = conn_lost(c, e);
		goto fail;
	}
	c->server_version = (uint32_t)PQserverVersion(c->conn);
	c->cancel = PQgetCancel(c->conn);
	if (!c->cancel) {
		r = nomem(e);
		goto fail;
	}
	r = pin_settings(c, e);
	if (r < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	pg_close(c);
	return r;
}

void pg_close(struct pg_conn *c)
{
	if (!c)
		return;
	if (c->cancel)
		PQfreeCancel(c->cancel);
	if (c->conn)
		PQfinish(c->conn);
	free(c);
}

void pg_cancel(struct pg_conn *c)
{
	if (c)
		conn_cancel(c);
}

void pg_set_timeout(struct pg_conn *c, unsigned int timeout_ms)
{
	c->timeout_ms = timeout_ms ? timeout_ms : PG_DEFAULT_TIMEOUT_MS;
}

uint32_t pg_server_version(const struct pg_conn *c)
{
	return c->server_version;
}

const char *pg_last_sqlstate(const struct pg_conn *c)
{
	return c->sqlstate;
}

uint64_t pg_last_copy_rows(const struct pg_conn *c)
{
	return c->copy_rows;
}

int pg_threadsafe(void)
{
	return PQisthreadsafe();
}

static int quote(struct pg_conn *c, const char *s, int ident, char **out,
                 struct alerr *e)
{
	char msg[ALERR_MESSAGE_MAX];
	char *q;
	int r;

	*out = NULL;
	r = conn_usable(c, e);
	if (r < 0)
		return r;
	q = ident ? PQescapeIdentifier(c->conn, s, strlen(s))
	          : PQescapeLiteral(c->conn, s, strlen(s));
	if (!q) {
		one_line(msg, sizeof(msg), PQerrorMessage(c->conn));
		return alerr_set(e, ALERR_USAGE, -EINVAL, "db.quote",
		                 "cannot quote %s: %s", ident ? "an identifier" : "a literal",
		                 msg);
	}
	*out = strdup(q);
	PQfreemem(q);
	return *out ? 0 : nomem(e);
}

int pg_quote_ident(struct pg_conn *c, const char *s, char **out, struct alerr *e)
{
	return quote(c, s, 1, out, e);
}

int pg_quote_literal(struct pg_conn *c, const char *s, char **out, struct alerr *e)
{
	return quote(c, s, 0, out, e);
}

int pg_exec(struct pg_conn *c, const char *sql, int nparams,
            const char *const *params, struct alerr *e)
{
	PGresult *res;
	int r = run(c, sql, nparams, params, &res, e);

	PQclear(res);
	return r;
}

int pg_query(struct pg_conn *c, const char *sql, int nparams,
             const char *const *params, int ncols, struct pg_result **out,
             struct alerr *e)
{
	PGresult *res;
	int r;

	*out = NULL;
	r = run(c, sql, nparams, params, &res, e);
	if (r < 0)
		return r;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != ncols) {
		r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.result_shape",
		              "expected rows of %d columns, got %d", ncols,
		              PQresultStatus(res) == PGRES_TUPLES_OK ? PQnfields(res) : 0);
		PQclear(res);
		return r;
	}
	*out = malloc(sizeof(**out));
	if (!*out) {
		PQclear(res);
		return nomem(e);
	}
	(*out)->res = res;
	return 0;
}

size_t pg_result_ntuples(const struct pg_result *r)
{
	int n = PQntuples(r->res);

	return n > 0 ? (size_t)n : 0;
}

int pg_result_nfields(const struct pg_result *r)
{
	return PQnfields(r->res);
}

const char *pg_result_get(const struct pg_result *r, size_t row, int col)
{
	if (row >= pg_result_ntuples(r) || col < 0 || col >= PQnfields(r->res))
		return "";
	return PQgetvalue(r->res, (int)row, col);
}

int pg_result_isnull(const struct pg_result *r, size_t row, int col)
{
	if (row >= pg_result_ntuples(r) || col < 0 || col >= PQnfields(r->res))
		return 1;
	return PQgetisnull(r->res, (int)row, col);
}

void pg_result_free(struct pg_result *r)
{
	if (!r)
		return;
	PQclear(r->res);
	free(r);
}

/* The row count of a COPY's command status ("COPY 42"). */
static int cmd_rows(struct pg_conn *c, PGresult *res, struct alerr *e)
{
	const char *t = PQcmdTuples(res);
	uint64_t n;

	if (text_parse_u64(t, strlen(t), INT64_MAX, &n) < 0)
		return alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
		                 "COPY returned no row count");
	c->copy_rows = n;
	return 0;
}

/* The first result of a COPY statement: want is PGRES_COPY_OUT or
 * PGRES_COPY_IN. Anything else is drained and reported. */
static int copy_start(struct pg_conn *c, const char *sql, ExecStatusType want,
                      int64_t *deadline, int *cancelled, struct alerr *e)
{
	PGresult *res, *rest;
	ExecStatusType st;
	int r;

	c->copy_rows = 0;
	r = conn_send(c, sql, 0, NULL, deadline, e);
	if (r < 0)
		return r;
	r = conn_await(c, deadline, cancelled, e);
	if (r < 0)
		return r;
	res = PQgetResult(c->conn);
	if (!res)
		return alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
		                 "no result for the COPY statement");
	st = PQresultStatus(res);
	if (st == want) {
		PQclear(res);
		return 0;
	}
	if (is_error_result(res))
		r = result_error(c, res, *cancelled, e);
	else
		r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
		              "not a COPY %s statement",
		              want == PGRES_COPY_OUT ? "TO STDOUT" : "FROM STDIN");
	PQclear(res);
	/* a COPY of the other direction is still in flight: conn_results
	 * ends it */
	if (conn_results(c, deadline, cancelled, &rest, e) == 0)
		PQclear(rest);
	return r;
}

int pg_copy_out(struct pg_conn *c, const char *sql,
                int (*cb)(void *ctx, const void *buf, size_t len, struct alerr *e),
                void *ctx, struct alerr *e)
{
	int64_t deadline;
	int cancelled = 0, failed = 0, r;
	PGresult *res;

	if (!cb)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "db.state",
		                 "pg_copy_out without a callback");
	r = copy_start(c, sql, PGRES_COPY_OUT, &deadline, &cancelled, e);
	if (r < 0)
		return r;
	for (;;) {
		char *buf = NULL;
		int n = PQgetCopyData(c->conn, &buf, 1), w;

		if (n > 0) {
			if (!failed) {
				r = cb(ctx, buf, (size_t)n, e);
				if (r < 0) {
					failed = r;
					conn_cancel(c);
					cancelled = 1;
					deadline = deadline_in(PG_CANCEL_GRACE_MS);
				} else {
					deadline = deadline_in(c->timeout_ms);
				}
			}
			PQfreemem(buf);
			continue;
		}
		if (n == -1)
			break;
		if (n < -1) {
			r = conn_lost(c, e);
			return failed ? failed : r;
		}
		w = conn_wait(c, 0, deadline);
		if (w < 0) {
			r = conn_lost(c, e);
			return failed ? failed : r;
		}
		if (w == 0) {
			if (cancelled) {
				c->broken = 1;
				r = timeout_error(c, e);
				return failed ? failed : r;
			}
			conn_cancel(c);
			cancelled = 1;
			deadline = deadline_in(PG_CANCEL_GRACE_MS);
			continue;
		}
		if (!PQconsumeInput(c->conn)) {
			r = conn_lost(c, e);
			return failed ? failed : r;
		}
	}
	r = conn_results(c, &deadline, &cancelled, &res, e);
	if (r < 0)
		return failed ? failed : r;
	if (failed) {
		PQclear(res);
		return failed;
	}
	if (!res)
		r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
		              "no result after the COPY data");
	else if (PQresultStatus(res) != PGRES_COMMAND_OK)
		r = result_error(c, res, cancelled, e);
	else
		r = cmd_rows(c, res, e);
	PQclear(res);
	return r;
}

int pg_copy_in_begin(struct pg_conn *c, const char *sql, struct alerr *e)
{
	int64_t deadline;
	int cancelled = 0, r;

	r = copy_start(c, sql, PGRES_COPY_IN, &deadline, &cancelled, e);
	if (r < 0)
		return r;
	c->in_copy_in = 1;
	return 0;
}

/* PQputCopyData refused: the server ended the COPY with an error (it
 * arrived while we were sending), or the connection broke. */
static int copy_in_failed(struct pg_conn *c, int64_t deadline, struct alerr *e)
{
	PGresult *res;
	int cancelled = 0, r;

	c->in_copy_in = 0;
	if (PQstatus(c->conn) != CONNECTION_OK)
		return conn_lost(c, e);
	r = conn_results(c, &deadline, &cancelled, &res, e);
	if (r < 0)
		return r;
	if (res && is_error_result(res))
		r = result_error(c, res, 0, e);
	else
		r = conn_lost(c, e);
	PQclear(res);
	return r;
}

int pg_copy_in_put(struct pg_conn *c, const void *buf, size_t len, struct alerr *e)
{
	const char *p = buf;
	int64_t deadline;
	int r = conn_usable(c, e);

	if (r < 0)
		return r;
	if (!c->in_copy_in)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "db.state",
		                 "no COPY FROM STDIN in progress");
	deadline = deadline_in(c->timeout_ms);
	while (len > 0) {
		size_t chunk = len > (size_t)INT_MAX / 2 ? (size_t)INT_MAX / 2 : len;

		for (;;) {
			int rc = PQputCopyData(c->conn, p, (int)chunk), w;

			if (rc == 1)
				break;
			if (rc < 0)
				return copy_in_failed(c, deadline, e);
			w = conn_wait(c, 1, deadline);
			if (w < 0)
				return conn_lost(c, e);
			if (w == 0) {
				c->broken = 1;
				return timeout_error(c, e);
			}
			if (!PQconsumeInput(c->conn) || PQflush(c->conn) < 0)
				return conn_lost(c, e);
		}
		p += chunk;
		len -= chunk;
	}
	/* In nonblocking mode libpq queues whatever it cannot send yet, and
	 * its buffer grows without bound when the server is slower than we
	 * are: wait until the data is on the wire, so that memory stays at
	 * one buffer (the socket's own buffer keeps the server busy). */
	return conn_flush(c, deadline, e);
}

int pg_copy_in_end(struct pg_conn *c, const char *abort_reason, uint64_t *rows,
                   struct alerr *e)
{
	int64_t deadline;
	int cancelled = 0, r;
	PGresult *res;

	if (rows)
		*rows = 0;
	r = conn_usable(c, e);
	if (r < 0)
		return r;
	if (!c->in_copy_in)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "db.state",
		                 "no COPY FROM STDIN in progress");
	deadline = deadline_in(c->timeout_ms);
	r = copy_in_finish(c, abort_reason, deadline, e);
	if (r < 0)
		return r;
	r = conn_results(c, &deadline, &cancelled, &res, e);
	if (r < 0)
		return r;
	if (!res) {
		r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
		              "no result after the COPY data");
	} else if (abort_reason) {
		/* the server confirms the abort with an error (57014) */
		if (is_error_result(res)) {
			const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", st ? st : "");
			r = 0;
		} else {
			r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
			              "the COPY was not aborted");
		}
	} else if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = result_error(c, res, cancelled, e);
	} else {
		r = cmd_rows(c, res, e);
		if (r == 0 && rows)
			*rows = c->copy_rows;
	}
	PQclear(res);
	return r;
}

static int snapshot_id_ok(const char *s)
{
	size_t i, n = strnlen(s, PG_SNAPSHOT_MAX + 1);

	if (n == 0 || n > PG_SNAPSHOT_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F') ||
		      s[i] == '-'))
			return 0;
	return 1;
}

static void rollback_quietly(struct pg_conn *c)
{
	struct alerr ignored;

	alerr_clear(&ignored);
	if (!c->broken)
		(void)pg_exec(c, "ROLLBACK", 0, NULL, &ignored);
}

int pg_begin_snapshot_export(struct pg_conn *c, char *snapshot, size_t size,
                             struct alerr *e)
{
	struct pg_result *res = NULL;
	const char *id;
	int r;

	if (size > 0)
		snapshot[0] = '\0';
	if (size <= PG_SNAPSHOT_MAX)
		return alerr_set(e, ALERR_SOFTWARE, -ENOSPC, "db.state",
		                 "snapshot buffer too small");
	r = pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, e);
	if (r < 0)
		return r;
	r = pg_query(c, "SELECT pg_catalog.pg_export_snapshot()", 0, NULL, 1, &res, e);
	if (r < 0)
		goto fail;
	id = pg_result_get(res, 0, 0);
	if (pg_result_ntuples(res) != 1 || !snapshot_id_ok(id)) {
		r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.state",
		              "pg_export_snapshot() returned no usable id");
		goto fail;
	}
	memcpy(snapshot, id, strlen(id) + 1);
	pg_result_free(res);
	return 0;
fail:
	pg_result_free(res);
	rollback_quietly(c);
	return r;
}

int pg_begin_snapshot_import(struct pg_conn *c, const char *snapshot,
                             struct alerr *e)
{
	char *lit = NULL, *sql = NULL;
	size_t n;
	int r;

	if (!snapshot || !snapshot_id_ok(snapshot))
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "db.state",
		                 "not a snapshot id");
	r = pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, e);
	if (r < 0)
		return r;
	/* SET TRANSACTION SNAPSHOT takes no parameter: a quoted literal */
	r = pg_quote_literal(c, snapshot, &lit, e);
	if (r < 0)
		goto out;
	n = strlen(lit) + sizeof("SET TRANSACTION SNAPSHOT ");
	sql = malloc(n);
	if (!sql) {
		r = nomem(e);
		goto out;
	}
	snprintf(sql, n, "SET TRANSACTION SNAPSHOT %s", lit);
	r = pg_exec(c, sql, 0, NULL, e);
out:
	if (r < 0)
		rollback_quietly(c);
	free(sql);
	free(lit);
	return r;
}
