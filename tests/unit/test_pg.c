/* The libpq wrapper against a real PostgreSQL cluster (one per binary):
 * pinned settings, parameters, error classes, timeouts and cancellation,
 * COPY both ways, snapshots, a lost connection. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alerr.h"
#include "harness.h"
#include "harness_pg.h"
#include "pg.h"

#define CLUSTER "pgunit"

static struct harness_pg runner_pg;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (harness_pg_start(&runner_pg, CLUSTER) != 0)
		fprintf(stderr, "test-pg: the shared cluster did not start\n");
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	harness_pg_stop(&runner_pg);
}

static struct harness_pg pg;
static struct alerr err;

static void setup(void)
{
	cr_assert_eq(harness_pg_shared(&pg, CLUSTER), 0, "shared cluster");
	alerr_clear(&err);
}

static void teardown(void)
{
	harness_pg_stop(&pg);
}

TestSuite(pg, .init = setup, .fini = teardown);

static struct pg_conn *connect_ok(void)
{
	struct pg_conn *c = NULL;
	int r = pg_connect(pg.conninfo, &c, &err);

	cr_assert_eq(r, 0, "pg_connect: %s [%s]", err.message, err.reason);
	cr_assert_not_null(c);
	return c;
}

/* The single value of a one-row, one-column query. */
static char *value(struct pg_conn *c, const char *sql)
{
	struct pg_result *res;
	struct alerr e;
	char *v;
	int r;

	alerr_clear(&e);
	r = pg_query(c, sql, 0, NULL, 1, &res, &e);
	cr_assert_eq(r, 0, "%s: %s", sql, e.message);
	cr_assert_eq(pg_result_ntuples(res), 1);
	v = strdup(pg_result_get(res, 0, 0));
	pg_result_free(res);
	return v;
}

static void assert_value(struct pg_conn *c, const char *sql, const char *want)
{
	char *v = value(c, sql);

	cr_assert_str_eq(v, want, "%s", sql);
	free(v);
}

static void assert_usable(struct pg_conn *c)
{
	assert_value(c, "SELECT 40 + 2", "42");
}

static void assert_err(int r, enum alerr_class cls, const char *reason)
{
	cr_assert_lt(r, 0);
	cr_assert_eq(err.cls, cls, "class %d, want %d: %s [%s]", err.cls, cls,
	             err.message, err.reason);
	cr_assert_str_eq(err.reason, reason, "%s", err.message);
	cr_assert_null(strchr(err.message, '\n'), "one line: %s", err.message);
}

struct sink {
	char *buf;
	size_t len;
	size_t calls;
	size_t fail_after;      /* fail on this call (0: never) */
};

static int sink_cb(void *ctx, const void *buf, size_t len, struct alerr *e)
{
	struct sink *s = ctx;

	s->calls++;
	if (s->fail_after && s->calls == s->fail_after)
		return alerr_set(e, ALERR_IOERR, -EIO, "test.sink_full", "sink full");
	s->buf = realloc(s->buf, s->len + len + 1);
	cr_assert_not_null(s->buf);
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return 0;
}

Test(pg, settings_pinned)
{
	struct pg_conn *c = connect_ok();

	assert_value(c, "SELECT current_setting('DateStyle')", "ISO, YMD");
	assert_value(c, "SELECT current_setting('IntervalStyle')", "postgres");
	assert_value(c, "SELECT current_setting('extra_float_digits')", "3");
	assert_value(c, "SELECT current_setting('bytea_output')", "hex");
	assert_value(c, "SELECT current_setting('TimeZone')", "UTC");
	assert_value(c, "SELECT current_setting('client_encoding')", "UTF8");
	assert_value(c, "SELECT current_setting('row_security')", "off");
	assert_value(c, "SELECT current_setting('statement_timeout')", "0");
	assert_value(c, "SELECT current_setting('application_name')", "airlock");
	/* and they shape the text as the format says */
	assert_value(c, "SELECT '2024-03-01 12:00:00+02'::timestamptz::text",
	             "2024-03-01 10:00:00+00");
	assert_value(c, "SELECT '\\x00ff'::bytea::text", "\\x00ff");
	/* shortest exact (12 and later) or 17 digits: both read back exactly */
	assert_value(c, "SELECT 0.1::float8::text::float8 = 0.1::float8", "t");
	pg_close(c);
}

Test(pg, conninfo_may_override_application_name)
{
	char *ci = harness_strdup_printf("%s application_name=mine", pg.conninfo);
	struct pg_conn *c = NULL;

	cr_assert_eq(pg_connect(ci, &c, &err), 0, "%s", err.message);
	assert_value(c, "SELECT current_setting('application_name')", "mine");
	pg_close(c);
	free(ci);
}

Test(pg, uri_accepted)
{
	char *uri = harness_strdup_printf("postgresql:///%s?host=%s&port=%d&user=%s",
	                                  pg.dbname, pg.socket_dir, pg.port, pg.user);
	struct pg_conn *c = NULL;

	cr_assert_eq(pg_connect(uri, &c, &err), 0, "%s", err.message);
	assert_usable(c);
	pg_close(c);
	free(uri);
}

Test(pg, server_version)
{
	struct pg_conn *c = connect_ok();
	char *v = value(c, "SELECT current_setting('server_version_num')");
	char want[16];

	snprintf(want, sizeof(want), "%u", pg_server_version(c));
	cr_assert_str_eq(v, want);
	cr_assert_geq(pg_server_version(c), 100000u);
	free(v);
	pg_close(c);
}

Test(pg, unreachable_server_is_unavailable)
{
	char *ci = harness_strdup_printf("host=%s port=1 user=nobody dbname=none",
	                                 harness_scratch());
	struct pg_conn *c = NULL;
	int r = pg_connect(ci, &c, &err);

	assert_err(r, ALERR_UNAVAILABLE, "db.unavailable");
	cr_assert_null(c);
	cr_assert_eq(alerr_exit_code(err.cls), 69);
	cr_assert_not_null(strstr(err.message, "cannot connect to the database"),
	                   "%s", err.message);
	free(ci);
}

Test(pg, bad_conninfo_is_usage)
{
	struct pg_conn *c = NULL;

	assert_err(pg_connect("host=/tmp frobnicate=1", &c, &err), ALERR_USAGE,
	           "db.conninfo");
	cr_assert_not_null(strstr(err.message, "frobnicate"), "%s", err.message);
	cr_assert_null(c);
}

Test(pg, parameters_and_nulls)
{
	struct pg_conn *c = connect_ok();
	const char *params[3] = { "41", NULL, "it's; DROP TABLE x" };
	struct pg_result *res;

	cr_assert_eq(pg_query(c, "SELECT $1::int + 1, $2::text, $3::text", 3, params,
	                      3, &res, &err), 0, "%s", err.message);
	cr_assert_eq(pg_result_ntuples(res), 1);
	cr_assert_eq(pg_result_nfields(res), 3);
	cr_assert_str_eq(pg_result_get(res, 0, 0), "42");
	cr_assert(pg_result_isnull(res, 0, 1));
	cr_assert_not(pg_result_isnull(res, 0, 0));
	cr_assert_str_eq(pg_result_get(res, 0, 1), "");
	cr_assert_str_eq(pg_result_get(res, 0, 2), "it's; DROP TABLE x");
	/* out of range is "" and NULL, never a crash */
	cr_assert_str_eq(pg_result_get(res, 5, 0), "");
	cr_assert(pg_result_isnull(res, 0, 7));
	pg_result_free(res);
	pg_close(c);
}

Test(pg, column_count_checked)
{
	struct pg_conn *c = connect_ok();
	struct pg_result *res = NULL;

	assert_err(pg_query(c, "SELECT 1", 0, NULL, 2, &res, &err), ALERR_SOFTWARE,
	           "db.result_shape");
	cr_assert_null(res);
	alerr_clear(&err);
	/* a command has no rows at all */
	assert_err(pg_query(c, "SET search_path = public", 0, NULL, 0, &res, &err),
	           ALERR_SOFTWARE, "db.result_shape");
	assert_usable(c);
	pg_close(c);
}

Test(pg, sql_error_carries_sqlstate)
{
	struct pg_conn *c = connect_ok();

	assert_err(pg_exec(c, "SELECT * FROM no_such_table", 0, NULL, &err),
	           ALERR_SOFTWARE, "db.query");
	cr_assert_not_null(strstr(err.message, "SQLSTATE 42P01"), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "no_such_table"), "%s", err.message);
	cr_assert_str_eq(pg_last_sqlstate(c), "42P01");
	assert_usable(c);
	cr_assert_str_eq(pg_last_sqlstate(c), "");
	pg_close(c);
}

Test(pg, one_statement_per_call)
{
	struct pg_conn *c = connect_ok();

	assert_err(pg_exec(c, "SELECT 1; SELECT 2", 0, NULL, &err), ALERR_SOFTWARE,
	           "db.query");
	cr_assert_str_eq(pg_last_sqlstate(c), "42601");
	assert_usable(c);
	pg_close(c);
}

Test(pg, permission_denied_is_config)
{
	struct pg_conn *c = connect_ok();
	char *sql = harness_strdup_printf("CREATE ROLE nopriv_%d", (int)getpid());

	cr_assert_eq(pg_exec(c, sql, 0, NULL, &err), 0, "%s", err.message);
	free(sql);
	sql = harness_strdup_printf("SET ROLE nopriv_%d", (int)getpid());
	cr_assert_eq(pg_exec(c, sql, 0, NULL, &err), 0, "%s", err.message);
	free(sql);
	assert_err(pg_exec(c, "CREATE TABLE public.nopriv_t (a int)", 0, NULL, &err),
	           ALERR_CONFIG, "db.permission");
	pg_close(c);
}

Test(pg, statement_timeout_cancels)
{
	struct pg_conn *c = connect_ok();

	pg_set_timeout(c, 300);
	assert_err(pg_exec(c, "SELECT pg_sleep(60)", 0, NULL, &err), ALERR_TEMPFAIL,
	           "db.timeout");
	cr_assert_not_null(strstr(err.message, "cancelled"), "%s", err.message);
	cr_assert_str_eq(pg_last_sqlstate(c), "57014");
	cr_assert_eq(alerr_exit_code(err.cls), 75);
	/* the cancel completed: the connection works and the statement is gone */
	pg_set_timeout(c, 0);
	assert_usable(c);
	assert_value(c, "SELECT count(*) FROM pg_stat_activity "
	             "WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'", "0");
	pg_close(c);
}

Test(pg, copy_inactivity_timeout_cancels)
{
	struct pg_conn *c = connect_ok();
	struct sink s = { 0 };

	pg_set_timeout(c, 300);
	assert_err(pg_copy_out(c, "COPY (SELECT pg_sleep(60)) TO STDOUT",
	                       sink_cb, &s, &err), ALERR_TEMPFAIL, "db.timeout");
	cr_assert_eq(s.calls, 0);
	assert_usable(c);
	pg_close(c);
}

Test(pg, server_side_cancel_is_timeout)
{
	struct pg_conn *c = connect_ok();

	cr_assert_eq(pg_exec(c, "SET statement_timeout = 100", 0, NULL, &err), 0);
	assert_err(pg_exec(c, "SELECT pg_sleep(10)", 0, NULL, &err), ALERR_TEMPFAIL,
	           "db.timeout");
	cr_assert_not_null(strstr(err.message, "SQLSTATE 57014"), "%s", err.message);
	pg_close(c);
}

Test(pg, lock_timeout_is_tempfail)
{
	struct pg_conn *holder = connect_ok(), *c = connect_ok();
	char *create = harness_strdup_printf("CREATE TABLE public.locked_%d (a int)",
	                                     (int)getpid());
	char *excl = harness_strdup_printf("LOCK TABLE public.locked_%d IN ACCESS "
	                                   "EXCLUSIVE MODE", (int)getpid());
	char *share = harness_strdup_printf("LOCK TABLE public.locked_%d IN ACCESS "
	                                    "SHARE MODE", (int)getpid());

	cr_assert_eq(pg_exec(holder, create, 0, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(pg_exec(holder, "BEGIN", 0, NULL, &err), 0);
	cr_assert_eq(pg_exec(holder, excl, 0, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(pg_exec(c, "BEGIN", 0, NULL, &err), 0);
	cr_assert_eq(pg_exec(c, "SET LOCAL lock_timeout = 200", 0, NULL, &err), 0);
	assert_err(pg_exec(c, share, 0, NULL, &err), ALERR_TEMPFAIL, "db.lock_timeout");
	cr_assert_str_eq(pg_last_sqlstate(c), "55P03");
	cr_assert_not_null(strstr(err.message, "SQLSTATE 55P03"), "%s", err.message);
	cr_assert_eq(alerr_exit_code(err.cls), 75);
	pg_close(c);
	pg_close(holder);
	free(create);
	free(excl);
	free(share);
}

Test(pg, quote_ident)
{
	struct pg_conn *c = connect_ok();
	struct pg_result *res;
	const char *names[] = { "simple", "We\"ird Name", "t\xc3\xa4" "ble", "select" };
	size_t i;
	char *q;

	cr_assert_eq(pg_quote_ident(c, "simple", &q, &err), 0);
	cr_assert_str_eq(q, "\"simple\"");
	free(q);
	cr_assert_eq(pg_quote_ident(c, "a\"b", &q, &err), 0);
	cr_assert_str_eq(q, "\"a\"\"b\"");
	free(q);
	/* each one names a column the server reads back unchanged */
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *p[1] = { names[i] };
		char *sql;

		cr_assert_eq(pg_quote_ident(c, names[i], &q, &err), 0, "%s", err.message);
		sql = harness_strdup_printf("CREATE TEMP TABLE tq%zu (%s int)", i, q);
		cr_assert_eq(pg_exec(c, sql, 0, NULL, &err), 0, "%s", err.message);
		free(sql);
		sql = harness_strdup_printf("SELECT attname = $1 FROM pg_attribute WHERE "
		                            "attrelid = 'tq%zu'::regclass AND attnum = 1", i);
		cr_assert_eq(pg_query(c, sql, 1, p, 1, &res, &err), 0, "%s", err.message);
		cr_assert_str_eq(pg_result_get(res, 0, 0), "t", "%s", names[i]);
		pg_result_free(res);
		free(sql);
		free(q);
	}
	/* invalid UTF-8 cannot be quoted */
	assert_err(pg_quote_ident(c, "bad\xff", &q, &err), ALERR_USAGE, "db.quote");
	cr_assert_null(q);
	pg_close(c);
}

Test(pg, quote_literal_round_trip)
{
	struct pg_conn *c = connect_ok();
	const char *texts[] = { "it's", "back\\slash", "new\nline", "" };
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *q, *sql, *v;

		cr_assert_eq(pg_quote_literal(c, texts[i], &q, &err), 0, "%s", err.message);
		sql = harness_strdup_printf("SELECT %s::text", q);
		v = value(c, sql);
		cr_assert_str_eq(v, texts[i]);
		free(v);
		free(sql);
		free(q);
	}
	pg_close(c);
}

Test(pg, copy_out)
{
	struct pg_conn *c = connect_ok();
	struct sink s = { 0 };
	size_t i, lines = 0;

	cr_assert_eq(pg_exec(c, "CREATE TEMP TABLE t AS SELECT g AS id, "
	                     "E'a\\tb\\\\c\\nd' AS txt, NULL::text AS n "
	                     "FROM generate_series(1, 1000) g", 0, NULL, &err), 0,
	             "%s", err.message);
	cr_assert_eq(pg_copy_out(c, "COPY t (id, txt, n) TO STDOUT", sink_cb, &s,
	                         &err), 0, "%s", err.message);
	cr_assert_eq(pg_last_copy_rows(c), 1000);
	for (i = 0; i < s.len; i++)
		lines += s.buf[i] == '\n';
	cr_assert_eq(lines, 1000);
	{
		const char want[] = "1\ta\\tb\\\\c\\nd\t\\N\n";

		cr_assert(strncmp(s.buf, want, sizeof(want) - 1) == 0, "%.40s", s.buf);
	}
	free(s.buf);
	assert_usable(c);
	pg_close(c);
}

Test(pg, copy_out_callback_failure_cancels)
{
	struct pg_conn *c = connect_ok();
	struct sink s = { .fail_after = 3 };

	assert_err(pg_copy_out(c, "COPY (SELECT g, repeat('x', 100) FROM "
	                       "generate_series(1, 5000000) g) TO STDOUT",
	                       sink_cb, &s, &err), ALERR_IOERR, "test.sink_full");
	cr_assert_eq(s.calls, 3, "no callback after the failure");
	free(s.buf);
	assert_usable(c);
	pg_close(c);
}

Test(pg, copy_out_wants_a_copy)
{
	struct pg_conn *c = connect_ok();
	struct sink s = { 0 };

	assert_err(pg_copy_out(c, "SELECT 1", sink_cb, &s, &err), ALERR_SOFTWARE,
	           "db.state");
	assert_usable(c);
	alerr_clear(&err);
	assert_err(pg_copy_out(c, "COPY (SELECT 1) TO STDOUT", NULL, NULL, &err),
	           ALERR_SOFTWARE, "db.state");
	assert_usable(c);
	alerr_clear(&err);
	assert_err(pg_copy_out(c, "COPY (SELECT 1/0) TO STDOUT", sink_cb, &s, &err),
	           ALERR_SOFTWARE, "db.query");
	cr_assert_str_eq(pg_last_sqlstate(c), "22012");
	assert_usable(c);
	cr_assert_eq(s.calls, 0);
	pg_close(c);
}

Test(pg, plain_statement_that_copies_is_drained)
{
	struct pg_conn *c = connect_ok();

	cr_assert_eq(pg_exec(c, "CREATE TEMP TABLE t (a int)", 0, NULL, &err), 0);
	assert_err(pg_exec(c, "COPY (SELECT g FROM generate_series(1, 100000) g) "
	                   "TO STDOUT", 0, NULL, &err), ALERR_SOFTWARE, "db.state");
	assert_usable(c);
	alerr_clear(&err);
	assert_err(pg_exec(c, "COPY t FROM STDIN", 0, NULL, &err), ALERR_SOFTWARE,
	           "db.state");
	assert_usable(c);
	assert_value(c, "SELECT count(*) FROM t", "0");
	pg_close(c);
}

Test(pg, copy_in)
{
	struct pg_conn *c = connect_ok();
	const char data[] = "1\ttab\\there\n2\t\\N\n3\tnon-ASCII \xc3\xa9\xe6\xbc\xa2\n";
	uint64_t rows = 0;

	cr_assert_eq(pg_exec(c, "CREATE TEMP TABLE t (a int, b text)", 0, NULL, &err), 0);
	cr_assert_eq(pg_copy_in_begin(c, "COPY t (a, b) FROM STDIN", &err), 0,
	             "%s", err.message);
	/* pieces need not end on row boundaries */
	cr_assert_eq(pg_copy_in_put(c, data, 5, &err), 0, "%s", err.message);
	cr_assert_eq(pg_copy_in_put(c, data + 5, sizeof(data) - 1 - 5, &err), 0);
	/* no other statement while the COPY runs */
	assert_err(pg_exec(c, "SELECT 1", 0, NULL, &err), ALERR_SOFTWARE, "db.state");
	alerr_clear(&err);
	cr_assert_eq(pg_copy_in_end(c, NULL, &rows, &err), 0, "%s", err.message);
	cr_assert_eq(rows, 3);
	assert_value(c, "SELECT b FROM t WHERE a = 1", "tab\there");
	assert_value(c, "SELECT b IS NULL FROM t WHERE a = 2", "t");
	assert_value(c, "SELECT b FROM t WHERE a = 3", "non-ASCII \xc3\xa9\xe6\xbc\xa2");
	pg_close(c);
}

Test(pg, copy_in_large)
{
	struct pg_conn *c = connect_ok();
	size_t n = 4u << 20, i;
	char *buf = malloc(n);
	uint64_t rows = 0;

	cr_assert_not_null(buf);
	for (i = 0; i < n; i += 8)
		memcpy(buf + i, "1234567\n", 8);
	cr_assert_eq(pg_exec(c, "CREATE TEMP TABLE t (a int)", 0, NULL, &err), 0);
	cr_assert_eq(pg_copy_in_begin(c, "COPY t FROM STDIN", &err), 0);
	cr_assert_eq(pg_copy_in_put(c, buf, n, &err), 0, "%s", err.message);
	cr_assert_eq(pg_copy_in_end(c, NULL, &rows, &err), 0, "%s", err.message);
	cr_assert_eq(rows, n / 8);
	free(buf);
	pg_close(c);
}

Test(pg, copy_in_abort)
{
	struct pg_conn *c = connect_ok();

	cr_assert_eq(pg_exec(c, "CREATE TEMP TABLE t (a int)", 0, NULL, &err), 0);
	cr_assert_eq(pg_copy_in_begin(c, "COPY t FROM STDIN", &err), 0);
	cr_assert_eq(pg_copy_in_put(c, "1\n2\n", 4, &err), 0);
	cr_assert_eq(pg_copy_in_end(c, "test gives up", NULL, &err), 0, "%s", err.message);
	cr_assert_str_eq(pg_last_sqlstate(c), "57014");
	assert_value(c, "SELECT count(*) FROM t", "0");
	pg_close(c);
}

Test(pg, copy_in_bad_data)
{
	struct pg_conn *c = connect_ok();
	const char bad[] = "1\nnot a number\n3\n";
	uint64_t rows = 7;

	cr_assert_eq(pg_exec(c, "CREATE TEMP TABLE t (a int)", 0, NULL, &err), 0);
	cr_assert_eq(pg_copy_in_begin(c, "COPY t FROM STDIN", &err), 0);
	cr_assert_eq(pg_copy_in_put(c, bad, sizeof(bad) - 1, &err), 0);
	assert_err(pg_copy_in_end(c, NULL, &rows, &err), ALERR_SOFTWARE, "db.query");
	cr_assert_eq(rows, 0);
	cr_assert_str_eq(pg_last_sqlstate(c), "22P02");
	assert_usable(c);
	pg_close(c);
}

Test(pg, copy_in_wants_a_copy)
{
	struct pg_conn *c = connect_ok();

	assert_err(pg_copy_in_begin(c, "COPY (SELECT 1) TO STDOUT", &err),
	           ALERR_SOFTWARE, "db.state");
	assert_usable(c);
	alerr_clear(&err);
	assert_err(pg_copy_in_put(c, "1\n", 2, &err), ALERR_SOFTWARE, "db.state");
	alerr_clear(&err);
	assert_err(pg_copy_in_end(c, NULL, NULL, &err), ALERR_SOFTWARE, "db.state");
	pg_close(c);
}

Test(pg, lost_connection_is_unavailable)
{
	struct pg_conn *c = connect_ok(), *killer = connect_ok();
	char *pid = value(c, "SELECT pg_backend_pid()");
	const char *p[1] = { pid };

	cr_assert_eq(pg_exec(killer, "SELECT pg_terminate_backend($1::int)", 1, p,
	                     &err), 0, "%s", err.message);
	assert_err(pg_exec(c, "SELECT 1", 0, NULL, &err), ALERR_UNAVAILABLE,
	           "db.unavailable");
	cr_assert_eq(alerr_exit_code(err.cls), 69);
	/* and stays so */
	alerr_clear(&err);
	assert_err(pg_exec(c, "SELECT 1", 0, NULL, &err), ALERR_UNAVAILABLE,
	           "db.unavailable");
	free(pid);
	pg_close(c);
	pg_close(killer);
}

Test(pg, snapshot_shared_between_connections)
{
	struct pg_conn *a = connect_ok(), *b = connect_ok(), *w = connect_ok();
	char snap[PG_SNAPSHOT_MAX + 1];
	char *create = harness_strdup_printf("CREATE TABLE public.snap_%d AS "
	                                     "SELECT 1 AS a", (int)getpid());
	char *insert = harness_strdup_printf("INSERT INTO public.snap_%d VALUES (2)",
	                                     (int)getpid());
	char *count = harness_strdup_printf("SELECT count(*) FROM public.snap_%d",
	                                    (int)getpid());

	cr_assert_eq(pg_exec(w, create, 0, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(pg_begin_snapshot_export(a, snap, sizeof(snap), &err), 0,
	             "%s", err.message);
	cr_assert_gt(strlen(snap), 0);
	cr_assert_eq(pg_exec(w, insert, 0, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(pg_begin_snapshot_import(b, snap, &err), 0, "%s", err.message);
	assert_value(a, count, "1");
	assert_value(b, count, "1");
	assert_value(w, count, "2");
	assert_value(a, "SELECT current_setting('transaction_read_only')", "on");
	assert_value(b, "SELECT current_setting('transaction_isolation')",
	             "repeatable read");
	/* a forged id is refused before it reaches SQL */
	{
		struct pg_conn *x = connect_ok();

		assert_err(pg_begin_snapshot_import(x, "1'; DROP TABLE y; --", &err),
		           ALERR_SOFTWARE, "db.state");
		alerr_clear(&err);
		assert_err(pg_begin_snapshot_import(x, "00000003-DEADBEEF-1", &err),
		           ALERR_SOFTWARE, "db.query");
		/* the failed BEGIN was rolled back */
		assert_value(x, "SELECT current_setting('transaction_read_only')", "off");
		pg_close(x);
	}
	pg_close(a);
	pg_close(b);
	pg_close(w);
	free(create);
	free(insert);
	free(count);
}
