#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "export.h"
#include "log.h"
#include "text.h"

/* ------------------------------------------------------------------ */
/* Catalog queries. Parameters: $1 the schema's oid, $2 its name. They
 * run under SET LOCAL search_path = pg_catalog (the checks, so that
 * every name outside pg_catalog comes out qualified) or = the schema
 * (the definitions, so that they come out unqualified). */

#define NOT_EXT(cat, col) \
	"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '" cat \
	"'::regclass AND e.objid = " col " AND e.deptype = 'e')"

#define NSOBJ(cat, col) \
	"SELECT pg_describe_object('" cat "'::regclass, o.oid, 0) FROM " cat \
	" o WHERE o." col " = $1 AND " NOT_EXT(cat, "o.oid")

static const char *const q_unsupported_common[] = {
	/* types defined in the schema (not the row types of its relations
	 * nor array types, which come with their element type) */
	"SELECT CASE t.typtype WHEN 'e' THEN 'enum type ' WHEN 'd' THEN 'domain '"
	" WHEN 'r' THEN 'range type ' WHEN 'c' THEN 'composite type '"
	" WHEN 'p' THEN 'pseudo-type ' ELSE 'type ' END || format_type(t.oid, NULL)"
	" FROM pg_type t WHERE t.typnamespace = $1 AND t.typtype <> 'm'"
	" AND (t.typrelid = 0 OR EXISTS (SELECT 1 FROM pg_class r"
	" WHERE r.oid = t.typrelid AND r.relkind = 'c'))"
	" AND NOT EXISTS (SELECT 1 FROM pg_type a WHERE a.typarray = t.oid)"
	" AND " NOT_EXT("pg_type", "t.oid"),

	"SELECT CASE c.relkind WHEN 'p' THEN 'partitioned table '"
	" WHEN 'f' THEN 'foreign table ' ELSE 'materialized view ' END"
	" || c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = $1"
	" AND c.relkind IN ('p', 'f', 'm') AND " NOT_EXT("pg_class", "c.oid"),

	"SELECT 'partition ' || c.oid::regclass::text FROM pg_class c"
	" WHERE c.relnamespace = $1 AND c.relkind = 'r' AND c.relispartition",

	"SELECT 'table ' || c.oid::regclass::text || ' (inherits from '"
	" || string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)"
	" || ')' FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid"
	" WHERE c.relnamespace = $1 AND c.relkind = 'r' AND NOT c.relispartition"
	" GROUP BY c.oid",

	"SELECT 'table ' || c.oid::regclass::text"
	" || ' (name is not [A-Za-z_][A-Za-z0-9_]*)' FROM pg_class c"
	" WHERE c.relnamespace = $1 AND c.relkind = 'r'"
	" AND c.relname COLLATE \"C\" !~ '^[A-Za-z_][A-Za-z0-9_]*$'",

	"SELECT 'view ' || c.oid::regclass::text || ' with options ('"
	" || array_to_string(c.reloptions, ', ') || ')' FROM pg_class c"
	" WHERE c.relnamespace = $1 AND c.relkind = 'v' AND c.reloptions IS NOT NULL",

	"SELECT 'trigger ' || quote_ident(g.tgname) || ' on '"
	" || g.tgrelid::regclass::text FROM pg_trigger g"
	" JOIN pg_class c ON c.oid = g.tgrelid"
	" WHERE c.relnamespace = $1 AND NOT g.tgisinternal",

	"SELECT 'rule ' || quote_ident(w.rulename) || ' on '"
	" || w.ev_class::regclass::text FROM pg_rewrite w"
	" JOIN pg_class c ON c.oid = w.ev_class WHERE c.relnamespace = $1"
	" AND NOT (w.rulename = '_RETURN' AND c.relkind IN ('v', 'm'))",

	"SELECT 'policy ' || quote_ident(p.polname) || ' on '"
	" || p.polrelid::regclass::text FROM pg_policy p"
	" JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = $1",

	"SELECT 'row-level security on ' || c.oid::regclass::text FROM pg_class c"
	" WHERE c.relnamespace = $1 AND (c.relrowsecurity OR c.relforcerowsecurity)",

	"SELECT 'extension ' || quote_ident(x.extname) FROM pg_extension x"
	" WHERE x.extnamespace = $1 OR EXISTS (SELECT 1 FROM pg_depend d"
	" WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = x.oid"
	" AND d.deptype = 'e'"
	" AND (pg_identify_object(d.classid, d.objid, 0)).schema = $2)",

	"SELECT 'column ' || c.oid::regclass::text || '.' || quote_ident(a.attname)"
	" || ' of type ' || format_type(a.atttypid, a.atttypmod)"
	" FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
	" JOIN pg_type t ON t.oid = a.atttypid WHERE c.relnamespace = $1"
	" AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped"
	" AND t.typnamespace <> 'pg_catalog'::regnamespace",

	"SELECT 'column ' || c.oid::regclass::text || '.' || quote_ident(a.attname)"
	" || ' with collation ' || quote_ident(n.nspname) || '.'"
	" || quote_ident(o.collname) FROM pg_attribute a"
	" JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid"
	" JOIN pg_collation o ON o.oid = a.attcollation"
	" JOIN pg_namespace n ON n.oid = o.collnamespace"
	" WHERE c.relnamespace = $1 AND c.relkind = 'r' AND a.attnum > 0"
	" AND NOT a.attisdropped AND a.attcollation <> t.typcollation",

	"SELECT 'exclusion constraint ' || quote_ident(k.conname) || ' on '"
	" || k.conrelid::regclass::text FROM pg_constraint k"
	" JOIN pg_class c ON c.oid = k.conrelid"
	" WHERE c.relnamespace = $1 AND k.contype = 'x'",

	NSOBJ("pg_operator", "oprnamespace"),
	NSOBJ("pg_opclass", "opcnamespace"),
	NSOBJ("pg_opfamily", "opfnamespace"),
	NSOBJ("pg_collation", "collnamespace"),
	NSOBJ("pg_conversion", "connamespace"),
	NSOBJ("pg_ts_config", "cfgnamespace"),
	NSOBJ("pg_ts_dict", "dictnamespace"),
	NSOBJ("pg_ts_parser", "prsnamespace"),
	NSOBJ("pg_ts_template", "tmplnamespace"),
	NSOBJ("pg_statistic_ext", "stxnamespace"),

	/* references from the schema's relations (and their defaults,
	 * constraints, view rules) to another schema; column types have
	 * their own check, an FK's index is named through its table */
	"SELECT CASE WHEN x.classid = 'pg_rewrite'::regclass"
	" THEN pg_describe_object('pg_class'::regclass, x.relid, 0)"
	" ELSE pg_describe_object(x.classid, x.objid, x.objsubid) END"
	" || ' refers to ' || pg_describe_object(x.refclassid, x.refobjid, 0)"
	" FROM (SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid,"
	" CASE d.classid WHEN 'pg_class'::regclass THEN d.objid"
	" WHEN 'pg_attrdef'::regclass THEN (SELECT ad.adrelid FROM pg_attrdef ad"
	" WHERE ad.oid = d.objid)"
	" WHEN 'pg_constraint'::regclass THEN (SELECT k.conrelid FROM pg_constraint k"
	" WHERE k.oid = d.objid)"
	" WHEN 'pg_rewrite'::regclass THEN (SELECT w.ev_class FROM pg_rewrite w"
	" WHERE w.oid = d.objid) END AS relid"
	" FROM pg_depend d WHERE d.classid IN ('pg_class'::regclass,"
	" 'pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_rewrite'::regclass)"
	" AND d.deptype IN ('n', 'a')"
	" AND NOT (d.classid = 'pg_class'::regclass AND d.objsubid > 0"
	" AND d.refclassid = 'pg_type'::regclass)"
	" AND NOT (d.classid = 'pg_constraint'::regclass"
	" AND d.refclassid = 'pg_class'::regclass AND EXISTS (SELECT 1"
	" FROM pg_class i WHERE i.oid = d.refobjid AND i.relkind IN ('i', 'I')))"
	" OFFSET 0) x"
	" JOIN pg_class c ON c.oid = x.relid"
	" CROSS JOIN LATERAL pg_identify_object(x.refclassid, x.refobjid, 0) r"
	" WHERE c.relnamespace = $1 AND r.schema IS NOT NULL"
	" AND r.schema <> 'pg_catalog' AND r.schema <> $2",
};

static const char q_unsupported_proc11[] =
	"SELECT CASE p.prokind WHEN 'p' THEN 'procedure ' WHEN 'a' THEN 'aggregate '"
	" WHEN 'w' THEN 'window function ' ELSE 'function ' END"
	" || p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = $1"
	" AND " NOT_EXT("pg_proc", "p.oid");

static const char q_unsupported_proc10[] =
	"SELECT CASE WHEN p.proisagg THEN 'aggregate '"
	" WHEN p.proiswindow THEN 'window function ' ELSE 'function ' END"
	" || p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = $1"
	" AND " NOT_EXT("pg_proc", "p.oid");

static const char q_unsupported_generated[] =
	"SELECT 'generated column ' || c.oid::regclass::text || '.'"
	" || quote_ident(a.attname) FROM pg_attribute a"
	" JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace = $1"
	" AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped"
	" AND a.attgenerated <> ''";

static const char q_schema[] =
	"SELECT n.oid, obj_description(n.oid, 'pg_namespace') FROM pg_namespace n"
	" WHERE n.nspname = $1";

static const char q_tables[] =
	"SELECT c.oid, c.relname, obj_description(c.oid, 'pg_class'),"
	" quote_ident(c.relname) FROM pg_class c"
	" WHERE c.relnamespace = $1 AND c.relkind = 'r'"
	" ORDER BY c.relname COLLATE \"C\"";

static const char q_columns[] =
	"SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod),"
	" a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),"
	" col_description(a.attrelid, a.attnum), a.attidentity"
	" FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
	" LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum"
	" WHERE c.relnamespace = $1 AND c.relkind = 'r' AND a.attnum > 0"
	" AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum";

static const char q_constraints[] =
	"SELECT k.conrelid, k.conname, k.contype, pg_get_constraintdef(k.oid),"
	" obj_description(k.oid, 'pg_constraint') FROM pg_constraint k"
	" JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = $1"
	" AND c.relkind = 'r' AND k.contype IN ('p', 'u', 'c', 'f')"
	" ORDER BY k.conrelid, k.conname COLLATE \"C\", k.oid";

static const char q_indexes[] =
	"SELECT i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid),"
	" obj_description(i.indexrelid, 'pg_class'), i.indisunique,"
	" quote_ident(ic.relname), quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
	" FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
	" JOIN pg_class c ON c.oid = i.indrelid"
	" JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relnamespace = $1 AND c.relkind = 'r'"
	" AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid"
	" AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))"
	" ORDER BY i.indrelid, ic.relname COLLATE \"C\"";

static const char q_sequences[] =
	"SELECT c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,"
	" s.seqmin, s.seqmax, s.seqcache, s.seqcycle,"
	" (SELECT t.relname || '.' || a.attname FROM pg_depend d"
	" JOIN pg_class t ON t.oid = d.refobjid JOIN pg_attribute a"
	" ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
	" WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
	" AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0"
	" AND d.deptype IN ('a', 'i') ORDER BY d.refobjid, d.refobjsubid LIMIT 1),"
	" obj_description(c.oid, 'pg_class'), quote_ident(c.relname)"
	" FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid"
	" WHERE c.relnamespace = $1 AND c.relkind = 'S'"
	" ORDER BY c.relname COLLATE \"C\"";

static const char q_views[] =
	"SELECT c.oid, c.relname, pg_get_viewdef(c.oid),"
	" obj_description(c.oid, 'pg_class') FROM pg_class c"
	" WHERE c.relnamespace = $1 AND c.relkind = 'v'"
	" ORDER BY c.relname COLLATE \"C\"";

static const char q_view_deps[] =
	"SELECT DISTINCT w.ev_class, d.refobjid FROM pg_depend d"
	" JOIN pg_rewrite w ON w.oid = d.objid"
	" JOIN pg_class v ON v.oid = d.refobjid"
	" JOIN pg_class o ON o.oid = w.ev_class"
	" WHERE d.classid = 'pg_rewrite'::regclass"
	" AND d.refclassid = 'pg_class'::regclass AND v.relkind = 'v'"
	" AND v.relnamespace = $1 AND o.relkind = 'v' AND o.relnamespace = $1"
	" AND w.ev_class <> d.refobjid";

#define MAX_UNSUPPORTED_KEPT 10000u
#define LOCK_BATCH 1000u        /* tables per LOCK statement */

/* ------------------------------------------------------------------ */

enum tstate {
	T_PENDING = 0,
	T_MAIN,         /* the main connection streams it */
	T_WORKER,       /* a worker is spooling it */
	T_SPOOLED,      /* spooled, waiting to be emitted */
	T_FAILED,       /* the worker failed: err */
	T_DONE,
};

struct xschema;

struct xtable {
	const struct xschema *sch;
	const char *schema;             /* sch->name */
	char *name;
	uint32_t oid;
	char *qname;                    /* quote_ident(name), server side */
	char *copy_sql;
	size_t ncols;
	json_object *jcolumns, *jconstraints, *jindexes;   /* borrowed */
	/* under the pool mutex */
	enum tstate state;
	int spool_fd;
	uint64_t bytes, rows;
	struct alerr err;
};

struct oidmap {
	uint32_t oid;
	size_t index;                   /* in exporter.tables */
};

struct xschema {
	const char *name;               /* the caller's string */
	char *oid;                      /* as text, for parameters */
	char *qname;                    /* PQescapeIdentifier */
	size_t first_table, n_tables;   /* range in exporter.tables */
	struct oidmap *byoid;           /* sorted by oid */
	json_object *json;              /* borrowed from the catalog */
};

struct exporter;

struct worker {
	struct exporter *x;
	struct pg_conn *conn;
	pthread_t thread;
	int started;
	char *iobuf;
};

struct exporter {
	const struct export_options *o;
	struct manifest *m;
	export_emit_fn emit;
	void *emit_ctx;
	struct export_result *res;
	struct pg_conn *main;
	struct xschema *schemas;
	size_t n_schemas;
	struct xtable *tables;
	size_t n_tables, cap_tables;
	char *segbuf;                   /* PAYLOAD_SEGMENT_SIZE */
	uint64_t bytes, rows, progress_mark;
	/* jobs > 1 */
	struct worker *workers;
	size_t n_workers;
	char *spooldir;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int sync_ready;
	size_t next, current, window;
	atomic_int stop;
};

static int nomem(struct alerr *e)
{
	return alerr_set(e, ALERR_OSERR, -ENOMEM, "export.nomem", "out of memory");
}

static char *show(char *buf, size_t size, const char *s)
{
	log_sanitize(buf, size, s, strlen(s));
	return buf;
}

/* ------------------------------------------------------------------ */
/* Small helpers */

static int parse_oid(const char *s, uint32_t *out)
{
	uint64_t v;

	if (text_parse_u64(s, strlen(s), UINT32_MAX, &v) < 0)
		return -EPROTO;
	*out = (uint32_t)v;
	return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
	uint64_t v;
	int neg = s[0] == '-';

	if (text_parse_u64(s + neg, strlen(s + neg), neg ? (uint64_t)INT64_MAX + 1u
	                                                : (uint64_t)INT64_MAX, &v) < 0)
		return -EPROTO;
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

static int bad_value(struct alerr *e, const char *what, const char *v)
{
	char shown[96];

	return alerr_set(e, ALERR_SOFTWARE, -EPROTO, "export.catalog",
	                 "unexpected %s from the catalog: \"%s\"", what,
	                 show(shown, sizeof(shown), v));
}

/* json-c: each helper records an allocation failure in *bad. */
static json_object *jstr(const char *s, int *bad)
{
	json_object *v = json_object_new_string(s);

	if (!v)
		*bad = 1;
	return v;
}

/* A text column: JSON null for SQL NULL. */
static json_object *jtext(const struct pg_result *r, size_t row, int col, int *bad)
{
	if (pg_result_isnull(r, row, col))
		return NULL;
	return jstr(pg_result_get(r, row, col), bad);
}

static json_object *jobj(int *bad)
{
	json_object *v = json_object_new_object();

	if (!v)
		*bad = 1;
	return v;
}

static json_object *jarr(int *bad)
{
	json_object *v = json_object_new_array();

	if (!v)
		*bad = 1;
	return v;
}

static void jset(json_object *o, const char *key, json_object *v, int *bad)
{
	if (!o || json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		*bad = 1;
	}
}

static void jpush(json_object *a, json_object *v, int *bad)
{
	if (!a || !v || json_object_array_add(a, v) != 0) {
		json_object_put(v);
		*bad = 1;
	}
}

static int set_search_path(struct exporter *x, const char *qname, struct alerr *e)
{
	const char *p[1] = { qname };

	return pg_exec(x->main, "SELECT pg_catalog.set_config('search_path', $1, true)",
	               1, p, e);
}

/* ------------------------------------------------------------------ */
/* Options, schemas */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_options(const struct export_options *o, struct manifest *m,
                         export_emit_fn emit, struct alerr *e)
{
	if (!o || !m || !emit)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "export.options",
		                 "export_run: missing argument");
	if (o->n_schemas == 0 || !o->schemas)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "export.options",
		                 "no schema to export");
	if (o->n_schemas > MANIFEST_MAX_SCHEMAS)
		return alerr_set(e, ALERR_USAGE, -E2BIG, "export.options",
		                 "more than %u schemas", MANIFEST_MAX_SCHEMAS);
	if (o->jobs > CONFIG_MAX_JOBS)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "export.options",
		                 "jobs must be 1 to %u", CONFIG_MAX_JOBS);
	return 0;
}

static int setup_schemas(struct exporter *x, struct alerr *e)
{
	const struct export_options *o = x->o;
	const char **names;
	char shown[96];
	size_t i;
	int r = 0;

	names = calloc(o->n_schemas, sizeof(*names));
	x->schemas = calloc(o->n_schemas, sizeof(*x->schemas));
	if (!names || !x->schemas) {
		free(names);
		return nomem(e);
	}
	for (i = 0; i < o->n_schemas; i++) {
		if (!o->schemas[i]) {
			r = alerr_set(e, ALERR_USAGE, -EINVAL, "export.options",
			              "schema name missing");
			goto out;
		}
		names[i] = o->schemas[i];
	}
	qsort(names, o->n_schemas, sizeof(*names), cmp_str);
	for (i = 0; i < o->n_schemas; i++) {
		const char *s = names[i];

		if (strncmp(s, "pg_", 3) == 0 || strcmp(s, "information_schema") == 0) {
			r = alerr_set(e, ALERR_USAGE, -EINVAL, "export.schema_system",
			              "schema %s is a system schema",
			              show(shown, sizeof(shown), s));
			goto out;
		}
		/* the identifier rule and uniqueness, as MANIFEST states them */
		r = manifest_add_schema(x->m, s, e);
		if (r < 0)
			goto out;
		x->schemas[i].name = s;
	}
	x->n_schemas = o->n_schemas;
out:
	free(names);
	return r;
}

/* Look every schema up; name all the missing ones. */
static int find_schemas(struct exporter *x, struct alerr *e)
{
	struct text_buf missing = { 0 };
	size_t i, n_missing = 0;
	int r = 0;

	for (i = 0; i < x->n_schemas; i++) {
		struct xschema *s = &x->schemas[i];
		const char *p[1] = { s->name };
		struct pg_result *res;
		int bad = 0;

		r = pg_query(x->main, q_schema, 1, p, 2, &res, e);
		if (r < 0)
			goto out;
		if (pg_result_ntuples(res) == 0) {
			text_buf_add(&missing, n_missing++ ? ", " : "");
			text_buf_add(&missing, s->name);
			pg_result_free(res);
			continue;
		}
		s->oid = strdup(pg_result_get(res, 0, 0));
		s->json = jobj(&bad);
		jset(s->json, "name", jstr(s->name, &bad), &bad);
		jset(s->json, "comment", jtext(res, 0, 1, &bad), &bad);
		pg_result_free(res);
		if (!s->oid || bad) {
			r = nomem(e);
			goto out;
		}
		r = pg_quote_ident(x->main, s->name, &s->qname, e);
		if (r < 0)
			goto out;
	}
	if (missing.bad) {
		r = nomem(e);
	} else if (n_missing) {
		r = alerr_set(e, ALERR_USAGE, -ENOENT, "export.schema_missing",
		              "no such schema in the source database: %s", missing.s);
	}
out:
	free(missing.s);
	return r;
}

/* ------------------------------------------------------------------ */
/* Objects airlock cannot carry */

static int unsupported_sql(uint32_t version, struct text_buf *q)
{
	size_t i;

	text_buf_add(q, "SELECT u FROM (");
	text_buf_add(q, version >= 110000 ? q_unsupported_proc11 : q_unsupported_proc10);
	if (version >= 120000) {
		text_buf_add(q, " UNION ALL ");
		text_buf_add(q, q_unsupported_generated);
	}
	for (i = 0; i < sizeof(q_unsupported_common) / sizeof(q_unsupported_common[0]); i++) {
		text_buf_add(q, " UNION ALL ");
		text_buf_add(q, q_unsupported_common[i]);
	}
	text_buf_add(q, ") s(u) WHERE u IS NOT NULL GROUP BY u ORDER BY u COLLATE \"C\"");
	return q->bad ? -ENOMEM : 0;
}

static int check_unsupported(struct exporter *x, struct alerr *e)
{
	struct export_result *res = x->res;
	struct text_buf q = { 0 }, msg = { 0 };
	size_t i, k, total = 0, shown_n = 0;
	int r;

	if (unsupported_sql(pg_server_version(x->main), &q) < 0) {
		free(q.s);
		return nomem(e);
	}
	r = set_search_path(x, "pg_catalog", e);
	for (i = 0; r == 0 && i < x->n_schemas; i++) {
		const char *p[2] = { x->schemas[i].oid, x->schemas[i].name };
		struct pg_result *pr;
		size_t n;

		r = pg_query(x->main, q.s, 2, p, 1, &pr, e);
		if (r < 0)
			break;
		n = pg_result_ntuples(pr);
		for (k = 0; k < n; k++) {
			char *item;

			total++;
			if (res->n_unsupported >= MAX_UNSUPPORTED_KEPT)
				continue;
			if (res->n_unsupported % 64 == 0) {
				char **grown = realloc(res->unsupported,
				                       (res->n_unsupported + 64) * sizeof(char *));

				if (!grown) {
					r = nomem(e);
					break;
				}
				res->unsupported = grown;
			}
			item = strdup(pg_result_get(pr, k, 0));
			if (!item) {
				r = nomem(e);
				break;
			}
			res->unsupported[res->n_unsupported++] = item;
		}
		pg_result_free(pr);
	}
	free(q.s);
	if (r < 0 || total == 0)
		return r;
	qsort(res->unsupported, res->n_unsupported, sizeof(char *), cmp_str);
	/* an extension spread over several exported schemas is named once */
	for (i = 1, k = 1; i < res->n_unsupported; i++) {
		if (strcmp(res->unsupported[i], res->unsupported[k - 1]) == 0) {
			free(res->unsupported[i]);
			total--;
		} else {
			res->unsupported[k++] = res->unsupported[i];
		}
	}
	if (res->n_unsupported > 0)
		res->n_unsupported = k;
	/* as many names as fit in one message line */
	for (i = 0; i < res->n_unsupported; i++) {
		char shown[ALERR_MESSAGE_MAX];

		show(shown, sizeof(shown), res->unsupported[i]);
		if (msg.len + strlen(shown) + 80 > ALERR_MESSAGE_MAX)
			break;
		text_buf_add(&msg, i ? "; " : "");
		text_buf_add(&msg, shown);
		shown_n++;
	}
	if (msg.bad) {
		free(msg.s);
		return nomem(e);
	}
	if (shown_n < total)
		r = alerr_set(e, ALERR_USAGE, -ENOTSUP, "export.unsupported",
		              "%zu objects airlock cannot carry: %s; and %zu more",
		              total, msg.s ? msg.s : "", total - shown_n);
	else
		r = alerr_set(e, ALERR_USAGE, -ENOTSUP, "export.unsupported",
		              "%zu object%s airlock cannot carry: %s", total,
		              total == 1 ? "" : "s", msg.s);
	free(msg.s);
	return r;
}

/* ------------------------------------------------------------------ */
/* The catalog */

/* A new, zeroed table at the end of the list; NULL with e set. */
static struct xtable *add_table(struct exporter *x, struct alerr *e)
{
	struct xtable *t;

	if (x->n_tables >= MANIFEST_MAX_TABLES) {
		alerr_set(e, ALERR_USAGE, -E2BIG, "export.options",
		          "more than %u tables", MANIFEST_MAX_TABLES);
		return NULL;
	}
	if (x->n_tables == x->cap_tables) {
		size_t cap = x->cap_tables ? x->cap_tables * 2 : 64;

		t = realloc(x->tables, cap * sizeof(*t));
		if (!t) {
			nomem(e);
			return NULL;
		}
		x->tables = t;
		x->cap_tables = cap;
	}
	t = &x->tables[x->n_tables++];
	memset(t, 0, sizeof(*t));
	t->spool_fd = -1;
	return t;
}

static int cmp_oidmap(const void *a, const void *b)
{
	uint32_t x = ((const struct oidmap *)a)->oid, y = ((const struct oidmap *)b)->oid;

	return x < y ? -1 : x > y;
}

/* Index the schema's tables by oid. */
static int map_tables(struct exporter *x, struct xschema *s, struct alerr *e)
{
	size_t i;

	s->byoid = calloc(s->n_tables ? s->n_tables : 1, sizeof(*s->byoid));
	if (!s->byoid)
		return nomem(e);
	for (i = 0; i < s->n_tables; i++) {
		s->byoid[i].oid = x->tables[s->first_table + i].oid;
		s->byoid[i].index = s->first_table + i;
	}
	qsort(s->byoid, s->n_tables, sizeof(*s->byoid), cmp_oidmap);
	return 0;
}

static struct xtable *table_by_oid(struct exporter *x, const struct xschema *s,
                                   const char *oid_text)
{
	struct oidmap key, *hit;

	if (parse_oid(oid_text, &key.oid) < 0 || !s->byoid)
		return NULL;
	hit = bsearch(&key, s->byoid, s->n_tables, sizeof(*s->byoid), cmp_oidmap);
	return hit ? &x->tables[hit->index] : NULL;
}

/* List the tables of each schema, in catalog order, and lock them. */
static int list_tables(struct exporter *x, struct alerr *e)
{
	char lock_ms[16];
	const char *lp[1] = { lock_ms };
	unsigned int timeout = x->o->timeout_ms ? x->o->timeout_ms : PG_DEFAULT_TIMEOUT_MS;
	size_t i, k;
	int r;

	/* a lock we cannot get is "try again later", before our own
	 * statement timeout cancels the wait */
	snprintf(lock_ms, sizeof(lock_ms), "%u", timeout / 2 ? timeout / 2 : 1);
	r = pg_exec(x->main, "SELECT pg_catalog.set_config('lock_timeout', $1, true)",
	            1, lp, e);
	if (r < 0)
		return r;
	for (i = 0; i < x->n_schemas; i++) {
		struct xschema *s = &x->schemas[i];
		const char *p[1] = { s->oid };
		struct pg_result *res;
		size_t n;

		r = pg_query(x->main, q_tables, 1, p, 4, &res, e);
		if (r < 0)
			return r;
		n = pg_result_ntuples(res);
		s->first_table = x->n_tables;
		for (k = 0; k < n && r == 0; k++) {
			struct xtable *t = add_table(x, e);

			if (!t) {
				r = e ? e->errnum : -ENOMEM;
				break;
			}
			t->sch = s;
			t->schema = s->name;
			t->name = strdup(pg_result_get(res, k, 1));
			t->qname = strdup(pg_result_get(res, k, 3));
			if (!t->name || !t->qname) {
				r = nomem(e);
				break;
			}
			if (parse_oid(pg_result_get(res, k, 0), &t->oid) < 0) {
				r = bad_value(e, "table oid", pg_result_get(res, k, 0));
				break;
			}
			if (k > 0 && strcmp(t[-1].name, t->name) >= 0) {
				r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "export.catalog",
				              "tables of schema %s not in byte order", s->name);
				break;
			}
		}
		pg_result_free(res);
		s->n_tables = x->n_tables - s->first_table;
		if (r == 0)
			r = map_tables(x, s, e);
		if (r < 0)
			return r;
	}
	/* one LOCK statement per batch of tables */
	for (k = 0; k < x->n_tables; k += LOCK_BATCH) {
		struct text_buf sql = { 0 };

		text_buf_add(&sql, "LOCK TABLE ");
		for (i = k; i < x->n_tables && i < k + LOCK_BATCH; i++) {
			text_buf_add(&sql, i > k ? ", " : "");
			text_buf_add(&sql, x->tables[i].sch->qname);
			text_buf_add(&sql, ".");
			text_buf_add(&sql, x->tables[i].qname);
		}
		text_buf_add(&sql, " IN ACCESS SHARE MODE");
		r = sql.bad ? nomem(e) : pg_exec(x->main, sql.s, 0, NULL, e);
		free(sql.s);
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_columns(struct exporter *x, struct xschema *s, struct alerr *e)
{
	const char *p[1] = { s->oid };
	struct pg_result *res;
	struct text_buf *cols = NULL;
	struct xtable *t = NULL;
	uint32_t oid;
	size_t i, k, n;
	int r, bad = 0;

	r = pg_query(x->main, q_columns, 1, p, 7, &res, e);
	if (r < 0)
		return r;
	cols = calloc(s->n_tables ? s->n_tables : 1, sizeof(*cols));
	if (!cols) {
		pg_result_free(res);
		return nomem(e);
	}
	n = pg_result_ntuples(res);
	for (k = 0; k < n && r == 0 && !bad; k++) {
		const char *ident = pg_result_get(res, k, 6);
		json_object *c;
		size_t ti;
		char *q;

		/* rows come grouped by table */
		if (!t || parse_oid(pg_result_get(res, k, 0), &oid) < 0 || oid != t->oid)
			t = table_by_oid(x, s, pg_result_get(res, k, 0));
		if (!t) {
			r = bad_value(e, "column owner", pg_result_get(res, k, 0));
			break;
		}
		ti = (size_t)(t - &x->tables[s->first_table]);
		c = jobj(&bad);
		jset(c, "name", jstr(pg_result_get(res, k, 1), &bad), &bad);
		jset(c, "type", jstr(pg_result_get(res, k, 2), &bad), &bad);
		jset(c, "not_null", json_object_new_boolean(
		             strcmp(pg_result_get(res, k, 3), "t") == 0), &bad);
		jset(c, "default", jtext(res, k, 4, &bad), &bad);
		jset(c, "identity", ident[0] == 'a' ? jstr("always", &bad) :
		     ident[0] == 'd' ? jstr("by default", &bad) : NULL, &bad);
		jset(c, "comment", jtext(res, k, 5, &bad), &bad);
		jpush(t->jcolumns, c, &bad);
		r = pg_quote_ident(x->main, pg_result_get(res, k, 1), &q, e);
		if (r < 0)
			break;
		text_buf_add(&cols[ti], t->ncols++ ? ", " : "");
		text_buf_add(&cols[ti], q);
		free(q);
	}
	pg_result_free(res);
	for (i = 0; i < s->n_tables && r == 0 && !bad; i++) {
		struct xtable *tt = &x->tables[s->first_table + i];
		struct text_buf sql = { 0 };

		text_buf_add(&sql, "COPY ");
		text_buf_add(&sql, s->qname);
		text_buf_add(&sql, ".");
		text_buf_add(&sql, tt->qname);
		/* a table without columns has no column list */
		if (tt->ncols) {
			text_buf_add(&sql, " (");
			text_buf_add(&sql, cols[i].s ? cols[i].s : "");
			text_buf_add(&sql, ")");
		}
		text_buf_add(&sql, " TO STDOUT");
		if (sql.bad || cols[i].bad)
			bad = 1;
		tt->copy_sql = sql.s;
	}
	for (i = 0; i < s->n_tables; i++)
		free(cols[i].s);
	free(cols);
	if (r == 0 && bad)
		r = nomem(e);
	return r;
}

static int read_constraints(struct exporter *x, struct xschema *s, struct alerr *e)
{
	const char *p[1] = { s->oid };
	struct pg_result *res;
	size_t k, n;
	int r, bad = 0;

	r = pg_query(x->main, q_constraints, 1, p, 5, &res, e);
	if (r < 0)
		return r;
	n = pg_result_ntuples(res);
	for (k = 0; k < n && !bad; k++) {
		struct xtable *t = table_by_oid(x, s, pg_result_get(res, k, 0));
		json_object *c;

		if (!t) {
			r = bad_value(e, "constraint owner", pg_result_get(res, k, 0));
			break;
		}
		c = jobj(&bad);
		jset(c, "name", jstr(pg_result_get(res, k, 1), &bad), &bad);
		jset(c, "kind", jstr(pg_result_get(res, k, 2), &bad), &bad);
		jset(c, "definition", jstr(pg_result_get(res, k, 3), &bad), &bad);
		jset(c, "comment", jtext(res, k, 4, &bad), &bad);
		jpush(t->jconstraints, c, &bad);
	}
	pg_result_free(res);
	if (r == 0 && bad)
		r = nomem(e);
	return r;
}

/* pg_get_indexdef() names the table with its schema whatever the
 * search_path ("CREATE INDEX i ON feeds.t USING ..."): rewrite that one
 * name, at its fixed place, to the bare table name. */
static char *unqualify_indexdef(const char *def, int unique, const char *qindex,
                                const char *qualified, const char *qtable)
{
	struct text_buf head = { 0 }, out = { 0 };
	const char *rest = NULL;

	text_buf_add(&head, unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ");
	text_buf_add(&head, qindex);
	text_buf_add(&head, " ON ");
	if (head.bad)
		goto out;
	if (strncmp(def, head.s, head.len) == 0) {
		const char *tail = def + head.len;

		if (strncmp(tail, qualified, strlen(qualified)) == 0 &&
		    strncmp(tail + strlen(qualified), " USING ", 7) == 0)
			rest = tail + strlen(qualified);
		else if (strncmp(tail, qtable, strlen(qtable)) == 0 &&
		         strncmp(tail + strlen(qtable), " USING ", 7) == 0)
			rest = tail + strlen(qtable);
	}
	if (rest) {
		text_buf_add(&out, head.s);
		text_buf_add(&out, qtable);
		text_buf_add(&out, rest);
		if (out.bad) {
			free(out.s);
			out.s = NULL;
		}
	}
out:
	free(head.s);
	return out.s;
}

static int read_indexes(struct exporter *x, struct xschema *s, struct alerr *e)
{
	const char *p[1] = { s->oid };
	struct pg_result *res;
	size_t k, n;
	int r, bad = 0;

	r = pg_query(x->main, q_indexes, 1, p, 7, &res, e);
	if (r < 0)
		return r;
	n = pg_result_ntuples(res);
	for (k = 0; k < n && !bad; k++) {
		struct xtable *t = table_by_oid(x, s, pg_result_get(res, k, 0));
		json_object *c;
		char *def;

		if (!t) {
			r = bad_value(e, "index owner", pg_result_get(res, k, 0));
			break;
		}
		def = unqualify_indexdef(pg_result_get(res, k, 2),
		                         strcmp(pg_result_get(res, k, 4), "t") == 0,
		                         pg_result_get(res, k, 5),
		                         pg_result_get(res, k, 6), t->qname);
		if (!def) {
			r = bad_value(e, "index definition", pg_result_get(res, k, 2));
			break;
		}
		c = jobj(&bad);
		jset(c, "name", jstr(pg_result_get(res, k, 1), &bad), &bad);
		jset(c, "definition", jstr(def, &bad), &bad);
		jset(c, "comment", jtext(res, k, 3, &bad), &bad);
		jpush(t->jindexes, c, &bad);
		free(def);
	}
	pg_result_free(res);
	if (r == 0 && bad)
		r = nomem(e);
	return r;
}

static int read_tables(struct exporter *x, struct xschema *s, json_object *arr,
                       struct alerr *e)
{
	const char *p[1] = { s->oid };
	struct pg_result *res;
	size_t k, n;
	int r, bad = 0;

	/* the comments, in the snapshot */
	r = pg_query(x->main, q_tables, 1, p, 4, &res, e);
	if (r < 0)
		return r;
	n = pg_result_ntuples(res);
	if (n != s->n_tables) {
		pg_result_free(res);
		return alerr_set(e, ALERR_SOFTWARE, -EPROTO, "export.catalog",
		                 "the tables of schema %s changed", s->name);
	}
	for (k = 0; k < n && !bad; k++) {
		struct xtable *t = &x->tables[s->first_table + k];
		json_object *o = jobj(&bad);

		jset(o, "name", jstr(t->name, &bad), &bad);
		jset(o, "comment", jtext(res, k, 2, &bad), &bad);
		t->jcolumns = jarr(&bad);
		jset(o, "columns", t->jcolumns, &bad);
		t->jconstraints = jarr(&bad);
		jset(o, "constraints", t->jconstraints, &bad);
		t->jindexes = jarr(&bad);
		jset(o, "indexes", t->jindexes, &bad);
		jpush(arr, o, &bad);
	}
	pg_result_free(res);
	if (bad)
		return nomem(e);
	r = read_columns(x, s, e);
	if (r == 0)
		r = read_constraints(x, s, e);
	if (r == 0)
		r = read_indexes(x, s, e);
	return r;
}

static int read_sequences(struct exporter *x, struct xschema *s, json_object *arr,
                          struct alerr *e)
{
	static const char *const numeric[] = { "start", "increment", "min", "max", "cache" };
	const char *p[1] = { s->oid };
	struct pg_result *res;
	size_t k, n, i;
	int r, bad = 0;

	r = pg_query(x->main, q_sequences, 1, p, 11, &res, e);
	if (r < 0)
		return r;
	n = pg_result_ntuples(res);
	for (k = 0; k < n && r == 0 && !bad; k++) {
		json_object *o = jobj(&bad);
		struct pg_result *val = NULL;
		struct text_buf sql = { 0 };
		int64_t v;

		jset(o, "name", jstr(pg_result_get(res, k, 0), &bad), &bad);
		jset(o, "type", jstr(pg_result_get(res, k, 1), &bad), &bad);
		for (i = 0; i < 5; i++) {
			const char *t = pg_result_get(res, k, (int)i + 2);

			if (parse_i64(t, &v) < 0) {
				r = bad_value(e, "sequence parameter", t);
				break;
			}
			jset(o, numeric[i], json_object_new_int64(v), &bad);
		}
		jset(o, "cycle", json_object_new_boolean(
		             strcmp(pg_result_get(res, k, 7), "t") == 0), &bad);
		if (r < 0) {
			json_object_put(o);
			break;
		}
		/* the value is read from the sequence itself (not transactional:
		 * as of now, at least the snapshot's) */
		text_buf_add(&sql, "SELECT last_value, is_called FROM ");
		text_buf_add(&sql, s->qname);
		text_buf_add(&sql, ".");
		text_buf_add(&sql, pg_result_get(res, k, 10));
		r = sql.bad ? nomem(e) : pg_query(x->main, sql.s, 0, NULL, 2, &val, e);
		free(sql.s);
		if (r == 0 && (pg_result_ntuples(val) != 1 ||
		               parse_i64(pg_result_get(val, 0, 0), &v) < 0))
			r = bad_value(e, "sequence value", pg_result_get(val, 0, 0));
		if (r == 0) {
			jset(o, "last_value", json_object_new_int64(v), &bad);
			jset(o, "is_called", json_object_new_boolean(
			             strcmp(pg_result_get(val, 0, 1), "t") == 0), &bad);
			jset(o, "owned_by", jtext(res, k, 8, &bad), &bad);
			jset(o, "comment", jtext(res, k, 9, &bad), &bad);
		}
		pg_result_free(val);
		if (r < 0) {
			json_object_put(o);
			break;
		}
		jpush(arr, o, &bad);
	}
	pg_result_free(res);
	if (r == 0 && bad)
		r = nomem(e);
	return r;
}

/* Views in an order they can be created in: each after the views it
 * reads, ties by name. */
static int read_views(struct exporter *x, struct xschema *s, json_object *arr,
                      struct alerr *e)
{
	const char *p[1] = { s->oid };
	struct pg_result *views = NULL, *deps = NULL;
	uint32_t *oid = NULL;
	unsigned char *placed = NULL;
	size_t n, nd, done = 0, i, k;
	int r, bad = 0;

	r = pg_query(x->main, q_views, 1, p, 4, &views, e);
	if (r == 0)
		r = pg_query(x->main, q_view_deps, 1, p, 2, &deps, e);
	if (r < 0)
		goto out;
	n = pg_result_ntuples(views);
	nd = pg_result_ntuples(deps);
	oid = calloc(n ? n : 1, sizeof(*oid));
	placed = calloc(n ? n : 1, 1);
	if (!oid || !placed) {
		r = nomem(e);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (parse_oid(pg_result_get(views, i, 0), &oid[i]) < 0) {
			r = bad_value(e, "view oid", pg_result_get(views, i, 0));
			goto out;
		}
	while (done < n && !bad) {
		size_t pick = n;

		for (i = 0; i < n && pick == n; i++) {
			int ready = 1;

			if (placed[i])
				continue;
			for (k = 0; k < nd && ready; k++) {
				uint32_t a, b;
				size_t j;

				if (parse_oid(pg_result_get(deps, k, 0), &a) < 0 ||
				    parse_oid(pg_result_get(deps, k, 1), &b) < 0 || a != oid[i])
					continue;
				for (j = 0; j < n; j++)
					if (oid[j] == b && !placed[j])
						ready = 0;
			}
			if (ready)
				pick = i;
		}
		if (pick == n) {
			/* a cycle cannot be created; keep name order */
			for (i = 0; i < n && placed[i]; i++)
				;
			pick = i;
		}
		{
			json_object *o = jobj(&bad);

			jset(o, "name", jstr(pg_result_get(views, pick, 1), &bad), &bad);
			jset(o, "definition", jstr(pg_result_get(views, pick, 2), &bad), &bad);
			jset(o, "comment", jtext(views, pick, 3, &bad), &bad);
			jpush(arr, o, &bad);
		}
		placed[pick] = 1;
		done++;
	}
	if (bad)
		r = nomem(e);
out:
	pg_result_free(views);
	pg_result_free(deps);
	free(oid);
	free(placed);
	return r;
}

static int build_catalog(struct exporter *x, json_object **out, struct alerr *e)
{
	json_object *root, *schemas;
	size_t i;
	int r = 0, bad = 0;

	*out = NULL;
	root = jobj(&bad);
	jset(root, "format", jstr(EXPORT_CATALOG_FORMAT, &bad), &bad);
	schemas = jarr(&bad);
	jset(root, "schemas", schemas, &bad);
	for (i = 0; i < x->n_schemas && !bad && r == 0; i++) {
		struct xschema *s = &x->schemas[i];
		json_object *seqs = jarr(&bad), *tables = jarr(&bad), *views = jarr(&bad);

		/* s->json already holds name and comment */
		jset(s->json, "sequences", seqs, &bad);
		jset(s->json, "tables", tables, &bad);
		jset(s->json, "views", views, &bad);
		jpush(schemas, s->json, &bad);
		s->json = NULL;         /* owned by the catalog now */
		if (bad)
			break;
		r = set_search_path(x, s->qname, e);
		if (r == 0)
			r = read_sequences(x, s, seqs, e);
		if (r == 0)
			r = read_tables(x, s, tables, e);
		if (r == 0)
			r = read_views(x, s, views, e);
	}
	if (r == 0 && bad)
		r = nomem(e);
	if (r == 0)
		r = set_search_path(x, "pg_catalog", e);
	if (r < 0) {
		json_object_put(root);
		return r;
	}
	*out = root;
	return 0;
}

static int emit_catalog(struct exporter *x, struct alerr *e)
{
	json_object *root;
	const char *text;
	size_t len = 0;
	int r;

	r = build_catalog(x, &root, e);
	if (r < 0)
		return r;
	text = json_object_to_json_string_length(root, JSON_C_TO_STRING_PRETTY |
	                                         JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!text) {
		r = nomem(e);
	} else if (len > PAYLOAD_CATALOG_MAX) {
		r = alerr_set(e, ALERR_SOFTWARE, -E2BIG, "export.catalog_too_large",
		              "catalog.json would have %zu bytes (at most %u)", len,
		              PAYLOAD_CATALOG_MAX);
	} else {
		r = x->emit(x->emit_ctx, EXPORT_CATALOG_NAME, text, len, e);
		if (r < 0 && !alerr_failed(e))
			r = alerr_set(e, ALERR_SOFTWARE, r, "export.emit",
			              "the payload refused %s", EXPORT_CATALOG_NAME);
		if (r == 0) {
			x->res->members++;
			x->res->catalog_bytes = len;
		}
	}
	json_object_put(root);
	return r;
}

/* ------------------------------------------------------------------ */
/* Table data, in segments */

struct segw {
	struct exporter *x;
	const struct xtable *t;
	size_t len;             /* bytes in x->segbuf */
	uint32_t index;         /* the next segment's number */
	uint64_t bytes, rows;
};

static int progress(struct exporter *x, int force, struct alerr *e)
{
	int r;

	if (!x->o->progress)
		return 0;
	if (!force && x->bytes - x->progress_mark < IO_BUFFER_SIZE)
		return 0;
	x->progress_mark = x->bytes;
	r = x->o->progress(x->o->progress_ctx, x->bytes, x->rows);
	if (r == 0)
		return 0;
	return alerr_set(e, ALERR_SOFTWARE, r < 0 ? r : -ECANCELED, "export.cancelled",
	                 "the export was cancelled");
}

static int seg_emit(struct segw *w, struct alerr *e)
{
	char name[16 + 2 * NAME_MAX_IDENT + 16];
	int r;

	if (w->index > PAYLOAD_SEGMENT_MAX_INDEX)
		return alerr_set(e, ALERR_SOFTWARE, -EFBIG, "export.table_too_large",
		                 "table %s.%s has more than %u segments", w->t->schema,
		                 w->t->name, PAYLOAD_SEGMENT_MAX_INDEX + 1u);
	snprintf(name, sizeof(name), "data/%s/%s/%06u.copy", w->t->schema, w->t->name,
	         (unsigned int)w->index);
	r = w->x->emit(w->x->emit_ctx, name, w->x->segbuf, w->len, e);
	if (r < 0) {
		if (!alerr_failed(e))
			r = alerr_set(e, ALERR_SOFTWARE, r, "export.emit",
			              "the payload refused %s", name);
		return r;
	}
	w->x->res->members++;
	w->index++;
	w->len = 0;
	return 0;
}

static uint64_t count_rows(const char *p, size_t n)
{
	const char *end = p + n;
	uint64_t rows = 0;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		rows++;
		p++;
	}
	return rows;
}

/* Append COPY text. A full segment goes out only once more data
 * follows, so that a table of N > 0 bytes has ceil(N / size) segments
 * and an empty one exactly one, empty. */
static int seg_put(struct segw *w, const char *p, size_t n, struct alerr *e)
{
	struct exporter *x = w->x;
	uint64_t rows = count_rows(p, n);

	w->bytes += n;
	w->rows += rows;
	x->bytes += n;
	x->rows += rows;
	while (n > 0) {
		size_t take;
		int r;

		if (w->len == PAYLOAD_SEGMENT_SIZE) {
			r = seg_emit(w, e);
			if (r < 0)
				return r;
		}
		take = PAYLOAD_SEGMENT_SIZE - w->len;
		if (take > n)
			take = n;
		memcpy(x->segbuf + w->len, p, take);
		w->len += take;
		p += take;
		n -= take;
	}
	return progress(x, 0, e);
}

static int seg_copy_cb(void *ctx, const void *buf, size_t len, struct alerr *e)
{
	return seg_put(ctx, buf, len, e);
}

static int check_rows(const struct xtable *t, uint64_t counted, uint64_t server,
                      struct alerr *e)
{
	if (counted == server)
		return 0;
	return alerr_set(e, ALERR_SOFTWARE, -EPROTO, "export.row_count",
	                 "table %s.%s: %llu lines of COPY text, but the server "
	                 "counted %llu rows", t->schema, t->name,
	                 (unsigned long long)counted, (unsigned long long)server);
}

static int table_done(struct exporter *x, struct segw *w, struct alerr *e)
{
	int r = seg_emit(w, e);

	if (r == 0)
		r = manifest_add_table(x->m, w->t->schema, w->t->name, w->rows, e);
	if (r == 0) {
		x->res->tables++;
		r = progress(x, 1, e);
	}
	return r;
}

/* The main connection streams the table itself. */
static int stream_table(struct exporter *x, const struct xtable *t, struct alerr *e)
{
	struct segw w = { .x = x, .t = t };
	int r;

	r = pg_copy_out(x->main, t->copy_sql, seg_copy_cb, &w, e);
	if (r == 0)
		r = check_rows(t, w.rows, pg_last_copy_rows(x->main), e);
	if (r == 0)
		r = table_done(x, &w, e);
	if (r < 0)
		alerr_prefix(e, "table %s.%s: ", t->schema, t->name);
	return r;
}

static int spool_error(struct alerr *e, const char *what, int err)
{
	return alerr_set(e, ALERR_CANTCREAT, -err, "export.spool",
	                 "spool file: %s: %s", what, strerror(err));
}

/* Emit a table a worker spooled. */
static int emit_spooled(struct exporter *x, struct xtable *t, struct alerr *e)
{
	struct segw w = { .x = x, .t = t };
	uint64_t left = t->bytes;
	int r = 0;

	if (lseek(t->spool_fd, 0, SEEK_SET) < 0)
		return spool_error(e, "seek", errno);
	while (left > 0) {
		size_t want;
		ssize_t got;

		if (w.len == PAYLOAD_SEGMENT_SIZE) {
			r = seg_emit(&w, e);
			if (r < 0)
				return r;
		}
		want = PAYLOAD_SEGMENT_SIZE - w.len;
		if (want > left)
			want = (size_t)left;
		got = read(t->spool_fd, x->segbuf + w.len, want);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return spool_error(e, "read", errno);
		}
		if (got == 0)
			return spool_error(e, "read", EIO);
		w.len += (size_t)got;
		left -= (uint64_t)got;
		x->bytes += (uint64_t)got;
		r = progress(x, 0, e);
		if (r < 0)
			return r;
	}
	w.bytes = t->bytes;
	w.rows = t->rows;
	x->rows += t->rows;
	r = table_done(x, &w, e);
	if (r < 0)
		alerr_prefix(e, "table %s.%s: ", t->schema, t->name);
	return r;
}

/* ------------------------------------------------------------------ */
/* Workers (jobs > 1) */

struct spoolw {
	struct exporter *x;
	int fd;
	char *buf;
	size_t len;
	uint64_t bytes, rows;
};

static int write_all(int fd, const char *p, size_t n, struct alerr *e)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return spool_error(e, "write", errno);
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int spool_cb(void *ctx, const void *buf, size_t len, struct alerr *e)
{
	struct spoolw *s = ctx;
	const char *p = buf;

	if (atomic_load(&s->x->stop))
		return alerr_set(e, ALERR_SOFTWARE, -ECANCELED, "export.cancelled",
		                 "the export stopped");
	s->bytes += len;
	s->rows += count_rows(p, len);
	while (len > 0) {
		size_t take = IO_BUFFER_SIZE - s->len;
		int r;

		if (take > len)
			take = len;
		memcpy(s->buf + s->len, p, take);
		s->len += take;
		p += take;
		len -= take;
		if (s->len == IO_BUFFER_SIZE) {
			r = write_all(s->fd, s->buf, s->len, e);
			if (r < 0)
				return r;
			s->len = 0;
		}
	}
	return 0;
}

static int spool_open(struct exporter *x, size_t index, int *fd, struct alerr *e)
{
	char path[4096];
	int n;

	n = snprintf(path, sizeof(path), "%s/%06zu.copy", x->spooldir, index);
	if (n < 0 || (size_t)n >= sizeof(path))
		return spool_error(e, "path", ENAMETOOLONG);
	*fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		return spool_error(e, path, errno);
	/* nameless from now on: gone with the descriptor, whatever happens */
	if (unlink(path) < 0) {
		int err = errno;

		close(*fd);
		*fd = -1;
		return spool_error(e, path, err);
	}
	return 0;
}

static int spool_table(struct worker *wk, struct xtable *t, size_t index,
                       int *fd_out, uint64_t *bytes, uint64_t *rows, struct alerr *e)
{
	struct exporter *x = wk->x;
	struct spoolw s = { .x = x, .fd = -1, .buf = wk->iobuf };
	struct text_buf lock = { 0 };
	int r;

	*fd_out = -1;
	/* NOWAIT: an exclusive lock requested after the main connection
	 * locked the table would queue us behind it, and it waits for the
	 * main connection, which waits for us (pg_dump -j does the same) */
	text_buf_add(&lock, "LOCK TABLE ");
	text_buf_add(&lock, t->sch->qname);
	text_buf_add(&lock, ".");
	text_buf_add(&lock, t->qname);
	text_buf_add(&lock, " IN ACCESS SHARE MODE NOWAIT");
	r = lock.bad ? nomem(e) : pg_exec(wk->conn, lock.s, 0, NULL, e);
	free(lock.s);
	if (r == 0)
		r = spool_open(x, index, &s.fd, e);
	if (r == 0)
		r = pg_copy_out(wk->conn, t->copy_sql, spool_cb, &s, e);
	if (r == 0 && s.len > 0)
		r = write_all(s.fd, s.buf, s.len, e);
	if (r == 0)
		r = check_rows(t, s.rows, pg_last_copy_rows(wk->conn), e);
	if (r < 0) {
		if (s.fd >= 0)
			close(s.fd);
		alerr_prefix(e, "table %s.%s: ", t->schema, t->name);
		return r;
	}
	*fd_out = s.fd;
	*bytes = s.bytes;
	*rows = s.rows;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct exporter *x = wk->x;

	for (;;) {
		struct alerr err;
		struct xtable *t;
		uint64_t bytes = 0, rows = 0;
		size_t k;
		int fd, r;

		pthread_mutex_lock(&x->mu);
		while (!atomic_load(&x->stop) && x->next < x->n_tables &&
		       x->next > x->current + x->window)
			pthread_cond_wait(&x->cv, &x->mu);
		if (atomic_load(&x->stop) || x->next >= x->n_tables) {
			pthread_mutex_unlock(&x->mu);
			break;
		}
		k = x->next++;
		t = &x->tables[k];
		t->state = T_WORKER;
		pthread_mutex_unlock(&x->mu);

		alerr_clear(&err);
		r = spool_table(wk, t, k, &fd, &bytes, &rows, &err);

		pthread_mutex_lock(&x->mu);
		if (r < 0) {
			t->err = err;
			t->state = T_FAILED;
		} else {
			t->spool_fd = fd;
			t->bytes = bytes;
			t->rows = rows;
			t->state = T_SPOOLED;
		}
		pthread_cond_broadcast(&x->cv);
		pthread_mutex_unlock(&x->mu);
		if (r < 0)
			break;
	}
	return NULL;
}

static int start_workers(struct exporter *x, struct alerr *e)
{
	const char *base = x->o->workdir ? x->o->workdir : EXPORT_DEFAULT_WORKDIR;
	size_t i, n = x->o->jobs - 1u;
	char path[4096];
	int r;

	if (!pg_threadsafe())
		return alerr_set(e, ALERR_SOFTWARE, -ENOTSUP, "export.options",
		                 "this libpq is not thread-safe: use one job");
	r = snprintf(path, sizeof(path), "%s/airlock-export.XXXXXX", base);
	if (r < 0 || (size_t)r >= sizeof(path))
		return spool_error(e, "work directory path", ENAMETOOLONG);
	if (!mkdtemp(path)) {
		int err = errno;

		return alerr_set(e, ALERR_CANTCREAT, -err, "export.spool",
		                 "cannot create a directory in %s: %s", base,
		                 strerror(err));
	}
	x->spooldir = strdup(path);
	if (!x->spooldir) {
		rmdir(path);
		return nomem(e);
	}
	x->workers = calloc(n, sizeof(*x->workers));
	if (!x->workers)
		return nomem(e);
	x->n_workers = n;
	for (i = 0; i < n; i++) {
		struct worker *wk = &x->workers[i];

		wk->x = x;
		wk->iobuf = malloc(IO_BUFFER_SIZE);
		if (!wk->iobuf)
			return nomem(e);
		r = pg_connect(x->o->conninfo, &wk->conn, e);
		if (r < 0)
			return r;
		pg_set_timeout(wk->conn, x->o->timeout_ms);
		r = pg_begin_snapshot_import(wk->conn, x->res->snapshot, e);
		if (r < 0)
			return r;
	}
	if (pthread_mutex_init(&x->mu, NULL) != 0)
		return nomem(e);
	if (pthread_cond_init(&x->cv, NULL) != 0) {
		pthread_mutex_destroy(&x->mu);
		return nomem(e);
	}
	x->sync_ready = 1;
	x->window = 2 * n;
	/* the main connection takes the first table itself */
	x->current = 0;
	x->next = 1;
	x->tables[0].state = T_MAIN;
	for (i = 0; i < n; i++) {
		r = pthread_create(&x->workers[i].thread, NULL, worker_main, &x->workers[i]);
		if (r != 0)
			return alerr_set(e, ALERR_OSERR, -r, "export.thread",
			                 "cannot start a worker thread: %s", strerror(r));
		x->workers[i].started = 1;
	}
	return 0;
}

/* Stop and join the workers; cancel their statements when the export
 * failed (a cancel must not reach a worker's later COMMIT). */
static void stop_workers(struct exporter *x, int cancel)
{
	size_t i;

	if (!x->workers)
		return;
	atomic_store(&x->stop, 1);
	if (x->sync_ready) {
		pthread_mutex_lock(&x->mu);
		pthread_cond_broadcast(&x->cv);
		pthread_mutex_unlock(&x->mu);
	}
	/* a worker waiting for COPY data notices the stop only when data
	 * comes: cancel its statement */
	for (i = 0; cancel && i < x->n_workers; i++)
		if (x->workers[i].started && x->workers[i].conn)
			pg_cancel(x->workers[i].conn);
	for (i = 0; i < x->n_workers; i++)
		if (x->workers[i].started) {
			pthread_join(x->workers[i].thread, NULL);
			x->workers[i].started = 0;
		}
}

/* Emit every table in catalog order; workers spool ahead. */
static int run_parallel(struct exporter *x, struct alerr *e)
{
	size_t i;
	int r = 0;

	for (i = 0; i < x->n_tables && r == 0; i++) {
		struct xtable *t = &x->tables[i];
		enum tstate st;

		pthread_mutex_lock(&x->mu);
		x->current = i;
		if (x->next == i) {
			x->next++;
			t->state = T_MAIN;
		}
		pthread_cond_broadcast(&x->cv);
		while (t->state == T_WORKER)
			pthread_cond_wait(&x->cv, &x->mu);
		st = t->state;
		pthread_mutex_unlock(&x->mu);

		if (st == T_MAIN) {
			r = stream_table(x, t, e);
		} else if (st == T_FAILED) {
			r = alerr_set(e, t->err.cls, t->err.errnum, t->err.reason, "%s",
			              t->err.message);
		} else {
			r = emit_spooled(x, t, e);
			close(t->spool_fd);
			t->spool_fd = -1;
		}
		t->state = T_DONE;
	}
	stop_workers(x, r < 0);
	return r;
}

static int finish_workers(struct exporter *x, struct alerr *e)
{
	size_t i;
	int r = 0;

	for (i = 0; i < x->n_workers && r == 0; i++)
		if (x->workers[i].conn)
			r = pg_exec(x->workers[i].conn, "COMMIT", 0, NULL, e);
	return r;
}

/* ------------------------------------------------------------------ */

static void cleanup(struct exporter *x)
{
	size_t i;

	stop_workers(x, 1);
	for (i = 0; i < x->n_workers; i++) {
		pg_close(x->workers[i].conn);
		free(x->workers[i].iobuf);
	}
	free(x->workers);
	if (x->sync_ready) {
		pthread_cond_destroy(&x->cv);
		pthread_mutex_destroy(&x->mu);
	}
	for (i = 0; i < x->n_tables; i++) {
		struct xtable *t = &x->tables[i];

		if (t->spool_fd >= 0)
			close(t->spool_fd);
		free(t->name);
		free(t->qname);
		free(t->copy_sql);
	}
	free(x->tables);
	if (x->spooldir) {
		if (rmdir(x->spooldir) < 0)
			log_warn("cannot remove %s: %s", x->spooldir, strerror(errno));
		free(x->spooldir);
	}
	for (i = 0; i < x->n_schemas; i++) {
		free(x->schemas[i].oid);
		free(x->schemas[i].qname);
		free(x->schemas[i].byoid);
		json_object_put(x->schemas[i].json);
	}
	free(x->schemas);
	free(x->segbuf);
	pg_close(x->main);
}

static int check_server(struct exporter *x, struct alerr *e)
{
	struct pg_result *res;
	uint32_t v = pg_server_version(x->main);
	int r;

	if (v < EXPORT_SERVER_VERSION_MIN)
		return alerr_set(e, ALERR_CONFIG, -ENOTSUP, "export.server_version",
		                 "the source server is PostgreSQL %u.%u: the export "
		                 "needs 10 or later", v / 10000, v % 10000 / 100);
	r = pg_query(x->main, "SELECT current_setting('server_encoding')", 0, NULL,
	             1, &res, e);
	if (r < 0)
		return r;
	if (strcmp(pg_result_get(res, 0, 0), "SQL_ASCII") == 0)
		r = alerr_set(e, ALERR_CONFIG, -ENOTSUP, "export.encoding",
		              "the source database is SQL_ASCII: its text is not "
		              "known to be UTF-8");
	pg_result_free(res);
	return r;
}

int export_run(const struct export_options *o, struct manifest *m,
               export_emit_fn emit, void *emit_ctx, struct export_result *res,
               struct alerr *e)
{
	struct exporter x;
	size_t i;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&x, 0, sizeof(x));
	r = check_options(o, m, emit, e);
	if (r < 0)
		return r;
	x.o = o;
	x.m = m;
	x.emit = emit;
	x.emit_ctx = emit_ctx;
	x.res = res;
	atomic_init(&x.stop, 0);

	r = setup_schemas(&x, e);
	if (r < 0)
		goto out;
	r = pg_connect(o->conninfo, &x.main, e);
	if (r < 0)
		goto out;
	pg_set_timeout(x.main, o->timeout_ms);
	r = check_server(&x, e);
	if (r < 0)
		goto out;
	r = pg_begin_snapshot_export(x.main, res->snapshot, sizeof(res->snapshot), e);
	if (r < 0)
		goto out;
	res->server_version = pg_server_version(x.main);
	r = manifest_set_text(m, MANIFEST_F_SNAPSHOT, res->snapshot, e);
	if (r == 0)
		r = manifest_set_server_version(m, res->server_version, e);
	if (r == 0)
		r = set_search_path(&x, "pg_catalog", e);
	if (r == 0)
		r = find_schemas(&x, e);
	if (r == 0)
		r = check_unsupported(&x, e);
	if (r == 0)
		r = list_tables(&x, e);
	if (r == 0)
		r = emit_catalog(&x, e);
	if (r < 0)
		goto out;

	x.segbuf = malloc(PAYLOAD_SEGMENT_SIZE);
	if (!x.segbuf) {
		r = nomem(e);
		goto out;
	}
	if (o->jobs > 1 && x.n_tables > 1) {
		r = start_workers(&x, e);
		if (r == 0)
			r = run_parallel(&x, e);
		if (r == 0)
			r = finish_workers(&x, e);
	} else {
		for (i = 0; i < x.n_tables && r == 0; i++)
			r = stream_table(&x, &x.tables[i], e);
	}
	if (r == 0)
		r = pg_exec(x.main, "COMMIT", 0, NULL, e);
	if (r == 0) {
		res->bytes = x.bytes;
		res->rows = x.rows;
	}
out:
	cleanup(&x);
	return r;
}

void export_result_clear(struct export_result *res)
{
	size_t i;

	if (!res)
		return;
	for (i = 0; i < res->n_unsupported; i++)
		free(res->unsupported[i]);
	free(res->unsupported);
	memset(res, 0, sizeof(*res));
}
