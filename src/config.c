#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "conf.h"
#include "log.h"
#include "text.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

/* inih reads each line into a buffer of INI_MAX_LINE bytes that must hold
 * the line end and a NUL as well; a longer line would be split into two
 * silently. read_line() refuses such a line before inih sees it. */
_Static_assert(CONFIG_MAX_LINE + 3 <= INI_MAX_LINE, "a config line fits inih's buffer");

enum key_type {
	KT_PATH,        /* absolute path */
	KT_BOOL,
	KT_CONNINFO,    /* libpq conninfo or URI: opaque printable text */
	KT_IDENT,       /* PostgreSQL identifier */
	KT_CHANNEL,
	KT_FPR,         /* OpenPGP fingerprint */
	KT_DURATION,    /* seconds */
	KT_TEXT,        /* printable UTF-8 for the manifest */
	KT_SIZE,        /* bytes */
	KT_UINT,
};

#define KEY_REPEAT 0x1u

struct key_def {
	const char *section;
	const char *name;
	enum key_type type;
	unsigned int flags;
	size_t offset;          /* of the field in struct config */
	uint64_t min, max;      /* numeric types */
};

#define OFF(m) offsetof(struct config, m)

static const struct key_def keys[] = {
	{ "common", "custody-log", KT_PATH, 0, OFF(custody_log), 0, 0 },
	{ "common", "state-dir", KT_PATH, 0, OFF(state_dir), 0, 0 },
	{ "common", "syslog", KT_BOOL, 0, OFF(syslog), 0, 0 },

	{ "write", "source", KT_CONNINFO, 0, OFF(write.source), 0, 0 },
	{ "write", "schema", KT_IDENT, KEY_REPEAT, OFF(write.schemas), 0, 0 },
	{ "write", "channel", KT_CHANNEL, 0, OFF(write.channel), 0, 0 },
	{ "write", "signer", KT_FPR, KEY_REPEAT, OFF(write.signers), 0, 0 },
	{ "write", "gnupghome", KT_PATH, 0, OFF(write.gnupghome), 0, 0 },
	{ "write", "workdir", KT_PATH, 0, OFF(write.workdir), 0, 0 },
	{ "write", "valid-for", KT_DURATION, 0, OFF(write.valid_for), 1, CONFIG_MAX_DURATION },
	{ "write", "courier", KT_TEXT, 0, OFF(write.courier), 0, 0 },
	{ "write", "chunk-size", KT_SIZE, 0, OFF(write.chunk_size), CHUNK_SIZE_MIN, CHUNK_SIZE_MAX },
	{ "write", "jobs", KT_UINT, 0, OFF(write.jobs), 1, CONFIG_MAX_JOBS },

	{ "import", "target", KT_CONNINFO, 0, OFF(import.target), 0, 0 },
	{ "import", "channel", KT_CHANNEL, KEY_REPEAT, OFF(import.channels), 0, 0 },
	{ "import", "keyring", KT_PATH, 0, OFF(import.keyring), 0, 0 },
	{ "import", "trust", KT_FPR, KEY_REPEAT, OFF(import.trust), 0, 0 },
	{ "import", "threshold", KT_UINT, 0, OFF(import.threshold), 1, CONFIG_MAX_THRESHOLD },
	{ "import", "require-media-serial", KT_BOOL, 0, OFF(import.require_media_serial), 0, 0 },
	{ "import", "quarantine", KT_PATH, 0, OFF(import.quarantine), 0, 0 },
	{ "import", "max-bytes", KT_SIZE, 0, OFF(import.max_bytes), 1, UINT64_MAX },
	{ "import", "max-files", KT_UINT, 0, OFF(import.max_files), 1, CONFIG_MAX_FILES },
	{ "import", "max-path", KT_UINT, 0, OFF(import.max_path), 1, CONFIG_MAX_PATH },
	{ "import", "lock-timeout", KT_DURATION, 0, OFF(import.lock_timeout), 1, CONFIG_MAX_DURATION },
	{ "import", "retention", KT_DURATION, 0, OFF(import.retention), 1, CONFIG_MAX_DURATION },
	{ "import", "jobs", KT_UINT, 0, OFF(import.jobs), 1, CONFIG_MAX_JOBS },
};

#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))
_Static_assert(sizeof(keys) / sizeof(keys[0]) <= 32, "one bit per key in a uint32_t");
_Static_assert(CONFIG_MAX_JOBS <= UINT_MAX && CONFIG_MAX_FILES <= UINT_MAX &&
               CONFIG_MAX_PATH <= UINT_MAX && CONFIG_MAX_THRESHOLD <= UINT_MAX,
               "unsigned int fields hold their maximum");

static const char *const sections[] = { "common", "write", "import" };

enum storage { ST_STR, ST_LIST, ST_BOOL, ST_U64, ST_UINT };

/* A parsed value on its way into a struct config. */
struct value {
	char *s;
	uint64_t u;
	int b;
};

/* Why a value was refused: a reason code and the sentence's tail. */
struct verr {
	const char *reason;
	char why[192];
};

const char *config_default_path(void)
{
	return SYSCONFDIR "/airlock/airlock.conf";
}

static enum storage key_storage(const struct key_def *k)
{
	if (k->flags & KEY_REPEAT)
		return ST_LIST;
	switch (k->type) {
	case KT_BOOL:
		return ST_BOOL;
	case KT_DURATION:
	case KT_SIZE:
		return ST_U64;
	case KT_UINT:
		return ST_UINT;
	default:
		return ST_STR;
	}
}

static void *field(struct config *c, const struct key_def *k)
{
	return (char *)c + k->offset;
}

static uint32_t key_bit(const struct key_def *k)
{
	return UINT32_C(1) << (unsigned int)(k - keys);
}

static const struct key_def *find_key(const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < KEY_COUNT; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static int known_section(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strlen(sections[i]) == len && !memcmp(sections[i], name, len))
			return 1;
	return 0;
}

static void list_clear(struct config_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int bad(struct verr *ve, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct verr *ve, const char *fmt, ...)
{
	va_list ap;

	ve->reason = "config.bad_value";
	va_start(ap, fmt);
	vsnprintf(ve->why, sizeof(ve->why), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* text_parse_u64, but a run of more than 20 digits is out of range rather
 * than malformed. */
static int parse_number(const char *s, size_t n, uint64_t *out)
{
	size_t i;
	int r;

	r = text_parse_u64(s, n, UINT64_MAX, out);
	if (r == -EINVAL && n > 20 && s[0] != '0') {
		for (i = 0; i < n; i++)
			if (s[i] < '0' || s[i] > '9')
				return -EINVAL;
		return -ERANGE;
	}
	return r;
}

int config_parse_duration(const char *s, uint64_t *seconds)
{
	size_t len = strlen(s);
	uint64_t n, unit;
	int r;

	if (len < 2)
		return -EINVAL;
	switch (s[len - 1]) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7u * 86400u; break;
	default: return -EINVAL;
	}
	r = parse_number(s, len - 1, &n);
	if (r < 0)
		return r;
	if (n == 0 || n > CONFIG_MAX_DURATION / unit)
		return -ERANGE;
	*seconds = n * unit;
	return 0;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
	size_t len = strlen(s);
	unsigned int shift = 0;
	uint64_t n;
	int r;

	if (len == 0)
		return -EINVAL;
	switch (s[len - 1]) {
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	default:
		if (s[len - 1] < '0' || s[len - 1] > '9')
			return -EINVAL;
	}
	if (shift)
		len--;
	r = parse_number(s, len, &n);
	if (r < 0)
		return r;
	if (n > (UINT64_MAX >> shift))
		return -ERANGE;
	*bytes = n << shift;
	return 0;
}

int config_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static int is_ident_start(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static int is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
	       (ch >= 'A' && ch <= 'F');
}

static int check_ident(const char *s, size_t len, struct verr *ve)
{
	size_t i;

	if (len > NAME_MAX_IDENT)
		return bad(ve, "an identifier has at most %u bytes", NAME_MAX_IDENT);
	if (!is_ident_start(s[0]))
		return bad(ve, "an identifier starts with a letter or '_'");
	for (i = 1; i < len; i++)
		if (!is_ident_start(s[i]) && !(s[i] >= '0' && s[i] <= '9'))
			return bad(ve, "an identifier has only letters, digits and '_'");
	return 0;
}

static int check_channel(const char *s, size_t len, struct verr *ve)
{
	size_t i;

	if (len > CHANNEL_MAX)
		return bad(ve, "a channel name has at most %u bytes", CHANNEL_MAX);
	if (!is_lower_alnum(s[0]))
		return bad(ve, "a channel name starts with a-z or 0-9");
	for (i = 1; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return bad(ve, "a channel name has only a-z, 0-9, '.', '_' and '-'");
	return 0;
}

static int check_fpr(const char *s, size_t len, struct verr *ve)
{
	size_t i;

	if (len != 40 && len != 64)
		return bad(ve, "a fingerprint is 40 or 64 hex digits, not %zu", len);
	for (i = 0; i < len; i++)
		if (!is_hex(s[i]))
			return bad(ve, "a fingerprint is hex digits only");
	return 0;
}

static int check_range(const struct key_def *k, uint64_t u, struct verr *ve)
{
	if (u >= k->min && u <= k->max)
		return 0;
	return bad(ve, "must be between %llu and %llu%s", (unsigned long long)k->min,
	           (unsigned long long)k->max,
	           k->type == KT_DURATION ? " seconds" : k->type == KT_SIZE ? " bytes" : "");
}

/* Validate s for key k into v (v->s is malloc'd for string types). */
static int parse_value(const struct key_def *k, const char *s, struct value *v,
                       struct verr *ve)
{
	size_t len = strlen(s), i;
	int r;

	memset(v, 0, sizeof(*v));
	if (len == 0)
		return bad(ve, "empty value");
	switch (k->type) {
	case KT_PATH:
		if (s[0] != '/')
			return bad(ve, "not an absolute path");
		if (len >= PATH_MAX)
			return bad(ve, "path longer than %d bytes", PATH_MAX - 1);
		if (!text_is_printable_utf8(s, len))
			return bad(ve, "control character or invalid UTF-8 in a path");
		break;
	case KT_CONNINFO:
		if (!text_is_printable_utf8(s, len))
			return bad(ve, "control character or invalid UTF-8");
		break;
	case KT_TEXT:
		if (len > MANIFEST_MAX_TEXT)
			return bad(ve, "longer than %u bytes", MANIFEST_MAX_TEXT);
		if (!text_is_printable_utf8(s, len))
			return bad(ve, "control character or invalid UTF-8");
		break;
	case KT_IDENT:
		r = check_ident(s, len, ve);
		if (r < 0)
			return r;
		break;
	case KT_CHANNEL:
		r = check_channel(s, len, ve);
		if (r < 0)
			return r;
		break;
	case KT_FPR:
		r = check_fpr(s, len, ve);
		if (r < 0)
			return r;
		break;
	case KT_BOOL:
		if (config_parse_bool(s, &v->b) < 0)
			return bad(ve, "expected yes or no (true/false, on/off, 1/0)");
		return 0;
	case KT_DURATION:
		r = config_parse_duration(s, &v->u);
		if (r == -EINVAL)
			return bad(ve, "expected a number and a unit s, m, h, d or w (e.g. 30s, 14d)");
		if (r < 0)
			return bad(ve, "must be more than 0 and at most %llu seconds",
			           (unsigned long long)CONFIG_MAX_DURATION);
		return check_range(k, v->u, ve);
	case KT_SIZE:
		r = config_parse_size(s, &v->u);
		if (r == -EINVAL)
			return bad(ve, "expected a number of bytes with an optional K, M, G or T");
		if (r < 0)
			return bad(ve, "too large");
		return check_range(k, v->u, ve);
	case KT_UINT:
		r = parse_number(s, len, &v->u);
		if (r == -EINVAL)
			return bad(ve, "expected a decimal number");
		if (r < 0)
			v->u = UINT64_MAX;
		return check_range(k, v->u, ve);
	}
	v->s = strdup(s);
	if (!v->s)
		return -ENOMEM;
	if (k->type == KT_FPR)
		for (i = 0; i < len; i++)
			if (v->s[i] >= 'a' && v->s[i] <= 'f')
				v->s[i] = (char)(v->s[i] - 'a' + 'A');
	return 0;
}

/* Append *s to l (emptied first when replace), taking it over. */
static int list_add(struct config_list *l, char **s, int replace, struct verr *ve)
{
	size_t n = replace ? 0 : l->n, i;
	char **nv;

	for (i = 0; i < n; i++)
		if (!strcmp(l->v[i], *s))
			return bad(ve, "duplicate value");
	if (n >= CONFIG_MAX_LIST) {
		bad(ve, "more than %u values", CONFIG_MAX_LIST);
		ve->reason = "config.list_too_long";
		return -E2BIG;
	}
	if (replace)
		list_clear(l);
	nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	l->v[l->n++] = *s;
	*s = NULL;
	return 0;
}

/* Store v into c's field for k, taking over v->s. */
static int store(struct config *c, const struct key_def *k, struct value *v,
                 int replace, struct verr *ve)
{
	void *f = field(c, k);

	switch (key_storage(k)) {
	case ST_STR:
		free(*(char **)f);
		*(char **)f = v->s;
		v->s = NULL;
		return 0;
	case ST_LIST:
		return list_add(f, &v->s, replace, ve);
	case ST_BOOL:
		*(int *)f = v->b;
		return 0;
	case ST_U64:
		*(uint64_t *)f = v->u;
		return 0;
	case ST_UINT:
		*(unsigned int *)f = (unsigned int)v->u;
		return 0;
	}
	return -EINVAL;
}

/* Move the keys in mask from src to dst. */
static void merge(struct config *dst, struct config *src, uint32_t mask)
{
	size_t i;

	for (i = 0; i < KEY_COUNT; i++) {
		const struct key_def *k = &keys[i];
		void *d = field(dst, k), *s = field(src, k);

		if (!(mask & key_bit(k)))
			continue;
		switch (key_storage(k)) {
		case ST_STR:
			free(*(char **)d);
			*(char **)d = *(char **)s;
			*(char **)s = NULL;
			break;
		case ST_LIST:
			list_clear(d);
			*(struct config_list *)d = *(struct config_list *)s;
			memset(s, 0, sizeof(struct config_list));
			break;
		case ST_BOOL:
			*(int *)d = *(int *)s;
			break;
		case ST_U64:
			*(uint64_t *)d = *(uint64_t *)s;
			break;
		case ST_UINT:
			*(unsigned int *)d = *(unsigned int *)s;
			break;
		}
	}
}

static int set_default(char **f, const char *s)
{
	*f = strdup(s);
	return *f ? 0 : -ENOMEM;
}

int config_init(struct config *c, struct alerr *e)
{
	int r = 0;

	memset(c, 0, sizeof(*c));
	r |= set_default(&c->custody_log, LOCALSTATEDIR "/log/airlock/custody.log");
	r |= set_default(&c->state_dir, LOCALSTATEDIR "/lib/airlock");
	c->syslog = 1;

	r |= set_default(&c->write.source, "dbname=feeds");
	r |= set_default(&c->write.workdir, "/var/tmp");
	c->write.valid_for = CONFIG_DEFAULT_VALID_FOR;
	c->write.chunk_size = CHUNK_SIZE_DEFAULT;
	c->write.jobs = CONFIG_DEFAULT_JOBS;

	r |= set_default(&c->import.target, "dbname=feeds");
	r |= set_default(&c->import.keyring, SYSCONFDIR "/airlock/keyring");
	c->import.threshold = CONFIG_DEFAULT_THRESHOLD;
	c->import.require_media_serial = 0;
	r |= set_default(&c->import.quarantine, LOCALSTATEDIR "/lib/airlock/quarantine");
	c->import.max_bytes = CONFIG_DEFAULT_MAX_BYTES;
	c->import.max_files = CONFIG_DEFAULT_MAX_FILES;
	c->import.max_path = CONFIG_DEFAULT_MAX_PATH;
	c->import.lock_timeout = CONFIG_DEFAULT_LOCK_TIMEOUT;
	c->import.retention = CONFIG_DEFAULT_RETENTION;
	c->import.jobs = CONFIG_DEFAULT_JOBS;
	if (r)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "config.memory",
		                 "configuration defaults: out of memory");
	return 0;
}

void config_free(struct config *c)
{
	size_t i;

	for (i = 0; i < KEY_COUNT; i++) {
		void *f = field(c, &keys[i]);

		if (key_storage(&keys[i]) == ST_STR)
			free(*(char **)f);
		else if (key_storage(&keys[i]) == ST_LIST)
			list_clear(f);
	}
	free(c->path);
	memset(c, 0, sizeof(*c));
}

/* ---- loading a file ---------------------------------------------------- */

enum line_kind { LINE_OTHER, LINE_KEY };

struct load_ctx {
	const char *path;
	const char *buf;
	size_t len, pos;
	unsigned int lineno;
	const char *raw;        /* the current line, without its end */
	size_t raw_len;
	enum line_kind kind;
	int handled;            /* inih called on_pair for the current line */
	struct config tmp;      /* what the file sets */
	uint32_t seen;          /* keys the file set */
	unsigned int first_line[KEY_COUNT];
	struct alerr err;
};

static int fail_line(struct load_ctx *x, unsigned int line, const char *reason,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail_line(struct load_ctx *x, unsigned int line, const char *reason,
                     const char *fmt, ...)
{
	char why[ALERR_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return alerr_set(&x->err, ALERR_CONFIG, -EINVAL, reason, "%s:%u: %s",
	                 x->path, line, why);
}

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Offset of the first byte that is not printable UTF-8 (tabs allowed),
 * or n; *invalid tells invalid UTF-8 from a control character. */
static size_t first_unprintable(const char *s, size_t n, int *invalid)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, len;

	while (i < n) {
		len = text_utf8_seq_len(u + i, n - i);
		*invalid = len == 0;
		if (len == 0)
			return i;
		if (!text_is_printable_utf8(s + i, len) && u[i] != '\t')
			return i;
		i += len;
	}
	return n;
}

static int check_section_line(struct load_ctx *x, const char *line, size_t n)
{
	const char *close = memchr(line, ']', n);
	char name[80];
	size_t i;

	if (!close)
		return fail_line(x, x->lineno, "config.syntax",
		                 "section header without ']'");
	for (i = (size_t)(close - line) + 1; i < n; i++)
		if (!is_blank(line[i]))
			return fail_line(x, x->lineno, "config.syntax",
			                 "text after the section header");
	if (known_section(line + 1, (size_t)(close - line) - 1))
		return 0;
	log_sanitize(name, sizeof(name), line + 1, (size_t)(close - line) - 1);
	return fail_line(x, x->lineno, "config.unknown_section",
	                 "unknown section [%s] (known: [common], [write], [import])", name);
}

/* Checks that do not depend on inih, and the ones that keep inih from
 * reading what the file does not say: a long line split in two, a
 * continuation line appended to the previous key. */
static int check_line(struct load_ctx *x, const char *line, size_t n, int num)
{
	size_t i = 0, bad_at;
	const char *nul;
	int invalid = 0;

	if (n > CONFIG_MAX_LINE || num < 0 || n + 3 > (size_t)num)
		return fail_line(x, x->lineno, "config.line_too_long",
		                 "line too long (%zu bytes, at most %u)", n, CONFIG_MAX_LINE);
	nul = memchr(line, '\0', n);
	if (nul)
		return fail_line(x, x->lineno, "config.syntax", "NUL byte at column %zu",
		                 (size_t)(nul - line) + 1);
	bad_at = first_unprintable(line, n, &invalid);
	if (bad_at < n && invalid)
		return fail_line(x, x->lineno, "config.syntax",
		                 "invalid UTF-8 at column %zu", bad_at + 1);
	if (bad_at < n)
		return fail_line(x, x->lineno, "config.syntax",
		                 "control character 0x%02x at column %zu",
		                 (unsigned int)(unsigned char)line[bad_at], bad_at + 1);
	while (i < n && is_blank(line[i]))
		i++;
	if (i == n || line[i] == ';' || line[i] == '#')
		return 0;
	if (i > 0)
		return fail_line(x, x->lineno, "config.syntax",
		                 "indented line (continuation lines are not supported)");
	if (line[0] == '[')
		return check_section_line(x, line, n);
	x->kind = LINE_KEY;
	return 0;
}

/* A key line inih passed over without calling on_pair: its syntax error. */
static void check_unhandled(struct load_ctx *x)
{
	if (x->kind == LINE_KEY && !x->handled)
		fail_line(x, x->lineno, "config.syntax", "expected 'key = value'");
	x->kind = LINE_OTHER;
}

/* inih's reader: one line of the buffer per call, checked first. */
static char *read_line(char *str, int num, void *stream)
{
	struct load_ctx *x = stream;
	const char *line, *nl;
	size_t n, avail;

	check_unhandled(x);
	if (alerr_failed(&x->err) || x->pos >= x->len)
		return NULL;
	line = x->buf + x->pos;
	avail = x->len - x->pos;
	nl = memchr(line, '\n', avail);
	n = nl ? (size_t)(nl - line) : avail;
	x->pos += nl ? n + 1 : n;
	x->lineno++;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	x->raw = line;
	x->raw_len = n;
	x->handled = 0;
	if (check_line(x, line, n, num) < 0)
		return NULL;
	memcpy(str, line, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

/* The raw line must say exactly "name = value": no ':' separator, no
 * inline comment inih would have cut off. */
static int check_raw(struct load_ctx *x, const char *name, const char *value)
{
	const char *raw = x->raw;
	size_t n = x->raw_len, nlen = strlen(name), vlen = strlen(value), i, end;
	char shown[64];

	if (nlen > n || memcmp(raw, name, nlen) != 0)
		return fail_line(x, x->lineno, "config.syntax", "malformed key");
	i = nlen;
	while (i < n && is_blank(raw[i]))
		i++;
	if (i == n || raw[i] != '=') {
		log_sanitize(shown, sizeof(shown), name, nlen);
		return fail_line(x, x->lineno, "config.syntax",
		                 "expected '=' after '%s'", shown);
	}
	i++;
	while (i < n && is_blank(raw[i]))
		i++;
	end = n;
	while (end > i && is_blank(raw[end - 1]))
		end--;
	if (end - i == vlen && !memcmp(raw + i, value, vlen))
		return 0;
	return fail_line(x, x->lineno, "config.syntax",
	                 "inline comments are not supported (a ';' after a space)");
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *x = user;
	const struct key_def *k;
	char shown[80], sec[64];
	struct value v;
	struct verr ve = { "config.bad_value", "" };
	uint32_t bit;
	int r;

	x->handled = 1;
	if (alerr_failed(&x->err))
		return 0;
	if (!name)      /* a build that reports section headers */
		return 1;
	if (x->kind != LINE_KEY || !value) {
		fail_line(x, x->lineno, "config.syntax", "expected 'key = value'");
		return 0;
	}
	if (check_raw(x, name, value) < 0)
		return 0;
	log_sanitize(shown, sizeof(shown), name, strlen(name));
	if (!*section) {
		fail_line(x, x->lineno, "config.syntax",
		          "key '%s' outside any section", shown);
		return 0;
	}
	log_sanitize(sec, sizeof(sec), section, strlen(section));
	k = find_key(section, name);
	if (!k) {
		if (!known_section(section, strlen(section)))
			fail_line(x, x->lineno, "config.unknown_section",
			          "unknown section [%s]", sec);
		else
			fail_line(x, x->lineno, "config.unknown_key",
			          "unknown key '%s' in [%s]", shown, sec);
		return 0;
	}
	bit = key_bit(k);
	if (!(k->flags & KEY_REPEAT) && (x->seen & bit)) {
		fail_line(x, x->lineno, "config.duplicate_key",
		          "duplicate key '%s' in [%s] (first on line %u)", shown, sec,
		          x->first_line[k - keys]);
		return 0;
	}
	r = parse_value(k, value, &v, &ve);
	if (r == 0)
		r = store(&x->tmp, k, &v, 0, &ve);
	free(v.s);
	if (r == -ENOMEM) {
		alerr_set(&x->err, ALERR_OSERR, r, "config.memory", "%s:%u: out of memory",
		          x->path, x->lineno);
		return 0;
	}
	if (r < 0) {
		char val[80];

		log_sanitize(val, sizeof(val), value, strlen(value));
		fail_line(x, x->lineno, ve.reason, "[%s] %s = %s: %s", sec, shown, val, ve.why);
		return 0;
	}
	if (!(x->seen & bit))
		x->first_line[k - keys] = x->lineno;
	x->seen |= bit;
	return 1;
}

/* Open and read a config file whole, refusing one that is not safe to
 * trust. Returns 1 with *buf, 0 for a missing file when missing_ok. */
static int read_config_file(const char *path, int missing_ok, char **buf, size_t *len,
                            struct alerr *e)
{
	struct stat st;
	size_t total = 0;
	char *b = NULL;
	int fd, r;

	*buf = NULL;
	*len = 0;
	/* O_NONBLOCK: opening a FIFO must not hang; it is refused below. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT && missing_ok)
			return 0;
		if (r == -ENOENT)
			return alerr_set(e, ALERR_CONFIG, r, "config.missing_file",
			                 "%s: no such file", path);
		if (r == -ELOOP)
			return alerr_set(e, ALERR_CONFIG, r, "config.unsafe_file",
			                 "%s: is a symbolic link, refused", path);
		return alerr_set(e, ALERR_CONFIG, r, "config.unreadable",
		                 "%s: cannot open: %s", path, strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		alerr_set(e, ALERR_CONFIG, r, "config.unreadable", "%s: cannot stat: %s",
		          path, strerror(-r));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = alerr_set(e, ALERR_CONFIG, -EPERM, "config.unsafe_file",
		              "%s: not a regular file, refused", path);
		goto fail;
	}
	/* The file decides which keys are trusted: only its owner may write. */
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		r = alerr_set(e, ALERR_CONFIG, -EPERM, "config.unsafe_file",
		              "%s: writable by group or others (mode %04o), refused",
		              path, (unsigned int)(st.st_mode & 07777));
		goto fail;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		r = alerr_set(e, ALERR_CONFIG, -EPERM, "config.unsafe_file",
		              "%s: owned by uid %u, neither root nor uid %u, refused",
		              path, (unsigned int)st.st_uid, (unsigned int)geteuid());
		goto fail;
	}
	if (st.st_size > (off_t)CONFIG_MAX_BYTES)
		goto too_large;
	b = malloc(CONFIG_MAX_BYTES + 1);
	if (!b) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "config.memory",
		              "%s: out of memory", path);
		goto fail;
	}
	/* Read to EOF, not to st_size: the file may have grown since. */
	while (total <= CONFIG_MAX_BYTES) {
		ssize_t n = read(fd, b + total, CONFIG_MAX_BYTES + 1 - total);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			alerr_set(e, ALERR_CONFIG, r, "config.unreadable",
			          "%s: read failed: %s", path, strerror(-r));
			goto fail;
		}
		if (n == 0)
			break;
		total += (size_t)n;
	}
	if (total > CONFIG_MAX_BYTES)
		goto too_large;
	close(fd);
	*buf = b;
	*len = total;
	return 1;
too_large:
	r = alerr_set(e, ALERR_CONFIG, -EFBIG, "config.too_large",
	              "%s: larger than %u bytes, refused", path, CONFIG_MAX_BYTES);
fail:
	free(b);
	close(fd);
	return r;
}

int config_load(struct config *c, const char *path, int missing_ok, struct alerr *e)
{
	struct load_ctx *x;
	char *buf = NULL, *copy = NULL;
	size_t len;
	int r;

	r = read_config_file(path, missing_ok, &buf, &len, e);
	if (r <= 0)
		return r;
	x = calloc(1, sizeof(*x));
	if (!x) {
		free(buf);
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "config.memory",
		                 "%s: out of memory", path);
	}
	x->path = path;
	x->buf = buf;
	x->len = len;
	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
		x->pos = 3;
	r = ini_parse_stream(read_line, x, on_pair, x);
	check_unhandled(x);
	if (!alerr_failed(&x->err) && r == -2)
		alerr_set(&x->err, ALERR_OSERR, -ENOMEM, "config.memory",
		          "%s: out of memory", path);
	else if (!alerr_failed(&x->err) && r != 0)
		fail_line(x, r > 0 ? (unsigned int)r : x->lineno, "config.syntax",
		          "syntax error");
	if (alerr_failed(&x->err)) {
		r = alerr_set(e, x->err.cls, x->err.errnum, x->err.reason, "%s",
		              x->err.message);
		goto out;
	}
	copy = strdup(path);
	if (!copy) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "config.memory",
		              "%s: out of memory", path);
		goto out;
	}
	merge(c, &x->tmp, x->seen);
	free(c->path);
	c->path = copy;
	r = 0;
out:
	config_free(&x->tmp);
	free(x);
	free(buf);
	return r;
}

int config_set(struct config *c, const char *section, const char *key,
               const char *value, const char *origin, struct alerr *e)
{
	const struct key_def *k = find_key(section, key);
	char shown[80];
	struct value v;
	struct verr ve = { "config.bad_value", "" };
	uint32_t bit;
	int r;

	if (!origin)
		origin = key;
	if (!k)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "config.unknown_key",
		                 "%s: no key '%s' in [%s]", origin, key, section);
	bit = key_bit(k);
	if (!(k->flags & KEY_REPEAT) && (c->cmdline_seen & bit))
		return alerr_set(e, ALERR_USAGE, -EINVAL, "config.duplicate_key",
		                 "%s: given more than once", origin);
	r = parse_value(k, value, &v, &ve);
	if (r == 0)
		r = store(c, k, &v, !(c->cmdline_seen & bit), &ve);
	free(v.s);
	if (r == -ENOMEM)
		return alerr_set(e, ALERR_OSERR, r, "config.memory", "%s: out of memory", origin);
	if (r < 0) {
		log_sanitize(shown, sizeof(shown), value, strlen(value));
		return alerr_set(e, ALERR_USAGE, r, ve.reason, "%s %s: %s", origin, shown, ve.why);
	}
	c->cmdline_seen |= bit;
	return 0;
}
