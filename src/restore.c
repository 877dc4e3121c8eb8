#include "config.h"

#include <errno.h>
#include <json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bounds.h"
#include "custody.h"
#include "log.h"
#include "pg.h"
#include "restore.h"
#include "text.h"

#define CATALOG_NAME            "catalog.json"
#define CATALOG_FORMAT          "airlock-catalog/1"
#define LOCK_BATCH              1000u       /* tables per LOCK statement */
#define LOCK_TIMEOUT_MAX_MS     (UINT64_C(24) * 3600u * 1000u)
#define SWAP_GRACE_MS           30000u      /* statement bound beyond lock_timeout */
#define RANDOM_BYTES            8u

static const char q_book_schema[] =
	"CREATE SCHEMA IF NOT EXISTS " RESTORE_BOOK_SCHEMA;

static const char q_book_table[] =
	"CREATE TABLE IF NOT EXISTS " RESTORE_BOOK_SCHEMA ".imports ("
	" channel text NOT NULL,"
	" sequence bigint NOT NULL,"
	" bundle_id text NOT NULL,"
	" manifest_sha256 text NOT NULL,"
	" signers text[] NOT NULL,"
	" image_sha256 text,"
	" custody_seq bigint,"
	" custody_hash text,"
	" created timestamptz NOT NULL,"
	" valid_until timestamptz NOT NULL,"
	" imported_at timestamptz NOT NULL DEFAULT now(),"
	" schemas text[] NOT NULL,"
	" tables integer NOT NULL,"
	" rows bigint NOT NULL,"
	" source_server_version integer NOT NULL,"
	" UNIQUE (channel, sequence))";

static const char q_insert[] =
	"INSERT INTO " RESTORE_BOOK_SCHEMA ".imports (channel, sequence, bundle_id,"
	" manifest_sha256, signers, image_sha256, custody_seq, custody_hash, created,"
	" valid_until, schemas, tables, rows, source_server_version) VALUES"
	" ($1, $2::bigint, $3, $4, pg_catalog.string_to_array($5, ' '), $6,"
	" $7::bigint, $8, pg_catalog.to_timestamp($9::bigint),"
	" pg_catalog.to_timestamp($10::bigint), pg_catalog.string_to_array($11, ' '),"
	" $12::integer, $13::bigint, $14::integer)";

/* privileges granted on the live schema and its relations to others than
 * their owner: re-applied to the new ones */
static const char q_schema_acl[] =
	"SELECT a.privilege_type, r.rolname, a.is_grantable"
	" FROM pg_catalog.pg_namespace n CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a"
	" LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee"
	" WHERE n.nspname = $1 AND a.grantee <> n.nspowner"
	" ORDER BY 2, 1";

static const char q_rel_acl[] =
	"SELECT c.relname, c.relkind::text, a.privilege_type, r.rolname, a.is_grantable"
	" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a"
	" LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee"
	" WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'S')"
	" AND a.grantee <> c.relowner ORDER BY 1, 4, 3";

static const char q_live_tables[] =
	"SELECT pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c"
	" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')"
	" ORDER BY c.relname COLLATE \"C\"";

/* Objects outside the live schema that depend on something in it (a
 * view, a foreign key, a column of its row type, a function body, a
 * publication): the swap drops the old schema, and would drop them with
 * it. Rules, defaults, triggers and policies belong to their relation's
 * schema; a view is named for its rule. */
#define DEPENDENTS_SHOWN 8
static const char q_dependents[] =
	"WITH n AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)"
	" SELECT DISTINCT CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
	"  THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass,"
	"   own.rel, 0)"
	"  ELSE pg_catalog.pg_describe_object(d.classid, d.objid, 0) END"
	" FROM pg_catalog.pg_depend d CROSS JOIN n"
	" CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, 0) o"
	" CROSS JOIN LATERAL (SELECT CASE d.classid"
	"  WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT ev_class"
	"   FROM pg_catalog.pg_rewrite WHERE oid = d.objid)"
	"  WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT adrelid"
	"   FROM pg_catalog.pg_attrdef WHERE oid = d.objid)"
	"  WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT tgrelid"
	"   FROM pg_catalog.pg_trigger WHERE oid = d.objid)"
	"  WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT polrelid"
	"   FROM pg_catalog.pg_policy WHERE oid = d.objid) END AS rel) own"
	" WHERE d.deptype IN ('n', 'a') AND ("
	"  (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid IN"
	"   (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid))"
	"  OR (d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.refobjid IN"
	"   (SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid))"
	"  OR (d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass"
	"   AND d.refobjid = n.oid))"
	/* o.schema is quoted where needed, as quote_ident does */
	" AND COALESCE(o.schema, (SELECT pg_catalog.quote_ident(nn.nspname)"
	"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace nn"
	"  ON nn.oid = c.relnamespace WHERE c.oid = own.rel))"
	" IS DISTINCT FROM pg_catalog.quote_ident($1)"
	" ORDER BY 1 LIMIT $2";

/* ------------------------------------------------------------------ */
/* The catalog, validated: pointers into the json tree */

struct rcol {
	const char *name, *type, *def, *comment;
	int not_null;
	int identity;           /* 0, 'a' always, 'd' by default */
};

struct rcons {
	const char *name, *def, *comment;
	char kind;
	int done;               /* a foreign key a load worker added */
};

struct ridx {
	const char *name, *def, *comment;
};

struct rseq {
	const char *name, *type, *comment;
	int64_t start, increment, min, max, cache, last_value;
	int cycle, is_called;
	char owned_table[NAME_MAX_IDENT + 1];
	const char *owned_column;       /* NULL: not owned */
	int identity;                   /* the sequence of an identity column */
};

struct rtable {
	const char *name, *comment;
	struct rcol *cols;
	size_t ncols;
	struct rcons *cons;
	size_t ncons;
	struct ridx *idx;
	size_t nidx;
	uint64_t want_rows;
	uint64_t rows;
};

struct rview {
	const char *name, *def, *comment;
};

struct rschema {
	const char *name, *comment;
	struct rseq *seqs;
	size_t nseqs;
	struct rtable *tables;
	size_t ntables;
	struct rview *views;
	size_t nviews;
	char staging[sizeof(RESTORE_STAGING_PREFIX) + 2 * RANDOM_BYTES];
	char old[sizeof(RESTORE_OLD_PREFIX) + 2 * RANDOM_BYTES];
	char *qstaging, *qlive, *qold;
	int locked;             /* holds the staging advisory lock */
	int live_exists;
};

struct rst {
	const struct restore_options *o;
	const struct manifest *m;
	struct unpack *u;
	struct alerr *e;
	json_object *root;
	struct rschema *schemas;
	size_t nschemas;
	struct pg_conn *c;
	int build;              /* map SQL errors of the payload to REJECT */
	int in_tx, in_copy, staged;
	char where[ALERR_MESSAGE_MAX / 2];
	char member[VOLUME_PATH_MAX + 64];
	int have_member;
	char *buf;
	uint64_t bytes, progress_mark;
	struct restore_result *res;
	struct par *par;        /* a load worker's: the shared state */
};

/* The parallel build (jobs > 1): a graph of tasks over the tables. A
 * table's load (created, COPY FREEZE, primary and unique keys, one
 * transaction) is claimed in catalog order, before anything else; then
 * its indexes (each a statement of its own, several at once on one
 * table), its ANALYZE (after its indexes) and the foreign keys between
 * loaded tables, the costliest first. The scheduler never runs two tasks
 * whose locks conflict (an index build takes SHARE on its table, ANALYZE
 * SHARE UPDATE EXCLUSIVE, a foreign key SHARE ROW EXCLUSIVE on both
 * tables), so workers never wait on one another in the server and cannot
 * deadlock there. */
struct ptable {
	struct rschema *s;
	struct rtable *t;
	int loaded;
	int excl;               /* a load, ANALYZE or foreign key runs on it */
	unsigned int shared;    /* index builds running on it */
	size_t idx_left;        /* its index tasks not done */
	size_t uidx_left;       /* ... of them unique (a foreign key may use one) */
};

enum ptask_kind { PT_LOAD, PT_INDEX, PT_ANALYZE, PT_FKEY };

struct ptask {
	enum ptask_kind kind;
	struct ptable *t;
	struct ptable *ref;     /* PT_FKEY: the referenced table (maybe t) */
	size_t k;               /* PT_INDEX: t->idx[k]; PT_FKEY: t->cons[k] */
	unsigned int weight;    /* PT_INDEX: of its key (index_weight) */
	int unique;             /* PT_INDEX: a unique index */
	int state;              /* 0 waiting, 1 running, 2 done */
};

struct pworker {
	struct par *p;
	struct rst x;           /* the main one's copy: own c, u, buf, e, res */
	struct alerr e;
	struct restore_result res;
	void *handle;           /* open_payload's, for close_payload */
	size_t pos;             /* the table its reader is before */
	pthread_t thread;
	int started;
};

struct par {
	struct rst *main;
	struct pworker *w;
	unsigned int n;
	struct ptable *flat;
	size_t ntables;
	struct ptask *tasks;    /* the loads first, in catalog order */
	size_t ntasks;
	size_t left;            /* tasks not done */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next;            /* the next table to load */
	unsigned int active;    /* tasks running */
	unsigned int running;   /* workers */
	atomic_int stop;
	_Atomic uint64_t bytes;
	int failed;             /* err holds the first failure */
	struct alerr err;
};

/* ------------------------------------------------------------------ */

static unsigned int statement_timeout(const struct restore_options *o)
{
	return o->timeout_ms ? o->timeout_ms : RESTORE_TIMEOUT_DEFAULT_MS;
}

static int nomem(struct alerr *e)
{
	return alerr_set(e, ALERR_OSERR, -ENOMEM, "restore.nomem", "out of memory");
}

/* Append s quoted as an identifier. */
static int sb_ident(struct text_buf *b, struct pg_conn *c, const char *s, struct alerr *e)
{
	char *q;
	int r = pg_quote_ident(c, s, &q, e);

	if (r < 0)
		return r;
	text_buf_add(b, q);
	free(q);
	return 0;
}

static int sb_literal(struct text_buf *b, struct pg_conn *c, const char *s, struct alerr *e)
{
	char *q;
	int r = pg_quote_literal(c, s, &q, e);

	if (r < 0)
		return r;
	text_buf_add(b, q);
	free(q);
	return 0;
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

/* A 32-bit key as the int4 text PostgreSQL takes. */
static void lock_key(char *out, size_t size, const char *s)
{
	uint32_t h = fnv1a(s);

	snprintf(out, size, "%ld", h > INT32_MAX ? (long)h - 4294967296L : (long)h);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint32_t restore_major(uint32_t v)
{
	return v >= 100000u ? v / 10000u : v / 100u;
}

/* ------------------------------------------------------------------ */
/* SQL with the errors of the payload mapped to a rejection */

static int remap(struct rst *x, const struct alerr *t)
{
	const char *st = x->c ? pg_last_sqlstate(x->c) : "";

	if (x->build && strcmp(t->reason, "db.query") == 0) {
		if (strncmp(st, "22", 2) == 0)
			return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.data",
			                 "%s%s", x->where, t->message);
		/* 54: a value or row over the server's limits */
		if (strncmp(st, "54", 2) == 0)
			return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.data",
			                 "%s%s", x->where, t->message);
		if (strncmp(st, "23", 2) == 0)
			return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.constraint",
			                 "%s%s", x->where, t->message);
		if (strncmp(st, "42", 2) == 0)
			return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.schema",
			                 "%s%s", x->where, t->message);
	}
	if (!x->build && strcmp(st, "23505") == 0)
		return alerr_set(x->e, ALERR_REJECT, -EEXIST, "restore.duplicate",
		                 "%sthis sequence of the channel is already imported: %s",
		                 x->where, t->message);
	return alerr_set(x->e, t->cls, t->errnum, t->reason, "%s%s", x->where,
	                 t->message);
}

static int xexec(struct rst *x, const char *sql, int n, const char *const *p)
{
	struct alerr t;

	alerr_clear(&t);
	if (pg_exec(x->c, sql, n, p, &t) < 0)
		return remap(x, &t);
	return 0;
}

static int xsb(struct rst *x, struct text_buf *b)
{
	int r;

	if (b->bad) {
		free(b->s);
		memset(b, 0, sizeof(*b));
		return nomem(x->e);
	}
	r = xexec(x, b->s, 0, NULL);
	free(b->s);
	memset(b, 0, sizeof(*b));
	return r;
}

static int xquery(struct rst *x, const char *sql, int n, const char *const *p,
                  int ncols, struct pg_result **out)
{
	struct alerr t;

	alerr_clear(&t);
	if (pg_query(x->c, sql, n, p, ncols, out, &t) < 0)
		return remap(x, &t);
	return 0;
}

__attribute__((format(printf, 2, 3)))
static void set_where(struct rst *x, const char *fmt, ...)
{
	char raw[sizeof(x->where)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* names from the payload: printable in messages */
	log_sanitize(x->where, sizeof(x->where), raw, strlen(raw));
}

static int set_search_path(struct rst *x, const struct rschema *s)
{
	const char *p[1] = { s->qstaging };

	return xexec(x, "SELECT pg_catalog.set_config('search_path', $1, true)", 1, p);
}

/* ------------------------------------------------------------------ */
/* catalog.json */

static int bad_catalog(struct rst *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad_catalog(struct rst *x, const char *fmt, ...)
{
	char raw[ALERR_MESSAGE_MAX - 32], msg[ALERR_MESSAGE_MAX - 32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	log_sanitize(msg, sizeof(msg), raw, strlen(raw));
	return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.catalog",
	                 "catalog.json: %s", msg);
}

/* A member of object o: present, of type t (or null when nullable). */
static json_object *jmember(struct rst *x, json_object *o, const char *key,
                            json_type t, int nullable, int *bad)
{
	json_object *v = NULL;

	if (*bad)
		return NULL;
	if (!json_object_object_get_ex(o, key, &v)) {
		*bad = bad_catalog(x, "%s: \"%s\" missing", x->where, key);
		return NULL;
	}
	if (!v && nullable)
		return NULL;
	if (!v || !json_object_is_type(v, t)) {
		*bad = bad_catalog(x, "%s: \"%s\" is not of the expected type",
		                   x->where, key);
		return NULL;
	}
	return v;
}

static const char *jtext(struct rst *x, json_object *o, const char *key,
                         int nullable, size_t max, int *bad)
{
	json_object *v = jmember(x, o, key, json_type_string, nullable, bad);
	const char *s;
	int n;

	if (!v)
		return NULL;
	s = json_object_get_string(v);
	n = json_object_get_string_len(v);
	if (n <= 0 || (size_t)n != strlen(s) || (size_t)n > max) {
		*bad = bad_catalog(x, "%s: \"%s\" is empty, too long or holds a NUL",
		                   x->where, key);
		return NULL;
	}
	return s;
}

static const char *jname(struct rst *x, json_object *o, const char *key, int *bad)
{
	return jtext(x, o, key, 0, NAME_MAX_IDENT, bad);
}

static int64_t jint(struct rst *x, json_object *o, const char *key, int *bad)
{
	json_object *v = jmember(x, o, key, json_type_int, 0, bad);

	return v ? json_object_get_int64(v) : 0;
}

static int jbool(struct rst *x, json_object *o, const char *key, int *bad)
{
	json_object *v = jmember(x, o, key, json_type_boolean, 0, bad);

	return v ? json_object_get_boolean(v) != 0 : 0;
}

static json_object *jarray(struct rst *x, json_object *o, const char *key,
                           size_t max, size_t *n, int *bad)
{
	json_object *v = jmember(x, o, key, json_type_array, 0, bad);

	*n = 0;
	if (!v)
		return NULL;
	*n = json_object_array_length(v);
	if (*n > max) {
		*bad = bad_catalog(x, "%s: more than %zu entries in \"%s\"", x->where,
		                   max, key);
		*n = 0;
		return NULL;
	}
	return v;
}

static json_object *jitem(struct rst *x, json_object *a, size_t i, int *bad)
{
	json_object *v = json_object_array_get_idx(a, i);

	if (*bad)
		return NULL;
	if (!v || !json_object_is_type(v, json_type_object)) {
		*bad = bad_catalog(x, "%s: entry %zu is not an object", x->where, i);
		return NULL;
	}
	return v;
}

static int is_ident(const char *s)
{
	size_t i;

	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return 0;
	for (i = 1; s[i]; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return i <= NAME_MAX_IDENT;
}

/* format_type() of a built-in type: letters, digits, spaces, quotes (the
 * "char" type), typmods and array brackets; nothing that ends a column
 * definition early. */
static int type_ok(const char *s)
{
	int depth = 0;

	for (; *s; s++) {
		char ch = *s;

		if (ch == '(') {
			depth++;
		} else if (ch == ')') {
			if (--depth < 0)
				return 0;
		} else if (ch == ',') {
			if (depth == 0)
				return 0;
		} else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		             (ch >= '0' && ch <= '9') || ch == ' ' || ch == '_' ||
		             ch == '"' || ch == '[' || ch == ']')) {
			return 0;
		}
	}
	return depth == 0;
}

static int starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int parse_table(struct rst *x, const char *schema, json_object *o,
                       struct rtable *t)
{
	json_object *a;
	size_t i, n;
	int bad = 0;

	t->name = jname(x, o, "name", &bad);
	if (bad)
		return bad;
	if (!is_ident(t->name))
		return bad_catalog(x, "schema %s: table name %s is not an identifier",
		                   schema, t->name);
	set_where(x, "table %s.%s", schema, t->name);
	t->comment = jtext(x, o, "comment", 1, PAYLOAD_CATALOG_MAX, &bad);

	a = jarray(x, o, "columns", 1600, &n, &bad);
	t->cols = calloc(n ? n : 1, sizeof(*t->cols));
	if (!t->cols)
		return nomem(x->e);
	t->ncols = n;
	for (i = 0; i < n && !bad; i++) {
		json_object *c = jitem(x, a, i, &bad);
		struct rcol *col = &t->cols[i];
		const char *ident;

		col->name = jname(x, c, "name", &bad);
		col->type = jtext(x, c, "type", 0, 1024, &bad);
		col->not_null = jbool(x, c, "not_null", &bad);
		col->def = jtext(x, c, "default", 1, PAYLOAD_CATALOG_MAX, &bad);
		ident = jtext(x, c, "identity", 1, 16, &bad);
		col->comment = jtext(x, c, "comment", 1, PAYLOAD_CATALOG_MAX, &bad);
		if (bad)
			break;
		if (!type_ok(col->type))
			return bad_catalog(x, "%s: column %s: unexpected type text",
			                   x->where, col->name);
		if (ident && strcmp(ident, "always") == 0)
			col->identity = 'a';
		else if (ident && strcmp(ident, "by default") == 0)
			col->identity = 'd';
		else if (ident)
			return bad_catalog(x, "%s: column %s: unknown identity kind",
			                   x->where, col->name);
		if (col->identity && col->def)
			return bad_catalog(x, "%s: column %s: identity with a default",
			                   x->where, col->name);
	}
	a = jarray(x, o, "constraints", 100000, &n, &bad);
	t->cons = calloc(n ? n : 1, sizeof(*t->cons));
	if (!t->cons)
		return nomem(x->e);
	t->ncons = n;
	for (i = 0; i < n && !bad; i++) {
		json_object *c = jitem(x, a, i, &bad);
		struct rcons *k = &t->cons[i];
		const char *kind;
		int ok;

		k->name = jname(x, c, "name", &bad);
		kind = jtext(x, c, "kind", 0, 1, &bad);
		k->def = jtext(x, c, "definition", 0, PAYLOAD_CATALOG_MAX, &bad);
		k->comment = jtext(x, c, "comment", 1, PAYLOAD_CATALOG_MAX, &bad);
		if (bad)
			break;
		k->kind = kind[0];
		switch (k->kind) {
		case 'p': ok = starts(k->def, "PRIMARY KEY ("); break;
		case 'u': ok = starts(k->def, "UNIQUE "); break;
		case 'c': ok = starts(k->def, "CHECK ("); break;
		case 'f': ok = starts(k->def, "FOREIGN KEY ("); break;
		default: ok = 0;
		}
		if (!ok)
			return bad_catalog(x, "%s: constraint %s: unexpected kind or "
			                   "definition", x->where, k->name);
	}
	a = jarray(x, o, "indexes", 100000, &n, &bad);
	t->idx = calloc(n ? n : 1, sizeof(*t->idx));
	if (!t->idx)
		return nomem(x->e);
	t->nidx = n;
	for (i = 0; i < n && !bad; i++) {
		json_object *c = jitem(x, a, i, &bad);
		struct ridx *k = &t->idx[i];

		k->name = jname(x, c, "name", &bad);
		k->def = jtext(x, c, "definition", 0, PAYLOAD_CATALOG_MAX, &bad);
		k->comment = jtext(x, c, "comment", 1, PAYLOAD_CATALOG_MAX, &bad);
		if (bad)
			break;
		if (!starts(k->def, "CREATE INDEX ") && !starts(k->def, "CREATE UNIQUE INDEX "))
			return bad_catalog(x, "%s: index %s: unexpected definition",
			                   x->where, k->name);
	}
	return bad;
}

static struct rtable *find_table(struct rschema *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->ntables; i++)
		if (strcmp(s->tables[i].name, name) == 0)
			return &s->tables[i];
	return NULL;
}

static struct rcol *find_col(struct rtable *t, const char *name)
{
	size_t i;

	for (i = 0; t && i < t->ncols; i++)
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	return NULL;
}

static int parse_sequence(struct rst *x, struct rschema *s, json_object *o,
                          struct rseq *q)
{
	const char *owned;
	int bad = 0;

	q->name = jname(x, o, "name", &bad);
	if (bad)
		return bad;
	set_where(x, "sequence %s.%s", s->name, q->name);
	q->type = jtext(x, o, "type", 0, 64, &bad);
	q->start = jint(x, o, "start", &bad);
	q->increment = jint(x, o, "increment", &bad);
	q->min = jint(x, o, "min", &bad);
	q->max = jint(x, o, "max", &bad);
	q->cache = jint(x, o, "cache", &bad);
	q->cycle = jbool(x, o, "cycle", &bad);
	q->last_value = jint(x, o, "last_value", &bad);
	q->is_called = jbool(x, o, "is_called", &bad);
	owned = jtext(x, o, "owned_by", 1, 2 * NAME_MAX_IDENT + 1, &bad);
	q->comment = jtext(x, o, "comment", 1, PAYLOAD_CATALOG_MAX, &bad);
	if (bad)
		return bad;
	if (strcmp(q->type, "smallint") != 0 && strcmp(q->type, "integer") != 0 &&
	    strcmp(q->type, "bigint") != 0)
		return bad_catalog(x, "%s: unexpected type", x->where);
	if (owned) {
		const char *dot = strchr(owned, '.');
		struct rcol *col;

		if (!dot || dot == owned || (size_t)(dot - owned) > NAME_MAX_IDENT ||
		    !dot[1])
			return bad_catalog(x, "%s: owned_by is not TABLE.COLUMN", x->where);
		memcpy(q->owned_table, owned, (size_t)(dot - owned));
		q->owned_table[dot - owned] = '\0';
		q->owned_column = dot + 1;
		col = find_col(find_table(s, q->owned_table), q->owned_column);
		if (!col)
			return bad_catalog(x, "%s: owned by %s, not a column of the "
			                   "catalog", x->where, owned);
		q->identity = col->identity != 0;
	}
	return 0;
}

static int parse_catalog_json(struct rst *x, const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *schemas;
	size_t i, k, n, mt = 0;
	int bad = 0;

	if (!tok)
		return nomem(x->e);
	x->root = json_tokener_parse_ex(tok, text, (int)len);
	if (!x->root || json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)json_tokener_get_parse_end(tok) != len) {
		enum json_tokener_error je = json_tokener_get_error(tok);

		json_tokener_free(tok);
		return bad_catalog(x, "not one JSON value: %s",
		                   json_tokener_error_desc(je));
	}
	json_tokener_free(tok);
	if (!json_object_is_type(x->root, json_type_object))
		return bad_catalog(x, "not a JSON object");
	set_where(x, "top level");
	{
		const char *fmt = jtext(x, x->root, "format", 0, 64, &bad);

		if (bad)
			return bad;
		if (strcmp(fmt, CATALOG_FORMAT) != 0)
			return bad_catalog(x, "format is not %s", CATALOG_FORMAT);
	}
	schemas = jarray(x, x->root, "schemas", MANIFEST_MAX_SCHEMAS, &n, &bad);
	if (bad)
		return bad;
	if (n != x->m->n_schemas)
		return bad_catalog(x, "%zu schemas, MANIFEST lists %zu", n, x->m->n_schemas);
	x->schemas = calloc(n ? n : 1, sizeof(*x->schemas));
	if (!x->schemas)
		return nomem(x->e);
	x->nschemas = n;
	for (i = 0; i < n; i++) {
		struct rschema *s = &x->schemas[i];
		json_object *o = jitem(x, schemas, i, &bad), *a;
		size_t na;

		s->name = jname(x, o, "name", &bad);
		if (bad)
			return bad;
		if (strcmp(s->name, x->m->schemas[i]) != 0)
			return bad_catalog(x, "schema %zu is %s, MANIFEST says %s", i + 1,
			                   s->name, x->m->schemas[i]);
		set_where(x, "schema %s", s->name);
		s->comment = jtext(x, o, "comment", 1, PAYLOAD_CATALOG_MAX, &bad);

		a = jarray(x, o, "tables", MANIFEST_MAX_TABLES, &na, &bad);
		if (bad)
			return bad;
		s->tables = calloc(na ? na : 1, sizeof(*s->tables));
		if (!s->tables)
			return nomem(x->e);
		s->ntables = na;
		for (k = 0; k < na; k++) {
			struct rtable *t = &s->tables[k];
			const struct manifest_table *want;
			int r;

			set_where(x, "schema %s", s->name);
			r = parse_table(x, s->name, jitem(x, a, k, &bad), t);
			if (bad)
				return bad;
			if (r < 0)
				return r;
			if (k > 0 && strcmp(s->tables[k - 1].name, t->name) >= 0)
				return bad_catalog(x, "schema %s: tables not in byte order",
				                   s->name);
			/* the same set, in the same order, as MANIFEST's Tables */
			if (mt >= x->m->n_tables)
				return bad_catalog(x, "table %s.%s is not in MANIFEST",
				                   s->name, t->name);
			want = &x->m->tables[mt++];
			if (strcmp(want->schema, s->name) != 0 ||
			    strcmp(want->table, t->name) != 0)
				return bad_catalog(x, "table %s.%s where MANIFEST lists %s.%s",
				                   s->name, t->name, want->schema, want->table);
			t->want_rows = want->rows;
		}
		set_where(x, "schema %s", s->name);
		a = jarray(x, o, "sequences", 100000, &na, &bad);
		if (bad)
			return bad;
		s->seqs = calloc(na ? na : 1, sizeof(*s->seqs));
		if (!s->seqs)
			return nomem(x->e);
		s->nseqs = na;
		for (k = 0; k < na; k++) {
			int r = parse_sequence(x, s, jitem(x, a, k, &bad), &s->seqs[k]);

			if (bad)
				return bad;
			if (r < 0)
				return r;
		}
		set_where(x, "schema %s", s->name);
		a = jarray(x, o, "views", 100000, &na, &bad);
		if (bad)
			return bad;
		s->views = calloc(na ? na : 1, sizeof(*s->views));
		if (!s->views)
			return nomem(x->e);
		s->nviews = na;
		for (k = 0; k < na && !bad; k++) {
			json_object *v = jitem(x, a, k, &bad);

			s->views[k].name = jname(x, v, "name", &bad);
			s->views[k].def = jtext(x, v, "definition", 0, PAYLOAD_CATALOG_MAX, &bad);
			s->views[k].comment = jtext(x, v, "comment", 1, PAYLOAD_CATALOG_MAX, &bad);
		}
		if (bad)
			return bad;
	}
	if (mt != x->m->n_tables)
		return bad_catalog(x, "MANIFEST lists %zu tables, the catalog %zu",
		                   x->m->n_tables, mt);
	x->where[0] = '\0';
	return 0;
}

static int read_catalog(struct rst *x)
{
	const char *name;
	uint64_t size, got = 0;
	char *text;
	int r;

	r = unpack_next(x->u, &name, &size, x->e);
	if (r < 0)
		return r;
	if (r == 0 || strcmp(name, CATALOG_NAME) != 0)
		return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
		                 "the payload does not start with %s", CATALOG_NAME);
	if (size > PAYLOAD_CATALOG_MAX)
		return alerr_set(x->e, ALERR_REJECT, -E2BIG, "restore.catalog",
		                 "catalog.json has %llu bytes, over %u",
		                 (unsigned long long)size, PAYLOAD_CATALOG_MAX);
	text = malloc((size_t)size + 1);
	if (!text)
		return nomem(x->e);
	while (got < size) {
		ssize_t n = unpack_read(x->u, text + got, (size_t)(size - got), x->e);

		if (n < 0) {
			free(text);
			return (int)n;
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
	}
	if (got != size) {
		free(text);
		return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
		                 "catalog.json shorter than its header says");
	}
	text[got] = '\0';
	r = parse_catalog_json(x, text, (size_t)got);
	free(text);
	return r;
}

/* ------------------------------------------------------------------ */
/* Building the staging schemas */

static int create_sequence(struct rst *x, struct rschema *s, struct rseq *q)
{
	struct text_buf b = { 0 };
	int r;

	text_buf_add(&b, "CREATE SEQUENCE ");
	r = sb_ident(&b, x->c, q->name, x->e);
	if (r < 0)
		goto out;
	text_buf_printf(&b, " AS %s START WITH %lld INCREMENT BY %lld MINVALUE %lld"
	          " MAXVALUE %lld CACHE %lld %s", q->type, (long long)q->start,
	          (long long)q->increment, (long long)q->min, (long long)q->max,
	          (long long)q->cache, q->cycle ? "CYCLE" : "NO CYCLE");
	set_where(x, "sequence %s.%s: ", s->name, q->name);
	return xsb(x, &b);
out:
	free(b.s);
	return r;
}

static struct rseq *identity_seq(struct rschema *s, const char *table, const char *col)
{
	size_t i;

	for (i = 0; i < s->nseqs; i++)
		if (s->seqs[i].identity && strcmp(s->seqs[i].owned_table, table) == 0 &&
		    strcmp(s->seqs[i].owned_column, col) == 0)
			return &s->seqs[i];
	return NULL;
}

/* A constraint definition without a trailing NOT VALID: the staging rows
 * are checked against every constraint, whatever the source let in
 * (catalogue 42). */
static void sb_add_def(struct text_buf *b, const char *def)
{
	static const char nv[] = " NOT VALID";
	size_t len = strlen(def);

	if (len >= sizeof(nv) - 1 && strcmp(def + len - (sizeof(nv) - 1), nv) == 0)
		len -= sizeof(nv) - 1;
	text_buf_addn(b, def, len);
}

static int create_table(struct rst *x, struct rschema *s, struct rtable *t)
{
	struct text_buf b = { 0 };
	size_t i;
	int r = 0, any = t->ncols > 0;

	text_buf_add(&b, "CREATE TABLE ");
	r = sb_ident(&b, x->c, t->name, x->e);
	text_buf_add(&b, " (");
	for (i = 0; i < t->ncols && r == 0; i++) {
		const struct rcol *c = &t->cols[i];

		text_buf_add(&b, i ? ", " : "");
		r = sb_ident(&b, x->c, c->name, x->e);
		text_buf_add(&b, " ");
		text_buf_add(&b, c->type);
		if (r == 0 && c->identity) {
			struct rseq *q = identity_seq(s, t->name, c->name);

			if (!q) {
				r = bad_catalog(x, "table %s.%s: identity column %s has no "
				                "sequence", s->name, t->name, c->name);
				break;
			}
			text_buf_add(&b, c->identity == 'a' ? " GENERATED ALWAYS" :
			       " GENERATED BY DEFAULT");
			text_buf_add(&b, " AS IDENTITY (SEQUENCE NAME ");
			r = sb_ident(&b, x->c, q->name, x->e);
			text_buf_printf(&b, " START WITH %lld INCREMENT BY %lld MINVALUE %lld"
			          " MAXVALUE %lld CACHE %lld %s)", (long long)q->start,
			          (long long)q->increment, (long long)q->min,
			          (long long)q->max, (long long)q->cache,
			          q->cycle ? "CYCLE" : "NO CYCLE");
		}
		if (c->def) {
			text_buf_add(&b, " DEFAULT ");
			text_buf_add(&b, c->def);
		}
		if (c->not_null)
			text_buf_add(&b, " NOT NULL");
	}
	/* check constraints with the table: COPY checks each row as it
	 * goes, instead of a second scan of the table after it */
	for (i = 0; i < t->ncons && r == 0; i++) {
		const struct rcons *k = &t->cons[i];

		if (k->kind != 'c')
			continue;
		text_buf_add(&b, any ? ", CONSTRAINT " : "CONSTRAINT ");
		any = 1;
		r = sb_ident(&b, x->c, k->name, x->e);
		text_buf_add(&b, " ");
		sb_add_def(&b, k->def);
	}
	text_buf_add(&b, ")");
	if (r < 0) {
		free(b.s);
		return r;
	}
	set_where(x, "table %s.%s: ", s->name, t->name);
	return xsb(x, &b);
}

static int progress(struct rst *x, int force)
{
	int r;

	if (x->par) {           /* a load worker: the main thread reports */
		atomic_fetch_add(&x->par->bytes, x->bytes - x->progress_mark);
		x->progress_mark = x->bytes;
		if (atomic_load(&x->par->stop))
			return alerr_set(x->e, ALERR_SOFTWARE, -ECANCELED,
			                 "restore.cancelled", "stopped: another load "
			                 "worker failed");
		return 0;
	}
	if (!x->o->progress || (!force && x->bytes - x->progress_mark < IO_BUFFER_SIZE))
		return 0;
	x->progress_mark = x->bytes;
	r = x->o->progress(x->o->progress_ctx, x->bytes);
	if (r == 0)
		return 0;
	return alerr_set(x->e, ALERR_SOFTWARE, r < 0 ? r : -ECANCELED,
	                 "restore.cancelled", "the restore was cancelled");
}

/* The next member's name into x->member; x->have_member 0 at the end. */
static int next_member(struct rst *x)
{
	const char *name;
	uint64_t size;
	int r = unpack_next(x->u, &name, &size, x->e);

	if (r < 0)
		return r;
	x->have_member = r;
	if (r == 0) {
		x->member[0] = '\0';
		return 0;
	}
	if (strlen(name) >= sizeof(x->member))
		return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
		                 "payload member name too long");
	strcpy(x->member, name);
	return 0;
}

/* Add the complete lines of p to *lines; *partial holds the bytes of the
 * line begun and not ended. -1 when a line grows over
 * RESTORE_MAX_ROW_BYTES. */
static int count_rows(const char *p, size_t n, uint64_t *lines, uint64_t *partial)
{
	const char *end = p + n, *nl;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (*partial + (uint64_t)(nl - p) > RESTORE_MAX_ROW_BYTES)
			return -1;
		(*lines)++;
		*partial = 0;
		p = nl + 1;
	}
	*partial += (uint64_t)(end - p);
	return *partial > RESTORE_MAX_ROW_BYTES ? -1 : 0;
}

static int copy_error(struct rst *x, const struct alerr *t)
{
	return remap(x, t);
}

static int load_table(struct rst *x, struct rschema *s, struct rtable *t)
{
	char prefix[2 * NAME_MAX_IDENT + 16];
	struct text_buf b = { 0 };
	struct alerr tmp;
	uint64_t rows = 0, lines = 0, line_bytes = 0;
	size_t i, plen;
	int r, segments = 0;

	snprintf(prefix, sizeof(prefix), "data/%s/%s/", s->name, t->name);
	plen = strlen(prefix);
	set_where(x, "table %s.%s: ", s->name, t->name);
	if (!x->have_member || strncmp(x->member, prefix, plen) != 0)
		return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
		                 "table %s.%s: no data segment (next member: %s)",
		                 s->name, t->name,
		                 x->have_member ? x->member : "end of the payload");
	text_buf_add(&b, "COPY ");
	r = sb_ident(&b, x->c, t->name, x->e);
	if (t->ncols) {
		text_buf_add(&b, " (");
		for (i = 0; i < t->ncols && r == 0; i++) {
			text_buf_add(&b, i ? ", " : "");
			r = sb_ident(&b, x->c, t->cols[i].name, x->e);
		}
		text_buf_add(&b, ")");
	}
	text_buf_add(&b, " FROM STDIN WITH (FREEZE)");
	if (r == 0 && b.bad)
		r = nomem(x->e);
	if (r < 0) {
		free(b.s);
		return r;
	}
	alerr_clear(&tmp);
	r = pg_copy_in_begin(x->c, b.s, &tmp);
	free(b.s);
	if (r < 0)
		return copy_error(x, &tmp);
	x->in_copy = 1;
	while (x->have_member && strncmp(x->member, prefix, plen) == 0) {
		segments++;
		for (;;) {
			ssize_t n = unpack_read(x->u, x->buf, IO_BUFFER_SIZE, x->e);

			if (n < 0)
				return (int)n;
			if (n == 0)
				break;
			/* one line per row (a newline in a value is "\n"),
			 * a row counted from its first byte (COPY counts a
			 * last line without its newline too): more than
			 * MANIFEST says stops here, not at the end */
			r = count_rows(x->buf, (size_t)n, &lines, &line_bytes);
			if (lines + (line_bytes > 0) > t->want_rows)
				return alerr_set(x->e, ALERR_REJECT, -EBADMSG,
				                 "restore.row_count", "table %s.%s: more "
				                 "than the %llu rows MANIFEST says",
				                 s->name, t->name,
				                 (unsigned long long)t->want_rows);
			if (r < 0)
				return alerr_set(x->e, ALERR_REJECT, -EMSGSIZE,
				                 "restore.data", "table %s.%s: row %llu is "
				                 "over %llu bytes", s->name, t->name,
				                 (unsigned long long)lines + 1,
				                 (unsigned long long)RESTORE_MAX_ROW_BYTES);
			alerr_clear(&tmp);
			r = pg_copy_in_put(x->c, x->buf, (size_t)n, &tmp);
			if (r < 0) {
				x->in_copy = 0;
				return copy_error(x, &tmp);
			}
			x->bytes += (uint64_t)n;
			r = progress(x, 0);
			if (r < 0)
				return r;
		}
		r = next_member(x);
		if (r < 0)
			return r;
	}
	alerr_clear(&tmp);
	x->in_copy = 0;
	r = pg_copy_in_end(x->c, NULL, &rows, &tmp);
	if (r < 0)
		return copy_error(x, &tmp);
	t->rows = rows;
	if (rows != t->want_rows)
		return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.row_count",
		                 "table %s.%s: %llu rows loaded, MANIFEST says %llu",
		                 s->name, t->name, (unsigned long long)rows,
		                 (unsigned long long)t->want_rows);
	x->res->rows += rows;
	x->res->tables++;
	log_dbg("restore: %s.%s: %llu rows in %d segments", s->name, t->name,
	        (unsigned long long)rows, segments);
	return progress(x, 1);
}

static int alter_table(struct rst *x, struct rschema *s, struct rtable *t,
                       struct text_buf *b)
{
	text_buf_add(b, "ALTER TABLE ");
	(void)s;
	return sb_ident(b, x->c, t->name, x->e);
}


/* "ALTER TABLE t ADD CONSTRAINT name definition" */
static int add_constraint(struct rst *x, struct rschema *s, struct rtable *t,
                          struct rcons *c)
{
	struct text_buf b = { 0 };
	int r;

	r = alter_table(x, s, t, &b);
	text_buf_add(&b, " ADD CONSTRAINT ");
	if (r == 0)
		r = sb_ident(&b, x->c, c->name, x->e);
	text_buf_add(&b, " ");
	sb_add_def(&b, c->def);
	if (r < 0) {
		free(b.s);
		return r;
	}
	set_where(x, "table %s.%s, constraint %s: ", s->name, t->name, c->name);
	return xsb(x, &b);
}

static int add_index(struct rst *x, struct rschema *s, struct rtable *t, size_t k)
{
	set_where(x, "table %s.%s, index %s: ", s->name, t->name, t->idx[k].name);
	return xexec(x, t->idx[k].def, 0, NULL);
}

/* The table's constraints of the kinds in kinds ("pu": primary and
 * unique keys, "f": foreign keys) not added yet. Check constraints come
 * with the table. */
static int add_table_constraints(struct rst *x, struct rschema *s, struct rtable *t,
                                 const char *kinds)
{
	size_t k;
	int r;

	for (k = 0; k < t->ncons; k++) {
		struct rcons *c = &t->cons[k];

		if (!strchr(kinds, c->kind) || c->done)
			continue;
		r = add_constraint(x, s, t, c);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Every table's keys and indexes, then (their referenced keys exist by
 * then) the foreign keys not added yet; keys_too 0: the foreign keys only. */
static int add_constraints(struct rst *x, struct rschema *s, int keys_too)
{
	size_t i, k;
	int r = 0;

	for (i = 0; keys_too && i < s->ntables && r == 0; i++) {
		struct rtable *t = &s->tables[i];

		r = add_table_constraints(x, s, t, "pu");
		for (k = 0; k < t->nidx && r == 0; k++)
			r = add_index(x, s, t, k);
	}
	for (i = 0; i < s->ntables && r == 0; i++)
		r = add_table_constraints(x, s, &s->tables[i], "f");
	return r;
}

static int finish_sequences(struct rst *x, struct rschema *s)
{
	size_t i;
	int r;

	for (i = 0; i < s->nseqs; i++) {
		struct rseq *q = &s->seqs[i];
		struct text_buf b = { 0 };
		char val[24];
		const char *p[3];

		set_where(x, "sequence %s.%s: ", s->name, q->name);
		if (q->owned_column && !q->identity) {
			text_buf_add(&b, "ALTER SEQUENCE ");
			r = sb_ident(&b, x->c, q->name, x->e);
			text_buf_add(&b, " OWNED BY ");
			if (r == 0)
				r = sb_ident(&b, x->c, q->owned_table, x->e);
			text_buf_add(&b, ".");
			if (r == 0)
				r = sb_ident(&b, x->c, q->owned_column, x->e);
			if (r < 0) {
				free(b.s);
				return r;
			}
			r = xsb(x, &b);
			if (r < 0)
				return r;
		}
		r = sb_ident(&b, x->c, s->staging, x->e);
		text_buf_add(&b, ".");
		if (r == 0)
			r = sb_ident(&b, x->c, q->name, x->e);
		if (r < 0 || b.bad) {
			free(b.s);
			return r < 0 ? r : nomem(x->e);
		}
		snprintf(val, sizeof(val), "%lld", (long long)q->last_value);
		p[0] = b.s;
		p[1] = val;
		p[2] = q->is_called ? "true" : "false";
		r = xexec(x, "SELECT pg_catalog.setval($1::pg_catalog.regclass, $2::bigint,"
		          " $3::boolean)", 3, p);
		free(b.s);
		if (r < 0)
			return r;
	}
	return 0;
}

static int create_views(struct rst *x, struct rschema *s)
{
	size_t i;
	int r;

	for (i = 0; i < s->nviews; i++) {
		struct text_buf b = { 0 };

		text_buf_add(&b, "CREATE VIEW ");
		r = sb_ident(&b, x->c, s->views[i].name, x->e);
		text_buf_add(&b, " AS ");
		text_buf_add(&b, s->views[i].def);
		if (r < 0) {
			free(b.s);
			return r;
		}
		set_where(x, "view %s.%s: ", s->name, s->views[i].name);
		r = xsb(x, &b);
		if (r < 0)
			return r;
	}
	return 0;
}

/* COMMENT ON <what> <name1>[.<name2> | ON <name2>] IS <text> */
static int comment(struct rst *x, const char *what, const char *n1,
                   const char *sep, const char *n2, const char *text)
{
	struct text_buf b = { 0 };
	int r;

	if (!text)
		return 0;
	text_buf_add(&b, "COMMENT ON ");
	text_buf_add(&b, what);
	text_buf_add(&b, " ");
	r = sb_ident(&b, x->c, n1, x->e);
	if (r == 0 && n2) {
		text_buf_add(&b, sep);
		r = sb_ident(&b, x->c, n2, x->e);
	}
	text_buf_add(&b, " IS ");
	if (r == 0)
		r = sb_literal(&b, x->c, text, x->e);
	if (r < 0) {
		free(b.s);
		return r;
	}
	return xsb(x, &b);
}

static int add_comments(struct rst *x, struct rschema *s)
{
	size_t i, k;
	int r;

	set_where(x, "schema %s, comments: ", s->name);
	r = comment(x, "SCHEMA", s->staging, NULL, NULL, s->comment);
	for (i = 0; i < s->nseqs && r == 0; i++)
		r = comment(x, "SEQUENCE", s->seqs[i].name, NULL, NULL, s->seqs[i].comment);
	for (i = 0; i < s->ntables && r == 0; i++) {
		struct rtable *t = &s->tables[i];

		r = comment(x, "TABLE", t->name, NULL, NULL, t->comment);
		for (k = 0; k < t->ncols && r == 0; k++)
			r = comment(x, "COLUMN", t->name, ".", t->cols[k].name,
			            t->cols[k].comment);
		for (k = 0; k < t->ncons && r == 0; k++) {
			struct text_buf b = { 0 };

			if (!t->cons[k].comment)
				continue;
			text_buf_add(&b, "COMMENT ON CONSTRAINT ");
			r = sb_ident(&b, x->c, t->cons[k].name, x->e);
			text_buf_add(&b, " ON ");
			if (r == 0)
				r = sb_ident(&b, x->c, t->name, x->e);
			text_buf_add(&b, " IS ");
			if (r == 0)
				r = sb_literal(&b, x->c, t->cons[k].comment, x->e);
			if (r < 0)
				free(b.s);
			else
				r = xsb(x, &b);
		}
		for (k = 0; k < t->nidx && r == 0; k++)
			r = comment(x, "INDEX", t->idx[k].name, NULL, NULL, t->idx[k].comment);
	}
	for (i = 0; i < s->nviews && r == 0; i++)
		r = comment(x, "VIEW", s->views[i].name, NULL, NULL, s->views[i].comment);
	return r;
}

static const char *const privileges[] = {
	"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES",
	"TRIGGER", "USAGE", "CREATE",
};

static int privilege_ok(const char *p)
{
	size_t i;

	for (i = 0; i < sizeof(privileges) / sizeof(privileges[0]); i++)
		if (strcmp(p, privileges[i]) == 0)
			return 1;
	return 0;
}

static int grant(struct rst *x, const char *priv, const char *on, const char *name,
                 const struct pg_result *res, size_t row, int role_col)
{
	struct text_buf b = { 0 };
	int r;

	if (!privilege_ok(priv))
		return 0;
	text_buf_add(&b, "GRANT ");
	text_buf_add(&b, priv);
	text_buf_add(&b, " ON ");
	text_buf_add(&b, on);
	text_buf_add(&b, " ");
	r = sb_ident(&b, x->c, name, x->e);
	text_buf_add(&b, " TO ");
	if (r == 0 && pg_result_isnull(res, row, role_col))
		text_buf_add(&b, "PUBLIC");
	else if (r == 0)
		r = sb_ident(&b, x->c, pg_result_get(res, row, role_col), x->e);
	if (strcmp(pg_result_get(res, row, role_col + 1), "t") == 0)
		text_buf_add(&b, " WITH GRANT OPTION");
	if (r < 0) {
		free(b.s);
		return r;
	}
	return xsb(x, &b);
}

/* Grants: whoever may read the live schema and its tables, views and
 * sequences keeps that right on the new ones after the swap. Objects the
 * new feed no longer has are skipped. The owner of the new objects is the
 * importing role. */
static int copy_grants(struct rst *x, struct rschema *s)
{
	const char *p[1] = { s->name };
	struct pg_result *res = NULL;
	size_t i, n;
	int r;

	set_where(x, "schema %s, grants: ", s->name);
	r = xquery(x, q_schema_acl, 1, p, 3, &res);
	if (r < 0)
		return r;
	s->live_exists = 1;
	n = pg_result_ntuples(res);
	for (i = 0; i < n && r == 0; i++)
		r = grant(x, pg_result_get(res, i, 0), "SCHEMA", s->staging, res, i, 1);
	pg_result_free(res);
	if (r < 0)
		return r;
	r = xquery(x, q_rel_acl, 1, p, 5, &res);
	if (r < 0)
		return r;
	n = pg_result_ntuples(res);
	for (i = 0; i < n && r == 0; i++) {
		const char *name = pg_result_get(res, i, 0);
		const char *kind = pg_result_get(res, i, 1);
		const char *on = NULL;
		size_t k;

		if (kind[0] == 'r' && find_table(s, name))
			on = "TABLE";
		for (k = 0; kind[0] == 'v' && k < s->nviews; k++)
			if (strcmp(s->views[k].name, name) == 0)
				on = "TABLE";
		for (k = 0; kind[0] == 'S' && k < s->nseqs; k++)
			if (strcmp(s->seqs[k].name, name) == 0)
				on = "SEQUENCE";
		if (on)
			r = grant(x, pg_result_get(res, i, 2), on, name, res, i, 3);
	}
	pg_result_free(res);
	return r;
}

static int analyze_table(struct rst *x, struct rschema *s, struct rtable *t)
{
	struct text_buf b = { 0 };
	int r;

	text_buf_add(&b, "ANALYZE ");
	r = sb_ident(&b, x->c, t->name, x->e);
	if (r < 0) {
		free(b.s);
		return r;
	}
	set_where(x, "table %s.%s: ", s->name, t->name);
	return xsb(x, &b);
}

static int analyze(struct rst *x, struct rschema *s)
{
	size_t i;
	int r = 0;

	for (i = 0; i < s->ntables && r == 0; i++)
		r = analyze_table(x, s, &s->tables[i]);
	return r;
}

static int live_exists(struct rst *x, struct rschema *s)
{
	const char *p[1] = { s->name };
	struct pg_result *res;
	int r;

	r = xquery(x, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", 1,
	           p, 1, &res);
	if (r < 0)
		return r;
	s->live_exists = pg_result_ntuples(res) == 1;
	pg_result_free(res);
	return 0;
}

/* Refuse to replace a live schema that objects elsewhere depend on: the
 * swap would drop them silently (the operator moves or drops them). */
static int check_dependents(struct rst *x, struct rschema *s)
{
	char lim[16];
	const char *p[2] = { s->name, lim };
	struct pg_result *res;
	struct text_buf b = { 0 };
	size_t i, n;
	int r;

	snprintf(lim, sizeof(lim), "%d", DEPENDENTS_SHOWN + 1);
	set_where(x, "schema %s: ", s->name);
	r = xquery(x, q_dependents, 2, p, 1, &res);
	if (r < 0)
		return r;
	n = pg_result_ntuples(res);
	for (i = 0; i < n && i < DEPENDENTS_SHOWN; i++) {
		char shown[256];
		const char *d = pg_result_get(res, i, 0);

		log_sanitize(shown, sizeof(shown), d, strlen(d));
		text_buf_add(&b, i ? ", " : "");
		text_buf_add(&b, shown);
	}
	if (n > DEPENDENTS_SHOWN)
		text_buf_add(&b, ", ...");
	pg_result_free(res);
	if (n == 0) {
		free(b.s);
		return 0;
	}
	r = alerr_set(x->e, ALERR_CONFIG, -ENOTEMPTY, "restore.dependents",
	              "schema %s: objects outside it depend on it and the swap would "
	              "drop them: %s; move or drop them first (airlock replaces the "
	              "schema whole)", s->name, b.bad ? "(out of memory)" : b.s);
	free(b.s);
	return r;
}

static int random_names(struct rst *x, struct rschema *s)
{
	uint8_t rnd[RANDOM_BYTES];
	char hex[2 * RANDOM_BYTES + 1];
	size_t got = 0;

	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return alerr_set(x->e, ALERR_OSERR, -errno, "restore.random",
			                 "getrandom: %s", strerror(errno));
		}
		got += (size_t)n;
	}
	text_hex_encode(hex, rnd, sizeof(rnd));
	hex[2 * RANDOM_BYTES] = '\0';
	snprintf(s->staging, sizeof(s->staging), "%s%s", RESTORE_STAGING_PREFIX, hex);
	snprintf(s->old, sizeof(s->old), "%s%s", RESTORE_OLD_PREFIX, hex);
	if (pg_quote_ident(x->c, s->staging, &s->qstaging, x->e) < 0 ||
	    pg_quote_ident(x->c, s->name, &s->qlive, x->e) < 0 ||
	    pg_quote_ident(x->c, s->old, &s->qold, x->e) < 0)
		return -EINVAL;
	return 0;
}

static int bookkeeping(struct rst *x)
{
	char k1[16];
	const char *lp[2] = { k1, "0" };
	int r;

	snprintf(k1, sizeof(k1), "%d", RESTORE_LOCK_STAGING);
	set_where(x, "airlock.imports: ");
	r = xexec(x, "BEGIN", 0, NULL);
	if (r < 0)
		return r;
	x->in_tx = 1;
	/* CREATE ... IF NOT EXISTS races with itself: one at a time */
	r = xexec(x, "SELECT pg_catalog.pg_advisory_xact_lock($1::integer, $2::integer)",
	          2, lp);
	if (r == 0)
		r = xexec(x, q_book_schema, 0, NULL);
	if (r == 0)
		r = xexec(x, q_book_table, 0, NULL);
	if (r == 0)
		r = xexec(x, "COMMIT", 0, NULL);
	if (r == 0)
		x->in_tx = 0;
	return r;
}

static int lock_staging(struct rst *x, struct rschema *s)
{
	char k1[16], k2[16];
	const char *p[2] = { k1, k2 };
	int r;

	snprintf(k1, sizeof(k1), "%d", RESTORE_LOCK_STAGING);
	lock_key(k2, sizeof(k2), s->staging);
	r = xexec(x, "SELECT pg_catalog.pg_advisory_lock($1::integer, $2::integer)", 2, p);
	if (r == 0)
		s->locked = 1;
	return r;
}

/* A loaded staging schema completed: its foreign keys, sequence values,
 * views, comments and the live schema's grants; and, unless the load
 * workers did it table by table (loaded), the other constraints, the
 * indexes and ANALYZE. */
static int finish_schema(struct rst *x, struct rschema *s, int loaded)
{
	int r = set_search_path(x, s);

	if (r == 0)
		r = add_constraints(x, s, !loaded);
	if (r == 0)
		r = finish_sequences(x, s);
	if (r == 0)
		r = create_views(x, s);
	if (r == 0)
		r = add_comments(x, s);
	if (r == 0)
		r = live_exists(x, s);
	if (r == 0 && s->live_exists)
		r = copy_grants(x, s);
	if (r == 0 && !loaded)
		r = analyze(x, s);
	return r;
}

/* ------------------------------------------------------------------ */
/* The parallel load (jobs > 1, see restore.h) */

/* Move w's reader to the first segment of table k: the members before it
 * must be the segments of the tables in between, in order. */
static int skip_to(struct pworker *w, size_t k)
{
	struct rst *x = &w->x;
	int r;

	for (; w->pos < k; w->pos++) {
		const struct ptable *pt = &w->p->flat[w->pos];
		char prefix[2 * NAME_MAX_IDENT + 16];
		size_t plen;

		snprintf(prefix, sizeof(prefix), "data/%s/%s/", pt->s->name, pt->t->name);
		plen = strlen(prefix);
		if (!x->have_member || strncmp(x->member, prefix, plen) != 0)
			return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
			                 "table %s.%s: no data segment (next member: %s)",
			                 pt->s->name, pt->t->name,
			                 x->have_member ? x->member : "end of the payload");
		while (x->have_member && strncmp(x->member, prefix, plen) == 0) {
			r = next_member(x);
			if (r < 0)
				return r;
			r = progress(x, 0);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* One task in a transaction of its own. A load creates the table, loads
 * it with COPY FREEZE (the table is new in this transaction) and adds its
 * primary and unique keys. */
static int run_task(struct rst *x, const struct ptask *k)
{
	struct rschema *s = k->t->s;
	struct rtable *t = k->t->t;
	double t0 = now_s();
	int r;

	r = xexec(x, "BEGIN", 0, NULL);
	if (r < 0)
		return r;
	x->in_tx = 1;
	r = set_search_path(x, s);
	switch (k->kind) {
	case PT_LOAD:
		if (r == 0)
			r = create_table(x, s, t);
		if (r == 0)
			r = load_table(x, s, t);
		if (r == 0)
			r = add_table_constraints(x, s, t, "pu");
		break;
	case PT_INDEX:
		if (r == 0)
			r = add_index(x, s, t, k->k);
		break;
	case PT_ANALYZE:
		if (r == 0)
			r = analyze_table(x, s, t);
		break;
	case PT_FKEY:
		if (r == 0)
			r = add_constraint(x, s, t, &t->cons[k->k]);
		break;
	}
	if (r == 0) {
		set_where(x, "table %s.%s: ", s->name, t->name);
		r = xexec(x, "COMMIT", 0, NULL);
		if (r == 0)
			x->in_tx = 0;
	}
	if (r == 0 && k->kind == PT_INDEX)
		log_dbg("restore: %s.%s: index %s built (%.2f s)", s->name, t->name,
		        t->idx[k->k].name, now_s() - t0);
	else if (r == 0 && k->kind == PT_FKEY)
		log_dbg("restore: %s.%s: foreign key %s to %s checked (%.2f s)", s->name,
		        t->name, t->cons[k->k].name, k->ref->t->name, now_s() - t0);
	else if (r == 0 && k->kind == PT_ANALYZE)
		log_dbg("restore: %s.%s: analyzed (%.2f s)", s->name, t->name, now_s() - t0);
	else if (r == 0)
		log_dbg("restore: %s.%s: loaded, keys added (%.2f s)", s->name, t->name,
		        now_s() - t0);
	return r;
}

/* A worker's open COPY and transaction ended (its connection is closed
 * by the main thread after the join). */
static void worker_abort(struct rst *x)
{
	struct alerr t;

	alerr_clear(&t);
	if (x->c && x->in_copy)
		pg_copy_in_end(x->c, "restore failed", NULL, &t);
	x->in_copy = 0;
	alerr_clear(&t);
	if (x->c && x->in_tx)
		(void)pg_exec(x->c, "ROLLBACK", 0, NULL, &t);
	x->in_tx = 0;
}

/* p->mu held */
static void par_fail_locked(struct par *p, const struct alerr *e)
{
	/* the first failure is the reason; the others only followed it */
	if (!p->failed) {
		p->failed = 1;
		p->err = *e;
	}
	atomic_store(&p->stop, 1);
	pthread_cond_broadcast(&p->cv);
}

static void par_fail(struct par *p, const struct alerr *e)
{
	pthread_mutex_lock(&p->mu);
	par_fail_locked(p, e);
	pthread_mutex_unlock(&p->mu);
}

/* Whether task k may start now: what it needs is done and nothing
 * running holds a lock it would wait for. */
static int task_ready(const struct ptask *k)
{
	const struct ptable *t = k->t, *f = k->ref;

	if (k->state != 0 || !t->loaded || t->excl)
		return 0;
	switch (k->kind) {
	case PT_INDEX:
		return 1;
	case PT_ANALYZE:
		return t->idx_left == 0 && t->shared == 0;
	case PT_FKEY:
		return t->shared == 0 && f->loaded && !f->excl && f->shared == 0 &&
		       f->uidx_left == 0;
	case PT_LOAD:
		break;
	}
	return 0;
}

/* The rows a task works through, weighted, to run the costliest first:
 * an index sorts its table (a text key compares under a collation, about
 * four times an integer's cost), a foreign key joins two, ANALYZE
 * samples. */
static uint64_t task_cost(const struct ptask *k)
{
	switch (k->kind) {
	case PT_INDEX:
		return k->t->t->rows * k->weight;
	case PT_FKEY:
		return k->t->t->rows + (k->ref != k->t ? k->ref->t->rows : 0);
	case PT_ANALYZE:
		return k->t->t->rows / 4;
	case PT_LOAD:
		break;
	}
	return 0;
}

static void task_take(struct ptask *k)
{
	k->state = 1;
	switch (k->kind) {
	case PT_INDEX:
		k->t->shared++;
		break;
	case PT_FKEY:
		k->ref->excl = 1;
		/* fall through */
	case PT_LOAD:
	case PT_ANALYZE:
		k->t->excl = 1;
		break;
	}
}

static void task_done(struct par *p, struct ptask *k)
{
	k->state = 2;
	p->left--;
	switch (k->kind) {
	case PT_INDEX:
		k->t->shared--;
		k->t->idx_left--;
		if (k->unique)
			k->t->uidx_left--;
		break;
	case PT_FKEY:
		k->ref->excl = 0;
		k->t->t->cons[k->k].done = 1;
		k->t->excl = 0;
		break;
	case PT_LOAD:
		k->t->loaded = 1;
		/* fall through */
	case PT_ANALYZE:
		k->t->excl = 0;
		break;
	}
}

/* The next task for a worker (p->mu held): the next load while any is
 * left, else the costliest ready one; NULL when none is left. Waits while
 * tasks are left but none can start. */
static struct ptask *task_claim(struct par *p)
{
	for (;;) {
		struct ptask *best = NULL;
		uint64_t cost = 0;
		size_t i;

		if (atomic_load(&p->stop) || p->left == 0)
			return NULL;
		if (p->next < p->ntables) {
			best = &p->tasks[p->next++];
		} else {
			for (i = p->ntables; i < p->ntasks; i++) {
				struct ptask *k = &p->tasks[i];

				if (task_ready(k) && (!best || task_cost(k) > cost)) {
					best = k;
					cost = task_cost(k);
				}
			}
		}
		if (best) {
			task_take(best);
			p->active++;
			return best;
		}
		if (p->active == 0) {
			/* cannot happen: with nothing running, a task is ready */
			if (!p->failed) {
				p->failed = 1;
				alerr_clear(&p->err);
				alerr_set(&p->err, ALERR_SOFTWARE, -EDEADLK, "restore.internal",
				          "the parallel build found no task to run");
			}
			atomic_store(&p->stop, 1);
			pthread_cond_broadcast(&p->cv);
			return NULL;
		}
		pthread_cond_wait(&p->cv, &p->mu);
	}
}

static void *worker_main(void *arg)
{
	struct pworker *w = arg;
	struct par *p = w->p;
	struct rst *x = &w->x;
	int r = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct ptask *k = task_claim(p);
		size_t n;

		if (!k)
			break;
		pthread_mutex_unlock(&p->mu);
		n = (size_t)(k - p->tasks);
		r = k->kind == PT_LOAD ? skip_to(w, n) : 0;
		if (r == 0)
			r = run_task(x, k);
		if (r == 0 && k->kind == PT_LOAD) {
			w->pos = n + 1;
			if (n + 1 == p->ntables && x->have_member)
				r = alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
				              "unexpected payload member %s after the last "
				              "table", x->member);
		}
		if (r == 0)
			r = progress(x, 1);
		pthread_mutex_lock(&p->mu);
		p->active--;
		if (r < 0) {
			/* recorded before the mutex is let go: a worker looking
			 * for a task must see the stop, not a graph that cannot
			 * go on (this task will never be done) */
			if (strcmp(w->e.reason, "restore.cancelled") != 0 ||
			    !atomic_load(&p->stop))
				par_fail_locked(p, &w->e);
			break;
		}
		task_done(p, k);
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	if (r < 0)
		worker_abort(x);
	pthread_mutex_lock(&p->mu);
	p->running--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* A worker beyond the first: its own reader, moved past catalog.json
 * (read and checked by the main one: the same verified bytes). */
static int worker_open(struct par *p, struct pworker *w)
{
	const struct restore_options *o = p->main->o;
	struct rst *x = &w->x;
	int r;

	r = o->open_payload(o->payload_ctx, &x->u, &w->handle, x->e);
	if (r < 0)
		return r;
	r = next_member(x);
	if (r == 0 && (!x->have_member || strcmp(x->member, CATALOG_NAME) != 0))
		r = alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
		              "the payload does not start with %s", CATALOG_NAME);
	if (r == 0)
		r = next_member(x);
	return r;
}

/* Wait for the workers, reporting progress; a cancelled restore stops
 * them (their statements too). */
static void par_wait(struct par *p)
{
	struct rst *x = p->main;
	int cancelled = 0;
	unsigned int i;

	pthread_mutex_lock(&p->mu);
	while (p->running > 0) {
		struct timespec ts;
		uint64_t bytes;
		int r = 0;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000 * 1000 * 1000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000 * 1000 * 1000;
		}
		(void)pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		if (atomic_load(&p->stop) && !cancelled) {
			cancelled = 1;
			for (i = 0; i < p->n; i++)
				if (p->w[i].x.c)
					pg_cancel(p->w[i].x.c);
		}
		bytes = atomic_load(&p->bytes);
		pthread_mutex_unlock(&p->mu);
		if (x->o->progress && !cancelled && bytes != x->progress_mark) {
			x->progress_mark = bytes;
			r = x->o->progress(x->o->progress_ctx, bytes);
		}
		if (r != 0) {
			struct alerr t;

			alerr_clear(&t);
			alerr_set(&t, ALERR_SOFTWARE, r < 0 ? r : -ECANCELED,
			          "restore.cancelled", "the restore was cancelled");
			par_fail(p, &t);
		}
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->n; i++)
		if (p->w[i].started)
			pthread_join(p->w[i].thread, NULL);
}

/* BEGIN, then the staging schemas and their sequences; with_tables, their
 * tables too (the one-transaction build). */
static int begin_staging(struct rst *x, int with_tables)
{
	size_t i, k;
	int r;

	r = xexec(x, "BEGIN", 0, NULL);
	if (r < 0)
		return r;
	x->in_tx = 1;
	x->build = 1;
	for (i = 0; i < x->nschemas; i++) {
		struct rschema *s = &x->schemas[i];
		struct text_buf b = { 0 };

		set_where(x, "schema %s: ", s->name);
		text_buf_add(&b, "CREATE SCHEMA ");
		text_buf_add(&b, s->qstaging);
		r = xsb(x, &b);
		if (r == 0)
			r = set_search_path(x, s);
		for (k = 0; k < s->nseqs && r == 0; k++)
			if (!s->seqs[k].identity)
				r = create_sequence(x, s, &s->seqs[k]);
		for (k = 0; with_tables && k < s->ntables && r == 0; k++)
			r = create_table(x, s, &s->tables[k]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The staging schemas and their sequences, committed. */
static int create_staging(struct rst *x)
{
	int r = begin_staging(x, 0);

	if (r < 0)
		return r;
	set_where(x, "staging: ");
	r = xexec(x, "COMMIT", 0, NULL);
	if (r < 0)
		return r;
	x->in_tx = 0;
	x->staged = 1;          /* from now on a failure drops them */
	return 0;
}

/* The identifier at *pp (quoted as quote_ident quotes) into out, *pp
 * moved past it; -1 when there is none or it does not fit. */
static int scan_ident(const char **pp, char *out, size_t size)
{
	const char *q = *pp;
	size_t n = 0;

	if (*q == '"') {
		for (q++;; q++) {
			if (*q == '\0')
				return -1;
			if (*q == '"') {
				if (q[1] != '"')
					break;
				q++;
			}
			if (n + 1 >= size)
				return -1;
			out[n++] = *q;
		}
		q++;
	} else {
		while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_') {
			if (n + 1 >= size)
				return -1;
			out[n++] = *q++;
		}
	}
	if (n == 0)
		return -1;
	out[n] = '\0';
	*pp = q;
	return 0;
}

/* The table of schema s that foreign key definition def references, as
 * pg_get_constraintdef writes it ("FOREIGN KEY (cols) REFERENCES
 * name(cols) ..."); NULL when it names another schema's or cannot be
 * read: that key waits for the final transaction. */
static struct rtable *fk_target(struct rschema *s, const char *def)
{
	char name[NAME_MAX_IDENT + 1];
	const char *q = def + strlen("FOREIGN KEY (");

	for (;;) {              /* the referencing columns */
		if (scan_ident(&q, name, sizeof(name)) < 0)
			return NULL;
		if (strncmp(q, ", ", 2) == 0)
			q += 2;
		else if (*q == ')')
			break;
		else
			return NULL;
	}
	if (strncmp(q, ") REFERENCES ", 13) != 0)
		return NULL;
	q += 13;
	if (scan_ident(&q, name, sizeof(name)) < 0 || *q != '(')
		return NULL;
	return find_table(s, name);
}

/* The relative cost of comparing an index's keys: 4 for a column of a
 * character type or an expression (compared under a collation, or
 * computed), 1 for any other column. Read from the definition as
 * pg_get_indexdef writes it ("... USING method (key, ...)..."); anything
 * it cannot read counts 4. */
static unsigned int index_weight(const struct rtable *t, const char *def)
{
	char name[NAME_MAX_IDENT + 1];
	const char *q = strstr(def, " USING ");
	unsigned int w = 0;

	if (!q || !(q = strchr(q, '(')))
		return 4;
	for (q++;;) {
		const struct rcol *c = NULL;
		int depth = 0;
		size_t i;

		if (scan_ident(&q, name, sizeof(name)) == 0)
			for (i = 0; i < t->ncols; i++)
				if (strcmp(t->cols[i].name, name) == 0)
					c = &t->cols[i];
		w += !c || starts(c->type, "text") || starts(c->type, "character") ||
		     starts(c->type, "varchar") || starts(c->type, "citext") ? 4 : 1;
		for (; *q && (depth > 0 || (*q != ',' && *q != ')')); q++)
			if (*q == '(')
				depth++;
			else if (*q == ')')
				depth--;
			else if (*q == '"')
				for (q++; *q && *q != '"'; q++)
					;
		if (*q != ',' || w > 64)
			return w ? w : 4;
		q++;
		while (*q == ' ')
			q++;
	}
}

/* The tasks: each table's load (in catalog order), its indexes and
 * ANALYZE, the foreign keys between its tables. */
static int plan_tasks(struct par *p)
{
	size_t i, k, n = p->ntables;

	for (i = 0; i < p->ntables; i++)
		n += p->flat[i].t->nidx + 1 + p->flat[i].t->ncons;
	p->tasks = calloc(n ? n : 1, sizeof(*p->tasks));
	if (!p->tasks)
		return nomem(p->main->e);
	n = 0;
	for (i = 0; i < p->ntables; i++) {
		p->tasks[n].kind = PT_LOAD;
		p->tasks[n++].t = &p->flat[i];
	}
	for (i = 0; i < p->ntables; i++) {
		struct ptable *pt = &p->flat[i];
		struct rtable *t = pt->t;

		for (k = 0; k < t->nidx; k++) {
			p->tasks[n].kind = PT_INDEX;
			p->tasks[n].t = pt;
			p->tasks[n].weight = index_weight(t, t->idx[k].def);
			p->tasks[n].unique = starts(t->idx[k].def, "CREATE UNIQUE INDEX ");
			p->tasks[n++].k = k;
			pt->idx_left++;
			pt->uidx_left += (size_t)p->tasks[n - 1].unique;
		}
		p->tasks[n].kind = PT_ANALYZE;
		p->tasks[n++].t = pt;
		for (k = 0; k < t->ncons; k++) {
			struct rtable *ref;
			size_t j;

			if (t->cons[k].kind != 'f')
				continue;
			ref = fk_target(pt->s, t->cons[k].def);
			for (j = 0; ref && j < p->ntables; j++)
				if (p->flat[j].t == ref)
					break;
			if (!ref || j == p->ntables)
				continue;
			p->tasks[n].kind = PT_FKEY;
			p->tasks[n].t = pt;
			p->tasks[n].ref = &p->flat[j];
			p->tasks[n++].k = k;
		}
	}
	p->ntasks = p->left = n;
	return 0;
}

static int par_start(struct par *p, unsigned int jobs)
{
	struct rst *x = p->main;
	size_t i, k, n = 0;
	unsigned int j;
	int r;

	for (i = 0; i < x->nschemas; i++)
		n += x->schemas[i].ntables;
	p->ntables = n;
	p->flat = calloc(n ? n : 1, sizeof(*p->flat));
	if (!p->flat)
		return nomem(x->e);
	for (i = 0, n = 0; i < x->nschemas; i++)
		for (k = 0; k < x->schemas[i].ntables; k++) {
			p->flat[n].s = &x->schemas[i];
			p->flat[n++].t = &x->schemas[i].tables[k];
		}
	r = plan_tasks(p);
	if (r < 0)
		return r;
	p->n = jobs < p->ntasks ? jobs : (unsigned int)p->ntasks;
	p->w = calloc(p->n ? p->n : 1, sizeof(*p->w));
	if (!p->w)
		return nomem(x->e);
	for (j = 0; j < p->n; j++) {
		struct pworker *w = &p->w[j];

		w->p = p;
		w->x = *x;
		w->x.c = NULL;
		w->x.e = &w->e;
		w->x.res = &w->res;
		w->x.par = p;
		w->x.buf = NULL;
		w->x.bytes = w->x.progress_mark = 0;
		w->x.in_tx = w->x.in_copy = w->x.staged = 0;
		w->x.build = 1;
		alerr_clear(&w->e);
		if (j > 0) {
			w->x.u = NULL;
			w->x.have_member = 0;
		}
	}
	/* connections and readers from this thread, before any worker runs */
	for (j = 0; j < p->n; j++) {
		struct pworker *w = &p->w[j];

		w->x.buf = malloc(IO_BUFFER_SIZE);
		if (!w->x.buf)
			return nomem(x->e);
		r = pg_connect(x->o->conninfo, &w->x.c, &w->e);
		if (r == 0) {
			pg_set_timeout(w->x.c, statement_timeout(x->o));
			if (j > 0)
				r = worker_open(p, w);
		}
		if (r < 0) {
			*x->e = w->e;
			return r;
		}
	}
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		return nomem(x->e);
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		return nomem(x->e);
	}
	p->running = p->n;
	for (j = 0; j < p->n; j++) {
		r = pthread_create(&p->w[j].thread, NULL, worker_main, &p->w[j]);
		if (r != 0) {
			struct alerr t;

			alerr_clear(&t);
			alerr_set(&t, ALERR_OSERR, -r, "restore.thread",
			          "cannot start a load worker: %s", strerror(r));
			pthread_mutex_lock(&p->mu);
			p->running -= p->n - j;
			pthread_mutex_unlock(&p->mu);
			par_fail(p, &t);
			break;
		}
		p->w[j].started = 1;
	}
	return 1;               /* started: par_wait, then par_end */
}

static void par_end(struct par *p, int started)
{
	const struct restore_options *o = p->main->o;
	unsigned int j;

	for (j = 0; p->w && j < p->n; j++) {
		struct pworker *w = &p->w[j];

		pg_close(w->x.c);
		free(w->x.buf);
		if (j > 0 && w->x.u && o->close_payload)
			o->close_payload(o->payload_ctx, w->x.u, w->handle);
	}
	if (started) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
	}
	free(p->w);
	free(p->tasks);
	free(p->flat);
}

static int build_parallel(struct rst *x)
{
	struct par p;
	unsigned int j;
	size_t i;
	int r, started = 0;

	memset(&p, 0, sizeof(p));
	p.main = x;
	atomic_init(&p.stop, 0);
	atomic_init(&p.bytes, 0);
	x->build = 1;
	r = create_staging(x);
	if (r == 0)
		r = next_member(x);
	if (r == 0)
		r = par_start(&p, x->o->jobs);
	if (r > 0) {
		started = 1;
		log_info("restore: loading %zu tables over %u connections", p.ntables, p.n);
		par_wait(&p);
		r = 0;
		if (p.failed) {
			*x->e = p.err;
			r = p.err.errnum < 0 ? p.err.errnum : -EIO;
		}
	}
	if (r == 0 && p.ntables == 0 && x->have_member)
		r = alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
		              "unexpected payload member %s after the last table",
		              x->member);
	for (j = 0; j < p.n && r == 0; j++) {
		x->res->rows += p.w[j].res.rows;
		x->res->tables += p.w[j].res.tables;
		x->bytes += p.w[j].x.bytes;
	}
	/* the workers' transactions are over before the staging is dropped */
	par_end(&p, started);
	if (r < 0)
		return r;

	r = xexec(x, "BEGIN", 0, NULL);
	if (r < 0)
		return r;
	x->in_tx = 1;
	for (i = 0; i < x->nschemas && r == 0; i++)
		r = finish_schema(x, &x->schemas[i], 1);
	if (r < 0)
		return r;
	x->build = 0;
	set_where(x, "staging: ");
	r = xexec(x, "COMMIT", 0, NULL);
	if (r == 0)
		x->in_tx = 0;
	return r;
}

static int build(struct rst *x)
{
	size_t i, k;
	int r;

	if (x->o->jobs > 1 && x->o->open_payload)
		return build_parallel(x);
	r = begin_staging(x, 1);
	if (r < 0)
		return r;
	r = next_member(x);
	for (i = 0; i < x->nschemas && r == 0; i++) {
		struct rschema *s = &x->schemas[i];

		r = set_search_path(x, s);
		for (k = 0; k < s->ntables && r == 0; k++)
			r = load_table(x, s, &s->tables[k]);
	}
	if (r < 0)
		return r;
	if (x->have_member)
		return alerr_set(x->e, ALERR_REJECT, -EBADMSG, "restore.payload",
		                 "unexpected payload member %s after the last table",
		                 x->member);
	for (i = 0; i < x->nschemas && r == 0; i++)
		r = finish_schema(x, &x->schemas[i], 0);
	if (r < 0)
		return r;
	x->build = 0;
	set_where(x, "staging: ");
	r = xexec(x, "COMMIT", 0, NULL);
	x->in_tx = 0;
	if (r == 0)
		x->staged = 1;
	return r;
}

static int lock_live(struct rst *x, struct rschema *s)
{
	const char *p[1] = { s->name };
	struct pg_result *res;
	size_t i, k, n;
	int r;

	r = xquery(x, q_live_tables, 1, p, 1, &res);
	if (r < 0)
		return r;
	n = pg_result_ntuples(res);
	for (k = 0; k < n && r == 0; k += LOCK_BATCH) {
		struct text_buf b = { 0 };

		text_buf_add(&b, "LOCK TABLE ");
		for (i = k; i < n && i < k + LOCK_BATCH; i++) {
			text_buf_add(&b, i > k ? ", " : "");
			text_buf_add(&b, s->qlive);
			text_buf_add(&b, ".");
			text_buf_add(&b, pg_result_get(res, i, 0));
		}
		text_buf_add(&b, " IN ACCESS EXCLUSIVE MODE");
		r = xsb(x, &b);
	}
	pg_result_free(res);
	return r;
}

static int join_list(struct text_buf *b, const char *const *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!v[i] || !v[i][0] || strchr(v[i], ' ') || strchr(v[i], '{') ||
		    strchr(v[i], '}') || strchr(v[i], '"') || strchr(v[i], ','))
			return -EINVAL;
		text_buf_add(b, i ? " " : "");
		text_buf_add(b, v[i]);
	}
	if (!b->s)
		text_buf_add(b, "");
	return b->bad ? -ENOMEM : 0;
}

static int record(struct rst *x, struct restore_record *rec)
{
	struct text_buf signers = { 0 }, schemas = { 0 };
	char seq[24], cseq[24], created[24], until[24], tables[24], rows[24], ver[24];
	const char *p[14];
	int r;

	if (join_list(&signers, rec->signers, rec->n_signers) < 0 ||
	    join_list(&schemas, (const char *const *)x->m->schemas, x->m->n_schemas) < 0) {
		free(signers.s);
		free(schemas.s);
		return alerr_set(x->e, ALERR_SOFTWARE, -EINVAL, "restore.options",
		                 "a signer or schema cannot be recorded as given");
	}
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)rec->sequence);
	snprintf(cseq, sizeof(cseq), "%llu", (unsigned long long)rec->custody_seq);
	snprintf(created, sizeof(created), "%lld", (long long)rec->created);
	snprintf(until, sizeof(until), "%lld", (long long)rec->valid_until);
	snprintf(tables, sizeof(tables), "%zu", x->res->tables);
	snprintf(rows, sizeof(rows), "%llu", (unsigned long long)x->res->rows);
	snprintf(ver, sizeof(ver), "%u", x->m->source_server_version);
	p[0] = rec->channel;
	p[1] = seq;
	p[2] = rec->bundle_id;
	p[3] = rec->manifest_sha256;
	p[4] = signers.s;
	p[5] = rec->image_sha256;
	p[6] = rec->custody_hash ? cseq : NULL;
	p[7] = rec->custody_hash;
	p[8] = created;
	p[9] = until;
	p[10] = schemas.s;
	p[11] = tables;
	p[12] = rows;
	p[13] = ver;
	set_where(x, "airlock.imports: ");
	r = xexec(x, q_insert, 14, p);
	free(signers.s);
	free(schemas.s);
	return r;
}

static int swap(struct rst *x, struct restore_record *rec,
                int (*before_swap)(void *, struct restore_record *, struct alerr *),
                void *ctx)
{
	uint64_t lt = x->o->lock_timeout_ms ? x->o->lock_timeout_ms
	                                     : RESTORE_LOCK_TIMEOUT_DEFAULT_MS;
	unsigned int timeout = statement_timeout(x->o);
	char ms[24];
	const char *p[1] = { ms };
	size_t i;
	int r;

	/* our own statement bound must not cut the lock wait short */
	if ((uint64_t)timeout < lt + SWAP_GRACE_MS)
		pg_set_timeout(x->c, (unsigned int)(lt + SWAP_GRACE_MS));
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)lt);
	set_where(x, "swap: ");
	r = xexec(x, "BEGIN", 0, NULL);
	if (r < 0)
		return r;
	x->in_tx = 1;
	r = xexec(x, "SELECT pg_catalog.set_config('lock_timeout', $1, true)", 1, p);
	for (i = 0; i < x->nschemas && r == 0; i++) {
		struct rschema *s = &x->schemas[i];

		set_where(x, "swap, schema %s: ", s->name);
		r = live_exists(x, s);
		if (r == 0 && s->live_exists)
			r = lock_live(x, s);
		if (r == 0 && s->live_exists)
			r = check_dependents(x, s);
	}
	for (i = 0; i < x->nschemas && r == 0; i++) {
		struct rschema *s = &x->schemas[i];
		struct text_buf b = { 0 };

		set_where(x, "swap, schema %s: ", s->name);
		if (s->live_exists) {
			text_buf_printf(&b, "ALTER SCHEMA %s RENAME TO %s", s->qlive, s->qold);
			r = xsb(x, &b);
		}
		if (r == 0) {
			text_buf_printf(&b, "ALTER SCHEMA %s RENAME TO %s", s->qstaging, s->qlive);
			r = xsb(x, &b);
		}
		if (r == 0 && s->live_exists) {
			text_buf_printf(&b, "DROP SCHEMA %s CASCADE", s->qold);
			r = xsb(x, &b);
		}
		if (r == 0 && !s->live_exists)
			x->res->first_import = 1;
	}
	if (r == 0 && before_swap) {
		struct alerr t;

		alerr_clear(&t);
		r = before_swap(ctx, rec, &t);
		if (r < 0 || alerr_failed(&t)) {
			if (alerr_failed(&t))
				r = alerr_set(x->e, t.cls, t.errnum, t.reason, "%s", t.message);
			else
				r = alerr_set(x->e, ALERR_SOFTWARE, r, "restore.before_swap",
				              "the step before the swap failed");
		}
	}
	if (r == 0)
		r = record(x, rec);
	if (r == 0) {
		set_where(x, "swap: ");
		r = xexec(x, "COMMIT", 0, NULL);
		x->in_tx = 0;
		if (r == 0)
			x->staged = 0;
	}
	pg_set_timeout(x->c, statement_timeout(x->o));
	return r;
}

/* Drop what is staged (best effort): on the connection when it still
 * works, else on a new one. */
static void drop_staging(struct rst *x)
{
	struct pg_conn *c = x->c;
	struct alerr t;
	size_t i;
	int fresh = 0;

	alerr_clear(&t);
	if (c && x->in_copy) {
		pg_copy_in_end(c, "restore failed", NULL, &t);
		x->in_copy = 0;
	}
	if (c && x->in_tx) {
		alerr_clear(&t);
		if (pg_exec(c, "ROLLBACK", 0, NULL, &t) < 0)
			c = NULL;
		x->in_tx = 0;
	}
	if (!x->staged)
		return;
	if (!c) {
		alerr_clear(&t);
		if (pg_connect(x->o->conninfo, &c, &t) < 0) {
			log_warn("restore: cannot drop the staging schemas now (%s); the "
			         "next run removes them", t.message);
			return;
		}
		fresh = 1;
	}
	for (i = 0; i < x->nschemas; i++) {
		struct rschema *s = &x->schemas[i];
		struct text_buf b = { 0 };

		if (!s->qstaging)
			continue;
		text_buf_add(&b, "DROP SCHEMA IF EXISTS ");
		text_buf_add(&b, s->qstaging);
		text_buf_add(&b, " CASCADE");
		alerr_clear(&t);
		if (b.bad || pg_exec(c, b.s, 0, NULL, &t) < 0)
			log_warn("restore: cannot drop %s (%s); the next run removes it",
			         s->staging, t.message);
		free(b.s);
	}
	x->staged = 0;
	if (fresh)
		pg_close(c);
}

static void cleanup(struct rst *x)
{
	size_t i;

	pg_close(x->c);         /* ends the staging advisory locks too */
	for (i = 0; i < x->nschemas; i++) {
		struct rschema *s = &x->schemas[i];
		size_t k;

		for (k = 0; k < s->ntables; k++) {
			free(s->tables[k].cols);
			free(s->tables[k].cons);
			free(s->tables[k].idx);
		}
		free(s->tables);
		free(s->seqs);
		free(s->views);
		free(s->qstaging);
		free(s->qlive);
		free(s->qold);
	}
	free(x->schemas);
	json_object_put(x->root);
	free(x->buf);
}

int restore_run(const struct restore_options *o, struct unpack *u,
                const struct manifest *m, struct restore_record *rec,
                int (*before_swap)(void *ctx, struct restore_record *rec,
                                   struct alerr *e),
                void *ctx, struct restore_result *res, struct alerr *e)
{
	struct rst x;
	double t0 = now_s();
	size_t i;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&x, 0, sizeof(x));
	if (!o || !u || !m || !rec || !rec->channel || !rec->bundle_id ||
	    !rec->manifest_sha256)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "restore.options",
		                 "restore_run: missing argument");
	if (o->lock_timeout_ms > LOCK_TIMEOUT_MAX_MS)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "restore.options",
		                 "lock timeout over %llu ms",
		                 (unsigned long long)LOCK_TIMEOUT_MAX_MS);
	if (o->jobs > CONFIG_MAX_JOBS)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "restore.options",
		                 "jobs must be 1 to %u", CONFIG_MAX_JOBS);
	if (rec->n_signers > MANIFEST_MAX_SIGNERS)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "restore.options",
		                 "too many signers");
	x.o = o;
	x.m = m;
	x.u = u;
	x.e = e;
	x.res = res;
	res->source_version = m->source_server_version;

	r = read_catalog(&x);
	if (r < 0)
		goto out;
	x.buf = malloc(IO_BUFFER_SIZE);
	if (!x.buf) {
		r = nomem(e);
		goto out;
	}
	r = pg_connect(o->conninfo, &x.c, e);
	if (r < 0)
		goto out;
	pg_set_timeout(x.c, statement_timeout(o));
	res->target_version = pg_server_version(x.c);
	res->major_differs = restore_major(res->source_version) !=
	                     restore_major(res->target_version);
	if (res->major_differs)
		log_notice("restore: the bundle comes from PostgreSQL %u, the target is "
		           "%u: COPY text is portable, restoring",
		           restore_major(res->source_version),
		           restore_major(res->target_version));
	r = bookkeeping(&x);
	/* before the load, to spare its time; again under the swap's locks */
	for (i = 0; i < x.nschemas && r == 0; i++)
		r = check_dependents(&x, &x.schemas[i]);
	for (i = 0; i < x.nschemas && r == 0; i++) {
		r = random_names(&x, &x.schemas[i]);
		if (r == 0)
			r = lock_staging(&x, &x.schemas[i]);
	}
	if (r == 0)
		r = build(&x);
	if (r == 0)
		r = swap(&x, rec, before_swap, ctx);
	if (r == 0) {
		res->bytes = x.bytes;
		res->seconds = now_s() - t0;
		log_info("restore: %zu tables, %llu rows swapped in (%.1f s)", res->tables,
		         (unsigned long long)res->rows, res->seconds);
	}
out:
	if (r < 0)
		drop_staging(&x);
	cleanup(&x);
	return r;
}

/* ------------------------------------------------------------------ */

int restore_read_state(const char *conninfo, const char *channel,
                       struct restore_state *st, struct alerr *e)
{
	struct pg_conn *c = NULL;
	struct pg_result *res = NULL;
	const char *p[1] = { channel };
	uint64_t v;
	int r;

	memset(st, 0, sizeof(*st));
	if (!channel)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "restore.options",
		                 "restore_read_state: no channel");
	r = pg_connect(conninfo, &c, e);
	if (r < 0)
		return r;
	r = pg_query(c, "SELECT pg_catalog.to_regclass('" RESTORE_BOOK_SCHEMA
	             ".imports') IS NOT NULL", 0, NULL, 1, &res, e);
	if (r < 0 || strcmp(pg_result_get(res, 0, 0), "t") != 0)
		goto out;
	pg_result_free(res);
	res = NULL;
	r = pg_query(c, "SELECT sequence, manifest_sha256 FROM " RESTORE_BOOK_SCHEMA
	             ".imports WHERE channel = $1 ORDER BY sequence DESC LIMIT 1",
	             1, p, 2, &res, e);
	if (r < 0)
		goto out;
	if (pg_result_ntuples(res) == 1) {
		const char *seq = pg_result_get(res, 0, 0);
		const char *sha = pg_result_get(res, 0, 1);

		if (text_parse_u64(seq, strlen(seq), INT64_MAX, &v) < 0 ||
		    strlen(sha) >= sizeof(st->last_manifest_sha256)) {
			r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.result_shape",
			              "unexpected values in airlock.imports");
			goto out;
		}
		st->last_sequence = v;
		strcpy(st->last_manifest_sha256, sha);
		st->has_last = 1;
	}
	pg_result_free(res);
	res = NULL;
	r = pg_query(c, "SELECT coalesce(floor(extract(epoch FROM max(created)))::bigint,"
	             " 0) FROM " RESTORE_BOOK_SCHEMA ".imports", 0, NULL, 1, &res, e);
	if (r == 0) {
		const char *t = pg_result_get(res, 0, 0);
		int neg = t[0] == '-';

		if (text_parse_u64(t + neg, strlen(t + neg), INT64_MAX, &v) < 0)
			r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "db.result_shape",
			              "unexpected Created in airlock.imports");
		else
			st->newest_created = neg ? -(int64_t)v : (int64_t)v;
	}
out:
	pg_result_free(res);
	pg_close(c);
	return r;
}

int restore_read_anchors(const char *conninfo, struct custody_anchor **out, size_t *n,
                         struct alerr *e)
{
	struct pg_conn *c = NULL;
	struct pg_result *res = NULL;
	struct custody_anchor *a = NULL;
	char limit[24], pair[24 + 1 + CUSTODY_HASH_HEX_LEN + 1];
	const char *p[1] = { limit };
	char channel[4 * CHANNEL_MAX + 1];
	const char *seq, *hash, *chan, *what;
	size_t i, rows;
	uint64_t v;
	int r;

	*out = NULL;
	*n = 0;
	r = pg_connect(conninfo, &c, e);
	if (r < 0)
		return r;
	r = pg_query(c, "SELECT pg_catalog.to_regclass('" RESTORE_BOOK_SCHEMA
	             ".imports') IS NOT NULL", 0, NULL, 1, &res, e);
	if (r < 0 || strcmp(pg_result_get(res, 0, 0), "t") != 0)
		goto out;
	pg_result_free(res);
	res = NULL;
	/* one row more than the bound: "too many" is then known */
	snprintf(limit, sizeof(limit), "%u", CUSTODY_MAX_ANCHORS + 1u);
	r = pg_query(c, RESTORE_ANCHOR_QUERY, 1, p, 4, &res, e);
	if (r < 0)
		goto out;
	rows = pg_result_ntuples(res);
	if (rows > CUSTODY_MAX_ANCHORS) {
		r = alerr_set(e, ALERR_REJECT, -E2BIG, "restore.anchors_too_many",
		              "airlock.imports holds more than %u custody anchors",
		              CUSTODY_MAX_ANCHORS);
		goto out;
	}
	if (rows == 0)
		goto out;
	a = calloc(rows, sizeof(*a));
	if (!a) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "restore.nomem", "out of memory");
		goto out;
	}
	for (i = 0; i < rows; i++) {
		seq = pg_result_get(res, i, 0);
		hash = pg_result_get(res, i, 1);
		if (pg_result_isnull(res, i, 0) || pg_result_isnull(res, i, 1))
			what = "custody_seq and custody_hash are not both set";
		else if (text_parse_u64(seq, strlen(seq), (uint64_t)CUSTODY_MAX_INT, &v) < 0 || v < 1)
			what = "custody_seq is not 1 to 2^53-1";
		else if (strlen(hash) != CUSTODY_HASH_HEX_LEN ||
		         snprintf(pair, sizeof(pair), "%s:%s", seq, hash) >= (int)sizeof(pair) ||
		         custody_anchor_parse(pair, &a[i]) < 0)
			what = "custody_hash is not 64 lower-case hex digits";
		else
			continue;
		chan = pg_result_get(res, i, 2);
		log_sanitize(channel, sizeof(channel), chan, strlen(chan));
		r = alerr_set(e, ALERR_REJECT, -EBADMSG, "restore.anchor",
		              "airlock.imports: the import of channel %s sequence %s has a malformed custody anchor: %s",
		              channel, pg_result_get(res, i, 3), what);
		goto out;
	}
	*out = a;
	*n = rows;
	a = NULL;
out:
	free(a);
	pg_result_free(res);
	pg_close(c);
	return r;
}

struct restore_lock {
	struct pg_conn *c;
};

int restore_lock_channel(const char *conninfo, const char *channel,
                         unsigned int timeout_ms, struct restore_lock **out,
                         struct alerr *e)
{
	struct restore_lock *l;
	char k1[16], k2[16];
	const char *p[2] = { k1, k2 };
	int r;

	*out = NULL;
	if (!channel)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "restore.options",
		                 "restore_lock_channel: no channel");
	l = calloc(1, sizeof(*l));
	if (!l)
		return nomem(e);
	r = pg_connect(conninfo, &l->c, e);
	if (r < 0) {
		free(l);
		return r;
	}
	pg_set_timeout(l->c, timeout_ms);
	snprintf(k1, sizeof(k1), "%d", RESTORE_LOCK_CHANNEL);
	lock_key(k2, sizeof(k2), channel);
	r = pg_exec(l->c, "SELECT pg_catalog.pg_advisory_lock($1::integer, $2::integer)",
	            2, p, e);
	if (r < 0) {
		alerr_prefix(e, "channel %s lock: ", channel);
		restore_lock_free(l);
		return r;
	}
	*out = l;
	return 0;
}

void restore_lock_free(struct restore_lock *l)
{
	if (!l)
		return;
	pg_close(l->c);         /* the session lock ends with it */
	free(l);
}

int restore_cleanup_stale(const char *conninfo, size_t *dropped, struct alerr *e)
{
	struct pg_conn *c = NULL;
	struct pg_result *res = NULL;
	char k1[16];
	size_t i, n, count = 0;
	int r;

	if (dropped)
		*dropped = 0;
	snprintf(k1, sizeof(k1), "%d", RESTORE_LOCK_STAGING);
	r = pg_connect(conninfo, &c, e);
	if (r < 0)
		return r;
	r = pg_query(c, "SELECT nspname FROM pg_catalog.pg_namespace WHERE"
	             " nspname LIKE 'airlock\\_staging\\_%' ORDER BY 1", 0, NULL, 1,
	             &res, e);
	if (r < 0)
		goto out;
	n = pg_result_ntuples(res);
	for (i = 0; i < n && r == 0; i++) {
		const char *name = pg_result_get(res, i, 0);
		char k2[16], *q = NULL, *sql;
		const char *p[2] = { k1, k2 };
		struct pg_result *got = NULL;
		int mine;

		lock_key(k2, sizeof(k2), name);
		/* held by the run that builds it while that run lives */
		r = pg_query(c, "SELECT pg_catalog.pg_try_advisory_lock($1::integer,"
		             " $2::integer)", 2, p, 1, &got, e);
		if (r < 0)
			break;
		mine = strcmp(pg_result_get(got, 0, 0), "t") == 0;
		pg_result_free(got);
		if (!mine) {
			log_dbg("restore: %s belongs to a running import", name);
			continue;
		}
		r = pg_quote_ident(c, name, &q, e);
		if (r == 0) {
			size_t len = strlen(q) + 40;

			sql = malloc(len);
			if (!sql) {
				r = nomem(e);
			} else {
				snprintf(sql, len, "DROP SCHEMA IF EXISTS %s CASCADE", q);
				r = pg_exec(c, sql, 0, NULL, e);
				free(sql);
			}
			free(q);
		}
		if (r == 0) {
			log_info("restore: removed %s, left by an import that did not "
			         "finish", name);
			count++;
		}
		if (r == 0)
			r = pg_exec(c, "SELECT pg_catalog.pg_advisory_unlock($1::integer,"
			            " $2::integer)", 2, p, e);
	}
out:
	pg_result_free(res);
	pg_close(c);
	if (dropped)
		*dropped = count;
	return r;
}
