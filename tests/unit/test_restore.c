/* The restore module against real PostgreSQL clusters: bundles are made
 * by export_run + pack on a shared source cluster (tests/fixtures/
 * feeds.sql), or forged by hand (catalog + rows) for hostile cases, and
 * restored into a target cluster of each Test's own. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alerr.h"
#include "bounds.h"
#include "export.h"
#include "harness.h"
#include "harness_pg.h"
#include "manifest.h"
#include "pack.h"
#include "pg.h"
#include "restore.h"

#define SRC "rsrc"
#define TMPL "feeds_tmpl"
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static struct harness_pg runner_src;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	char *path, *sql;
	struct harness_pg d;

	(void)set;
	path = harness_strdup_printf("%s/tests/fixtures/feeds.sql", harness_srcdir());
	sql = harness_read_file(path, NULL);
	if (harness_pg_start(&runner_src, SRC) != 0 || !sql ||
	    harness_pg_exec(&runner_src, "CREATE DATABASE " TMPL, NULL) != 0) {
		fprintf(stderr, "test-restore: the source cluster is not ready\n");
	} else {
		d = runner_src;
		d.conninfo = harness_strdup_printf("%s dbname=" TMPL, runner_src.conninfo);
		if (harness_pg_exec(&d, sql, NULL) != 0)
			fprintf(stderr, "test-restore: feeds.sql did not load\n");
		free(d.conninfo);
	}
	free(sql);
	free(path);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	harness_pg_stop(&runner_src);
}

/* ------------------------------------------------------------------ */

static struct harness_pg src;           /* shared source cluster */
static struct harness_pg srcdb;         /* this Test's source database */
static char *srcdbname;
static struct harness_pg tgt;           /* this Test's target cluster */
static struct alerr err;
static int bundles;

static void setup(void)
{
	char *sql;

	cr_assert_eq(harness_pg_shared(&src, SRC), 0, "source cluster");
	cr_assert_eq(harness_pg_start(&tgt, "rtgt"), 0, "target cluster");
	srcdbname = harness_strdup_printf("s%ld", (long)getpid());
	sql = harness_strdup_printf("CREATE DATABASE %s TEMPLATE " TMPL, srcdbname);
	cr_assert_eq(harness_pg_exec(&src, sql, NULL), 0, "%s", sql);
	free(sql);
	srcdb = src;
	srcdb.conninfo = harness_strdup_printf("%s dbname=%s", src.conninfo, srcdbname);
	alerr_clear(&err);
	bundles = 0;
}

static void teardown(void)
{
	char *sql = harness_strdup_printf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
	                                  srcdbname);

	harness_pg_exec(&src, sql, NULL);
	free(sql);
	free(srcdbname);
	free(srcdb.conninfo);
	harness_pg_stop(&src);
	harness_pg_stop(&tgt);
}

TestSuite(restore, .init = setup, .fini = teardown, .timeout = 300);

static void src_ok(const char *sql)
{
	cr_assert_eq(harness_pg_exec(&srcdb, sql, NULL), 0, "%s", sql);
}

static void tgt_ok(const char *sql)
{
	cr_assert_eq(harness_pg_exec(&tgt, sql, NULL), 0, "%s", sql);
}

static char *value(const struct harness_pg *pg, const char *sql)
{
	char *v = NULL;

	cr_assert_eq(harness_pg_exec(pg, sql, &v), 0, "%s", sql);
	return v;
}

/* One md5 per table of a schema, by table name: the checksum of the
 * ordered rows, for any set of tables. */
static char *checksum(const struct harness_pg *pg, const char *schema)
{
	char *sql = harness_strdup_printf(
		"SELECT coalesce(string_agg(c.relname || '=' || (xpath('/row/m/text()',"
		" query_to_xml(format('SELECT md5(coalesce(string_agg(t::text, %%L ORDER BY"
		" t::text), %%L)) || count(*) AS m FROM %%I.%%I t', ',', '', n.nspname,"
		" c.relname), false, true, '')))[1]::text, ' ' ORDER BY c.relname), '-')"
		" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
		" WHERE n.nspname = '%s' AND c.relkind IN ('r', 'v')", schema);
	char *v = value(pg, sql);

	free(sql);
	return v;
}

static void v_is(const struct harness_pg *pg, const char *sql, const char *want)
{
	char *v = value(pg, sql);

	cr_assert_str_eq(v, want, "%s", sql);
	free(v);
}

static int staging_count(void)
{
	char *v = value(&tgt, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE "
	                "'airlock\\_%' AND nspname <> 'airlock'");
	int n = atoi(v);

	free(v);
	return n;
}

/* ------------------------------------------------------------------ */
/* Bundles */

struct bundle {
	char *dir;
	struct manifest *m;
	struct unpack *u;
};

static int pack_emit(void *ctx, const char *name, const void *data, size_t len,
                     struct alerr *e)
{
	return pack_add_member(ctx, name, data, len, e);
}

static const struct unpack_limits limits = { UINT64_C(1) << 40, 1000000 };

static void open_bundle(struct bundle *b)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(unpack_new_dir(&b->u, b->dir, b->m->n_files, &limits, &e), 0,
	             "%s", e.message);
}

/* Export this Test's source database into a new payload directory. */
static void make_bundle(struct bundle *b)
{
	static const char *const feeds[] = { "feeds" };
	struct export_options o = { .conninfo = srcdb.conninfo, .schemas = feeds,
	                            .n_schemas = 1, .jobs = 1 };
	struct export_result res;
	struct pack *p = NULL;
	struct alerr e;
	char *name = harness_strdup_printf("payload%ld_%d", (long)getpid(), bundles++);

	alerr_clear(&e);
	b->dir = harness_mkdir(name, 0700);
	free(name);
	b->m = manifest_new();
	cr_assert_not_null(b->m);
	cr_assert_eq(pack_new(&p, b->dir, CHUNK_SIZE_MIN, 3, 0, &e), 0, "%s", e.message);
	cr_assert_eq(export_run(&o, b->m, pack_emit, p, &res, &e), 0, "%s", e.message);
	cr_assert_eq(pack_finish(p, b->m, &e), 0, "%s", e.message);
	pack_free(p);
	export_result_clear(&res);
	open_bundle(b);
}

struct member {
	const char *name;
	const char *data;
};

/* A payload built by hand: catalog.json and segments, with MANIFEST
 * fields schemas and tables ("schema.table rows", ...). */
static void forge_bundle(struct bundle *b, const char *const *schemas, size_t ns,
                         const char *const *tables, size_t nt,
                         const struct member *mb, size_t n)
{
	struct pack *p = NULL;
	struct alerr e;
	char *name = harness_strdup_printf("payload%ld_%d", (long)getpid(), bundles++);
	size_t i;

	alerr_clear(&e);
	b->dir = harness_mkdir(name, 0700);
	free(name);
	b->m = manifest_new();
	cr_assert_not_null(b->m);
	cr_assert_eq(manifest_set_server_version(b->m, 140005, &e), 0);
	for (i = 0; i < ns; i++)
		cr_assert_eq(manifest_add_schema(b->m, schemas[i], &e), 0, "%s", e.message);
	for (i = 0; i < nt; i++) {
		char s[64], t[64];
		unsigned long long rows;

		cr_assert_eq(sscanf(tables[i], "%63[^.].%63s %llu", s, t, &rows), 3);
		cr_assert_eq(manifest_add_table(b->m, s, t, rows, &e), 0, "%s", e.message);
	}
	cr_assert_eq(pack_new(&p, b->dir, CHUNK_SIZE_MIN, 3, 0, &e), 0, "%s", e.message);
	for (i = 0; i < n; i++)
		cr_assert_eq(pack_add_member(p, mb[i].name, mb[i].data, strlen(mb[i].data),
		                             &e), 0, "%s: %s", mb[i].name, e.message);
	cr_assert_eq(pack_finish(p, b->m, &e), 0, "%s", e.message);
	pack_free(p);
	open_bundle(b);
}

static void free_bundle(struct bundle *b)
{
	unpack_free(b->u);
	manifest_free(b->m);
	free(b->dir);
	memset(b, 0, sizeof(*b));
}

static const char *const signers[] = { "0123456789ABCDEF0123456789ABCDEF01234567" };

static struct restore_record make_record(uint64_t seq, const char *sha)
{
	struct restore_record rec = {
		.channel = "nvd", .sequence = seq,
		.bundle_id = "4f1e2d3c-5b6a-4789-8abc-def012345678",
		.manifest_sha256 = sha, .image_sha256 = SHA_B,
		.signers = signers, .n_signers = 1,
		.created = 1700000000 + (int64_t)seq, .valid_until = 1800000000,
	};

	return rec;
}

struct swap_ctx {
	int called;
	int fail;
};

static int before_swap(void *ctx, struct restore_record *rec, struct alerr *e)
{
	struct swap_ctx *s = ctx;

	s->called++;
	if (s->fail)
		return alerr_set(e, ALERR_IOERR, -EIO, "custody.fsync",
		                 "cannot sync the custody log");
	rec->custody_seq = 7;
	rec->custody_hash = SHA_B;
	return 0;
}

/* The load workers of the Tests run through restore_with: the _jobs3
 * variants of a Test set 3 (each Test is a process of its own). */
static unsigned int test_jobs = 1;

/* A Test run twice: the one-transaction build, and 3 load workers. */
#define BOTH_WAYS(name) \
	Test(restore, name) { name(); } \
	Test(restore, name##_jobs3) { test_jobs = 3; name(); }

static int open_payload(void *ctx, struct unpack **out, void **handle, struct alerr *e)
{
	const struct bundle *b = ctx;

	*handle = NULL;
	return unpack_new_dir(out, b->dir, b->m->n_files, &limits, e);
}

static void close_payload(void *ctx, struct unpack *u, void *handle)
{
	(void)ctx;
	(void)handle;
	unpack_free(u);
}

static int restore_with(struct bundle *b, uint64_t seq, const char *sha,
                        struct restore_options *o, struct swap_ctx *sc,
                        struct restore_result *res)
{
	struct restore_record rec = make_record(seq, sha);
	struct restore_options def = { .conninfo = tgt.conninfo, .jobs = 1 };
	struct swap_ctx dsc = { 0 };

	if (!o)
		o = &def;
	o->conninfo = tgt.conninfo;
	if (test_jobs > 1) {
		o->jobs = test_jobs;
		o->open_payload = open_payload;
		o->close_payload = close_payload;
		o->payload_ctx = b;
	}
	alerr_clear(&err);
	return restore_run(o, b->u, b->m, &rec, before_swap, sc ? sc : &dsc, res, &err);
}

static void restore_ok(struct bundle *b, uint64_t seq)
{
	struct restore_result res;
	struct swap_ctx sc = { 0 };

	cr_assert_eq(restore_with(b, seq, SHA_A, NULL, &sc, &res), 0, "%s [%s]",
	             err.message, err.reason);
	cr_assert_eq(sc.called, 1);
}

/* The answer of query q is the same in the source and the target. */
static void same(const char *q)
{
	char *v = value(&srcdb, q), *w = value(&tgt, q);

	cr_assert_str_eq(v, w, "%s\n%s\n%s", q, v, w);
	free(v);
	free(w);
}

static void assert_same_as_source(void)
{
	char *a = checksum(&srcdb, "feeds"), *b = checksum(&tgt, "feeds");

	cr_assert_str_eq(a, b, "source and target differ");
	free(a);
	free(b);
}

/* ------------------------------------------------------------------ */

static void first_import_restores_everything(void)
{
	struct bundle b = { 0 };
	struct restore_result res;
	struct swap_ctx sc = { 0 };
	char *v, *w;

	make_bundle(&b);
	cr_assert_eq(restore_with(&b, 1, SHA_A, NULL, &sc, &res), 0, "%s [%s]",
	             err.message, err.reason);
	cr_assert_eq(res.tables, 7);
	cr_assert_eq(res.rows, 6u + 3005u + 4u + 3u + 0u + 2u + 2u);
	cr_assert_eq(res.first_import, 1);
	cr_assert_eq(res.target_version, (uint32_t)atoi(v = value(&tgt,
	             "SHOW server_version_num")));
	free(v);
	cr_assert_eq(res.major_differs, 0);
	assert_same_as_source();
	cr_assert_eq(staging_count(), 0);

	/* constraints, indexes, sequences, comments, column defaults */
	same("SELECT string_agg(x, ',' ORDER BY x) FROM (SELECT conrelid::regclass::text"
	     " || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS x FROM pg_constraint"
	     " WHERE connamespace = 'feeds'::regnamespace) s");
	same("SELECT string_agg(indexdef, ',' ORDER BY indexname) FROM pg_indexes"
	     " WHERE schemaname = 'feeds'");
	same("SELECT string_agg(sequencename || ' ' || coalesce(last_value::text, '-')"
	     " || ' ' || nextval('feeds.' || quote_ident(sequencename)), ','"
	     " ORDER BY sequencename) FROM pg_sequences WHERE schemaname = 'feeds'");
	same("SELECT string_agg(c.relname || ':' || coalesce(obj_description(c.oid,"
	     " 'pg_class'), '-'), ',' ORDER BY c.relname) FROM pg_class c"
	     " WHERE c.relnamespace = 'feeds'::regnamespace");
	same("SELECT obj_description('feeds'::regnamespace, 'pg_namespace')");
	same("SELECT string_agg(table_name || '.' || column_name || ' ' ||"
	     " coalesce(column_default, '-') || ' ' || is_nullable || ' ' ||"
	     " is_identity || ' ' || coalesce(col_description(('feeds.' ||"
	     " quote_ident(table_name))::regclass, ordinal_position::int), '-'), ','"
	     " ORDER BY table_name, ordinal_position) FROM information_schema.columns"
	     " WHERE table_schema = 'feeds'");
	same("SELECT string_agg(x, ',' ORDER BY x) FROM (SELECT d.refobjid::regclass::text"
	     " || '.' || d.refobjsubid || ' ' || d.objid::regclass::text || ' ' || d.deptype::text"
	     " AS x FROM pg_depend d JOIN pg_class c ON c.oid = d.objid WHERE c.relkind = 'S'"
	     " AND c.relnamespace = 'feeds'::regnamespace AND d.refobjsubid > 0) s");
	same("SELECT pg_get_viewdef('feeds.critical'::regclass) ||"
	     " pg_get_viewdef('feeds.recent'::regclass)");
	v = value(&tgt, "SELECT channel || ' ' || sequence || ' ' || bundle_id || ' '"
	          " || manifest_sha256 || ' ' || array_to_string(signers, ',') || ' '"
	          " || image_sha256 || ' ' || custody_seq || ' ' || custody_hash || ' '"
	          " || extract(epoch FROM created)::bigint || ' ' ||"
	          " extract(epoch FROM valid_until)::bigint || ' ' ||"
	          " array_to_string(schemas, ',') || ' ' || tables || ' ' || rows"
	          " FROM airlock.imports");
	w = harness_strdup_printf("nvd 1 4f1e2d3c-5b6a-4789-8abc-def012345678 " SHA_A
	                          " %s " SHA_B " 7 " SHA_B " 1700000001 1800000000"
	                          " feeds 7 %llu", signers[0],
	                          (unsigned long long)res.rows);
	cr_assert_str_eq(v, w);
	free(v);
	free(w);
	free_bundle(&b);
}

BOTH_WAYS(first_import_restores_everything)

static void second_import_swaps_in_new_data_and_keeps_grants(void)
{
	struct bundle b1 = { 0 }, b2 = { 0 };
	char *before, *v;

	make_bundle(&b1);
	restore_ok(&b1, 1);
	tgt_ok("CREATE ROLE reader; GRANT USAGE ON SCHEMA feeds TO reader;"
	       " GRANT SELECT ON feeds.advisories, feeds.recent TO reader;"
	       " GRANT USAGE ON SEQUENCE feeds.ticket_seq TO reader");
	src_ok("DELETE FROM feeds.packages; DELETE FROM feeds.cvss;"
	       " DELETE FROM feeds.advisories WHERE id > 100;"
	       " INSERT INTO feeds.vendors (name) VALUES ('NewCo');"
	       " ALTER TABLE feeds.vendors ADD COLUMN country text DEFAULT 'xx';"
	       " CREATE TABLE feeds.added (k int PRIMARY KEY);"
	       " INSERT INTO feeds.added VALUES (1), (2)");
	before = checksum(&tgt, "feeds");
	make_bundle(&b2);
	restore_ok(&b2, 2);
	assert_same_as_source();
	v = checksum(&tgt, "feeds");
	cr_assert_str_neq(before, v);
	free(v);
	free(before);
	cr_assert_eq(staging_count(), 0);
	v = value(&tgt, "SELECT string_agg(sequence::text, ',' ORDER BY sequence)"
	          " FROM airlock.imports");
	cr_assert_str_eq(v, "1,2");
	free(v);
	v = value(&tgt, "SELECT has_schema_privilege('reader', 'feeds', 'USAGE') ||"
	          " ' ' || has_table_privilege('reader', 'feeds.advisories', 'SELECT')"
	          " || ' ' || has_table_privilege('reader', 'feeds.recent', 'SELECT')"
	          " || ' ' || has_table_privilege('reader', 'feeds.vendors', 'SELECT')"
	          " || ' ' || has_sequence_privilege('reader', 'feeds.ticket_seq', 'USAGE')");
	cr_assert_str_eq(v, "true true true false true");
	free(v);
	free_bundle(&b1);
	free_bundle(&b2);
}

BOTH_WAYS(second_import_swaps_in_new_data_and_keeps_grants)

/* The parallel build's task graph on what it must order: a foreign key
 * through a unique index (not a constraint: it waits for that index), a
 * self-reference, two tables referencing each other, a quoted
 * (mixed-case) name, an expression index and several indexes on one table
 * (built at once). The
 * result must be what the one-transaction build makes: every constraint
 * and index as in the source, all of them valid. */
static void task_graph_orders_keys_indexes_and_foreign_keys(void)
{
	struct bundle b = { 0 };
	char *v;

	src_ok("CREATE TABLE feeds.\"OddName\" (id int PRIMARY KEY, code text NOT NULL,"
	       " parent int REFERENCES feeds.\"OddName\" (id), peer int);"
	       " CREATE UNIQUE INDEX odd_code_idx ON feeds.\"OddName\" (code);"
	       " CREATE INDEX odd_lower_idx ON feeds.\"OddName\" (lower(code));"
	       " CREATE INDEX odd_parent_idx ON feeds.\"OddName\" (parent, code DESC);"
	       " CREATE TABLE feeds.peer (id int PRIMARY KEY,"
	       " odd_code text REFERENCES feeds.\"OddName\" (code),"
	       " odd int REFERENCES feeds.\"OddName\" (id));"
	       " ALTER TABLE feeds.\"OddName\" ADD CONSTRAINT odd_peer_fkey"
	       " FOREIGN KEY (peer) REFERENCES feeds.peer (id);"
	       " INSERT INTO feeds.\"OddName\" (id, code, parent)"
	       " SELECT g, 'c' || g, NULLIF(g - 1, 0) FROM generate_series(1, 3000) g;"
	       " INSERT INTO feeds.peer SELECT g, 'c' || (g * 7), g * 3"
	       " FROM generate_series(1, 400) g;"
	       " UPDATE feeds.\"OddName\" SET peer = 1 + id % 400");
	make_bundle(&b);
	restore_ok(&b, 1);
	assert_same_as_source();
	same("SELECT string_agg(x, ',' ORDER BY x) FROM (SELECT conrelid::regclass::text"
	     " || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' ||"
	     " convalidated AS x FROM pg_constraint"
	     " WHERE connamespace = 'feeds'::regnamespace) s");
	same("SELECT string_agg(indexdef, ',' ORDER BY indexname) FROM pg_indexes"
	     " WHERE schemaname = 'feeds'");
	v_is(&tgt, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
	     " WHERE c.relnamespace = 'feeds'::regnamespace AND NOT (i.indisvalid"
	     " AND i.indisready)", "0");
	v = value(&srcdb, "SELECT count(*) FROM pg_constraint WHERE connamespace ="
	          " 'feeds'::regnamespace AND contype = 'f'");
	v_is(&tgt, "SELECT count(*) FROM pg_constraint WHERE connamespace ="
	     " 'feeds'::regnamespace AND contype = 'f' AND convalidated", v);
	cr_assert_geq(atoi(v), 5, "%s foreign keys", v);
	free(v);
	/* the keys hold in the restored copy */
	cr_assert_neq(harness_pg_exec(&tgt, "INSERT INTO feeds.peer VALUES (401, 'nope', 1)",
	                              NULL), 0);
	cr_assert_neq(harness_pg_exec(&tgt, "UPDATE feeds.\"OddName\" SET peer = 999"
	                              " WHERE id = 1", NULL), 0);
	cr_assert_eq(staging_count(), 0);
	free_bundle(&b);
}

BOTH_WAYS(task_graph_orders_keys_indexes_and_foreign_keys)

/* A foreign key violated across two tables that reference each other:
 * found by a worker's task, the import refused, nothing left behind. */
static void task_graph_foreign_key_cycle_violation_refused(void)
{
	struct bundle b1 = { 0 }, b2 = { 0 };
	struct restore_result res;
	struct swap_ctx sc = { 0 };
	char *before, *after;

	make_bundle(&b1);
	restore_ok(&b1, 1);
	before = checksum(&tgt, "feeds");
	src_ok("CREATE TABLE feeds.ping (id int PRIMARY KEY, pong int);"
	       " CREATE TABLE feeds.pong (id int PRIMARY KEY, ping int REFERENCES feeds.ping (id));"
	       " ALTER TABLE feeds.ping ADD CONSTRAINT ping_pong_fkey FOREIGN KEY (pong)"
	       " REFERENCES feeds.pong (id) NOT VALID;"
	       " INSERT INTO feeds.ping SELECT g, NULL FROM generate_series(1, 500) g;"
	       " INSERT INTO feeds.pong SELECT g, g FROM generate_series(1, 500) g;"
	       " ALTER TABLE feeds.ping DISABLE TRIGGER ALL;"
	       " UPDATE feeds.ping SET pong = id + 1;"    /* 501 is no pong */
	       " ALTER TABLE feeds.ping ENABLE TRIGGER ALL");
	make_bundle(&b2);
	cr_assert_lt(restore_with(&b2, 2, SHA_B, NULL, &sc, &res), 0);
	cr_assert_eq(err.cls, ALERR_REJECT, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, "restore.constraint", "%s", err.message);
	cr_assert(strstr(err.message, "ping_pong_fkey") != NULL, "%s", err.message);
	cr_assert_eq(sc.called, 0);
	after = checksum(&tgt, "feeds");
	cr_assert_str_eq(before, after, "the live feed changed");
	cr_assert_eq(staging_count(), 0);
	free(before);
	free(after);
	free_bundle(&b1);
	free_bundle(&b2);
}

BOTH_WAYS(task_graph_foreign_key_cycle_violation_refused)

/* ------------------------------------------------------------------ */
/* Readers during the swap */

struct reader {
	const char *conninfo;
	volatile int stop;
	long queries, bad;
	char seen[ALERR_MESSAGE_MAX + 32];
	char old_pair[64], new_pair[64];
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct pg_conn *c = NULL;
	struct alerr e;

	alerr_clear(&e);
	if (pg_connect(rd->conninfo, &c, &e) < 0) {
		rd->bad++;
		snprintf(rd->seen, sizeof(rd->seen), "connect: %s", e.message);
		return NULL;
	}
	while (!rd->stop) {
		struct pg_result *r = NULL;

		alerr_clear(&e);
		if (pg_query(c, "SELECT (SELECT count(*) FROM feeds.advisories) || '/' ||"
		             " (SELECT count(*) FROM feeds.vendors)", 0, NULL, 1, &r, &e) < 0) {
			rd->bad++;
			snprintf(rd->seen, sizeof(rd->seen), "error: %s", e.message);
			continue;
		}
		rd->queries++;
		if (strcmp(pg_result_get(r, 0, 0), rd->old_pair) != 0 &&
		    strcmp(pg_result_get(r, 0, 0), rd->new_pair) != 0) {
			rd->bad++;
			snprintf(rd->seen, sizeof(rd->seen), "%s", pg_result_get(r, 0, 0));
		}
		pg_result_free(r);
	}
	pg_close(c);
	return NULL;
}

static void readers_never_see_a_partial_or_empty_feed(void)
{
	struct bundle b1 = { 0 }, b2 = { 0 };
	struct reader rd = { 0 };
	struct pg_conn *rr = NULL;
	struct pg_result *r = NULL;
	pthread_t th;
	char *v;

	make_bundle(&b1);
	restore_ok(&b1, 1);
	src_ok("DELETE FROM feeds.packages; DELETE FROM feeds.cvss;"
	       " DELETE FROM feeds.advisories WHERE id > 1000;"
	       " INSERT INTO feeds.vendors (name) VALUES ('NewCo')");
	make_bundle(&b2);
	snprintf(rd.old_pair, sizeof(rd.old_pair), "3005/6");
	snprintf(rd.new_pair, sizeof(rd.new_pair), "%s",
	         v = value(&srcdb, "SELECT (SELECT count(*) FROM feeds.advisories) ||"
	                   " '/' || (SELECT count(*) FROM feeds.vendors)"));
	free(v);
	cr_assert_str_neq(rd.old_pair, rd.new_pair);

	/* a REPEATABLE READ snapshot taken before the swap */
	cr_assert_eq(pg_connect(tgt.conninfo, &rr, &err), 0, "%s", err.message);
	cr_assert_eq(pg_exec(rr, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL, &err), 0);
	cr_assert_eq(pg_exec(rr, "SELECT 1", 0, NULL, &err), 0);

	rd.conninfo = tgt.conninfo;
	cr_assert_eq(pthread_create(&th, NULL, reader_main, &rd), 0);
	while (rd.queries < 5 && !rd.bad)
		usleep(1000);
	restore_ok(&b2, 2);
	{
		long q = rd.queries;

		while (rd.queries < q + 5 && !rd.bad)
			usleep(1000);
	}
	rd.stop = 1;
	pthread_join(th, NULL);
	cr_assert_eq(rd.bad, 0, "a reader saw %s", rd.seen);
	cr_assert_gt(rd.queries, 10);

	cr_assert_eq(pg_query(rr, "SELECT (SELECT count(*) FROM feeds.advisories) ||"
	                      " '/' || (SELECT count(*) FROM feeds.vendors)", 0, NULL,
	                      1, &r, &err), 0, "%s", err.message);
	cr_assert_str_eq(pg_result_get(r, 0, 0), rd.new_pair,
	                 "the older snapshot sees the whole new feed");
	pg_result_free(r);
	pg_close(rr);
	assert_same_as_source();
	free_bundle(&b1);
	free_bundle(&b2);
}

BOTH_WAYS(readers_never_see_a_partial_or_empty_feed)

/* A view and a foreign key in another schema over the live feed: the
 * swap would drop them with the old schema; refused (78) before the
 * load, the feed and the user's objects as they were; once they are
 * gone the same bundle imports. */
Test(restore, dependents_outside_the_schema_refused)
{
	struct bundle b1 = { 0 }, b2 = { 0 }, b3 = { 0 };
	struct restore_result res;
	struct swap_ctx sc = { 0 };
	char *before, *after;

	make_bundle(&b1);
	restore_ok(&b1, 1);
	make_bundle(&b2);
	tgt_ok("CREATE SCHEMA reports;"
	       " CREATE VIEW reports.recent AS SELECT 1 AS one FROM feeds.advisories;"
	       " CREATE TABLE reports.notes (id bigint REFERENCES feeds.advisories (id))");
	before = checksum(&tgt, "feeds");
	cr_assert_lt(restore_with(&b2, 2, SHA_B, NULL, &sc, &res), 0);
	cr_assert_eq(err.cls, ALERR_CONFIG, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, "restore.dependents", "%s", err.message);
	cr_assert(strstr(err.message, "view reports.recent") != NULL, "%s", err.message);
	cr_assert(strstr(err.message, "on table reports.notes") != NULL, "%s", err.message);
	cr_assert_eq(sc.called, 0);
	after = checksum(&tgt, "feeds");
	cr_assert_str_eq(before, after, "the live feed changed");
	free(before);
	free(after);
	cr_assert_eq(staging_count(), 0);
	v_is(&tgt, "SELECT count(*) FROM pg_class WHERE relnamespace = 'reports'::regnamespace"
	     " AND relname IN ('recent', 'notes')", "2");
	tgt_ok("DROP SCHEMA reports CASCADE");
	b3.dir = b2.dir;
	b3.m = b2.m;
	open_bundle(&b3);
	restore_ok(&b3, 2);
	unpack_free(b3.u);
	free_bundle(&b1);
	free_bundle(&b2);
}

/* ------------------------------------------------------------------ */
/* Hostile payloads */

static const char *const one_schema[] = { "feeds" };

static const char catalog_checked[] =
	"{ \"format\": \"airlock-catalog/1\", \"schemas\": [ { \"name\": \"feeds\","
	" \"comment\": null, \"sequences\": [], \"views\": [], \"tables\": ["
	" { \"name\": \"t\", \"comment\": null, \"columns\": ["
	"  { \"name\": \"id\", \"type\": \"integer\", \"not_null\": true,"
	"    \"default\": null, \"identity\": null, \"comment\": null },"
	"  { \"name\": \"v\", \"type\": \"integer\", \"not_null\": false,"
	"    \"default\": null, \"identity\": null, \"comment\": null } ],"
	"  \"constraints\": ["
	"  { \"name\": \"t_pkey\", \"kind\": \"p\", \"definition\": \"PRIMARY KEY (id)\","
	"    \"comment\": null },"
	"  { \"name\": \"t_v_check\", \"kind\": \"c\", \"definition\": \"CHECK ((v > 0))\","
	"    \"comment\": null },"
	"  { \"name\": \"t_v_fkey\", \"kind\": \"f\","
	"    \"definition\": \"FOREIGN KEY (v) REFERENCES u(k)\", \"comment\": null } ],"
	"  \"indexes\": [] },"
	" { \"name\": \"u\", \"comment\": null, \"columns\": ["
	"  { \"name\": \"k\", \"type\": \"integer\", \"not_null\": true,"
	"    \"default\": null, \"identity\": null, \"comment\": null } ],"
	"  \"constraints\": ["
	"  { \"name\": \"u_pkey\", \"kind\": \"p\", \"definition\": \"PRIMARY KEY (k)\","
	"    \"comment\": null } ], \"indexes\": [] } ] } ] }";

/* Import the real feed first, then a forged bundle whose outcome must be
 * the refusal given; the live feed stays as it was. */
static void refused(const char *t_rows, const char *u_rows, const char *const *tables,
                    enum alerr_class cls, const char *reason)
{
	struct bundle b1 = { 0 }, bad = { 0 };
	struct member mb[] = {
		{ "catalog.json", catalog_checked },
		{ "data/feeds/t/000000.copy", t_rows },
		{ "data/feeds/u/000000.copy", u_rows },
	};
	struct restore_result res;
	struct swap_ctx sc = { 0 };
	char *before, *after;

	make_bundle(&b1);
	restore_ok(&b1, 1);
	before = checksum(&tgt, "feeds");
	forge_bundle(&bad, one_schema, 1, tables, 2, mb, 3);
	cr_assert_lt(restore_with(&bad, 2, SHA_B, NULL, &sc, &res), 0);
	cr_assert_eq(err.cls, cls, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, reason, "%s", err.message);
	cr_assert_eq(sc.called, 0);
	after = checksum(&tgt, "feeds");
	cr_assert_str_eq(before, after, "the live feed changed");
	cr_assert_eq(staging_count(), 0);
	free(before);
	free(after);
	before = value(&tgt, "SELECT count(*) FROM airlock.imports");
	cr_assert_str_eq(before, "1");
	free(before);
	free_bundle(&b1);
	free_bundle(&bad);
}

static const char *const tables_1_1[] = { "feeds.t 1", "feeds.u 1" };
static const char *const tables_2_1[] = { "feeds.t 2", "feeds.u 1" };

static void forged_good_bundle_restores(void)
{
	struct bundle b = { 0 };
	struct member mb[] = {
		{ "catalog.json", catalog_checked },
		{ "data/feeds/t/000000.copy", "1\t5\n" },
		{ "data/feeds/u/000000.copy", "5\n" },
	};
	char *v;

	forge_bundle(&b, one_schema, 1, tables_1_1, 2, mb, 3);
	restore_ok(&b, 1);
	v = value(&tgt, "SELECT (SELECT string_agg(id || ':' || v, ',') FROM feeds.t)"
	          " || ' ' || (SELECT count(*) FROM pg_constraint WHERE"
	          " connamespace = 'feeds'::regnamespace)");
	cr_assert_str_eq(v, "1:5 4");
	free(v);
	free_bundle(&b);
}

BOTH_WAYS(forged_good_bundle_restores)

static void check_violation_refused(void)
{
	refused("1\t-5\n", "5\n", tables_1_1, ALERR_REJECT, "restore.constraint");
}

BOTH_WAYS(check_violation_refused)

static void foreign_key_violation_refused(void)
{
	refused("1\t6\n", "5\n", tables_1_1, ALERR_REJECT, "restore.constraint");
}

BOTH_WAYS(foreign_key_violation_refused)

static void primary_key_violation_refused(void)
{
	refused("1\t5\n1\t5\n", "5\n", tables_2_1, ALERR_REJECT, "restore.constraint");
}

BOTH_WAYS(primary_key_violation_refused)

static void bad_type_refused(void)
{
	refused("1\tfive\n", "5\n", tables_1_1, ALERR_REJECT, "restore.data");
}

BOTH_WAYS(bad_type_refused)

static void row_count_differs_from_manifest(void)
{
	refused("1\t5\n", "5\n", tables_2_1, ALERR_REJECT, "restore.row_count");
}

BOTH_WAYS(row_count_differs_from_manifest)

static void catalog_not_the_manifest_tables(void)
{
	static const char *const other[] = { "feeds.t 1", "feeds.w 1" };

	refused("1\t5\n", "5\n", other, ALERR_REJECT, "restore.catalog");
}

BOTH_WAYS(catalog_not_the_manifest_tables)

static void table_without_data_refused(void)
{
	struct bundle b = { 0 };
	struct member mb[] = {
		{ "catalog.json", catalog_checked },
		{ "data/feeds/t/000000.copy", "1\t5\n" },
	};
	struct restore_result res;

	forge_bundle(&b, one_schema, 1, tables_1_1, 2, mb, 2);
	cr_assert_lt(restore_with(&b, 1, SHA_A, NULL, NULL, &res), 0);
	cr_assert_eq(err.cls, ALERR_REJECT, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, "restore.payload", "%s", err.message);
	cr_assert(strstr(err.message, "feeds.u") != NULL, "%s", err.message);
	cr_assert_eq(staging_count(), 0);
	free_bundle(&b);
}

BOTH_WAYS(table_without_data_refused)

/* Catalogue 30: far more rows than MANIFEST says, in several full
 * segments (a compressed payload of repeated lines is small): the COPY
 * stops within the first buffer, not at the end of the data. */
static int max_progress(void *ctx, uint64_t bytes)
{
	uint64_t *max = ctx;

	if (bytes > *max)
		*max = bytes;
	return 0;
}

static void rows_beyond_manifest_stop_early(void)
{
	struct bundle b = { 0 };
	char *seg = malloc(PAYLOAD_SEGMENT_SIZE + 1);
	struct member mb[5];
	uint64_t max = 0;
	struct restore_options o = { .jobs = 1, .progress = max_progress,
	                             .progress_ctx = &max };
	struct restore_result res;
	size_t i;

	cr_assert_not_null(seg);
	for (i = 0; i < PAYLOAD_SEGMENT_SIZE; i += 4)
		memcpy(seg + i, "1\t5\n", 4);
	seg[PAYLOAD_SEGMENT_SIZE] = '\0';
	mb[0].name = "catalog.json";
	mb[0].data = catalog_checked;
	mb[1].name = "data/feeds/t/000000.copy";
	mb[2].name = "data/feeds/t/000001.copy";
	mb[3].name = "data/feeds/t/000002.copy";
	mb[1].data = mb[2].data = mb[3].data = seg;
	mb[4].name = "data/feeds/u/000000.copy";
	mb[4].data = "5\n";
	forge_bundle(&b, one_schema, 1, tables_1_1, 2, mb, 5);
	free(seg);
	cr_assert_lt(restore_with(&b, 1, SHA_A, &o, NULL, &res), 0);
	cr_assert_eq(err.cls, ALERR_REJECT, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, "restore.row_count", "%s", err.message);
	cr_assert(strstr(err.message, "feeds.t: more than the 1 rows") != NULL, "%s",
	          err.message);
	cr_assert_lt(max, (uint64_t)PAYLOAD_SEGMENT_SIZE, "%llu bytes went in",
	             (unsigned long long)max);
	cr_assert_eq(staging_count(), 0);
	v_is(&tgt, "SELECT count(*) FROM pg_namespace WHERE nspname = 'feeds'", "0");
	free_bundle(&b);
}

BOTH_WAYS(rows_beyond_manifest_stop_early)

/* ------------------------------------------------------------------ */
/* Locks, failures, concurrency */

static void lock_timeout_then_rerun(void)
{
	struct bundle b1 = { 0 }, b2 = { 0 }, b3 = { 0 };
	struct restore_options o = { .jobs = 1, .lock_timeout_ms = 300 };
	struct restore_result res;
	struct pg_conn *holder = NULL;
	char *before, *after;

	make_bundle(&b1);
	restore_ok(&b1, 1);
	src_ok("INSERT INTO feeds.vendors (name) VALUES ('Later')");
	make_bundle(&b2);
	before = checksum(&tgt, "feeds");
	cr_assert_eq(pg_connect(tgt.conninfo, &holder, &err), 0, "%s", err.message);
	cr_assert_eq(pg_exec(holder, "BEGIN", 0, NULL, &err), 0);
	cr_assert_eq(pg_exec(holder, "SELECT count(*) FROM feeds.cvss", 0, NULL, &err), 0);
	cr_assert_lt(restore_with(&b2, 2, SHA_B, &o, NULL, &res), 0);
	cr_assert_eq(err.cls, ALERR_TEMPFAIL, "%s [%s]", err.message, err.reason);
	cr_assert_eq(alerr_exit_code(err.cls), 75);
	cr_assert_str_eq(err.reason, "db.lock_timeout", "%s", err.message);
	cr_assert_eq(staging_count(), 0);
	cr_assert_eq(pg_exec(holder, "COMMIT", 0, NULL, &err), 0);
	pg_close(holder);
	after = checksum(&tgt, "feeds");
	cr_assert_str_eq(before, after);
	free(before);
	free(after);
	/* the same bundle again, now that the reader is gone */
	b3.dir = b2.dir;
	b3.m = b2.m;
	open_bundle(&b3);
	restore_ok(&b3, 2);
	assert_same_as_source();
	unpack_free(b3.u);
	free_bundle(&b1);
	free_bundle(&b2);
}

BOTH_WAYS(lock_timeout_then_rerun)

static void before_swap_failure_aborts(void)
{
	struct bundle b1 = { 0 }, b2 = { 0 };
	struct swap_ctx sc = { .fail = 1 };
	struct restore_result res;
	char *before, *after;

	make_bundle(&b1);
	restore_ok(&b1, 1);
	src_ok("INSERT INTO feeds.vendors (name) VALUES ('Later')");
	make_bundle(&b2);
	before = checksum(&tgt, "feeds");
	cr_assert_lt(restore_with(&b2, 2, SHA_B, NULL, &sc, &res), 0);
	cr_assert_eq(sc.called, 1);
	cr_assert_eq(err.cls, ALERR_IOERR);
	cr_assert_str_eq(err.reason, "custody.fsync");
	after = checksum(&tgt, "feeds");
	cr_assert_str_eq(before, after);
	cr_assert_eq(staging_count(), 0);
	free(before);
	free(after);
	before = value(&tgt, "SELECT count(*) FROM airlock.imports");
	cr_assert_str_eq(before, "1");
	free(before);
	free_bundle(&b1);
	free_bundle(&b2);
}

BOTH_WAYS(before_swap_failure_aborts)

Test(restore, database_down_at_start)
{
	struct bundle b = { 0 };
	struct restore_result res;
	struct restore_state st;
	size_t dropped;

	make_bundle(&b);
	cr_assert_eq(harness_pg_kill(&tgt), 0);
	cr_assert_lt(restore_with(&b, 1, SHA_A, NULL, NULL, &res), 0);
	cr_assert_eq(err.cls, ALERR_UNAVAILABLE, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, "db.unavailable");
	alerr_clear(&err);
	cr_assert_lt(restore_read_state(tgt.conninfo, "nvd", &st, &err), 0);
	cr_assert_eq(err.cls, ALERR_UNAVAILABLE);
	cr_assert_eq(harness_pg_restart(&tgt), 0);
	alerr_clear(&err);
	cr_assert_eq(restore_cleanup_stale(tgt.conninfo, &dropped, &err), 0, "%s",
	             err.message);
	cr_assert_eq(dropped, 0);
	cr_assert_eq(staging_count(), 0);
	free_bundle(&b);
}

static int kill_progress(void *ctx, uint64_t bytes)
{
	int *killed = ctx;

	if (bytes > 0 && !*killed) {
		*killed = 1;
		harness_pg_kill(&tgt);
	}
	return 0;
}

/* A forged bundle whose table t holds n rows (several MiB of COPY text). */
static void big_bundle(struct bundle *b, unsigned int n)
{
	static const char *const none[] = { "feeds" };
	char *rows = malloc((size_t)n * 16 + 1), *p = rows;
	char *tables[2];
	struct member mb[3];
	unsigned int i;

	cr_assert_not_null(rows);
	for (i = 1; i <= n; i++)
		p += sprintf(p, "%u\t5\n", i);
	tables[0] = harness_strdup_printf("feeds.t %u", n);
	tables[1] = harness_strdup_printf("feeds.u 1");
	mb[0].name = "catalog.json";
	mb[0].data = catalog_checked;
	mb[1].name = "data/feeds/t/000000.copy";
	mb[1].data = rows;
	mb[2].name = "data/feeds/u/000000.copy";
	mb[2].data = "5\n";
	forge_bundle(b, none, 1, (const char *const *)tables, 2, mb, 3);
	free(rows);
	free(tables[0]);
	free(tables[1]);
}

static void database_killed_mid_copy_then_rerun(void)
{
	struct bundle b1 = { 0 }, b2 = { 0 }, b3 = { 0 };
	int killed = 0;
	struct restore_options o = { .jobs = 1, .progress = kill_progress,
	                             .progress_ctx = &killed };
	struct restore_result res;
	size_t dropped = 99;
	char *before, *after;

	make_bundle(&b1);
	restore_ok(&b1, 1);
	big_bundle(&b2, 400000);        /* about 4 MiB: progress comes mid-COPY */
	before = checksum(&tgt, "feeds");
	cr_assert_lt(restore_with(&b2, 2, SHA_B, &o, NULL, &res), 0);
	cr_assert_eq(killed, 1);
	cr_assert_eq(err.cls, ALERR_UNAVAILABLE, "%s [%s]", err.message, err.reason);
	cr_assert_eq(harness_pg_restart(&tgt), 0);
	/* a stale staging schema, as a run killed after its build leaves it */
	tgt_ok("CREATE SCHEMA airlock_staging_00000000deadbeef;"
	       " CREATE TABLE airlock_staging_00000000deadbeef.x (i int)");
	alerr_clear(&err);
	cr_assert_eq(restore_cleanup_stale(tgt.conninfo, &dropped, &err), 0, "%s",
	             err.message);
	/* a parallel load commits its staging schema before the workers
	 * start: the killed run's is left too, and goes now */
	cr_assert_eq(dropped, test_jobs > 1 ? 2u : 1u);
	cr_assert_eq(staging_count(), 0);
	after = checksum(&tgt, "feeds");
	cr_assert_str_eq(before, after);
	free(before);
	free(after);
	b3.dir = b2.dir;
	b3.m = b2.m;
	open_bundle(&b3);
	restore_ok(&b3, 2);
	before = value(&tgt, "SELECT count(*) || ' ' || sum(id) FROM feeds.t");
	cr_assert_str_eq(before, "400000 80000200000");
	free(before);
	unpack_free(b3.u);
	free_bundle(&b1);
	free_bundle(&b2);
}

BOTH_WAYS(database_killed_mid_copy_then_rerun)

/* A run that still lives keeps its staging schema: cleanup leaves it. */
static int cleanup_progress(void *ctx, uint64_t bytes)
{
	size_t *dropped = ctx;
	struct alerr e;

	(void)bytes;
	alerr_clear(&e);
	if (*dropped == 99 && restore_cleanup_stale(tgt.conninfo, dropped, &e) < 0)
		*dropped = 98;
	return 0;
}

Test(restore, cleanup_spares_a_running_import)
{
	struct bundle b = { 0 };
	size_t dropped = 99;
	struct restore_options o = { .jobs = 1, .progress = cleanup_progress,
	                             .progress_ctx = &dropped };
	struct restore_result res;

	make_bundle(&b);
	cr_assert_eq(restore_with(&b, 1, SHA_A, &o, NULL, &res), 0, "%s", err.message);
	cr_assert_eq(dropped, 0);
	assert_same_as_source();
	free_bundle(&b);
}

struct racer {
	struct bundle *b;
	uint64_t seq;
	int r;
	struct alerr e;
	int *inside, *overlap;
	pthread_mutex_t *mu;
};

static void *racer_main(void *arg)
{
	struct racer *ra = arg;
	struct restore_lock *l = NULL;
	struct restore_record rec = make_record(ra->seq, ra->seq == 1 ? SHA_A : SHA_B);
	struct restore_options o = { .conninfo = tgt.conninfo, .jobs = 1 };
	struct restore_result res;
	struct swap_ctx sc = { 0 };

	alerr_clear(&ra->e);
	ra->r = restore_lock_channel(tgt.conninfo, "nvd", 0, &l, &ra->e);
	if (ra->r < 0)
		return NULL;
	pthread_mutex_lock(ra->mu);
	if ((*ra->inside)++)
		*ra->overlap = 1;
	pthread_mutex_unlock(ra->mu);
	ra->r = restore_run(&o, ra->b->u, ra->b->m, &rec, before_swap, &sc, &res, &ra->e);
	usleep(100000);
	pthread_mutex_lock(ra->mu);
	(*ra->inside)--;
	pthread_mutex_unlock(ra->mu);
	restore_lock_free(l);
	return NULL;
}

Test(restore, two_imports_of_a_channel_serialize)
{
	struct bundle b1 = { 0 }, b2 = { 0 };
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	int inside = 0, overlap = 0;
	struct racer ra[2] = {
		{ .b = &b1, .seq = 1, .inside = &inside, .overlap = &overlap, .mu = &mu },
		{ .b = &b2, .seq = 2, .inside = &inside, .overlap = &overlap, .mu = &mu },
	};
	pthread_t th[2];
	char *v;
	int i;

	make_bundle(&b1);
	make_bundle(&b2);
	for (i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, racer_main, &ra[i]), 0);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 2; i++)
		cr_assert_eq(ra[i].r, 0, "%d: %s [%s]", i, ra[i].e.message, ra[i].e.reason);
	cr_assert_eq(overlap, 0, "both held the channel at once");
	assert_same_as_source();
	v = value(&tgt, "SELECT string_agg(sequence::text, ',' ORDER BY sequence)"
	          " FROM airlock.imports");
	cr_assert_str_eq(v, "1,2");
	free(v);
	cr_assert_eq(staging_count(), 0);
	free_bundle(&b1);
	free_bundle(&b2);
}

Test(restore, read_state)
{
	struct bundle b = { 0 };
	struct restore_state st;

	cr_assert_eq(restore_read_state(tgt.conninfo, "nvd", &st, &err), 0, "%s",
	             err.message);
	cr_assert_eq(st.has_last, 0);
	cr_assert_eq(st.last_sequence, 0);
	cr_assert_eq(st.newest_created, 0);
	make_bundle(&b);
	restore_ok(&b, 5);
	alerr_clear(&err);
	cr_assert_eq(restore_read_state(tgt.conninfo, "nvd", &st, &err), 0, "%s",
	             err.message);
	cr_assert_eq(st.has_last, 1);
	cr_assert_eq(st.last_sequence, 5);
	cr_assert_str_eq(st.last_manifest_sha256, SHA_A);
	cr_assert_eq(st.newest_created, 1700000005);
	cr_assert_eq(restore_read_state(tgt.conninfo, "other", &st, &err), 0, "%s",
	             err.message);
	cr_assert_eq(st.has_last, 0);
	cr_assert_eq(st.newest_created, 1700000005);
	free_bundle(&b);
}

Test(restore, major_version)
{
	cr_assert_eq(restore_major(150018), 15);
	cr_assert_eq(restore_major(100000), 10);
	cr_assert_eq(restore_major(90624), 906);
}
