#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "bounds.h"
#include "custody.h"
#include "restore.h"

int audit_format_parse(const char *s, enum audit_format *fmt)
{
	if (strcmp(s, "table") == 0)
		*fmt = AUDIT_FORMAT_TABLE;
	else if (strcmp(s, "json") == 0)
		*fmt = AUDIT_FORMAT_JSON;
	else if (strcmp(s, "csv") == 0)
		*fmt = AUDIT_FORMAT_CSV;
	else
		return -EINVAL;
	return 0;
}

static int num(const char *s, size_t n, int *v)
{
	size_t i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int audit_parse_time(const char *s, int64_t *us)
{
	int year, mon, day, hour = 0, min = 0, sec = 0, oh = 0, om = 0, frac = 0;
	int64_t offset = 0;
	struct tm tm, back;
	size_t i, n = strlen(s);
	time_t t;

	if (n < 10 || s[4] != '-' || s[7] != '-' || num(s, 4, &year) || num(s + 5, 2, &mon) ||
	    num(s + 8, 2, &day))
		return -EINVAL;
	i = 10;
	if (i < n && (s[i] == 'T' || s[i] == ' ')) {
		if (n < i + 6 || num(s + i + 1, 2, &hour) || s[i + 3] != ':' ||
		    num(s + i + 4, 2, &min))
			return -EINVAL;
		i += 6;
		if (i < n && s[i] == ':') {
			if (n < i + 3 || num(s + i + 1, 2, &sec))
				return -EINVAL;
			i += 3;
			if (i < n && s[i] == '.') {
				size_t k;
				int scale = 100000;

				for (k = i + 1; k < n && k < i + 7 && s[k] >= '0' && s[k] <= '9'; k++) {
					frac += (s[k] - '0') * scale;
					scale /= 10;
				}
				if (k == i + 1)
					return -EINVAL;
				i = k;
			}
		}
	}
	if (i < n && s[i] == 'Z') {
		i++;
	} else if (i < n && (s[i] == '+' || s[i] == '-')) {
		if (n != i + 6 || num(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
		    num(s + i + 4, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		offset = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
		i += 6;
	}
	if (i != n || year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 ||
	    hour > 23 || min > 59 || sec > 60)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* Feb 30 is not a day: timegm would make it Mar 2. */
	if (t < 0 || !gmtime_r(&t, &back) || back.tm_mday != day || back.tm_mon != mon - 1)
		return -EINVAL;
	*us = ((int64_t)t - offset) * 1000000 + frac;
	return 0;
}

static int is_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > CUSTODY_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_' || s[i] == '.'))
			return 0;
	return 1;
}

int audit_filter_check(const struct audit_filter *f, struct alerr *e)
{
	static const char *const outcomes[] = { "ok", "refused", "error", "info" };
	size_t i;

	if (f->outcome) {
		for (i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
			if (strcmp(f->outcome, outcomes[i]) == 0)
				break;
		if (i == sizeof(outcomes) / sizeof(outcomes[0]))
			return alerr_set(e, ALERR_USAGE, -EINVAL, "audit.bad_filter",
			                 "--outcome: \"%s\" is not ok, refused, error or info",
			                 f->outcome);
	}
	if (f->event && !is_name(f->event))
		return alerr_set(e, ALERR_USAGE, -EINVAL, "audit.bad_filter",
		                 "--event: \"%s\" is not an event name (such as bundle.verified)",
		                 f->event);
	if ((f->channel && !*f->channel) || (f->bundle && !*f->bundle) ||
	    (f->device && !*f->device))
		return alerr_set(e, ALERR_USAGE, -EINVAL, "audit.bad_filter",
		                 "an empty --channel, --bundle or --device matches nothing");
	if (f->has_since && f->has_until && f->since_us > f->until_us)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "audit.bad_filter",
		                 "--since is after --until");
	return 0;
}

/* ------------------------------------------------------------------ */

static const char *text(const struct custody_record *r, const char *m, const char *sub)
{
	return custody_record_text(r, m, sub);
}

static int eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static int starts_with(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int matches(const struct custody_record *r, const struct audit_filter *f)
{
	int64_t t;
	const char *time = text(r, "time", NULL);

	if (f->has_since || f->has_until) {
		if (custody_time_parse(time, strlen(time), &t) < 0)
			return 0;
		if ((f->has_since && t < f->since_us) || (f->has_until && t > f->until_us))
			return 0;
	}
	if (f->channel && !eq(text(r, "bundle", "channel"), f->channel))
		return 0;
	if (f->bundle && !starts_with(text(r, "bundle", "bundle_id"), f->bundle))
		return 0;
	if (f->device && !eq(text(r, "device", "serial"), f->device) &&
	    !eq(text(r, "device", "devnode"), f->device) &&
	    !eq(text(r, "signed", "media_serial"), f->device))
		return 0;
	if (f->event && !eq(text(r, "event", NULL), f->event))
		return 0;
	if (f->outcome && !eq(text(r, "outcome", NULL), f->outcome))
		return 0;
	return 1;
}

/* The table's cells. */
enum { C_SEQ, C_TIME, C_SIDE, C_EVENT, C_OUTCOME, C_REASON, C_BUNDLE, C_ID, C_COUNT };

static const char *const table_heads[C_COUNT] = {
	"SEQ", "TIME", "SIDE", "EVENT", "OUTCOME", "REASON", "CHANNEL/SEQUENCE", "BUNDLE",
};

struct cells {
	char v[C_COUNT][2 * CUSTODY_MAX_TEXT + 32];
};

/* The bytes of the first n characters of UTF-8 text. */
static size_t chars_prefix(const char *s, size_t n)
{
	size_t i = 0;

	for (; s[i]; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80 && n-- == 0)
			break;
	return i;
}

static void table_cells(const struct custody_record *r, struct cells *c)
{
	const char *time = text(r, "time", NULL);
	const char *reason = text(r, "reason", NULL);
	const char *channel = text(r, "bundle", "channel");
	const char *sequence = text(r, "bundle", "sequence");
	const char *id = text(r, "bundle", "bundle_id");

	snprintf(c->v[C_SEQ], sizeof(c->v[C_SEQ]), "%llu",
	         (unsigned long long)custody_record_seq(r));
	/* to the second: "2024-05-01T12:34:56Z" */
	snprintf(c->v[C_TIME], sizeof(c->v[C_TIME]), "%.19sZ", time);
	snprintf(c->v[C_SIDE], sizeof(c->v[C_SIDE]), "%s", text(r, "side", NULL));
	snprintf(c->v[C_EVENT], sizeof(c->v[C_EVENT]), "%s", text(r, "event", NULL));
	snprintf(c->v[C_OUTCOME], sizeof(c->v[C_OUTCOME]), "%s", text(r, "outcome", NULL));
	snprintf(c->v[C_REASON], sizeof(c->v[C_REASON]), "%s", reason ? reason : "-");
	if (channel || sequence)
		snprintf(c->v[C_BUNDLE], sizeof(c->v[C_BUNDLE]), "%s/%s",
		         channel ? channel : "?", sequence ? sequence : "?");
	else
		snprintf(c->v[C_BUNDLE], sizeof(c->v[C_BUNDLE]), "-");
	snprintf(c->v[C_ID], sizeof(c->v[C_ID]), "%.*s", (int)chars_prefix(id ? id : "-", 8),
	         id ? id : "-");
}

/* Characters, not bytes: the text is valid UTF-8. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void table_row(FILE *out, const size_t *widths, const char *const *cells)
{
	size_t i, w;

	for (i = 0; i < C_COUNT; i++) {
		w = width(cells[i]);
		if (i == C_SEQ)
			fprintf(out, "%*s%s", (int)(widths[i] - (w < widths[i] ? w : widths[i])), "",
			        cells[i]);
		else if (i == C_COUNT - 1)
			fputs(cells[i], out);
		else
			fprintf(out, "%s%*s", cells[i],
			        (int)(widths[i] - (w < widths[i] ? w : widths[i])), "");
		fputs(i == C_COUNT - 1 ? "\n" : "  ", out);
	}
}

/* RFC 4180: a field holding a comma, quote, CR or LF is quoted, quotes
 * doubled. A field that a spreadsheet would run as a formula (it begins
 * with =, +, -, @, tab or CR) gets a leading apostrophe, and is quoted. */
static void csv_field(FILE *out, const char *s, int last)
{
	int quote, formula;
	const char *p;

	if (!s)
		s = "";
	formula = strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0';
	quote = formula || strpbrk(s, ",\"\r\n") != NULL;
	if (quote)
		fputc('"', out);
	if (formula)
		fputc('\'', out);
	for (p = s; *p; p++) {
		if (*p == '"')
			fputc('"', out);
		fputc(*p, out);
	}
	if (quote)
		fputc('"', out);
	fputs(last ? "\r\n" : ",", out);
}

static const struct {
	const char *head, *member, *sub;
} csv_columns[] = {
	{ "seq", "seq", NULL },
	{ "time", "time", NULL },
	{ "host", "host", NULL },
	{ "side", "side", NULL },
	{ "run", "run", NULL },
	{ "event", "event", NULL },
	{ "outcome", "outcome", NULL },
	{ "reason", "reason", NULL },
	{ "channel", "bundle", "channel" },
	{ "sequence", "bundle", "sequence" },
	{ "bundle_id", "bundle", "bundle_id" },
	{ "verified", "bundle", "verified" },
	{ "manifest_sha256", "bundle", "manifest_sha256" },
	{ "image_sha256", "bundle", "image_sha256" },
	{ "devnode", "device", "devnode" },
	{ "vendor", "device", "vendor" },
	{ "model", "device", "model" },
	{ "serial", "device", "serial" },
	{ "size", "device", "size" },
	{ "user", "actor", "user" },
	{ "uid", "actor", "uid" },
	{ "loginuid", "actor", "loginuid" },
	{ "unit", "actor", "unit" },
	{ "courier", "actor", "courier" },
	{ "signed", "signed", NULL },
	{ "details", "details", NULL },
	{ "prev", "prev", NULL },
	{ "hash", "hash", NULL },
};

#define CSV_COLUMNS (sizeof(csv_columns) / sizeof(csv_columns[0]))

struct list_ctx {
	const struct audit_filter *f;
	enum audit_format fmt;
	FILE *out;
	size_t widths[C_COUNT];
	int measuring;
	int header_done;
	uint64_t shown;
};

static void csv_header(struct list_ctx *c)
{
	size_t i;

	if (c->fmt != AUDIT_FORMAT_CSV || c->header_done)
		return;
	c->header_done = 1;
	for (i = 0; i < CSV_COLUMNS; i++)
		csv_field(c->out, csv_columns[i].head, i == CSV_COLUMNS - 1);
}

static int list_one(const struct custody_record *r, void *arg)
{
	struct list_ctx *c = arg;
	struct cells cells;
	const char *cp[C_COUNT];
	const char *raw;
	size_t i, len;

	if (!matches(r, c->f))
		return 0;
	switch (c->fmt) {
	case AUDIT_FORMAT_JSON:
		raw = custody_record_raw(r, &len);
		fwrite(raw, 1, len, c->out);
		fputc('\n', c->out);
		break;
	case AUDIT_FORMAT_CSV:
		csv_header(c);
		for (i = 0; i < CSV_COLUMNS; i++)
			csv_field(c->out, text(r, csv_columns[i].member, csv_columns[i].sub),
			          i == CSV_COLUMNS - 1);
		break;
	case AUDIT_FORMAT_TABLE:
		table_cells(r, &cells);
		for (i = 0; i < C_COUNT; i++) {
			cp[i] = cells.v[i];
			if (c->measuring && width(cp[i]) > c->widths[i])
				c->widths[i] = width(cp[i]);
		}
		if (!c->measuring)
			table_row(c->out, c->widths, cp);
		break;
	}
	c->shown++;
	return 0;
}

/* The first problem of a log read for a listing, after the listing. */
static int listing_verdict(const char *log, int r, const struct custody_summary *sum,
                           struct alerr *e)
{
	if (r < 0 && sum->problem) {
		alerr_clear(e);
		return alerr_set(e, ALERR_REJECT, -EBADMSG, sum->reason,
		                 "%s does not verify: %s (the listing shows the entries whose own hash is right)",
		                 log, sum->what);
	}
	return r;
}

int audit_list(const char *log, const struct audit_filter *f, enum audit_format fmt,
               FILE *out, struct alerr *e)
{
	struct custody_summary sum;
	struct list_ctx c;
	size_t i;
	int r;

	r = audit_filter_check(f, e);
	if (r < 0)
		return r;
	memset(&c, 0, sizeof(c));
	c.f = f;
	c.fmt = fmt;
	c.out = out;
	if (fmt == AUDIT_FORMAT_TABLE) {
		/* Two reads: the first measures the columns. */
		for (i = 0; i < C_COUNT; i++)
			c.widths[i] = width(table_heads[i]);
		c.measuring = 1;
		r = custody_verify(log, NULL, 0, list_one, &c, &sum, e);
		if (r < 0 && !sum.problem)
			return r;
		alerr_clear(e);
		c.measuring = 0;
		c.shown = 0;
		table_row(out, c.widths, table_heads);
	}
	r = custody_verify(log, NULL, 0, list_one, &c, &sum, e);
	if (r == 0 || sum.problem)
		csv_header(&c);         /* no entry selected: the header alone */
	return listing_verdict(log, r, &sum, e);
}

int audit_verify(const char *log, const struct custody_anchor *anchors, size_t n_anchors,
                 const char *target, FILE *out, struct alerr *e)
{
	struct custody_summary sum;
	struct custody_anchor *db = NULL, *all = NULL;
	size_t n_db = 0;
	int r;

	if (target) {
		r = restore_read_anchors(target, &db, &n_db, e);
		if (r < 0)
			return r;
		if (n_db > 0 && n_anchors > 0) {
			/* both bounded by CUSTODY_MAX_ANCHORS: no overflow */
			all = malloc((n_db + n_anchors) * sizeof(*all));
			if (!all) {
				free(db);
				return alerr_set(e, ALERR_OSERR, -ENOMEM, "audit.memory", "out of memory");
			}
			memcpy(all, anchors, n_anchors * sizeof(*all));
			memcpy(all + n_anchors, db, n_db * sizeof(*all));
		}
	}
	if (all)
		r = custody_verify(log, all, n_anchors + n_db, NULL, NULL, &sum, e);
	else if (n_db > 0)
		r = custody_verify(log, db, n_db, NULL, NULL, &sum, e);
	else
		r = custody_verify(log, anchors, n_anchors, NULL, NULL, &sum, e);
	free(all);
	free(db);
	if (r < 0)
		return r;
	fprintf(out, "custody log OK: %llu entries, head seq %llu hash %s",
	        (unsigned long long)sum.entries, (unsigned long long)sum.head_seq, sum.head_hash);
	if (sum.torn_recorded)
		fprintf(out, "; %llu torn write%s recorded", (unsigned long long)sum.torn_recorded,
		        sum.torn_recorded == 1 ? "" : "s");
	if (n_anchors)
		fprintf(out, "; %zu anchor%s match", n_anchors, n_anchors == 1 ? "" : "s");
	if (target && n_db)
		fprintf(out, "; %zu database anchor%s match", n_db, n_db == 1 ? "" : "s");
	else if (target)
		fputs("; the database records no anchors", out);
	fputc('\n', out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* show */

#define SHOW_MAX_IDS 8u
#define SHOW_SIGNED_FIELDS 9u

static const char *const signed_fields[SHOW_SIGNED_FIELDS] = {
	"created", "valid_until", "writer_host", "courier", "media_vendor", "media_model",
	"media_serial", "snapshot", "signers",
};

struct show_ctx {
	const char *prefix;
	FILE *out;
	int printing;
	/* what the first read found */
	char ids[SHOW_MAX_IDS][CUSTODY_MAX_TEXT + 1];
	size_t n_ids;
	char (*runs)[CUSTODY_RUN_ID_LEN + 1];
	size_t n_runs;
	int runs_full;
	char channel[CUSTODY_MAX_TEXT + 1];
	char sequence[24];
	int has_signed;
	uint64_t signed_seq;
	char signed_text[SHOW_SIGNED_FIELDS][CUSTODY_MAX_LIST * (CUSTODY_MAX_TEXT + 2) + 1];
	uint64_t shown;
};

static int run_known(const struct show_ctx *c, const char *run)
{
	size_t i;

	for (i = 0; run && i < c->n_runs; i++)
		if (strcmp(c->runs[i], run) == 0)
			return 1;
	return 0;
}

static int show_collect(const struct custody_record *r, struct show_ctx *c)
{
	const char *id = text(r, "bundle", "bundle_id");
	const char *run = text(r, "run", NULL);
	const char *verified = text(r, "bundle", "verified");
	size_t i, k;

	if (!starts_with(id, c->prefix))
		return 0;
	for (i = 0; i < c->n_ids; i++)
		if (strcmp(c->ids[i], id) == 0)
			break;
	if (i == c->n_ids && c->n_ids < SHOW_MAX_IDS)
		snprintf(c->ids[c->n_ids++], sizeof(c->ids[0]), "%s", id);
	if (run && !run_known(c, run)) {
		if (c->n_runs < AUDIT_MAX_RUNS)
			snprintf(c->runs[c->n_runs++], CUSTODY_RUN_ID_LEN + 1, "%s", run);
		else
			c->runs_full = 1;
	}
	if (!eq(verified, "true"))
		return 0;
	if (!c->channel[0] && text(r, "bundle", "channel")) {
		snprintf(c->channel, sizeof(c->channel), "%s", text(r, "bundle", "channel"));
		snprintf(c->sequence, sizeof(c->sequence), "%s",
		         text(r, "bundle", "sequence") ? text(r, "bundle", "sequence") : "?");
	}
	if (!c->has_signed && text(r, "signed", NULL)) {
		c->has_signed = 1;
		c->signed_seq = custody_record_seq(r);
		for (i = 0; i < SHOW_SIGNED_FIELDS - 1; i++)
			snprintf(c->signed_text[i], sizeof(c->signed_text[i]), "%s",
			         text(r, "signed", signed_fields[i]) ?
			         text(r, "signed", signed_fields[i]) : "-");
		/* the signers, one after the other */
		c->signed_text[i][0] = '\0';
		for (k = 0; ; k++) {
			const char *s = custody_record_item(r, "signed", "signers", k, NULL);
			size_t used = strlen(c->signed_text[i]);

			if (!s)
				break;
			snprintf(c->signed_text[i] + used, sizeof(c->signed_text[i]) - used,
			         "%s%s", k ? ", " : "", s);
		}
	}
	return 0;
}

static void show_line(FILE *out, const char *label, const char *value)
{
	if (value)
		fprintf(out, "  %-14s %s\n", label, value);
}

static void show_entry(const struct custody_record *r, FILE *out)
{
	const char *reason = text(r, "reason", NULL);
	const char *user = text(r, "actor", "user");
	const char *unit = text(r, "actor", "unit");
	const char *courier = text(r, "actor", "courier");
	const char *key, *v;
	size_t k;

	fprintf(out, "  %s  seq %llu  %-4s  %-18s %s%s%s%s\n", text(r, "time", NULL),
	        (unsigned long long)custody_record_seq(r), text(r, "side", NULL),
	        text(r, "event", NULL), text(r, "outcome", NULL), reason ? " (" : "",
	        reason ? reason : "", reason ? ")" : "");
	fprintf(out, "      host %s, user %s (uid %s)", text(r, "host", NULL), user ? user : "?",
	        text(r, "actor", "uid"));
	if (unit)
		fprintf(out, ", unit %s", unit);
	if (courier)
		fprintf(out, ", courier %s", courier);
	fputc('\n', out);
	if (text(r, "device", NULL)) {
		fprintf(out, "      device");
		if (text(r, "device", "devnode"))
			fprintf(out, " %s", text(r, "device", "devnode"));
		if (text(r, "device", "vendor") || text(r, "device", "model"))
			fprintf(out, ", %s%s%s",
			        text(r, "device", "vendor") ? text(r, "device", "vendor") : "",
			        text(r, "device", "vendor") && text(r, "device", "model") ? " " : "",
			        text(r, "device", "model") ? text(r, "device", "model") : "");
		if (text(r, "device", "serial"))
			fprintf(out, ", serial %s", text(r, "device", "serial"));
		if (text(r, "device", "size"))
			fprintf(out, ", %s bytes", text(r, "device", "size"));
		fputc('\n', out);
	}
	if (text(r, "bundle", NULL)) {
		if (!eq(text(r, "bundle", "verified"), "true") && text(r, "bundle", "bundle_id"))
			fprintf(out, "      bundle as claimed by an unverified MANIFEST: %s/%s %s\n",
			        text(r, "bundle", "channel") ? text(r, "bundle", "channel") : "?",
			        text(r, "bundle", "sequence") ? text(r, "bundle", "sequence") : "?",
			        text(r, "bundle", "bundle_id"));
		if (text(r, "bundle", "manifest_sha256"))
			fprintf(out, "      MANIFEST sha256 %s\n", text(r, "bundle", "manifest_sha256"));
		if (text(r, "bundle", "image_sha256"))
			fprintf(out, "      image sha256 %s\n", text(r, "bundle", "image_sha256"));
	}
	for (k = 0; (v = custody_record_item(r, "details", NULL, k, &key)) != NULL; k++)
		fprintf(out, "%s%s=%s", k ? ", " : "      details: ", key, v);
	if (k)
		fputc('\n', out);
}

static int show_one(const struct custody_record *r, void *arg)
{
	struct show_ctx *c = arg;
	const char *id = text(r, "bundle", "bundle_id");

	if (!c->printing)
		return show_collect(r, c);
	if (eq(id, c->ids[0]) || run_known(c, text(r, "run", NULL))) {
		show_entry(r, c->out);
		c->shown++;
	}
	return 0;
}

int audit_show(const char *log, const char *bundle, FILE *out, struct alerr *e)
{
	struct custody_summary sum;
	struct show_ctx *c;
	size_t i;
	int r;

	if (strlen(bundle) < AUDIT_BUNDLE_PREFIX_MIN)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "audit.bad_filter",
		                 "a bundle id (or a prefix of at least %u characters) is needed",
		                 AUDIT_BUNDLE_PREFIX_MIN);
	c = calloc(1, sizeof(*c));
	if (c)
		c->runs = calloc(AUDIT_MAX_RUNS, sizeof(*c->runs));
	if (!c || !c->runs) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "audit.memory", "out of memory");
		goto out;
	}
	c->prefix = bundle;
	c->out = out;
	r = custody_verify(log, NULL, 0, show_one, c, &sum, e);
	if (r < 0 && !sum.problem)
		goto out;
	alerr_clear(e);
	if (c->n_ids == 0) {
		r = alerr_set(e, ALERR_NOINPUT, -ENOENT, "audit.bundle_unknown",
		              "%s: no entry about a bundle %s%s", log, bundle,
		              strlen(bundle) < CUSTODY_RUN_ID_LEN ? "..." : "");
		goto out;
	}
	if (c->n_ids > 1) {
		r = alerr_set(e, ALERR_USAGE, -EINVAL, "audit.bundle_ambiguous",
		              "%s... names %s%zu bundles (%s, %s...): give more of the id", bundle,
		              c->n_ids == SHOW_MAX_IDS ? "at least " : "", c->n_ids,
		              c->ids[0], c->ids[1]);
		goto out;
	}
	fprintf(out, "Bundle %s", c->ids[0]);
	if (c->channel[0])
		fprintf(out, ": channel %s, sequence %s", c->channel, c->sequence);
	fputs("\n\n", out);
	if (c->has_signed) {
		static const char *const labels[SHOW_SIGNED_FIELDS] = {
			"created", "valid until", "writer host", "courier", "media vendor",
			"media model", "media serial", "snapshot", "signers",
		};

		fprintf(out, "Low-side facts, from the signed MANIFEST (as recorded at seq %llu):\n",
		        (unsigned long long)c->signed_seq);
		for (i = 0; i < SHOW_SIGNED_FIELDS; i++)
			show_line(out, labels[i], c->signed_text[i]);
	} else {
		fputs("Low-side facts: none in this log (no entry records a verified MANIFEST)\n",
		      out);
	}
	fprintf(out, "\nTimeline (%s):\n", log);
	c->printing = 1;
	r = custody_verify(log, NULL, 0, show_one, c, &sum, e);
	if (c->runs_full)
		fprintf(out, "(more than %u runs handled this bundle: the timeline shows the first %u)\n",
		        AUDIT_MAX_RUNS, AUDIT_MAX_RUNS);
	r = listing_verdict(log, r, &sum, e);
out:
	if (c)
		free(c->runs);
	free(c);
	return r;
}
