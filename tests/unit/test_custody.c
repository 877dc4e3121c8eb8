/* custody: the hash-chained log (appends, torn tails, locking, unsafe
 * files, a full filesystem), its verification (edits, deletions, swaps,
 * forgeries, cut tails through anchors), and the audit stages (list in
 * three formats, show, filters). */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alerr.h"
#include "audit.h"
#include "bounds.h"
#include "custody.h"
#include "digest.h"
#include "harness.h"
#include "manifest.h"

#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define RUN1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define RUN2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define ID_A "6f1c2a4e-0b7d-4c52-9a55-3f0e2d1c4b6a"
#define ID_B "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static void init(void)
{
	custody_set_syslog(0);
}

TestSuite(custody, .init = init);

/* ------------------------------------------------------------------ */
/* Helpers */

static char *log_in(const char *dir)
{
	char *d = harness_mkdir(dir, 0700);
	char *p = harness_strdup_printf("%s/custody.log", d);

	free(d);
	return p;
}

/* Append one entry; the nth of a varied series (device, bundle, signed
 * facts, details), so that edits can hit any member. */
static uint64_t append_nth(const char *log, unsigned int i, char hash[65])
{
	static const char *const events[] = {
		CUSTODY_EV_MEDIA_INSERTED, CUSTODY_EV_MEDIA_QUARANTINED, CUSTODY_EV_BUNDLE_VERIFIED,
		CUSTODY_EV_RESTORE_INTENT, CUSTODY_EV_RESTORE_DONE,
	};
	struct custody_entry *en;
	struct alerr e;
	uint8_t sha[32];
	uint64_t seq = 0;
	char sbuf[32];

	alerr_clear(&e);
	memset(sha, (int)i, sizeof(sha));
	cr_assert_eq(custody_entry_new(&en, CUSTODY_SIDE_HIGH, events[i % 5],
	                               i % 5 == 0 ? CUSTODY_INFO : CUSTODY_OK, &e), 0, "%s", e.message);
	custody_entry_set_run(en, RUN1);
	if (i % 5 == 0 || i % 5 == 1) {
		struct custody_device d = {
			.devnode = "/dev/sdc", .vendor = "Kingston", .model = "DataTraveler 3.0",
			.serial = "4C530001230517115042", .bus_path = "pci-0000:00:14.0-usb-0:1:1.0",
			.size = 16008609792u, .has_size = 1,
		};
		custody_entry_set_device(en, &d);
	}
	if (i % 5 != 0) {
		struct custody_bundle b = {
			.channel = "nvd", .sequence = 42 + i, .has_sequence = 1, .bundle_id = ID_A,
			.manifest_sha256 = sha, .image_sha256 = sha, .verified = i % 5 >= 2,
		};
		custody_entry_set_bundle(en, &b);
	}
	if (i % 5 == 2) {
		struct manifest *m = manifest_new();

		cr_assert_not_null(m);
		cr_assert_eq(manifest_set_text(m, MANIFEST_F_WRITER_HOST, "low-01.example.org", &e), 0);
		cr_assert_eq(manifest_set_text(m, MANIFEST_F_COURIER, "Sgt. Jane Doe", &e), 0);
		cr_assert_eq(manifest_set_text(m, MANIFEST_F_MEDIA_SERIAL, "4C530001230517115042", &e), 0);
		cr_assert_eq(manifest_set_text(m, MANIFEST_F_SNAPSHOT, "00000003-0000001B-1", &e), 0);
		cr_assert_eq(manifest_set_created(m, INT64_C(1714557600), &e), 0);
		cr_assert_eq(manifest_set_valid_until(m, INT64_C(1715767200), &e), 0);
		cr_assert_eq(manifest_add_signer(m, "0123456789ABCDEF0123456789ABCDEF01234567", &e), 0);
		cr_assert_eq(custody_entry_set_signed(en, m), 0);
		manifest_free(m);
	}
	snprintf(sbuf, sizeof(sbuf), "item %u", i);
	custody_entry_add_detail_str(en, "note", sbuf);
	custody_entry_add_detail_int(en, "index", i);
	cr_assert_eq(custody_append(log, en, &seq, hash, &e), 0, "%s [%s]", e.message, e.reason);
	custody_entry_free(en);
	return seq;
}

static void fill(const char *log, unsigned int n)
{
	char hash[65];
	unsigned int i;

	for (i = 0; i < n; i++)
		cr_assert_eq(append_nth(log, i, hash), i + 1);
}

/* The log as lines (without newlines); *trailing is set when the file
 * does not end with a newline. */
struct lines {
	char **v;
	size_t n;
};

static struct lines read_lines(const char *log)
{
	struct lines l = { 0 };
	size_t len;
	char *text = harness_read_file(log, &len), *p, *nl;

	cr_assert_not_null(text);
	l.v = calloc(len + 2, sizeof(char *));
	for (p = text; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(text + len - p));
		if (!nl)
			nl = text + len;
		l.v[l.n++] = strndup(p, (size_t)(nl - p));
	}
	free(text);
	return l;
}

static void write_lines(const char *log, const struct lines *l, int final_newline)
{
	size_t i, len = 0, o = 0;
	char *buf;

	for (i = 0; i < l->n; i++)
		len += strlen(l->v[i]) + 1;
	buf = malloc(len + 1);
	for (i = 0; i < l->n; i++) {
		size_t k = strlen(l->v[i]);

		memcpy(buf + o, l->v[i], k);
		o += k;
		if (i + 1 < l->n || final_newline)
			buf[o++] = '\n';
	}
	unlink(log);
	harness_write_file(log, buf, o);
	chmod(log, 0640);
	free(buf);
}

/* Replace the first occurrence of from in line i. */
static void edit(struct lines *l, size_t i, const char *from, const char *to)
{
	char *s = l->v[i], *at = strstr(s, from), *n;

	cr_assert_not_null(at, "\"%s\" not in line %zu", from, i + 1);
	n = harness_strdup_printf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
	free(s);
	l->v[i] = n;
}

static void free_lines(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int verify(const char *log, struct custody_summary *sum, struct alerr *e)
{
	alerr_clear(e);
	return custody_verify(log, NULL, 0, NULL, NULL, sum, e);
}

static void expect_bad(const char *log, const char *reason, uint64_t line, const char *what)
{
	struct custody_summary sum;
	struct alerr e;

	cr_assert_eq(verify(log, &sum, &e), -EBADMSG, "verify passed: %s", sum.what);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, reason, "reason %s (%s)", e.reason, e.message);
	cr_assert_str_eq(sum.reason, reason);
	cr_assert(sum.problem);
	cr_assert_eq(sum.bad_line, line, "line %llu: %s", (unsigned long long)sum.bad_line, sum.what);
	cr_assert_not_null(strstr(sum.what, what), "\"%s\" not in \"%s\"", what, sum.what);
	cr_assert_not_null(strstr(e.message, what));
}

static void expect_ok(const char *log, uint64_t entries)
{
	struct custody_summary sum;
	struct alerr e;

	cr_assert_eq(verify(log, &sum, &e), 0, "%s [%s]", e.message, e.reason);
	cr_assert_eq(sum.entries, entries, "%llu entries", (unsigned long long)sum.entries);
	cr_assert_eq(sum.head_seq, entries);
}

/* Hand-built lines, hashed here from the format's definition: a second
 * implementation of doc/custody-log.md section 3. */
#define ACTOR "{\"user\":\"auditor\",\"uid\":1000,\"loginuid\":1000,\"pid\":4242," \
	"\"unit\":\"airlock-import@sdc.service\",\"invocation\":null,\"courier\":null}"
#define DEV_C "{\"devnode\":\"/dev/sdc\",\"vendor\":\"Kingston\",\"model\":\"DataTraveler 3.0\"," \
	"\"serial\":\"4C530001\",\"bus_path\":\"pci-0000:00:14.0-usb-0:1:1.0\",\"size\":16008609792}"
#define DEV_D "{\"devnode\":\"/dev/sdd\",\"vendor\":\"=cmd\",\"model\":\"x,y\"," \
	"\"serial\":\"S\\\"Q\",\"bus_path\":null,\"size\":null}"
#define BUNDLE_Q "{\"channel\":null,\"sequence\":null,\"bundle_id\":null,\"manifest_sha256\":null," \
	"\"image_sha256\":\"" SHA_A "\",\"verified\":false}"
#define BUNDLE_A "{\"channel\":\"nvd\",\"sequence\":42,\"bundle_id\":\"" ID_A "\"," \
	"\"manifest_sha256\":\"" SHA_B "\",\"image_sha256\":\"" SHA_A "\",\"verified\":true}"
#define BUNDLE_B "{\"channel\":\"nvd\",\"sequence\":43,\"bundle_id\":\"" ID_B "\"," \
	"\"manifest_sha256\":\"" SHA_C "\",\"image_sha256\":\"" SHA_C "\",\"verified\":false}"
#define SIGNED_A "{\"writer_host\":\"low-01.example.org\",\"courier\":\"Sgt. Jane Doe\"," \
	"\"media_vendor\":\"Kingston\",\"media_model\":null,\"media_serial\":\"4C530001\"," \
	"\"snapshot\":\"00000003-0000001B-1\",\"created\":\"2024-05-01T10:00:00Z\"," \
	"\"valid_until\":\"2024-05-15T10:00:00Z\",\"signers\":[\"0123456789ABCDEF0123456789ABCDEF01234567\"]}"

struct hb {
	uint64_t seq;
	char prev[65];
	struct lines l;
	char hashes[16][65];
};

static void hb_init(struct hb *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->prev, ZEROS, sizeof(h->prev));
	h->l.v = calloc(64, sizeof(char *));
}

static char *hb_make(uint64_t seq, const char *time, const char *rest, const char *prev,
                     char hash[65])
{
	uint8_t d[32];
	char *body = harness_strdup_printf("{\"v\":1,\"seq\":%llu,\"time\":\"%s\",\"host\":\"h1\",%s,"
	                                   "\"prev\":\"%s\"}", (unsigned long long)seq, time,
	                                   rest, prev);
	char *line;

	cr_assert_eq(digest_buffer(body, strlen(body), d), 0);
	digest_hex(hash, d);
	line = harness_strdup_printf("%.*s,\"hash\":\"%s\"}", (int)(strlen(body) - 1), body, hash);
	free(body);
	return line;
}

/* rest: the members from "side" to "details". */
static void hb_add(struct hb *h, const char *time, const char *rest)
{
	char hash[65];

	h->seq++;
	h->l.v[h->l.n++] = hb_make(h->seq, time, rest, h->prev, hash);
	memcpy(h->prev, hash, sizeof(hash));
	if (h->seq < 16)
		memcpy(h->hashes[h->seq], hash, sizeof(hash));
}

static char *rest(const char *run, const char *event, const char *outcome, const char *reason,
                  const char *bundle, const char *device, const char *signed_,
                  const char *details)
{
	return harness_strdup_printf("\"side\":\"high\",\"run\":%s,\"event\":\"%s\",\"outcome\":\"%s\","
	                             "\"reason\":%s,\"actor\":" ACTOR ",\"bundle\":%s,\"device\":%s,"
	                             "\"signed\":%s,\"details\":%s", run, event, outcome, reason,
	                             bundle, device, signed_, details);
}

static void hb_add_simple(struct hb *h, const char *time, const char *event)
{
	char *r = rest("null", event, "info", "null", "null", "null", "null", "{}");

	hb_add(h, time, r);
	free(r);
}

/* The trail of two imports used by the list and show tests. */
static struct hb *trail(const char *log)
{
	static struct hb h;
	char *r;

	hb_init(&h);
	r = rest("\"" RUN1 "\"", "media.inserted", "info", "null", "null", DEV_C, "null", "{}");
	hb_add(&h, "2024-05-01T14:30:00.000001Z", r);
	free(r);
	r = rest("\"" RUN1 "\"", "media.quarantined", "ok", "null", BUNDLE_Q, DEV_C, "null",
	         "{\"bytes\":1048576}");
	hb_add(&h, "2024-05-01T14:30:05.000000Z", r);
	free(r);
	r = rest("\"" RUN1 "\"", "bundle.verified", "ok", "null", BUNDLE_A, "null", SIGNED_A, "{}");
	hb_add(&h, "2024-05-01T14:30:10.000000Z", r);
	free(r);
	r = rest("\"" RUN1 "\"", "restore.intent", "info", "null", BUNDLE_A, "null", "null", "{}");
	hb_add(&h, "2024-05-01T14:30:20.000000Z", r);
	free(r);
	r = rest("\"" RUN1 "\"", "restore.done", "ok", "null", BUNDLE_A, "null", "null",
	         "{\"rows\":12345,\"note\":\"a, b\"}");
	hb_add(&h, "2024-05-01T14:30:30.000000Z", r);
	free(r);
	r = rest("\"" RUN2 "\"", "bundle.rejected", "refused", "\"signature.untrusted\"", BUNDLE_B,
	         DEV_D, "null", "{}");
	hb_add(&h, "2024-05-02T09:00:00.000000Z", r);
	free(r);
	write_lines(log, &h.l, 1);
	return &h;
}

static char *capture_list(const char *log, const struct audit_filter *f, enum audit_format fmt,
                          int *r, struct alerr *e)
{
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);

	cr_assert_not_null(fp);
	alerr_clear(e);
	*r = audit_list(log, f, fmt, fp, e);
	fclose(fp);
	return out;
}

/* ------------------------------------------------------------------ */
/* Appending */

Test(custody, append_creates_directory_and_file)
{
	char *base = harness_mkdir("create", 0700);
	char *log = harness_strdup_printf("%s/sub/custody.log", base);
	char hash[65], head[65];
	struct stat st;
	struct lines l;
	uint64_t seq;
	int torn = 1;
	struct alerr e;

	char *sub = harness_strdup_printf("%s/sub", base);

	cr_assert_eq(append_nth(log, 0, hash), 1);
	cr_assert_eq(stat(log, &st), 0);
	cr_assert_eq(st.st_mode & 07777 & ~(mode_t)0640, 0, "mode %o", st.st_mode & 07777);
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert_eq(st.st_mode & 07777 & ~(mode_t)0750, 0, "mode %o", st.st_mode & 07777);
	free(sub);
	alerr_clear(&e);
	cr_assert_eq(custody_head(log, &seq, head, &torn, &e), 0, "%s", e.message);
	cr_assert_eq(seq, 1);
	cr_assert_str_eq(head, hash);
	cr_assert_eq(torn, 0);
	l = read_lines(log);
	cr_assert_eq(l.n, 1);
	cr_assert(strncmp(l.v[0], "{\"v\":1,\"seq\":1,\"time\":\"", 23) == 0, "%s", l.v[0]);
	cr_assert_not_null(strstr(l.v[0], "\"prev\":\"" ZEROS "\",\"hash\":\""));
	cr_assert_not_null(strstr(l.v[0], "\"side\":\"high\",\"run\":\"" RUN1 "\",\"event\":\"media.inserted\""));
	free_lines(&l);
	free(log);
	free(base);
}

Test(custody, hash_is_sha256_of_the_line_without_its_last_member)
{
	char *log = log_in("hashdef");
	char hash[65], hex[65];
	struct lines l;
	uint8_t d[32];
	size_t i, n;
	char *body;

	fill(log, 5);
	l = read_lines(log);
	cr_assert_eq(l.n, 5);
	for (i = 0; i < l.n; i++) {
		n = strlen(l.v[i]);
		cr_assert(n > 75);
		cr_assert_eq(strncmp(l.v[i] + n - 75, ",\"hash\":\"", 9), 0);
		body = harness_strdup_printf("%.*s}", (int)(n - 75), l.v[i]);
		cr_assert_eq(digest_buffer(body, strlen(body), d), 0);
		digest_hex(hex, d);
		cr_assert_eq(strncmp(l.v[i] + n - 66, hex, 64), 0, "line %zu", i + 1);
		if (i > 0) {
			memcpy(hash, l.v[i - 1] + strlen(l.v[i - 1]) - 66, 64);
			hash[64] = '\0';
			cr_assert_not_null(strstr(l.v[i], hash), "prev of line %zu", i + 1);
		}
		free(body);
	}
	free_lines(&l);
	free(log);
}

static int count_cb(const struct custody_record *r, void *arg)
{
	uint64_t *n = arg;

	cr_assert_eq(custody_record_seq(r), *n + 1);
	cr_assert_eq(custody_record_line(r), *n + 1);
	(*n)++;
	return 0;
}

Test(custody, clean_log_of_many_entries_verifies)
{
	char *log = log_in("clean");
	struct custody_summary sum;
	char hash[65];
	uint64_t n = 0;
	struct alerr e;
	unsigned int i;

	for (i = 0; i < 300; i++)
		cr_assert_eq(append_nth(log, i, hash), i + 1);
	alerr_clear(&e);
	cr_assert_eq(custody_verify(log, NULL, 0, count_cb, &n, &sum, &e), 0, "%s", e.message);
	cr_assert_eq(n, 300);
	cr_assert_eq(sum.entries, 300);
	cr_assert_eq(sum.lines, 300);
	cr_assert_eq(sum.head_seq, 300);
	cr_assert_str_eq(sum.head_hash, hash);
	cr_assert_eq(sum.torn_recorded, 0);
	cr_assert_eq(sum.problem, 0);
	free(log);
}

Test(custody, empty_log_verifies)
{
	char *log = log_in("empty");

	harness_write_file(log, "", 0);
	expect_ok(log, 0);
	free(log);
}

Test(custody, missing_log_is_no_input)
{
	char *log = log_in("missing");
	struct custody_summary sum;
	struct alerr e;

	cr_assert_lt(verify(log, &sum, &e), 0);
	cr_assert_eq(e.cls, ALERR_NOINPUT);
	cr_assert_str_eq(e.reason, "custody.missing");
	free(log);
}

/* ------------------------------------------------------------------ */
/* Tampering: each detected, the first bad entry named */

static void edit_line5(const char *dir, const char *from, const char *to, const char *reason,
                       uint64_t line, const char *what)
{
	char *log = log_in(dir);
	struct lines l;

	fill(log, 10);
	expect_ok(log, 10);
	l = read_lines(log);
	edit(&l, 4, from, to);
	write_lines(log, &l, 1);
	expect_bad(log, reason, line, what);
	free_lines(&l);
	free(log);
}

Test(custody, edited_event)
{
	edit_line5("ed-event", "\"event\":\"restore.done\"", "\"event\":\"restore.fail\"",
	           "custody.hash_mismatch", 5, "line 5 (seq 5): hash mismatch");
}

Test(custody, edited_outcome)
{
	edit_line5("ed-outcome", "\"outcome\":\"ok\"", "\"outcome\":\"refused\"",
	           "custody.hash_mismatch", 5, "line 5 (seq 5): hash mismatch");
}

Test(custody, edited_time)
{
	edit_line5("ed-time", "\"time\":\"20", "\"time\":\"21", "custody.hash_mismatch", 5,
	           "line 5 (seq 5): hash mismatch");
}

Test(custody, edited_bundle_sequence)
{
	edit_line5("ed-seq", "\"sequence\":46", "\"sequence\":47", "custody.hash_mismatch", 5,
	           "line 5 (seq 5): hash mismatch");
}

Test(custody, edited_detail)
{
	edit_line5("ed-detail", "\"note\":\"item 4\"", "\"note\":\"item 5\"",
	           "custody.hash_mismatch", 5, "line 5 (seq 5): hash mismatch");
}

Test(custody, edited_actor)
{
	edit_line5("ed-actor", "\"uid\":", "\"uid\":1", "custody.hash_mismatch", 5,
	           "line 5 (seq 5): hash mismatch");
}

Test(custody, edited_hash)
{
	char *log = log_in("ed-hash");
	struct lines l;
	char *h;

	fill(log, 10);
	l = read_lines(log);
	h = l.v[4] + strlen(l.v[4]) - 3;
	*h = *h == '0' ? '1' : '0';
	write_lines(log, &l, 1);
	expect_bad(log, "custody.hash_mismatch", 5, "line 5 (seq 5): hash mismatch");
	free_lines(&l);
	free(log);
}

Test(custody, edited_seq)
{
	edit_line5("ed-seqno", "\"seq\":5,", "\"seq\":6,", "custody.hash_mismatch", 5,
	           "line 5 (seq 6): hash mismatch");
}

Test(custody, edited_whitespace_is_not_canonical)
{
	edit_line5("ed-space", "\"seq\":5,", "\"seq\": 5,", "custody.not_canonical", 5,
	           "line 5 (seq 5): not in canonical form");
}

Test(custody, duplicate_member_is_not_canonical)
{
	edit_line5("ed-dup", "\"outcome\":\"ok\"", "\"outcome\":\"refused\",\"outcome\":\"ok\"",
	           "custody.not_canonical", 5, "not in canonical form");
}

Test(custody, escaped_character_is_not_canonical)
{
	edit_line5("ed-escape", "\"host\":\"", "\"host\":\"\\u0041", "custody.not_canonical", 5,
	           "not in canonical form");
}

Test(custody, edited_line_not_json)
{
	edit_line5("ed-json", "{\"v\":1,", "{\"v\":1,,", "custody.not_json", 5,
	           "line 5: not a JSON object");
}

/* Edited with its hash recomputed: the line is whole, the next one's
 * prev no longer matches. */
Test(custody, edited_and_rehashed_is_caught_at_the_next_entry)
{
	char *log = log_in("ed-rehash");
	char hash[65], *line, *body;
	struct lines l;
	uint8_t d[32];
	size_t n;

	fill(log, 10);
	l = read_lines(log);
	edit(&l, 4, "\"note\":\"item 4\"", "\"note\":\"item X\"");
	n = strlen(l.v[4]);
	body = harness_strdup_printf("%.*s}", (int)(n - 75), l.v[4]);
	digest_buffer(body, strlen(body), d);
	digest_hex(hash, d);
	line = harness_strdup_printf("%.*s,\"hash\":\"%s\"}", (int)(n - 75), l.v[4], hash);
	free(l.v[4]);
	l.v[4] = line;
	write_lines(log, &l, 1);
	expect_bad(log, "custody.prev_mismatch", 6,
	           "line 6 (seq 6): prev does not match entry 5's hash (line 5)");
	free(body);
	free_lines(&l);
	free(log);
}

Test(custody, deleted_entry)
{
	char *log = log_in("deleted");
	struct lines l;

	fill(log, 10);
	l = read_lines(log);
	free(l.v[4]);
	memmove(&l.v[4], &l.v[5], (l.n - 5) * sizeof(char *));
	l.n--;
	write_lines(log, &l, 1);
	expect_bad(log, "custody.seq_gap", 5, "line 5 (seq 6): seq 6 follows 4");
	free_lines(&l);
	free(log);
}

Test(custody, deleted_first_entry)
{
	char *log = log_in("deleted1");
	struct lines l;

	fill(log, 3);
	l = read_lines(log);
	free(l.v[0]);
	memmove(&l.v[0], &l.v[1], (l.n - 1) * sizeof(char *));
	l.n--;
	write_lines(log, &l, 1);
	expect_bad(log, "custody.seq_gap", 1, "the first entry has seq 2, not 1");
	free_lines(&l);
	free(log);
}

Test(custody, swapped_entries)
{
	char *log = log_in("swapped");
	struct lines l;
	char *t;

	fill(log, 10);
	l = read_lines(log);
	t = l.v[4];
	l.v[4] = l.v[5];
	l.v[5] = t;
	write_lines(log, &l, 1);
	expect_bad(log, "custody.seq_gap", 5, "line 5 (seq 6): seq 6 follows 4");
	free_lines(&l);
	free(log);
}

Test(custody, forged_entry_with_a_wrong_prev)
{
	char *log = log_in("forged");
	struct lines l;
	char hash[65], *r;

	fill(log, 10);
	l = read_lines(log);
	r = rest("null", "restore.done", "ok", "null", BUNDLE_A, "null", "null", "{}");
	l.v[l.n++] = hb_make(11, "2999-01-01T00:00:00.000000Z", r, SHA_A, hash);
	write_lines(log, &l, 1);
	expect_bad(log, "custody.prev_mismatch", 11,
	           "line 11 (seq 11): prev does not match entry 10's hash");
	free(r);
	free_lines(&l);
	free(log);
}

Test(custody, forged_entry_copied_with_another_seq)
{
	char *log = log_in("forged2");
	struct lines l;
	char *copy;

	fill(log, 10);
	l = read_lines(log);
	copy = strdup(l.v[9]);
	l.v[l.n++] = copy;
	edit(&l, 10, "\"seq\":10,", "\"seq\":11,");
	write_lines(log, &l, 1);
	expect_bad(log, "custody.hash_mismatch", 11, "line 11 (seq 11): hash mismatch");
	free_lines(&l);
	free(log);
}

Test(custody, inserted_blank_line)
{
	char *log = log_in("blank");
	struct lines l;

	fill(log, 4);
	l = read_lines(log);
	memmove(&l.v[3], &l.v[2], (l.n - 2) * sizeof(char *));
	l.v[2] = strdup("");
	l.n++;
	write_lines(log, &l, 1);
	expect_bad(log, "custody.not_json", 3, "line 3: not a JSON object");
	free_lines(&l);
	free(log);
}

Test(custody, time_going_backwards)
{
	char *log = log_in("backwards");
	struct hb h;

	hb_init(&h);
	hb_add_simple(&h, "2024-05-01T10:00:00.000000Z", "media.inserted");
	hb_add_simple(&h, "2024-05-01T10:00:01.000000Z", "media.inserted");
	hb_add_simple(&h, "2024-05-01T09:59:59.999999Z", "media.inserted");
	write_lines(log, &h.l, 1);
	expect_bad(log, "custody.time_backwards", 3,
	           "line 3 (seq 3): time goes backwards: 2024-05-01T09:59:59.999999Z is before 2024-05-01T10:00:01.000000Z (seq 2)");
	free_lines(&h.l);
	free(log);
}

Test(custody, first_prev_must_be_zeros)
{
	char *log = log_in("firstprev");
	struct lines l = { 0 };
	char hash[65], *r = rest("null", "media.inserted", "info", "null", "null", "null", "null", "{}");

	l.v = calloc(2, sizeof(char *));
	l.v[l.n++] = hb_make(1, "2024-05-01T10:00:00.000000Z", r, SHA_A, hash);
	write_lines(log, &l, 1);
	expect_bad(log, "custody.prev_mismatch", 1, "the first entry's prev is not 64 zeros");
	free(r);
	free_lines(&l);
	free(log);
}

static void bad_hand_line(const char *dir, const char *time, const char *rest_, const char *reason,
                          const char *what)
{
	char *log = log_in(dir);
	struct lines l = { 0 };
	char hash[65];

	l.v = calloc(2, sizeof(char *));
	l.v[l.n++] = hb_make(1, time, rest_, ZEROS, hash);
	write_lines(log, &l, 1);
	expect_bad(log, reason, 1, what);
	free_lines(&l);
	free(log);
}

Test(custody, member_out_of_order)
{
	bad_hand_line("order", "2024-05-01T10:00:00.000000Z",
	              "\"side\":\"high\",\"event\":\"media.inserted\",\"run\":null,\"outcome\":\"info\","
	              "\"reason\":null,\"actor\":" ACTOR ",\"bundle\":null,\"device\":null,"
	              "\"signed\":null,\"details\":{}", "custody.bad_member",
	              "member \"event\" where \"run\" belongs");
}

Test(custody, member_of_the_wrong_type)
{
	bad_hand_line("type", "2024-05-01T10:00:00.000000Z",
	              "\"side\":\"high\",\"run\":null,\"event\":\"media.inserted\",\"outcome\":\"info\","
	              "\"reason\":null,\"actor\":" ACTOR ",\"bundle\":null,\"device\":{\"devnode\":1,"
	              "\"vendor\":null,\"model\":null,\"serial\":null,\"bus_path\":null,\"size\":null},"
	              "\"signed\":null,\"details\":{}", "custody.bad_member",
	              "member \"device.devnode\" is not a string or null");
}

Test(custody, not_a_real_time)
{
	bad_hand_line("feb30", "2024-02-30T10:00:00.000000Z",
	              "\"side\":\"high\",\"run\":null,\"event\":\"media.inserted\",\"outcome\":\"info\","
	              "\"reason\":null,\"actor\":" ACTOR ",\"bundle\":null,\"device\":null,"
	              "\"signed\":null,\"details\":{}", "custody.bad_member",
	              "member \"time\": not a UTC time");
}

Test(custody, unknown_side)
{
	bad_hand_line("side", "2024-05-01T10:00:00.000000Z",
	              "\"side\":\"middle\",\"run\":null,\"event\":\"media.inserted\",\"outcome\":\"info\","
	              "\"reason\":null,\"actor\":" ACTOR ",\"bundle\":null,\"device\":null,"
	              "\"signed\":null,\"details\":{}", "custody.bad_member",
	              "member \"side\": not low or high");
}

Test(custody, control_character_in_text)
{
	bad_hand_line("control", "2024-05-01T10:00:00.000000Z",
	              "\"side\":\"high\",\"run\":null,\"event\":\"media.inserted\",\"outcome\":\"info\","
	              "\"reason\":null,\"actor\":" ACTOR ",\"bundle\":null,\"device\":null,"
	              "\"signed\":null,\"details\":{\"x\":\"a\\u001bb\"}", "custody.bad_member",
	              "details.x: not printable UTF-8");
}

Test(custody, unknown_version)
{
	char *log = log_in("version");
	struct lines l = { 0 };
	char hash[65], *line;

	l.v = calloc(2, sizeof(char *));
	line = hb_make(1, "2024-05-01T10:00:00.000000Z",
	               "\"side\":\"high\",\"run\":null,\"event\":\"media.inserted\",\"outcome\":\"info\","
	               "\"reason\":null,\"actor\":" ACTOR ",\"bundle\":null,\"device\":null,"
	               "\"signed\":null,\"details\":{}", ZEROS, hash);
	l.v[l.n++] = line;
	edit(&l, 0, "{\"v\":1,", "{\"v\":2,");
	write_lines(log, &l, 1);
	expect_bad(log, "custody.bad_version", 1, "unknown format version 2");
	free_lines(&l);
	free(log);
}

Test(custody, invalid_utf8_line)
{
	char *log = log_in("utf8");
	struct lines l;

	fill(log, 3);
	l = read_lines(log);
	edit(&l, 1, "Kingston", "King\xffston");
	write_lines(log, &l, 1);
	expect_bad(log, "custody.not_utf8", 2, "line 2: not valid UTF-8");
	free_lines(&l);
	free(log);
}

Test(custody, overlong_line)
{
	char *log = log_in("long");
	struct lines l;
	char *big = malloc(CUSTODY_MAX_LINE + 100);

	fill(log, 3);
	l = read_lines(log);
	memset(big, 'a', CUSTODY_MAX_LINE + 99);
	big[CUSTODY_MAX_LINE + 99] = '\0';
	free(l.v[1]);
	l.v[1] = big;
	write_lines(log, &l, 1);
	expect_bad(log, "custody.line_too_long", 2, "line 2: longer than 65536 bytes");
	free_lines(&l);
	free(log);
}

/* ------------------------------------------------------------------ */
/* Torn lines */

/* Cut the last line in half, without its newline. */
static size_t tear(const char *log, uint64_t *offset)
{
	size_t len, cut, start;
	char *text = harness_read_file(log, &len);

	cr_assert(len > 2 && text[len - 1] == '\n');
	start = len - 1;
	while (start > 0 && text[start - 1] != '\n')
		start--;
	cut = start + (len - 1 - start) / 2;
	unlink(log);
	harness_write_file(log, text, cut);
	chmod(log, 0640);
	free(text);
	*offset = start;
	return cut - start;
}

static int find_torn_cb(const struct custody_record *r, void *arg)
{
	const char *ev = custody_record_text(r, "event", NULL);
	char **texts = arg;

	if (strcmp(ev, CUSTODY_EV_TORN_TAIL) == 0) {
		texts[0] = strdup(custody_record_text(r, "details", "torn_offset"));
		texts[1] = strdup(custody_record_text(r, "details", "torn_bytes"));
		texts[2] = strdup(custody_record_text(r, "details", "torn_sha256"));
		texts[3] = strdup(custody_record_text(r, "reason", NULL));
		texts[4] = strdup(custody_record_text(r, "outcome", NULL));
	}
	return 0;
}

Test(custody, torn_last_line_is_reported)
{
	char *log = log_in("torn");
	uint64_t off;

	fill(log, 10);
	tear(log, &off);
	expect_bad(log, "custody.torn_line", 10,
	           "line 10: torn line: no newline at the end of the log");
	free(log);
}

Test(custody, torn_last_line_is_recorded_by_the_next_append)
{
	char *log = log_in("torn-rec");
	char hash[65], hex[65], *texts[5] = { 0 };
	struct custody_summary sum;
	uint64_t off, seq, head;
	struct lines l;
	struct alerr e;
	uint8_t d[32];
	size_t torn;
	int is_torn;

	fill(log, 10);
	torn = tear(log, &off);
	alerr_clear(&e);
	cr_assert_eq(custody_head(log, &head, hash, &is_torn, &e), 0);
	cr_assert_eq(head, 9);
	cr_assert_eq(is_torn, 1);
	/* The torn entry was seq 10: the record takes 10, the entry 11. */
	seq = append_nth(log, 10, hash);
	cr_assert_eq(seq, 11);
	l = read_lines(log);
	cr_assert_eq(l.n, 12);
	cr_assert_eq(strlen(l.v[9]), torn);
	cr_assert_not_null(strstr(l.v[10], "\"seq\":10,"));
	cr_assert_not_null(strstr(l.v[10], "\"event\":\"custody.torn_tail\""));
	alerr_clear(&e);
	cr_assert_eq(custody_verify(log, NULL, 0, find_torn_cb, texts, &sum, &e), 0, "%s", e.message);
	cr_assert_eq(sum.entries, 11);
	cr_assert_eq(sum.lines, 12);
	cr_assert_eq(sum.torn_recorded, 1);
	cr_assert_eq(sum.head_seq, 11);
	cr_assert_str_eq(sum.head_hash, hash);
	digest_buffer(l.v[9], torn, d);
	digest_hex(hex, d);
	cr_assert_eq(strtoull(texts[0], NULL, 10), off);
	cr_assert_eq(strtoull(texts[1], NULL, 10), torn);
	cr_assert_str_eq(texts[2], hex);
	cr_assert_str_eq(texts[3], "custody.torn_line");
	cr_assert_str_eq(texts[4], "info");
	for (size_t i = 0; i < 5; i++)
		free(texts[i]);
	free_lines(&l);
	free(log);
}

Test(custody, recorded_torn_bytes_changed_afterwards)
{
	char *log = log_in("torn-edit");
	char hash[65];
	struct lines l;
	uint64_t off;

	fill(log, 10);
	tear(log, &off);
	append_nth(log, 10, hash);
	l = read_lines(log);
	l.v[9][5] = l.v[9][5] == 'x' ? 'y' : 'x';
	write_lines(log, &l, 1);
	expect_bad(log, "custody.torn_mismatch", 10,
	           "are not the ones the custody.torn_tail entry at line 11 (seq 10) records");
	free_lines(&l);
	free(log);
}

Test(custody, recorded_torn_bytes_removed_afterwards)
{
	char *log = log_in("torn-del");
	char hash[65];
	struct lines l;
	uint64_t off;

	fill(log, 10);
	tear(log, &off);
	append_nth(log, 10, hash);
	l = read_lines(log);
	free(l.v[9]);
	memmove(&l.v[9], &l.v[10], (l.n - 10) * sizeof(char *));
	l.n--;
	write_lines(log, &l, 1);
	expect_bad(log, "custody.torn_missing", 10,
	           "line 10 (seq 10): custody.torn_tail records");
	free_lines(&l);
	free(log);
}

Test(custody, torn_zeros_of_a_power_loss_are_recorded)
{
	char *log = log_in("torn-zeros");
	char zeros[4096] = { 0 }, hash[65];
	int fd;

	fill(log, 3);
	fd = open(log, O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
	close(fd);
	expect_bad(log, "custody.torn_line", 4, "torn line");
	cr_assert_eq(append_nth(log, 3, hash), 5);
	expect_ok(log, 5);
	free(log);
}

Test(custody, torn_first_write_is_recorded)
{
	char *log = log_in("torn-first");
	char hash[65];

	harness_write_file(log, "{\"v\":1,\"seq\":1,\"ti", 18);
	chmod(log, 0640);
	cr_assert_eq(append_nth(log, 0, hash), 2);
	expect_ok(log, 2);
	free(log);
}

/* A torn region that is itself torn: a crash while recording it. */
Test(custody, torn_region_of_several_lines)
{
	char *log = log_in("torn-twice");
	char hash[65];
	uint64_t off;
	int fd;

	fill(log, 4);
	tear(log, &off);
	fd = open(log, O_WRONLY | O_APPEND);
	cr_assert_eq(write(fd, "\n{\"v\":1,\"seq\":4,\"time\"", 23), 23);
	close(fd);
	cr_assert_eq(append_nth(log, 4, hash), 5);
	expect_ok(log, 5);
	free(log);
}

Test(custody, damage_bigger_than_a_torn_write_stops_appends)
{
	char *log = log_in("torn-big");
	struct custody_entry *en;
	size_t big = CUSTODY_MAX_TORN + 10;
	char *junk = malloc(big);
	struct alerr e;
	int fd;

	fill(log, 3);
	memset(junk, 'x', big);
	fd = open(log, O_WRONLY | O_APPEND);
	cr_assert_eq(write(fd, junk, big), (ssize_t)big);
	close(fd);
	alerr_clear(&e);
	cr_assert_eq(custody_entry_new(&en, CUSTODY_SIDE_HIGH, "media.inserted", CUSTODY_INFO, &e), 0);
	cr_assert_lt(custody_append(log, en, NULL, NULL, &e), 0);
	cr_assert_eq(e.cls, ALERR_IOERR);
	cr_assert_str_eq(e.reason, "custody.corrupt");
	custody_entry_free(en);
	expect_bad(log, "custody.torn_line", 4, "torn line");
	free(junk);
	free(log);
}

/* ------------------------------------------------------------------ */
/* Anchors */

Test(custody, anchors_match)
{
	char *log = log_in("anchor-ok");
	struct custody_anchor a[2];
	struct custody_summary sum;
	char hash[65];
	struct alerr e;
	unsigned int i;

	for (i = 0; i < 10; i++) {
		append_nth(log, i, hash);
		if (i == 3 || i == 9) {
			a[i == 3 ? 1 : 0].seq = i + 1;
			memcpy(a[i == 3 ? 1 : 0].hash, hash, sizeof(hash));
		}
	}
	alerr_clear(&e);
	cr_assert_eq(custody_verify(log, a, 2, NULL, NULL, &sum, &e), 0, "%s", e.message);
	free(log);
}

Test(custody, cut_tail_is_caught_through_an_anchor)
{
	char *log = log_in("anchor-cut");
	struct custody_anchor a;
	struct custody_summary sum;
	struct lines l;
	char hash[65];
	struct alerr e;
	unsigned int i;

	for (i = 0; i < 10; i++)
		append_nth(log, i, hash);
	a.seq = 10;
	memcpy(a.hash, hash, sizeof(hash));
	l = read_lines(log);
	l.n = 8;
	write_lines(log, &l, 1);
	l.n = 10;
	expect_ok(log, 8);          /* a shorter chain is still a whole chain */
	alerr_clear(&e);
	cr_assert_eq(custody_verify(log, &a, 1, NULL, NULL, &sum, &e), -EBADMSG);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, "custody.log_cut");
	cr_assert_not_null(strstr(e.message, "log cut: it ends at seq 8 (line 8), but the database anchors seq 10"),
	                   "%s", e.message);
	free_lines(&l);
	free(log);
}

/* A forger who rewrites the whole chain consistently passes without
 * anchors, and fails with one. */
Test(custody, rewritten_chain_is_caught_through_an_anchor)
{
	char *log = log_in("anchor-forge");
	struct custody_anchor a;
	struct custody_summary sum;
	struct alerr e;
	char hash[65];
	unsigned int i;
	struct hb h;

	for (i = 0; i < 5; i++)
		append_nth(log, i, hash);
	a.seq = 3;
	{
		struct lines l = read_lines(log);

		memcpy(a.hash, l.v[2] + strlen(l.v[2]) - 66, 64);
		a.hash[64] = '\0';
		free_lines(&l);
	}
	hb_init(&h);
	for (i = 0; i < 5; i++)
		hb_add_simple(&h, "2024-05-01T10:00:00.000000Z", "media.inserted");
	write_lines(log, &h.l, 1);
	expect_ok(log, 5);
	alerr_clear(&e);
	cr_assert_eq(custody_verify(log, &a, 1, NULL, NULL, &sum, &e), -EBADMSG);
	cr_assert_str_eq(e.reason, "custody.anchor_mismatch");
	cr_assert_eq(sum.bad_line, 3);
	cr_assert_not_null(strstr(e.message, "line 3 (seq 3): anchor mismatch"), "%s", e.message);
	free_lines(&h.l);
	free(log);
}

Test(custody, anchor_parse)
{
	struct custody_anchor a;

	cr_assert_eq(custody_anchor_parse("12:" SHA_A, &a), 0);
	cr_assert_eq(a.seq, 12);
	cr_assert_str_eq(a.hash, SHA_A);
	cr_assert_eq(custody_anchor_parse("0:" SHA_A, &a), -EINVAL);
	cr_assert_eq(custody_anchor_parse("012:" SHA_A, &a), -EINVAL);
	cr_assert_eq(custody_anchor_parse("12:" SHA_A "a", &a), -EINVAL);
	cr_assert_eq(custody_anchor_parse("12:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &a),
	             -EINVAL);
	cr_assert_eq(custody_anchor_parse("12", &a), -EINVAL);
	cr_assert_eq(custody_anchor_parse(":" SHA_A, &a), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Concurrency */

#define WRITERS 8
#define EACH 200

static int tally_cb(const struct custody_record *r, void *arg)
{
	unsigned int *counts = arg;
	const char *w = custody_record_text(r, "details", "writer");
	unsigned long k;

	cr_assert_not_null(w);
	k = strtoul(w, NULL, 10);
	cr_assert_lt(k, WRITERS);
	counts[k]++;
	return 0;
}

Test(custody, concurrent_writers_make_one_chain, .timeout = 300)
{
	char *log = log_in("concurrent");
	unsigned int counts[WRITERS] = { 0 };
	struct custody_summary sum;
	struct alerr e;
	pid_t pids[WRITERS];
	int i, status;

	for (i = 0; i < WRITERS; i++) {
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			int k, bad = 0;

			for (k = 0; k < EACH && !bad; k++) {
				struct custody_entry *en;
				struct alerr ce;

				alerr_clear(&ce);
				if (custody_entry_new(&en, CUSTODY_SIDE_HIGH, "media.inserted",
				                      CUSTODY_INFO, &ce) < 0) {
					bad = 1;
					break;
				}
				custody_entry_add_detail_int(en, "writer", i);
				custody_entry_add_detail_int(en, "k", k);
				if (custody_append(log, en, NULL, NULL, &ce) < 0) {
					fprintf(stderr, "writer %d: %s\n", i, ce.message);
					bad = 1;
				}
				custody_entry_free(en);
			}
			_exit(bad);
		}
	}
	for (i = 0; i < WRITERS; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", i);
	}
	alerr_clear(&e);
	cr_assert_eq(custody_verify(log, NULL, 0, tally_cb, counts, &sum, &e), 0, "%s", e.message);
	cr_assert_eq(sum.entries, WRITERS * EACH);
	cr_assert_eq(sum.lines, WRITERS * EACH);
	for (i = 0; i < WRITERS; i++)
		cr_assert_eq(counts[i], EACH, "writer %d: %u entries", i, counts[i]);
	free(log);
}

/* ------------------------------------------------------------------ */
/* Faults */

/* A tiny tmpfs in a private mount namespace (gone with the test's
 * process): appends run until the filesystem is full. */
Test(custody, full_filesystem_fails_the_append_and_leaves_a_visible_trace)
{
	char *dir = harness_mkdir("full", 0700), *log, *filler;
	struct custody_summary sum;
	char hash[65], page[4096];
	struct alerr e;
	uint64_t good = 0;
	int fd, failed = 0, r;
	unsigned int i;

	if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=16k,mode=0700") != 0)
		cr_skip_test("needs root and mount namespaces");
	log = harness_strdup_printf("%s/custody.log", dir);
	filler = harness_strdup_printf("%s/filler", dir);
	append_nth(log, 0, hash);
	good = 1;
	/* Take every free page. */
	fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	memset(page, 'f', sizeof(page));
	while (write(fd, page, sizeof(page)) > 0)
		;
	close(fd);
	for (i = 0; i < 100 && !failed; i++) {
		struct custody_entry *en;

		alerr_clear(&e);
		cr_assert_eq(custody_entry_new(&en, CUSTODY_SIDE_HIGH, "restore.intent", CUSTODY_INFO, &e), 0);
		custody_entry_add_detail_str(en, "pad", "0123456789012345678901234567890123456789");
		r = custody_append(log, en, NULL, NULL, &e);
		custody_entry_free(en);
		if (r < 0)
			failed = 1;
		else
			good++;
	}
	cr_assert(failed, "the filesystem never filled");
	cr_assert_eq(e.cls, ALERR_IOERR, "%s", e.message);
	cr_assert(strcmp(e.reason, "custody.write") == 0 || strcmp(e.reason, "custody.sync") == 0,
	          "%s", e.reason);
	/* Nothing half-written that verify would not see. */
	alerr_clear(&e);
	r = custody_verify(log, NULL, 0, NULL, NULL, &sum, &e);
	if (r == 0) {
		cr_assert_eq(sum.entries, good);
	} else {
		cr_assert_str_eq(e.reason, "custody.torn_line", "%s", e.message);
		cr_assert_eq(sum.bad_line, good + 1);
	}
	/* Space again: the next append records the torn line. */
	cr_assert_eq(unlink(filler), 0);
	append_nth(log, 1, hash);
	alerr_clear(&e);
	cr_assert_eq(custody_verify(log, NULL, 0, NULL, NULL, &sum, &e), 0, "%s", e.message);
	cr_assert_eq(sum.entries, good + 1 + sum.torn_recorded);
	umount2(dir, MNT_DETACH);
	free(filler);
	free(log);
	free(dir);
}

static void expect_unsafe(const char *log, enum alerr_class cls, const char *what)
{
	struct custody_entry *en;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(custody_entry_new(&en, CUSTODY_SIDE_HIGH, "media.inserted", CUSTODY_INFO, &e), 0);
	cr_assert_lt(custody_append(log, en, NULL, NULL, &e), 0);
	cr_assert_eq(e.cls, cls, "%s", e.message);
	cr_assert_str_eq(e.reason, "custody.unsafe_file", "%s", e.message);
	cr_assert_not_null(strstr(e.message, what), "%s", e.message);
	custody_entry_free(en);
}

Test(custody, symlink_refused)
{
	char *log = log_in("symlink"), *target = log_in("symlink-target");
	char hash[65];

	append_nth(target, 0, hash);
	cr_assert_eq(symlink(target, log), 0);
	expect_unsafe(log, ALERR_CONFIG, "is a symbolic link");
	free(target);
	free(log);
}

Test(custody, group_writable_refused)
{
	char *log = log_in("groupw");
	char hash[65];

	append_nth(log, 0, hash);
	cr_assert_eq(chmod(log, 0660), 0);
	expect_unsafe(log, ALERR_CONFIG, "writable by group or others");
	free(log);
}

Test(custody, hard_link_refused)
{
	char *log = log_in("hardlink"), *other = log_in("hardlink2");
	char hash[65];

	append_nth(log, 0, hash);
	unlink(other);
	cr_assert_eq(link(log, other), 0);
	expect_unsafe(log, ALERR_CONFIG, "hard links");
	free(other);
	free(log);
}

Test(custody, fifo_refused)
{
	char *log = log_in("fifo");

	cr_assert_eq(mkfifo(log, 0600), 0);
	expect_unsafe(log, ALERR_CONFIG, "not a regular file");
	free(log);
}

Test(custody, directory_refused)
{
	char *log = log_in("isdir");

	cr_assert_eq(mkdir(log, 0700), 0);
	expect_unsafe(log, ALERR_CONFIG, "is a directory");
	free(log);
}

Test(custody, world_writable_directory_refused)
{
	char *dir = harness_mkdir("worldw", 0777);
	char *log = harness_strdup_printf("%s/custody.log", dir);

	cr_assert_eq(chmod(dir, 0777), 0);
	expect_unsafe(log, ALERR_CONFIG, "writable by anyone");
	free(log);
	free(dir);
}

Test(custody, missing_parent_directory_is_an_io_error)
{
	char *base = harness_mkdir("noparent", 0700);
	char *log = harness_strdup_printf("%s/a/b/custody.log", base);
	struct custody_entry *en;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(custody_entry_new(&en, CUSTODY_SIDE_LOW, "bundle.written", CUSTODY_OK, &e), 0);
	cr_assert_lt(custody_append(log, en, NULL, NULL, &e), 0);
	cr_assert_eq(e.cls, ALERR_IOERR);
	cr_assert_str_eq(e.reason, "custody.open");
	custody_entry_free(en);
	free(log);
	free(base);
}

/* Each entry goes to syslog as one line: /dev/log is replaced by a
 * socket of the test's own, in a private mount namespace. */
Test(custody, each_entry_goes_to_syslog)
{
	char *log = log_in("syslog");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	char buf[2048], hash[65], *want;
	ssize_t n;
	int s;

	if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", "/dev", "tmpfs", 0, "size=64k") != 0)
		cr_skip_test("needs root and mount namespaces");
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/dev/log");
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	custody_set_syslog(1);
	append_nth(log, 2, hash);
	n = recv(s, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(n, 0, "nothing reached syslog");
	buf[n] = '\0';
	want = harness_strdup_printf("custody seq=1 side=high event=bundle.verified outcome=ok "
	                             "reason=- bundle=" ID_A " hash=%s", hash);
	cr_assert_not_null(strstr(buf, want), "%s", buf);
	free(want);
	close(s);
	free(log);
}

/* ------------------------------------------------------------------ */
/* Entries */

Test(custody, bad_event_name_refused)
{
	struct custody_entry *en = (struct custody_entry *)1;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(custody_entry_new(&en, CUSTODY_SIDE_HIGH, "Media Inserted", CUSTODY_INFO, &e), 0);
	cr_assert_null(en);
	cr_assert_eq(e.cls, ALERR_SOFTWARE);
	cr_assert_str_eq(e.reason, "custody.bad_entry");
	alerr_clear(&e);
	cr_assert_lt(custody_entry_new(&en, CUSTODY_SIDE_HIGH, CUSTODY_EV_TORN_TAIL, CUSTODY_INFO, &e), 0);
	cr_assert_str_eq(e.reason, "custody.bad_entry");
	alerr_clear(&e);
	cr_assert_lt(custody_entry_new(&en, CUSTODY_SIDE_HIGH, "media..inserted", CUSTODY_INFO, &e), 0);
}

/* A setter's failure is kept and refuses the append, so that an entry is
 * never written without what the caller meant to put in it. */
static void expect_bad_entry(void (*spoil)(struct custody_entry *), const char *what)
{
	char *log = log_in("badentry");
	struct custody_entry *en;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(custody_entry_new(&en, CUSTODY_SIDE_HIGH, "media.inserted", CUSTODY_INFO, &e), 0);
	spoil(en);
	cr_assert_lt(custody_append(log, en, NULL, NULL, &e), 0);
	cr_assert_eq(e.cls, ALERR_SOFTWARE);
	cr_assert_str_eq(e.reason, "custody.bad_entry");
	cr_assert_not_null(strstr(e.message, what), "%s", e.message);
	custody_entry_free(en);
	free(log);
}

static void spoil_reason(struct custody_entry *en)
{
	cr_assert_lt(custody_entry_set_reason(en, "Checksum Mismatch"), 0);
}

static void spoil_run(struct custody_entry *en)
{
	cr_assert_lt(custody_entry_set_run(en, "0F8FAD5B-D9CB-469F-A165-70867728950E"), 0);
}

static void spoil_reserved(struct custody_entry *en)
{
	cr_assert_lt(custody_entry_add_detail_int(en, "torn_bytes", 1), 0);
}

static void spoil_twice(struct custody_entry *en)
{
	cr_assert_eq(custody_entry_add_detail_int(en, "rows", 1), 0);
	cr_assert_lt(custody_entry_add_detail_int(en, "rows", 2), 0);
}

static void spoil_too_many(struct custody_entry *en)
{
	char key[16];
	unsigned int i;

	for (i = 0; i < CUSTODY_MAX_DETAILS; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		cr_assert_eq(custody_entry_add_detail_bool(en, key, 1), 0);
	}
	cr_assert_lt(custody_entry_add_detail_bool(en, "one_more", 1), 0);
}

static void spoil_int(struct custody_entry *en)
{
	cr_assert_lt(custody_entry_add_detail_int(en, "big", INT64_C(1) << 53), 0);
}

Test(custody, bad_reason_refuses_the_entry)
{
	expect_bad_entry(spoil_reason, "is not a valid reason code");
}

Test(custody, bad_run_id_refuses_the_entry)
{
	expect_bad_entry(spoil_run, "run id is not a lower-case UUID");
}

Test(custody, reserved_detail_key_refuses_the_entry)
{
	expect_bad_entry(spoil_reserved, "detail key \"torn_bytes\" is reserved");
}

Test(custody, detail_key_twice_refuses_the_entry)
{
	expect_bad_entry(spoil_twice, "detail key \"rows\" given twice");
}

Test(custody, too_many_details_refuse_the_entry)
{
	expect_bad_entry(spoil_too_many, "more than 16 details");
}

Test(custody, detail_integer_out_of_range_refuses_the_entry)
{
	expect_bad_entry(spoil_int, "out of range");
}

struct texts {
	char *serial, *model, *vendor, *bus;
};

static int texts_cb(const struct custody_record *r, void *arg)
{
	struct texts *t = arg;

	t->serial = strdup(custody_record_text(r, "device", "serial"));
	t->model = strdup(custody_record_text(r, "device", "model"));
	t->vendor = strdup(custody_record_text(r, "device", "vendor"));
	t->bus = strdup(custody_record_text(r, "device", "bus_path"));
	return 0;
}

Test(custody, untrusted_text_is_stored_printable)
{
	char *log = log_in("untrusted");
	char long_text[1000];
	struct custody_device d = {
		.serial = "AB\x01\xff\\Z", .model = "Caf\xc3\xa9 \\ ok", .vendor = long_text,
		.bus_path = "x\xc2\x85y",
	};
	struct custody_summary sum;
	struct custody_entry *en;
	struct texts t = { 0 };
	struct alerr e;

	memset(long_text, 'v', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	alerr_clear(&e);
	cr_assert_eq(custody_entry_new(&en, CUSTODY_SIDE_HIGH, "media.inserted", CUSTODY_INFO, &e), 0);
	cr_assert_eq(custody_entry_set_device(en, &d), 0);
	cr_assert_eq(custody_append(log, en, NULL, NULL, &e), 0, "%s", e.message);
	custody_entry_free(en);
	cr_assert_eq(custody_verify(log, NULL, 0, texts_cb, &t, &sum, &e), 0, "%s", e.message);
	/* not printable: escaped, backslash included */
	cr_assert_str_eq(t.serial, "AB\\x01\\xff\\x5cZ");
	/* printable: as it is, backslash included */
	cr_assert_str_eq(t.model, "Caf\xc3\xa9 \\ ok");
	cr_assert_eq(strlen(t.vendor), CUSTODY_MAX_TEXT);
	/* a C1 control character */
	cr_assert_str_eq(t.bus, "x\\xc2\\x85y");
	free(t.serial);
	free(t.model);
	free(t.vendor);
	free(t.bus);
	free(log);
}

Test(custody, clock_behind_the_log_is_noted_not_written)
{
	char *log = log_in("clock");
	struct hb h;
	struct lines l;
	char hash[65];

	hb_init(&h);
	hb_add_simple(&h, "2999-01-01T00:00:00.000000Z", "media.inserted");
	write_lines(log, &h.l, 1);
	cr_assert_eq(append_nth(log, 0, hash), 2);
	expect_ok(log, 2);
	l = read_lines(log);
	cr_assert_not_null(strstr(l.v[1], "\"time\":\"2999-01-01T00:00:00.000000Z\""), "%s", l.v[1]);
	cr_assert_not_null(strstr(l.v[1], "\"clock_behind_us\":"), "%s", l.v[1]);
	free_lines(&l);
	free_lines(&h.l);
	free(log);
}

Test(custody, time_parse)
{
	int64_t us;

	cr_assert_eq(custody_time_parse("2024-05-01T14:30:00.000001Z", 27, &us), 0);
	cr_assert_eq(us, INT64_C(1714573800000001));
	cr_assert_eq(custody_time_parse("2024-05-01T14:30:00.00001Z", 26, &us), -EINVAL);
	cr_assert_eq(custody_time_parse("2024-05-01T14:30:00.000001+", 27, &us), -EINVAL);
	cr_assert_eq(custody_time_parse("2024-13-01T14:30:00.000001Z", 27, &us), -EINVAL);
	cr_assert_eq(custody_time_parse("2023-02-29T14:30:00.000001Z", 27, &us), -EINVAL);
	cr_assert_eq(custody_time_parse("2024-02-29T24:00:00.000000Z", 27, &us), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* airlock-audit: list, show */

Test(custody, list_json_is_the_log_lines)
{
	char *log = log_in("list-json"), *out, *want;
	struct audit_filter f = { .outcome = "ok" };
	struct hb *h = trail(log);
	struct alerr e;
	int r;

	out = capture_list(log, &f, AUDIT_FORMAT_JSON, &r, &e);
	cr_assert_eq(r, 0, "%s", e.message);
	want = harness_strdup_printf("%s\n%s\n%s\n", h->l.v[1], h->l.v[2], h->l.v[4]);
	cr_assert_str_eq(out, want);
	free(want);
	free(out);
	free_lines(&h->l);
	free(log);
}

Test(custody, list_csv)
{
	char *log = log_in("list-csv"), *out, *want;
	struct audit_filter f = { .bundle = "0a1b2c3d" };
	struct hb *h = trail(log);
	struct alerr e;
	int r;

	out = capture_list(log, &f, AUDIT_FORMAT_CSV, &r, &e);
	cr_assert_eq(r, 0, "%s", e.message);
	want = harness_strdup_printf(
		"seq,time,host,side,run,event,outcome,reason,channel,sequence,bundle_id,verified,"
		"manifest_sha256,image_sha256,devnode,vendor,model,serial,size,user,uid,loginuid,"
		"unit,courier,signed,details,prev,hash\r\n"
		"6,2024-05-02T09:00:00.000000Z,h1,high," RUN2 ",bundle.rejected,refused,"
		"signature.untrusted,nvd,43," ID_B ",false," SHA_C "," SHA_C ",/dev/sdd,"
		"\"'=cmd\",\"x,y\",\"S\"\"Q\",,auditor,1000,1000,airlock-import@sdc.service,,,{},%s,%s\r\n",
		h->hashes[5], h->hashes[6]);
	cr_assert_str_eq(out, want);
	free(want);
	free(out);
	/* the header alone when nothing matches */
	f.bundle = "ffffffff";
	out = capture_list(log, &f, AUDIT_FORMAT_CSV, &r, &e);
	cr_assert_eq(r, 0);
	cr_assert_eq(strncmp(out, "seq,time,", 9), 0);
	cr_assert_eq(strchr(out, '\n') - out + 1, (long)strlen(out));
	free(out);
	free_lines(&h->l);
	free(log);
}

Test(custody, list_csv_quotes_details)
{
	char *log = log_in("list-csv2"), *out;
	struct audit_filter f = { .event = "restore.done" };
	struct hb *h = trail(log);
	struct alerr e;
	int r;

	out = capture_list(log, &f, AUDIT_FORMAT_CSV, &r, &e);
	cr_assert_eq(r, 0);
	cr_assert_not_null(strstr(out, ",\"{\"\"rows\"\":12345,\"\"note\"\":\"\"a, b\"\"}\","), "%s", out);
	free(out);
	free_lines(&h->l);
	free(log);
}

Test(custody, list_table)
{
	char *log = log_in("list-table"), *out;
	struct audit_filter f = { 0 };
	struct hb *h = trail(log);
	char want[4096];
	struct alerr e;
	size_t o = 0;
	int r;

#define ROW(a, b, c, d, e_, f_, g, i) \
	o += (size_t)snprintf(want + o, sizeof(want) - o, "%3s  %-20s  %-4s  %-17s  %-7s  %-19s  %-16s  %s\n", \
	                      a, b, c, d, e_, f_, g, i)
	ROW("SEQ", "TIME", "SIDE", "EVENT", "OUTCOME", "REASON", "CHANNEL/SEQUENCE", "BUNDLE");
	ROW("1", "2024-05-01T14:30:00Z", "high", "media.inserted", "info", "-", "-", "-");
	ROW("2", "2024-05-01T14:30:05Z", "high", "media.quarantined", "ok", "-", "-", "-");
	ROW("3", "2024-05-01T14:30:10Z", "high", "bundle.verified", "ok", "-", "nvd/42", "6f1c2a4e");
	ROW("4", "2024-05-01T14:30:20Z", "high", "restore.intent", "info", "-", "nvd/42", "6f1c2a4e");
	ROW("5", "2024-05-01T14:30:30Z", "high", "restore.done", "ok", "-", "nvd/42", "6f1c2a4e");
	ROW("6", "2024-05-02T09:00:00Z", "high", "bundle.rejected", "refused", "signature.untrusted",
	    "nvd/43", "0a1b2c3d");
#undef ROW
	out = capture_list(log, &f, AUDIT_FORMAT_TABLE, &r, &e);
	cr_assert_eq(r, 0, "%s", e.message);
	cr_assert_str_eq(out, want);
	free(out);
	free_lines(&h->l);
	free(log);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static size_t list_count(const char *log, struct audit_filter f)
{
	struct alerr e;
	char *out;
	size_t n;
	int r;

	out = capture_list(log, &f, AUDIT_FORMAT_JSON, &r, &e);
	cr_assert_eq(r, 0, "%s", e.message);
	n = count_lines(out);
	free(out);
	return n;
}

Test(custody, list_filters)
{
	char *log = log_in("list-filters");
	struct hb *h = trail(log);
	struct audit_filter f;
	int64_t t;

	memset(&f, 0, sizeof(f));
	cr_assert_eq(list_count(log, f), 6);
	f.channel = "nvd";
	cr_assert_eq(list_count(log, f), 4);
	memset(&f, 0, sizeof(f));
	f.bundle = ID_A;
	cr_assert_eq(list_count(log, f), 3);
	memset(&f, 0, sizeof(f));
	f.device = "4C530001";            /* the serial, and the signed media serial */
	cr_assert_eq(list_count(log, f), 3);
	f.device = "/dev/sdd";
	cr_assert_eq(list_count(log, f), 1);
	memset(&f, 0, sizeof(f));
	f.event = "media.inserted";
	cr_assert_eq(list_count(log, f), 1);
	memset(&f, 0, sizeof(f));
	f.outcome = "refused";
	cr_assert_eq(list_count(log, f), 1);
	memset(&f, 0, sizeof(f));
	cr_assert_eq(audit_parse_time("2024-05-01T14:30:10Z", &t), 0);
	f.has_since = 1;
	f.since_us = t;
	cr_assert_eq(list_count(log, f), 4);
	cr_assert_eq(audit_parse_time("2024-05-01T16:30:20+02:00", &t), 0);
	f.has_until = 1;
	f.until_us = t;
	cr_assert_eq(list_count(log, f), 2);
	cr_assert_eq(audit_parse_time("2024-05-02", &t), 0);
	f.has_since = 1;
	f.since_us = t;
	f.has_until = 0;
	cr_assert_eq(list_count(log, f), 1);
	free_lines(&h->l);
	free(log);
}

Test(custody, list_filter_values_checked)
{
	struct audit_filter f = { .outcome = "fine" };
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(audit_filter_check(&f, &e), 0);
	cr_assert_eq(e.cls, ALERR_USAGE);
	cr_assert_str_eq(e.reason, "audit.bad_filter");
	f.outcome = NULL;
	f.event = "Bundle Verified";
	alerr_clear(&e);
	cr_assert_lt(audit_filter_check(&f, &e), 0);
	f.event = NULL;
	f.has_since = f.has_until = 1;
	f.since_us = 2;
	f.until_us = 1;
	alerr_clear(&e);
	cr_assert_lt(audit_filter_check(&f, &e), 0);
}

Test(custody, parse_time_forms)
{
	int64_t t;

	cr_assert_eq(audit_parse_time("2024-05-01", &t), 0);
	cr_assert_eq(t, INT64_C(1714521600) * 1000000);
	cr_assert_eq(audit_parse_time("2024-05-01T00:00", &t), 0);
	cr_assert_eq(t, INT64_C(1714521600) * 1000000);
	cr_assert_eq(audit_parse_time("2024-05-01 02:00:00+02:00", &t), 0);
	cr_assert_eq(t, INT64_C(1714521600) * 1000000);
	cr_assert_eq(audit_parse_time("2024-05-01T00:00:00.5Z", &t), 0);
	cr_assert_eq(t, INT64_C(1714521600) * 1000000 + 500000);
	cr_assert_eq(audit_parse_time("2024-02-30", &t), -EINVAL);
	cr_assert_eq(audit_parse_time("2024-05-01T25:00", &t), -EINVAL);
	cr_assert_eq(audit_parse_time("2024-05-01Z1", &t), -EINVAL);
	cr_assert_eq(audit_parse_time("yesterday", &t), -EINVAL);
	cr_assert_eq(audit_parse_time("2024-05-01T00:00:00.Z", &t), -EINVAL);
}

/* A listing of a tampered log prints what it can and fails. */
Test(custody, list_of_a_tampered_log_fails_after_printing)
{
	char *log = log_in("list-bad"), *out;
	struct audit_filter f = { 0 };
	struct hb *h = trail(log);
	struct alerr e;
	int r;

	edit(&h->l, 2, "\"sequence\":42", "\"sequence\":41");
	write_lines(log, &h->l, 1);
	out = capture_list(log, &f, AUDIT_FORMAT_JSON, &r, &e);
	cr_assert_eq(r, -EBADMSG);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, "custody.hash_mismatch");
	cr_assert_not_null(strstr(e.message, "does not verify: line 3 (seq 3): hash mismatch"), "%s", e.message);
	cr_assert_eq(count_lines(out), 5);
	free(out);
	free_lines(&h->l);
	free(log);
}

static char *capture_show(const char *log, const char *id, int *r, struct alerr *e)
{
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);

	alerr_clear(e);
	*r = audit_show(log, id, fp, e);
	fclose(fp);
	return out;
}

Test(custody, show_a_bundle)
{
	char *log = log_in("show"), *out;
	struct hb *h = trail(log);
	struct alerr e;
	int r;

	out = capture_show(log, "6f1c2a4e", &r, &e);
	cr_assert_eq(r, 0, "%s", e.message);
	cr_assert_not_null(strstr(out, "Bundle " ID_A ": channel nvd, sequence 42\n"), "%s", out);
	cr_assert_not_null(strstr(out, "Low-side facts, from the signed MANIFEST (as recorded at seq 3):\n"));
	cr_assert_not_null(strstr(out, "  writer host    low-01.example.org\n"));
	cr_assert_not_null(strstr(out, "  courier        Sgt. Jane Doe\n"));
	cr_assert_not_null(strstr(out, "  media serial   4C530001\n"));
	cr_assert_not_null(strstr(out, "  signers        0123456789ABCDEF0123456789ABCDEF01234567\n"));
	/* the insertion and the quarantine join through the run */
	cr_assert_not_null(strstr(out, "  2024-05-01T14:30:00.000001Z  seq 1  high  media.inserted     info\n"), "%s", out);
	cr_assert_not_null(strstr(out, "      device /dev/sdc, Kingston DataTraveler 3.0, serial 4C530001, 16008609792 bytes\n"));
	cr_assert_not_null(strstr(out, "      image sha256 " SHA_A "\n"));
	cr_assert_not_null(strstr(out, "seq 5  high  restore.done       ok\n"));
	cr_assert_not_null(strstr(out, "      details: rows=12345, note=a, b\n"));
	cr_assert_null(strstr(out, "bundle.rejected"));
	free(out);
	out = capture_show(log, "0a1b2c3d", &r, &e);
	cr_assert_eq(r, 0, "%s", e.message);
	cr_assert_not_null(strstr(out, "Low-side facts: none in this log"), "%s", out);
	cr_assert_not_null(strstr(out, "seq 6  high  bundle.rejected    refused (signature.untrusted)\n"));
	cr_assert_not_null(strstr(out, "      bundle as claimed by an unverified MANIFEST: nvd/43 " ID_B "\n"));
	free(out);
	free_lines(&h->l);
	free(log);
}

Test(custody, show_unknown_bundle)
{
	char *log = log_in("show-unknown"), *out;
	struct hb *h = trail(log);
	struct alerr e;
	int r;

	out = capture_show(log, "deadbeef", &r, &e);
	cr_assert_lt(r, 0);
	cr_assert_eq(e.cls, ALERR_NOINPUT);
	cr_assert_str_eq(e.reason, "audit.bundle_unknown");
	free(out);
	out = capture_show(log, "6f1c", &r, &e);
	cr_assert_eq(e.cls, ALERR_USAGE);
	free(out);
	free_lines(&h->l);
	free(log);
}
