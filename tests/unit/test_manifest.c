/* The manifest module: canonical round trips, one test per rejection
 * (exact reason code, line and field in the message), limits, and a
 * deterministic mutation loop that must never crash. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerr.h"
#include "bounds.h"
#include "manifest.h"
#include "text.h"

/* The specification's example; it is valid as written. Lines:
 *  1 Format ... 12 Schemas, 13 Writer-Host, 14 Courier, 17 Media-Serial,
 * 18 Signers (entries 19-20), 21 Tables (22-23), 24 SHA256 (25-26). */
#define FPR1 "0123456789ABCDEF0123456789ABCDEF01234567"
#define FPR2 "89ABCDEF0123456789ABCDEF0123456789ABCDEF"
#define HASH0 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HASH1 "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
#define UUID1 "4f1e2d3c-5b6a-4789-8abc-def012345678"
#define CREATED 1795871671      /* 2026-11-28T13:14:31Z */
#define UNTIL   1797081271      /* 2026-12-12T13:14:31Z */

static const char EXAMPLE[] =
	"Format: airlock-bundle/1\n"
	"Channel: nvd\n"
	"Sequence: 42\n"
	"Bundle-Id: " UUID1 "\n"
	"Created: 2026-11-28T13:14:31Z\n"
	"Valid-Until: 2026-12-12T13:14:31Z\n"
	"Source-Server-Version: 150018\n"
	"Payload-Kind: pg-copy-text/1\n"
	"Payload-Compression: zstd\n"
	"Payload-Chunk-Size: 268435456\n"
	"Snapshot: 00000003-0000001B-1\n"
	"Schemas: feeds\n"
	"Writer-Host: low-01.example.org\n"
	"Courier: Sgt. Jane Doe\n"
	"Media-Vendor: SanDisk\n"
	"Media-Model: Ultra Fit\n"
	"Media-Serial: 4C530001230517115042\n"
	"Signers:\n"
	" " FPR1 "\n"
	" " FPR2 "\n"
	"Tables:\n"
	" feeds.advisories 120345\n"
	" feeds.packages 98210\n"
	"SHA256:\n"
	" " HASH0 " 268435456 payload/000000.chunk\n"
	" " HASH1 " 1048576 payload/000001.chunk\n";

/* ------------------------------------------------------------------ */
/* Helpers */

struct text {
	char *p;
	size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	cr_assert_geq(n, 0);
	if (t->len + (size_t)n + 1 > t->cap) {
		t->cap = (t->len + (size_t)n + 1) * 2;
		t->p = realloc(t->p, t->cap);
		cr_assert_not_null(t->p);
	}
	va_start(ap, fmt);
	vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* A copy of base with the first occurrence of from replaced by to. */
static char *subst(const char *base, const char *from, const char *to)
{
	const char *at = strstr(base, from);
	size_t bl = strlen(base), fl = strlen(from), tl = strlen(to);
	char *out;

	cr_assert_not_null(at, "\"%s\" not in the base text", from);
	out = malloc(bl - fl + tl + 1);
	cr_assert_not_null(out);
	memcpy(out, base, (size_t)(at - base));
	memcpy(out + (at - base), to, tl);
	memcpy(out + (at - base) + tl, at + fl, bl - (size_t)(at - base) - fl + 1);
	return out;
}

/* Parse from an exact-size heap copy with no NUL after it, so that ASan
 * reports any read past len. */
static int parse_exact(const char *text, size_t len, struct manifest **m, struct alerr *e)
{
	char *copy = malloc(len ? len : 1);
	int r;

	cr_assert_not_null(copy);
	memcpy(copy, text, len);
	r = manifest_parse(copy, len, m, e);
	free(copy);
	return r;
}

static struct alerr rejected_len(const char *text, size_t len, const char *reason)
{
	struct manifest *m = NULL;
	struct alerr e;
	int r;

	alerr_clear(&e);
	r = parse_exact(text, len, &m, &e);
	cr_assert_lt(r, 0, "accepted, expected %s", reason);
	cr_assert_null(m);
	cr_assert_eq(e.cls, ALERR_REJECT, "class %d: %s", (int)e.cls, e.message);
	cr_assert_eq(r, e.errnum);
	cr_assert_str_eq(e.reason, reason, "reason %s (\"%s\"), expected %s",
	                 e.reason, e.message, reason);
	return e;
}

static void has(const struct alerr *e, const char *needle)
{
	if (needle)
		cr_assert_not_null(strstr(e->message, needle),
		                   "message \"%s\" does not name \"%s\"", e->message, needle);
}

/* Parse text; expect reason, and a message naming line and field. */
static struct alerr reject(const char *text, const char *reason, const char *line,
                           const char *field)
{
	struct alerr e = rejected_len(text, strlen(text), reason);

	has(&e, line);
	has(&e, field);
	return e;
}

/* The example with one substitution, rejected. */
static struct alerr reject_subst(const char *from, const char *to, const char *reason,
                                 const char *line, const char *field)
{
	char *t = subst(EXAMPLE, from, to);
	struct alerr e = reject(t, reason, line, field);

	free(t);
	return e;
}

static struct manifest *accept_text(const char *text, size_t len)
{
	struct manifest *m = NULL;
	struct alerr e;
	int r;

	alerr_clear(&e);
	r = parse_exact(text, len, &m, &e);
	cr_assert_eq(r, 0, "rejected: %s [%s]", e.message, e.reason);
	cr_assert_not_null(m);
	return m;
}

static void hash_of(uint8_t out[32], const char *hex)
{
	cr_assert_eq(text_hex_decode(out, 32, hex, strlen(hex), 0), 0);
}

#define OK(call) do { \
		struct alerr ok_e_; \
		int ok_r_; \
		alerr_clear(&ok_e_); \
		ok_r_ = (call); \
		cr_assert_eq(ok_r_, 0, "%s: %s [%s]", #call, ok_e_.message, ok_e_.reason); \
	} while (0)
/* OK() passes &ok_e_ through this name. */
#define OKE (&ok_e_)

/* The example, built with the setters; lists added in reverse order. */
static struct manifest *build_example(void)
{
	struct manifest *m = manifest_new();
	uint8_t h0[32], h1[32];

	cr_assert_not_null(m);
	hash_of(h0, HASH0);
	hash_of(h1, HASH1);
	OK(manifest_set_text(m, MANIFEST_F_CHANNEL, "nvd", OKE));
	OK(manifest_set_sequence(m, 42, OKE));
	OK(manifest_set_text(m, MANIFEST_F_BUNDLE_ID, UUID1, OKE));
	OK(manifest_set_created(m, CREATED, OKE));
	OK(manifest_set_valid_until(m, UNTIL, OKE));
	OK(manifest_set_server_version(m, 150018, OKE));
	OK(manifest_set_chunk_size(m, 268435456, OKE));
	OK(manifest_set_text(m, MANIFEST_F_SNAPSHOT, "00000003-0000001B-1", OKE));
	OK(manifest_add_schema(m, "feeds", OKE));
	OK(manifest_set_text(m, MANIFEST_F_WRITER_HOST, "low-01.example.org", OKE));
	OK(manifest_set_text(m, MANIFEST_F_COURIER, "Sgt. Jane Doe", OKE));
	OK(manifest_set_text(m, MANIFEST_F_MEDIA_VENDOR, "SanDisk", OKE));
	OK(manifest_set_text(m, MANIFEST_F_MEDIA_MODEL, "Ultra Fit", OKE));
	OK(manifest_set_text(m, MANIFEST_F_MEDIA_SERIAL, "4C530001230517115042", OKE));
	OK(manifest_add_signer(m, FPR2, OKE));
	OK(manifest_add_signer(m, FPR1, OKE));
	OK(manifest_add_table(m, "feeds", "packages", 98210, OKE));
	OK(manifest_add_table(m, "feeds", "advisories", 120345, OKE));
	OK(manifest_add_file(m, "payload/000001.chunk", 1048576, h1, OKE));
	OK(manifest_add_file(m, "payload/000000.chunk", 268435456, h0, OKE));
	return m;
}

static void same_opt(const char *a, const char *b, const char *what)
{
	if (!a || !b)
		cr_assert(a == b, "%s: %s vs %s", what, a ? a : "(null)", b ? b : "(null)");
	else
		cr_assert_str_eq(a, b, "%s", what);
}

static void assert_same(const struct manifest *a, const struct manifest *b)
{
	size_t i;

	same_opt(a->channel, b->channel, "channel");
	cr_assert_eq(a->sequence, b->sequence);
	cr_assert_str_eq(a->bundle_id, b->bundle_id);
	cr_assert_eq(a->created, b->created);
	cr_assert_eq(a->valid_until, b->valid_until);
	cr_assert_eq(a->source_server_version, b->source_server_version);
	same_opt(a->payload_kind, b->payload_kind, "payload_kind");
	same_opt(a->payload_compression, b->payload_compression, "payload_compression");
	cr_assert_eq(a->chunk_size, b->chunk_size);
	same_opt(a->snapshot, b->snapshot, "snapshot");
	same_opt(a->writer_host, b->writer_host, "writer_host");
	same_opt(a->courier, b->courier, "courier");
	same_opt(a->media_vendor, b->media_vendor, "media_vendor");
	same_opt(a->media_model, b->media_model, "media_model");
	same_opt(a->media_serial, b->media_serial, "media_serial");
	cr_assert_eq(a->n_schemas, b->n_schemas);
	for (i = 0; i < a->n_schemas; i++)
		cr_assert_str_eq(a->schemas[i], b->schemas[i]);
	cr_assert_eq(a->n_signers, b->n_signers);
	for (i = 0; i < a->n_signers; i++)
		cr_assert_str_eq(a->signers[i], b->signers[i]);
	cr_assert_eq(a->n_tables, b->n_tables);
	for (i = 0; i < a->n_tables; i++) {
		cr_assert_str_eq(a->tables[i].schema, b->tables[i].schema);
		cr_assert_str_eq(a->tables[i].table, b->tables[i].table);
		cr_assert_eq(a->tables[i].rows, b->tables[i].rows);
	}
	cr_assert_eq(a->n_files, b->n_files);
	for (i = 0; i < a->n_files; i++) {
		cr_assert_str_eq(a->files[i].path, b->files[i].path);
		cr_assert_eq(a->files[i].size, b->files[i].size);
		cr_assert_eq(memcmp(a->files[i].sha256, b->files[i].sha256, 32), 0);
	}
}

static char *emit_ok(const struct manifest *m, size_t *len)
{
	struct alerr e;
	char *out = NULL;
	int r;

	alerr_clear(&e);
	r = manifest_emit(m, &out, len, &e);
	cr_assert_eq(r, 0, "emit: %s [%s]", e.message, e.reason);
	cr_assert_not_null(out);
	cr_assert_eq(strlen(out), *len);
	return out;
}

/* ------------------------------------------------------------------ */
/* Round trips */

Test(roundtrip, built_manifest_emits_the_spec_example_and_parses_back)
{
	struct manifest *m = build_example(), *back;
	size_t len;
	char *text = emit_ok(m, &len);

	cr_assert_str_eq(text, EXAMPLE);
	back = accept_text(text, len);
	assert_same(m, back);
	cr_assert_str_eq(back->channel, "nvd");
	cr_assert_eq(back->sequence, 42);
	cr_assert_str_eq(back->bundle_id, UUID1);
	cr_assert_eq(back->created, CREATED);
	cr_assert_eq(back->valid_until, UNTIL);
	cr_assert_eq(back->source_server_version, 150018);
	cr_assert_str_eq(back->payload_kind, "pg-copy-text/1");
	cr_assert_str_eq(back->payload_compression, "zstd");
	cr_assert_eq(back->chunk_size, 268435456);
	cr_assert_str_eq(back->snapshot, "00000003-0000001B-1");
	cr_assert_str_eq(back->signers[0], FPR1);
	cr_assert_str_eq(back->tables[0].table, "advisories");
	cr_assert_eq(back->tables[1].rows, 98210);
	cr_assert_str_eq(back->files[1].path, "payload/000001.chunk");
	cr_assert_eq(back->files[1].size, 1048576);
	cr_assert_eq(back->files[0].sha256[0], 0xe3);
	cr_assert_eq(back->files[0].sha256[31], 0x55);
	free(text);
	manifest_free(m);
	manifest_free(back);
}

Test(roundtrip, spec_example_reemits_byte_for_byte)
{
	struct manifest *m = accept_text(EXAMPLE, strlen(EXAMPLE));
	size_t len;
	char *text = emit_ok(m, &len);

	cr_assert_eq(len, strlen(EXAMPLE));
	cr_assert_eq(memcmp(text, EXAMPLE, len), 0);
	cr_assert_eq(manifest_validate(m, NULL), 0);
	free(text);
	manifest_free(m);
}

Test(roundtrip, minimal_manifest_without_optional_fields)
{
	static const char minimal[] =
		"Format: airlock-bundle/1\n"
		"Channel: n\n"
		"Sequence: 1\n"
		"Bundle-Id: 00000000-0000-0000-0000-000000000000\n"
		"Created: 2000-01-01T00:00:00Z\n"
		"Valid-Until: 2000-01-01T00:00:01Z\n"
		"Source-Server-Version: 90400\n"
		"Payload-Kind: pg-copy-text/1\n"
		"Payload-Compression: zstd\n"
		"Payload-Chunk-Size: 1048576\n"
		"Snapshot: 1\n"
		"Schemas: _\n"
		"Writer-Host: h\n"
		"Signers:\n"
		" 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n"
		"Tables:\n"
		" _.t 0\n"
		"SHA256:\n"
		" " HASH0 " 1 payload/000000.chunk\n";
	struct manifest *m = accept_text(minimal, strlen(minimal)), *built;
	uint8_t h0[32];
	size_t len;
	char *text;

	cr_assert_null(m->courier);
	cr_assert_null(m->media_vendor);
	cr_assert_null(m->media_model);
	cr_assert_null(m->media_serial);
	cr_assert_eq(m->created, 946684800);
	cr_assert_eq(m->n_files, 1);

	built = manifest_new();
	hash_of(h0, HASH0);
	OK(manifest_set_text(built, MANIFEST_F_CHANNEL, "n", OKE));
	OK(manifest_set_sequence(built, 1, OKE));
	OK(manifest_set_text(built, MANIFEST_F_BUNDLE_ID, "00000000-0000-0000-0000-000000000000", OKE));
	OK(manifest_set_created(built, MANIFEST_TIME_MIN, OKE));
	OK(manifest_set_valid_until(built, MANIFEST_TIME_MIN + 1, OKE));
	OK(manifest_set_server_version(built, MANIFEST_SERVER_VERSION_MIN, OKE));
	OK(manifest_set_chunk_size(built, CHUNK_SIZE_MIN, OKE));
	OK(manifest_set_text(built, MANIFEST_F_SNAPSHOT, "1", OKE));
	OK(manifest_add_schema(built, "_", OKE));
	OK(manifest_set_text(built, MANIFEST_F_WRITER_HOST, "h", OKE));
	OK(manifest_add_signer(built, "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", OKE));
	OK(manifest_add_table(built, "_", "t", 0, OKE));
	OK(manifest_add_file(built, "payload/000000.chunk", 1, h0, OKE));
	text = emit_ok(built, &len);
	cr_assert_str_eq(text, minimal);
	assert_same(m, built);
	free(text);
	manifest_free(built);
	manifest_free(m);
}

Test(roundtrip, optional_field_cleared_with_null)
{
	struct manifest *m = build_example();
	struct alerr e;
	size_t len;
	char *text, *want;

	OK(manifest_set_text(m, MANIFEST_F_COURIER, NULL, OKE));
	text = emit_ok(m, &len);
	want = subst(EXAMPLE, "Courier: Sgt. Jane Doe\n", "");
	cr_assert_str_eq(text, want);
	alerr_clear(&e);
	cr_assert_lt(manifest_set_text(m, MANIFEST_F_CHANNEL, NULL, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.field_missing");
	free(want);
	free(text);
	manifest_free(m);
}

/* 64 schemas, 32 signers, 20000 tables, 20000 chunks, texts at 256
 * bytes, numbers at their maxima. */
static struct manifest *build_large(void)
{
	struct manifest *m = manifest_new();
	char name[16], text[MANIFEST_MAX_TEXT + 1], fpr[65];
	uint8_t h[32];
	size_t i;

	memset(text, 'x', MANIFEST_MAX_TEXT);
	text[MANIFEST_MAX_TEXT] = '\0';
	OK(manifest_set_text(m, MANIFEST_F_CHANNEL, "abcdefghijklmnopqrstuvwxyz0123456789.-_abcdefghijklmnopqrstuvwx", OKE));
	OK(manifest_set_sequence(m, INT64_MAX, OKE));
	OK(manifest_generate_bundle_id(m, OKE));
	OK(manifest_set_created(m, MANIFEST_TIME_MAX - 1, OKE));
	OK(manifest_set_valid_until(m, MANIFEST_TIME_MAX, OKE));
	OK(manifest_set_server_version(m, MANIFEST_SERVER_VERSION_MAX, OKE));
	OK(manifest_set_chunk_size(m, CHUNK_SIZE_MAX, OKE));
	OK(manifest_set_text(m, MANIFEST_F_SNAPSHOT, "0123456789ABCDEF-0123456789ABCDEF-0123456789ABCDEF-0123456789ABC", OKE));
	for (i = 0; i < MANIFEST_MAX_SCHEMAS; i++) {
		snprintf(name, sizeof(name), "s%02zu", i);
		OK(manifest_add_schema(m, name, OKE));
	}
	OK(manifest_set_text(m, MANIFEST_F_WRITER_HOST, text, OKE));
	OK(manifest_set_text(m, MANIFEST_F_COURIER, text, OKE));
	OK(manifest_set_text(m, MANIFEST_F_MEDIA_VENDOR, text, OKE));
	OK(manifest_set_text(m, MANIFEST_F_MEDIA_MODEL, text, OKE));
	OK(manifest_set_text(m, MANIFEST_F_MEDIA_SERIAL, text, OKE));
	for (i = 0; i < MANIFEST_MAX_SIGNERS; i++) {
		char num[9];

		memset(fpr, 'A', 64);
		snprintf(num, sizeof(num), "%08zX", i);
		memcpy(fpr + 32, num, 8);
		fpr[i % 2 ? 40 : 64] = '\0';
		OK(manifest_add_signer(m, fpr, OKE));
	}
	for (i = 0; i < MANIFEST_MAX_TABLES; i++) {
		snprintf(name, sizeof(name), "t%05zu", i);
		OK(manifest_add_table(m, i % 2 ? "s07" : "s63", name, (uint64_t)INT64_MAX - i, OKE));
	}
	for (i = 0; i < MANIFEST_MAX_FILES; i++) {
		char path[MANIFEST_CHUNK_PATH_LEN + 1];

		memset(h, (int)(i & 0xff), sizeof(h));
		cr_assert_eq(manifest_chunk_path(path, sizeof(path), i), 0);
		OK(manifest_add_file(m, path, i + 1 < MANIFEST_MAX_FILES ? CHUNK_SIZE_MAX : 1, h, OKE));
	}
	return m;
}

Test(roundtrip, large_manifest_near_the_limits)
{
	struct manifest *m = build_large(), *back;
	size_t len;
	char *text = emit_ok(m, &len);

	cr_assert_leq(len, MANIFEST_MAX_BYTES);
	cr_assert_gt(len, MANIFEST_MAX_BYTES / 2);
	back = accept_text(text, len);
	assert_same(m, back);
	cr_assert_eq(back->n_files, MANIFEST_MAX_FILES);
	cr_assert_eq(back->n_tables, MANIFEST_MAX_TABLES);
	cr_assert_eq(back->sequence, (uint64_t)INT64_MAX);
	free(text);
	manifest_free(back);
	manifest_free(m);
}

Test(roundtrip, parser_reads_nothing_past_len)
{
	size_t len = strlen(EXAMPLE), cut, one_chunk;
	struct manifest *m;

	/* parse_exact hands over an exact-size heap buffer: under ASan any
	 * read past len is an error. Every proper prefix is refused but one:
	 * without its last line the example is a valid one-chunk manifest
	 * (the signature, not the parser, stops truncation). */
	one_chunk = (size_t)(strstr(EXAMPLE, " " HASH1) - EXAMPLE);
	m = accept_text(EXAMPLE, len);
	manifest_free(m);
	for (cut = 0; cut < len; cut++) {
		struct alerr e;
		int r;

		alerr_clear(&e);
		m = NULL;
		r = parse_exact(EXAMPLE, cut, &m, &e);
		if (cut == one_chunk) {
			cr_assert_eq(r, 0, "%s", e.message);
			cr_assert_eq(m->n_files, 1);
			manifest_free(m);
			continue;
		}
		cr_assert_lt(r, 0, "prefix of %zu accepted", cut);
		cr_assert_null(m);
		cr_assert_neq(e.reason[0], '\0');
	}
}

/* ------------------------------------------------------------------ */
/* Format */

Test(format, unknown_format_value)
{
	reject_subst("Format: airlock-bundle/1", "Format: airlock-bundle/2",
	             "manifest.format_unknown", "line 1:", "Format");
}

Test(format, format_not_first)
{
	reject_subst("Format: airlock-bundle/1\nChannel: nvd\n",
	             "Channel: nvd\nFormat: airlock-bundle/1\n",
	             "manifest.format_unknown", "line 1:", "Format");
}

Test(format, empty_input)
{
	struct alerr e = rejected_len("", 0, "manifest.empty");

	cr_assert_eq(e.errnum, -EBADMSG);
}

/* ------------------------------------------------------------------ */
/* Fields */

Test(fields, missing_field)
{
	reject_subst("Channel: nvd\n", "", "manifest.field_missing", "line 2:", "Channel");
}

Test(fields, missing_list_field)
{
	reject_subst("Tables:\n feeds.advisories 120345\n feeds.packages 98210\n", "",
	             "manifest.field_missing", "line 21:", "Tables");
}

Test(fields, missing_last_field)
{
	char *t = strdup(EXAMPLE);

	*strstr(t, "SHA256:\n") = '\0';
	reject(t, "manifest.field_missing", "line 24:", "SHA256");
	free(t);
}

Test(fields, duplicated_field)
{
	struct alerr e = reject_subst("Sequence: 42\n", "Sequence: 42\nSequence: 43\n",
	                              "manifest.field_duplicate", "line 4:", "Sequence");

	cr_assert_str_eq(e.message, "MANIFEST line 4: duplicate field Sequence (first on line 3)");
}

Test(fields, duplicate_reported_before_order)
{
	reject_subst("Created:", "Sequence: 7\nCreated:",
	             "manifest.field_duplicate", "line 5:", "Sequence");
}

Test(fields, unknown_field)
{
	reject_subst("Sequence: 42\n", "Sequence: 42\nX-Extra: 1\n",
	             "manifest.field_unknown", "line 4:", "X-Extra");
}

Test(fields, field_name_is_case_sensitive)
{
	reject_subst("Sequence: 42\n", "sequence: 42\n",
	             "manifest.field_unknown", "line 3:", "sequence");
}

Test(fields, out_of_order)
{
	reject_subst("Channel: nvd\nSequence: 42\n", "Sequence: 42\nChannel: nvd\n",
	             "manifest.field_order", "line 3:", "Channel");
}

Test(fields, optional_field_out_of_order)
{
	reject_subst("Courier: Sgt. Jane Doe\nMedia-Vendor: SanDisk\n",
	             "Media-Vendor: SanDisk\nCourier: Sgt. Jane Doe\n",
	             "manifest.field_order", "line 15:", "Courier");
}

/* ------------------------------------------------------------------ */
/* Numbers */

Test(numbers, non_digit)
{
	reject_subst("Sequence: 42", "Sequence: 4x2", "manifest.number_invalid",
	             "line 3:", "Sequence");
}

Test(numbers, leading_zero)
{
	reject_subst("Sequence: 42", "Sequence: 042", "manifest.number_invalid",
	             "line 3:", "Sequence");
}

Test(numbers, plus_sign)
{
	reject_subst("Sequence: 42", "Sequence: +42", "manifest.number_invalid",
	             "line 3:", "Sequence");
}

Test(numbers, minus_sign)
{
	reject_subst("Payload-Chunk-Size: 268435456", "Payload-Chunk-Size: -268435456",
	             "manifest.number_invalid", "line 10:", "Payload-Chunk-Size");
}

Test(numbers, empty_number)
{
	reject_subst(HASH0 " 268435456 ", HASH0 "  ", "manifest.number_invalid",
	             "line 25:", "SHA256");
}

Test(numbers, twenty_one_digits_is_a_range_error)
{
	struct alerr e = reject_subst("Sequence: 42", "Sequence: 123456789012345678901",
	                              "manifest.number_range", "line 3:", "Sequence");

	cr_assert_eq(e.errnum, -ERANGE);
}

Test(numbers, twenty_digits_over_uint64)
{
	reject_subst("Sequence: 42", "Sequence: 99999999999999999999",
	             "manifest.number_range", "line 3:", "Sequence");
}

Test(numbers, sequence_above_int64_max)
{
	reject_subst("Sequence: 42", "Sequence: 9223372036854775808",
	             "manifest.number_range", "line 3:", "Sequence");
}

Test(numbers, sequence_int64_max_accepted)
{
	char *t = subst(EXAMPLE, "Sequence: 42", "Sequence: 9223372036854775807");
	struct manifest *m = accept_text(t, strlen(t));

	cr_assert_eq(m->sequence, (uint64_t)INT64_MAX);
	manifest_free(m);
	free(t);
}

Test(numbers, sequence_zero)
{
	reject_subst("Sequence: 42", "Sequence: 0", "manifest.number_range",
	             "line 3:", "Sequence");
}

Test(numbers, chunk_size_below_minimum)
{
	reject_subst("Payload-Chunk-Size: 268435456", "Payload-Chunk-Size: 1048575",
	             "manifest.number_range", "line 10:", "Payload-Chunk-Size");
}

Test(numbers, chunk_size_above_maximum)
{
	reject_subst("Payload-Chunk-Size: 268435456", "Payload-Chunk-Size: 2147483649",
	             "manifest.number_range", "line 10:", "Payload-Chunk-Size");
}

Test(numbers, server_version_below_minimum)
{
	reject_subst("Source-Server-Version: 150018", "Source-Server-Version: 90399",
	             "manifest.number_range", "line 7:", "Source-Server-Version");
}

Test(numbers, server_version_above_maximum)
{
	reject_subst("Source-Server-Version: 150018", "Source-Server-Version: 10000000",
	             "manifest.number_range", "line 7:", "Source-Server-Version");
}

Test(numbers, row_count_above_int64_max)
{
	reject_subst("feeds.packages 98210", "feeds.packages 9223372036854775808",
	             "manifest.number_range", "line 23:", "Tables");
}

Test(numbers, file_size_above_limit)
{
	reject_subst(HASH1 " 1048576", HASH1 " 4611686018427387905",
	             "manifest.number_range", "line 26:", "SHA256");
}

/* ------------------------------------------------------------------ */
/* Bundle-Id */

Test(uuid, upper_case)
{
	reject_subst(UUID1, "4F1E2D3C-5B6A-4789-8ABC-DEF012345678",
	             "manifest.value_invalid", "line 4:", "Bundle-Id");
}

Test(uuid, without_dashes)
{
	reject_subst(UUID1, "4f1e2d3c5b6a47898abcdef012345678",
	             "manifest.value_invalid", "line 4:", "Bundle-Id");
}

Test(uuid, braced)
{
	reject_subst(UUID1, "{" UUID1 "}", "manifest.value_invalid", "line 4:", "Bundle-Id");
}

Test(uuid, dashes_misplaced)
{
	reject_subst(UUID1, "4f1e2d3c5-b6a-4789-8abc-def012345678",
	             "manifest.value_invalid", "line 4:", "Bundle-Id");
}

/* ------------------------------------------------------------------ */
/* Timestamps */

Test(time, february_30)
{
	reject_subst("Created: 2026-11-28T13:14:31Z", "Created: 2026-02-30T13:14:31Z",
	             "manifest.value_invalid", "line 5:", "Created");
}

Test(time, hour_24)
{
	reject_subst("Created: 2026-11-28T13:14:31Z", "Created: 2026-11-28T24:00:00Z",
	             "manifest.value_invalid", "line 5:", "Created");
}

Test(time, second_60)
{
	reject_subst("Created: 2026-11-28T13:14:31Z", "Created: 2026-11-28T13:14:60Z",
	             "manifest.value_invalid", "line 5:", "Created");
}

Test(time, missing_z)
{
	reject_subst("Created: 2026-11-28T13:14:31Z", "Created: 2026-11-28T13:14:31",
	             "manifest.value_invalid", "line 5:", "Created");
}

Test(time, lower_case_t)
{
	reject_subst("Created: 2026-11-28T13:14:31Z", "Created: 2026-11-28t13:14:31Z",
	             "manifest.value_invalid", "line 5:", "Created");
}

Test(time, numeric_offset_instead_of_z)
{
	reject_subst("Valid-Until: 2026-12-12T13:14:31Z", "Valid-Until: 2026-12-12T13:14:31+00:00",
	             "manifest.value_invalid", "line 6:", "Valid-Until");
}

Test(time, year_before_2000)
{
	reject_subst("Created: 2026-11-28T13:14:31Z", "Created: 1999-12-31T23:59:59Z",
	             "manifest.value_invalid", "line 5:", "Created");
}

Test(time, valid_until_equal_to_created)
{
	reject_subst("Valid-Until: 2026-12-12T13:14:31Z", "Valid-Until: 2026-11-28T13:14:31Z",
	             "manifest.value_invalid", "line 6:", "Valid-Until");
}

Test(time, valid_until_before_created)
{
	reject_subst("Valid-Until: 2026-12-12T13:14:31Z", "Valid-Until: 2026-11-28T13:14:30Z",
	             "manifest.value_invalid", "line 6:", "Valid-Until");
}

Test(time, leap_day_accepted)
{
	char *t = subst(EXAMPLE, "Created: 2026-11-28T13:14:31Z", "Created: 2024-02-29T00:00:00Z");
	struct manifest *m = accept_text(t, strlen(t));

	cr_assert_eq(m->created, 1709164800);
	manifest_free(m);
	free(t);
}

/* ------------------------------------------------------------------ */
/* Paths, through the first SHA256 entry (line 25) */

static struct alerr reject_path(const char *path, const char *reason)
{
	return reject_subst("payload/000000.chunk", path, reason, "line 25:", "SHA256");
}

Test(path, absolute)
{
	reject_path("/payload/000000.chunk", "manifest.path_absolute");
}

Test(path, dotdot_segment)
{
	reject_path("payload/../000000.chunk", "manifest.path_dotdot");
}

Test(path, dot_segment)
{
	reject_path("./payload/000000.chunk", "manifest.path_dotdot");
}

Test(path, empty_segment)
{
	reject_path("payload//000000.chunk", "manifest.path_empty_segment");
}

Test(path, trailing_slash)
{
	reject_path("payload/000000.chunk/", "manifest.path_empty_segment");
}

Test(path, space)
{
	reject_path("payload/000000 .chunk", "manifest.path_invalid");
}

Test(path, backslash)
{
	reject_path("payload\\000000.chunk", "manifest.path_invalid");
}

Test(path, utf8_letters)
{
	reject_path("payload/00000\xc3\xa9.chunk", "manifest.path_invalid");
}

Test(path, hidden_segment)
{
	reject_path("payload/.000000.chunk", "manifest.path_invalid");
}

Test(path, leading_dash)
{
	reject_path("payload/-000000.chunk", "manifest.path_invalid");
}

Test(path, segment_too_long)
{
	char seg[VOLUME_SEGMENT_MAX + 2];
	struct alerr e;

	memset(seg, 'a', VOLUME_SEGMENT_MAX + 1);
	seg[VOLUME_SEGMENT_MAX + 1] = '\0';
	e = reject_path(seg, "manifest.path_invalid");
	cr_assert_eq(e.errnum, -E2BIG);
}

Test(path, path_too_long)
{
	char path[VOLUME_PATH_MAX + 2];
	struct alerr e;
	size_t i;

	for (i = 0; i <= VOLUME_PATH_MAX; i++)
		path[i] = (i % 40 == 39) ? '/' : 'a';
	path[VOLUME_PATH_MAX + 1] = '\0';
	e = reject_path(path, "manifest.path_invalid");
	cr_assert_eq(e.errnum, -E2BIG);
	has(&e, "longer than 255");
}

Test(path, too_deep)
{
	reject_path("a/b/c/d/e", "manifest.path_invalid");
}

Test(path, reserved_manifest)
{
	reject_path("MANIFEST", "manifest.path_reserved");
}

Test(path, reserved_manifest_any_case)
{
	reject_path("manifest", "manifest.path_reserved");
}

Test(path, reserved_signatures)
{
	reject_path("SIGNATURES/0123456789ABCDEF.asc", "manifest.path_reserved");
}

Test(path, duplicate_path)
{
	reject_subst("payload/000001.chunk", "payload/000000.chunk",
	             "manifest.path_duplicate", "line 26:", "SHA256");
}

Test(path, duplicate_ignoring_case)
{
	char *t = subst(EXAMPLE, "payload/000000.chunk", "payload/000000.CHUNK");
	char *u = subst(t, "payload/000001.chunk", "payload/000000.chunk");
	struct alerr e = reject(u, "manifest.path_duplicate", "line 26:", "SHA256");

	has(&e, "case");
	free(u);
	free(t);
}

Test(path, unsorted_paths)
{
	char *t = subst(EXAMPLE, "payload/000000.chunk", "payload/000009.chunk");

	reject(t, "manifest.path_order", "line 26:", "SHA256");
	free(t);
}

Test(path, nul_with_explicit_length)
{
	static const char p[] = "payload/0\0.chunk";
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(manifest_path_check(p, sizeof(p) - 1, &e), -EBADMSG);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, "manifest.path_invalid");
	has(&e, "0x00");
}

Test(path, control_characters_refused_directly)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(manifest_path_check("a\x1b" "b", 3, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.path_invalid");
}

Test(path, good_paths_accepted)
{
	char seg[VOLUME_SEGMENT_MAX + 1], path[VOLUME_PATH_MAX + 1];
	size_t i;

	cr_assert_eq(manifest_path_check("payload/000000.chunk", 20, NULL), 0);
	cr_assert_eq(manifest_path_check("a", 1, NULL), 0);
	cr_assert_eq(manifest_path_check("A-b_c.d/9.../x", 14, NULL), 0);
	cr_assert_eq(manifest_path_check("a/b/c/d", 7, NULL), 0);
	memset(seg, 'z', VOLUME_SEGMENT_MAX);
	cr_assert_eq(manifest_path_check(seg, VOLUME_SEGMENT_MAX, NULL), 0);
	/* 3 segments of 64 and one of 60 with 3 slashes: exactly 255. */
	for (i = 0; i < VOLUME_PATH_MAX; i++)
		path[i] = (i == 64 || i == 129 || i == 194) ? '/' : 'p';
	cr_assert_eq(manifest_path_check(path, VOLUME_PATH_MAX, NULL), 0);
	cr_assert_eq(manifest_path_check("", 0, NULL), -EBADMSG);
}

Test(path, reserved_helper)
{
	cr_assert(manifest_path_is_reserved("MANIFEST", 8));
	cr_assert(manifest_path_is_reserved("Manifest", 8));
	cr_assert(manifest_path_is_reserved("SIGNATURES", 10));
	cr_assert(manifest_path_is_reserved("signatures/x.asc", 16));
	cr_assert_not(manifest_path_is_reserved("MANIFEST.txt", 12));
	cr_assert_not(manifest_path_is_reserved("SIGNATURESX/a", 13));
	cr_assert_not(manifest_path_is_reserved("payload/000000.chunk", 20));
}

/* ------------------------------------------------------------------ */
/* Payload layout */

Test(payload, gap_in_chunk_numbers)
{
	reject_subst("payload/000001.chunk", "payload/000002.chunk",
	             "manifest.payload_layout", "line 26:", "SHA256");
}

Test(payload, first_chunk_not_zero)
{
	char *t = subst(EXAMPLE, "payload/000001.chunk", "payload/000002.chunk");
	char *u = subst(t, "payload/000000.chunk", "payload/000001.chunk");

	reject(u, "manifest.payload_layout", "line 25:", "SHA256");
	free(u);
	free(t);
}

Test(payload, path_outside_payload)
{
	reject_subst("payload/000001.chunk", "zz/extra.bin",
	             "manifest.payload_layout", "line 26:", "SHA256");
}

Test(payload, seven_digit_chunk_name)
{
	reject_subst("payload/000001.chunk", "payload/0000001.chunk",
	             "manifest.payload_layout", "line 26:", "SHA256");
}

Test(payload, short_chunk_before_the_last)
{
	reject_subst(HASH0 " 268435456", HASH0 " 268435455",
	             "manifest.payload_layout", "line 25:", "SHA256");
}

Test(payload, empty_last_chunk)
{
	reject_subst(HASH1 " 1048576", HASH1 " 0",
	             "manifest.payload_layout", "line 26:", "SHA256");
}

Test(payload, last_chunk_larger_than_chunk_size)
{
	reject_subst(HASH1 " 1048576", HASH1 " 268435457",
	             "manifest.payload_layout", "line 26:", "SHA256");
}

/* ------------------------------------------------------------------ */
/* SHA256 entries */

Test(hash, upper_case_hex)
{
	reject_subst(HASH0, "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
	             "manifest.value_invalid", "line 25:", "SHA256");
}

Test(hash, sixty_three_digits)
{
	reject_subst(HASH0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
	             "manifest.value_invalid", "line 25:", "SHA256");
}

Test(hash, non_hex_digit)
{
	reject_subst(HASH0, "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	             "manifest.value_invalid", "line 25:", "SHA256");
}

Test(hash, entry_without_path)
{
	reject_subst(" 1048576 payload/000001.chunk", " 1048576",
	             "manifest.value_invalid", "line 26:", "SHA256");
}

/* ------------------------------------------------------------------ */
/* Tables, Signers, Schemas */

Test(tables, schema_not_listed)
{
	struct alerr e = reject_subst("feeds.packages", "other.packages",
	                              "manifest.value_invalid", "line 23:", "Tables");

	has(&e, "Schemas");
}

Test(tables, duplicate_table)
{
	reject_subst("feeds.packages", "feeds.advisories",
	             "manifest.entry_duplicate", "line 23:", "Tables");
}

Test(tables, unsorted_tables)
{
	reject_subst("feeds.packages", "feeds.aaa",
	             "manifest.entry_order", "line 23:", "Tables");
}

Test(tables, entry_without_dot)
{
	reject_subst("feeds.advisories", "feedsadvisories",
	             "manifest.value_invalid", "line 22:", "Tables");
}

Test(tables, bad_identifier)
{
	reject_subst("feeds.advisories", "feeds.1advisories",
	             "manifest.value_invalid", "line 22:", "Tables");
}

Test(signers, unsorted_signers)
{
	char *t = subst(EXAMPLE, " " FPR1 "\n " FPR2 "\n", " " FPR2 "\n " FPR1 "\n");

	reject(t, "manifest.entry_order", "line 20:", "Signers");
	free(t);
}

Test(signers, duplicate_signer)
{
	reject_subst(" " FPR2 "\n", " " FPR1 "\n", "manifest.entry_duplicate",
	             "line 20:", "Signers");
}

Test(signers, lower_case_fingerprint)
{
	reject_subst(FPR1, "0123456789abcdef0123456789ABCDEF01234567",
	             "manifest.value_invalid", "line 19:", "Signers");
}

Test(signers, fingerprint_of_39_digits)
{
	reject_subst(FPR1, "0123456789ABCDEF0123456789ABCDEF0123456",
	             "manifest.value_invalid", "line 19:", "Signers");
}

Test(signers, short_key_id_is_no_fingerprint)
{
	reject_subst(FPR1, "89ABCDEF01234567", "manifest.value_invalid", "line 19:", "Signers");
}

Test(schemas, unsorted_schemas)
{
	reject_subst("Schemas: feeds", "Schemas: feeds alpha",
	             "manifest.entry_order", "line 12:", "Schemas");
}

Test(schemas, duplicate_schema)
{
	reject_subst("Schemas: feeds", "Schemas: feeds feeds",
	             "manifest.entry_duplicate", "line 12:", "Schemas");
}

Test(schemas, bad_identifier)
{
	reject_subst("Schemas: feeds", "Schemas: 9feeds",
	             "manifest.value_invalid", "line 12:", "Schemas");
}

Test(schemas, double_space)
{
	reject_subst("Schemas: feeds", "Schemas: alpha  feeds",
	             "manifest.value_invalid", "line 12:", "Schemas");
}

Test(schemas, too_many_schemas)
{
	struct text line = { 0 };
	struct alerr e;
	char *t;
	size_t i;

	text_add(&line, "Schemas:");
	for (i = 0; i <= MANIFEST_MAX_SCHEMAS; i++)
		text_add(&line, " s%03zu", i);
	t = subst(EXAMPLE, "Schemas: feeds", line.p);
	e = reject(t, "manifest.entry_limit", "line 12:", "Schemas");
	cr_assert_eq(e.errnum, -E2BIG);
	free(t);
	free(line.p);
}

/* ------------------------------------------------------------------ */
/* Other values */

Test(values, channel_upper_case)
{
	reject_subst("Channel: nvd", "Channel: NVD", "manifest.value_invalid",
	             "line 2:", "Channel");
}

Test(values, channel_too_long)
{
	char ch[CHANNEL_MAX + 16];

	memcpy(ch, "Channel: ", 9);
	memset(ch + 9, 'a', CHANNEL_MAX + 1);
	ch[9 + CHANNEL_MAX + 1] = '\0';
	reject_subst("Channel: nvd", ch, "manifest.value_invalid", "line 2:", "Channel");
}

Test(values, writer_host_too_long)
{
	char v[MANIFEST_MAX_TEXT + 32];
	struct alerr e;

	memcpy(v, "Writer-Host: ", 13);
	memset(v + 13, 'h', MANIFEST_MAX_TEXT + 1);
	v[13 + MANIFEST_MAX_TEXT + 1] = '\0';
	e = reject_subst("Writer-Host: low-01.example.org", v, "manifest.value_invalid",
	                 "line 13:", "Writer-Host");
	cr_assert_eq(e.errnum, -E2BIG);
}

Test(values, snapshot_lower_case)
{
	reject_subst("Snapshot: 00000003-0000001B-1", "Snapshot: 00000003-0000001b-1",
	             "manifest.value_invalid", "line 11:", "Snapshot");
}

Test(values, payload_kind_unknown)
{
	reject_subst("Payload-Kind: pg-copy-text/1", "Payload-Kind: pg-dump/1",
	             "manifest.value_invalid", "line 8:", "Payload-Kind");
}

Test(values, payload_compression_unknown)
{
	reject_subst("Payload-Compression: zstd", "Payload-Compression: gzip",
	             "manifest.value_invalid", "line 9:", "Payload-Compression");
}

/* ------------------------------------------------------------------ */
/* Lines and bytes */

Test(lexical, line_over_max_line)
{
	char *v = malloc(MANIFEST_MAX_LINE + 2);
	struct alerr e;

	memcpy(v, "Courier: ", 9);
	memset(v + 9, 'x', MANIFEST_MAX_LINE + 1 - 9);
	v[MANIFEST_MAX_LINE + 1] = '\0';
	e = reject_subst("Courier: Sgt. Jane Doe", v, "manifest.line_too_long",
	                 "line 14:", "Courier");
	cr_assert_eq(e.errnum, -E2BIG);
	/* One byte less is a line the parser reads (and then refuses the
	 * value as too long for free text). */
	v[MANIFEST_MAX_LINE] = '\0';
	reject_subst("Courier: Sgt. Jane Doe", v, "manifest.value_invalid", "line 14:", "Courier");
	free(v);
}

Test(lexical, manifest_over_max_bytes)
{
	size_t len = MANIFEST_MAX_BYTES + 1u;
	char *big = malloc(len);
	struct alerr e;

	memset(big, 'x', len);
	memcpy(big, EXAMPLE, strlen(EXAMPLE));
	e = rejected_len(big, len, "manifest.too_large");
	cr_assert_eq(e.errnum, -E2BIG);
	/* At exactly the limit the size is fine; the content is not. */
	e = rejected_len(big, len - 1, "manifest.line_too_long");
	free(big);
}

Test(lexical, invalid_utf8_byte)
{
	reject_subst("Sgt. Jane Doe", "Sgt. Jane\xff Doe", "manifest.not_utf8",
	             "line 14:", "Courier");
}

Test(lexical, overlong_utf8)
{
	reject_subst("Sgt. Jane Doe", "Sgt. Jane \xc0\xaf Doe", "manifest.not_utf8",
	             "line 14:", "Courier");
}

Test(lexical, truncated_utf8_at_line_end)
{
	reject_subst("Sgt. Jane Doe\n", "Sgt. Jane Doe\xc3\n", "manifest.not_utf8",
	             "line 14:", "Courier");
}

Test(lexical, utf8_free_text_accepted)
{
	char *t = subst(EXAMPLE, "Sgt. Jane Doe", "Sgt. J\xc3\xbcrgen M\xc3\xbcller \xe6\x9d\xb1");
	struct manifest *m = accept_text(t, strlen(t));

	cr_assert_str_eq(m->courier, "Sgt. J\xc3\xbcrgen M\xc3\xbcller \xe6\x9d\xb1");
	manifest_free(m);
	free(t);
}

Test(lexical, crlf_line_ending)
{
	reject_subst("Sequence: 42\n", "Sequence: 42\r\n", "manifest.cr", "line 3:", "Sequence");
}

Test(lexical, lone_cr_in_value)
{
	reject_subst("Sgt. Jane Doe", "Sgt. Jane\rDoe", "manifest.cr", "line 14:", "Courier");
}

Test(lexical, tab)
{
	reject_subst("Sgt. Jane Doe", "Sgt.\tJane Doe", "manifest.control_char",
	             "line 14:", "Courier");
}

Test(lexical, nul_byte)
{
	size_t len = strlen(EXAMPLE);
	char *t = strdup(EXAMPLE);
	struct alerr e;

	*strstr(t, "Jane") = '\0';
	e = rejected_len(t, len, "manifest.control_char");
	has(&e, "line 14:");
	has(&e, "Courier");
	free(t);
}

Test(lexical, escape_sequence)
{
	reject_subst("Sgt. Jane Doe", "Sgt. \x1b[31mJane Doe", "manifest.control_char",
	             "line 14:", "Courier");
}

Test(lexical, c1_control)
{
	reject_subst("Sgt. Jane Doe", "Sgt. \xc2\x85Jane Doe", "manifest.control_char",
	             "line 14:", "Courier");
}

Test(lexical, delete_character)
{
	reject_subst("Sgt. Jane Doe", "Sgt. Jane\x7f Doe", "manifest.control_char",
	             "line 14:", "Courier");
}

Test(lexical, missing_final_newline)
{
	struct alerr e = rejected_len(EXAMPLE, strlen(EXAMPLE) - 1, "manifest.syntax");

	has(&e, "line 26:");
	has(&e, "SHA256");
	has(&e, "newline");
}

Test(lexical, blank_line)
{
	reject_subst("Sequence: 42\n", "Sequence: 42\n\n", "manifest.syntax", "line 4:", "blank");
}

Test(lexical, blank_line_at_end)
{
	char *t = malloc(strlen(EXAMPLE) + 2);

	strcpy(t, EXAMPLE);
	strcat(t, "\n");
	reject(t, "manifest.syntax", "line 27:", "blank");
	free(t);
}

Test(lexical, comment_line)
{
	reject_subst("Sequence: 42\n", "Sequence: 42\n# note\n", "manifest.syntax",
	             "line 4:", "comment");
}

Test(lexical, leading_space_in_value)
{
	reject_subst("Sequence: 42", "Sequence:  42", "manifest.syntax", "line 3:", "Sequence");
}

Test(lexical, trailing_space_in_value)
{
	reject_subst("Sgt. Jane Doe\n", "Sgt. Jane Doe \n", "manifest.syntax",
	             "line 14:", "Courier");
}

Test(lexical, no_space_after_colon)
{
	reject_subst("Sequence: 42", "Sequence:42", "manifest.syntax", "line 3:", "Sequence");
}

Test(lexical, list_field_with_no_entries)
{
	reject_subst("Signers:\n " FPR1 "\n " FPR2 "\n", "Signers:\n", "manifest.syntax",
	             "line 18:", "Signers");
}

Test(lexical, last_list_field_with_no_entries)
{
	char *t = strdup(EXAMPLE);

	strcpy(strstr(t, "SHA256:\n") + 8, "");
	reject(t, "manifest.syntax", "line 24:", "SHA256");
	free(t);
}

Test(lexical, simple_field_written_as_list)
{
	reject_subst("Sequence: 42\n", "Sequence:\n 42\n", "manifest.syntax",
	             "line 3:", "Sequence");
}

Test(lexical, list_field_written_as_simple)
{
	reject_subst("Signers:\n " FPR1 "\n", "Signers: " FPR1 "\n", "manifest.syntax",
	             "line 18:", "Signers");
}

Test(lexical, continuation_outside_a_list)
{
	reject_subst("Channel: nvd\n", "Channel: nvd\n more\n", "manifest.syntax",
	             "line 3:", "Channel");
}

Test(lexical, list_entry_with_two_leading_spaces)
{
	reject_subst(" " FPR2, "  " FPR2, "manifest.syntax", "line 20:", "Signers");
}

Test(lexical, list_entry_with_trailing_space)
{
	reject_subst(FPR2 "\n", FPR2 " \n", "manifest.syntax", "line 20:", "Signers");
}

Test(lexical, line_without_colon)
{
	reject_subst("Sequence: 42\n", "Sequence 42\n", "manifest.syntax", "line 3:", "Sequence");
}

/* ------------------------------------------------------------------ */
/* Limits on entry counts */

Test(limits, too_many_files)
{
	struct text t = { 0 };
	char *head = strdup(EXAMPLE);
	struct alerr e;
	size_t i;

	*strstr(head, "SHA256:\n") = '\0';
	text_add(&t, "%sSHA256:\n", head);
	for (i = 0; i <= MANIFEST_MAX_FILES; i++)
		text_add(&t, " %s 268435456 payload/%06zu.chunk\n", HASH0, i);
	e = reject(t.p, "manifest.entry_limit", "line 20025:", "SHA256");
	cr_assert_eq(e.errnum, -E2BIG);
	free(head);
	free(t.p);
}

Test(limits, too_many_signers)
{
	struct text t = { 0 };
	char *head = strdup(EXAMPLE), *tail;
	size_t i;

	tail = strstr(EXAMPLE, "Tables:");
	*strstr(head, "Signers:\n") = '\0';
	text_add(&t, "%sSigners:\n", head);
	for (i = 0; i <= MANIFEST_MAX_SIGNERS; i++)
		text_add(&t, " %040zX\n", i);
	text_add(&t, "%s", tail);
	reject(t.p, "manifest.entry_limit", "line 51:", "Signers");
	free(head);
	free(t.p);
}

/* ------------------------------------------------------------------ */
/* Builders, validation and emit (writer side) */

Test(builder, setters_refuse_bad_values_as_usage_errors)
{
	struct manifest *m = manifest_new();
	uint8_t h[32] = { 0 };
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(manifest_set_text(m, MANIFEST_F_CHANNEL, "Bad Channel", &e), 0);
	cr_assert_eq(e.cls, ALERR_USAGE);
	cr_assert_str_eq(e.reason, "manifest.value_invalid");
	has(&e, "Channel");
	cr_assert_null(m->channel);

	alerr_clear(&e);
	cr_assert_eq(manifest_set_sequence(m, 0, &e), -ERANGE);
	cr_assert_str_eq(e.reason, "manifest.number_range");
	alerr_clear(&e);
	cr_assert_lt(manifest_set_sequence(m, (uint64_t)INT64_MAX + 1, &e), 0);
	alerr_clear(&e);
	cr_assert_lt(manifest_set_created(m, MANIFEST_TIME_MIN - 1, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.value_invalid");
	alerr_clear(&e);
	cr_assert_lt(manifest_set_chunk_size(m, CHUNK_SIZE_MAX + 1, &e), 0);
	alerr_clear(&e);
	cr_assert_lt(manifest_set_server_version(m, 90399, &e), 0);
	alerr_clear(&e);
	cr_assert_lt(manifest_set_text(m, MANIFEST_F_BUNDLE_ID, "4F1E2D3C-5B6A-4789-8ABC-DEF012345678", &e), 0);
	cr_assert_str_eq(e.reason, "manifest.value_invalid");
	alerr_clear(&e);
	cr_assert_lt(manifest_set_text(m, MANIFEST_F_COURIER, "a\nb", &e), 0);
	alerr_clear(&e);
	cr_assert_lt(manifest_set_text(m, MANIFEST_F_COURIER, " padded", &e), 0);
	alerr_clear(&e);
	cr_assert_lt(manifest_set_text(m, MANIFEST_F_SEQUENCE, "42", &e), 0);
	cr_assert_eq(e.cls, ALERR_SOFTWARE);

	alerr_clear(&e);
	OK(manifest_add_schema(m, "feeds", OKE));
	cr_assert_lt(manifest_add_schema(m, "feeds", &e), 0);
	cr_assert_str_eq(e.reason, "manifest.entry_duplicate");
	alerr_clear(&e);
	cr_assert_lt(manifest_add_signer(m, "0123456789abcdef0123456789abcdef01234567", &e), 0);
	cr_assert_str_eq(e.reason, "manifest.value_invalid");
	alerr_clear(&e);
	OK(manifest_add_table(m, "feeds", "t", 1, OKE));
	cr_assert_lt(manifest_add_table(m, "feeds", "t", 2, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.entry_duplicate");
	alerr_clear(&e);
	OK(manifest_add_file(m, "payload/000000.chunk", 1, h, OKE));
	cr_assert_lt(manifest_add_file(m, "payload/000000.chunk", 1, h, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.path_duplicate");
	alerr_clear(&e);
	cr_assert_lt(manifest_add_file(m, "SIGNATURES/a.asc", 1, h, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.path_reserved");
	alerr_clear(&e);
	cr_assert_lt(manifest_add_file(m, "../etc/passwd", 1, h, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.path_dotdot");
	manifest_free(m);
}

Test(builder, emit_refuses_an_incomplete_manifest)
{
	struct manifest *m = manifest_new();
	struct alerr e;
	char *out = (char *)1;
	size_t len = 1;

	alerr_clear(&e);
	cr_assert_lt(manifest_emit(m, &out, &len, &e), 0);
	cr_assert_null(out);
	cr_assert_eq(len, 0);
	cr_assert_eq(e.cls, ALERR_SOFTWARE);
	cr_assert_str_eq(e.reason, "manifest.field_missing");
	has(&e, "Channel");
	manifest_free(m);
}

Test(builder, validate_checks_the_order_of_times)
{
	struct manifest *m = build_example();
	struct alerr e;

	m->valid_until = m->created;
	alerr_clear(&e);
	cr_assert_lt(manifest_validate(m, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.value_invalid");
	has(&e, "Valid-Until");
	manifest_free(m);
}

Test(builder, validate_checks_the_payload_layout)
{
	struct manifest *m = build_example();
	struct alerr e;

	m->files[0].size = 5;
	alerr_clear(&e);
	cr_assert_lt(manifest_validate(m, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.payload_layout");
	manifest_free(m);
}

Test(builder, case_insensitive_duplicate_caught_at_emit)
{
	struct manifest *m = build_example();
	uint8_t h[32] = { 0 };
	struct alerr e;
	char *out;
	size_t len;

	OK(manifest_add_file(m, "payload/000000.CHUNK", 1, h, OKE));
	alerr_clear(&e);
	cr_assert_lt(manifest_emit(m, &out, &len, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.path_duplicate");
	manifest_free(m);
}

Test(builder, table_of_unlisted_schema_caught_at_emit)
{
	struct manifest *m = build_example();
	struct alerr e;

	OK(manifest_add_table(m, "other", "t", 1, OKE));
	alerr_clear(&e);
	cr_assert_lt(manifest_validate(m, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.value_invalid");
	has(&e, "Schemas");
	manifest_free(m);
}

Test(builder, schemas_line_over_max_line)
{
	struct manifest *m = build_example();
	char name[NAME_MAX_IDENT + 1];
	struct alerr e;
	size_t i;

	/* 64 names of 63 bytes do not fit one 4096-byte line. */
	for (i = 0; i < m->n_tables; i++) {
		free(m->tables[i].schema);
		free(m->tables[i].table);
	}
	m->n_tables = 0;
	free(m->schemas[0]);
	m->n_schemas = 0;
	for (i = 0; i < MANIFEST_MAX_SCHEMAS; i++) {
		memset(name, 'q', NAME_MAX_IDENT);
		snprintf(name + NAME_MAX_IDENT - 2, 3, "%02zu", i);
		OK(manifest_add_schema(m, name, OKE));
	}
	OK(manifest_add_table(m, name, "t", 1, OKE));
	alerr_clear(&e);
	cr_assert_lt(manifest_validate(m, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.line_too_long");
	has(&e, "Schemas");
	manifest_free(m);
}

Test(builder, emit_over_max_bytes)
{
	struct manifest *m = build_large();
	char schema[NAME_MAX_IDENT + 1], table[NAME_MAX_IDENT + 1];
	struct alerr e;
	size_t i;

	/* Long table names: 20000 lines of ~130 bytes exceed 4 MiB. */
	for (i = 0; i < m->n_tables; i++) {
		free(m->tables[i].schema);
		free(m->tables[i].table);
	}
	m->n_tables = 0;
	memset(schema, 'z', NAME_MAX_IDENT);
	schema[NAME_MAX_IDENT] = '\0';
	for (i = 0; i < MANIFEST_MAX_SCHEMAS - 1; i++) {
		free(m->schemas[i + 1]);
	}
	m->n_schemas = 1;
	OK(manifest_add_schema(m, schema, OKE));
	for (i = 0; i < MANIFEST_MAX_TABLES; i++) {
		memset(table, 't', NAME_MAX_IDENT);
		snprintf(table + NAME_MAX_IDENT - 6, 7, "%06zu", i);
		OK(manifest_add_table(m, schema, table, (uint64_t)INT64_MAX, OKE));
	}
	alerr_clear(&e);
	cr_assert_lt(manifest_validate(m, &e), 0);
	cr_assert_str_eq(e.reason, "manifest.too_large");
	cr_assert_eq(e.errnum, -E2BIG);
	manifest_free(m);
}

Test(builder, entry_limits_enforced_by_builders)
{
	struct manifest *m = build_large();
	uint8_t h[32] = { 0 };
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(manifest_add_file(m, "payload/020000.chunk", 1, h, &e), -E2BIG);
	cr_assert_str_eq(e.reason, "manifest.entry_limit");
	alerr_clear(&e);
	cr_assert_eq(manifest_add_table(m, "s00", "extra", 1, &e), -E2BIG);
	alerr_clear(&e);
	cr_assert_eq(manifest_add_schema(m, "extra", &e), -E2BIG);
	alerr_clear(&e);
	cr_assert_eq(manifest_add_signer(m, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", &e), -E2BIG);
	manifest_free(m);
}

Test(builder, generated_bundle_ids_are_canonical_and_distinct)
{
	struct manifest *a = build_example(), *b = manifest_new();
	char *text;
	size_t len;

	OK(manifest_generate_bundle_id(a, OKE));
	OK(manifest_generate_bundle_id(b, OKE));
	cr_assert_eq(strlen(a->bundle_id), MANIFEST_BUNDLE_ID_LEN);
	cr_assert_str_neq(a->bundle_id, b->bundle_id);
	text = emit_ok(a, &len);
	manifest_free(accept_text(text, len));
	free(text);
	manifest_free(a);
	manifest_free(b);
}

/* ------------------------------------------------------------------ */
/* Helpers for other modules */

Test(helpers, chunk_path)
{
	char buf[MANIFEST_CHUNK_PATH_LEN + 1];

	cr_assert_eq(manifest_chunk_path(buf, sizeof(buf), 0), 0);
	cr_assert_str_eq(buf, "payload/000000.chunk");
	cr_assert_eq(manifest_chunk_path(buf, sizeof(buf), 42), 0);
	cr_assert_str_eq(buf, "payload/000042.chunk");
	cr_assert_eq(manifest_chunk_path(buf, sizeof(buf), MANIFEST_CHUNK_INDEX_MAX), 0);
	cr_assert_str_eq(buf, "payload/999999.chunk");
	cr_assert_eq(manifest_chunk_path(buf, sizeof(buf), MANIFEST_CHUNK_INDEX_MAX + 1), -ERANGE);
	cr_assert_eq(manifest_chunk_path(buf, sizeof(buf) - 1, 0), -ENOSPC);
}

Test(helpers, find_file)
{
	struct manifest *m = accept_text(EXAMPLE, strlen(EXAMPLE));
	const struct manifest_file *f;

	f = manifest_find_file(m, "payload/000001.chunk");
	cr_assert_not_null(f);
	cr_assert_eq(f->size, 1048576);
	cr_assert_null(manifest_find_file(m, "payload/000002.chunk"));
	cr_assert_null(manifest_find_file(m, "PAYLOAD/000001.chunk"));
	manifest_free(m);
}

Test(helpers, time_format)
{
	char buf[MANIFEST_TIME_LEN + 1];

	cr_assert_eq(manifest_time_format(CREATED, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "2026-11-28T13:14:31Z");
	cr_assert_eq(manifest_time_format(MANIFEST_TIME_MAX, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "9999-12-31T23:59:59Z");
	cr_assert_eq(manifest_time_format(MANIFEST_TIME_MIN - 1, buf, sizeof(buf)), -ERANGE);
	cr_assert_eq(manifest_time_format(CREATED, buf, MANIFEST_TIME_LEN), -ENOSPC);
	cr_assert_str_eq(manifest_field_name(MANIFEST_F_SERVER_VERSION), "Source-Server-Version");
	cr_assert_null(manifest_field_name(MANIFEST_F_COUNT));
}

/* ------------------------------------------------------------------ */
/* Robustness: deterministic mutations of a valid manifest. Nothing is
 * asserted but the contract: 0 and a manifest that re-emits the input
 * byte for byte, or a negative code with a reason. ASan does the rest. */

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

Test(fuzz, mutated_manifests_never_crash)
{
	static const unsigned char interesting[] = {
		'\n', ' ', ':', '.', '/', '-', '0', '1', '9', 'a', 'F', 'Z', 'T',
		'\r', '\t', 0x00, 0x7f, 0x80, 0xc2, 0xc3, 0xe2, 0xf0, 0xff,
	};
	size_t base_len = strlen(EXAMPLE), len, pos, i, k;
	uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
	unsigned int accepted = 0, iter, muts;
	unsigned char *buf = malloc(base_len + 64);

	cr_assert_not_null(buf);
	for (iter = 0; iter < 5000; iter++) {
		struct manifest *m = NULL;
		struct alerr e;
		int r;

		memcpy(buf, EXAMPLE, base_len);
		len = base_len;
		muts = 1 + (unsigned int)(xorshift64(&seed) % 3);
		for (k = 0; k < muts; k++) {
			uint64_t rnd = xorshift64(&seed);

			pos = len ? (size_t)((rnd >> 8) % len) : 0;
			switch (rnd % 5) {
			case 0:         /* flip one bit */
				if (len)
					buf[pos] ^= (unsigned char)(1u << ((rnd >> 40) % 8));
				break;
			case 1:         /* overwrite with an interesting byte */
				if (len)
					buf[pos] = interesting[(rnd >> 40) % sizeof(interesting)];
				break;
			case 2:         /* insert an interesting byte */
				if (len < base_len + 60) {
					memmove(buf + pos + 1, buf + pos, len - pos);
					buf[pos] = interesting[(rnd >> 40) % sizeof(interesting)];
					len++;
				}
				break;
			case 3:         /* delete one byte */
				if (len) {
					memmove(buf + pos, buf + pos + 1, len - pos - 1);
					len--;
				}
				break;
			default:        /* delete a run of up to 40 bytes */
				i = (size_t)((rnd >> 40) % 40) + 1;
				if (i > len - pos)
					i = len - pos;
				memmove(buf + pos, buf + pos + i, len - pos - i);
				len -= i;
				break;
			}
		}
		alerr_clear(&e);
		r = parse_exact((const char *)buf, len, &m, &e);
		if (r == 0) {
			size_t olen;
			char *out;

			cr_assert_not_null(m);
			out = emit_ok(m, &olen);
			cr_assert_eq(olen, len, "iteration %u: accepted text re-emits differently", iter);
			cr_assert_eq(memcmp(out, buf, len), 0, "iteration %u", iter);
			free(out);
			manifest_free(m);
			accepted++;
		} else {
			cr_assert_lt(r, 0);
			cr_assert_null(m);
			cr_assert_eq(e.cls, ALERR_REJECT, "iteration %u: %s", iter, e.message);
			cr_assert_neq(e.reason[0], '\0');
			cr_assert_eq(strncmp(e.reason, "manifest.", 9), 0);
		}
	}
	cr_log_info("%u of 5000 mutations accepted", accepted);
	free(buf);
}
