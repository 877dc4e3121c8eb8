/* volume: the ISO 9660 volume of a bundle made by al-mkbundle, checked by
 * independent readers (blkid, bsdtar, xorriso, cmp) and by hand (the
 * volume descriptors); read-back, probe, reproducibility, loop devices;
 * the importer's listing against forged images. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerr.h"
#include "bounds.h"
#include "digest.h"
#include "harness.h"
#include "harness_gpg.h"
#include "harness_loop.h"
#include "manifest.h"
#include "pack.h"
#include "volume.h"

HARNESS_GPG_HOOKS();

#define CREATED INT64_C(1764335671)          /* 2025-11-28T13:14:31Z */
#define CREATED_PVD "2025112813143100"
#define MiB (1024u * 1024u)

static void init(void)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(digest_library_init(&e), 0, "%s", e.message);
}

TestSuite(volume, .init = init);

static const struct volume_limits big = {
	.max_entries = 100000,
	.max_total = UINT64_C(1) << 40,
	.max_path = 4096,
};

/* A bundle directory from al-mkbundle: payload_size random bytes in
 * chunks of 1 MiB, two signers. */
static char *make_bundle(const char *name, size_t payload_size, uint64_t sequence)
{
	struct harness_keys k;
	char *dir = harness_strdup_printf("%s/%s", harness_scratch(), name);
	char *payload = harness_strdup_printf("%s.payload", dir);
	char *tool = harness_strdup_printf("%s/tests/tools/al-mkbundle", harness_builddir());
	char *seq = harness_strdup_printf("%" PRIu64, sequence);
	char *created = harness_strdup_printf("%" PRId64, CREATED);
	uint8_t *data = malloc(payload_size);
	char *err = NULL;
	uint32_t s = 12345;
	size_t i;

	cr_assert_eq(harness_gpg_keys(&k), 0);
	for (i = 0; i < payload_size; i++) {
		s = s * 1103515245u + 12345u;
		data[i] = (uint8_t)(s >> 16);
	}
	harness_write_file(payload, data, payload_size);
	{
		const char *argv[] = { tool, "--out", dir, "--payload", payload, "--channel", "nvd",
		                       "--sequence", seq, "--signer", k.signer1, "--signer",
		                       k.signer2, "--gnupghome", k.signer_home, "--created",
		                       created, NULL };

		cr_assert_eq(harness_run(argv, NULL, NULL, &err), 0, "al-mkbundle: %s", err);
	}
	free(err);
	free(data);
	free(created);
	free(seq);
	free(tool);
	free(payload);
	return dir;
}

static char *scratch_path(const char *name)
{
	return harness_strdup_printf("%s/%s", harness_scratch(), name);
}

static char *run_ok(const char *const argv[])
{
	char *out = NULL, *err = NULL;
	int rc = harness_run(argv, NULL, &out, &err);

	cr_assert_eq(rc, 0, "%s: exit %d: %s", argv[0], rc, err);
	free(err);
	return out;
}

/* A bundle whose payload is a real pack stream (catalog.json and one
 * table of two segments), re-chunked at 1 MiB by al-mkbundle. */
static char *make_pack_bundle(const char *name, uint8_t **seg0)
{
	struct harness_keys k;
	char *work = harness_mkdir(name, 0755);
	char *pdir = harness_strdup_printf("%s/packed", work);
	char *payload = harness_strdup_printf("%s/payload.zst", work);
	char *dir = harness_strdup_printf("%s/bundle", work);
	char *tool = harness_strdup_printf("%s/tests/tools/al-mkbundle", harness_builddir());
	char *cat = harness_strdup_printf("cat '%s'/*.chunk > '%s'", pdir, payload);
	const char *cat_argv[] = { "sh", "-c", cat, NULL };
	struct manifest *m = manifest_new();
	struct pack *p = NULL;
	uint8_t *data = malloc(PAYLOAD_SEGMENT_SIZE);
	struct alerr e;
	uint32_t s = 5;
	size_t i;

	cr_assert_eq(harness_gpg_keys(&k), 0);
	for (i = 0; i < PAYLOAD_SEGMENT_SIZE; i++) {
		s = s * 1103515245u + 12345u;
		data[i] = (uint8_t)(s >> 16);
	}
	cr_assert_eq(mkdir(pdir, 0755), 0);
	alerr_clear(&e);
	cr_assert_eq(pack_new(&p, pdir, 4u * MiB, 3, 0, &e), 0, "%s", e.message);
	cr_assert_eq(pack_add_member(p, "catalog.json", "{}", 2, &e), 0);
	cr_assert_eq(pack_add_member(p, "data/feeds/t/000000.copy", data, PAYLOAD_SEGMENT_SIZE,
	                             &e), 0);
	cr_assert_eq(pack_add_member(p, "data/feeds/t/000001.copy", "x\n", 2, &e), 0);
	cr_assert_eq(pack_finish(p, m, &e), 0, "%s", e.message);
	pack_free(p);
	manifest_free(m);
	free(run_ok(cat_argv));
	{
		const char *argv[] = { tool, "--out", dir, "--payload", payload, "--channel", "nvd",
		                       "--sequence", "3", "--signer", k.signer1, "--gnupghome",
		                       k.signer_home, "--created", "1764335671", NULL };

		free(run_ok(argv));
	}
	*seg0 = data;
	free(cat);
	free(tool);
	free(payload);
	free(pdir);
	free(work);
	return dir;
}

/* Write the volume of bundle into a new image file. */
static char *write_image(const char *bundle, const char *name, uint64_t sequence,
                         struct volume_info *vi)
{
	char *img = scratch_path(name);
	struct alerr e;
	int fd;

	unlink(img);
	fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "%s: %s", img, strerror(errno));
	alerr_clear(&e);
	cr_assert_eq(volume_write(bundle, fd, sequence, CREATED, NULL, NULL, vi, &e), 0,
	             "%s [%s]", e.message, e.reason);
	cr_assert_eq(close(fd), 0);
	return img;
}

/* The files of the bundle, relative to its directory, sorted. */
static size_t bundle_files(const char *bundle, char ***out)
{
	char *cmd = harness_strdup_printf("cd '%s' && find AIRLOCK | LC_ALL=C sort", bundle);
	const char *argv[] = { "sh", "-c", cmd, NULL };
	char *list = run_ok(argv), *save = NULL, *tok;
	char **v = NULL;
	size_t n = 0;

	for (tok = strtok_r(list, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
		v = realloc(v, (n + 1) * sizeof(*v));
		v[n++] = strdup(tok);
	}
	free(list);
	free(cmd);
	*out = v;
	return n;
}

static int is_dir_path(const char *bundle, const char *rel)
{
	char *p = harness_strdup_printf("%s/%s", bundle, rel);
	struct stat st;
	int r;

	cr_assert_eq(lstat(p, &st), 0);
	r = S_ISDIR(st.st_mode);
	free(p);
	return r;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return (uint64_t)st.st_size;
}

Test(volume, blkid_sees_an_airlock_iso9660)
{
	struct volume_info vi;
	char *b = make_bundle("blkid", 3 * MiB + 1000, 42);
	char *img = write_image(b, "blkid.iso", 42, &vi);
	const char *argv[] = { "blkid", "-p", "-o", "export", img, NULL };
	char *out = run_ok(argv);

	cr_assert_not_null(strstr(out, "\nTYPE=iso9660\n"), "%s", out);
	cr_assert_not_null(strstr(out, "\nLABEL=AIRLOCK_42\n"), "%s", out);
	cr_assert_not_null(strstr(out, "\nAPPLICATION_ID=AIRLOCK-BUNDLE-1\n"), "%s", out);
	cr_assert_eq(vi.bytes, file_size(img));
	cr_assert_eq(vi.bytes % VOLUME_BLOCK_SIZE, 0);
	free(out);
	free(img);
	free(b);
}

Test(volume, bsdtar_lists_exactly_the_tree)
{
	struct volume_info vi;
	char *b = make_bundle("bsdtar", 2 * MiB + 5, 7);
	char *img = write_image(b, "bsdtar.iso", 7, &vi);
	const char *argv[] = { "bsdtar", "-tvf", img, NULL };
	char *out = run_ok(argv), *save = NULL, *line;
	char **files = NULL;
	size_t n = bundle_files(b, &files), lines = 0, i;

	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char mode[16], name[512];
		unsigned long long size;
		int links, uid, gid;
		int found = 0;

		cr_assert_eq(sscanf(line, "%15s %d %d %d %llu %*s %*s %*s %511s", mode, &links, &uid,
		                    &gid, &size, name), 6, "%s", line);
		cr_assert_eq(uid, 0, "%s", line);
		cr_assert_eq(gid, 0, "%s", line);
		if (strcmp(name, ".") == 0) {
			cr_assert_str_eq(mode, "dr-xr-xr-x");
			continue;
		}
		for (i = 0; i < n; i++) {
			if (strcmp(files[i], name) != 0)
				continue;
			found = 1;
			if (is_dir_path(b, name)) {
				cr_assert_str_eq(mode, "dr-xr-xr-x", "%s", line);
			} else {
				char *p = harness_strdup_printf("%s/%s", b, name);

				cr_assert_str_eq(mode, "-r--r--r--", "%s", line);
				cr_assert_eq(size, file_size(p), "%s", line);
				free(p);
			}
		}
		cr_assert(found, "unexpected entry: %s", line);
		lines++;
	}
	cr_assert_eq(lines, n, "every file and directory once");
	for (i = 0; i < n; i++)
		free(files[i]);
	free(files);
	free(out);
	free(img);
	free(b);
}

Test(volume, xorriso_reads_rock_ridge_names_modes_and_times)
{
	struct volume_info vi;
	char *b = make_bundle("xorriso", 1 * MiB + 77, 9);
	char *img = write_image(b, "xorriso.iso", 9, &vi);
	const char *find[] = { "xorriso", "-indev", img, "-find", "/", "-exec", "lsdl", "--", NULL };
	const char *pvd[] = { "xorriso", "-indev", img, "-pvd_info", NULL };
	char *out = run_ok(find);
	char *info = run_ok(pvd);
	char **files = NULL;
	size_t n = bundle_files(b, &files), i;

	for (i = 0; i < n; i++) {
		char *quoted = harness_strdup_printf("'/%s'\n", files[i]);
		const char *at = strstr(out, quoted), *bol;

		cr_assert_not_null(at, "xorriso does not list /%s:\n%s", files[i], out);
		for (bol = at; bol > out && bol[-1] != '\n'; bol--)
			;
		cr_assert_eq(strncmp(bol, is_dir_path(b, files[i]) ? "dr-xr-xr-x" : "-r--r--r--",
		                     10), 0, "%.100s", bol);
		free(quoted);
		free(files[i]);
	}
	free(files);
	cr_assert_not_null(strstr(info, "Volume Id    : AIRLOCK_9\n"), "%s", info);
	cr_assert_not_null(strstr(info, "App Id       : AIRLOCK-BUNDLE-1\n"), "%s", info);
	cr_assert_not_null(strstr(info, "Creation Time: " CREATED_PVD "\n"), "%s", info);
	cr_assert_not_null(strstr(info, "Modif. Time  : " CREATED_PVD "\n"), "%s", info);
	cr_assert_not_null(strstr(info, "Eff. Time    : " CREATED_PVD "\n"), "%s", info);
	free(info);
	free(out);
	free(img);
	free(b);
}

/* The descriptor set, read by hand: the PVD, then the terminator; no
 * boot record, no supplementary (Joliet) descriptor. */
Test(volume, no_joliet_no_boot_record)
{
	struct volume_info vi;
	char *b = make_bundle("descr", MiB, 3);
	char *img = write_image(b, "descr.iso", 3, &vi);
	size_t len = 0, blk;
	char *data = harness_read_file(img, &len);
	const uint8_t *u = (const uint8_t *)data;

	cr_assert_not_null(data);
	cr_assert_eq(memcmp(u + 16 * 2048, "\001CD001\001", 7), 0);
	for (blk = 17; blk < 16 + 1 + VOLUME_MAX_DESCRIPTORS; blk++) {
		const uint8_t *vd = u + blk * 2048;

		cr_assert_eq(memcmp(vd + 1, "CD001", 5), 0, "block %zu", blk);
		cr_assert_neq(vd[0], 2, "a supplementary (Joliet) descriptor in block %zu", blk);
		cr_assert_neq(vd[0], 0, "a boot record in block %zu", blk);
		if (vd[0] == 255)
			break;
	}
	cr_assert_eq(blk, 17, "the terminator follows the PVD");
	/* The volume id field: AIRLOCK_3 padded with spaces. */
	cr_assert_eq(memcmp(u + 16 * 2048 + 40, "AIRLOCK_3                       ", 32), 0);
	/* Volume space size x 2048 is the image. */
	cr_assert_eq((uint64_t)(u[16 * 2048 + 80] | u[16 * 2048 + 81] << 8 |
	                        u[16 * 2048 + 82] << 16 | (uint32_t)u[16 * 2048 + 83] << 24) * 2048u,
	             len);
	free(data);
	free(img);
	free(b);
}

Test(volume, extracted_files_equal_the_originals)
{
	struct volume_info vi;
	char *b = make_bundle("extract", 3 * MiB, 11);
	char *img = write_image(b, "extract.iso", 11, &vi);
	char *dest = harness_mkdir("extract.out", 0755);
	const char *x[] = { "bsdtar", "-xf", img, "-C", dest, NULL };
	char **files = NULL;
	size_t n = bundle_files(b, &files), i;

	free(run_ok(x));
	for (i = 0; i < n; i++) {
		if (!is_dir_path(b, files[i])) {
			char *a = harness_strdup_printf("%s/%s", b, files[i]);
			char *c = harness_strdup_printf("%s/%s", dest, files[i]);
			const char *cmp[] = { "cmp", a, c, NULL };

			free(run_ok(cmp));
			free(a);
			free(c);
		}
		free(files[i]);
	}
	free(files);
	free(dest);
	free(img);
	free(b);
}

Test(volume, estimate_is_a_close_upper_bound)
{
	struct volume_info vi;
	char *b = make_bundle("estimate", 5 * MiB + 3, 5);
	char *img = write_image(b, "estimate.iso", 5, &vi);
	uint64_t est = 0;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(volume_estimate(b, &est, &e), 0, "%s", e.message);
	cr_assert_geq(est, vi.bytes);
	cr_assert_leq(est - vi.bytes, 16u * VOLUME_BLOCK_SIZE, "estimate %" PRIu64
	              " for %" PRIu64, est, vi.bytes);
	free(img);
	free(b);
}

Test(volume, probe_gives_size_and_id)
{
	struct volume_info vi;
	char *b = make_bundle("probe", 2 * MiB, 1234567890123ull);
	char *img = write_image(b, "probe.iso", 1234567890123ull, &vi);
	char id[VOLUME_ID_SIZE];
	uint64_t bytes = 0;
	struct alerr e;
	int fd = open(img, O_RDONLY | O_CLOEXEC);

	alerr_clear(&e);
	cr_assert_eq(volume_probe(fd, &bytes, id, &e), 0, "%s", e.message);
	cr_assert_eq(bytes, vi.bytes);
	cr_assert_str_eq(id, "AIRLOCK_1234567890123");
	close(fd);
	free(img);
	free(b);
}

static void expect_probe(const char *path, const char *reason, enum alerr_class cls)
{
	char id[VOLUME_ID_SIZE];
	uint64_t bytes = 1;
	struct alerr e;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s", path);
	alerr_clear(&e);
	cr_assert_lt(volume_probe(fd, &bytes, id, &e), 0, "%s accepted", path);
	cr_assert_str_eq(e.reason, reason, "%s: %s [%s]", path, e.message, e.reason);
	cr_assert_eq(e.cls, cls, "%s: %s", path, e.message);
	cr_assert_eq(bytes, 0);
	cr_assert_str_empty(id);
	cr_log_info("%s: %s", reason, e.message);
	close(fd);
}

/* A copy of a fresh image with one change. */
static char *image_variant(const char *name, void (*edit)(uint8_t *d, size_t *len))
{
	static int made;
	struct volume_info vi;
	char *bn = harness_strdup_printf("variant%d_%s", made++, name);
	char *on = harness_strdup_printf("%s.orig", name);
	char *b, *img, *out = scratch_path(name);
	size_t len = 0;
	uint8_t *d;

	b = make_bundle(bn, MiB + 1000, 8);
	img = write_image(b, on, 8, &vi);
	free(bn);
	free(on);
	d = (uint8_t *)harness_read_file(img, &len);
	cr_assert_not_null(d);
	edit(d, &len);
	unlink(out);
	harness_write_file(out, d, len);
	free(d);
	free(img);
	free(b);
	return out;
}

static void cut_half(uint8_t *d, size_t *len)
{
	(void)d;
	*len /= 2;
}

static void cut_before_pvd(uint8_t *d, size_t *len)
{
	(void)d;
	*len = 16 * 2048 + 100;
}

static void block_512(uint8_t *d, size_t *len)
{
	(void)len;
	d[16 * 2048 + 128] = 0x00;   /* 512, both byte orders */
	d[16 * 2048 + 129] = 0x02;
	d[16 * 2048 + 130] = 0x02;
	d[16 * 2048 + 131] = 0x00;
}

static void endian_mismatch(uint8_t *d, size_t *len)
{
	(void)len;
	d[16 * 2048 + 84] ^= 0x01;   /* big-endian volume space size */
}

static void joliet_like(uint8_t *d, size_t *len)
{
	(void)len;
	/* Turn the terminator into a supplementary descriptor. */
	d[17 * 2048] = 2;
}

static void control_in_id(uint8_t *d, size_t *len)
{
	(void)len;
	d[16 * 2048 + 41] = 0x07;
}

Test(volume, probe_refuses_a_truncated_volume)
{
	char *p = image_variant("half.iso", cut_half);

	expect_probe(p, "volume.truncated", ALERR_REJECT);
	free(p);
}

Test(volume, probe_refuses_media_cut_before_the_pvd)
{
	char *p = image_variant("cut.iso", cut_before_pvd);

	expect_probe(p, "volume.not_iso", ALERR_NOINPUT);
	free(p);
}

Test(volume, probe_refuses_a_block_size_not_2048)
{
	char *p = image_variant("bs512.iso", block_512);

	expect_probe(p, "volume.malformed", ALERR_REJECT);
	free(p);
}

Test(volume, probe_refuses_both_endian_disagreement)
{
	char *p = image_variant("endian.iso", endian_mismatch);

	expect_probe(p, "volume.malformed", ALERR_REJECT);
	free(p);
}

Test(volume, probe_refuses_a_supplementary_descriptor)
{
	char *p = image_variant("svd.iso", joliet_like);

	expect_probe(p, "volume.malformed", ALERR_REJECT);
	free(p);
}

Test(volume, probe_refuses_control_characters_in_the_id)
{
	char *p = image_variant("ctl.iso", control_in_id);

	expect_probe(p, "volume.malformed", ALERR_REJECT);
	free(p);
}

Test(volume, probe_refuses_garbage)
{
	char *p = scratch_path("garbage.img");
	uint8_t *d = malloc(VOLUME_PROBE_BYTES * 2);
	uint32_t s = 99;
	size_t i;

	for (i = 0; i < VOLUME_PROBE_BYTES * 2; i++) {
		s = s * 1103515245u + 12345u;
		d[i] = (uint8_t)(s >> 16);
	}
	unlink(p);
	harness_write_file(p, d, VOLUME_PROBE_BYTES * 2);
	expect_probe(p, "volume.not_iso", ALERR_NOINPUT);
	free(d);
	free(p);
}

Test(volume, probe_refuses_an_empty_file)
{
	char *p = scratch_path("empty.img");

	unlink(p);
	harness_write_file(p, "", 0);
	expect_probe(p, "volume.not_iso", ALERR_NOINPUT);
	free(p);
}

Test(volume, probe_refuses_ext4)
{
	char *p = scratch_path("ext4.img");
	const char *argv[] = { "mkfs.ext4", "-q", "-F", p, "4M", NULL };

	unlink(p);
	if (harness_run(argv, NULL, NULL, NULL) != 0)
		cr_skip_test("mkfs.ext4 not available");
	expect_probe(p, "volume.not_iso", ALERR_NOINPUT);
	free(p);
}

Test(volume, probe_refuses_a_character_device)
{
	expect_probe("/dev/null", "volume.not_iso", ALERR_NOINPUT);
}

Test(volume, probe_buffer_needs_the_descriptors)
{
	uint8_t buf[16 * 2048];
	char id[VOLUME_ID_SIZE];
	uint64_t bytes;
	struct alerr e;

	memset(buf, 0, sizeof(buf));
	alerr_clear(&e);
	cr_assert_lt(volume_probe_buffer(buf, sizeof(buf), &bytes, id, &e), 0);
	cr_assert_str_eq(e.reason, "volume.not_iso");
}

Test(volume, readback_passes_then_fails_after_one_flipped_byte)
{
	struct volume_info vi;
	char *b = make_bundle("readback", 2 * MiB, 4);
	char *img = write_image(b, "readback.iso", 4, &vi);
	struct alerr e;
	uint8_t byte;
	int fd = open(img, O_RDWR | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	alerr_clear(&e);
	cr_assert_eq(volume_readback(fd, &vi, NULL, NULL, &e), 0, "%s", e.message);
	cr_assert_eq(pread(fd, &byte, 1, (off_t)(vi.bytes / 2)), 1);
	byte ^= 0x01;
	cr_assert_eq(pwrite(fd, &byte, 1, (off_t)(vi.bytes / 2)), 1);
	alerr_clear(&e);
	cr_assert_lt(volume_readback(fd, &vi, NULL, NULL, &e), 0);
	cr_assert_str_eq(e.reason, "volume.readback_mismatch", "%s", e.message);
	cr_assert_eq(e.cls, ALERR_IOERR);
	close(fd);
	free(img);
	free(b);
}

Test(volume, readback_of_a_short_target_fails)
{
	struct volume_info vi;
	char *b = make_bundle("short", MiB, 4);
	char *img = write_image(b, "short.iso", 4, &vi);
	struct alerr e;
	int fd = open(img, O_RDWR | O_CLOEXEC);

	cr_assert_eq(ftruncate(fd, (off_t)(vi.bytes - 2048)), 0);
	alerr_clear(&e);
	cr_assert_lt(volume_readback(fd, &vi, NULL, NULL, &e), 0);
	cr_assert_str_eq(e.reason, "volume.readback_mismatch");
	cr_assert_not_null(strstr(e.message, "only"), "%s", e.message);
	close(fd);
	free(img);
	free(b);
}

Test(volume, hash_is_of_the_bytes_written)
{
	struct volume_info vi;
	char *b = make_bundle("hash", MiB, 4);
	char *img = write_image(b, "hash.iso", 4, &vi);
	const char *argv[] = { "sha256sum", img, NULL };
	char *out = run_ok(argv);
	char hex[DIGEST_SHA256_HEX_LEN + 1];

	digest_hex(hex, vi.sha256);
	cr_assert_eq(strncmp(out, hex, 64), 0, "%s vs %s", out, hex);
	free(out);
	free(img);
	free(b);
}

/* libarchive stamps the clock (at the second) into the volume: two writes
 * a second apart, under another time zone, give the same bytes. */
Test(volume, same_bundle_same_created_same_bytes)
{
	struct volume_info v1, v2;
	char *b = make_bundle("repro", 2 * MiB + 17, 21);
	char *i1 = write_image(b, "repro1.iso", 21, &v1), *i2;
	const char *argv[] = { "cmp", i1, NULL, NULL };

	sleep(1);
	setenv("TZ", "America/New_York", 1);
	tzset();
	i2 = write_image(b, "repro2.iso", 21, &v2);
	argv[2] = i2;
	free(run_ok(argv));
	cr_assert_eq(memcmp(v1.sha256, v2.sha256, 32), 0);
	cr_assert_str_eq(getenv("TZ"), "America/New_York", "TZ restored");
	free(i1);
	free(i2);
	free(b);
}

Test(volume, another_created_time_changes_the_bytes)
{
	struct volume_info v1, v2;
	char *b = make_bundle("repro_t", MiB, 21);
	char *i1 = write_image(b, "rt1.iso", 21, &v1);
	char *i2 = scratch_path("rt2.iso");
	struct alerr e;
	int fd = open(i2, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	alerr_clear(&e);
	cr_assert_eq(volume_write(b, fd, 21, CREATED + 60, NULL, NULL, &v2, &e), 0);
	close(fd);
	cr_assert_neq(memcmp(v1.sha256, v2.sha256, 32), 0);
	free(i1);
	free(i2);
	free(b);
}

/* libarchive spools in $TMPDIR: volume_write points it at the bundle
 * directory for the call and restores it. */
Test(volume, spool_does_not_use_the_callers_tmpdir)
{
	struct volume_info vi;
	char *b = make_bundle("tmpdir", MiB, 2);
	char *img;

	setenv("TMPDIR", "/nonexistent/airlock", 1);
	img = write_image(b, "tmpdir.iso", 2, &vi);
	cr_assert_str_eq(getenv("TMPDIR"), "/nonexistent/airlock");
	free(img);
	free(b);
}

struct progress_log {
	uint64_t last_done, last_total, calls;
	uint64_t stop_after;
};

static int progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	struct progress_log *l = ctx;

	cr_assert_geq(done, l->last_done, "progress goes forward");
	cr_assert_leq(done, total);
	l->last_done = done;
	l->last_total = total;
	l->calls++;
	return l->stop_after && l->calls >= l->stop_after;
}

Test(volume, progress_reaches_the_total)
{
	struct progress_log l = { 0 };
	struct volume_info vi;
	char *b = make_bundle("progress", 3 * MiB, 2);
	char *img = scratch_path("progress.iso");
	struct alerr e;
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	alerr_clear(&e);
	cr_assert_eq(volume_write(b, fd, 2, CREATED, progress_cb, &l, &vi, &e), 0, "%s",
	             e.message);
	cr_assert_gt(l.calls, 2);
	cr_assert_eq(l.last_done, l.last_total);
	memset(&l, 0, sizeof(l));
	cr_assert_eq(volume_readback(fd, &vi, progress_cb, &l, &e), 0);
	cr_assert_eq(l.last_done, vi.bytes);
	close(fd);
	free(img);
	free(b);
}

Test(volume, progress_can_cancel)
{
	struct progress_log l = { .stop_after = 2 };
	struct volume_info vi;
	char *b = make_bundle("cancel", 3 * MiB, 2);
	char *img = scratch_path("cancel.iso");
	struct alerr e;
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	alerr_clear(&e);
	cr_assert_lt(volume_write(b, fd, 2, CREATED, progress_cb, &l, &vi, &e), 0);
	cr_assert_str_eq(e.reason, "volume.cancelled", "%s", e.message);
	cr_assert_eq(vi.bytes, 0);
	close(fd);
	free(img);
	free(b);
}

static void expect_write_fails(const char *bundle, const char *reason)
{
	struct volume_info vi;
	char name[64];
	char *img;
	struct alerr e;
	int fd;

	/* Criterion runs tests in parallel in one scratch directory. */
	snprintf(name, sizeof(name), "fail-%ld.iso", (long)getpid());
	img = scratch_path(name);
	unlink(img);
	fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "%s: %s", img, strerror(errno));
	alerr_clear(&e);
	cr_assert_lt(volume_write(bundle, fd, 1, CREATED, NULL, NULL, &vi, &e), 0);
	cr_assert_str_eq(e.reason, reason, "%s [%s]", e.message, e.reason);
	cr_assert_eq(file_size(img), 0, "nothing written");
	close(fd);
	free(img);
}

Test(volume, a_stray_file_never_reaches_the_medium)
{
	char *b = make_bundle("stray", MiB, 1);
	char *p = harness_strdup_printf("%s/AIRLOCK/notes.txt", b);

	harness_write_file(p, "x", 1);
	expect_write_fails(b, "volume.bundle_layout");
	free(p);
	free(b);
}

Test(volume, a_symlinked_chunk_is_refused)
{
	char *b = make_bundle("symlink", MiB, 1);
	char *p = harness_strdup_printf("%s/AIRLOCK/payload/000001.chunk", b);

	cr_assert_eq(symlink("/etc/passwd", p), 0);
	expect_write_fails(b, "volume.bundle_layout");
	free(p);
	free(b);
}

Test(volume, a_chunk_gap_is_refused)
{
	char *b = make_bundle("gap", MiB, 1);
	char *p = harness_strdup_printf("%s/AIRLOCK/payload/000002.chunk", b);

	harness_write_file(p, "x", 1);
	expect_write_fails(b, "volume.bundle_layout");
	free(p);
	free(b);
}

Test(volume, a_missing_manifest_is_refused)
{
	char *b = make_bundle("nomanifest", MiB, 1);
	char *p = harness_strdup_printf("%s/AIRLOCK/MANIFEST", b);

	cr_assert_eq(unlink(p), 0);
	expect_write_fails(b, "volume.bundle_layout");
	free(p);
	free(b);
}

/* ---- loop devices ---- */

static char *backing_file(const char *name, uint64_t size)
{
	char *p = scratch_path(name);
	int fd;

	unlink(p);
	fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
	return p;
}

Test(volume, written_to_a_loop_device_and_read_back, .timeout = 120)
{
	struct volume_info vi;
	char *b = make_bundle("loop", 3 * MiB, 77);
	char *back, *dev = NULL;
	char id[VOLUME_ID_SIZE];
	uint64_t est = 0, bytes = 0;
	struct alerr e;
	uint8_t byte;
	int fd, bfd;

	harness_loop_require();
	alerr_clear(&e);
	cr_assert_eq(volume_estimate(b, &est, &e), 0);
	back = backing_file("loop.img", est + MiB);
	cr_assert_eq(harness_loop_attach(back, 0, &dev), 0);
	fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", dev, strerror(errno));
	cr_assert_eq(volume_write(b, fd, 77, CREATED, NULL, NULL, &vi, &e), 0, "%s [%s]",
	             e.message, e.reason);
	cr_assert_eq(volume_readback(fd, &vi, NULL, NULL, &e), 0, "%s", e.message);
	cr_assert_eq(volume_probe(fd, &bytes, id, &e), 0, "%s", e.message);
	cr_assert_eq(bytes, vi.bytes);
	cr_assert_str_eq(id, "AIRLOCK_77");
	{
		const char *argv[] = { "blkid", "-p", "-o", "export", dev, NULL };
		char *out = run_ok(argv);

		cr_assert_not_null(strstr(out, "\nLABEL=AIRLOCK_77\n"), "%s", out);
		cr_assert_not_null(strstr(out, "\nTYPE=iso9660\n"), "%s", out);
		free(out);
	}
	/* Change the medium under the device's cache: the read-back must
	 * come from the medium, so it sees the change. */
	bfd = open(back, O_RDWR | O_CLOEXEC);
	cr_assert_eq(pread(bfd, &byte, 1, (off_t)(vi.bytes - 100)), 1);
	byte ^= 0x80;
	cr_assert_eq(pwrite(bfd, &byte, 1, (off_t)(vi.bytes - 100)), 1);
	cr_assert_eq(fsync(bfd), 0);
	close(bfd);
	alerr_clear(&e);
	cr_assert_lt(volume_readback(fd, &vi, NULL, NULL, &e), 0);
	cr_assert_str_eq(e.reason, "volume.readback_mismatch", "%s", e.message);
	close(fd);
	harness_loop_detach(dev);
	free(dev);
	free(back);
	free(b);
}

Test(volume, a_too_small_device_fails_clearly, .timeout = 120)
{
	struct volume_info vi;
	char *b = make_bundle("small", 3 * MiB, 5);
	char *back = backing_file("small.img", MiB), *dev = NULL;
	struct alerr e;
	int fd;

	harness_loop_require();
	cr_assert_eq(harness_loop_attach(back, 0, &dev), 0);
	fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	alerr_clear(&e);
	cr_assert_lt(volume_write(b, fd, 5, CREATED, NULL, NULL, &vi, &e), 0);
	cr_assert_str_eq(e.reason, "media.write", "%s", e.message);
	cr_assert_eq(e.cls, ALERR_IOERR);
	cr_assert_not_null(strstr(e.message, "smaller than the volume"), "%s", e.message);
	close(fd);
	harness_loop_detach(dev);
	free(dev);
	free(back);
	free(b);
}

/* ---- the importer's listing ---- */

struct listing {
	char text[8192];
};

static int list_cb(void *ctx, const char *path, int is_dir, uint64_t size, struct alerr *e)
{
	struct listing *l = ctx;
	size_t n = strlen(l->text);

	(void)e;
	snprintf(l->text + n, sizeof(l->text) - n, "%c %s %" PRIu64 "\n", is_dir ? 'd' : 'f',
	         path, size);
	return 0;
}

Test(volume, list_gives_exactly_the_tree)
{
	struct volume_info vi;
	char *b = make_bundle("list", 2 * MiB + 9, 6);
	char *img = write_image(b, "list.iso", 6, &vi);
	struct listing l = { { 0 } };
	char **files = NULL;
	size_t n = bundle_files(b, &files), i, lines = 0;
	struct alerr e;
	const char *p;

	alerr_clear(&e);
	cr_assert_eq(volume_list(img, &big, list_cb, &l, &e), 0, "%s [%s]", e.message, e.reason);
	for (i = 0; i < n; i++) {
		char *want;

		if (is_dir_path(b, files[i])) {
			want = harness_strdup_printf("d %s 0\n", files[i]);
		} else {
			char *path = harness_strdup_printf("%s/%s", b, files[i]);

			want = harness_strdup_printf("f %s %" PRIu64 "\n", files[i], file_size(path));
			free(path);
		}
		cr_assert_not_null(strstr(l.text, want), "%s not in\n%s", want, l.text);
		free(want);
		free(files[i]);
	}
	for (p = l.text; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, n, "%s", l.text);
	free(files);
	free(img);
	free(b);
}

Test(volume, file_read_streams_one_file)
{
	struct volume_info vi;
	char *b = make_bundle("fileread", 2 * MiB + 9, 6);
	char *img = write_image(b, "fileread.iso", 6, &vi);
	char *orig_path = harness_strdup_printf("%s/AIRLOCK/payload/000001.chunk", b);
	size_t orig_len = 0, off = 0;
	char *orig = harness_read_file(orig_path, &orig_len);
	struct volume_file *f = NULL;
	uint8_t buf[7000];
	uint64_t size = 0;
	struct alerr e;
	ssize_t n;

	alerr_clear(&e);
	cr_assert_eq(volume_file_open(&f, img, "AIRLOCK/payload/000001.chunk", &big, &size, &e),
	             0, "%s", e.message);
	cr_assert_eq(size, orig_len);
	while ((n = volume_file_read(f, buf, sizeof(buf), &e)) > 0) {
		cr_assert_leq(off + (size_t)n, orig_len);
		cr_assert_eq(memcmp(buf, orig + off, (size_t)n), 0);
		off += (size_t)n;
	}
	cr_assert_eq(n, 0, "%s", e.message);
	cr_assert_eq(off, orig_len);
	volume_file_close(f);
	alerr_clear(&e);
	cr_assert_lt(volume_file_open(&f, img, "AIRLOCK/payload/000009.chunk", &big, &size, &e), 0);
	cr_assert_str_eq(e.reason, "bundle.file_missing");
	cr_assert_null(f);
	free(orig);
	free(orig_path);
	free(img);
	free(b);
}

/* An image built by xorriso from a copy of a bundle changed by shell
 * commands (run in the copy's directory). */
static char *forge_image(const char *name, const char *change, const char *mkisofs_opts)
{
	char *bn = harness_strdup_printf("forge_%s", name);
	char *in = harness_strdup_printf("%s.iso", name);
	char *b = make_bundle(bn, MiB, 1);
	char *img = scratch_path(in);
	char *cmd = harness_strdup_printf(
		"cd '%s' && chmod -R u+w AIRLOCK && %s && "
		"xorriso -as mkisofs %s -V AIRLOCK_1 -o '%s' . 2>&1", b, change, mkisofs_opts, img);
	const char *argv[] = { "sh", "-c", cmd, NULL };

	unlink(img);
	free(run_ok(argv));
	free(cmd);
	free(b);
	free(bn);
	free(in);
	return img;
}

static void expect_list(const char *img, const struct volume_limits *lim, const char *reason)
{
	struct listing l = { { 0 } };
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(volume_list(img, lim, list_cb, &l, &e), 0, "%s listed:\n%s", img, l.text);
	cr_assert_str_eq(e.reason, reason, "%s: %s [%s]", img, e.message, e.reason);
	cr_log_info("%s: %s", reason, e.message);
}

Test(volume, list_accepts_the_same_tree_from_xorriso)
{
	char *img = forge_image("xorriso_ok", "true", "-R");
	struct listing l = { { 0 } };
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(volume_list(img, &big, list_cb, &l, &e), 0, "%s", e.message);
	cr_assert_not_null(strstr(l.text, "f AIRLOCK/MANIFEST "));
	free(img);
}

Test(volume, list_refuses_an_extra_file)
{
	char *img = forge_image("extra", "echo hi > AIRLOCK/payload/evil.sh", "-R");

	expect_list(img, &big, "volume.entry_name");
	free(img);
}

Test(volume, list_refuses_a_symlink)
{
	char *img = forge_image("symlink", "ln -s /etc/shadow AIRLOCK/payload/000001.chunk", "-R");

	expect_list(img, &big, "volume.entry_type");
	free(img);
}

Test(volume, list_refuses_a_fifo)
{
	char *img = forge_image("fifo", "mkfifo AIRLOCK/payload/000001.chunk", "-R");

	expect_list(img, &big, "volume.entry_type");
	free(img);
}

Test(volume, list_refuses_a_hard_link)
{
	char *img = forge_image("hardlink", "ln AIRLOCK/MANIFEST AIRLOCK/payload/000001.chunk",
	                        "-R");

	expect_list(img, &big, "volume.entry_type");
	free(img);
}

Test(volume, list_refuses_a_directory_where_a_file_belongs)
{
	char *img = forge_image("dir", "mkdir AIRLOCK/payload/000001.chunk", "-R");

	expect_list(img, &big, "volume.entry_type");
	free(img);
}

Test(volume, list_refuses_a_control_character_name)
{
	char *img = forge_image("ctlname", "printf x > \"AIRLOCK/payload/$(printf 'a\\tb')\"", "-R");

	expect_list(img, &big, "volume.entry_name");
	free(img);
}

Test(volume, list_refuses_joliet)
{
	char *img = forge_image("joliet", "true", "-R -J");

	expect_list(img, &big, "volume.malformed");
	free(img);
}

Test(volume, list_refuses_a_volume_without_rock_ridge)
{
	char *img = forge_image("norr", "true", "--norock");

	expect_list(img, &big, "volume.malformed");
	free(img);
}

Test(volume, list_caps_the_entry_count)
{
	char *img = forge_image("count", "true", "-R");
	const struct volume_limits lim = { .max_entries = 4, .max_total = UINT64_C(1) << 40,
	                                   .max_path = 4096 };

	expect_list(img, &lim, "volume.too_many_entries");
	free(img);
}

Test(volume, list_caps_the_total_size)
{
	char *img = forge_image("total", "true", "-R");
	const struct volume_limits lim = { .max_entries = 1000, .max_total = 1000,
	                                   .max_path = 4096 };

	expect_list(img, &lim, "volume.too_large");
	free(img);
}

Test(volume, list_caps_the_path_length)
{
	char *img = forge_image("pathlen", "true", "-R");
	const struct volume_limits lim = { .max_entries = 1000, .max_total = UINT64_C(1) << 40,
	                                   .max_path = 20 };

	expect_list(img, &lim, "volume.entry_name");
	free(img);
}

Test(volume, list_refuses_a_long_path)
{
	char *img = forge_image("longpath",
		"d=AIRLOCK; for i in $(seq 1 40); do d=$d/dddddddddddddddddddddddddddddddddddddddd; done; "
		"mkdir -p $d && echo x > $d/f", "-R");

	expect_list(img, &big, "volume.entry_name");
	free(img);
}

Test(volume, list_refuses_a_truncated_image)
{
	char *img = forge_image("trunc", "true", "-R");
	int fd = open(img, O_RDWR | O_CLOEXEC);

	cr_assert_eq(ftruncate(fd, (off_t)(file_size(img) / 2)), 0);
	close(fd);
	expect_list(img, &big, "volume.truncated");
	free(img);
}

/* ---- forged by hand: a small ISO 9660 walker finds one directory
 * record by its Rock Ridge name, then the test changes it ---- */

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr733(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
	p[4] = (uint8_t)(v >> 24);
	p[5] = (uint8_t)(v >> 16);
	p[6] = (uint8_t)(v >> 8);
	p[7] = (uint8_t)v;
}

/* Offset of the NM entry of the record named name in the extent. */
static size_t find_nm(const uint8_t *d, size_t len, uint32_t lba, uint32_t size,
                      const char *name, size_t *rec_out)
{
	size_t off = (size_t)lba * 2048, end = off + size;

	cr_assert_leq(end, len);
	while (off < end) {
		size_t rl = d[off], nl, su;

		if (rl == 0) {
			off = (off / 2048 + 1) * 2048;
			continue;
		}
		nl = d[off + 32];
		su = off + 33 + nl + (nl % 2 == 0);
		while (su + 4 <= off + rl) {
			size_t l = d[su + 2];

			cr_assert_geq(l, 4);
			if (memcmp(d + su, "NM", 2) == 0 && l - 5 == strlen(name) &&
			    memcmp(d + su + 5, name, l - 5) == 0) {
				*rec_out = off;
				return su;
			}
			su += l;
		}
		off += rl;
	}
	return 0;
}

/* The directory record of path ("AIRLOCK/payload/000001.chunk"); *nm
 * gets the offset of its NM entry. */
static size_t find_record(const uint8_t *d, size_t len, const char *path, size_t *nm)
{
	uint32_t lba = rd32(d + 16 * 2048 + 156 + 2), size = rd32(d + 16 * 2048 + 156 + 10);
	char *copy = strdup(path), *save = NULL, *part;
	size_t rec = 0;

	for (part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		*nm = find_nm(d, len, lba, size, part, &rec);
		cr_assert_neq(*nm, 0, "%s not found", part);
		lba = rd32(d + rec + 2);
		size = rd32(d + rec + 10);
	}
	free(copy);
	return rec;
}

static char *forged_path;
static const char *forged_new_name;

/* Rename the Rock Ridge name of AIRLOCK/payload/000001.chunk in place: a
 * shorter name is followed by a PD (padding) entry. */
static void rename_chunk(uint8_t *d, size_t *len)
{
	size_t nm = 0, old = strlen("000001.chunk"), n = strlen(forged_new_name);

	find_record(d, *len, "AIRLOCK/payload/000001.chunk", &nm);
	cr_assert(n == old || old - n >= 4);
	memcpy(d + nm + 5, forged_new_name, n);
	if (n < old) {
		d[nm + 2] = (uint8_t)(5 + n);
		memcpy(d + nm + 5 + n, "PD", 2);
		d[nm + 5 + n + 2] = (uint8_t)(old - n);
		d[nm + 5 + n + 3] = 1;
	}
}

static void expect_renamed(const char *file, const char *new_name, const char *reason)
{
	forged_new_name = new_name;
	forged_path = image_variant(file, rename_chunk);
	expect_list(forged_path, &big, reason);
	free(forged_path);
}

Test(volume, list_refuses_a_duplicate_path)
{
	expect_renamed("dup.iso", "000000.chunk", "volume.duplicate");
}

Test(volume, list_refuses_a_slash_inside_a_name)
{
	expect_renamed("slash.iso", "0000/1.chunk", "volume.entry_name");
}

Test(volume, list_refuses_dotdot)
{
	expect_renamed("dotdot.iso", "..", "volume.entry_name");
}

Test(volume, list_refuses_an_absolute_looking_name)
{
	expect_renamed("abs.iso", "/etc/shadows", "volume.entry_name");
}

static void nul_in_name(uint8_t *d, size_t *len)
{
	size_t nm = 0;

	find_record(d, *len, "AIRLOCK/payload/000001.chunk", &nm);
	d[nm + 5 + 6] = '\0';      /* "000001\0chunk" */
}

Test(volume, list_refuses_a_nul_inside_a_name)
{
	char *p = image_variant("nul.iso", nul_in_name);

	expect_list(p, &big, "volume.entry_name");
	free(p);
}

static void extent_beyond_the_end(uint8_t *d, size_t *len)
{
	size_t nm = 0, rec = find_record(d, *len, "AIRLOCK/payload/000000.chunk", &nm);

	wr733(d + rec + 2, (uint32_t)(*len / 2048 + 1000));
}

Test(volume, list_refuses_an_extent_beyond_the_end)
{
	char *p = image_variant("beyond.iso", extent_beyond_the_end);

	expect_list(p, &big, "volume.malformed");
	free(p);
}

static void directory_loop(uint8_t *d, size_t *len)
{
	size_t nm = 0, rec = find_record(d, *len, "AIRLOCK/payload", &nm);

	/* payload's extent is the root's */
	memcpy(d + rec + 2, d + 16 * 2048 + 156 + 2, 8);
}

Test(volume, list_refuses_a_directory_loop)
{
	char *p = image_variant("loop.iso", directory_loop);
	struct listing l = { { 0 } };
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(volume_list(p, &big, list_cb, &l, &e), 0, "listed:\n%s", l.text);
	cr_assert_eq(strncmp(e.reason, "volume.", 7), 0, "%s", e.reason);
	cr_assert_eq(e.cls, ALERR_REJECT, "%s", e.message);
	cr_log_info("%s: %s", e.reason, e.message);
	free(p);
}

/* libarchive's test_fuzz in small: random bytes of the descriptors and
 * directories changed; every outcome is a listing or a volume.* refusal,
 * never a crash or a hang. */
Test(volume, list_survives_corrupted_metadata, .timeout = 300)
{
	struct volume_info vi;
	char *b = make_bundle("fuzz", MiB + 99, 3);
	char *img = write_image(b, "fuzz.iso", 3, &vi);
	char *out = scratch_path("fuzzed.iso");
	size_t len = 0, meta, i, refused = 0;
	uint8_t *orig = (uint8_t *)harness_read_file(img, &len);
	uint8_t *d = malloc(len);
	uint32_t s = 4242;

	/* everything before the first file's data */
	meta = (size_t)rd32(orig + 16 * 2048 + 156 + 2) * 2048 + 8 * 2048;
	for (i = 0; i < 300; i++) {
		struct listing l = { { 0 } };
		struct alerr e;
		int k, rc;

		memcpy(d, orig, len);
		for (k = 0; k < 1 + (int)(i % 4); k++) {
			s = s * 1103515245u + 12345u;
			d[16 * 2048 + (s >> 8) % (meta - 16 * 2048)] = (uint8_t)(s >> 3);
		}
		unlink(out);
		harness_write_file(out, d, len);
		alerr_clear(&e);
		rc = volume_list(out, &big, list_cb, &l, &e);
		if (rc < 0) {
			cr_assert(strncmp(e.reason, "volume.", 7) == 0 ||
			          strcmp(e.reason, "volume.memory") == 0, "round %zu: %s [%s]",
			          i, e.message, e.reason);
			refused++;
		}
	}
	cr_log_info("%zu of 300 corrupted images refused", refused);
	free(d);
	free(orig);
	free(out);
	free(img);
	free(b);
}

/* The importer's path: the payload read out of the image, chunk after
 * chunk, through the strict payload reader. */
Test(volume, payload_unpacks_from_the_image)
{
	const struct unpack_limits ul = { .max_total = 64u * MiB, .max_members = 10 };
	struct volume_chunks *c = NULL;
	struct unpack *u = NULL;
	struct volume_info vi;
	uint8_t *seg0 = NULL, *buf = malloc(MiB);
	char *b = make_pack_bundle("unpack", &seg0);
	char *img = write_image(b, "unpack.iso", 3, &vi);
	char *chunks = harness_strdup_printf("%s/AIRLOCK/payload", b);
	const char *names[] = { "catalog.json", "data/feeds/t/000000.copy",
	                        "data/feeds/t/000001.copy" };
	const uint64_t sizes[] = { 2, PAYLOAD_SEGMENT_SIZE, 2 };
	uint64_t n_chunks = 0, size;
	const char *name;
	struct alerr e;
	size_t i;

	while (1) {
		char *p = harness_strdup_printf("%s/%06" PRIu64 ".chunk", chunks, n_chunks);
		int there = access(p, F_OK) == 0;

		free(p);
		if (!there)
			break;
		n_chunks++;
	}
	cr_assert_gt(n_chunks, 1);
	alerr_clear(&e);
	cr_assert_eq(volume_chunks_open(&c, img, n_chunks, &big, &e), 0, "%s", e.message);
	cr_assert_eq(unpack_new(&u, volume_chunks_read, c, &ul, &e), 0, "%s", e.message);
	for (i = 0; i < 3; i++) {
		uint64_t off = 0;
		ssize_t n;

		cr_assert_eq(unpack_next(u, &name, &size, &e), 1, "%s", e.message);
		cr_assert_str_eq(name, names[i]);
		cr_assert_eq(size, sizes[i]);
		while ((n = unpack_read(u, buf, MiB, &e)) > 0) {
			if (i == 1)
				cr_assert_eq(memcmp(buf, seg0 + off, (size_t)n), 0);
			off += (uint64_t)n;
		}
		cr_assert_eq(n, 0, "%s", e.message);
		cr_assert_eq(off, sizes[i]);
	}
	cr_assert_eq(unpack_next(u, &name, &size, &e), 0, "%s", e.message);
	unpack_free(u);
	volume_chunks_close(c);
	/* One chunk short: the stream ends early, cleanly refused. */
	alerr_clear(&e);
	cr_assert_eq(volume_chunks_open(&c, img, n_chunks - 1, &big, &e), 0);
	cr_assert_eq(unpack_new(&u, volume_chunks_read, c, &ul, &e), 0, "%s", e.message);
	{
		int r;

		while ((r = unpack_next(u, &name, &size, &e)) == 1) {
			ssize_t n;

			while ((n = unpack_read(u, buf, MiB, &e)) > 0)
				;
			if (n < 0) {
				r = (int)n;
				break;
			}
		}
		cr_assert_lt(r, 0);
		cr_assert_str_eq(e.reason, "payload.malformed", "%s", e.message);
	}
	unpack_free(u);
	volume_chunks_close(c);
	/* A chunk the volume does not have. */
	alerr_clear(&e);
	cr_assert_eq(volume_chunks_open(&c, img, 1, &big, &e), 0);
	volume_chunks_close(c);
	{
		struct volume_file *f = NULL;

		cr_assert_lt(volume_file_open(&f, img, "AIRLOCK/payload/999999.chunk", &big, &size,
		                              &e), 0);
		cr_assert_str_eq(e.reason, "bundle.file_missing");
	}
	free(chunks);
	free(img);
	free(b);
	free(seg0);
	free(buf);
}

/* ---- one pass over an image ---- */

/* Every file of the image read through one walk, in odd-sized reads,
 * equals the bundle's file; the entries are exactly the bundle's tree. */
Test(volume, walk_reads_every_file_in_one_pass)
{
	struct volume_info vi;
	char *b = make_bundle("walk", 3 * MiB + 5, 6);
	char *img = write_image(b, "walk.iso", 6, &vi);
	char **files = NULL;
	size_t n = bundle_files(b, &files), i, seen = 0, chunks = 0;
	struct volume_walk *w = NULL;
	const char *path;
	uint8_t buf[5000];
	uint64_t size;
	struct alerr e;
	int is_dir, rc;

	alerr_clear(&e);
	cr_assert_eq(volume_walk_open(&w, img, &big, &e), 0, "%s", e.message);
	while ((rc = volume_walk_next(w, &path, &is_dir, &size, &e)) == 1) {
		char *orig_path = harness_strdup_printf("%s/%s", b, path);
		size_t orig_len = 0, off = 0;
		char *orig;
		ssize_t k;

		seen++;
		cr_assert_eq(is_dir, is_dir_path(b, path), "%s", path);
		if (is_dir) {
			free(orig_path);
			continue;
		}
		/* The writer lays the chunks out in order: what volume_chunks relies on. */
		if (strncmp(path, "AIRLOCK/payload/", 16) == 0) {
			char want[32];

			snprintf(want, sizeof(want), "%06zu.chunk", chunks++);
			cr_assert_str_eq(path + 16, want);
		}
		orig = harness_read_file(orig_path, &orig_len);
		cr_assert_not_null(orig, "%s", orig_path);
		cr_assert_eq(size, orig_len, "%s", path);
		while ((k = volume_walk_read(w, buf, sizeof(buf), &e)) > 0) {
			cr_assert_leq(off + (size_t)k, orig_len);
			cr_assert_eq(memcmp(buf, orig + off, (size_t)k), 0, "%s at %zu", path, off);
			off += (size_t)k;
		}
		cr_assert_eq(k, 0, "%s", e.message);
		cr_assert_eq(off, orig_len, "%s", path);
		free(orig);
		free(orig_path);
	}
	cr_assert_eq(rc, 0, "%s [%s]", e.message, e.reason);
	cr_assert_eq(seen, n, "%zu entries walked, the tree has %zu", seen, n);
	cr_assert_eq(chunks, 4);
	volume_walk_close(w);
	for (i = 0; i < n; i++)
		free(files[i]);
	free(files);
	free(img);
	free(b);
}

Test(volume, walk_skips_the_files_not_read)
{
	struct volume_info vi;
	char *b = make_bundle("walkskip", 3 * MiB + 5, 6);
	char *img = write_image(b, "walkskip.iso", 6, &vi);
	char *orig_path = harness_strdup_printf("%s/AIRLOCK/payload/000002.chunk", b);
	size_t orig_len = 0, off = 0;
	char *orig = harness_read_file(orig_path, &orig_len);
	struct volume_walk *w = NULL;
	const char *path;
	uint8_t buf[65536];
	uint64_t size;
	struct alerr e;
	int is_dir, rc, found = 0;
	ssize_t k;

	alerr_clear(&e);
	cr_assert_eq(volume_walk_open(&w, img, &big, &e), 0, "%s", e.message);
	while ((rc = volume_walk_next(w, &path, &is_dir, &size, &e)) == 1) {
		if (strcmp(path, "AIRLOCK/payload/000001.chunk") == 0) {
			/* a part only: the rest is skipped */
			cr_assert_gt(volume_walk_read(w, buf, 100, &e), 0);
			continue;
		}
		if (strcmp(path, "AIRLOCK/payload/000002.chunk") != 0)
			continue;
		found = 1;
		while ((k = volume_walk_read(w, buf, sizeof(buf), &e)) > 0) {
			cr_assert_eq(memcmp(buf, orig + off, (size_t)k), 0);
			off += (size_t)k;
		}
		cr_assert_eq(k, 0, "%s", e.message);
	}
	cr_assert_eq(rc, 0, "%s", e.message);
	cr_assert(found);
	cr_assert_eq(off, orig_len);
	/* At the end, nothing more to read. */
	cr_assert_eq(volume_walk_read(w, buf, sizeof(buf), &e), 0);
	volume_walk_close(w);
	free(orig);
	free(orig_path);
	free(img);
	free(b);
}

Test(volume, walk_refuses_what_list_refuses)
{
	char *img = forge_image("walkextra", "echo hi > AIRLOCK/payload/evil.sh", "-R");
	struct volume_walk *w = NULL;
	const char *path;
	uint64_t size;
	struct alerr e;
	int is_dir, rc;

	alerr_clear(&e);
	cr_assert_eq(volume_walk_open(&w, img, &big, &e), 0, "%s", e.message);
	while ((rc = volume_walk_next(w, &path, &is_dir, &size, &e)) == 1)
		;
	cr_assert_lt(rc, 0);
	cr_assert_str_eq(e.reason, "volume.entry_name", "%s", e.message);
	/* and keeps refusing */
	alerr_clear(&e);
	cr_assert_lt(volume_walk_next(w, &path, &is_dir, &size, &e), 0);
	cr_assert_str_eq(e.reason, "volume.entry_name");
	volume_walk_close(w);
	volume_walk_close(NULL);
	free(img);
}

/* All n_chunks chunks of img streamed by volume_chunks_read into a new
 * buffer (*len bytes); the last read's result is returned. */
static ssize_t stream_chunks(const char *img, uint64_t n_chunks, uint8_t **data, size_t *len,
                             struct alerr *e)
{
	struct volume_chunks *c = NULL;
	size_t cap = 8 * MiB;
	ssize_t k;

	*data = malloc(cap);
	*len = 0;
	cr_assert_eq(volume_chunks_open(&c, img, n_chunks, &big, e), 0, "%s", e->message);
	while ((k = volume_chunks_read(c, *data + *len, 7777, e)) > 0) {
		*len += (size_t)k;
		cr_assert_leq(*len + 7777, cap);
	}
	volume_chunks_close(c);
	return k;
}

/* Another tool's layout: chunk 2, then 1, then MANIFEST, then 0 on the
 * volume. The stream is still the chunks in name order. */
Test(volume, chunks_laid_out_in_another_order_stream_in_order)
{
	char *b = make_bundle("sorted", 2 * MiB + 7, 1);
	char *img = scratch_path("sorted.iso");
	char *payload = harness_strdup_printf("%s.payload", b);
	char *cmd = harness_strdup_printf(
		"cd '%s' && xorriso -as mkisofs -R --sort-weight 10 /AIRLOCK/payload/000002.chunk "
		"--sort-weight 5 /AIRLOCK/payload/000001.chunk -V AIRLOCK_1 -o '%s' . 2>&1", b, img);
	const char *argv[] = { "sh", "-c", cmd, NULL };
	size_t want_len = 0, len = 0;
	char *want = harness_read_file(payload, &want_len);
	struct volume_walk *w = NULL;
	const char *path;
	uint8_t *data = NULL;
	uint64_t size;
	struct alerr e;
	int is_dir;

	free(run_ok(argv));

	/* the layout is the one asked for */
	alerr_clear(&e);
	cr_assert_eq(volume_walk_open(&w, img, &big, &e), 0, "%s", e.message);
	while (volume_walk_next(w, &path, &is_dir, &size, &e) == 1 && is_dir)
		;
	cr_assert_str_eq(path, "AIRLOCK/payload/000002.chunk");
	volume_walk_close(w);

	cr_assert_not_null(want);
	cr_assert_eq(stream_chunks(img, 3, &data, &len, &e), 0, "%s [%s]", e.message, e.reason);
	cr_assert_eq(len, want_len);
	cr_assert_eq(memcmp(data, want, len), 0, "the chunks are not streamed in order");
	free(data);
	free(want);
	free(payload);
	free(cmd);
	free(img);
	free(b);
}

Test(volume, a_chunk_the_volume_lacks_ends_the_stream_with_file_missing)
{
	struct volume_info vi;
	char *b = make_bundle("chunkgone", 2 * MiB + 1, 6);
	char *img = write_image(b, "chunkgone.iso", 6, &vi);
	uint8_t *data = NULL;
	size_t len = 0;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(stream_chunks(img, 4, &data, &len, &e), 0);
	cr_assert_str_eq(e.reason, "bundle.file_missing", "%s", e.message);
	cr_assert_not_null(strstr(e.message, "AIRLOCK/payload/000003.chunk"), "%s", e.message);
	cr_assert_eq(len, 2 * MiB + 1, "the three chunks there were streamed first");
	free(data);
	free(img);
	free(b);
}
