/* The export module against a real PostgreSQL cluster: the synthetic feed
 * of tests/fixtures/feeds.sql (and feeds_big.sql for segments), each Test
 * in its own database cloned from a template. The catalog is checked
 * field by field, then used to re-create the schema and load the COPY
 * text back, which must give the same rows. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <json.h>
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
#include "pg.h"

#define CLUSTER "export"
#define TMPL "feeds_tmpl"
#define TMPL_BIG "feeds_big_tmpl"

static struct harness_pg runner_pg;

static char *fixture(const char *name)
{
	char *path = harness_strdup_printf("%s/tests/fixtures/%s", harness_srcdir(), name);
	char *text = harness_read_file(path, NULL);

	if (!text)
		fprintf(stderr, "test-export: cannot read %s\n", path);
	free(path);
	return text;
}

/* pg with another database (the strings stay pg's, but conninfo). */
static struct harness_pg with_db(const struct harness_pg *pg, const char *dbname)
{
	struct harness_pg d = *pg;

	d.conninfo = harness_strdup_printf("%s dbname=%s", pg->conninfo, dbname);
	d.dbname = NULL;
	d.owner = 0;
	return d;
}

static int load(const struct harness_pg *pg, const char *dbname, const char *file)
{
	struct harness_pg d = with_db(pg, dbname);
	char *sql = fixture(file);
	int rc = sql ? harness_pg_exec(&d, sql, NULL) : -1;

	free(sql);
	free(d.conninfo);
	return rc;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (harness_pg_start(&runner_pg, CLUSTER) != 0 ||
	    harness_pg_exec(&runner_pg, "CREATE DATABASE " TMPL, NULL) != 0 ||
	    load(&runner_pg, TMPL, "feeds.sql") != 0 ||
	    harness_pg_exec(&runner_pg, "CREATE DATABASE " TMPL_BIG " TEMPLATE "
	                    TMPL, NULL) != 0 ||
	    load(&runner_pg, TMPL_BIG, "feeds_big.sql") != 0)
		fprintf(stderr, "test-export: the shared cluster is not ready\n");
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	harness_pg_stop(&runner_pg);
}

/* ------------------------------------------------------------------ */

static struct harness_pg pg;    /* the shared cluster */
static struct harness_pg db;    /* this Test's database in it */
static char *dbname;
static struct alerr err;
static struct manifest *man;
static struct export_result res;

static void setup(void)
{
	cr_assert_eq(harness_pg_shared(&pg, CLUSTER), 0, "shared cluster");
	alerr_clear(&err);
	man = manifest_new();
	cr_assert_not_null(man);
	memset(&res, 0, sizeof(res));
	dbname = NULL;
	memset(&db, 0, sizeof(db));
}

static void teardown(void)
{
	if (dbname) {
		char *sql = harness_strdup_printf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
		                                  dbname);

		harness_pg_exec(&pg, sql, NULL);
		free(sql);
	}
	free(dbname);
	free(db.conninfo);
	export_result_clear(&res);
	manifest_free(man);
	harness_pg_stop(&pg);
}

TestSuite(export, .init = setup, .fini = teardown);

/* This Test's own database, cloned from a template. */
static void use_db(const char *tmpl)
{
	char *sql;

	dbname = harness_strdup_printf("t%ld", (long)getpid());
	sql = harness_strdup_printf("CREATE DATABASE %s TEMPLATE %s", dbname, tmpl);
	cr_assert_eq(harness_pg_exec(&pg, sql, NULL), 0, "%s", sql);
	free(sql);
	db = with_db(&pg, dbname);
}

static void sql_ok(const char *sql)
{
	cr_assert_eq(harness_pg_exec(&db, sql, NULL), 0, "%s", sql);
}

static char *sql_value(const char *sql)
{
	char *v = NULL;

	cr_assert_eq(harness_pg_exec(&db, sql, &v), 0, "%s", sql);
	return v;
}

/* ------------------------------------------------------------------ */
/* Collecting the members */

struct member {
	char *name;
	char *data;             /* NUL-terminated copy */
	size_t len;
};

struct collect;
typedef int (*hook_fn)(struct collect *c, const char *name, struct alerr *e);

struct collect {
	struct member *m;
	size_t n;
	hook_fn hook;           /* before each member is stored */
	const struct harness_pg *pg;
	int fired;
};

static int collect_emit(void *ctx, const char *name, const void *data, size_t len,
                        struct alerr *e)
{
	struct collect *c = ctx;
	struct member *m;

	cr_assert_leq(len, PAYLOAD_SEGMENT_SIZE > PAYLOAD_CATALOG_MAX ?
	              PAYLOAD_SEGMENT_SIZE : PAYLOAD_CATALOG_MAX);
	if (c->hook) {
		int r = c->hook(c, name, e);

		if (r < 0)
			return r;
	}
	c->m = realloc(c->m, (c->n + 1) * sizeof(*c->m));
	cr_assert_not_null(c->m);
	m = &c->m[c->n++];
	m->name = strdup(name);
	m->data = malloc(len + 1);
	cr_assert(m->name && m->data);
	memcpy(m->data, data, len);
	m->data[len] = '\0';
	m->len = len;
	return 0;
}

static void collect_free(struct collect *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->m[i].name);
		free(c->m[i].data);
	}
	free(c->m);
	memset(c, 0, sizeof(*c));
}

static const struct member *member(const struct collect *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->m[i].name, name) == 0)
			return &c->m[i];
	return NULL;
}

/* The member, which must exist. */
static const struct member *must(const struct collect *c, const char *name)
{
	static char empty[1];
	static const struct member none = { .name = empty, .data = empty };
	const struct member *m = member(c, name);

	cr_assert_not_null(m, "%s emitted", name);
	return m ? m : &none;
}

/* A table's segments, concatenated; *count gets their number. */
static char *table_text(const struct collect *c, const char *schema,
                        const char *table, size_t *len, size_t *count)
{
	char *prefix = harness_strdup_printf("data/%s/%s/", schema, table);
	char *out = malloc(1);
	size_t i, n = 0, k = 0;

	cr_assert_not_null(out);
	for (i = 0; i < c->n; i++) {
		char want[16];

		if (strncmp(c->m[i].name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(want, sizeof(want), "%06zu.copy", k);
		cr_assert_str_eq(c->m[i].name + strlen(prefix), want,
		                 "segments contiguous from 000000");
		out = realloc(out, n + c->m[i].len + 1);
		cr_assert_not_null(out);
		memcpy(out + n, c->m[i].data, c->m[i].len);
		n += c->m[i].len;
		k++;
	}
	out[n] = '\0';
	free(prefix);
	if (len)
		*len = n;
	if (count)
		*count = k;
	return out;
}

/* A work directory of this Test's own (Tests share the scratch directory). */
static char *mkwork(const char *tag)
{
	char *name = harness_strdup_printf("%s-%ld", tag, (long)getpid());
	char *path = harness_mkdir(name, 0700);

	free(name);
	return path;
}

static int run_export(const char *conninfo, const char *const *schemas, size_t n,
                      unsigned int jobs, const char *workdir, struct collect *c)
{
	struct export_options o = {
		.conninfo = conninfo,
		.schemas = schemas,
		.n_schemas = n,
		.jobs = jobs,
		.workdir = workdir,
	};

	return export_run(&o, man, collect_emit, c, &res, &err);
}

static void export_ok(const char *const *schemas, size_t n, unsigned int jobs,
                      struct collect *c)
{
	char *work = NULL;
	int r;

	if (jobs > 1)
		work = mkwork("work");
	r = run_export(db.conninfo, schemas, n, jobs, work, c);
	cr_assert_eq(r, 0, "export_run: %s [%s]", err.message, err.reason);
	if (work) {
		/* the private spool directory is gone */
		DIR *d = opendir(work);
		struct dirent *de;
		int entries = 0;

		cr_assert_not_null(d);
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				entries++;
		closedir(d);
		cr_assert_eq(entries, 0, "work directory emptied");
		rmdir(work);
		free(work);
	}
}

static const char *const feeds[] = { "feeds" };

/* The tables of feeds.sql, in catalog (byte) order. */
static const char *const feeds_tables[] = {
	"MixedCase", "advisories", "cvss", "empty_table", "nocols", "packages",
	"vendors",
};
#define N_FEEDS_TABLES (sizeof(feeds_tables) / sizeof(feeds_tables[0]))

/* ------------------------------------------------------------------ */
/* JSON helpers */

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "key \"%s\" present", key);
	return v;
}

static const char *jstring(json_object *o, const char *key)
{
	json_object *v = jget(o, key);

	if (!v)
		return NULL;
	cr_assert(json_object_is_type(v, json_type_string), "%s is a string", key);
	return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v = jget(o, key);

	cr_assert(json_object_is_type(v, json_type_int), "%s is an integer", key);
	return json_object_get_int64(v);
}

static int jbool(json_object *o, const char *key)
{
	json_object *v = jget(o, key);

	cr_assert(json_object_is_type(v, json_type_boolean), "%s is a boolean", key);
	return json_object_get_boolean(v);
}

static json_object *jfind(json_object *arr, const char *name)
{
	size_t i, n = json_object_array_length(arr);

	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);

		if (strcmp(jstring(o, "name"), name) == 0)
			return o;
	}
	cr_assert_fail("\"%s\" not in the list", name);
	return NULL;
}

static void assert_names(json_object *arr, const char *const *want, size_t n)
{
	size_t i;

	cr_assert_eq(json_object_array_length(arr), n, "%zu entries",
	             json_object_array_length(arr));
	for (i = 0; i < n; i++)
		cr_assert_str_eq(jstring(json_object_array_get_idx(arr, i), "name"),
		                 want[i], "entry %zu", i);
}

static json_object *parse_catalog(const struct collect *c)
{
	const struct member *m = member(c, "catalog.json");
	json_object *root;

	cr_assert_not_null(m, "catalog.json emitted");
	root = json_tokener_parse(m->data);
	cr_assert_not_null(root, "catalog.json parses");
	cr_assert_str_eq(jstring(root, "format"), "airlock-catalog/1");
	return root;
}

/* ------------------------------------------------------------------ */

Test(export, catalog_content)
{
	static const char *const seqs[] = {
		"advisories_id_seq", "countdown", "cvss_id_seq", "ticket_seq",
		"vendors_id_seq",
	};
	static const char *const views[] = { "recent", "critical" };
	static const char *const adv_cols[] = {
		"id", "vendor_id", "ident", "severity", "published", "summary",
		"details", "refs", "raw", "score", "fix_window", "seen",
	};
	static const char *const adv_cons[] = {
		"advisories_ident_key", "advisories_pkey", "advisories_severity_check",
		"advisories_vendor_id_fkey",
	};
	static const char *const adv_idx[] = {
		"advisories_lower_ident_idx", "advisories_published_idx",
	};
	struct collect c = { 0 };
	json_object *root, *schemas, *s, *tables, *t, *o;
	size_t i;

	use_db(TMPL);
	export_ok(feeds, 1, 1, &c);
	root = parse_catalog(&c);
	schemas = jget(root, "schemas");
	cr_assert_eq(json_object_array_length(schemas), 1);
	s = json_object_array_get_idx(schemas, 0);
	cr_assert_str_eq(jstring(s, "name"), "feeds");
	cr_assert_str_eq(jstring(s, "comment"), "synthetic vulnerability feed");

	/* sequences, by name, with their values */
	assert_names(jget(s, "sequences"), seqs, 5);
	o = jfind(jget(s, "sequences"), "ticket_seq");
	cr_assert_str_eq(jstring(o, "type"), "integer");
	cr_assert_eq(jint(o, "start"), 100);
	cr_assert_eq(jint(o, "increment"), 5);
	cr_assert_eq(jint(o, "min"), 100);
	cr_assert_eq(jint(o, "max"), 100000);
	cr_assert_eq(jint(o, "cache"), 1);
	cr_assert(jbool(o, "cycle"));
	cr_assert_eq(jint(o, "last_value"), 105);
	cr_assert(jbool(o, "is_called"));
	cr_assert_null(jget(o, "owned_by"));
	cr_assert_str_eq(jstring(o, "comment"), "ticket numbers");
	o = jfind(jget(s, "sequences"), "countdown");
	cr_assert_eq(jint(o, "min"), INT64_MIN);
	cr_assert_eq(jint(o, "max"), -1);
	cr_assert_eq(jint(o, "start"), -1);
	cr_assert_eq(jint(o, "increment"), -1);
	cr_assert_eq(jint(o, "last_value"), -1);
	cr_assert_not(jbool(o, "is_called"));
	o = jfind(jget(s, "sequences"), "vendors_id_seq");
	cr_assert_str_eq(jstring(o, "owned_by"), "vendors.id");
	cr_assert_eq(jint(o, "last_value"), 6);
	cr_assert_null(jget(o, "comment"));
	o = jfind(jget(s, "sequences"), "advisories_id_seq");
	cr_assert_str_eq(jstring(o, "type"), "bigint");
	cr_assert_str_eq(jstring(o, "owned_by"), "advisories.id");
	cr_assert_eq(jint(o, "max"), INT64_MAX);
	cr_assert_eq(jint(o, "last_value"), 3005);
	o = jfind(jget(s, "sequences"), "cvss_id_seq");
	cr_assert_eq(jint(o, "start"), 1000);
	cr_assert_eq(jint(o, "increment"), 10);
	cr_assert_eq(jint(o, "last_value"), 1020);

	/* tables, by name, without row or segment counts */
	tables = jget(s, "tables");
	assert_names(tables, feeds_tables, N_FEEDS_TABLES);
	t = jfind(tables, "advisories");
	cr_assert_str_eq(jstring(t, "comment"), "one row per advisory");
	cr_assert_not(json_object_object_get_ex(t, "rows", NULL));
	cr_assert_not(json_object_object_get_ex(t, "segments", NULL));
	assert_names(jget(t, "columns"), adv_cols, 12);
	o = jfind(jget(t, "columns"), "id");
	cr_assert_str_eq(jstring(o, "type"), "bigint");
	cr_assert(jbool(o, "not_null"));
	cr_assert_null(jget(o, "default"));
	cr_assert_str_eq(jstring(o, "identity"), "by default");
	o = jfind(jget(t, "columns"), "published");
	cr_assert_str_eq(jstring(o, "type"), "timestamp with time zone");
	cr_assert(jbool(o, "not_null"));
	cr_assert_str_eq(jstring(o, "default"), "now()");
	cr_assert_null(jget(o, "identity"));
	o = jfind(jget(t, "columns"), "severity");
	cr_assert_str_eq(jstring(o, "type"), "numeric(4,1)");
	cr_assert_not(jbool(o, "not_null"));
	cr_assert_str_eq(jstring(jfind(jget(t, "columns"), "refs"), "type"), "text[]");
	cr_assert_str_eq(jstring(jfind(jget(t, "columns"), "summary"), "comment"),
	                 "free text: tabs, newlines, quotes \xc2\xab\xc2\xbb");
	cr_assert_str_eq(jstring(jfind(jget(t, "columns"), "seen"), "default"),
	                 "CURRENT_DATE");
	assert_names(jget(t, "constraints"), adv_cons, 4);
	o = jfind(jget(t, "constraints"), "advisories_pkey");
	cr_assert_str_eq(jstring(o, "kind"), "p");
	cr_assert_str_eq(jstring(o, "definition"), "PRIMARY KEY (id)");
	o = jfind(jget(t, "constraints"), "advisories_ident_key");
	cr_assert_str_eq(jstring(o, "kind"), "u");
	cr_assert_str_eq(jstring(o, "definition"), "UNIQUE (ident)");
	o = jfind(jget(t, "constraints"), "advisories_severity_check");
	cr_assert_str_eq(jstring(o, "kind"), "c");
	o = jfind(jget(t, "constraints"), "advisories_vendor_id_fkey");
	cr_assert_str_eq(jstring(o, "kind"), "f");
	/* unqualified: the importer re-creates it in its staging schema */
	cr_assert_str_eq(jstring(o, "definition"),
	                 "FOREIGN KEY (vendor_id) REFERENCES vendors(id)");
	assert_names(jget(t, "indexes"), adv_idx, 2);
	o = jfind(jget(t, "indexes"), "advisories_published_idx");
	cr_assert_str_eq(jstring(o, "definition"), "CREATE INDEX advisories_published_idx "
	                 "ON advisories USING btree (published)");
	cr_assert_str_eq(jstring(o, "comment"), "by date");
	o = jfind(jget(t, "indexes"), "advisories_lower_ident_idx");
	cr_assert_null(strstr(jstring(o, "definition"), "feeds."), "%s",
	               jstring(o, "definition"));

	t = jfind(tables, "vendors");
	o = jfind(jget(t, "columns"), "id");
	cr_assert_str_eq(jstring(o, "type"), "integer");
	cr_assert_str_eq(jstring(o, "default"), "nextval('vendors_id_seq'::regclass)");
	cr_assert_null(jget(o, "identity"));
	cr_assert_str_eq(jstring(jfind(jget(t, "columns"), "name"), "comment"),
	                 "vendor name, as published");
	t = jfind(tables, "cvss");
	cr_assert_str_eq(jstring(jfind(jget(t, "columns"), "id"), "identity"), "always");
	t = jfind(tables, "packages");
	o = jfind(jget(t, "indexes"), "packages_name_range_idx");
	cr_assert_str_eq(jstring(o, "definition"), "CREATE UNIQUE INDEX "
	                 "packages_name_range_idx ON packages USING btree (name, "
	                 "version_range)");
	cr_assert_str_eq(jstring(jfind(jget(t, "columns"), "ecosystems"), "type"),
	                 "character varying(32)[]");
	t = jfind(tables, "MixedCase");
	{
		static const char *const mc[] = { "Key", "select", "with space" };

		assert_names(jget(t, "columns"), mc, 3);
	}
	t = jfind(tables, "nocols");
	cr_assert_eq(json_object_array_length(jget(t, "columns")), 0);
	cr_assert_null(jget(t, "comment"));

	/* views: "critical" reads "recent", so comes after it */
	assert_names(jget(s, "views"), views, 2);
	o = jfind(jget(s, "views"), "recent");
	cr_assert_str_eq(jstring(o, "comment"), "recent advisories");
	cr_assert_not_null(strstr(jstring(o, "definition"), "FROM (advisories a"),
	                   "%s", jstring(o, "definition"));
	for (i = 0; i < 2; i++)
		cr_assert_null(strstr(jstring(json_object_array_get_idx(jget(s, "views"), i),
		                              "definition"), "feeds."));
	json_object_put(root);
	collect_free(&c);
}

/* Each object has exactly the keys of doc/bundle-format.md 5.1, in order. */
static void assert_keys(json_object *o, const char *const *want, size_t n,
                        const char *what)
{
	size_t i = 0;

	cr_assert(json_object_is_type(o, json_type_object), "%s is an object", what);
	json_object_object_foreach(o, key, val) {
		(void)val;
		cr_assert_lt(i, n, "%s: extra key %s", what, key);
		cr_assert_str_eq(key, want[i], "%s: key %zu", what, i);
		i++;
	}
	cr_assert_eq(i, n, "%s: %zu keys", what, i);
}

#define KEYS(o, what, ...) do { \
		static const char *const k_[] = { __VA_ARGS__ }; \
		assert_keys(o, k_, sizeof(k_) / sizeof(k_[0]), what); \
	} while (0)

static void each_keys(json_object *arr, const char *what,
                      void (*check)(json_object *o, const char *what))
{
	size_t i, n = json_object_array_length(arr);

	for (i = 0; i < n; i++)
		check(json_object_array_get_idx(arr, i), what);
}

static void keys_sequence(json_object *o, const char *what)
{
	KEYS(o, what, "name", "type", "start", "increment", "min", "max", "cache",
	     "cycle", "last_value", "is_called", "owned_by", "comment");
}

static void keys_column(json_object *o, const char *what)
{
	KEYS(o, what, "name", "type", "not_null", "default", "identity", "comment");
}

static void keys_constraint(json_object *o, const char *what)
{
	KEYS(o, what, "name", "kind", "definition", "comment");
}

static void keys_index(json_object *o, const char *what)
{
	KEYS(o, what, "name", "definition", "comment");
}

static void keys_table(json_object *o, const char *what)
{
	KEYS(o, what, "name", "comment", "columns", "constraints", "indexes");
	each_keys(jget(o, "columns"), "column", keys_column);
	each_keys(jget(o, "constraints"), "constraint", keys_constraint);
	each_keys(jget(o, "indexes"), "index", keys_index);
}

static void keys_view(json_object *o, const char *what)
{
	KEYS(o, what, "name", "definition", "comment");
}

static void keys_schema(json_object *o, const char *what)
{
	KEYS(o, what, "name", "comment", "sequences", "tables", "views");
	each_keys(jget(o, "sequences"), "sequence", keys_sequence);
	each_keys(jget(o, "tables"), "table", keys_table);
	each_keys(jget(o, "views"), "view", keys_view);
}

Test(export, catalog_keys_as_documented)
{
	static const char *const both[] = { "feeds", "feeds_big" };
	struct collect c = { 0 };
	json_object *root;

	use_db(TMPL_BIG);
	export_ok(both, 2, 1, &c);
	root = parse_catalog(&c);
	KEYS(root, "catalog", "format", "schemas");
	each_keys(jget(root, "schemas"), "schema", keys_schema);
	json_object_put(root);
	collect_free(&c);
}

Test(export, members_in_catalog_order)
{
	struct collect c = { 0 };
	size_t i;

	use_db(TMPL);
	export_ok(feeds, 1, 1, &c);
	cr_assert_eq(c.n, 1 + N_FEEDS_TABLES, "one segment per small table");
	cr_assert_str_eq(c.m[0].name, "catalog.json");
	for (i = 0; i < N_FEEDS_TABLES; i++) {
		char *want = harness_strdup_printf("data/feeds/%s/000000.copy",
		                                   feeds_tables[i]);

		cr_assert_str_eq(c.m[i + 1].name, want);
		free(want);
	}
	cr_assert_eq(res.members, c.n);
	cr_assert_eq(res.tables, N_FEEDS_TABLES);
	cr_assert_eq(res.catalog_bytes, c.m[0].len);
	/* the empty table has one empty segment */
	cr_assert_eq(must(&c, "data/feeds/empty_table/000000.copy")->len, 0);
	/* rows without columns are empty lines */
	cr_assert_str_eq(must(&c, "data/feeds/nocols/000000.copy")->data, "\n\n");
	collect_free(&c);
}

Test(export, copy_text_escapes)
{
	struct collect c = { 0 };
	const struct member *v;

	use_db(TMPL);
	export_ok(feeds, 1, 1, &c);
	v = must(&c, "data/feeds/vendors/000000.copy");
	/* one raw newline per row; tabs, newlines and backslashes escaped */
	cr_assert_str_eq(v->data,
	                 "1\tAcme\thttps://acme.example\n"
	                 "2\tTab\\tCorp\t\\N\n"
	                 "3\tBack\\\\slash Ltd\tC:\\\\path\\\\to\n"
	                 "4\t\xc3\x9c" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 GmbH \xe6\xbc\xa2\xe5\xad\x97 "
	                 "\xf0\x9f\x99\x82\thttps://xn--nicd-example\n"
	                 "5\tNew\\nline\\r\\nInc\t\n"
	                 "6\t\\\\N literally\tNULL\n");
	v = must(&c, "data/feeds/cvss/000000.copy");
	cr_assert_not_null(strstr(v->data, "1010\t2\tCVSS:3.1/AV:L\tInfinity\n"), "%s",
	                   v->data);
	collect_free(&c);
}

Test(export, manifest_fields)
{
	struct collect c = { 0 };
	uint64_t total = 0;
	size_t i;

	use_db(TMPL);
	export_ok(feeds, 1, 1, &c);
	cr_assert_str_eq(man->snapshot, res.snapshot);
	cr_assert_gt(strlen(res.snapshot), 0);
	cr_assert_geq(res.server_version, 100000u);
	cr_assert_eq(man->source_server_version, res.server_version);
	cr_assert_eq(man->n_schemas, 1);
	cr_assert_str_eq(man->schemas[0], "feeds");
	cr_assert_eq(man->n_tables, N_FEEDS_TABLES);
	for (i = 0; i < man->n_tables; i++) {
		char *sql = harness_strdup_printf("SELECT count(*) FROM feeds.\"%s\"",
		                                  man->tables[i].table);
		char *v = sql_value(sql), *want = harness_strdup_printf("%llu",
		                        (unsigned long long)man->tables[i].rows);
		size_t len;
		char *text = table_text(&c, "feeds", man->tables[i].table, &len, NULL);
		uint64_t lines = 0;
		size_t k;

		cr_assert_str_eq(man->tables[i].schema, "feeds");
		cr_assert_str_eq(v, want, "rows of %s", man->tables[i].table);
		for (k = 0; k < len; k++)
			lines += text[k] == '\n';
		cr_assert_eq(lines, man->tables[i].rows);
		total += man->tables[i].rows;
		free(text);
		free(v);
		free(want);
		free(sql);
	}
	cr_assert_eq(res.rows, total);
	cr_assert_eq(man->tables[1].rows, 3005, "advisories");
	collect_free(&c);
}

/* ------------------------------------------------------------------ */
/* Round trip: re-create the schema from the catalog in "copy", load the
 * COPY text back, compare every table, view and sequence. */

static char *qi(struct pg_conn *c, const char *s)
{
	char *q = NULL;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(pg_quote_ident(c, s, &q, &e), 0, "%s", e.message);
	return q;
}

static void exec_ok(struct pg_conn *c, const char *sql)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(pg_exec(c, sql, 0, NULL, &e), 0, "%s: %s", sql, e.message);
}

static json_object *identity_sequence(json_object *seqs, const char *table,
                                      const char *column)
{
	char *owner = harness_strdup_printf("%s.%s", table, column);
	size_t i, n = json_object_array_length(seqs);
	json_object *hit = NULL;

	for (i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(seqs, i);
		json_object *ob = jget(s, "owned_by");

		if (ob && strcmp(json_object_get_string(ob), owner) == 0)
			hit = s;
	}
	free(owner);
	return hit;
}

static char *seq_options(json_object *s)
{
	return harness_strdup_printf("AS %s START WITH %lld INCREMENT BY %lld "
	                             "MINVALUE %lld MAXVALUE %lld CACHE %lld %s",
	                             jstring(s, "type"), (long long)jint(s, "start"),
	                             (long long)jint(s, "increment"),
	                             (long long)jint(s, "min"), (long long)jint(s, "max"),
	                             (long long)jint(s, "cache"),
	                             jbool(s, "cycle") ? "CYCLE" : "NO CYCLE");
}

static int is_identity_seq(json_object *tables, json_object *s)
{
	json_object *ob = jget(s, "owned_by");
	char *owner, *dot;
	json_object *col;
	int r;

	if (!ob)
		return 0;
	owner = strdup(json_object_get_string(ob));
	dot = strchr(owner, '.');
	*dot = '\0';
	col = jfind(jget(jfind(tables, owner), "columns"), dot + 1);
	r = jget(col, "identity") != NULL;
	free(owner);
	return r;
}

static void restore_schema(struct pg_conn *c, const struct collect *col,
                           json_object *s, const char *target)
{
	json_object *seqs = jget(s, "sequences"), *tables = jget(s, "tables");
	json_object *views = jget(s, "views");
	const char *name = jstring(s, "name");
	size_t i, k, pass;
	char *sql, *q;

	q = qi(c, target);
	sql = harness_strdup_printf("CREATE SCHEMA %s", q);
	exec_ok(c, sql);
	free(sql);
	sql = harness_strdup_printf("SET search_path = %s", q);
	exec_ok(c, sql);
	free(sql);
	free(q);
	for (i = 0; i < json_object_array_length(seqs); i++) {
		json_object *sq = json_object_array_get_idx(seqs, i);
		char *opt;

		if (is_identity_seq(tables, sq))
			continue;
		q = qi(c, jstring(sq, "name"));
		opt = seq_options(sq);
		sql = harness_strdup_printf("CREATE SEQUENCE %s %s", q, opt);
		exec_ok(c, sql);
		free(sql);
		free(opt);
		free(q);
	}
	for (i = 0; i < json_object_array_length(tables); i++) {
		json_object *t = json_object_array_get_idx(tables, i);
		json_object *cols = jget(t, "columns");
		char *def = strdup(""), *list = strdup(""), *text;
		uint64_t rows = 0;
		size_t len;
		struct alerr e;

		for (k = 0; k < json_object_array_length(cols); k++) {
			json_object *cl = json_object_array_get_idx(cols, k);
			char *qc = qi(c, jstring(cl, "name")), *more, *ident = strdup("");

			if (jget(cl, "identity")) {
				json_object *sq = identity_sequence(seqs, jstring(t, "name"),
				                                    jstring(cl, "name"));
				char *qs = qi(c, jstring(sq, "name")), *opt = seq_options(sq);

				free(ident);
				ident = harness_strdup_printf(" GENERATED %s AS IDENTITY "
				                              "(SEQUENCE NAME %s %s)",
				                              strcmp(jstring(cl, "identity"),
				                                     "always") == 0 ?
				                              "ALWAYS" : "BY DEFAULT", qs,
				                              strstr(opt, "START"));
				free(qs);
				free(opt);
			}
			more = harness_strdup_printf("%s%s%s %s%s%s%s%s", def, k ? ", " : "",
			                             qc, jstring(cl, "type"), ident,
			                             jget(cl, "default") ? " DEFAULT " : "",
			                             jget(cl, "default") ?
			                             jstring(cl, "default") : "",
			                             jbool(cl, "not_null") ? " NOT NULL" : "");
			free(def);
			def = more;
			more = harness_strdup_printf("%s%s%s", list, k ? ", " : "", qc);
			free(list);
			list = more;
			free(ident);
			free(qc);
		}
		q = qi(c, jstring(t, "name"));
		sql = harness_strdup_printf("CREATE TABLE %s (%s)", q, def);
		exec_ok(c, sql);
		free(sql);
		sql = k ? harness_strdup_printf("COPY %s (%s) FROM STDIN", q, list)
		        : harness_strdup_printf("COPY %s FROM STDIN", q);
		alerr_clear(&e);
		cr_assert_eq(pg_copy_in_begin(c, sql, &e), 0, "%s: %s", sql, e.message);
		text = table_text(col, name, jstring(t, "name"), &len, NULL);
		cr_assert_eq(pg_copy_in_put(c, text, len, &e), 0, "%s", e.message);
		cr_assert_eq(pg_copy_in_end(c, NULL, &rows, &e), 0, "%s: %s",
		             jstring(t, "name"), e.message);
		free(text);
		free(sql);
		free(q);
		free(def);
		free(list);
	}
	/* constraints (foreign keys last), indexes, views, sequence values */
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < json_object_array_length(tables); i++) {
			json_object *t = json_object_array_get_idx(tables, i);
			json_object *cons = jget(t, "constraints");

			for (k = 0; k < json_object_array_length(cons); k++) {
				json_object *cn = json_object_array_get_idx(cons, k);
				char *qt, *qc;

				if ((strcmp(jstring(cn, "kind"), "f") == 0) != (pass == 1))
					continue;
				qt = qi(c, jstring(t, "name"));
				qc = qi(c, jstring(cn, "name"));
				sql = harness_strdup_printf("ALTER TABLE %s ADD CONSTRAINT %s %s",
				                            qt, qc, jstring(cn, "definition"));
				exec_ok(c, sql);
				free(sql);
				free(qt);
				free(qc);
			}
			if (pass == 0) {
				json_object *idx = jget(t, "indexes");

				for (k = 0; k < json_object_array_length(idx); k++)
					exec_ok(c, jstring(json_object_array_get_idx(idx, k),
					                   "definition"));
			}
		}
	for (i = 0; i < json_object_array_length(views); i++) {
		json_object *v = json_object_array_get_idx(views, i);

		q = qi(c, jstring(v, "name"));
		sql = harness_strdup_printf("CREATE VIEW %s AS %s", q, jstring(v, "definition"));
		exec_ok(c, sql);
		free(sql);
		free(q);
	}
	for (i = 0; i < json_object_array_length(seqs); i++) {
		json_object *sq = json_object_array_get_idx(seqs, i);

		q = qi(c, jstring(sq, "name"));
		sql = harness_strdup_printf("SELECT setval('%s', %lld, %s)", q,
		                            (long long)jint(sq, "last_value"),
		                            jbool(sq, "is_called") ? "true" : "false");
		exec_ok(c, sql);
		free(sql);
		free(q);
	}
}

static void assert_same(const char *what, const char *a, const char *b)
{
	char *qa = harness_strdup_printf("SELECT md5(string_agg(t::text, ',' ORDER BY "
	                                 "t::text)) || ' ' || count(*) FROM %s t", a);
	char *qb = harness_strdup_printf("SELECT md5(string_agg(t::text, ',' ORDER BY "
	                                 "t::text)) || ' ' || count(*) FROM %s t", b);
	char *va = sql_value(qa), *vb = sql_value(qb);

	cr_assert_str_eq(va, vb, "%s: %s vs %s", what, a, b);
	free(qa);
	free(qb);
	free(va);
	free(vb);
}

Test(export, round_trip)
{
	struct collect c = { 0 };
	struct pg_conn *conn = NULL;
	json_object *root, *s;
	size_t i;

	use_db(TMPL);
	export_ok(feeds, 1, 1, &c);
	root = parse_catalog(&c);
	s = json_object_array_get_idx(jget(root, "schemas"), 0);
	cr_assert_eq(pg_connect(db.conninfo, &conn, &err), 0, "%s", err.message);
	restore_schema(conn, &c, s, "copy");
	pg_close(conn);
	for (i = 0; i < N_FEEDS_TABLES; i++) {
		char *a = harness_strdup_printf("feeds.\"%s\"", feeds_tables[i]);
		char *b = harness_strdup_printf("copy.\"%s\"", feeds_tables[i]);

		assert_same("table", a, b);
		free(a);
		free(b);
	}
	assert_same("view", "feeds.recent", "copy.recent");
	assert_same("view", "feeds.critical", "copy.critical");
	{
		char *a = sql_value("SELECT string_agg(sequencename || ' ' || "
		                    "coalesce(last_value::text, '-') || ' ' || "
		                    "nextval(schemaname || '.' || sequencename), ',' "
		                    "ORDER BY sequencename) FROM pg_sequences WHERE "
		                    "schemaname = 'feeds'");
		char *b = sql_value("SELECT string_agg(sequencename || ' ' || "
		                    "coalesce(last_value::text, '-') || ' ' || "
		                    "nextval(schemaname || '.' || sequencename), ',' "
		                    "ORDER BY sequencename) FROM pg_sequences WHERE "
		                    "schemaname = 'copy'");

		cr_assert_str_eq(a, b, "sequences");
		free(a);
		free(b);
	}
	/* the keys are back too */
	{
		char *v = sql_value("SELECT count(*) FROM pg_constraint WHERE "
		                    "connamespace = 'copy'::regnamespace");
		char *w = sql_value("SELECT count(*) FROM pg_constraint WHERE "
		                    "connamespace = 'feeds'::regnamespace");

		cr_assert_str_eq(v, w);
		free(v);
		free(w);
	}
	json_object_put(root);
	collect_free(&c);
}

/* ------------------------------------------------------------------ */

Test(export, segments)
{
	static const char *const both[] = { "feeds_big", "feeds" };
	struct collect c = { 0 };
	size_t len, count, i, lines = 0;
	char *text;
	json_object *root, *schemas;

	use_db(TMPL_BIG);
	export_ok(both, 2, 1, &c);
	text = table_text(&c, "feeds_big", "blob", &len, &count);
	cr_assert_gt(len, 2u * PAYLOAD_SEGMENT_SIZE);
	cr_assert_eq(count, (len + PAYLOAD_SEGMENT_SIZE - 1) / PAYLOAD_SEGMENT_SIZE);
	cr_assert_eq(count, 3);
	cr_assert_eq(must(&c, "data/feeds_big/blob/000000.copy")->len,
	             PAYLOAD_SEGMENT_SIZE);
	cr_assert_eq(must(&c, "data/feeds_big/blob/000001.copy")->len,
	             PAYLOAD_SEGMENT_SIZE);
	cr_assert_eq(must(&c, "data/feeds_big/blob/000002.copy")->len,
	             len - 2u * PAYLOAD_SEGMENT_SIZE);
	for (i = 0; i < len; i++)
		lines += text[i] == '\n';
	cr_assert_eq(lines, 200000);
	cr_assert_eq(text[len - 1], '\n');
	free(text);
	text = table_text(&c, "feeds_big", "nothing", &len, &count);
	cr_assert_eq(count, 1);
	cr_assert_eq(len, 0);
	free(text);
	/* schemas in byte order: feeds before feeds_big, whatever the
	 * order of the options */
	cr_assert_str_eq(c.m[1].name, "data/feeds/MixedCase/000000.copy");
	cr_assert_str_eq(c.m[c.n - 1].name, "data/feeds_big/nothing/000000.copy");
	root = parse_catalog(&c);
	schemas = jget(root, "schemas");
	cr_assert_eq(json_object_array_length(schemas), 2);
	cr_assert_str_eq(jstring(json_object_array_get_idx(schemas, 0), "name"), "feeds");
	cr_assert_str_eq(jstring(json_object_array_get_idx(schemas, 1), "name"),
	                 "feeds_big");
	cr_assert_eq(man->n_schemas, 2);
	cr_assert_eq(man->n_tables, N_FEEDS_TABLES + 2);
	json_object_put(root);
	collect_free(&c);
}

static void assert_same_members(const struct collect *a, const struct collect *b)
{
	size_t i;

	cr_assert_eq(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		cr_assert_str_eq(a->m[i].name, b->m[i].name);
		cr_assert_eq(a->m[i].len, b->m[i].len, "%s", a->m[i].name);
		cr_assert(memcmp(a->m[i].data, b->m[i].data, a->m[i].len) == 0,
		          "%s differs", a->m[i].name);
	}
}

/* While the rows stream, count the export's connections and look for
 * its private spool directory. */
static char *seen_workdir;

static int hook_count_connections(struct collect *c, const char *name,
                                  struct alerr *e)
{
	char *v = NULL;
	DIR *d;
	struct dirent *de;

	(void)e;
	if (c->fired || strncmp(name, "data/", 5) != 0)
		return 0;
	cr_assert_eq(harness_pg_exec(c->pg, "SELECT count(*) FROM pg_stat_activity "
	                             "WHERE application_name = 'airlock' AND "
	                             "datname = current_database()", &v), 0);
	c->fired = atoi(v);
	free(v);
	d = opendir(seen_workdir);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "airlock-export.", 15) == 0)
			c->fired += 100;
	closedir(d);
	return 0;
}

Test(export, parallel_jobs_give_identical_output)
{
	static const char *const both[] = { "feeds", "feeds_big" };
	struct collect one = { 0 }, two = { 0 };
	struct collect four = { .hook = hook_count_connections };
	struct manifest *m1;
	size_t i;

	use_db(TMPL_BIG);
	export_ok(both, 2, 1, &one);
	m1 = man;
	man = manifest_new();
	export_result_clear(&res);
	export_ok(both, 2, 2, &two);
	assert_same_members(&one, &two);
	cr_assert_eq(man->n_tables, m1->n_tables);
	for (i = 0; i < man->n_tables; i++) {
		cr_assert_str_eq(man->tables[i].table, m1->tables[i].table);
		cr_assert_eq(man->tables[i].rows, m1->tables[i].rows);
	}
	manifest_free(man);
	man = manifest_new();
	export_result_clear(&res);
	four.pg = &db;
	seen_workdir = mkwork("seen");
	cr_assert_eq(run_export(db.conninfo, both, 2, 4, seen_workdir, &four), 0, "%s",
	             err.message);
	/* four connections in one snapshot, and a spool directory */
	cr_assert_eq(four.fired, 104);
	cr_assert_eq(rmdir(seen_workdir), 0, "spool directory removed");
	free(seen_workdir);
	assert_same_members(&one, &four);
	cr_assert_eq(res.tables, N_FEEDS_TABLES + 2);
	manifest_free(m1);
	collect_free(&one);
	collect_free(&two);
	collect_free(&four);
}

/* Rows written by another session once the export has started are not
 * in it: they arrive while catalog.json is handed over. */
static int hook_write_during_export(struct collect *c, const char *name,
                                    struct alerr *e)
{
	(void)e;
	if (strcmp(name, "catalog.json") != 0)
		return 0;
	cr_assert_eq(harness_pg_exec(c->pg,
	             "INSERT INTO feeds.vendors (name) VALUES ('late vendor');"
	             "INSERT INTO feeds.packages (advisory_id, name) VALUES (5, 'late');"
	             "UPDATE feeds.advisories SET summary = 'changed' WHERE id = 1;"
	             "DELETE FROM feeds.cvss;"
	             "INSERT INTO feeds_big.nothing VALUES (1)", NULL), 0);
	c->fired = 1;
	return 0;
}

static void snapshot_test(unsigned int jobs)
{
	static const char *const both[] = { "feeds", "feeds_big" };
	struct collect c = { .hook = hook_write_during_export, .pg = &db };
	char *text;
	size_t len;

	use_db(TMPL_BIG);
	c.pg = &db;
	export_ok(both, 2, jobs, &c);
	cr_assert(c.fired);
	text = table_text(&c, "feeds", "vendors", &len, NULL);
	cr_assert_null(strstr(text, "late vendor"));
	free(text);
	text = table_text(&c, "feeds", "packages", &len, NULL);
	cr_assert_null(strstr(text, "late"));
	free(text);
	text = table_text(&c, "feeds", "advisories", &len, NULL);
	cr_assert_null(strstr(text, "changed"));
	free(text);
	text = table_text(&c, "feeds", "cvss", &len, NULL);
	cr_assert_not_null(strstr(text, "CVSS:3.1/AV:L"));
	free(text);
	text = table_text(&c, "feeds_big", "nothing", &len, NULL);
	cr_assert_eq(len, 0);
	free(text);
	/* the rows are there for everyone else */
	text = sql_value("SELECT count(*) FROM feeds.vendors");
	cr_assert_str_eq(text, "7");
	free(text);
	cr_assert_eq(man->tables[N_FEEDS_TABLES - 1].rows, 6, "%s",
	             man->tables[N_FEEDS_TABLES - 1].table);
	collect_free(&c);
}

Test(export, snapshot_consistent)
{
	snapshot_test(1);
}

Test(export, snapshot_consistent_across_workers)
{
	snapshot_test(3);
}

/* ------------------------------------------------------------------ */
/* Objects airlock cannot carry */

static void assert_unsupported(const char *const *want, size_t n)
{
	struct collect c = { 0 };
	size_t i;
	int r;

	r = run_export(db.conninfo, feeds, 1, 1, NULL, &c);
	cr_assert_lt(r, 0);
	cr_assert_eq(err.cls, ALERR_USAGE, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, "export.unsupported", "%s", err.message);
	cr_assert_eq(alerr_exit_code(err.cls), 64);
	cr_assert_eq(c.n, 0, "nothing emitted");
	for (i = 0; i < res.n_unsupported; i++)
		fprintf(stderr, "unsupported: %s\n", res.unsupported[i]);
	cr_assert_eq(res.n_unsupported, n, "%zu objects named: %s", res.n_unsupported,
	             err.message);
	for (i = 0; i < n; i++)
		cr_assert_str_eq(res.unsupported[i], want[i]);
	if (n == 1)
		cr_assert_not_null(strstr(err.message, want[0]), "%s", err.message);
	collect_free(&c);
}

Test(export, unsupported_function)
{
	static const char *const want[] = { "function feeds.f(integer)" };

	use_db(TMPL);
	sql_ok("CREATE FUNCTION feeds.f(a integer) RETURNS integer LANGUAGE sql "
	       "AS 'SELECT a'");
	assert_unsupported(want, 1);
	cr_assert_str_eq(err.message, "1 object airlock cannot carry: "
	                 "function feeds.f(integer)");
}

Test(export, unsupported_trigger)
{
	static const char *const want[] = { "trigger touch on feeds.vendors" };

	use_db(TMPL);
	sql_ok("CREATE FUNCTION public.trg() RETURNS trigger LANGUAGE plpgsql "
	       "AS 'BEGIN RETURN NEW; END'");
	sql_ok("CREATE TRIGGER touch BEFORE INSERT ON feeds.vendors FOR EACH ROW "
	       "EXECUTE FUNCTION public.trg()");
	assert_unsupported(want, 1);
}

Test(export, unsupported_enum_type)
{
	static const char *const want[] = { "enum type feeds.mood" };

	use_db(TMPL);
	sql_ok("CREATE TYPE feeds.mood AS ENUM ('ok', 'bad')");
	assert_unsupported(want, 1);
}

Test(export, unsupported_partitioned_table)
{
	static const char *const want[] = {
		"partition feeds.p1", "partitioned table feeds.p",
	};

	use_db(TMPL);
	sql_ok("CREATE TABLE feeds.p (a int) PARTITION BY RANGE (a)");
	sql_ok("CREATE TABLE feeds.p1 PARTITION OF feeds.p FOR VALUES FROM (0) TO (10)");
	assert_unsupported(want, 2);
}

Test(export, unsupported_materialized_view)
{
	static const char *const want[] = { "materialized view feeds.mv" };

	use_db(TMPL);
	sql_ok("CREATE MATERIALIZED VIEW feeds.mv AS SELECT 1 AS a");
	assert_unsupported(want, 1);
}

Test(export, unsupported_reference_to_another_schema)
{
	static const char *const want[] = {
		"constraint cvss_other_id_fkey on table feeds.cvss refers to table "
		"public.other",
	};

	use_db(TMPL);
	sql_ok("CREATE TABLE public.other (id int PRIMARY KEY)");
	sql_ok("ALTER TABLE feeds.cvss ADD COLUMN other_id int REFERENCES public.other");
	assert_unsupported(want, 1);
}

Test(export, unsupported_all_named_in_one_error)
{
	static const char *const want[] = {
		"column feeds.cvss.other_id of type public.posint",
		"column feeds.vendors.code with collation pg_catalog.\"C\"",
		"constraint cvss_other_id_fkey on table feeds.cvss refers to table "
		"public.other",
		"domain feeds.score",
		"enum type feeds.mood",
		"exclusion constraint ex_r_excl on feeds.ex",
		"extension hstore",
		"foreign table feeds.ft",
		"function feeds.f(integer)",
		"generated column feeds.gen.b",
		"materialized view feeds.mv",
		"operator feeds.===(integer,integer)",
		"partition feeds.p1",
		"partitioned table feeds.p",
		"policy pol on feeds.vendors",
		"procedure feeds.pr()",
		"row-level security on feeds.vendors",
		"rule rul on feeds.cvss",
		"statistics object feeds.st",
		"table feeds.\"bad name\" (name is not [A-Za-z_][A-Za-z0-9_]*)",
		"table feeds.child (inherits from feeds.empty_table)",
		"trigger touch on feeds.vendors",
		"view feeds.checked with options (check_option=local)",
		"view feeds.elsewhere refers to table public.other",
	};
	size_t i;

	use_db(TMPL);
	sql_ok("CREATE FUNCTION feeds.f(a integer) RETURNS integer LANGUAGE sql "
	       "AS 'SELECT a'");
	sql_ok("CREATE PROCEDURE feeds.pr() LANGUAGE sql AS 'SELECT 1'");
	sql_ok("CREATE FUNCTION public.trg() RETURNS trigger LANGUAGE plpgsql "
	       "AS 'BEGIN RETURN NEW; END'");
	sql_ok("CREATE TRIGGER touch BEFORE INSERT ON feeds.vendors FOR EACH ROW "
	       "EXECUTE FUNCTION public.trg()");
	sql_ok("CREATE TYPE feeds.mood AS ENUM ('ok', 'bad')");
	sql_ok("CREATE DOMAIN feeds.score AS numeric CHECK (VALUE >= 0)");
	sql_ok("CREATE DOMAIN public.posint AS integer CHECK (VALUE > 0)");
	sql_ok("CREATE TABLE feeds.p (a int) PARTITION BY RANGE (a)");
	sql_ok("CREATE TABLE feeds.p1 PARTITION OF feeds.p FOR VALUES FROM (0) TO (10)");
	sql_ok("CREATE MATERIALIZED VIEW feeds.mv AS SELECT 1 AS a");
	sql_ok("ALTER TABLE feeds.vendors ENABLE ROW LEVEL SECURITY");
	sql_ok("CREATE POLICY pol ON feeds.vendors USING (true)");
	sql_ok("CREATE RULE rul AS ON INSERT TO feeds.cvss DO INSTEAD NOTHING");
	sql_ok("CREATE EXTENSION hstore SCHEMA feeds");
	sql_ok("CREATE TABLE feeds.child () INHERITS (feeds.empty_table)");
	sql_ok("CREATE TABLE feeds.gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED)");
	sql_ok("CREATE TABLE public.other (id int PRIMARY KEY)");
	sql_ok("ALTER TABLE feeds.cvss ADD COLUMN other_id public.posint "
	       "REFERENCES public.other");
	sql_ok("CREATE VIEW feeds.elsewhere AS SELECT id FROM public.other");
	sql_ok("CREATE VIEW feeds.checked AS SELECT id FROM feeds.vendors "
	       "WITH LOCAL CHECK OPTION");
	sql_ok("CREATE FOREIGN DATA WRAPPER dummy");
	sql_ok("CREATE SERVER nowhere FOREIGN DATA WRAPPER dummy");
	sql_ok("CREATE FOREIGN TABLE feeds.ft (a int) SERVER nowhere");
	sql_ok("CREATE TABLE feeds.ex (r int4range, EXCLUDE USING gist (r WITH &&))");
	sql_ok("ALTER TABLE feeds.vendors ADD COLUMN code text COLLATE \"C\"");
	sql_ok("CREATE TABLE feeds.\"bad name\" (a int)");
	sql_ok("CREATE STATISTICS feeds.st ON id, vendor_id FROM feeds.advisories");
	sql_ok("CREATE OPERATOR feeds.=== (FUNCTION = int4eq, LEFTARG = integer, "
	       "RIGHTARG = integer)");
	assert_unsupported(want, sizeof(want) / sizeof(want[0]));
	/* the message names as many as fit, and says how many more */
	cr_assert(strncmp(err.message, "24 objects airlock cannot carry: ", 33) == 0,
	          "%s", err.message);
	cr_assert_not_null(strstr(err.message, "more"), "%s", err.message);
	cr_assert_lt(strlen(err.message), ALERR_MESSAGE_MAX);
	for (i = 0; i < 3; i++)
		cr_assert_not_null(strstr(err.message, want[i]), "%s", err.message);
}

/* ------------------------------------------------------------------ */
/* Refusals and failures */

Test(export, missing_schemas_named)
{
	static const char *const schemas[] = { "nope", "feeds", "nada" };
	struct collect c = { 0 };

	use_db(TMPL);
	cr_assert_lt(run_export(db.conninfo, schemas, 3, 1, NULL, &c), 0);
	cr_assert_eq(err.cls, ALERR_USAGE);
	cr_assert_str_eq(err.reason, "export.schema_missing");
	cr_assert_str_eq(err.message, "no such schema in the source database: "
	                 "nada, nope");
	cr_assert_eq(c.n, 0);
}

Test(export, system_schema_refused)
{
	static const char *const schemas[] = { "pg_catalog" };
	struct collect c = { 0 };

	use_db(TMPL);
	cr_assert_lt(run_export(db.conninfo, schemas, 1, 1, NULL, &c), 0);
	cr_assert_eq(err.cls, ALERR_USAGE);
	cr_assert_str_eq(err.reason, "export.schema_system");
}

Test(export, bad_options)
{
	static const char *const dup[] = { "feeds", "feeds" };
	static const char *const odd[] = { "no-dash" };
	struct collect c = { 0 };

	cr_assert_lt(run_export("dbname=x", dup, 0, 1, NULL, &c), 0);
	cr_assert_str_eq(err.reason, "export.options");
	alerr_clear(&err);
	cr_assert_lt(run_export("dbname=x", dup, 1, CONFIG_MAX_JOBS + 1, NULL, &c), 0);
	cr_assert_str_eq(err.reason, "export.options");
	alerr_clear(&err);
	cr_assert_lt(run_export("dbname=x", dup, 2, 1, NULL, &c), 0);
	cr_assert_eq(err.cls, ALERR_USAGE);
	cr_assert_str_eq(err.reason, "manifest.entry_duplicate", "%s", err.message);
	manifest_free(man);
	man = manifest_new();
	alerr_clear(&err);
	cr_assert_lt(run_export("dbname=x", odd, 1, 1, NULL, &c), 0);
	cr_assert_eq(err.cls, ALERR_USAGE, "%s", err.message);
	cr_assert_eq(c.n, 0);
}

Test(export, database_down_at_start)
{
	char *ci = harness_strdup_printf("host=%s port=1 user=x dbname=x",
	                                 harness_scratch());
	struct collect c = { 0 };

	cr_assert_lt(run_export(ci, feeds, 1, 1, NULL, &c), 0);
	cr_assert_eq(err.cls, ALERR_UNAVAILABLE);
	cr_assert_str_eq(err.reason, "db.unavailable");
	cr_assert_eq(alerr_exit_code(err.cls), 69);
	cr_assert_eq(c.n, 0);
	free(ci);
}

static int hook_kill(struct collect *c, const char *name, struct alerr *e)
{
	(void)e;
	if (!c->fired && strcmp(name, "data/feeds_big/blob/000000.copy") == 0) {
		cr_assert_eq(harness_pg_kill(c->pg), 0, "kill the server");
		c->fired = 1;
	}
	return 0;
}

static void killed_test(unsigned int jobs)
{
	static const char *const big[] = { "feeds_big" };
	struct harness_pg own;
	struct collect c = { .hook = hook_kill };
	char *work = mkwork("work");
	struct export_options o = {
		.schemas = big, .n_schemas = 1, .jobs = jobs, .workdir = work,
	};
	DIR *d;
	struct dirent *de;
	int r;

	cr_assert_eq(harness_pg_start(&own, "killed"), 0);
	{
		char *sql = fixture("feeds_big.sql");

		cr_assert_eq(harness_pg_exec(&own, sql, NULL), 0);
		free(sql);
	}
	c.pg = &own;
	o.conninfo = own.conninfo;
	r = export_run(&o, man, collect_emit, &c, &res, &err);
	cr_assert(c.fired);
	cr_assert_lt(r, 0);
	cr_assert_eq(err.cls, ALERR_UNAVAILABLE, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, "db.unavailable");
	cr_assert_eq(alerr_exit_code(err.cls), 69);
	cr_assert_null(member(&c, "data/feeds_big/blob/000002.copy"));
	d = opendir(work);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		cr_assert(!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."),
		          "left behind: %s", de->d_name);
	closedir(d);
	harness_pg_stop(&own);
	collect_free(&c);
	free(work);
}

Test(export, database_killed_mid_copy)
{
	killed_test(1);
}

Test(export, database_killed_mid_copy_with_workers)
{
	killed_test(2);
}

static int hook_fail_second_table(struct collect *c, const char *name,
                                  struct alerr *e)
{
	if (strncmp(name, "data/feeds/advisories/", 22) == 0) {
		c->fired++;
		return alerr_set(e, ALERR_IOERR, -ENOSPC, "test.full", "payload full");
	}
	return 0;
}

Test(export, emit_failure_stops_the_export)
{
	unsigned int jobs;

	use_db(TMPL);
	for (jobs = 1; jobs <= 3; jobs += 2) {
		struct collect c = { .hook = hook_fail_second_table };
		char *work = mkwork(jobs == 1 ? "w1" : "w3");

		alerr_clear(&err);
		export_result_clear(&res);
		manifest_free(man);
		man = manifest_new();
		cr_assert_eq(run_export(db.conninfo, feeds, 1, jobs, work, &c), -ENOSPC);
		cr_assert_eq(err.cls, ALERR_IOERR);
		cr_assert_str_eq(err.reason, "test.full");
		cr_assert_eq(c.fired, 1, "no member after the failure");
		cr_assert_eq(c.n, 2, "catalog.json and MixedCase");
		cr_assert_eq(rmdir(work), 0, "work directory emptied");
		free(work);
		collect_free(&c);
	}
}

struct progress_log {
	uint64_t bytes, rows;
	size_t calls;
	int stop_after;
};

static int progress_cb(void *ctx, uint64_t bytes, uint64_t rows)
{
	struct progress_log *p = ctx;

	cr_assert_geq(bytes, p->bytes);
	cr_assert_geq(rows, p->rows);
	p->bytes = bytes;
	p->rows = rows;
	p->calls++;
	if (p->stop_after && p->calls == (size_t)p->stop_after)
		return -EINTR;
	return 0;
}

Test(export, progress_reported)
{
	static const char *const both[] = { "feeds", "feeds_big" };
	struct progress_log p = { 0 };
	struct collect c = { 0 };
	struct export_options o = {
		.schemas = both, .n_schemas = 2, .jobs = 1,
		.progress = progress_cb, .progress_ctx = &p,
	};

	use_db(TMPL_BIG);
	o.conninfo = db.conninfo;
	cr_assert_eq(export_run(&o, man, collect_emit, &c, &res, &err), 0, "%s",
	             err.message);
	cr_assert_gt(p.calls, N_FEEDS_TABLES + 2 + 10, "per table and per MiB");
	cr_assert_eq(p.bytes, res.bytes);
	cr_assert_eq(p.rows, res.rows);
	collect_free(&c);
}

Test(export, progress_can_stop)
{
	struct progress_log p = { .stop_after = 2 };
	struct collect c = { 0 };
	struct export_options o = {
		.schemas = feeds, .n_schemas = 1, .jobs = 1,
		.progress = progress_cb, .progress_ctx = &p,
	};

	use_db(TMPL);
	o.conninfo = db.conninfo;
	cr_assert_eq(export_run(&o, man, collect_emit, &c, &res, &err), -EINTR);
	cr_assert_str_eq(err.reason, "export.cancelled");
	cr_assert_eq(p.calls, 2);
	collect_free(&c);
}

Test(export, locked_table_is_tempfail)
{
	struct pg_conn *holder = NULL;
	struct collect c = { 0 };
	struct alerr e;
	struct export_options o = {
		.schemas = feeds, .n_schemas = 1, .jobs = 1, .timeout_ms = 1000,
	};

	use_db(TMPL);
	alerr_clear(&e);
	cr_assert_eq(pg_connect(db.conninfo, &holder, &e), 0, "%s", e.message);
	cr_assert_eq(pg_exec(holder, "BEGIN", 0, NULL, &e), 0);
	cr_assert_eq(pg_exec(holder, "LOCK TABLE feeds.vendors IN ACCESS EXCLUSIVE MODE",
	                     0, NULL, &e), 0, "%s", e.message);
	o.conninfo = db.conninfo;
	cr_assert_lt(export_run(&o, man, collect_emit, &c, &res, &err), 0);
	cr_assert_eq(err.cls, ALERR_TEMPFAIL, "%s [%s]", err.message, err.reason);
	cr_assert_str_eq(err.reason, "db.lock_timeout");
	cr_assert_eq(alerr_exit_code(err.cls), 75);
	cr_assert_eq(c.n, 0);
	pg_close(holder);
	collect_free(&c);
}
