/* pack: the chunked pax+zstd payload, written and read back; independent
 * readers (sha256sum, zstd | tar); hostile payloads forged here, one case
 * per test: wrong types, names, order, sizes, filters, bombs. */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerr.h"
#include "bounds.h"
#include "digest.h"
#include "harness.h"
#include "manifest.h"
#include "pack.h"

#define MiB (1024u * 1024u)

static void init(void)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(digest_library_init(&e), 0, "%s", e.message);
}

TestSuite(pack, .init = init);

static const struct unpack_limits big_limits = {
	.max_total = UINT64_C(1) << 40,
	.max_members = 100000,
};

/* Deterministic filler: random bytes, or text that compresses. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static void fill_text(uint8_t *buf, size_t len, uint32_t seed)
{
	static const char *const words[] = {
		"CVE-2024-", "openssl", "\t", "\\N", "high", "critical", "1.2.3",
		"debian", "\n", "pkg:deb/", "fixed", "é", "2026-11-28 ",
	};
	size_t i = 0;

	while (i < len) {
		const char *w;
		size_t n;

		seed = seed * 1103515245u + 12345u;
		w = words[(seed >> 16) % (sizeof(words) / sizeof(words[0]))];
		n = strlen(w);
		if (n > len - i)
			n = len - i;
		memcpy(buf + i, w, n);
		i += n;
		if (i < len && (seed & 0x100))
			buf[i++] = (uint8_t)('0' + ((seed >> 9) % 10));
	}
}

struct member {
	const char *name;
	uint8_t *data;
	size_t len;
};

static char *new_dir(const char *name)
{
	char *top = harness_mkdir(name, 0755);
	char *p = harness_strdup_printf("%s/payload", top);

	cr_assert_eq(mkdir(p, 0755), 0, "%s: %s", p, strerror(errno));
	free(top);
	return p;
}

static struct manifest *pack_all(const char *dir, const struct member *mb, size_t n,
                                 uint64_t chunk_size, uint64_t *in, uint64_t *out)
{
	struct manifest *m = manifest_new();
	struct pack *p = NULL;
	struct alerr e;
	size_t i;

	cr_assert_not_null(m);
	alerr_clear(&e);
	cr_assert_eq(pack_new(&p, dir, chunk_size, PACK_ZSTD_LEVEL_DEFAULT, 0, &e), 0,
	             "%s", e.message);
	pack_set_mtime(p, 1700000000);
	for (i = 0; i < n; i++)
		cr_assert_eq(pack_add_member(p, mb[i].name, mb[i].data, mb[i].len, &e), 0,
		             "%s: %s [%s]", mb[i].name, e.message, e.reason);
	cr_assert_eq(pack_finish(p, m, &e), 0, "%s [%s]", e.message, e.reason);
	if (in)
		*in = pack_bytes_in(p);
	if (out)
		*out = pack_bytes_out(p);
	cr_assert_eq(pack_chunks(p), m->n_files);
	pack_free(p);
	return m;
}

/* The reference payload: empty members, a segment spanning chunks. */
static size_t reference(struct member mb[8])
{
	static const char catalog[] = "{\"format\":\"airlock-catalog/1\",\"schemas\":[]}";
	size_t n = 0;

	mb[n].name = "catalog.json";
	mb[n].len = sizeof(catalog) - 1;
	mb[n].data = malloc(mb[n].len);
	memcpy(mb[n].data, catalog, mb[n].len);
	n++;
	mb[n].name = "data/feeds/advisories/000000.copy";
	mb[n].len = PAYLOAD_SEGMENT_SIZE;
	mb[n].data = malloc(mb[n].len);
	fill(mb[n].data, mb[n].len, 1);
	n++;
	mb[n].name = "data/feeds/advisories/000001.copy";
	mb[n].len = 1234567;
	mb[n].data = malloc(mb[n].len);
	fill_text(mb[n].data, mb[n].len, 2);
	n++;
	mb[n].name = "data/feeds/empty_table/000000.copy";
	mb[n].len = 0;
	mb[n].data = NULL;
	n++;
	mb[n].name = "data/feeds/packages/000000.copy";
	mb[n].len = PAYLOAD_SEGMENT_SIZE;
	mb[n].data = malloc(mb[n].len);
	fill_text(mb[n].data, mb[n].len, 3);
	n++;
	mb[n].name = "data/feeds/packages/000001.copy";
	mb[n].len = 0;
	mb[n].data = NULL;
	n++;
	mb[n].name = "data/Other_Schema/T1/000000.copy";
	mb[n].len = 4321;
	mb[n].data = malloc(mb[n].len);
	fill(mb[n].data, mb[n].len, 4);
	n++;
	return n;
}

static void free_members(struct member *mb, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(mb[i].data);
}

/* Read every member and compare with mb. */
static void unpack_compare(struct unpack *u, const struct member *mb, size_t n)
{
	uint8_t *buf = malloc(MiB);
	const char *name;
	uint64_t size;
	struct alerr e;
	size_t i;

	alerr_clear(&e);
	for (i = 0; i < n; i++) {
		size_t off = 0;
		ssize_t got;

		cr_assert_eq(unpack_next(u, &name, &size, &e), 1, "member %zu: %s [%s]", i,
		             e.message, e.reason);
		cr_assert_str_eq(name, mb[i].name);
		cr_assert_eq(size, mb[i].len);
		while ((got = unpack_read(u, buf, MiB, &e)) > 0) {
			cr_assert_leq(off + (size_t)got, mb[i].len);
			cr_assert_eq(memcmp(buf, mb[i].data + off, (size_t)got), 0,
			             "%s differs at %zu", name, off);
			off += (size_t)got;
		}
		cr_assert_eq(got, 0, "%s: %s", name, e.message);
		cr_assert_eq(off, mb[i].len);
	}
	cr_assert_eq(unpack_next(u, &name, &size, &e), 0, "%s", e.message);
	cr_assert_eq(unpack_next(u, &name, &size, &e), 0);
	free(buf);
}

Test(pack, round_trip_through_chunk_files)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("roundtrip");
	uint64_t in = 0, out = 0, want_in = 0;
	struct manifest *m;
	struct unpack *u = NULL;
	struct alerr e;
	size_t i;

	m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, &in, &out);
	for (i = 0; i < n; i++)
		want_in += mb[i].len;
	cr_assert_eq(in, want_in);
	cr_assert_gt(m->n_files, 8, "the random segment spans chunks");
	alerr_clear(&e);
	cr_assert_eq(unpack_new_dir(&u, dir, m->n_files, &big_limits, &e), 0, "%s", e.message);
	unpack_compare(u, mb, n);
	cr_assert_eq(unpack_bytes(u), want_in);
	unpack_free(u);
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

/* A source that hands out a few bytes at a time. */
struct trickle {
	int fd;
	size_t step;
};

static ssize_t trickle_read(void *ctx, void *buf, size_t size, struct alerr *e)
{
	struct trickle *t = ctx;
	ssize_t n;

	if (size > t->step)
		size = t->step;
	n = read(t->fd, buf, size);
	if (n < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "io.read", "trickle: %s", strerror(errno));
	return n;
}

/* Concatenate the chunks into one file, as the importer's source sees
 * them. */
static char *concat_chunks(const char *dir, const char *name)
{
	char *path = harness_strdup_printf("%s/../%s", dir, name);
	char *cmd = harness_strdup_printf("cat '%s'/*.chunk > '%s'", dir, path);
	const char *argv[] = { "sh", "-c", cmd, NULL };

	cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0);
	free(cmd);
	return path;
}

Test(pack, round_trip_through_a_read_callback)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("callback");
	struct trickle t = { .step = 7777 };
	struct manifest *m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, NULL, NULL);
	char *all = concat_chunks(dir, "all.zst");
	struct unpack *u = NULL;
	struct alerr e;

	t.fd = open(all, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(t.fd, 0);
	alerr_clear(&e);
	cr_assert_eq(unpack_new(&u, trickle_read, &t, &big_limits, &e), 0, "%s", e.message);
	unpack_compare(u, mb, n);
	unpack_free(u);
	close(t.fd);
	manifest_free(m);
	free_members(mb, n);
	free(all);
	free(dir);
}

Test(pack, chunk_sizes_are_exact)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("sizes");
	uint64_t out = 0, sum = 0;
	struct manifest *m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, NULL, &out);
	struct dirent *de;
	size_t i, files = 0;
	DIR *d;

	for (i = 0; i < m->n_files; i++) {
		char want[MANIFEST_CHUNK_PATH_LEN + 1];
		char *path = harness_strdup_printf("%s/../%s", dir, m->files[i].path);
		struct stat st;

		manifest_chunk_path(want, sizeof(want), i);
		cr_assert_str_eq(m->files[i].path, want);
		cr_assert_eq(lstat(path, &st), 0, "%s", path);
		cr_assert(S_ISREG(st.st_mode));
		cr_assert_eq(st.st_mode & 07777, 0444);
		cr_assert_eq((uint64_t)st.st_size, m->files[i].size);
		if (i + 1 < m->n_files)
			cr_assert_eq(m->files[i].size, CHUNK_SIZE_MIN, "%s", path);
		else
			cr_assert(m->files[i].size >= 1 && m->files[i].size <= CHUNK_SIZE_MIN);
		sum += m->files[i].size;
		free(path);
	}
	cr_assert_eq(sum, out);
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			files++;
	closedir(d);
	cr_assert_eq(files, m->n_files, "nothing but the chunks");
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

Test(pack, manifest_hashes_match_sha256sum)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("sha");
	struct manifest *m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, NULL, NULL);
	size_t i;

	for (i = 0; i < m->n_files; i++) {
		char hex[DIGEST_SHA256_HEX_LEN + 1];
		char *path = harness_strdup_printf("%s/../%s", dir, m->files[i].path);
		const char *argv[] = { "sha256sum", path, NULL };
		char *out = NULL;

		cr_assert_eq(harness_run(argv, NULL, &out, NULL), 0);
		digest_hex(hex, m->files[i].sha256);
		cr_assert_eq(strncmp(out, hex, DIGEST_SHA256_HEX_LEN), 0, "%s: %s vs %s",
		             path, out, hex);
		free(out);
		free(path);
	}
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

static void assert_listing(const char *listing, const struct member *mb, size_t n,
                           const char *tool)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char *want = harness_strdup_printf(" %zu 2023-11-14 22:13", mb[i].len);
		const char *line = strstr(listing, mb[i].name);
		const char *bol;

		cr_assert_not_null(line, "%s does not list %s:\n%s", tool, mb[i].name, listing);
		bol = line;
		while (bol > listing && bol[-1] != '\n')
			bol--;
		cr_assert_eq(strncmp(bol, "-r--r--r--", 10), 0, "%s: %.80s", tool, bol);
		cr_assert_not_null(strstr(bol, "root"), "%s: %.80s", tool, bol);
		cr_assert_not_null(memmem(bol, (size_t)(line - bol), want, strlen(want)),
		                   "%s: %.100s (want%s)", tool, bol, want);
		free(want);
	}
}

Test(pack, independent_readers_list_the_members)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("tar");
	struct manifest *m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, NULL, NULL);
	char *cmd = harness_strdup_printf(
		"cat '%s'/*.chunk | zstd -dc | tar --full-time -tvf -", dir);
	char *cmd2 = harness_strdup_printf("cat '%s'/*.chunk | zstd -dc | bsdtar -tvf -", dir);
	const char *argv[] = { "sh", "-c", cmd, NULL };
	const char *argv2[] = { "sh", "-c", cmd2, NULL };
	const char *env[] = { "TZ=UTC", NULL };
	char *out = NULL, *err = NULL;
	size_t lines = 0;
	const char *p;

	cr_assert_eq(harness_run(argv, env, &out, &err), 0, "%s", err);
	cr_assert_str_empty(err, "GNU tar complains: %s", err);
	assert_listing(out, mb, n, "GNU tar");
	for (p = out; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, n, "exactly the members:\n%s", out);
	free(out);
	free(err);
	/* bsdtar prints "Nov 14  2023": check names, modes and sizes only. */
	cr_assert_eq(harness_run(argv2, env, &out, &err), 0, "%s", err);
	cr_assert_str_empty(err, "bsdtar complains: %s", err);
	for (size_t i = 0; i < n; i++) {
		char *want = harness_strdup_printf(" %zu ", mb[i].len);
		const char *line = strstr(out, mb[i].name), *bol;

		cr_assert_not_null(line, "bsdtar does not list %s", mb[i].name);
		for (bol = line; bol > out && bol[-1] != '\n'; bol--)
			;
		cr_assert_eq(strncmp(bol, "-r--r--r--", 10), 0);
		cr_assert_not_null(memmem(bol, (size_t)(line - bol), want, strlen(want)));
		free(want);
	}
	free(out);
	free(err);
	free(cmd);
	free(cmd2);
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

/* Read the whole payload; 0 when everything matched mb, 1 when some
 * content differed, or the (negative) error. */
static int unpack_outcome(const char *dir, uint64_t n_chunks, const struct member *mb,
                          size_t n, const struct unpack_limits *lim, struct alerr *e)
{
	uint8_t *buf = malloc(MiB);
	struct unpack *u = NULL;
	int r, differs = 0;
	size_t i = 0;

	r = unpack_new_dir(&u, dir, n_chunks, lim, e);
	if (r < 0)
		goto out;
	for (;;) {
		const char *name;
		uint64_t size, off = 0;
		ssize_t got;

		r = unpack_next(u, &name, &size, e);
		if (r <= 0)
			break;
		if (i >= n || strcmp(name, mb[i].name) != 0 || size != mb[i].len)
			differs = 1;
		while ((got = unpack_read(u, buf, MiB, e)) > 0) {
			if (i < n && (off + (uint64_t)got > mb[i].len ||
			              memcmp(buf, mb[i].data + off, (size_t)got) != 0))
				differs = 1;
			off += (uint64_t)got;
		}
		if (got < 0) {
			r = (int)got;
			break;
		}
		i++;
	}
	if (r == 0)
		r = differs || i != n;
out:
	unpack_free(u);
	free(buf);
	return r;
}

static void flip(const char *path, off_t at)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t b;

	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

Test(pack, flipped_magic_byte_is_malformed)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("flip0");
	struct manifest *m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, NULL, NULL);
	char *c0 = harness_strdup_printf("%s/000000.chunk", dir);
	struct alerr e;

	flip(c0, 0);
	alerr_clear(&e);
	cr_assert_lt(unpack_outcome(dir, m->n_files, mb, n, &big_limits, &e), 0);
	cr_assert_str_eq(e.reason, "payload.malformed", "%s: %s", e.reason, e.message);
	cr_assert_eq(e.cls, ALERR_REJECT);
	free(c0);
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

/* zstd as libarchive 3.6 writes it carries no content checksum: a flip
 * inside stored data can decompress. Whatever happens, no crash, and
 * either an error or different content, never a silent match. */
Test(pack, flipped_bytes_fail_cleanly)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("flips");
	struct manifest *m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, NULL, NULL);
	size_t i, errors = 0;

	for (i = 0; i < 12; i++) {
		size_t c = (i * 7) % m->n_files;
		char *path = harness_strdup_printf("%s/../%s", dir, m->files[c].path);
		off_t at = (off_t)((m->files[c].size * (i + 1)) / 13);
		struct alerr e;
		int r;

		flip(path, at);
		alerr_clear(&e);
		r = unpack_outcome(dir, m->n_files, mb, n, &big_limits, &e);
		cr_assert_neq(r, 0, "flip %zu in %s went unnoticed", (size_t)at, path);
		if (r < 0) {
			cr_assert_eq(e.cls, ALERR_REJECT, "%s", e.message);
			cr_assert(strncmp(e.reason, "payload.", 8) == 0, "%s", e.reason);
			errors++;
		}
		flip(path, at);   /* back */
		free(path);
	}
	cr_assert_gt(errors, 0, "at least the compressed blocks are checked");
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

Test(pack, missing_last_chunk_is_truncated)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("trunc");
	struct manifest *m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, NULL, NULL);
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(unpack_outcome(dir, m->n_files - 1, mb, n, &big_limits, &e), 0);
	cr_assert_str_eq(e.reason, "payload.malformed", "%s", e.message);
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

Test(pack, missing_chunk_file)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("missing");
	struct manifest *m = pack_all(dir, mb, n, CHUNK_SIZE_MIN, NULL, NULL);
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(unpack_outcome(dir, m->n_files + 1, mb, n, &big_limits, &e), 0);
	cr_assert_str_eq(e.reason, "file.missing", "%s", e.message);
	cr_assert_eq(e.cls, ALERR_NOINPUT);
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

/* ---- forged payloads: a raw tar written here, compressed by zstd(1) ---- */

struct forged {
	const char *name;
	char type;              /* '0' file, '1' hard link, '2' symlink, '5' dir... */
	uint64_t size;          /* declared */
	size_t data_len;        /* actually present (zeros) */
	const char *link;
};

static void octal(char *field, size_t width, uint64_t v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*" PRIo64, (int)(width - 1), v);
	memcpy(field, tmp, width - 1);
	field[width - 1] = '\0';
}

static void tar_header(uint8_t h[512], const struct forged *f)
{
	unsigned int sum = 0;
	size_t i;

	memset(h, 0, 512);
	cr_assert_lt(strlen(f->name), 100);
	memcpy(h, f->name, strlen(f->name));
	octal((char *)h + 100, 8, 0444);
	octal((char *)h + 108, 8, 0);
	octal((char *)h + 116, 8, 0);
	octal((char *)h + 124, 12, f->size);
	octal((char *)h + 136, 12, 1700000000);
	h[156] = (uint8_t)f->type;
	if (f->link)
		memcpy(h + 157, f->link, strlen(f->link));
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

/* Write the forged tar, compress it with compress_cmd ("zstd -q -c",
 * "gzip -c", "cat"...) into dir/000000.chunk. */
static char *forge(const char *name, const struct forged *f, size_t n,
                   const char *compress_cmd)
{
	char *dir = new_dir(name);
	char *raw = harness_strdup_printf("%s/../raw.tar", dir);
	char *cmd = harness_strdup_printf("%s < '%s' > '%s/000000.chunk'", compress_cmd, raw, dir);
	const char *argv[] = { "sh", "-c", cmd, NULL };
	FILE *fp = fopen(raw, "wbe");
	static uint8_t zero[512];
	size_t i;

	cr_assert_not_null(fp);
	for (i = 0; i < n; i++) {
		uint8_t h[512];
		size_t left = f[i].data_len;

		tar_header(h, &f[i]);
		cr_assert_eq(fwrite(h, 1, 512, fp), 512);
		while (left > 0) {
			size_t k = left < 512 ? left : 512;

			cr_assert_eq(fwrite(zero, 1, 512, fp), 512);
			left -= k;
		}
	}
	cr_assert_eq(fwrite(zero, 1, 512, fp), 512);
	cr_assert_eq(fwrite(zero, 1, 512, fp), 512);
	cr_assert_eq(fclose(fp), 0);
	cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0, "%s", cmd);
	free(cmd);
	free(raw);
	return dir;
}

static void expect_forged(const char *name, const struct forged *f, size_t n,
                          const char *compress_cmd, const struct unpack_limits *lim,
                          const char *reason)
{
	char *dir = forge(name, f, n, compress_cmd);
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(unpack_outcome(dir, 1, NULL, 0, lim, &e), 0, "%s accepted", name);
	cr_assert_str_eq(e.reason, reason, "%s: %s [%s]", name, e.message, e.reason);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_log_info("%s: %s", reason, e.message);
	free(dir);
}

#define CAT(sz) { "catalog.json", '0', (sz), (sz), NULL }

Test(pack, forged_valid_payload_is_accepted)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '0', PAYLOAD_SEGMENT_SIZE, PAYLOAD_SEGMENT_SIZE, NULL },
		{ "data/feeds/a/000001.copy", '0', 0, 0, NULL },
		{ "data/feeds/b/000000.copy", '0', 5, 5, NULL },
	};
	char *dir = forge("forged_ok", f, 4, "zstd -q -c");
	struct alerr e;

	alerr_clear(&e);
	/* 1: the content (zeros) differs from no reference; no error. */
	cr_assert_eq(unpack_outcome(dir, 1, NULL, 0, &big_limits, &e), 1, "%s", e.message);
	free(dir);
}

Test(pack, symlink_member_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '2', 0, 0, "/etc/shadow" },
	};

	expect_forged("symlink", f, 2, "zstd -q -c", &big_limits, "payload.member_type");
}

Test(pack, hardlink_member_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '1', 0, 0, "catalog.json" },
	};

	expect_forged("hardlink", f, 2, "zstd -q -c", &big_limits, "payload.member_type");
}

Test(pack, directory_member_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/", '5', 0, 0, NULL },
	};

	expect_forged("direntry", f, 2, "zstd -q -c", &big_limits, "payload.member_type");
}

Test(pack, fifo_member_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '6', 0, 0, NULL },
	};

	expect_forged("fifo", f, 2, "zstd -q -c", &big_limits, "payload.member_type");
}

Test(pack, dotdot_name_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/../../etc/000000.copy", '0', 3, 3, NULL },
	};

	expect_forged("dotdot", f, 2, "zstd -q -c", &big_limits, "payload.member_name");
}

Test(pack, absolute_name_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "/data/feeds/a/000000.copy", '0', 3, 3, NULL },
	};

	expect_forged("absolute", f, 2, "zstd -q -c", &big_limits, "payload.member_name");
}

Test(pack, first_member_not_catalog_is_refused)
{
	const struct forged f[] = {
		{ "data/feeds/a/000000.copy", '0', 3, 3, NULL },
		CAT(10),
	};

	expect_forged("nocatalog", f, 2, "zstd -q -c", &big_limits, "payload.member_name");
}

Test(pack, catalog_twice_is_refused)
{
	const struct forged f[] = { CAT(10), CAT(10) };

	expect_forged("catalog2", f, 2, "zstd -q -c", &big_limits, "payload.member_name");
}

Test(pack, segment_gap_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '0', PAYLOAD_SEGMENT_SIZE, PAYLOAD_SEGMENT_SIZE, NULL },
		{ "data/feeds/a/000002.copy", '0', 1, 1, NULL },
	};

	expect_forged("gap", f, 3, "zstd -q -c", &big_limits, "payload.member_name");
}

Test(pack, short_segment_before_another_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '0', 100, 100, NULL },
		{ "data/feeds/a/000001.copy", '0', 1, 1, NULL },
	};

	expect_forged("short", f, 3, "zstd -q -c", &big_limits, "payload.member_name");
}

Test(pack, table_twice_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '0', 1, 1, NULL },
		{ "data/feeds/b/000000.copy", '0', 1, 1, NULL },
		{ "data/feeds/a/000000.copy", '0', 1, 1, NULL },
	};

	expect_forged("table2", f, 4, "zstd -q -c", &big_limits, "payload.member_name");
}

Test(pack, bad_identifier_is_refused)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/1abc/000000.copy", '0', 1, 1, NULL },
	};

	expect_forged("ident", f, 2, "zstd -q -c", &big_limits, "payload.member_name");
}

Test(pack, declared_huge_size_is_stopped_before_reading)
{
	const struct forged f[] = {
		CAT(10),
		/* 8 GiB - 1 claimed, nothing behind it */
		{ "data/feeds/a/000000.copy", '0', UINT64_C(077777777777), 0, NULL },
	};

	expect_forged("hugesize", f, 2, "zstd -q -c", &big_limits, "payload.too_large");
}

Test(pack, huge_compressible_member_is_stopped)
{
	/* 64 MiB of zeros: a few KiB of zstd. */
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '0', 64u * MiB, 64u * MiB, NULL },
	};

	expect_forged("bomb", f, 2, "zstd -q -c", &big_limits, "payload.too_large");
}

Test(pack, catalog_over_its_cap_is_stopped)
{
	const struct forged f[] = { CAT(PAYLOAD_CATALOG_MAX + 1u) };

	expect_forged("bigcatalog", f, 1, "zstd -q -c", &big_limits, "payload.too_large");
}

Test(pack, total_cap_stops_a_bomb_of_valid_segments)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '0', PAYLOAD_SEGMENT_SIZE, PAYLOAD_SEGMENT_SIZE, NULL },
		{ "data/feeds/a/000001.copy", '0', PAYLOAD_SEGMENT_SIZE, PAYLOAD_SEGMENT_SIZE, NULL },
		{ "data/feeds/a/000002.copy", '0', PAYLOAD_SEGMENT_SIZE, PAYLOAD_SEGMENT_SIZE, NULL },
		{ "data/feeds/a/000003.copy", '0', PAYLOAD_SEGMENT_SIZE, PAYLOAD_SEGMENT_SIZE, NULL },
	};
	const struct unpack_limits lim = { .max_total = 20u * MiB, .max_members = 100 };
	char *dir = forge("totalcap", f, 5, "zstd -q -c");
	uint8_t *buf = malloc(MiB);
	struct unpack *u = NULL;
	const char *name;
	uint64_t size, seen = 0;
	struct alerr e;
	int r;

	alerr_clear(&e);
	cr_assert_eq(unpack_new_dir(&u, dir, 1, &lim, &e), 0, "%s", e.message);
	while ((r = unpack_next(u, &name, &size, &e)) == 1) {
		ssize_t got;

		while ((got = unpack_read(u, buf, MiB, &e)) > 0)
			seen += (uint64_t)got;
		cr_assert_eq(got, 0);
	}
	cr_assert_lt(r, 0);
	cr_assert_str_eq(e.reason, "payload.too_large", "%s", e.message);
	cr_assert_leq(seen, lim.max_total, "nothing past the cap was delivered");
	cr_assert_leq(unpack_bytes(u), lim.max_total);
	cr_assert_eq(unpack_next(u, &name, &size, &e), r, "the failure sticks");
	unpack_free(u);
	free(buf);
	free(dir);
}

Test(pack, member_count_cap)
{
	const struct forged f[] = {
		CAT(10),
		{ "data/feeds/a/000000.copy", '0', 0, 0, NULL },
		{ "data/feeds/b/000000.copy", '0', 0, 0, NULL },
		{ "data/feeds/c/000000.copy", '0', 0, 0, NULL },
		{ "data/feeds/d/000000.copy", '0', 0, 0, NULL },
	};
	const struct unpack_limits lim = { .max_total = MiB, .max_members = 3 };

	expect_forged("count", f, 5, "zstd -q -c", &lim, "payload.too_many_members");
}

Test(pack, uncompressed_tar_is_refused)
{
	const struct forged f[] = { CAT(10) };

	expect_forged("plain", f, 1, "cat", &big_limits, "payload.malformed");
}

Test(pack, gzip_is_refused)
{
	const struct forged f[] = { CAT(10) };

	expect_forged("gzip", f, 1, "gzip -c", &big_limits, "payload.malformed");
}

Test(pack, zstd_in_zstd_is_refused)
{
	const struct forged f[] = { CAT(10) };

	expect_forged("zz", f, 1, "(zstd -q -c | zstd -q -c)", &big_limits, "payload.malformed");
}

/* A payload made by GNU tar from files: fmt is its --format. */
static char *gnu_tar_payload(const char *name, const char *fmt)
{
	char *dir = new_dir(name);
	char *src = harness_strdup_printf("%s/../src", dir);
	char *cmd = harness_strdup_printf(
		"mkdir -p '%s/data/feeds/a' && printf '{}' > '%s/catalog.json' && "
		"printf 'x\\t1\\n' > '%s/data/feeds/a/000000.copy' && "
		"tar --format=%s -C '%s' -cf - catalog.json data/feeds/a/000000.copy "
		"| zstd -q -c > '%s/000000.chunk'", src, src, src, fmt, src, dir);
	const char *argv[] = { "sh", "-c", cmd, NULL };
	char *err = NULL;

	cr_assert_eq(harness_run(argv, NULL, NULL, &err), 0, "%s", err);
	free(err);
	free(cmd);
	free(src);
	return dir;
}

Test(pack, pax_from_gnu_tar_is_read)
{
	char *dir = gnu_tar_payload("gnupax", "pax");
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(unpack_outcome(dir, 1, NULL, 0, &big_limits, &e), 1, "%s", e.message);
	free(dir);
}

Test(pack, gnu_format_is_refused)
{
	char *dir = gnu_tar_payload("gnufmt", "gnu");
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(unpack_outcome(dir, 1, NULL, 0, &big_limits, &e), 0);
	cr_assert_str_eq(e.reason, "payload.malformed", "%s", e.message);
	cr_assert_not_null(strstr(e.message, "GNU"), "%s", e.message);
	free(dir);
}

Test(pack, garbage_is_refused)
{
	char *dir = new_dir("garbage");
	char *path = harness_strdup_printf("%s/000000.chunk", dir);
	uint8_t junk[4096];
	struct alerr e;

	fill(junk, sizeof(junk), 9);
	harness_write_file(path, junk, sizeof(junk));
	alerr_clear(&e);
	cr_assert_lt(unpack_outcome(dir, 1, NULL, 0, &big_limits, &e), 0);
	cr_assert_str_eq(e.reason, "payload.malformed", "%s", e.message);
	free(path);
	free(dir);
}

Test(pack, empty_payload_is_refused)
{
	char *dir = new_dir("emptytar");
	char *cmd = harness_strdup_printf("head -c 1024 /dev/zero | zstd -q -c > '%s/000000.chunk'",
	                                  dir);
	const char *argv[] = { "sh", "-c", cmd, NULL };
	struct alerr e;

	cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0);
	alerr_clear(&e);
	cr_assert_lt(unpack_outcome(dir, 1, NULL, 0, &big_limits, &e), 0);
	cr_assert_str_eq(e.reason, "payload.malformed", "%s", e.message);
	free(cmd);
	free(dir);
}

/* ---- the writer's own checks ---- */

static struct pack *new_pack(const char *name)
{
	char *dir = new_dir(name);
	struct pack *p = NULL;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(pack_new(&p, dir, CHUNK_SIZE_MIN, 3, 0, &e), 0, "%s", e.message);
	free(dir);
	return p;
}

static void expect_add_fails(struct pack *p, const char *name, size_t len, const char *reason)
{
	uint8_t *buf = calloc(1, len + 1);
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(pack_add_member(p, name, buf, len, &e), 0, "%s accepted", name);
	cr_assert_str_eq(e.reason, reason, "%s: %s", name, e.message);
	cr_assert_eq(e.cls, ALERR_SOFTWARE);
	free(buf);
}

Test(pack, writer_wants_the_catalog_first)
{
	struct pack *p = new_pack("w1");

	expect_add_fails(p, "data/feeds/a/000000.copy", 1, "pack.member_name");
	pack_free(p);
}

Test(pack, writer_refuses_a_bad_name)
{
	struct pack *p = new_pack("w2");
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(pack_add_member(p, "catalog.json", "{}", 2, &e), 0);
	expect_add_fails(p, "data/feeds/a/../b/000000.copy", 1, "pack.member_name");
	pack_free(p);
}

Test(pack, writer_refuses_an_oversize_segment)
{
	struct pack *p = new_pack("w3");
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(pack_add_member(p, "catalog.json", "{}", 2, &e), 0);
	expect_add_fails(p, "data/feeds/a/000000.copy", PAYLOAD_SEGMENT_SIZE + 1u,
	                 "pack.member_size");
	pack_free(p);
}

Test(pack, writer_refuses_a_segment_gap)
{
	struct pack *p = new_pack("w4");
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(pack_add_member(p, "catalog.json", "{}", 2, &e), 0);
	cr_assert_eq(pack_add_member(p, "data/feeds/a/000000.copy", "x", 1, &e), 0);
	expect_add_fails(p, "data/feeds/a/000001.copy", 1, "pack.member_name");
	pack_free(p);
}

Test(pack, finish_without_catalog_fails)
{
	struct pack *p = new_pack("w5");
	struct manifest *m = manifest_new();
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(pack_finish(p, m, &e), 0);
	cr_assert_str_eq(e.reason, "pack.member_name");
	cr_assert_eq(m->n_files, 0);
	manifest_free(m);
	pack_free(p);
}

Test(pack, bad_parameters)
{
	char *dir = new_dir("params");
	char *nodir = harness_strdup_printf("%s/nope", dir);
	struct pack *p = NULL;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(pack_new(&p, dir, CHUNK_SIZE_MIN - 1u, 3, 0, &e), 0);
	cr_assert_str_eq(e.reason, "pack.chunk_size");
	cr_assert_eq(e.cls, ALERR_USAGE);
	alerr_clear(&e);
	cr_assert_lt(pack_new(&p, dir, CHUNK_SIZE_MAX + 1u, 3, 0, &e), 0);
	cr_assert_str_eq(e.reason, "pack.chunk_size");
	alerr_clear(&e);
	cr_assert_lt(pack_new(&p, dir, CHUNK_SIZE_MIN, 0, 0, &e), 0);
	cr_assert_str_eq(e.reason, "pack.zstd_level");
	alerr_clear(&e);
	cr_assert_lt(pack_new(&p, dir, CHUNK_SIZE_MIN, 20, 0, &e), 0);
	cr_assert_str_eq(e.reason, "pack.zstd_level");
	alerr_clear(&e);
	cr_assert_lt(pack_new(&p, dir, CHUNK_SIZE_MIN, 3, PACK_MAX_THREADS + 1u, &e), 0);
	cr_assert_str_eq(e.reason, "pack.threads");
	alerr_clear(&e);
	cr_assert_lt(pack_new(&p, nodir, CHUNK_SIZE_MIN, 3, 0, &e), 0);
	cr_assert_str_eq(e.reason, "pack.chunk_create");
	cr_assert_eq(e.cls, ALERR_CANTCREAT);
	cr_assert_null(p);
	free(nodir);
	free(dir);
}

Test(pack, existing_chunk_is_never_overwritten)
{
	char *dir = new_dir("exists");
	char *c0 = harness_strdup_printf("%s/000000.chunk", dir);
	struct manifest *m = manifest_new();
	struct pack *p = NULL;
	struct alerr e;

	harness_write_file(c0, "old", 3);
	alerr_clear(&e);
	cr_assert_eq(pack_new(&p, dir, CHUNK_SIZE_MIN, 3, 0, &e), 0, "%s", e.message);
	cr_assert_eq(pack_add_member(p, "catalog.json", "{}", 2, &e), 0);
	/* the stream is small: the chunk is created at the end */
	cr_assert_lt(pack_finish(p, m, &e), 0);
	cr_assert_str_eq(e.reason, "pack.chunk_create", "%s", e.message);
	cr_assert_not_null(strstr(e.message, "000000.chunk"), "%s", e.message);
	pack_free(p);
	manifest_free(m);
	free(c0);
	free(dir);
}

Test(pack, zstd_threads_give_a_readable_payload)
{
	struct member mb[8];
	size_t n = reference(mb);
	char *dir = new_dir("threads");
	struct manifest *m = manifest_new();
	struct pack *p = NULL;
	struct unpack *u = NULL;
	struct alerr e;
	size_t i;

	alerr_clear(&e);
	cr_assert_eq(pack_new(&p, dir, CHUNK_SIZE_MIN, 3, 2, &e), 0, "%s", e.message);
	for (i = 0; i < n; i++)
		cr_assert_eq(pack_add_member(p, mb[i].name, mb[i].data, mb[i].len, &e), 0);
	cr_assert_eq(pack_finish(p, m, &e), 0, "%s", e.message);
	pack_free(p);
	cr_assert_eq(unpack_new_dir(&u, dir, m->n_files, &big_limits, &e), 0, "%s", e.message);
	unpack_compare(u, mb, n);
	unpack_free(u);
	manifest_free(m);
	free_members(mb, n);
	free(dir);
}

static long maxrss_kib(void)
{
	struct rusage ru;

	cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss;
}

/* 300 MiB through the writer: its memory does not grow with the data.
 * A bound, not a timing. */
static void memory_flat(unsigned int threads, long bound_kib)
{
	char *dir = new_dir(threads ? "memory_mt" : "memory");
	struct manifest *m = manifest_new();
	uint8_t *seg = malloc(PAYLOAD_SEGMENT_SIZE);
	struct pack *p = NULL;
	struct alerr e;
	long before, after;
	unsigned int t;

	fill_text(seg, PAYLOAD_SEGMENT_SIZE, 7);
	alerr_clear(&e);
	before = maxrss_kib();
	cr_assert_eq(pack_new(&p, dir, 64u * MiB, PACK_ZSTD_LEVEL_DEFAULT, threads, &e), 0);
	cr_assert_eq(pack_add_member(p, "catalog.json", "{}", 2, &e), 0);
	for (t = 0; t < 38; t++) {   /* 38 x 8 MiB = 304 MiB */
		char name[64];

		snprintf(name, sizeof(name), "data/feeds/t%02u/000000.copy", t);
		seg[t] ^= 1;   /* not the same bytes every time */
		cr_assert_eq(pack_add_member(p, name, seg, PAYLOAD_SEGMENT_SIZE, &e), 0,
		             "%s", e.message);
	}
	cr_assert_eq(pack_finish(p, m, &e), 0, "%s", e.message);
	after = maxrss_kib();
	cr_log_info("pack of %" PRIu64 " bytes into %" PRIu64 " (threads %u): "
	            "max RSS grew by %ld KiB", pack_bytes_in(p), pack_bytes_out(p),
	            threads, after - before);
	fprintf(stderr, "pack memory (threads %u): %" PRIu64 " -> %" PRIu64
	        " bytes, max RSS +%ld KiB\n", threads, pack_bytes_in(p),
	        pack_bytes_out(p), after - before);
	cr_assert_lt(after - before, bound_kib, "max RSS grew by %ld KiB", after - before);
	pack_free(p);
	manifest_free(m);
	free(seg);
	free(dir);
}

Test(pack, memory_stays_flat, .timeout = 600)
{
	memory_flat(0, 32 * 1024);
}

Test(pack, memory_stays_flat_with_threads, .timeout = 600)
{
	memory_flat(2, 64 * 1024);
}
