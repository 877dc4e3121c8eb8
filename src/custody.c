#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "bounds.h"
#include "custody.h"
#include "digest.h"
#include "log.h"
#include "manifest.h"
#include "text.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define HASH_HEAD ",\"hash\":\""
/* The last member, removed to get the hashed body: ,"hash":"<64 hex>"} */
#define HASH_TAIL_LEN (sizeof(HASH_HEAD) - 1 + CUSTODY_HASH_HEX_LEN + 2)
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
/* root, a member object, the signers array */
#define JSON_DEPTH 4
/* The tail an appender reads: the newest whole entry (and the newline
 * before it) and a torn region after it. */
#define TAIL_WINDOW (CUSTODY_MAX_TORN + CUSTODY_MAX_LINE + 2u)

_Static_assert(sizeof(ZERO_HASH) == CUSTODY_HASH_HEX_LEN + 1, "zero hash length");
_Static_assert(CUSTODY_MAX_LINE < INT_MAX && TAIL_WINDOW < INT_MAX, "json-c takes int lengths");

static int syslog_enabled = 1;

void custody_set_syslog(int enabled)
{
	syslog_enabled = enabled;
}

/* ------------------------------------------------------------------ */
/* Text */

static int is_name(const char *s, int dots)
{
	size_t n = strlen(s), i;
	int word = 0;

	if (n == 0 || n > CUSTODY_NAME_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
			word = 1;
		} else if (c == '.' && dots && word) {
			word = 0;
		} else {
			return 0;
		}
	}
	return word;
}

static int is_hex64(const char *s, size_t n)
{
	uint8_t tmp[DIGEST_SHA256_LEN];

	return n == CUSTODY_HASH_HEX_LEN && digest_from_hex(tmp, s, n) == 0;
}

static int is_uuid(const char *s, size_t n)
{
	size_t i;

	if (n != CUSTODY_RUN_ID_LEN)
		return 0;
	for (i = 0; i < n; i++) {
		int dash = (i == 8 || i == 13 || i == 18 || i == 23);

		if (dash != (s[i] == '-'))
			return 0;
		if (!dash && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

/* Printable UTF-8 is kept (cut at max bytes on a character boundary);
 * anything else is escaped byte by byte as \xNN, and then so is every
 * backslash, so that an escaped value cannot be read two ways. */
static void text_store(char *out, size_t max, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	int escape = !text_is_printable_utf8(in, len);
	size_t o = 0, i = 0, n;

	while (i < len) {
		n = text_utf8_seq_len(s + i, len - i);
		if (n == 0 || !text_is_printable_utf8(in + i, n) || (escape && s[i] == '\\')) {
			if (o + 4 > max)
				break;
			snprintf(out + o, 5, "\\x%02x", s[i]);
			o += 4;
			n = 1;
		} else {
			if (o + n > max)
				break;
			memcpy(out + o, s + i, n);
			o += n;
		}
		i += n;
	}
	out[o] = '\0';
}

/* A JSON string for untrusted text, or JSON null for NULL. */
static int text_json(const char *s, struct json_object **out)
{
	char buf[CUSTODY_MAX_TEXT + 1];

	*out = NULL;
	if (!s)
		return 0;
	text_store(buf, CUSTODY_MAX_TEXT, s, strlen(s));
	*out = json_object_new_string(buf);
	return *out ? 0 : -ENOMEM;
}

static int hex_json(const uint8_t *h, struct json_object **out)
{
	char hex[DIGEST_SHA256_HEX_LEN + 1];

	*out = NULL;
	if (!h)
		return 0;
	digest_hex(hex, h);
	*out = json_object_new_string(hex);
	return *out ? 0 : -ENOMEM;
}

/* Add val (which may be NULL: JSON null) under key; the object takes it. */
static int put(struct json_object *obj, const char *key, struct json_object *val)
{
	if (json_object_object_add(obj, key, val) != 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

static int put_text(struct json_object *obj, const char *key, const char *s)
{
	struct json_object *v;

	if (text_json(s, &v) < 0)
		return -ENOMEM;
	return put(obj, key, v);
}

static int put_int(struct json_object *obj, const char *key, int64_t v)
{
	struct json_object *j = json_object_new_int64(v);

	return j ? put(obj, key, j) : -ENOMEM;
}

static int put_bool(struct json_object *obj, const char *key, int v)
{
	struct json_object *j = json_object_new_boolean(v ? 1 : 0);

	return j ? put(obj, key, j) : -ENOMEM;
}

static int put_hex(struct json_object *obj, const char *key, const uint8_t *h)
{
	struct json_object *v;

	if (hex_json(h, &v) < 0)
		return -ENOMEM;
	return put(obj, key, v);
}

/* ------------------------------------------------------------------ */
/* Time */

static int time_format(int64_t us, char out[CUSTODY_TIME_LEN + 1])
{
	struct tm tm;
	time_t t = (time_t)(us / 1000000);
	int n;

	if (us < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
		return -ERANGE;
	n = snprintf(out, CUSTODY_TIME_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	             tm.tm_min, tm.tm_sec, (int)(us % 1000000));
	return n == (int)CUSTODY_TIME_LEN ? 0 : -ERANGE;
}

static int digits(const char *s, size_t n, int *v)
{
	size_t i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int custody_time_parse(const char *s, size_t n, int64_t *us)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
	char back[CUSTODY_TIME_LEN + 1];
	struct tm tm;
	int year, mon, day, hour, min, sec, frac;
	time_t t;
	size_t i;

	if (n != CUSTODY_TIME_LEN)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (shape[i] != 'd' && s[i] != shape[i])
			return -EINVAL;
	if (digits(s, 4, &year) || digits(s + 5, 2, &mon) || digits(s + 8, 2, &day) ||
	    digits(s + 11, 2, &hour) || digits(s + 14, 2, &min) ||
	    digits(s + 17, 2, &sec) || digits(s + 20, 6, &frac) || year < 1970)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalises Feb 30 and 24:00: a real time formats back. */
	if (t < 0 || time_format((int64_t)t * 1000000 + frac, back) < 0 ||
	    memcmp(back, s, n) != 0)
		return -EINVAL;
	*us = (int64_t)t * 1000000 + frac;
	return 0;
}

static int64_t now_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ */
/* Entries under construction */

struct custody_entry {
	enum custody_side side;
	enum custody_outcome outcome;
	char event[CUSTODY_NAME_MAX + 1];
	char reason[CUSTODY_NAME_MAX + 1];
	char run[CUSTODY_RUN_ID_LEN + 1];
	char *courier;
	struct json_object *bundle;
	struct json_object *device;
	struct json_object *signed_facts;
	struct json_object *details;
	int bad;                        /* the first setter failure */
	int bad_errnum;
	char bad_what[160];
};

static const char *const reserved_keys[] = {
	"clock_behind_us", "torn_offset", "torn_bytes", "torn_sha256",
};

__attribute__((format(printf, 3, 4)))
static int entry_fail(struct custody_entry *en, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (!en->bad) {
		en->bad = 1;
		en->bad_errnum = errnum;
		va_start(ap, fmt);
		vsnprintf(en->bad_what, sizeof(en->bad_what), fmt, ap);
		va_end(ap);
	}
	return errnum;
}

static int entry_nomem(struct custody_entry *en)
{
	return entry_fail(en, -ENOMEM, "out of memory");
}

int custody_entry_new(struct custody_entry **out, enum custody_side side,
                      const char *event, enum custody_outcome outcome,
                      struct alerr *e)
{
	struct custody_entry *en;

	*out = NULL;
	if (!event || !is_name(event, 1) || strcmp(event, CUSTODY_EV_TORN_TAIL) == 0)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "custody.bad_entry",
		                 "custody entry: \"%s\" is not a valid event name",
		                 event ? event : "(null)");
	if ((side != CUSTODY_SIDE_LOW && side != CUSTODY_SIDE_HIGH) ||
	    (outcome != CUSTODY_OK && outcome != CUSTODY_REFUSED &&
	     outcome != CUSTODY_ERROR && outcome != CUSTODY_INFO))
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "custody.bad_entry",
		                 "custody entry %s: bad side or outcome", event);
	en = calloc(1, sizeof(*en));
	if (!en)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "custody.memory",
		                 "custody entry: out of memory");
	en->details = json_object_new_object();
	if (!en->details) {
		free(en);
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "custody.memory",
		                 "custody entry: out of memory");
	}
	en->side = side;
	en->outcome = outcome;
	snprintf(en->event, sizeof(en->event), "%s", event);
	*out = en;
	return 0;
}

void custody_entry_free(struct custody_entry *en)
{
	if (!en)
		return;
	free(en->courier);
	json_object_put(en->bundle);
	json_object_put(en->device);
	json_object_put(en->signed_facts);
	json_object_put(en->details);
	free(en);
}

int custody_entry_set_reason(struct custody_entry *en, const char *reason)
{
	if (!reason || !is_name(reason, 1) || !(reason[0] >= 'a' && reason[0] <= 'z'))
		return entry_fail(en, -EINVAL, "\"%s\" is not a valid reason code",
		                  reason ? reason : "(null)");
	snprintf(en->reason, sizeof(en->reason), "%s", reason);
	return 0;
}

int custody_entry_set_run(struct custody_entry *en, const char *run_id)
{
	if (!run_id || !is_uuid(run_id, strlen(run_id)))
		return entry_fail(en, -EINVAL, "run id is not a lower-case UUID");
	snprintf(en->run, sizeof(en->run), "%s", run_id);
	return 0;
}

void custody_run_id(char out[CUSTODY_RUN_ID_LEN + 1])
{
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

int custody_entry_set_courier(struct custody_entry *en, const char *courier)
{
	char buf[CUSTODY_MAX_TEXT + 1];
	char *copy = NULL;

	if (courier) {
		text_store(buf, CUSTODY_MAX_TEXT, courier, strlen(courier));
		copy = strdup(buf);
		if (!copy)
			return entry_nomem(en);
	}
	free(en->courier);
	en->courier = copy;
	return 0;
}

int custody_entry_set_bundle(struct custody_entry *en, const struct custody_bundle *b)
{
	struct json_object *o;
	int r = 0;

	if (!b)
		return entry_fail(en, -EINVAL, "no bundle given");
	if (b->has_sequence && (b->sequence < 1 || b->sequence > (uint64_t)CUSTODY_MAX_INT))
		return entry_fail(en, -ERANGE, "bundle sequence %llu out of range",
		                  (unsigned long long)b->sequence);
	o = json_object_new_object();
	if (!o)
		return entry_nomem(en);
	r |= put_text(o, "channel", b->channel);
	if (b->has_sequence)
		r |= put_int(o, "sequence", (int64_t)b->sequence);
	else
		r |= put(o, "sequence", NULL);
	r |= put_text(o, "bundle_id", b->bundle_id);
	r |= put_hex(o, "manifest_sha256", b->manifest_sha256);
	r |= put_hex(o, "image_sha256", b->image_sha256);
	r |= put_bool(o, "verified", b->verified);
	if (r != 0 || json_object_object_length(o) != 6) {
		json_object_put(o);
		return entry_nomem(en);
	}
	json_object_put(en->bundle);
	en->bundle = o;
	return 0;
}

int custody_entry_set_device(struct custody_entry *en, const struct custody_device *d)
{
	struct json_object *o;
	int r = 0;

	if (!d)
		return entry_fail(en, -EINVAL, "no device given");
	if (d->has_size && d->size > (uint64_t)CUSTODY_MAX_INT)
		return entry_fail(en, -ERANGE, "device size out of range");
	o = json_object_new_object();
	if (!o)
		return entry_nomem(en);
	r |= put_text(o, "devnode", d->devnode);
	r |= put_text(o, "vendor", d->vendor);
	r |= put_text(o, "model", d->model);
	r |= put_text(o, "serial", d->serial);
	r |= put_text(o, "bus_path", d->bus_path);
	if (d->has_size)
		r |= put_int(o, "size", (int64_t)d->size);
	else
		r |= put(o, "size", NULL);
	if (r != 0 || json_object_object_length(o) != 6) {
		json_object_put(o);
		return entry_nomem(en);
	}
	json_object_put(en->device);
	en->device = o;
	return 0;
}

int custody_entry_set_signed(struct custody_entry *en, const struct manifest *m)
{
	char created[MANIFEST_TIME_LEN + 1], until[MANIFEST_TIME_LEN + 1];
	struct json_object *o, *a;
	size_t i;
	int r = 0;

	if (!m)
		return entry_fail(en, -EINVAL, "no manifest given");
	if (m->n_signers > CUSTODY_MAX_LIST)
		return entry_fail(en, -E2BIG, "more than %u signers", CUSTODY_MAX_LIST);
	if (manifest_time_format(m->created, created, sizeof(created)) < 0 ||
	    manifest_time_format(m->valid_until, until, sizeof(until)) < 0)
		return entry_fail(en, -ERANGE, "manifest time out of range");
	o = json_object_new_object();
	a = json_object_new_array();
	if (!o || !a) {
		json_object_put(o);
		json_object_put(a);
		return entry_nomem(en);
	}
	for (i = 0; i < m->n_signers && r == 0; i++) {
		struct json_object *s;

		if (text_json(m->signers[i] ? m->signers[i] : "", &s) < 0 ||
		    json_object_array_add(a, s) != 0) {
			json_object_put(s);
			r = -ENOMEM;
		}
	}
	r |= put_text(o, "writer_host", m->writer_host ? m->writer_host : "");
	r |= put_text(o, "courier", m->courier);
	r |= put_text(o, "media_vendor", m->media_vendor);
	r |= put_text(o, "media_model", m->media_model);
	r |= put_text(o, "media_serial", m->media_serial);
	r |= put_text(o, "snapshot", m->snapshot ? m->snapshot : "");
	r |= put_text(o, "created", created);
	r |= put_text(o, "valid_until", until);
	if (r == 0)
		r = put(o, "signers", a);
	else
		json_object_put(a);
	if (r != 0 || json_object_object_length(o) != 9) {
		json_object_put(o);
		return entry_nomem(en);
	}
	json_object_put(en->signed_facts);
	en->signed_facts = o;
	return 0;
}

static int detail_key_ok(struct custody_entry *en, const char *key)
{
	size_t i;

	if (!key || !is_name(key, 0))
		return entry_fail(en, -EINVAL, "\"%s\" is not a valid detail key",
		                  key ? key : "(null)");
	for (i = 0; i < sizeof(reserved_keys) / sizeof(reserved_keys[0]); i++)
		if (strcmp(key, reserved_keys[i]) == 0)
			return entry_fail(en, -EINVAL, "detail key \"%s\" is reserved", key);
	if (json_object_object_get_ex(en->details, key, NULL))
		return entry_fail(en, -EEXIST, "detail key \"%s\" given twice", key);
	if ((size_t)json_object_object_length(en->details) >= CUSTODY_MAX_DETAILS)
		return entry_fail(en, -E2BIG, "more than %u details", CUSTODY_MAX_DETAILS);
	return 0;
}

int custody_entry_add_detail_str(struct custody_entry *en, const char *key, const char *value)
{
	struct json_object *v;
	int r = detail_key_ok(en, key);

	if (r < 0)
		return r;
	if (!value)
		return entry_fail(en, -EINVAL, "detail \"%s\": no value", key);
	if (text_json(value, &v) < 0 || put(en->details, key, v) < 0)
		return entry_nomem(en);
	return 0;
}

int custody_entry_add_detail_int(struct custody_entry *en, const char *key, int64_t value)
{
	int r = detail_key_ok(en, key);

	if (r < 0)
		return r;
	if (value > CUSTODY_MAX_INT || value < -CUSTODY_MAX_INT)
		return entry_fail(en, -ERANGE, "detail \"%s\": %lld out of range", key,
		                  (long long)value);
	if (put_int(en->details, key, value) < 0)
		return entry_nomem(en);
	return 0;
}

int custody_entry_add_detail_bool(struct custody_entry *en, const char *key, int value)
{
	int r = detail_key_ok(en, key);

	if (r < 0)
		return r;
	if (put_bool(en->details, key, value) < 0)
		return entry_nomem(en);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Checking one line */

enum jt { J_NULL = 1, J_STR = 2, J_INT = 4, J_BOOL = 8, J_OBJ = 16, J_ARR = 32 };

enum fmt {
	F_ANY = 0,
	F_TEXT,         /* printable UTF-8, at most CUSTODY_MAX_TEXT bytes */
	F_HEX64,
	F_TIME,         /* custody time */
	F_MTIME,        /* manifest time */
	F_NAME,         /* event or reason */
	F_SIDE,
	F_OUTCOME,
	F_UUID,
	F_VERSION,
	F_POS,          /* 1..CUSTODY_MAX_INT */
	F_NONNEG,       /* 0..CUSTODY_MAX_INT */
	F_DETAILS,
	F_TEXTS,        /* array of F_TEXT */
};

struct mdef {
	const char *name;
	unsigned int types;
	enum fmt fmt;
	const struct mdef *sub;
	size_t n_sub;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct mdef actor_defs[] = {
	{ "user", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "uid", J_INT, F_NONNEG, NULL, 0 },
	{ "loginuid", J_INT | J_NULL, F_NONNEG, NULL, 0 },
	{ "pid", J_INT, F_POS, NULL, 0 },
	{ "unit", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "invocation", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "courier", J_STR | J_NULL, F_TEXT, NULL, 0 },
};

static const struct mdef bundle_defs[] = {
	{ "channel", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "sequence", J_INT | J_NULL, F_POS, NULL, 0 },
	{ "bundle_id", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "manifest_sha256", J_STR | J_NULL, F_HEX64, NULL, 0 },
	{ "image_sha256", J_STR | J_NULL, F_HEX64, NULL, 0 },
	{ "verified", J_BOOL, F_ANY, NULL, 0 },
};

static const struct mdef device_defs[] = {
	{ "devnode", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "vendor", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "model", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "serial", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "bus_path", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "size", J_INT | J_NULL, F_NONNEG, NULL, 0 },
};

static const struct mdef signed_defs[] = {
	{ "writer_host", J_STR, F_TEXT, NULL, 0 },
	{ "courier", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "media_vendor", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "media_model", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "media_serial", J_STR | J_NULL, F_TEXT, NULL, 0 },
	{ "snapshot", J_STR, F_TEXT, NULL, 0 },
	{ "created", J_STR, F_MTIME, NULL, 0 },
	{ "valid_until", J_STR, F_MTIME, NULL, 0 },
	{ "signers", J_ARR, F_TEXTS, NULL, 0 },
};

/* The members of an entry, in the order they are written. */
static const struct mdef entry_defs[] = {
	{ "v", J_INT, F_VERSION, NULL, 0 },
	{ "seq", J_INT, F_POS, NULL, 0 },
	{ "time", J_STR, F_TIME, NULL, 0 },
	{ "host", J_STR, F_TEXT, NULL, 0 },
	{ "side", J_STR, F_SIDE, NULL, 0 },
	{ "run", J_STR | J_NULL, F_UUID, NULL, 0 },
	{ "event", J_STR, F_NAME, NULL, 0 },
	{ "outcome", J_STR, F_OUTCOME, NULL, 0 },
	{ "reason", J_STR | J_NULL, F_NAME, NULL, 0 },
	{ "actor", J_OBJ, F_ANY, actor_defs, N(actor_defs) },
	{ "bundle", J_OBJ | J_NULL, F_ANY, bundle_defs, N(bundle_defs) },
	{ "device", J_OBJ | J_NULL, F_ANY, device_defs, N(device_defs) },
	{ "signed", J_OBJ | J_NULL, F_ANY, signed_defs, N(signed_defs) },
	{ "details", J_OBJ, F_DETAILS, NULL, 0 },
	{ "prev", J_STR, F_HEX64, NULL, 0 },
	{ "hash", J_STR, F_HEX64, NULL, 0 },
};

static const char *const side_names[] = { "low", "high" };
static const char *const outcome_names[] = { "ok", "refused", "error", "info" };

/* What a checked line holds. */
struct line_info {
	struct json_object *obj;        /* owned: put by the caller */
	int has_seq;                    /* seq read, even from a bad line */
	uint64_t seq;
	int64_t time_us;
	const char *time;
	const char *event;
	const char *prev;
	const char *hash;
	const char *reason;             /* set when the line is bad */
	char what[200];
};

__attribute__((format(printf, 3, 4)))
static int bad_line(struct line_info *li, const char *reason, const char *fmt, ...)
{
	va_list ap;

	li->reason = reason;
	va_start(ap, fmt);
	vsnprintf(li->what, sizeof(li->what), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static unsigned int jtype(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:    return J_NULL;
	case json_type_string:  return J_STR;
	case json_type_int:     return J_INT;
	case json_type_boolean: return J_BOOL;
	case json_type_object:  return J_OBJ;
	case json_type_array:   return J_ARR;
	default:                return 0;
	}
}

static int text_ok(struct json_object *v)
{
	const char *s = json_object_get_string(v);
	int n = json_object_get_string_len(v);

	return n >= 0 && (size_t)n <= CUSTODY_MAX_TEXT && text_is_printable_utf8(s, (size_t)n);
}

/* "YYYY-MM-DDTHH:MM:SSZ", as the MANIFEST writes times. */
static int manifest_time_shape(const char *s, size_t n)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	size_t i;

	if (n != MANIFEST_TIME_LEN)
		return 0;
	for (i = 0; i < n; i++)
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
			return 0;
	return 1;
}

static int in_list(const char *s, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return 1;
	return 0;
}

static int check_value(struct line_info *li, const char *path, const struct mdef *d,
                       struct json_object *v);

static int check_members(struct line_info *li, const char *where, struct json_object *obj,
                         const struct mdef *defs, size_t n)
{
	struct json_object_iterator it = json_object_iter_begin(obj);
	struct json_object_iterator end = json_object_iter_end(obj);
	char path[96];
	size_t i = 0;
	int r;

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it), i++) {
		const char *name = json_object_iter_peek_name(&it);

		if (i >= n)
			return bad_line(li, "custody.bad_member", "unexpected member \"%s%s%s\"",
			                where, *where ? "." : "", name);
		if (strcmp(name, defs[i].name) != 0)
			return bad_line(li, "custody.bad_member",
			                "member \"%s%s%s\" where \"%s%s%s\" belongs",
			                where, *where ? "." : "", name,
			                where, *where ? "." : "", defs[i].name);
		snprintf(path, sizeof(path), "%s%s%s", where, *where ? "." : "", name);
		r = check_value(li, path, &defs[i], json_object_iter_peek_value(&it));
		if (r < 0)
			return r;
	}
	if (i < n)
		return bad_line(li, "custody.bad_member", "member \"%s%s%s\" missing",
		                where, *where ? "." : "", defs[i].name);
	return 0;
}

static int check_details(struct line_info *li, struct json_object *obj)
{
	struct json_object_iterator it = json_object_iter_begin(obj);
	struct json_object_iterator end = json_object_iter_end(obj);
	size_t count = 0;

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *name = json_object_iter_peek_name(&it);
		struct json_object *v = json_object_iter_peek_value(&it);
		unsigned int t = jtype(v);
		int64_t x;

		if (++count > CUSTODY_MAX_DETAILS)
			return bad_line(li, "custody.bad_member", "more than %u details",
			                CUSTODY_MAX_DETAILS);
		if (!is_name(name, 0))
			return bad_line(li, "custody.bad_member", "detail key is not a name");
		if (t == J_STR && !text_ok(v))
			return bad_line(li, "custody.bad_member",
			                "details.%s: not printable UTF-8 of at most %u bytes",
			                name, CUSTODY_MAX_TEXT);
		if (t == J_INT) {
			x = json_object_get_int64(v);
			if (x > CUSTODY_MAX_INT || x < -CUSTODY_MAX_INT)
				return bad_line(li, "custody.bad_member",
				                "details.%s: integer out of range", name);
		}
		if (!(t & (J_STR | J_INT | J_BOOL | J_NULL)))
			return bad_line(li, "custody.bad_member",
			                "details.%s: not a string, integer, boolean or null", name);
	}
	return 0;
}

static const char *type_names(unsigned int types)
{
	switch (types) {
	case J_INT:                 return "an integer";
	case J_STR:                 return "a string";
	case J_BOOL:                return "a boolean";
	case J_OBJ:                 return "an object";
	case J_ARR:                 return "an array";
	case J_STR | J_NULL:        return "a string or null";
	case J_INT | J_NULL:        return "an integer or null";
	case J_OBJ | J_NULL:        return "an object or null";
	default:                    return "another type";
	}
}

static int check_value(struct line_info *li, const char *path, const struct mdef *d,
                       struct json_object *v)
{
	unsigned int t = jtype(v);
	const char *s;
	int64_t x;
	size_t n, i;

	if (!(t & d->types))
		return bad_line(li, "custody.bad_member", "member \"%s\" is not %s",
		                path, type_names(d->types));
	if (t == J_NULL)
		return 0;
	if (t == J_OBJ && d->sub)
		return check_members(li, path, v, d->sub, d->n_sub);
	if (t == J_INT) {
		x = json_object_get_int64(v);
		if ((d->fmt == F_POS && (x < 1 || x > CUSTODY_MAX_INT)) ||
		    (d->fmt == F_NONNEG && (x < 0 || x > CUSTODY_MAX_INT)) ||
		    (d->fmt == F_VERSION && x != CUSTODY_FORMAT_VERSION))
			return bad_line(li, d->fmt == F_VERSION ? "custody.bad_version" :
			                "custody.bad_member", "member \"%s\": %s %lld",
			                path, d->fmt == F_VERSION ? "unknown format version" :
			                "out of range:", (long long)x);
		return 0;
	}
	if (t == J_ARR) {
		n = json_object_array_length(v);
		if (n > CUSTODY_MAX_LIST)
			return bad_line(li, "custody.bad_member", "member \"%s\": more than %u items",
			                path, CUSTODY_MAX_LIST);
		for (i = 0; i < n; i++) {
			struct json_object *item = json_object_array_get_idx(v, i);

			if (jtype(item) != J_STR || !text_ok(item))
				return bad_line(li, "custody.bad_member",
				                "member \"%s\": item %zu is not printable text",
				                path, i + 1);
		}
		return 0;
	}
	if (t == J_OBJ)         /* details */
		return check_details(li, v);
	if (t != J_STR)
		return 0;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	switch (d->fmt) {
	case F_TEXT:
		if (!text_ok(v))
			return bad_line(li, "custody.bad_member",
			                "member \"%s\": not printable UTF-8 of at most %u bytes",
			                path, CUSTODY_MAX_TEXT);
		return 0;
	case F_HEX64:
		if (!is_hex64(s, n))
			return bad_line(li, "custody.bad_member",
			                "member \"%s\": not 64 lower-case hex digits", path);
		return 0;
	case F_TIME: {
		int64_t us;

		if (custody_time_parse(s, n, &us) < 0)
			return bad_line(li, "custody.bad_member",
			                "member \"%s\": not a UTC time YYYY-MM-DDTHH:MM:SS.uuuuuuZ", path);
		return 0;
	}
	case F_MTIME:
		if (!manifest_time_shape(s, n))
			return bad_line(li, "custody.bad_member",
			                "member \"%s\": not a UTC time YYYY-MM-DDTHH:MM:SSZ", path);
		return 0;
	case F_NAME:
		if (n != strlen(s) || !is_name(s, 1))
			return bad_line(li, "custody.bad_member",
			                "member \"%s\": not lower-case words joined by dots", path);
		return 0;
	case F_SIDE:
		if (!in_list(s, side_names, N(side_names)))
			return bad_line(li, "custody.bad_member", "member \"%s\": not low or high", path);
		return 0;
	case F_OUTCOME:
		if (!in_list(s, outcome_names, N(outcome_names)))
			return bad_line(li, "custody.bad_member",
			                "member \"%s\": not ok, refused, error or info", path);
		return 0;
	case F_UUID:
		if (!is_uuid(s, n))
			return bad_line(li, "custody.bad_member",
			                "member \"%s\": not a lower-case UUID", path);
		return 0;
	default:
		return 0;
	}
}

static struct json_object *member(struct json_object *obj, const char *name)
{
	struct json_object *v = NULL;

	if (!obj || !json_object_object_get_ex(obj, name, &v))
		return NULL;
	return v;
}

/* Check one line (without its newline) against everything a line alone
 * can show. On success li->obj holds the parsed entry. */
static int line_check(struct json_tokener *tok, const char *s, size_t n, struct line_info *li)
{
	uint8_t digest[DIGEST_SHA256_LEN];
	char hex[DIGEST_SHA256_HEX_LEN + 1];
	struct json_object *obj, *v;
	enum json_tokener_error jerr;
	const char *canon;
	char *body;
	size_t clen = 0, i;
	int r;

	memset(li, 0, sizeof(*li));
	if (n > CUSTODY_MAX_LINE)
		return bad_line(li, "custody.line_too_long", "longer than %u bytes", CUSTODY_MAX_LINE);
	for (i = 0; i < n;) {
		size_t k = text_utf8_seq_len((const unsigned char *)s + i, n - i);

		if (k == 0)
			return bad_line(li, "custody.not_utf8", "not valid UTF-8 (byte %zu)", i + 1);
		i += k;
	}
	json_tokener_reset(tok);
	obj = json_tokener_parse_ex(tok, s, (int)n);
	jerr = json_tokener_get_error(tok);
	if (!obj || jerr != json_tokener_success || json_tokener_get_parse_end(tok) != n) {
		json_object_put(obj);
		return bad_line(li, "custody.not_json", "not a JSON object (%s)",
		                jerr == json_tokener_continue ? "cut short" :
		                jerr == json_tokener_success ? "trailing bytes" :
		                json_tokener_error_desc(jerr));
	}
	li->obj = obj;
	if (!json_object_is_type(obj, json_type_object))
		return bad_line(li, "custody.not_json", "not a JSON object");
	v = member(obj, "seq");
	if (v && json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0) {
		li->has_seq = 1;
		li->seq = (uint64_t)json_object_get_int64(v);
	}
	canon = json_object_to_json_string_length(obj, JSON_FLAGS, &clen);
	if (!canon)
		return bad_line(li, "custody.memory", "out of memory");
	if (clen != n || memcmp(canon, s, n) != 0)
		return bad_line(li, "custody.not_canonical",
		                "not in canonical form (spacing, escapes, numbers or a duplicate member)");
	r = check_members(li, "", obj, entry_defs, N(entry_defs));
	if (r < 0)
		return r;
	/* Canonical, with "hash" last and 64 hex digits long: the line ends
	 * with exactly ,"hash":"<hex>"} and the body is what comes before
	 * and a closing brace. */
	body = malloc(n - HASH_TAIL_LEN + 2);
	if (!body)
		return bad_line(li, "custody.memory", "out of memory");
	memcpy(body, s, n - HASH_TAIL_LEN);
	body[n - HASH_TAIL_LEN] = '}';
	r = digest_buffer(body, n - HASH_TAIL_LEN + 1, digest);
	free(body);
	if (r < 0)
		return bad_line(li, "custody.memory", "cannot hash: libgcrypt unusable");
	digest_hex(hex, digest);
	li->time = json_object_get_string(member(obj, "time"));
	li->event = json_object_get_string(member(obj, "event"));
	li->prev = json_object_get_string(member(obj, "prev"));
	li->hash = json_object_get_string(member(obj, "hash"));
	if (strcmp(hex, li->hash) != 0)
		return bad_line(li, "custody.hash_mismatch",
		                "hash mismatch: the line hashes to %.16s..., it records %.16s...",
		                hex, li->hash);
	if (custody_time_parse(li->time, strlen(li->time), &li->time_us) < 0)
		return bad_line(li, "custody.bad_member", "bad time");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Records for readers */

struct custody_record {
	uint64_t line;
	uint64_t seq;
	struct json_object *obj;
	const char *raw;
	size_t raw_len;
};

uint64_t custody_record_line(const struct custody_record *r)
{
	return r->line;
}

uint64_t custody_record_seq(const struct custody_record *r)
{
	return r->seq;
}

static const char *json_text(struct json_object *v)
{
	if (!v)
		return NULL;
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_FLAGS);
}

static struct json_object *record_member(const struct custody_record *r, const char *m,
                                         const char *sub)
{
	struct json_object *v = member(r->obj, m);

	if (sub)
		v = json_object_is_type(v, json_type_object) ? member(v, sub) : NULL;
	return v;
}

const char *custody_record_text(const struct custody_record *r, const char *m, const char *sub)
{
	return json_text(record_member(r, m, sub));
}

const char *custody_record_item(const struct custody_record *r, const char *m,
                                const char *sub, size_t index, const char **key)
{
	struct json_object *v = record_member(r, m, sub), *item;
	struct json_object_iterator it, end;
	size_t i = 0;

	if (key)
		*key = NULL;
	if (json_object_is_type(v, json_type_array)) {
		if (index >= json_object_array_length(v))
			return NULL;
		item = json_object_array_get_idx(v, index);
		return item ? json_text(item) : "null";
	}
	if (!json_object_is_type(v, json_type_object))
		return NULL;
	it = json_object_iter_begin(v);
	end = json_object_iter_end(v);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it), i++) {
		if (i != index)
			continue;
		if (key)
			*key = json_object_iter_peek_name(&it);
		item = json_object_iter_peek_value(&it);
		return item ? json_text(item) : "null";
	}
	return NULL;
}

const char *custody_record_raw(const struct custody_record *r, size_t *len)
{
	if (len)
		*len = r->raw_len;
	return r->raw;
}

/* ------------------------------------------------------------------ */
/* Opening and locking */

static int fsync_dir_of(const char *path)
{
	char *dir = strdup(path), *slash;
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, strlen(dir) + 1, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	free(dir);
	return r;
}

/* Create the log's directory (0750) when it is missing, and refuse one
 * that anyone may write to without the sticky bit. */
static int prepare_dir(const char *path, struct alerr *e)
{
	char *dir = strdup(path), *slash;
	struct stat st;
	int r = 0;

	if (!dir)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "custody.memory", "out of memory");
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		goto out;
	*slash = '\0';
	if (stat(dir, &st) != 0) {
		if (errno != ENOENT) {
			r = alerr_set(e, ALERR_IOERR, -errno, "custody.open", "%s: %s", dir,
			              strerror(errno));
			goto out;
		}
		if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
			r = alerr_set(e, ALERR_IOERR, -errno, "custody.open",
			              "cannot create %s: %s", dir, strerror(errno));
			goto out;
		}
		fsync_dir_of(dir);
		if (stat(dir, &st) != 0) {
			r = alerr_set(e, ALERR_IOERR, -errno, "custody.open", "%s: %s", dir,
			              strerror(errno));
			goto out;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		r = alerr_set(e, ALERR_CONFIG, -ENOTDIR, "custody.unsafe_file",
		              "%s is not a directory", dir);
	} else if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
		r = alerr_set(e, ALERR_CONFIG, -EPERM, "custody.unsafe_file",
		              "%s is writable by anyone: the custody log needs a protected directory",
		              dir);
	}
out:
	free(dir);
	return r;
}

static int open_error(const char *path, int err, int writing, struct alerr *e)
{
	if (err == ELOOP)
		return alerr_set(e, writing ? ALERR_CONFIG : ALERR_NOINPUT, -err,
		                 "custody.unsafe_file", "%s is a symbolic link: refused", path);
	if (err == EISDIR)
		return alerr_set(e, writing ? ALERR_CONFIG : ALERR_NOINPUT, -err,
		                 "custody.unsafe_file", "%s is a directory", path);
	if (err == ENOENT)
		return alerr_set(e, ALERR_NOINPUT, -err, "custody.missing",
		                 "%s: no such custody log", path);
	return alerr_set(e, writing ? ALERR_IOERR : ALERR_NOINPUT, -err,
	                 writing ? "custody.open" : "custody.unreadable",
	                 "cannot open %s: %s", path, strerror(err));
}

static int open_for_append(const char *path, struct alerr *e)
{
	struct stat st;
	int fd, r;

	r = prepare_dir(path, e);
	if (r < 0)
		return r;
	/* Read and write: the tail is read back to find the chain's head.
	 * O_NONBLOCK: a FIFO in the log's place must not block the open. */
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
	          O_NONBLOCK, 0640);
	if (fd < 0)
		return open_error(path, errno, 1, e);
	if (fstat(fd, &st) != 0) {
		r = alerr_set(e, ALERR_IOERR, -errno, "custody.open", "%s: %s", path,
		              strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		r = alerr_set(e, ALERR_CONFIG, -EINVAL, "custody.unsafe_file",
		              "%s is not a regular file", path);
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		r = alerr_set(e, ALERR_CONFIG, -EPERM, "custody.unsafe_file",
		              "%s is writable by group or others (mode %04o)", path,
		              (unsigned int)(st.st_mode & 07777));
	} else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		r = alerr_set(e, ALERR_CONFIG, -EPERM, "custody.unsafe_file",
		              "%s is owned by uid %u, neither root nor this user", path,
		              (unsigned int)st.st_uid);
	} else if (st.st_nlink != 1) {
		r = alerr_set(e, ALERR_CONFIG, -EPERM, "custody.unsafe_file",
		              "%s has %lu hard links", path, (unsigned long)st.st_nlink);
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static int open_for_read(const char *path, struct alerr *e)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return open_error(path, errno, 0, e);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return alerr_set(e, ALERR_NOINPUT, -EINVAL, "custody.unsafe_file",
		                 "%s is not a regular file", path);
	}
	return fd;
}

/* flock with a bounded wait: polls, so that no signal handler is needed. */
static int lock_wait(int fd, int op, const char *path, struct alerr *e)
{
	/* Readers go on without the lock where the filesystem has none
	 * (an auditor's copy on a read-only or network share). */
	int reading = (op == LOCK_SH);
	struct timespec ts;
	unsigned int waited = 0, step = 1;

	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK && reading)
			return 0;
		if (errno != EWOULDBLOCK)
			return alerr_set(e, ALERR_IOERR, -errno, "custody.lock",
			                 "cannot lock %s: %s", path, strerror(errno));
		if (waited >= CUSTODY_LOCK_WAIT_MS)
			return alerr_set(e, ALERR_TEMPFAIL, -EWOULDBLOCK, "custody.lock_timeout",
			                 "%s is still locked by another process after %u s",
			                 path, CUSTODY_LOCK_WAIT_MS / 1000u);
		ts.tv_sec = 0;
		ts.tv_nsec = (long)step * 1000000L;
		nanosleep(&ts, NULL);
		waited += step;
		if (step < 50)
			step *= 2;
	}
}

/* Open for appending and take the exclusive lock. A log renamed or
 * replaced while this process waited is not the log any more: open the
 * path again. */
static int open_locked(const char *path, struct alerr *e)
{
	struct stat held, now;
	int fd, r, tries;

	for (tries = 0; tries < 3; tries++) {
		fd = open_for_append(path, e);
		if (fd < 0)
			return fd;
		r = lock_wait(fd, LOCK_EX, path, e);
		if (r < 0) {
			close(fd);
			return r;
		}
		if (fstat(fd, &held) == 0 && lstat(path, &now) == 0 &&
		    held.st_dev == now.st_dev && held.st_ino == now.st_ino)
			return fd;
		close(fd);
	}
	return alerr_set(e, ALERR_TEMPFAIL, -EAGAIN, "custody.replaced",
	                 "%s keeps being replaced while this process waits for it", path);
}

static int read_at(int fd, char *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;        /* the file shrank under the lock */
		got += (size_t)n;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The tail */

struct tail {
	uint64_t size;                  /* of the file */
	uint64_t seq;                   /* of the newest whole entry, 0: none */
	char hash[CUSTODY_HASH_HEX_LEN + 1];
	int64_t time_us;
	uint64_t good_end;              /* offset after the newest entry's newline */
	char *window;                   /* the last bytes of the file */
	uint64_t base;                  /* offset of window[0] */
};

/* Find the newest whole entry: the last newline-terminated line, going
 * backwards, that checks out alone. Everything after it is torn. */
static int tail_read(int fd, const char *path, struct tail *t, struct alerr *e)
{
	struct json_tokener *tok = NULL;
	struct line_info li;
	struct stat st;
	size_t wlen, end, start;
	const char *nl;
	int found = 0, r;

	memset(t, 0, sizeof(*t));
	memcpy(t->hash, ZERO_HASH, sizeof(ZERO_HASH));
	if (fstat(fd, &st) != 0)
		return alerr_set(e, ALERR_IOERR, -errno, "custody.read", "%s: %s", path,
		                 strerror(errno));
	t->size = (uint64_t)st.st_size;
	wlen = t->size < TAIL_WINDOW ? (size_t)t->size : TAIL_WINDOW;
	t->base = t->size - wlen;
	if (wlen == 0)
		return 0;
	t->window = malloc(wlen);
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!t->window || !tok) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "custody.memory", "out of memory");
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	r = read_at(fd, t->window, wlen, t->base);
	if (r < 0) {
		r = alerr_set(e, ALERR_IOERR, r, "custody.read", "cannot read %s: %s", path,
		              strerror(-r));
		goto out;
	}
	nl = memrchr(t->window, '\n', wlen);
	while (nl && !found) {
		end = (size_t)(nl - t->window);
		nl = end > 0 ? memrchr(t->window, '\n', end) : NULL;
		start = nl ? (size_t)(nl - t->window) + 1 : 0;
		if (!nl && t->base > 0)
			break;              /* the line may begin before the window */
		if (line_check(tok, t->window + start, end - start, &li) == 0) {
			found = 1;
			t->seq = li.seq;
			snprintf(t->hash, sizeof(t->hash), "%s", li.hash);
			t->time_us = li.time_us;
			t->good_end = t->base + end + 1;
		}
		json_object_put(li.obj);
	}
	if (!found && t->base > 0) {
		r = alerr_set(e, ALERR_IOERR, -EBADMSG, "custody.corrupt",
		              "%s: no whole custody entry in its last %u bytes; run airlock-audit verify",
		              path, TAIL_WINDOW);
		goto out;
	}
	if (t->size - t->good_end > CUSTODY_MAX_TORN) {
		r = alerr_set(e, ALERR_IOERR, -EBADMSG, "custody.corrupt",
		              "%s: %llu bytes after the last whole entry (at most %u can be a torn write); run airlock-audit verify",
		              path, (unsigned long long)(t->size - t->good_end), CUSTODY_MAX_TORN);
		goto out;
	}
	r = 0;
out:
	json_tokener_free(tok);
	return r;
}

/* ------------------------------------------------------------------ */
/* Appending */

struct actor {
	struct json_object *obj;
	char host[CUSTODY_MAX_TEXT + 1];
};

static int read_small_file(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	return 0;
}

/* The systemd unit this process runs in: the last component of its
 * cgroup v2 path when it names a service. */
static void systemd_unit(char *out, size_t size)
{
	char buf[1024], *p, *line, *slash;

	out[0] = '\0';
	if (read_small_file("/proc/self/cgroup", buf, sizeof(buf)) < 0)
		return;
	for (line = buf; line; line = p) {
		p = strchr(line, '\n');
		if (p)
			*p++ = '\0';
		if (strncmp(line, "0::", 3) != 0)
			continue;
		slash = strrchr(line, '/');
		if (slash && strlen(slash + 1) > 8 &&
		    strcmp(slash + 1 + strlen(slash + 1) - 8, ".service") == 0)
			snprintf(out, size, "%s", slash + 1);
		return;
	}
}

static int actor_build(struct actor *a, const char *courier)
{
	char buf[1024], unit[256];
	struct passwd pw, *pwp = NULL;
	const char *inv = getenv("INVOCATION_ID");
	uint64_t loginuid;
	size_t n;
	int r = 0;

	a->obj = json_object_new_object();
	if (!a->obj)
		return -ENOMEM;
	if (gethostname(buf, sizeof(buf)) != 0)
		snprintf(buf, sizeof(buf), "unknown");
	buf[sizeof(buf) - 1] = '\0';
	text_store(a->host, CUSTODY_MAX_TEXT, buf, strlen(buf));

	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &pwp) != 0)
		pwp = NULL;
	r |= put_text(a->obj, "user", pwp ? pwp->pw_name : NULL);
	r |= put_int(a->obj, "uid", (int64_t)geteuid());
	/* The audit login uid: who logged in, whatever sudo did since. */
	if (read_small_file("/proc/self/loginuid", buf, sizeof(buf)) == 0) {
		n = strcspn(buf, "\n");
		if (text_parse_u64(buf, n, UINT32_MAX - 1u, &loginuid) == 0)
			r |= put_int(a->obj, "loginuid", (int64_t)loginuid);
		else
			r |= put(a->obj, "loginuid", NULL);
	} else {
		r |= put(a->obj, "loginuid", NULL);
	}
	r |= put_int(a->obj, "pid", (int64_t)getpid());
	systemd_unit(unit, sizeof(unit));
	r |= put_text(a->obj, "unit", unit[0] ? unit : NULL);
	r |= put_text(a->obj, "invocation",
	              inv && strlen(inv) == 32 && strspn(inv, "0123456789abcdef") == 32 ? inv : NULL);
	r |= put_text(a->obj, "courier", courier);
	if (r != 0 || json_object_object_length(a->obj) != (int)N(actor_defs))
		return -ENOMEM;
	return 0;
}

struct line_out {
	char *line;                     /* malloc'd, no newline */
	size_t len;
	char hash[CUSTODY_HASH_HEX_LEN + 1];
};

/* Serialise one entry: the body in the fixed member order, its hash, and
 * the line with "hash" appended as the last member. */
static int line_build(struct custody_entry *en, const char *event, struct json_object *details,
                      uint64_t seq, const char *time, const struct actor *a,
                      const char *prev, struct line_out *lo)
{
	uint8_t digest[DIGEST_SHA256_LEN];
	struct json_object *root = json_object_new_object();
	const char *body;
	size_t blen = 0;
	int r = 0;

	memset(lo, 0, sizeof(*lo));
	if (!root)
		return -ENOMEM;
	r |= put_int(root, "v", CUSTODY_FORMAT_VERSION);
	r |= put_int(root, "seq", (int64_t)seq);
	r |= put_text(root, "time", time);
	r |= put_text(root, "host", a->host);
	r |= put_text(root, "side", side_names[en->side]);
	r |= put_text(root, "run", en->run[0] ? en->run : NULL);
	r |= put_text(root, "event", event);
	r |= put_text(root, "outcome", outcome_names[en->outcome]);
	r |= put_text(root, "reason", en->reason[0] ? en->reason : NULL);
	r |= put(root, "actor", json_object_get(a->obj));
	r |= put(root, "bundle", json_object_get(en->bundle));
	r |= put(root, "device", json_object_get(en->device));
	r |= put(root, "signed", json_object_get(en->signed_facts));
	r |= put(root, "details", json_object_get(details));
	r |= put_text(root, "prev", prev);
	if (r != 0 || json_object_object_length(root) != (int)N(entry_defs) - 1) {
		r = -ENOMEM;
		goto out;
	}
	body = json_object_to_json_string_length(root, JSON_FLAGS, &blen);
	if (!body || blen < 2) {
		r = -ENOMEM;
		goto out;
	}
	if (blen + HASH_TAIL_LEN > CUSTODY_MAX_LINE + 1) {
		r = -E2BIG;
		goto out;
	}
	r = digest_buffer(body, blen, digest);
	if (r < 0)
		goto out;
	digest_hex(lo->hash, digest);
	lo->len = blen - 1 + HASH_TAIL_LEN;
	lo->line = malloc(lo->len + 1);
	if (!lo->line) {
		r = -ENOMEM;
		goto out;
	}
	snprintf(lo->line, lo->len + 1, "%.*s%s%s\"}", (int)(blen - 1), body, HASH_HEAD, lo->hash);
out:
	json_object_put(root);
	return r;
}

/* key=value for syslog: anything but [A-Za-z0-9._:/@+-] as \xNN. */
static void syslog_value(char *out, size_t size, const char *s)
{
	size_t o = 0;

	if (!s)
		s = "-";
	for (; *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("._:/@+-", c))
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

static void syslog_entry(const struct custody_entry *en, const char *event, uint64_t seq,
                         const char *hash)
{
	char reason[2 * CUSTODY_NAME_MAX], bundle[4 * CUSTODY_MAX_TEXT + 8];
	struct json_object *v = member(en->bundle, "bundle_id");
	int pri;

	if (!syslog_enabled)
		return;
	syslog_value(reason, sizeof(reason), en->reason[0] ? en->reason : NULL);
	syslog_value(bundle, sizeof(bundle), v ? json_object_get_string(v) : NULL);
	pri = en->outcome == CUSTODY_ERROR ? LOG_ERR :
	      en->outcome == CUSTODY_REFUSED || strcmp(event, CUSTODY_EV_TORN_TAIL) == 0 ?
	      LOG_WARNING : LOG_NOTICE;
	syslog(pri, "custody seq=%llu side=%s event=%s outcome=%s reason=%s bundle=%s hash=%s",
	       (unsigned long long)seq, side_names[en->side], event,
	       strcmp(event, CUSTODY_EV_TORN_TAIL) == 0 ? "info" : outcome_names[en->outcome],
	       strcmp(event, CUSTODY_EV_TORN_TAIL) == 0 ? "custody.torn_line" : reason,
	       strcmp(event, CUSTODY_EV_TORN_TAIL) == 0 ? "-" : bundle, hash);
}

/* The custody.torn_tail entry for the bytes after the newest whole entry. */
static int torn_entry(const struct custody_entry *en, const struct tail *t, const char *time,
                      const struct actor *a, struct line_out *lo)
{
	uint8_t digest[DIGEST_SHA256_LEN];
	char hex[DIGEST_SHA256_HEX_LEN + 1];
	struct custody_entry torn;
	struct json_object *details = json_object_new_object();
	uint64_t len = t->size - t->good_end;
	int r = 0;

	if (!details)
		return -ENOMEM;
	r = digest_buffer(t->window + (t->good_end - t->base), (size_t)len, digest);
	if (r < 0)
		goto out;
	digest_hex(hex, digest);
	r |= put_int(details, "torn_offset", (int64_t)t->good_end);
	r |= put_int(details, "torn_bytes", (int64_t)len);
	r |= put_text(details, "torn_sha256", hex);
	if (r != 0)
		goto out;
	memset(&torn, 0, sizeof(torn));
	torn.side = en->side;
	torn.outcome = CUSTODY_INFO;
	snprintf(torn.reason, sizeof(torn.reason), "custody.torn_line");
	memcpy(torn.run, en->run, sizeof(torn.run));
	r = line_build(&torn, CUSTODY_EV_TORN_TAIL, details, t->seq + 1, time, a, t->hash, lo);
out:
	json_object_put(details);
	return r;
}

int custody_append(const char *path, struct custody_entry *en, uint64_t *seq_out,
                   char hash_out[CUSTODY_HASH_HEX_LEN + 1], struct alerr *e)
{
	struct line_out torn = { 0 }, line = { 0 };
	struct json_object *details = NULL;
	struct actor a = { 0 };
	struct tail t;
	char time[CUSTODY_TIME_LEN + 1];
	const char *prev;
	uint64_t seq;
	int64_t now;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = -1, r;

	memset(&t, 0, sizeof(t));
	if (!en)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "custody.bad_entry", "no custody entry");
	if (en->bad)
		return alerr_set(e, en->bad_errnum == -ENOMEM ? ALERR_OSERR : ALERR_SOFTWARE,
		                 en->bad_errnum, en->bad_errnum == -ENOMEM ? "custody.memory" :
		                 "custody.bad_entry", "custody entry %s: %s", en->event, en->bad_what);
	r = digest_library_init(e);
	if (r < 0)
		return r;
	/* Everything that may be slow (NSS for the user name) before the lock. */
	if (json_object_deep_copy(en->details, &details, NULL) != 0 ||
	    actor_build(&a, en->courier) < 0) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "custody.memory", "out of memory");
		goto out;
	}
	fd = open_locked(path, e);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	r = tail_read(fd, path, &t, e);
	if (r < 0)
		goto out;

	/* The time is read under the lock, so entries are in time order; a
	 * clock behind the newest entry is noted, not written as is. */
	now = now_us();
	if (t.seq > 0 && now < t.time_us) {
		int64_t behind = t.time_us - now;

		if (put_int(details, "clock_behind_us",
		            behind < CUSTODY_MAX_INT ? behind : CUSTODY_MAX_INT) < 0) {
			r = alerr_set(e, ALERR_OSERR, -ENOMEM, "custody.memory", "out of memory");
			goto out;
		}
		now = t.time_us;
	}
	if (time_format(now, time) < 0) {
		r = alerr_set(e, ALERR_SOFTWARE, -ERANGE, "custody.clock",
		              "the system clock is out of range");
		goto out;
	}
	seq = t.seq + 1;
	prev = t.hash;
	if (t.size > t.good_end) {
		r = torn_entry(en, &t, time, &a, &torn);
		if (r < 0)
			goto build_failed;
		seq++;
		prev = torn.hash;
	}
	if (seq > (uint64_t)CUSTODY_MAX_INT) {
		r = alerr_set(e, ALERR_SOFTWARE, -ERANGE, "custody.full", "%s: seq would pass 2^53",
		              path);
		goto out;
	}
	r = line_build(en, en->event, details, seq, time, &a, prev, &line);
	if (r < 0)
		goto build_failed;

	/* One write: the newline that ends a torn region, the torn record,
	 * the entry. */
	buf = malloc(torn.len + line.len + 3);
	if (!buf) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "custody.memory", "out of memory");
		goto out;
	}
	if (torn.line) {
		buf[len++] = '\n';
		memcpy(buf + len, torn.line, torn.len);
		len += torn.len;
		buf[len++] = '\n';
	}
	memcpy(buf + len, line.line, line.len);
	len += line.len;
	buf[len++] = '\n';
	do {
		n = write(fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		r = alerr_set(e, ALERR_IOERR, -errno, "custody.write",
		              "cannot write to the custody log %s: %s", path, strerror(errno));
		goto out;
	}
	if ((size_t)n != len) {
		r = alerr_set(e, ALERR_IOERR, -EIO, "custody.write",
		              "short write to the custody log %s: %zd of %zu bytes", path, n, len);
		goto out;
	}
	/* Never retried: after a failed fsync the kernel may have dropped
	 * the dirty pages, and a second call would report success. */
	if (fdatasync(fd) != 0) {
		r = alerr_set(e, ALERR_IOERR, -errno, "custody.sync",
		              "cannot sync the custody log %s: %s", path, strerror(errno));
		goto out;
	}
	if (t.size == 0 && fsync_dir_of(path) < 0) {
		r = alerr_set(e, ALERR_IOERR, -EIO, "custody.sync",
		              "cannot sync the directory of the custody log %s", path);
		goto out;
	}
	if (torn.line)
		syslog_entry(en, CUSTODY_EV_TORN_TAIL, seq - 1, torn.hash);
	syslog_entry(en, en->event, seq, line.hash);
	if (seq_out)
		*seq_out = seq;
	if (hash_out)
		memcpy(hash_out, line.hash, sizeof(line.hash));
	r = 0;
	goto out;
build_failed:
	if (r == -E2BIG)
		r = alerr_set(e, ALERR_SOFTWARE, r, "custody.bad_entry",
		              "custody entry %s: longer than %u bytes", en->event, CUSTODY_MAX_LINE);
	else
		r = alerr_set(e, ALERR_OSERR, r, "custody.memory", "custody entry %s: %s",
		              en->event, strerror(-r));
out:
	free(buf);
	free(torn.line);
	free(line.line);
	free(t.window);
	json_object_put(details);
	json_object_put(a.obj);
	if (fd >= 0)
		close(fd);          /* releases the lock */
	return r;
}

int custody_head(const char *path, uint64_t *seq, char hash[CUSTODY_HASH_HEX_LEN + 1],
                 int *torn, struct alerr *e)
{
	struct tail t;
	int fd, r;

	memset(&t, 0, sizeof(t));
	r = digest_library_init(e);
	if (r < 0)
		return r;
	fd = open_for_read(path, e);
	if (fd < 0)
		return fd;
	r = lock_wait(fd, LOCK_SH, path, e);
	if (r == 0)
		r = tail_read(fd, path, &t, e);
	if (r == 0) {
		if (seq)
			*seq = t.seq;
		if (hash)
			memcpy(hash, t.hash, sizeof(t.hash));
		if (torn)
			*torn = t.size > t.good_end;
	}
	free(t.window);
	close(fd);
	return r;
}

/* ------------------------------------------------------------------ */
/* Verifying */

int custody_anchor_parse(const char *s, struct custody_anchor *a)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	uint64_t seq;

	if (!colon || text_parse_u64(s, (size_t)(colon - s), (uint64_t)CUSTODY_MAX_INT, &seq) < 0 ||
	    seq < 1 || !is_hex64(colon + 1, strlen(colon + 1)))
		return -EINVAL;
	a->seq = seq;
	memcpy(a->hash, colon + 1, CUSTODY_HASH_HEX_LEN);
	a->hash[CUSTODY_HASH_HEX_LEN] = '\0';
	return 0;
}

/* Lines, read in a buffer that holds the longest line a torn region
 * may have; longer lines are skipped and only counted. */
struct reader {
	int fd;
	uint64_t remaining;             /* bytes left up to the size at open */
	uint64_t offset;                /* file offset of buf[start] */
	char *buf;
	size_t cap, start, end;
	int eof;
};

struct rline {
	const char *p;                  /* NULL for an overlong line */
	size_t n;
	uint64_t offset;
	uint64_t total;                 /* length, also of an overlong line */
	int terminated;
};

static int reader_fill(struct reader *rd)
{
	size_t want;
	ssize_t n;

	if (rd->start > 0) {
		memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
		rd->end -= rd->start;
		rd->start = 0;
	}
	want = rd->cap - rd->end;
	if ((uint64_t)want > rd->remaining)
		want = (size_t)rd->remaining;
	if (want == 0) {
		rd->eof = 1;
		return 0;
	}
	do {
		n = read(rd->fd, rd->buf + rd->end, want);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		rd->eof = 1;
	rd->end += (size_t)n;
	rd->remaining -= (uint64_t)n;
	return 0;
}

/* 1: a line; 0: end of file; negative errno on a read error. */
static int reader_next(struct reader *rd, struct rline *l)
{
	size_t scanned = 0, avail;
	const char *nl;
	int overlong = 0, r;

	memset(l, 0, sizeof(*l));
	l->offset = rd->offset;
	for (;;) {
		avail = rd->end - rd->start;
		nl = avail > scanned ?
		     memchr(rd->buf + rd->start + scanned, '\n', avail - scanned) : NULL;
		if (nl || rd->eof) {
			size_t len = nl ? (size_t)(nl - (rd->buf + rd->start)) : avail;

			if (!nl && avail == 0 && !overlong)
				return 0;
			l->terminated = nl != NULL;
			l->total += len;
			if (!overlong) {
				l->p = rd->buf + rd->start;
				l->n = len;
			}
			rd->start += len + (nl ? 1 : 0);
			rd->offset += len + (nl ? 1 : 0);
			return 1;
		}
		scanned = avail;
		if (avail == rd->cap) {
			/* Longer than the buffer: count it, keep nothing. */
			overlong = 1;
			l->total += avail;
			rd->offset += avail;
			rd->start = rd->end = 0;
			scanned = 0;
		}
		r = reader_fill(rd);
		if (r < 0)
			return r;
	}
}

struct vstate {
	struct custody_summary *sum;
	const char *path;
	struct alerr *e;
	int have_last;
	uint64_t last_seq, last_line;
	char last_hash[CUSTODY_HASH_HEX_LEN + 1];
	char last_time[CUSTODY_TIME_LEN + 1];
	int64_t last_time_us;
	/* the torn region being read: lines that are not entries */
	int pending;
	uint64_t p_line, p_offset, p_len, p_seq;
	int p_has_seq;
	char p_reason[ALERR_REASON_MAX];
	char p_what[200];
	struct digest *p_digest;
	const struct custody_anchor *anchors;
	size_t n_anchors, next_anchor;
};

__attribute__((format(printf, 5, 6)))
static void problem(struct vstate *vs, uint64_t line, uint64_t seq, const char *reason,
                    const char *fmt, ...)
{
	struct custody_summary *sum = vs->sum;
	char what[ALERR_MESSAGE_MAX - 64];
	va_list ap;

	if (sum->problem)
		return;
	sum->problem = 1;
	sum->bad_line = line;
	sum->bad_seq = seq;
	snprintf(sum->reason, sizeof(sum->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (line == 0)
		snprintf(sum->what, sizeof(sum->what), "%s", what);
	else if (seq)
		snprintf(sum->what, sizeof(sum->what), "line %llu (seq %llu): %s",
		         (unsigned long long)line, (unsigned long long)seq, what);
	else
		snprintf(sum->what, sizeof(sum->what), "line %llu: %s",
		         (unsigned long long)line, what);
}

static void pending_problem(struct vstate *vs)
{
	problem(vs, vs->p_line, vs->p_has_seq ? vs->p_seq : 0, vs->p_reason, "%s", vs->p_what);
	vs->pending = 0;
}

static void pending_add(struct vstate *vs, const struct rline *l, uint64_t lineno,
                        const struct line_info *li)
{
	if (!vs->pending) {
		vs->pending = 1;
		vs->p_line = lineno;
		vs->p_offset = l->offset;
		vs->p_len = 0;
		vs->p_has_seq = li->has_seq;
		vs->p_seq = li->seq;
		snprintf(vs->p_reason, sizeof(vs->p_reason), "%s", li->reason);
		snprintf(vs->p_what, sizeof(vs->p_what), "%s", li->what);
		digest_reset(vs->p_digest);
	} else {
		/* Lines of a region are joined by their newlines; the last
		 * one's newline is the one the appender added. */
		digest_update(vs->p_digest, "\n", 1);
		vs->p_len++;
	}
	if (l->p)
		digest_update(vs->p_digest, l->p, l->n);
	vs->p_len += l->total;
	if (!l->p || vs->p_len > CUSTODY_MAX_TORN)
		pending_problem(vs);   /* too big to be a torn append */
}

static int detail_int(struct json_object *obj, const char *key, int64_t *v)
{
	struct json_object *x = member(member(obj, "details"), key);

	if (!x || !json_object_is_type(x, json_type_int))
		return -1;
	*v = json_object_get_int64(x);
	return 0;
}

/* A custody.torn_tail entry following a torn region: does it record it? */
static int torn_matches(struct vstate *vs, const struct line_info *li)
{
	uint8_t digest[DIGEST_SHA256_LEN];
	char hex[DIGEST_SHA256_HEX_LEN + 1];
	struct json_object *sha = member(member(li->obj, "details"), "torn_sha256");
	int64_t off, bytes;

	if (detail_int(li->obj, "torn_offset", &off) < 0 ||
	    detail_int(li->obj, "torn_bytes", &bytes) < 0 || !sha)
		return 0;
	digest_final(vs->p_digest, digest);
	digest_hex(hex, digest);
	return off >= 0 && (uint64_t)off == vs->p_offset && bytes >= 0 &&
	       (uint64_t)bytes == vs->p_len && strcmp(json_object_get_string(sha), hex) == 0;
}

static void chain_check(struct vstate *vs, uint64_t lineno, const struct line_info *li)
{
	const struct custody_anchor *an;

	if (!vs->have_last) {
		if (li->seq != 1)
			problem(vs, lineno, li->seq, "custody.seq_gap",
			        "the first entry has seq %llu, not 1", (unsigned long long)li->seq);
		else if (strcmp(li->prev, ZERO_HASH) != 0)
			problem(vs, lineno, li->seq, "custody.prev_mismatch",
			        "the first entry's prev is not 64 zeros");
	} else if (li->seq != vs->last_seq + 1) {
		problem(vs, lineno, li->seq, "custody.seq_gap", "seq %llu follows %llu",
		        (unsigned long long)li->seq, (unsigned long long)vs->last_seq);
	} else if (strcmp(li->prev, vs->last_hash) != 0) {
		problem(vs, lineno, li->seq, "custody.prev_mismatch",
		        "prev does not match entry %llu's hash (line %llu)",
		        (unsigned long long)vs->last_seq, (unsigned long long)vs->last_line);
	} else if (li->time_us < vs->last_time_us) {
		problem(vs, lineno, li->seq, "custody.time_backwards",
		        "time goes backwards: %s is before %s (seq %llu)", li->time,
		        vs->last_time, (unsigned long long)vs->last_seq);
	}
	while (vs->next_anchor < vs->n_anchors &&
	       vs->anchors[vs->next_anchor].seq <= li->seq) {
		an = &vs->anchors[vs->next_anchor++];
		if (an->seq == li->seq && strcmp(an->hash, li->hash) != 0)
			problem(vs, lineno, li->seq, "custody.anchor_mismatch",
			        "anchor mismatch: the database recorded hash %.16s... for seq %llu, the log has %.16s...",
			        an->hash, (unsigned long long)an->seq, li->hash);
	}
}

static int anchor_cmp(const void *a, const void *b)
{
	const struct custody_anchor *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int custody_verify(const char *path, const struct custody_anchor *anchors, size_t n_anchors,
                   custody_record_fn fn, void *arg, struct custody_summary *sum,
                   struct alerr *e)
{
	struct custody_summary local;
	struct custody_anchor *sorted = NULL;
	struct json_tokener *tok = NULL;
	struct reader rd = { .fd = -1 };
	struct vstate vs;
	struct line_info li;
	struct rline l;
	struct stat st;
	uint64_t lineno = 0;
	int r;

	if (!sum)
		sum = &local;
	memset(sum, 0, sizeof(*sum));
	memcpy(sum->head_hash, ZERO_HASH, sizeof(ZERO_HASH));
	memset(&vs, 0, sizeof(vs));
	memset(&li, 0, sizeof(li));
	vs.sum = sum;
	vs.path = path;
	vs.e = e;
	if (n_anchors > CUSTODY_MAX_ANCHORS)
		return alerr_set(e, ALERR_USAGE, -E2BIG, "custody.anchors",
		                 "more than %u anchors", CUSTODY_MAX_ANCHORS);
	r = digest_library_init(e);
	if (r < 0)
		return r;
	rd.fd = open_for_read(path, e);
	if (rd.fd < 0)
		return rd.fd;
	/* A shared lock for a moment: the size read then ends on a whole
	 * append, since appenders write under the exclusive lock. */
	r = lock_wait(rd.fd, LOCK_SH, path, e);
	if (r < 0)
		goto out;
	if (fstat(rd.fd, &st) != 0) {
		r = alerr_set(e, ALERR_IOERR, -errno, "custody.read", "%s: %s", path, strerror(errno));
		goto out;
	}
	flock(rd.fd, LOCK_UN);
	rd.remaining = (uint64_t)st.st_size;
	rd.cap = CUSTODY_MAX_TORN + 1;
	rd.buf = malloc(rd.cap);
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (n_anchors > 0)
		sorted = malloc(n_anchors * sizeof(*sorted));
	if (!rd.buf || !tok || (n_anchors > 0 && !sorted) || digest_new(&vs.p_digest, NULL) < 0) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "custody.memory", "out of memory");
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	if (n_anchors > 0) {
		memcpy(sorted, anchors, n_anchors * sizeof(*sorted));
		qsort(sorted, n_anchors, sizeof(*sorted), anchor_cmp);
	}
	vs.anchors = sorted;
	vs.n_anchors = n_anchors;

	for (;;) {
		r = reader_next(&rd, &l);
		if (r < 0) {
			r = alerr_set(e, ALERR_IOERR, r, "custody.read", "cannot read %s: %s", path,
			              strerror(-r));
			goto out;
		}
		if (r == 0)
			break;
		lineno++;
		sum->lines = lineno;
		if (!l.terminated) {
			/* Bytes after the last newline: an append that did not
			 * finish. The next append records them. */
			if (!vs.pending) {
				memset(&li, 0, sizeof(li));
				if (l.p)
					line_check(tok, l.p, l.n, &li);
				json_object_put(li.obj);
				li.obj = NULL;
				problem(&vs, lineno, li.has_seq ? li.seq : 0, "custody.torn_line",
				        "torn line: no newline at the end of the log (an append did not finish; the next append records it)");
			} else {
				problem(&vs, vs.p_line, vs.p_has_seq ? vs.p_seq : 0, "custody.torn_line",
				        "torn line: %llu bytes at the end of the log that no custody.torn_tail entry records (an append did not finish; the next append records them)",
				        (unsigned long long)(vs.p_len + 1 + l.total));
				vs.pending = 0;
			}
			break;
		}
		if (!l.p) {
			memset(&li, 0, sizeof(li));
			bad_line(&li, "custody.line_too_long", "longer than %u bytes", CUSTODY_MAX_LINE);
			pending_add(&vs, &l, lineno, &li);
			continue;
		}
		if (line_check(tok, l.p, l.n, &li) < 0) {
			pending_add(&vs, &l, lineno, &li);
			json_object_put(li.obj);
			li.obj = NULL;
			continue;
		}
		if (vs.pending) {
			if (strcmp(li.event, CUSTODY_EV_TORN_TAIL) != 0) {
				pending_problem(&vs);
			} else if (torn_matches(&vs, &li)) {
				sum->torn_recorded++;
				vs.pending = 0;
			} else {
				problem(&vs, vs.p_line, vs.p_has_seq ? vs.p_seq : 0, "custody.torn_mismatch",
				        "torn line: these %llu bytes at offset %llu are not the ones the custody.torn_tail entry at line %llu (seq %llu) records",
				        (unsigned long long)vs.p_len, (unsigned long long)vs.p_offset,
				        (unsigned long long)lineno, (unsigned long long)li.seq);
				vs.pending = 0;
			}
		} else if (strcmp(li.event, CUSTODY_EV_TORN_TAIL) == 0) {
			int64_t bytes = 0;

			detail_int(li.obj, "torn_bytes", &bytes);
			problem(&vs, lineno, li.seq, "custody.torn_missing",
			        "custody.torn_tail records %lld torn bytes before it that are not in the log",
			        (long long)bytes);
		}
		chain_check(&vs, lineno, &li);
		vs.have_last = 1;
		vs.last_seq = li.seq;
		vs.last_line = lineno;
		vs.last_time_us = li.time_us;
		snprintf(vs.last_hash, sizeof(vs.last_hash), "%s", li.hash);
		snprintf(vs.last_time, sizeof(vs.last_time), "%s", li.time);
		sum->entries++;
		sum->head_seq = li.seq;
		memcpy(sum->head_hash, vs.last_hash, sizeof(sum->head_hash));
		memcpy(sum->head_time, vs.last_time, sizeof(sum->head_time));
		if (fn) {
			struct custody_record rec = {
				.line = lineno, .seq = li.seq, .obj = li.obj, .raw = l.p, .raw_len = l.n,
			};

			r = fn(&rec, arg);
			if (r != 0)
				goto out;
		}
		json_object_put(li.obj);
		li.obj = NULL;
	}
	if (vs.pending)
		pending_problem(&vs);
	for (; vs.next_anchor < vs.n_anchors; vs.next_anchor++) {
		const struct custody_anchor *an = &vs.anchors[vs.next_anchor];

		if (an->seq > sum->head_seq) {
			problem(&vs, 0, an->seq, "custody.log_cut",
			        "log cut: it ends at seq %llu (line %llu), but the database anchors seq %llu (hash %.16s...)",
			        (unsigned long long)sum->head_seq, (unsigned long long)vs.last_line,
			        (unsigned long long)an->seq, an->hash);
			break;
		}
	}
	if (sum->problem) {
		r = alerr_set(e, ALERR_REJECT, -EBADMSG, sum->reason, "%s: %s", path, sum->what);
		goto out;
	}
	r = 0;
out:
	json_object_put(li.obj);
	json_tokener_free(tok);
	digest_free(vs.p_digest);
	free(sorted);
	free(rd.buf);
	close(rd.fd);
	return r;
}
