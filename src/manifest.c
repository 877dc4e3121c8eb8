#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "bounds.h"
#include "log.h"
#include "manifest.h"
#include "text.h"

_Static_assert(MANIFEST_MAX_FILES <= MANIFEST_CHUNK_INDEX_MAX + 1u,
               "every payload chunk index fits six digits");
_Static_assert(MANIFEST_MAX_FILE_SIZE <= (uint64_t)INT64_MAX,
               "a file size fits an off_t");
_Static_assert(MANIFEST_MAX_BYTES < UINT32_MAX, "line numbers fit");

#define R_TOO_LARGE        "manifest.too_large"
#define R_EMPTY            "manifest.empty"
#define R_LINE_TOO_LONG    "manifest.line_too_long"
#define R_CR               "manifest.cr"
#define R_CONTROL          "manifest.control_char"
#define R_NOT_UTF8         "manifest.not_utf8"
#define R_SYNTAX           "manifest.syntax"
#define R_FIELD_UNKNOWN    "manifest.field_unknown"
#define R_FIELD_DUPLICATE  "manifest.field_duplicate"
#define R_FIELD_ORDER      "manifest.field_order"
#define R_FIELD_MISSING    "manifest.field_missing"
#define R_FORMAT           "manifest.format_unknown"
#define R_VALUE            "manifest.value_invalid"
#define R_NUMBER_INVALID   "manifest.number_invalid"
#define R_NUMBER_RANGE     "manifest.number_range"
#define R_ENTRY_DUPLICATE  "manifest.entry_duplicate"
#define R_ENTRY_ORDER      "manifest.entry_order"
#define R_ENTRY_LIMIT      "manifest.entry_limit"
#define R_PATH_ABSOLUTE    "manifest.path_absolute"
#define R_PATH_DOTDOT      "manifest.path_dotdot"
#define R_PATH_EMPTY_SEG   "manifest.path_empty_segment"
#define R_PATH_INVALID     "manifest.path_invalid"
#define R_PATH_RESERVED    "manifest.path_reserved"
#define R_PATH_DUPLICATE   "manifest.path_duplicate"
#define R_PATH_ORDER       "manifest.path_order"
#define R_PAYLOAD_LAYOUT   "manifest.payload_layout"
#define R_NOT_CANONICAL    "manifest.not_canonical"
#define R_NO_MEMORY        "manifest.no_memory"
#define R_NOT_TEXT         "manifest.not_text_field"

static const struct {
	const char *name;
	unsigned char required;
	unsigned char list;
} field_defs[MANIFEST_F_COUNT] = {
	[MANIFEST_F_FORMAT]              = { "Format", 1, 0 },
	[MANIFEST_F_CHANNEL]             = { "Channel", 1, 0 },
	[MANIFEST_F_SEQUENCE]            = { "Sequence", 1, 0 },
	[MANIFEST_F_BUNDLE_ID]           = { "Bundle-Id", 1, 0 },
	[MANIFEST_F_CREATED]             = { "Created", 1, 0 },
	[MANIFEST_F_VALID_UNTIL]         = { "Valid-Until", 1, 0 },
	[MANIFEST_F_SERVER_VERSION]      = { "Source-Server-Version", 1, 0 },
	[MANIFEST_F_PAYLOAD_KIND]        = { "Payload-Kind", 1, 0 },
	[MANIFEST_F_PAYLOAD_COMPRESSION] = { "Payload-Compression", 1, 0 },
	[MANIFEST_F_CHUNK_SIZE]          = { "Payload-Chunk-Size", 1, 0 },
	[MANIFEST_F_SNAPSHOT]            = { "Snapshot", 1, 0 },
	[MANIFEST_F_SCHEMAS]             = { "Schemas", 1, 0 },
	[MANIFEST_F_WRITER_HOST]         = { "Writer-Host", 1, 0 },
	[MANIFEST_F_COURIER]             = { "Courier", 0, 0 },
	[MANIFEST_F_MEDIA_VENDOR]        = { "Media-Vendor", 0, 0 },
	[MANIFEST_F_MEDIA_MODEL]         = { "Media-Model", 0, 0 },
	[MANIFEST_F_MEDIA_SERIAL]        = { "Media-Serial", 0, 0 },
	[MANIFEST_F_SIGNERS]             = { "Signers", 1, 1 },
	[MANIFEST_F_TABLES]              = { "Tables", 1, 1 },
	[MANIFEST_F_SHA256]              = { "SHA256", 1, 1 },
};

/* Where a failure is reported: the parser sets the line, the builders and
 * the validator leave it 0; field names the field the value belongs to. */
struct ctx {
	struct alerr *e;
	enum alerr_class cls;
	unsigned long line;
	const char *field;
};

static int fail(const struct ctx *c, int errnum, const char *reason,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(const struct ctx *c, int errnum, const char *reason,
                const char *fmt, ...)
{
	char msg[ALERR_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->line && c->field)
		return alerr_set(c->e, c->cls, errnum, reason, "MANIFEST line %lu: %s: %s",
		                 c->line, c->field, msg);
	if (c->line)
		return alerr_set(c->e, c->cls, errnum, reason, "MANIFEST line %lu: %s",
		                 c->line, msg);
	if (c->field)
		return alerr_set(c->e, c->cls, errnum, reason, "manifest field %s: %s",
		                 c->field, msg);
	return alerr_set(c->e, c->cls, errnum, reason, "manifest: %s", msg);
}

static int fail_nomem(const struct ctx *c)
{
	return alerr_set(c->e, ALERR_OSERR, -ENOMEM, R_NO_MEMORY,
	                 "manifest: out of memory");
}

/* Untrusted bytes quoted in a message: sanitised and cut short. */
#define SHOW_BYTES 48u
#define SHOW_SIZE  (4u * SHOW_BYTES + 4u)

static const char *show(char *out, const char *s, size_t n)
{
	size_t used;

	log_sanitize(out, SHOW_SIZE - 3u, s, n > SHOW_BYTES ? SHOW_BYTES : n);
	if (n > SHOW_BYTES) {
		used = strlen(out);
		memcpy(out + used, "...", 4);
	}
	return out;
}

static unsigned long entry_line(unsigned long base, size_t i)
{
	return base ? base + 1u + (unsigned long)i : 0;
}

static int is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static int is_lower_alnum(char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'z');
}

static int is_alnum(char ch)
{
	return is_lower_alnum(ch) || (ch >= 'A' && ch <= 'Z');
}

static int is_ident_start(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static int is_upper_hex(char ch)
{
	return is_digit(ch) || (ch >= 'A' && ch <= 'F');
}

static int fold(char ch)
{
	unsigned char u = (unsigned char)ch;

	return (u >= 'A' && u <= 'Z') ? u + ('a' - 'A') : u;
}

/* ASCII case-insensitive comparison: ISO 9660 primary names fold case. */
static int ascii_casecmp(const char *a, const char *b)
{
	while (*a && fold(*a) == fold(*b)) {
		a++;
		b++;
	}
	return fold(*a) - fold(*b);
}

static int ascii_caseeq(const char *s, size_t n, const char *lit)
{
	size_t i;

	if (strlen(lit) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (fold(s[i]) != fold(lit[i]))
			return 0;
	return 1;
}

static int lookup_field(const char *s, size_t n)
{
	int f;

	for (f = 0; f < MANIFEST_F_COUNT; f++)
		if (strlen(field_defs[f].name) == n && memcmp(field_defs[f].name, s, n) == 0)
			return f;
	return -1;
}

const char *manifest_field_name(enum manifest_field f)
{
	if ((int)f < 0 || f >= MANIFEST_F_COUNT)
		return NULL;
	return field_defs[f].name;
}

/* ---------------------------------------------------------------------
 * Values: one check per kind, shared by the parser, the builders and the
 * validator so that the three agree on every rule. */

static int check_range(const struct ctx *c, uint64_t v, uint64_t min, uint64_t max)
{
	if (v < min || v > max)
		return fail(c, -ERANGE, R_NUMBER_RANGE,
		            "%" PRIu64 " is out of range %" PRIu64 "..%" PRIu64, v, min, max);
	return 0;
}

static int parse_num(const struct ctx *c, const char *s, size_t n,
                     uint64_t min, uint64_t max, uint64_t *out)
{
	char vb[SHOW_SIZE];
	uint64_t v;
	size_t i;
	int r;

	if (n == 0)
		return fail(c, -EBADMSG, R_NUMBER_INVALID, "empty number");
	for (i = 0; i < n; i++)
		if (!is_digit(s[i]))
			return fail(c, -EBADMSG, R_NUMBER_INVALID,
			            "\"%s\" is not a decimal number", show(vb, s, n));
	if (n > 1 && s[0] == '0')
		return fail(c, -EBADMSG, R_NUMBER_INVALID,
		            "\"%s\" has a leading zero", show(vb, s, n));
	/* Digits only, no leading zero: the one error left is the range. */
	if (n > 20 || text_parse_u64(s, n, UINT64_MAX, &v) < 0)
		return fail(c, -ERANGE, R_NUMBER_RANGE,
		            "%s is out of range %" PRIu64 "..%" PRIu64,
		            show(vb, s, n), min, max);
	r = check_range(c, v, min, max);
	if (r < 0)
		return r;
	*out = v;
	return 0;
}

static int check_exact(const struct ctx *c, const char *s, size_t n,
                       const char *want, const char *reason)
{
	char vb[SHOW_SIZE];

	if (n != strlen(want) || memcmp(s, want, n) != 0)
		return fail(c, -EBADMSG, reason, "\"%s\" is not supported (expected \"%s\")",
		            show(vb, s, n), want);
	return 0;
}

static int check_channel(const struct ctx *c, const char *s, size_t n)
{
	char vb[SHOW_SIZE];
	size_t i;

	if (n == 0 || n > CHANNEL_MAX)
		return fail(c, n ? -E2BIG : -EBADMSG, R_VALUE,
		            "a channel has 1..%u bytes, not %zu", CHANNEL_MAX, n);
	for (i = 0; i < n; i++) {
		if (is_lower_alnum(s[i]))
			continue;
		if (i > 0 && (s[i] == '.' || s[i] == '_' || s[i] == '-'))
			continue;
		return fail(c, -EBADMSG, R_VALUE,
		            "channel \"%s\" is not [a-z0-9][a-z0-9._-]*", show(vb, s, n));
	}
	return 0;
}

static int check_ident(const struct ctx *c, const char *what, const char *s, size_t n)
{
	char vb[SHOW_SIZE];
	size_t i;

	if (n == 0 || n > NAME_MAX_IDENT)
		return fail(c, n ? -E2BIG : -EBADMSG, R_VALUE,
		            "%s name \"%s\" must have 1..%u bytes", what, show(vb, s, n),
		            NAME_MAX_IDENT);
	for (i = 0; i < n; i++)
		if (!(is_ident_start(s[i]) || (i > 0 && is_digit(s[i]))))
			return fail(c, -EBADMSG, R_VALUE,
			            "%s name \"%s\" is not [A-Za-z_][A-Za-z0-9_]*", what,
			            show(vb, s, n));
	return 0;
}

static int check_text(const struct ctx *c, const char *s, size_t n)
{
	if (n == 0 || n > MANIFEST_MAX_TEXT)
		return fail(c, n ? -E2BIG : -EBADMSG, R_VALUE,
		            "free text has 1..%u bytes, not %zu", MANIFEST_MAX_TEXT, n);
	if (!text_is_printable_utf8(s, n))
		return fail(c, -EBADMSG, R_VALUE, "not printable UTF-8");
	if (s[0] == ' ' || s[n - 1] == ' ')
		return fail(c, -EBADMSG, R_VALUE, "leading or trailing space");
	return 0;
}

static int check_snapshot(const struct ctx *c, const char *s, size_t n)
{
	char vb[SHOW_SIZE];
	size_t i;

	if (n == 0 || n > MANIFEST_MAX_SNAPSHOT)
		return fail(c, n ? -E2BIG : -EBADMSG, R_VALUE,
		            "a snapshot id has 1..%u bytes, not %zu", MANIFEST_MAX_SNAPSHOT, n);
	for (i = 0; i < n; i++)
		if (!is_upper_hex(s[i]) && s[i] != '-')
			return fail(c, -EBADMSG, R_VALUE,
			            "snapshot id \"%s\" is not [0-9A-F-]*", show(vb, s, n));
	return 0;
}

static int check_fingerprint(const struct ctx *c, const char *s, size_t n)
{
	char vb[SHOW_SIZE];
	size_t i;

	for (i = 0; i < n && is_upper_hex(s[i]); i++)
		;
	if ((n != 40 && n != 64) || i != n)
		return fail(c, -EBADMSG, R_VALUE,
		            "\"%s\" is not a primary-key fingerprint (40 or 64 upper-case hex digits)",
		            show(vb, s, n));
	return 0;
}

static int check_uuid(const struct ctx *c, const char *s, size_t n)
{
	char vb[SHOW_SIZE], in[MANIFEST_BUNDLE_ID_LEN + 1], back[MANIFEST_BUNDLE_ID_LEN + 1];
	uuid_t u;

	if (n == MANIFEST_BUNDLE_ID_LEN) {
		memcpy(in, s, n);
		in[n] = '\0';
		if (uuid_parse(in, u) == 0) {
			uuid_unparse_lower(u, back);
			if (memcmp(in, back, sizeof(in)) == 0)
				return 0;
		}
	}
	return fail(c, -EBADMSG, R_VALUE,
	            "\"%s\" is not a lower-case 8-4-4-4-12 UUID", show(vb, s, n));
}

int manifest_time_format(int64_t t, char *buf, size_t size)
{
	struct tm tm;
	time_t tt;

	if (size <= MANIFEST_TIME_LEN)
		return -ENOSPC;
	if (t < MANIFEST_TIME_MIN || t > MANIFEST_TIME_MAX)
		return -ERANGE;
	tt = (time_t)t;
	if (!gmtime_r(&tt, &tm))
		return -ERANGE;
	if (strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) != MANIFEST_TIME_LEN)
		return -ERANGE;
	return 0;
}

static int check_time(const struct ctx *c, int64_t t)
{
	if (t < MANIFEST_TIME_MIN || t > MANIFEST_TIME_MAX)
		return fail(c, -ERANGE, R_VALUE,
		            "time %" PRId64 " is outside 2000-01-01..9999-12-31", t);
	return 0;
}

static int digits(const char *s, size_t n)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static int parse_time(const struct ctx *c, const char *s, size_t n, int64_t *out)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	char vb[SHOW_SIZE], back[MANIFEST_TIME_LEN + 1];
	struct tm tm;
	time_t t;
	size_t i;

	if (n != MANIFEST_TIME_LEN)
		goto bad;
	for (i = 0; i < n; i++)
		if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != shape[i])
			goto bad;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = digits(s, 4) - 1900;
	tm.tm_mon = digits(s + 5, 2) - 1;
	tm.tm_mday = digits(s + 8, 2);
	tm.tm_hour = digits(s + 11, 2);
	tm.tm_min = digits(s + 14, 2);
	tm.tm_sec = digits(s + 17, 2);
	if (tm.tm_year < 2000 - 1900)
		return fail(c, -ERANGE, R_VALUE, "\"%s\" is before the year 2000",
		            show(vb, s, n));
	/* timegm normalises (Feb 30 becomes Mar 2, 24:00 the next day):
	 * a real calendar time is one that formats back to the same text. */
	t = timegm(&tm);
	if (manifest_time_format((int64_t)t, back, sizeof(back)) < 0 ||
	    memcmp(back, s, MANIFEST_TIME_LEN) != 0)
		return fail(c, -EBADMSG, R_VALUE, "\"%s\" is not a real calendar time",
		            show(vb, s, n));
	*out = (int64_t)t;
	return 0;
bad:
	return fail(c, -EBADMSG, R_VALUE, "\"%s\" is not YYYY-MM-DDTHH:MM:SSZ",
	            show(vb, s, n));
}

static int check_text_field(const struct ctx *c, enum manifest_field f,
                            const char *s, size_t n)
{
	switch (f) {
	case MANIFEST_F_FORMAT:
		return check_exact(c, s, n, MANIFEST_FORMAT, R_FORMAT);
	case MANIFEST_F_CHANNEL:
		return check_channel(c, s, n);
	case MANIFEST_F_BUNDLE_ID:
		return check_uuid(c, s, n);
	case MANIFEST_F_PAYLOAD_KIND:
		return check_exact(c, s, n, MANIFEST_PAYLOAD_KIND, R_VALUE);
	case MANIFEST_F_PAYLOAD_COMPRESSION:
		return check_exact(c, s, n, MANIFEST_PAYLOAD_COMPRESSION, R_VALUE);
	case MANIFEST_F_SNAPSHOT:
		return check_snapshot(c, s, n);
	default:
		return check_text(c, s, n);
	}
}

static char **text_slot(struct manifest *m, enum manifest_field f)
{
	switch (f) {
	case MANIFEST_F_CHANNEL:             return &m->channel;
	case MANIFEST_F_PAYLOAD_KIND:        return &m->payload_kind;
	case MANIFEST_F_PAYLOAD_COMPRESSION: return &m->payload_compression;
	case MANIFEST_F_SNAPSHOT:            return &m->snapshot;
	case MANIFEST_F_WRITER_HOST:         return &m->writer_host;
	case MANIFEST_F_COURIER:             return &m->courier;
	case MANIFEST_F_MEDIA_VENDOR:        return &m->media_vendor;
	case MANIFEST_F_MEDIA_MODEL:         return &m->media_model;
	case MANIFEST_F_MEDIA_SERIAL:        return &m->media_serial;
	default:                             return NULL;
	}
}

static const char *text_value(const struct manifest *m, enum manifest_field f)
{
	switch (f) {
	case MANIFEST_F_CHANNEL:             return m->channel;
	case MANIFEST_F_PAYLOAD_KIND:        return m->payload_kind;
	case MANIFEST_F_PAYLOAD_COMPRESSION: return m->payload_compression;
	case MANIFEST_F_SNAPSHOT:            return m->snapshot;
	case MANIFEST_F_WRITER_HOST:         return m->writer_host;
	case MANIFEST_F_COURIER:             return m->courier;
	case MANIFEST_F_MEDIA_VENDOR:        return m->media_vendor;
	case MANIFEST_F_MEDIA_MODEL:         return m->media_model;
	case MANIFEST_F_MEDIA_SERIAL:        return m->media_serial;
	default:                             return NULL;
	}
}

/* ---------------------------------------------------------------------
 * Paths. */

static int path_check(const struct ctx *c, const char *p, size_t n)
{
	char vb[SHOW_SIZE];
	size_t i, j, start = 0, seg, depth = 0;

	if (n == 0)
		return fail(c, -EBADMSG, R_PATH_INVALID, "empty path");
	if (n > VOLUME_PATH_MAX)
		return fail(c, -E2BIG, R_PATH_INVALID, "path \"%s\" is longer than %u bytes",
		            show(vb, p, n), VOLUME_PATH_MAX);
	if (p[0] == '/')
		return fail(c, -EBADMSG, R_PATH_ABSOLUTE, "path \"%s\" is absolute",
		            show(vb, p, n));
	if (p[n - 1] == '/')
		return fail(c, -EBADMSG, R_PATH_EMPTY_SEG, "path \"%s\" ends with '/'",
		            show(vb, p, n));
	for (i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		seg = i - start;
		depth++;
		if (seg == 0)
			return fail(c, -EBADMSG, R_PATH_EMPTY_SEG,
			            "path \"%s\" has an empty segment", show(vb, p, n));
		if (p[start] == '.' && (seg == 1 || (seg == 2 && p[start + 1] == '.')))
			return fail(c, -EBADMSG, R_PATH_DOTDOT,
			            "path \"%s\" has a '.' or '..' segment", show(vb, p, n));
		if (depth > VOLUME_DEPTH_MAX)
			return fail(c, -E2BIG, R_PATH_INVALID,
			            "path \"%s\" is more than %u segments deep", show(vb, p, n),
			            VOLUME_DEPTH_MAX);
		if (seg > VOLUME_SEGMENT_MAX)
			return fail(c, -E2BIG, R_PATH_INVALID,
			            "path \"%s\" has a segment longer than %u bytes",
			            show(vb, p, n), VOLUME_SEGMENT_MAX);
		for (j = start; j < i; j++)
			if (!is_alnum(p[j]) && p[j] != '.' && p[j] != '_' && p[j] != '-')
				return fail(c, -EBADMSG, R_PATH_INVALID,
				            "path \"%s\": byte 0x%02x at offset %zu is not [A-Za-z0-9._-]",
				            show(vb, p, n), (unsigned int)(unsigned char)p[j], j);
		if (!is_alnum(p[start]))
			return fail(c, -EBADMSG, R_PATH_INVALID,
			            "path \"%s\": a segment must start with a letter or digit",
			            show(vb, p, n));
		start = i + 1;
	}
	return 0;
}

int manifest_path_check(const char *path, size_t len, struct alerr *e)
{
	struct ctx c = { e, ALERR_REJECT, 0, NULL };

	return path_check(&c, path, len);
}

int manifest_path_is_reserved(const char *p, size_t n)
{
	static const char dir[] = "SIGNATURES/";

	if (ascii_caseeq(p, n, "MANIFEST") || ascii_caseeq(p, n, "SIGNATURES"))
		return 1;
	return n > sizeof(dir) - 1 && ascii_caseeq(p, sizeof(dir) - 1, dir);
}

static int file_check(const struct ctx *c, const char *p, size_t n, uint64_t size)
{
	char vb[SHOW_SIZE];
	int r;

	r = path_check(c, p, n);
	if (r < 0)
		return r;
	if (manifest_path_is_reserved(p, n))
		return fail(c, -EBADMSG, R_PATH_RESERVED,
		            "path \"%s\" is reserved: MANIFEST and SIGNATURES/ are not listed",
		            show(vb, p, n));
	return check_range(c, size, 0, MANIFEST_MAX_FILE_SIZE);
}

int manifest_chunk_path(char *buf, size_t size, uint64_t index)
{
	if (index > MANIFEST_CHUNK_INDEX_MAX)
		return -ERANGE;
	if (size < MANIFEST_CHUNK_PATH_LEN + 1u)
		return -ENOSPC;
	snprintf(buf, size, "payload/%06" PRIu64 ".chunk", index);
	return 0;
}

/* ---------------------------------------------------------------------
 * Lists: order, uniqueness and cross-field rules. base is the line of the
 * field (0 outside the parser); entry i is on line base + 1 + i. */

static int check_string_list(struct ctx *c, char *const *v, size_t n, size_t max,
                             unsigned long base, int one_line)
{
	char vb[SHOW_SIZE], vb2[SHOW_SIZE];
	size_t i;
	int cmp;

	c->line = base;
	if (n > max)
		return fail(c, -E2BIG, R_ENTRY_LIMIT, "more than %zu entries", max);
	for (i = 1; i < n; i++) {
		cmp = strcmp(v[i - 1], v[i]);
		if (cmp < 0)
			continue;
		c->line = one_line ? base : entry_line(base, i);
		if (cmp == 0)
			return fail(c, -EBADMSG, R_ENTRY_DUPLICATE, "duplicate entry \"%s\"",
			            show(vb, v[i], strlen(v[i])));
		return fail(c, -EBADMSG, R_ENTRY_ORDER,
		            "entries not sorted: \"%s\" comes after \"%s\"",
		            show(vb, v[i], strlen(v[i])), show(vb2, v[i - 1], strlen(v[i - 1])));
	}
	return 0;
}

/* '.' sorts below every identifier byte, so comparing schema, then table
 * gives the bytewise order of "schema.table". */
static int table_cmp(const char *s1, const char *t1, const char *s2, const char *t2)
{
	int r = strcmp(s1, s2);

	return r ? r : strcmp(t1, t2);
}

static int schema_cmp(const void *key, const void *elem)
{
	return strcmp(key, *(char *const *)elem);
}

static int check_tables(struct ctx *c, const struct manifest *m, unsigned long base)
{
	const struct manifest_table *t = m->tables;
	size_t i;
	int cmp;

	c->line = base;
	if (m->n_tables > MANIFEST_MAX_TABLES)
		return fail(c, -E2BIG, R_ENTRY_LIMIT, "more than %u entries", MANIFEST_MAX_TABLES);
	for (i = 0; i < m->n_tables; i++) {
		c->line = entry_line(base, i);
		/* Without Schemas the missing field is reported at the end. */
		if (m->n_schemas && !bsearch(t[i].schema, m->schemas, m->n_schemas,
		                             sizeof(*m->schemas), schema_cmp))
			return fail(c, -EBADMSG, R_VALUE,
			            "schema %s of table %s.%s is not listed in Schemas",
			            t[i].schema, t[i].schema, t[i].table);
		if (i == 0)
			continue;
		cmp = table_cmp(t[i - 1].schema, t[i - 1].table, t[i].schema, t[i].table);
		if (cmp == 0)
			return fail(c, -EBADMSG, R_ENTRY_DUPLICATE, "duplicate table %s.%s",
			            t[i].schema, t[i].table);
		if (cmp > 0)
			return fail(c, -EBADMSG, R_ENTRY_ORDER,
			            "tables not sorted: %s.%s comes after %s.%s",
			            t[i].schema, t[i].table, t[i - 1].schema, t[i - 1].table);
	}
	return 0;
}

static int file_case_cmp(const void *a, const void *b)
{
	const struct manifest_file *x = *(const struct manifest_file *const *)a;
	const struct manifest_file *y = *(const struct manifest_file *const *)b;
	int r = ascii_casecmp(x->path, y->path);

	if (r)
		return r;
	return (x > y) - (x < y);
}

static int check_files(struct ctx *c, const struct manifest *m, unsigned long base)
{
	const struct manifest_file *f = m->files, **byname = NULL;
	char vb[SHOW_SIZE], vb2[SHOW_SIZE], want[MANIFEST_CHUNK_PATH_LEN + 1];
	size_t i, k, n = m->n_files;
	int cmp, r = 0;

	c->line = base;
	if (n > MANIFEST_MAX_FILES)
		return fail(c, -E2BIG, R_ENTRY_LIMIT, "more than %u entries", MANIFEST_MAX_FILES);
	for (i = 1; i < n; i++) {
		cmp = strcmp(f[i - 1].path, f[i].path);
		if (cmp < 0)
			continue;
		c->line = entry_line(base, i);
		if (cmp == 0)
			return fail(c, -EBADMSG, R_PATH_DUPLICATE, "duplicate path \"%s\"",
			            show(vb, f[i].path, strlen(f[i].path)));
		return fail(c, -EBADMSG, R_PATH_ORDER,
		            "paths not sorted: \"%s\" comes after \"%s\"",
		            show(vb, f[i].path, strlen(f[i].path)),
		            show(vb2, f[i - 1].path, strlen(f[i - 1].path)));
	}
	/* Names equal but for case are one name on an ISO 9660 volume. */
	if (n > 1) {
		byname = calloc(n, sizeof(*byname));
		if (!byname)
			return fail_nomem(c);
		for (i = 0; i < n; i++)
			byname[i] = &f[i];
		qsort(byname, n, sizeof(*byname), file_case_cmp);
		for (i = 1; i < n; i++) {
			if (ascii_casecmp(byname[i - 1]->path, byname[i]->path) != 0)
				continue;
			k = (size_t)(byname[i] - f);
			c->line = entry_line(base, k);
			r = fail(c, -EBADMSG, R_PATH_DUPLICATE,
			         "paths \"%s\" and \"%s\" differ only in case",
			         show(vb, byname[i - 1]->path, strlen(byname[i - 1]->path)),
			         show(vb2, byname[i]->path, strlen(byname[i]->path)));
			break;
		}
		free(byname);
		if (r < 0)
			return r;
	}
	/* v1: the list is exactly payload/000000.chunk ... in order. */
	for (i = 0; i < n; i++) {
		c->line = entry_line(base, i);
		manifest_chunk_path(want, sizeof(want), i);
		if (strcmp(f[i].path, want) != 0)
			return fail(c, -EBADMSG, R_PAYLOAD_LAYOUT,
			            "entry %zu is \"%s\", expected %s",
			            i + 1, show(vb, f[i].path, strlen(f[i].path)), want);
		if (!m->chunk_size)
			continue;
		if (i + 1 < n && f[i].size != m->chunk_size)
			return fail(c, -EBADMSG, R_PAYLOAD_LAYOUT,
			            "%s has %" PRIu64 " bytes; every chunk but the last has "
			            "Payload-Chunk-Size = %" PRIu64, want, f[i].size, m->chunk_size);
		if (i + 1 == n && (f[i].size == 0 || f[i].size > m->chunk_size))
			return fail(c, -EBADMSG, R_PAYLOAD_LAYOUT,
			            "last chunk %s has %" PRIu64 " bytes, not 1..%" PRIu64,
			            want, f[i].size, m->chunk_size);
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Lifetime and builders. */

struct manifest *manifest_new(void)
{
	struct manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->payload_kind = strdup(MANIFEST_PAYLOAD_KIND);
	m->payload_compression = strdup(MANIFEST_PAYLOAD_COMPRESSION);
	if (!m->payload_kind || !m->payload_compression) {
		manifest_free(m);
		return NULL;
	}
	return m;
}

void manifest_free(struct manifest *m)
{
	size_t i;

	if (!m)
		return;
	free(m->channel);
	free(m->payload_kind);
	free(m->payload_compression);
	free(m->snapshot);
	free(m->writer_host);
	free(m->courier);
	free(m->media_vendor);
	free(m->media_model);
	free(m->media_serial);
	for (i = 0; i < m->n_schemas; i++)
		free(m->schemas[i]);
	free(m->schemas);
	for (i = 0; i < m->n_signers; i++)
		free(m->signers[i]);
	free(m->signers);
	for (i = 0; i < m->n_tables; i++) {
		free(m->tables[i].schema);
		free(m->tables[i].table);
	}
	free(m->tables);
	for (i = 0; i < m->n_files; i++)
		free(m->files[i].path);
	free(m->files);
	free(m);
}

/* Room for element n; arrays grow by doubling up to max. Returns the
 * (possibly moved) array, or NULL with the old one intact. */
static void *grow(void *arr, size_t *cap, size_t n, size_t elem, size_t max)
{
	size_t ncap;
	void *q;

	if (n < *cap)
		return arr;
	if (n >= max)
		return NULL;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap > max)
		ncap = max;
	q = reallocarray(arr, ncap, elem);
	if (q)
		*cap = ncap;
	return q;
}

static struct ctx builder_ctx(struct alerr *e, enum manifest_field f)
{
	struct ctx c = { e, ALERR_USAGE, 0, field_defs[f].name };

	return c;
}

int manifest_set_text(struct manifest *m, enum manifest_field f, const char *value,
                      struct alerr *e)
{
	struct ctx c;
	char **slot, *copy;
	size_t n;
	int r;

	if ((int)f < 0 || f >= MANIFEST_F_COUNT ||
	    (f != MANIFEST_F_BUNDLE_ID && !text_slot(m, f)))
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, R_NOT_TEXT,
		                 "manifest: field %d is not a text field", (int)f);
	c = builder_ctx(e, f);
	if (!value) {
		if (field_defs[f].required)
			return fail(&c, -EINVAL, R_FIELD_MISSING, "a value is required");
		slot = text_slot(m, f);
		free(*slot);
		*slot = NULL;
		return 0;
	}
	n = strnlen(value, MANIFEST_MAX_LINE + 1u);
	r = check_text_field(&c, f, value, n);
	if (r < 0)
		return r;
	if (f == MANIFEST_F_BUNDLE_ID) {
		memcpy(m->bundle_id, value, n + 1);
		return 0;
	}
	copy = text_memdup(value, n);
	if (!copy)
		return fail_nomem(&c);
	slot = text_slot(m, f);
	free(*slot);
	*slot = copy;
	return 0;
}

int manifest_generate_bundle_id(struct manifest *m, struct alerr *e)
{
	uuid_t u;

	(void)e;
	uuid_generate_random(u);
	uuid_unparse_lower(u, m->bundle_id);
	return 0;
}

int manifest_set_sequence(struct manifest *m, uint64_t sequence, struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_SEQUENCE);
	int r = check_range(&c, sequence, 1, INT64_MAX);

	if (r == 0)
		m->sequence = sequence;
	return r;
}

int manifest_set_created(struct manifest *m, int64_t t, struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_CREATED);
	int r = check_time(&c, t);

	if (r == 0)
		m->created = t;
	return r;
}

int manifest_set_valid_until(struct manifest *m, int64_t t, struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_VALID_UNTIL);
	int r = check_time(&c, t);

	if (r == 0)
		m->valid_until = t;
	return r;
}

int manifest_set_server_version(struct manifest *m, uint32_t version, struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_SERVER_VERSION);
	int r = check_range(&c, version, MANIFEST_SERVER_VERSION_MIN,
	                    MANIFEST_SERVER_VERSION_MAX);

	if (r == 0)
		m->source_server_version = version;
	return r;
}

int manifest_set_chunk_size(struct manifest *m, uint64_t chunk_size, struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_CHUNK_SIZE);
	int r = check_range(&c, chunk_size, CHUNK_SIZE_MIN, CHUNK_SIZE_MAX);

	if (r == 0)
		m->chunk_size = chunk_size;
	return r;
}

/* Insert a copy of s into the sorted list v. */
static int insert_string(const struct ctx *c, char ***v, size_t *n, size_t *cap,
                         size_t max, const char *s, size_t len)
{
	char vb[SHOW_SIZE], **q, *copy;
	size_t lo = 0, hi = *n, mid;
	int cmp;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		cmp = strcmp(s, (*v)[mid]);
		if (cmp == 0)
			return fail(c, -EINVAL, R_ENTRY_DUPLICATE, "duplicate entry \"%s\"",
			            show(vb, s, len));
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (*n >= max)
		return fail(c, -E2BIG, R_ENTRY_LIMIT, "more than %zu entries", max);
	q = grow(*v, cap, *n, sizeof(**v), max);
	if (!q)
		return fail_nomem(c);
	*v = q;
	copy = text_memdup(s, len);
	if (!copy)
		return fail_nomem(c);
	memmove(q + lo + 1, q + lo, (*n - lo) * sizeof(*q));
	q[lo] = copy;
	(*n)++;
	return 0;
}

int manifest_add_schema(struct manifest *m, const char *schema, struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_SCHEMAS);
	size_t n = strnlen(schema, NAME_MAX_IDENT + 1u);
	int r = check_ident(&c, "schema", schema, n);

	if (r < 0)
		return r;
	return insert_string(&c, &m->schemas, &m->n_schemas, &m->cap_schemas,
	                     MANIFEST_MAX_SCHEMAS, schema, n);
}

int manifest_add_signer(struct manifest *m, const char *fingerprint, struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_SIGNERS);
	size_t n = strnlen(fingerprint, 65);
	int r = check_fingerprint(&c, fingerprint, n);

	if (r < 0)
		return r;
	return insert_string(&c, &m->signers, &m->n_signers, &m->cap_signers,
	                     MANIFEST_MAX_SIGNERS, fingerprint, n);
}

int manifest_add_table(struct manifest *m, const char *schema, const char *table,
                       uint64_t rows, struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_TABLES);
	size_t sn = strnlen(schema, NAME_MAX_IDENT + 1u);
	size_t tn = strnlen(table, NAME_MAX_IDENT + 1u);
	size_t lo = 0, hi = m->n_tables, mid;
	struct manifest_table *q, t;
	int r, cmp;

	r = check_ident(&c, "schema", schema, sn);
	if (r == 0)
		r = check_ident(&c, "table", table, tn);
	if (r == 0)
		r = check_range(&c, rows, 0, INT64_MAX);
	if (r < 0)
		return r;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		cmp = table_cmp(schema, table, m->tables[mid].schema, m->tables[mid].table);
		if (cmp == 0)
			return fail(&c, -EINVAL, R_ENTRY_DUPLICATE, "duplicate table %s.%s",
			            schema, table);
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (m->n_tables >= MANIFEST_MAX_TABLES)
		return fail(&c, -E2BIG, R_ENTRY_LIMIT, "more than %u entries",
		            MANIFEST_MAX_TABLES);
	q = grow(m->tables, &m->cap_tables, m->n_tables, sizeof(*q), MANIFEST_MAX_TABLES);
	if (!q)
		return fail_nomem(&c);
	m->tables = q;
	t.schema = text_memdup(schema, sn);
	t.table = text_memdup(table, tn);
	t.rows = rows;
	if (!t.schema || !t.table) {
		free(t.schema);
		free(t.table);
		return fail_nomem(&c);
	}
	memmove(q + lo + 1, q + lo, (m->n_tables - lo) * sizeof(*q));
	q[lo] = t;
	m->n_tables++;
	return 0;
}

int manifest_add_file(struct manifest *m, const char *path, uint64_t size,
                      const uint8_t sha256[32], struct alerr *e)
{
	struct ctx c = builder_ctx(e, MANIFEST_F_SHA256);
	size_t n = strnlen(path, VOLUME_PATH_MAX + 1u);
	size_t lo = 0, hi = m->n_files, mid;
	struct manifest_file *q, f;
	char vb[SHOW_SIZE];
	int r, cmp;

	r = file_check(&c, path, n, size);
	if (r < 0)
		return r;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		cmp = strcmp(path, m->files[mid].path);
		if (cmp == 0)
			return fail(&c, -EINVAL, R_PATH_DUPLICATE, "duplicate path \"%s\"",
			            show(vb, path, n));
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (m->n_files >= MANIFEST_MAX_FILES)
		return fail(&c, -E2BIG, R_ENTRY_LIMIT, "more than %u entries",
		            MANIFEST_MAX_FILES);
	q = grow(m->files, &m->cap_files, m->n_files, sizeof(*q), MANIFEST_MAX_FILES);
	if (!q)
		return fail_nomem(&c);
	m->files = q;
	f.path = text_memdup(path, n);
	if (!f.path)
		return fail_nomem(&c);
	f.size = size;
	memcpy(f.sha256, sha256, sizeof(f.sha256));
	memmove(q + lo + 1, q + lo, (m->n_files - lo) * sizeof(*q));
	q[lo] = f;
	m->n_files++;
	return 0;
}

static int file_find_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct manifest_file *)elem)->path);
}

const struct manifest_file *manifest_find_file(const struct manifest *m, const char *path)
{
	if (!m || !path || !m->n_files)
		return NULL;
	return bsearch(path, m->files, m->n_files, sizeof(*m->files), file_find_cmp);
}

/* ---------------------------------------------------------------------
 * Validation of the data, in canonical field order. */

static int validate_fields(struct ctx *c, const struct manifest *m)
{
	const char *v;
	size_t i;
	int f, r = 0;

	for (f = MANIFEST_F_CHANNEL; f < MANIFEST_F_COUNT && r == 0; f++) {
		c->line = 0;
		c->field = field_defs[f].name;
		switch (f) {
		case MANIFEST_F_SEQUENCE:
			r = check_range(c, m->sequence, 1, INT64_MAX);
			break;
		case MANIFEST_F_BUNDLE_ID:
			if (!m->bundle_id[0])
				goto missing;
			r = check_uuid(c, m->bundle_id, strnlen(m->bundle_id, sizeof(m->bundle_id)));
			break;
		case MANIFEST_F_CREATED:
			r = check_time(c, m->created);
			break;
		case MANIFEST_F_VALID_UNTIL:
			r = check_time(c, m->valid_until);
			if (r == 0 && m->valid_until <= m->created)
				r = fail(c, -EINVAL, R_VALUE, "Valid-Until is not later than Created");
			break;
		case MANIFEST_F_SERVER_VERSION:
			r = check_range(c, m->source_server_version, MANIFEST_SERVER_VERSION_MIN,
			                MANIFEST_SERVER_VERSION_MAX);
			break;
		case MANIFEST_F_CHUNK_SIZE:
			r = check_range(c, m->chunk_size, CHUNK_SIZE_MIN, CHUNK_SIZE_MAX);
			break;
		case MANIFEST_F_SCHEMAS:
			if (!m->n_schemas)
				goto missing;
			for (i = 0; i < m->n_schemas && r == 0; i++)
				r = check_ident(c, "schema", m->schemas[i],
				                strnlen(m->schemas[i], NAME_MAX_IDENT + 1u));
			if (r == 0)
				r = check_string_list(c, m->schemas, m->n_schemas,
				                      MANIFEST_MAX_SCHEMAS, 0, 1);
			break;
		case MANIFEST_F_SIGNERS:
			if (!m->n_signers)
				goto missing;
			for (i = 0; i < m->n_signers && r == 0; i++)
				r = check_fingerprint(c, m->signers[i], strnlen(m->signers[i], 65));
			if (r == 0)
				r = check_string_list(c, m->signers, m->n_signers,
				                      MANIFEST_MAX_SIGNERS, 0, 0);
			break;
		case MANIFEST_F_TABLES:
			if (!m->n_tables)
				goto missing;
			for (i = 0; i < m->n_tables && r == 0; i++) {
				const struct manifest_table *t = &m->tables[i];

				r = check_ident(c, "schema", t->schema,
				                strnlen(t->schema, NAME_MAX_IDENT + 1u));
				if (r == 0)
					r = check_ident(c, "table", t->table,
					                strnlen(t->table, NAME_MAX_IDENT + 1u));
				if (r == 0)
					r = check_range(c, t->rows, 0, INT64_MAX);
			}
			if (r == 0)
				r = check_tables(c, m, 0);
			break;
		case MANIFEST_F_SHA256:
			if (!m->n_files)
				goto missing;
			for (i = 0; i < m->n_files && r == 0; i++)
				r = file_check(c, m->files[i].path,
				               strnlen(m->files[i].path, VOLUME_PATH_MAX + 1u),
				               m->files[i].size);
			if (r == 0)
				r = check_files(c, m, 0);
			break;
		default:
			v = text_value(m, (enum manifest_field)f);
			if (v)
				r = check_text_field(c, (enum manifest_field)f, v,
				                     strnlen(v, MANIFEST_MAX_LINE + 1u));
			else if (field_defs[f].required)
				goto missing;
			break;
		}
	}
	return r;
missing:
	c->field = NULL;
	return fail(c, -EINVAL, R_FIELD_MISSING, "required field %s missing",
	            field_defs[f].name);
}

/* ---------------------------------------------------------------------
 * Emitter. */

struct sbuf {
	char *p;
	size_t len, cap, line_start;
};

static int sb_add(const struct ctx *c, struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int sb_add(const struct ctx *c, struct sbuf *b, const char *fmt, ...)
{
	size_t need, ncap;
	va_list ap;
	char *q;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return fail(c, -EINVAL, R_NOT_CANONICAL, "cannot format a line");
	/* Keep room for the line feed: the text must stay parseable. */
	if (b->len >= MANIFEST_MAX_BYTES || (size_t)n > MANIFEST_MAX_BYTES - b->len - 1u)
		return fail(c, -E2BIG, R_TOO_LARGE, "the text would exceed %u bytes",
		            MANIFEST_MAX_BYTES);
	need = b->len + (size_t)n + 2u;
	if (need > b->cap) {
		ncap = b->cap ? b->cap : 4096;
		while (ncap < need)
			ncap *= 2;
		if (ncap > MANIFEST_MAX_BYTES + 1u)
			ncap = MANIFEST_MAX_BYTES + 1u;
		q = realloc(b->p, ncap);
		if (!q)
			return fail_nomem(c);
		b->p = q;
		b->cap = ncap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1u, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

static int sb_end_line(const struct ctx *c, struct sbuf *b)
{
	if (b->len - b->line_start > MANIFEST_MAX_LINE)
		return fail(c, -E2BIG, R_LINE_TOO_LONG, "the line would exceed %u bytes",
		            MANIFEST_MAX_LINE);
	/* sb_add reserved this byte and the NUL. */
	b->p[b->len++] = '\n';
	b->p[b->len] = '\0';
	b->line_start = b->len;
	return 0;
}

static int render(struct ctx *c, const struct manifest *m, struct sbuf *b)
{
	char created[MANIFEST_TIME_LEN + 1], until[MANIFEST_TIME_LEN + 1], hex[65];
	const char *v;
	size_t i;
	int f, r = 0;

	if (manifest_time_format(m->created, created, sizeof(created)) < 0 ||
	    manifest_time_format(m->valid_until, until, sizeof(until)) < 0)
		return fail(c, -EINVAL, R_VALUE, "time out of range");
	for (f = 0; f < MANIFEST_F_COUNT && r == 0; f++) {
		const char *name = field_defs[f].name;

		c->line = 0;
		c->field = name;
		switch (f) {
		case MANIFEST_F_FORMAT:
			r = sb_add(c, b, "%s: %s", name, MANIFEST_FORMAT);
			break;
		case MANIFEST_F_SEQUENCE:
			r = sb_add(c, b, "%s: %" PRIu64, name, m->sequence);
			break;
		case MANIFEST_F_BUNDLE_ID:
			r = sb_add(c, b, "%s: %s", name, m->bundle_id);
			break;
		case MANIFEST_F_CREATED:
			r = sb_add(c, b, "%s: %s", name, created);
			break;
		case MANIFEST_F_VALID_UNTIL:
			r = sb_add(c, b, "%s: %s", name, until);
			break;
		case MANIFEST_F_SERVER_VERSION:
			r = sb_add(c, b, "%s: %" PRIu32, name, m->source_server_version);
			break;
		case MANIFEST_F_CHUNK_SIZE:
			r = sb_add(c, b, "%s: %" PRIu64, name, m->chunk_size);
			break;
		case MANIFEST_F_SCHEMAS:
			r = sb_add(c, b, "%s:", name);
			for (i = 0; i < m->n_schemas && r == 0; i++)
				r = sb_add(c, b, " %s", m->schemas[i]);
			break;
		case MANIFEST_F_SIGNERS:
			r = sb_add(c, b, "%s:", name);
			for (i = 0; i < m->n_signers && r == 0; i++) {
				r = sb_end_line(c, b);
				if (r == 0)
					r = sb_add(c, b, " %s", m->signers[i]);
			}
			break;
		case MANIFEST_F_TABLES:
			r = sb_add(c, b, "%s:", name);
			for (i = 0; i < m->n_tables && r == 0; i++) {
				r = sb_end_line(c, b);
				if (r == 0)
					r = sb_add(c, b, " %s.%s %" PRIu64, m->tables[i].schema,
					           m->tables[i].table, m->tables[i].rows);
			}
			break;
		case MANIFEST_F_SHA256:
			r = sb_add(c, b, "%s:", name);
			for (i = 0; i < m->n_files && r == 0; i++) {
				text_hex_encode(hex, m->files[i].sha256, sizeof(m->files[i].sha256));
				r = sb_end_line(c, b);
				if (r == 0)
					r = sb_add(c, b, " %s %" PRIu64 " %s", hex, m->files[i].size,
					           m->files[i].path);
			}
			break;
		default:
			v = text_value(m, (enum manifest_field)f);
			if (!v)
				continue;
			r = sb_add(c, b, "%s: %s", name, v);
			break;
		}
		if (r == 0)
			r = sb_end_line(c, b);
	}
	return r;
}

int manifest_validate(const struct manifest *m, struct alerr *e)
{
	struct ctx c = { e, ALERR_SOFTWARE, 0, NULL };
	struct sbuf b = { NULL, 0, 0, 0 };
	int r;

	r = validate_fields(&c, m);
	if (r == 0)
		r = render(&c, m, &b);
	free(b.p);
	return r;
}

int manifest_emit(const struct manifest *m, char **out, size_t *out_len, struct alerr *e)
{
	struct ctx c = { e, ALERR_SOFTWARE, 0, NULL };
	struct sbuf b = { NULL, 0, 0, 0 };
	int r;

	*out = NULL;
	*out_len = 0;
	r = validate_fields(&c, m);
	if (r == 0)
		r = render(&c, m, &b);
	if (r < 0) {
		free(b.p);
		return r;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}

/* ---------------------------------------------------------------------
 * Parser. One pass, line by line, so the first failure in the text is the
 * one reported; every value is checked as soon as its line is read. */

struct parser {
	struct ctx c;
	struct manifest *m;
	unsigned long line;
	unsigned long seen[MANIFEST_F_COUNT];   /* line of each field, 0: absent */
	int last;                               /* last field read, -1: none */
	int list;                               /* list field being read, -1: none */
	size_t entries;
	char label[SHOW_SIZE];
};

/* The field a line belongs to, for lexical errors. */
static const char *line_label(struct parser *p, const char *s, size_t n)
{
	const char *colon;
	size_t k;
	int f;

	if (n && s[0] == ' ')
		return p->list >= 0 ? field_defs[p->list].name : "continuation line";
	k = n < 64 ? n : 64;
	colon = memchr(s, ':', k);
	if (!colon)
		return NULL;
	f = lookup_field(s, (size_t)(colon - s));
	if (f >= 0)
		return field_defs[f].name;
	return show(p->label, s, (size_t)(colon - s));
}

static int check_line_bytes(struct parser *p, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if (u[i] < 0x80) {
			if (u[i] == '\r')
				goto cr;
			if (u[i] < 0x20 || u[i] == 0x7f)
				goto control;
			i++;
			continue;
		}
		k = text_utf8_seq_len(u + i, n - i);
		if (k == 0) {
			p->c.field = line_label(p, s, n);
			return fail(&p->c, -EBADMSG, R_NOT_UTF8,
			            "invalid UTF-8 (byte 0x%02x) at column %zu",
			            (unsigned int)u[i], i + 1);
		}
		if (k == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0)
			goto control;
		i += k;
	}
	return 0;
cr:
	p->c.field = line_label(p, s, n);
	return fail(&p->c, -EBADMSG, R_CR, "carriage return at column %zu (lines end with LF only)",
	            i + 1);
control:
	p->c.field = line_label(p, s, n);
	return fail(&p->c, -EBADMSG, R_CONTROL, "control character 0x%02x at column %zu",
	            (unsigned int)u[i], i + 1);
}

static int parse_schemas(struct parser *p, const char *s, size_t n)
{
	struct manifest *m = p->m;
	const char *sp, *end = s + n;
	char **q;
	size_t k;
	int r;

	while (s <= end) {
		sp = memchr(s, ' ', (size_t)(end - s));
		k = sp ? (size_t)(sp - s) : (size_t)(end - s);
		if (m->n_schemas >= MANIFEST_MAX_SCHEMAS)
			return fail(&p->c, -E2BIG, R_ENTRY_LIMIT, "more than %u schemas",
			            MANIFEST_MAX_SCHEMAS);
		r = check_ident(&p->c, "schema", s, k);
		if (r < 0)
			return r;
		q = grow(m->schemas, &m->cap_schemas, m->n_schemas, sizeof(*q),
		         MANIFEST_MAX_SCHEMAS);
		if (!q)
			return fail_nomem(&p->c);
		m->schemas = q;
		q[m->n_schemas] = text_memdup(s, k);
		if (!q[m->n_schemas])
			return fail_nomem(&p->c);
		m->n_schemas++;
		if (!sp)
			break;
		s = sp + 1;
	}
	return check_string_list(&p->c, m->schemas, m->n_schemas, MANIFEST_MAX_SCHEMAS,
	                         p->line, 1);
}

static int set_string(struct parser *p, char **slot, const char *s, size_t n)
{
	char *copy = text_memdup(s, n);

	if (!copy)
		return fail_nomem(&p->c);
	free(*slot);
	*slot = copy;
	return 0;
}

static int parse_simple(struct parser *p, enum manifest_field f, const char *s, size_t n)
{
	struct manifest *m = p->m;
	uint64_t v;
	int r;

	switch (f) {
	case MANIFEST_F_SEQUENCE:
		return parse_num(&p->c, s, n, 1, INT64_MAX, &m->sequence);
	case MANIFEST_F_CREATED:
		return parse_time(&p->c, s, n, &m->created);
	case MANIFEST_F_VALID_UNTIL:
		r = parse_time(&p->c, s, n, &m->valid_until);
		if (r == 0 && p->seen[MANIFEST_F_CREATED] && m->valid_until <= m->created)
			r = fail(&p->c, -EBADMSG, R_VALUE,
			         "not later than Created (line %lu)", p->seen[MANIFEST_F_CREATED]);
		return r;
	case MANIFEST_F_SERVER_VERSION:
		r = parse_num(&p->c, s, n, MANIFEST_SERVER_VERSION_MIN,
		              MANIFEST_SERVER_VERSION_MAX, &v);
		if (r == 0)
			m->source_server_version = (uint32_t)v;
		return r;
	case MANIFEST_F_CHUNK_SIZE:
		return parse_num(&p->c, s, n, CHUNK_SIZE_MIN, CHUNK_SIZE_MAX, &m->chunk_size);
	case MANIFEST_F_SCHEMAS:
		return parse_schemas(p, s, n);
	default:
		break;
	}
	r = check_text_field(&p->c, f, s, n);
	if (r < 0 || f == MANIFEST_F_FORMAT)
		return r;
	if (f == MANIFEST_F_BUNDLE_ID) {
		memcpy(m->bundle_id, s, n);
		m->bundle_id[n] = '\0';
		return 0;
	}
	return set_string(p, text_slot(m, f), s, n);
}

static int parse_table(struct parser *p, const char *s, size_t n)
{
	struct manifest *m = p->m;
	const char *sp, *dot;
	struct manifest_table *q, t;
	char vb[SHOW_SIZE];
	size_t k;
	int r;

	sp = memchr(s, ' ', n);
	dot = sp ? memchr(s, '.', (size_t)(sp - s)) : NULL;
	if (!dot)
		return fail(&p->c, -EBADMSG, R_VALUE,
		            "\"%s\" is not SCHEMA.TABLE ROWS", show(vb, s, n));
	k = (size_t)(sp - s);
	r = check_ident(&p->c, "schema", s, (size_t)(dot - s));
	if (r == 0)
		r = check_ident(&p->c, "table", dot + 1, (size_t)(sp - dot - 1));
	if (r == 0)
		r = parse_num(&p->c, sp + 1, n - k - 1, 0, INT64_MAX, &t.rows);
	if (r < 0)
		return r;
	q = grow(m->tables, &m->cap_tables, m->n_tables, sizeof(*q), MANIFEST_MAX_TABLES);
	if (!q)
		return fail_nomem(&p->c);
	m->tables = q;
	t.schema = text_memdup(s, (size_t)(dot - s));
	t.table = text_memdup(dot + 1, (size_t)(sp - dot - 1));
	if (!t.schema || !t.table) {
		free(t.schema);
		free(t.table);
		return fail_nomem(&p->c);
	}
	q[m->n_tables++] = t;
	return 0;
}

static int parse_file(struct parser *p, const char *s, size_t n)
{
	struct manifest *m = p->m;
	struct manifest_file *q, f;
	const char *sp1, *sp2, *path;
	char vb[SHOW_SIZE];
	size_t pn;
	int r;

	sp1 = memchr(s, ' ', n);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - s)) : NULL;
	if (!sp2)
		return fail(&p->c, -EBADMSG, R_VALUE, "\"%s\" is not HEX SIZE PATH",
		            show(vb, s, n));
	if (text_hex_decode(f.sha256, sizeof(f.sha256), s, (size_t)(sp1 - s), 0) < 0)
		return fail(&p->c, -EBADMSG, R_VALUE,
		            "\"%s\" is not a SHA-256 (64 lower-case hex digits)",
		            show(vb, s, (size_t)(sp1 - s)));
	r = parse_num(&p->c, sp1 + 1, (size_t)(sp2 - sp1 - 1), 0, MANIFEST_MAX_FILE_SIZE,
	              &f.size);
	if (r < 0)
		return r;
	path = sp2 + 1;
	pn = n - (size_t)(path - s);
	r = file_check(&p->c, path, pn, f.size);
	if (r < 0)
		return r;
	q = grow(m->files, &m->cap_files, m->n_files, sizeof(*q), MANIFEST_MAX_FILES);
	if (!q)
		return fail_nomem(&p->c);
	m->files = q;
	f.path = text_memdup(path, pn);
	if (!f.path)
		return fail_nomem(&p->c);
	q[m->n_files++] = f;
	return 0;
}

static int list_entry(struct parser *p, const char *s, size_t n)
{
	static const size_t max[MANIFEST_F_COUNT] = {
		[MANIFEST_F_SIGNERS] = MANIFEST_MAX_SIGNERS,
		[MANIFEST_F_TABLES] = MANIFEST_MAX_TABLES,
		[MANIFEST_F_SHA256] = MANIFEST_MAX_FILES,
	};
	struct manifest *m = p->m;
	char **q;
	int r;

	p->c.field = NULL;
	if (p->list < 0)
		return fail(&p->c, -EBADMSG, R_SYNTAX,
		            "continuation line outside a list field%s%s",
		            p->last >= 0 ? " (after " : "",
		            p->last >= 0 ? field_defs[p->last].name : "");
	p->c.field = field_defs[p->list].name;
	if (n == 0 || s[0] == ' ' || s[n - 1] == ' ')
		return fail(&p->c, -EBADMSG, R_SYNTAX,
		            "a list entry is one space, then text without leading or trailing space");
	if (p->entries >= max[p->list])
		return fail(&p->c, -E2BIG, R_ENTRY_LIMIT, "more than %zu entries",
		            max[p->list]);
	switch (p->list) {
	case MANIFEST_F_SIGNERS:
		r = check_fingerprint(&p->c, s, n);
		if (r < 0)
			return r;
		q = grow(m->signers, &m->cap_signers, m->n_signers, sizeof(*q),
		         MANIFEST_MAX_SIGNERS);
		if (!q)
			return fail_nomem(&p->c);
		m->signers = q;
		q[m->n_signers] = text_memdup(s, n);
		if (!q[m->n_signers])
			return fail_nomem(&p->c);
		m->n_signers++;
		break;
	case MANIFEST_F_TABLES:
		r = parse_table(p, s, n);
		break;
	default:
		r = parse_file(p, s, n);
		break;
	}
	if (r == 0)
		p->entries++;
	return r;
}

static int close_list(struct parser *p)
{
	int f = p->list;

	p->list = -1;
	p->c.line = p->seen[f];
	p->c.field = NULL;
	if (p->entries == 0)
		return fail(&p->c, -EBADMSG, R_SYNTAX, "list field %s has no entries",
		            field_defs[f].name);
	p->c.field = field_defs[f].name;
	switch (f) {
	case MANIFEST_F_SIGNERS:
		return check_string_list(&p->c, p->m->signers, p->m->n_signers,
		                         MANIFEST_MAX_SIGNERS, p->seen[f], 0);
	case MANIFEST_F_TABLES:
		return check_tables(&p->c, p->m, p->seen[f]);
	default:
		return check_files(&p->c, p->m, p->seen[f]);
	}
}

static int parse_line(struct parser *p, const char *s, size_t n)
{
	static const char first[] = "Format: ";
	char vb[SHOW_SIZE];
	const char *colon, *v;
	size_t k, vn, i;
	int f, r;

	p->c.field = NULL;
	if (p->line == 1 && (n < sizeof(first) - 1 || memcmp(s, first, sizeof(first) - 1) != 0))
		return fail(&p->c, -EBADMSG, R_FORMAT,
		            "the first line must be the Format field (\"%s\")",
		            show(vb, s, n));
	if (n && s[0] == ' ')
		return list_entry(p, s + 1, n - 1);
	if (p->list >= 0) {
		r = close_list(p);
		if (r < 0)
			return r;
		p->c.line = p->line;
		p->c.field = NULL;
	}
	if (n == 0)
		return fail(&p->c, -EBADMSG, R_SYNTAX, "blank line");
	if (s[0] == '#')
		return fail(&p->c, -EBADMSG, R_SYNTAX, "comment line");
	colon = memchr(s, ':', n);
	k = colon ? (size_t)(colon - s) : 0;
	for (i = 0; i < k && (is_alnum(s[i]) || s[i] == '-'); i++)
		;
	if (!colon || k == 0 || i != k)
		return fail(&p->c, -EBADMSG, R_SYNTAX, "not a \"Field: value\" line: \"%s\"",
		            show(vb, s, n));
	f = lookup_field(s, k);
	if (f < 0)
		return fail(&p->c, -EBADMSG, R_FIELD_UNKNOWN, "unknown field %s",
		            show(vb, s, k));
	if (p->seen[f])
		return fail(&p->c, -EBADMSG, R_FIELD_DUPLICATE,
		            "duplicate field %s (first on line %lu)", field_defs[f].name,
		            p->seen[f]);
	if (f < p->last)
		return fail(&p->c, -EBADMSG, R_FIELD_ORDER,
		            "field %s out of order: it comes before %s", field_defs[f].name,
		            field_defs[p->last].name);
	p->seen[f] = p->line;
	p->last = f;
	v = colon + 1;
	vn = n - k - 1;
	if (field_defs[f].list) {
		if (vn != 0)
			return fail(&p->c, -EBADMSG, R_SYNTAX,
			            "list field %s must be \"%s:\" alone, entries on the next lines",
			            field_defs[f].name, field_defs[f].name);
		p->list = f;
		p->entries = 0;
		return 0;
	}
	if (vn == 0)
		return fail(&p->c, -EBADMSG, R_SYNTAX,
		            "field %s needs its value on the same line", field_defs[f].name);
	if (v[0] != ' ' || vn == 1)
		return fail(&p->c, -EBADMSG, R_SYNTAX,
		            "field %s: expected one space and a value after the colon",
		            field_defs[f].name);
	v++;
	vn--;
	if (v[0] == ' ' || v[vn - 1] == ' ')
		return fail(&p->c, -EBADMSG, R_SYNTAX,
		            "field %s: leading or trailing space in the value", field_defs[f].name);
	p->c.field = field_defs[f].name;
	return parse_simple(p, (enum manifest_field)f, v, vn);
}

static unsigned long line_of(const char *buf, size_t pos)
{
	unsigned long line = 1;
	size_t i;

	for (i = 0; i < pos; i++)
		if (buf[i] == '\n')
			line++;
	return line;
}

/* Last line of defence: what was accepted must be the canonical form. */
static int check_canonical(struct parser *p, const char *buf, size_t len)
{
	struct alerr sub;
	char *text = NULL;
	size_t tlen = 0, i;
	int r;

	alerr_clear(&sub);
	r = manifest_emit(p->m, &text, &tlen, &sub);
	p->c.line = 0;
	p->c.field = NULL;
	if (r < 0) {
		if (r == -ENOMEM)
			return fail_nomem(&p->c);
		return fail(&p->c, -EBADMSG, R_NOT_CANONICAL,
		            "MANIFEST does not re-emit: %s", sub.message);
	}
	for (i = 0; i < len && i < tlen && buf[i] == text[i]; i++)
		;
	free(text);
	if (i == len && i == tlen)
		return 0;
	p->c.line = line_of(buf, i < len ? i : len - 1);
	return fail(&p->c, -EBADMSG, R_NOT_CANONICAL, "not in canonical form");
}

int manifest_parse(const char *buf, size_t len, struct manifest **out, struct alerr *e)
{
	struct parser p;
	const char *s, *lf;
	size_t pos = 0, rest, n;
	int f, g, r;

	*out = NULL;
	memset(&p, 0, sizeof(p));
	p.c.e = e;
	p.c.cls = ALERR_REJECT;
	p.last = -1;
	p.list = -1;
	if (len > MANIFEST_MAX_BYTES)
		return fail(&p.c, -E2BIG, R_TOO_LARGE, "MANIFEST has %zu bytes, more than %u",
		            len, MANIFEST_MAX_BYTES);
	if (len == 0)
		return fail(&p.c, -EBADMSG, R_EMPTY, "MANIFEST is empty");
	p.m = calloc(1, sizeof(*p.m));
	if (!p.m)
		return fail_nomem(&p.c);

	while (pos < len) {
		s = buf + pos;
		rest = len - pos;
		p.line++;
		p.c.line = p.line;
		p.c.field = NULL;
		lf = memchr(s, '\n', rest < MANIFEST_MAX_LINE + 1u ? rest : MANIFEST_MAX_LINE + 1u);
		if (!lf && rest > MANIFEST_MAX_LINE) {
			p.c.field = line_label(&p, s, rest);
			r = fail(&p.c, -E2BIG, R_LINE_TOO_LONG, "line longer than %u bytes",
			         MANIFEST_MAX_LINE);
			goto fail;
		}
		n = lf ? (size_t)(lf - s) : rest;
		r = check_line_bytes(&p, s, n);
		if (r < 0)
			goto fail;
		if (!lf) {
			p.c.field = line_label(&p, s, n);
			r = fail(&p.c, -EBADMSG, R_SYNTAX, "the last line does not end with a newline");
			goto fail;
		}
		r = parse_line(&p, s, n);
		if (r < 0)
			goto fail;
		pos += n + 1;
	}
	p.line++;
	p.c.line = p.line;
	if (p.list >= 0) {
		r = close_list(&p);
		if (r < 0)
			goto fail;
	}
	for (f = 0; f < MANIFEST_F_COUNT; f++) {
		if (p.seen[f] || !field_defs[f].required)
			continue;
		/* Name the line where the field belongs: the next one present. */
		for (g = f + 1; g < MANIFEST_F_COUNT && !p.seen[g]; g++)
			;
		p.c.line = g < MANIFEST_F_COUNT ? p.seen[g] : p.line;
		p.c.field = NULL;
		r = fail(&p.c, -EBADMSG, R_FIELD_MISSING, "required field %s missing%s%s",
		         field_defs[f].name, g < MANIFEST_F_COUNT ? " before " : " at the end",
		         g < MANIFEST_F_COUNT ? field_defs[g].name : "");
		goto fail;
	}
	r = check_canonical(&p, buf, len);
	if (r < 0)
		goto fail;
	*out = p.m;
	return 0;
fail:
	manifest_free(p.m);
	return r;
}
