/* quarantine_copy: one sequential read of an image file or a block device
 * into a new 0700 directory holding a 0600 image.iso, hashed as copied,
 * and every refusal before or during the copy (catalogue 33, 35, 36, 39). */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerr.h"
#include "bounds.h"
#include "digest.h"
#include "harness.h"
#include "harness_loop.h"
#include "quarantine.h"
#include "volume.h"

#define CREATED INT64_C(1764335671)
#define MiB (1024u * 1024u)
#define FPR "0123456789ABCDEF0123456789ABCDEF01234567"

static void init(void)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(digest_library_init(&e), 0, "%s", e.message);
}

/* Paths a test makes, freed after it. */
static char *owned[64];
static size_t n_owned;

static char *own(char *p)
{
	if (n_owned < sizeof(owned) / sizeof(owned[0]))
		owned[n_owned++] = p;
	return p;
}

static void fini(void)
{
	while (n_owned > 0)
		free(owned[--n_owned]);
}

TestSuite(quarantine, .init = init, .fini = fini);

static void put(const char *path, const void *data, size_t len)
{
	harness_write_file(path, data, len);
}

/* A volume made by the real writer from a section 1 tree (the file
 * contents need not be a valid bundle here). Returns the image path. */
static char *make_image(const char *name, size_t payload, uint64_t sequence,
                        struct volume_info *vi)
{
	char *b = harness_strdup_printf("%s/%s.bundle", harness_scratch(), name);
	char *img = harness_strdup_printf("%s/%s.iso", harness_scratch(), name);
	char *p;
	unsigned char *data = malloc(payload);
	struct alerr e;
	size_t i;
	int fd;

	cr_assert_not_null(data);
	for (i = 0; i < payload; i++)
		data[i] = (unsigned char)(i * 131u + i / 4096u);
	cr_assert_eq(mkdir(b, 0755), 0);
	p = harness_strdup_printf("%s/AIRLOCK", b);
	cr_assert_eq(mkdir(p, 0755), 0);
	free(p);
	p = harness_strdup_printf("%s/AIRLOCK/SIGNATURES", b);
	cr_assert_eq(mkdir(p, 0755), 0);
	free(p);
	p = harness_strdup_printf("%s/AIRLOCK/payload", b);
	cr_assert_eq(mkdir(p, 0755), 0);
	free(p);
	p = harness_strdup_printf("%s/AIRLOCK/MANIFEST", b);
	put(p, "not checked here\n", 17);
	free(p);
	p = harness_strdup_printf("%s/AIRLOCK/SIGNATURES/%s.sig", b, FPR);
	put(p, "sig", 3);
	free(p);
	p = harness_strdup_printf("%s/AIRLOCK/payload/000000.chunk", b);
	put(p, data, payload);
	free(p);
	free(data);
	fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	alerr_clear(&e);
	cr_assert_eq(volume_write(b, fd, sequence, CREATED, NULL, NULL, vi, &e), 0, "%s [%s]",
	             e.message, e.reason);
	close(fd);
	free(b);
	return own(img);
}

static size_t dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static char *qdir(const char *name)
{
	return own(harness_strdup_printf("%s/%s", harness_scratch(), name));
}

static void append_junk(const char *path, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	char junk[4096];

	memset(junk, 0xA5, sizeof(junk));
	cr_assert_geq(fd, 0);
	while (n > 0) {
		size_t k = n < sizeof(junk) ? n : sizeof(junk);

		cr_assert_eq(write(fd, junk, k), (ssize_t)k);
		n -= k;
	}
	close(fd);
}

static void expect_refused(const char *src, const struct quarantine_policy *p,
                           enum alerr_class cls, const char *reason, const char *part)
{
	struct quarantine_result res;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(quarantine_copy(src, p, NULL, NULL, &res, &e), 0);
	cr_assert_str_eq(e.reason, reason, "%s", e.message);
	cr_assert_eq(e.cls, cls, "%s: class %d", e.message, e.cls);
	if (part)
		cr_assert_not_null(strstr(e.message, part), "%s", e.message);
	cr_assert_eq(dir_entries(p->dir), 0, "something was left in %s", p->dir);
}

Test(quarantine, copies_exactly_the_declared_volume_of_an_image_file)
{
	struct volume_info vi;
	char *img = make_image("file", 3 * MiB + 123, 7, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;
	char hex[65], *cmd, *out = NULL;
	struct stat st;
	struct alerr e;

	append_junk(img, MiB + 5);  /* bytes past the volume are never copied */
	alerr_clear(&e);
	cr_assert_eq(quarantine_copy(img, &p, NULL, NULL, &res, &e), 0, "%s [%s]", e.message,
	             e.reason);
	cr_assert_eq(res.bytes, vi.bytes);
	cr_assert(digest_equal(res.sha256, vi.sha256));
	cr_assert_str_eq(res.volume_id, "AIRLOCK_7");
	cr_assert_eq(strncmp(res.dir, p.dir, strlen(p.dir)), 0);
	cr_assert_eq(stat(res.image, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, vi.bytes);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(stat(res.dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	cr_assert_eq(stat(p.dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "the policy directory is made 0700");
	/* The same hash as sha256sum of the first N bytes. */
	digest_hex(hex, res.sha256);
	cmd = harness_strdup_printf("head -c %" PRIu64 " '%s' | sha256sum", vi.bytes, img);
	{
		const char *argv[] = { "sh", "-c", cmd, NULL };

		cr_assert_eq(harness_run(argv, NULL, &out, NULL), 0);
	}
	cr_assert_eq(strncmp(out, hex, 64), 0, "sha256sum %s, quarantine %s", out, hex);
	free(out);
	free(cmd);
	cmd = harness_strdup_printf("head -c %" PRIu64 " '%s' | cmp - '%s'", vi.bytes, img,
	                            res.image);
	{
		const char *argv[] = { "sh", "-c", cmd, NULL };

		cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0, "the copy differs");
	}
	free(cmd);
}

static int count_progress(void *ctx, uint64_t done, uint64_t total)
{
	uint64_t *last = ctx;

	cr_assert_leq(done, total);
	cr_assert_gt(done, *last);
	*last = done;
	return 0;
}

Test(quarantine, progress_reaches_the_volume_size)
{
	struct volume_info vi;
	char *img = make_image("progress", 2 * MiB, 3, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;
	uint64_t last = 0;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(quarantine_copy(img, &p, count_progress, &last, &res, &e), 0, "%s",
	             e.message);
	cr_assert_eq(last, vi.bytes);
}

static int cancel_progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)ctx;
	(void)total;
	return done > 0;
}

Test(quarantine, a_cancelled_copy_leaves_nothing)
{
	struct volume_info vi;
	char *img = make_image("cancel", 2 * MiB, 3, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(quarantine_copy(img, &p, cancel_progress, NULL, &res, &e), 0);
	cr_assert_str_eq(e.reason, "quarantine.cancelled");
	cr_assert_eq(dir_entries(p.dir), 0);
}

struct dead_runs {
	char run[4][QUARANTINE_RUN_LEN + 1];
	size_t n;
};

static void on_dead(void *ctx, const char *run)
{
	struct dead_runs *d = ctx;

	cr_assert_lt(d->n, 4);
	snprintf(d->run[d->n++], sizeof(d->run[0]), "%s", run);
}

#define RUN_LIVE "0b7c1a2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d"
#define RUN_DEAD "1c8d2b3f-4e5a-4b6c-9d7e-8f9a0b1c2d3e"

/* A copy's directory stays locked until quarantine_release: a sweep from
 * another import leaves it; once released (its import gone) a sweep
 * removes it, and a dead import's partial copy, but not rejected/. Each
 * removed directory named after its run reports that run. */
Test(quarantine, sweep_removes_only_what_no_live_import_holds)
{
	struct volume_info vi;
	char *img = make_image("sweep", 2 * MiB, 3, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30,
	                               .run = RUN_LIVE };
	struct quarantine_result res;
	struct dead_runs d = { .n = 0 };
	char *dead = own(harness_strdup_printf("%s/import-" RUN_DEAD "-a1B2c3", p.dir));
	char *older = own(harness_strdup_printf("%s/import-dead01", p.dir));
	char *part = own(harness_strdup_printf("%s/image.iso", dead));
	char *rej = own(harness_strdup_printf("%s/rejected/import-old001", p.dir));
	char *other = own(harness_strdup_printf("%s/notes", p.dir));
	struct stat st;
	size_t removed = 99;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(quarantine_copy(img, &p, NULL, NULL, &res, &e), 0, "%s", e.message);
	cr_assert_geq(res.lock_fd, 0);
	cr_assert(strstr(res.dir, "/import-" RUN_LIVE "-") != NULL, "%s", res.dir);
	/* what a SIGKILLed import leaves: a directory and a partial image */
	cr_assert_eq(mkdir(dead, 0700), 0);
	put(part, "partial", 7);
	cr_assert_eq(mkdir(older, 0700), 0);    /* named without its run */
	cr_assert_eq(mkdir(own(harness_strdup_printf("%s/rejected", p.dir)), 0700), 0);
	cr_assert_eq(mkdir(rej, 0700), 0);
	put(other, "x", 1);
	cr_assert_eq(quarantine_sweep(p.dir, &removed, on_dead, &d, &e), 0, "%s", e.message);
	cr_assert_eq(removed, 2);
	cr_assert_neq(stat(dead, &st), 0, "the dead import's copy was left");
	cr_assert_neq(stat(older, &st), 0, "the dead import's copy was left");
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.run[0], RUN_DEAD);
	cr_assert_eq(stat(res.image, &st), 0, "a live import's copy was removed");
	cr_assert_eq(stat(rej, &st), 0, "a refused copy was removed");
	cr_assert_eq(stat(other, &st), 0, "a file not an import's was removed");
	quarantine_release(&res);
	cr_assert_eq(res.lock_fd, -1);
	cr_assert_eq(quarantine_sweep(p.dir, &removed, on_dead, &d, &e), 0, "%s", e.message);
	cr_assert_eq(removed, 1);
	cr_assert_eq(d.n, 2);
	cr_assert_str_eq(d.run[1], RUN_LIVE);
	cr_assert_neq(stat(res.dir, &st), 0, "a released copy was left");
	/* no quarantine directory yet: nothing to do */
	cr_assert_eq(quarantine_sweep(own(harness_strdup_printf("%s/none", p.dir)), &removed,
	                              NULL, NULL, &e), 0);
	cr_assert_eq(removed, 0);
}

/* A run is alive while its copy's directory is locked by its import. */
Test(quarantine, run_alive_while_its_copy_is_locked)
{
	struct volume_info vi;
	char *img = make_image("alive", 2 * MiB, 3, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30,
	                               .run = RUN_LIVE };
	struct quarantine_result res;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(quarantine_run_alive(p.dir, RUN_LIVE), 0, "no copy yet");
	cr_assert_eq(quarantine_copy(img, &p, NULL, NULL, &res, &e), 0, "%s", e.message);
	cr_assert_eq(quarantine_run_alive(p.dir, RUN_LIVE), 1);
	cr_assert_eq(quarantine_run_alive(p.dir, RUN_DEAD), 0, "another run");
	cr_assert_eq(quarantine_run_alive(p.dir, "import"), 0, "not a run id");
	cr_assert_eq(quarantine_run_alive(p.dir, NULL), 0);
	quarantine_release(&res);
	cr_assert_eq(quarantine_run_alive(p.dir, RUN_LIVE), 0, "released: its import is gone");
	cr_assert_eq(quarantine_run_alive(own(harness_strdup_printf("%s/none", p.dir)),
	                                  RUN_LIVE), 0);
}

/* A run id that is not one is refused before anything is made. */
Test(quarantine, malformed_run_id_refused)
{
	struct volume_info vi;
	char *img = make_image("badrun", 2 * MiB, 3, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30,
	                               .run = "../../etc/x" };
	struct quarantine_result res;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(quarantine_copy(img, &p, NULL, NULL, &res, &e), 0);
	cr_assert_str_eq(e.reason, "quarantine.policy", "%s", e.message);
	p.run = RUN_LIVE "0";
	cr_assert_lt(quarantine_copy(img, &p, NULL, NULL, &res, &e), 0);
}

Test(quarantine, copies_from_a_read_only_loop_device, .timeout = 120)
{
	struct volume_info vi;
	char *img = make_image("loop", 3 * MiB, 42, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;
	char *dev = NULL;
	struct alerr e;

	harness_loop_require();
	append_junk(img, 512 * 1024);
	cr_assert_eq(harness_loop_attach(img, 1, &dev), 0);
	alerr_clear(&e);
	cr_assert_eq(quarantine_copy(dev, &p, NULL, NULL, &res, &e), 0, "%s [%s]", e.message,
	             e.reason);
	cr_assert_eq(res.bytes, vi.bytes);
	cr_assert(digest_equal(res.sha256, vi.sha256));
	cr_assert_str_eq(res.volume_id, "AIRLOCK_42");
	harness_loop_detach(dev);
	free(dev);
}

Test(quarantine, a_device_held_exclusively_is_busy, .timeout = 120)
{
	struct volume_info vi;
	char *img = make_image("busy", MiB, 4, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	char *dev = NULL;
	int fd;

	harness_loop_require();
	cr_assert_eq(harness_loop_attach(img, 1, &dev), 0);
	fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	expect_refused(dev, &p, ALERR_TEMPFAIL, "media.busy", "in use");
	close(fd);
	harness_loop_detach(dev);
	free(dev);
}

Test(quarantine, a_truncated_image_is_refused_before_anything_is_copied)
{
	struct volume_info vi;
	char *img = make_image("trunc", 3 * MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };

	cr_assert_eq(truncate(img, (off_t)(vi.bytes - 2048)), 0);
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	expect_refused(img, &p, ALERR_REJECT, "volume.truncated", "the media holds");
}

Test(quarantine, random_bytes_are_left_alone)
{
	char *img = own(harness_strdup_printf("%s/random.img", harness_scratch()));
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	unsigned char buf[256 * 1024];
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)((i * 2654435761u) >> 13);
	put(img, buf, sizeof(buf));
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	expect_refused(img, &p, ALERR_NOINPUT, "media.not_airlock", "not an ISO 9660 volume");
}

Test(quarantine, an_ext4_image_is_left_alone)
{
	char *img = own(harness_strdup_printf("%s/ext4.img", harness_scratch()));
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	const char *argv[] = { "mkfs.ext4", "-q", "-F", img, "4M", NULL };

	cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0);
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	expect_refused(img, &p, ALERR_NOINPUT, "media.not_airlock", NULL);
}

Test(quarantine, an_iso_without_an_airlock_label_is_left_alone)
{
	char *src = own(harness_mkdir("plain", 0755));
	char *img = own(harness_strdup_printf("%s/plain.iso", harness_scratch()));
	char *f = own(harness_strdup_printf("%s/hello", src));
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	const char *argv[] = { "xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "BACKUP_1",
	                       "-o", img, src, NULL };

	put(f, "hi\n", 3);
	cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0);
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	expect_refused(img, &p, ALERR_NOINPUT, "media.not_airlock", "BACKUP_1");
}

Test(quarantine, a_volume_over_the_cap_is_refused)
{
	struct volume_info vi;
	char *img = make_image("big", 2 * MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = MiB };

	cr_assert_eq(mkdir(p.dir, 0700), 0);
	expect_refused(img, &p, ALERR_REJECT, "volume.too_large", "over the cap");
}

/* ---- evidence of a refusal made before the copy exists ---- */

/* quarantine_copy refused src with reason: res gets the result. */
static void refuse(const char *src, const struct quarantine_policy *p, const char *reason,
                   struct quarantine_result *res)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(quarantine_copy(src, p, NULL, NULL, res, &e), 0);
	cr_assert_str_eq(e.reason, reason, "%s", e.message);
	cr_assert_eq(e.cls, ALERR_REJECT, "%s: class %d", e.message, e.cls);
	cr_assert_eq(dir_entries(p->dir), 0, "something was left in %s", p->dir);
}

/* res's evidence is the SHA-256 of the first n bytes of path. */
static void expect_evidence(const struct quarantine_result *res, const char *path, uint64_t n)
{
	size_t len = 0;
	char *data = harness_read_file(path, &len);
	uint8_t sum[32];

	cr_assert(res->have_read, "no evidence of what was read");
	cr_assert_eq(res->read_bytes, n, "read_bytes %" PRIu64 ", expected %" PRIu64,
	             res->read_bytes, n);
	cr_assert_geq(len, n);
	cr_assert_eq(digest_buffer(data, (size_t)n, sum), 0);
	cr_assert(digest_equal(sum, res->read_sha256), "read_sha256 is not of the first %"
	          PRIu64 " bytes", n);
	free(data);
}

static uint64_t size_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

Test(quarantine, a_truncated_image_leaves_the_hash_of_the_whole_file)
{
	struct volume_info vi;
	char *img = make_image("trunc_ev", 3 * MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;

	cr_assert_eq(truncate(img, (off_t)(vi.bytes - 2048)), 0);
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	refuse(img, &p, "volume.truncated", &res);
	expect_evidence(&res, img, vi.bytes - 2048);
	cr_assert_str_eq(res.volume_id, "AIRLOCK_5");
}

Test(quarantine, an_image_over_the_cap_leaves_the_hash_of_the_probed_bytes)
{
	struct volume_info vi;
	char *img = make_image("big_ev", 2 * MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = MiB };
	struct quarantine_result res;

	cr_assert_gt(size_of(img), p.max_bytes);
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	refuse(img, &p, "volume.too_large", &res);
	expect_evidence(&res, img, VOLUME_PROBE_BYTES);
}

/* Volume Space Size (both-endian, PVD bytes 80-87) set to blocks. */
static void set_volume_blocks(const char *img, uint32_t blocks)
{
	uint8_t f[8] = {
		(uint8_t)blocks, (uint8_t)(blocks >> 8), (uint8_t)(blocks >> 16),
		(uint8_t)(blocks >> 24), (uint8_t)(blocks >> 24), (uint8_t)(blocks >> 16),
		(uint8_t)(blocks >> 8), (uint8_t)blocks,
	};
	int fd = open(img, O_WRONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, f, sizeof(f), 16 * 2048 + 80), (ssize_t)sizeof(f));
	close(fd);
}

Test(quarantine, a_small_image_declaring_a_volume_over_the_cap_is_hashed_whole)
{
	struct volume_info vi;
	char *img = make_image("claims_ev", MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = 4 * MiB };
	struct quarantine_result res;

	set_volume_blocks(img, 1000000);   /* about 2 GB */
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	refuse(img, &p, "volume.too_large", &res);
	expect_evidence(&res, img, size_of(img));
}

Test(quarantine, a_joliet_volume_leaves_the_hash_of_the_whole_file)
{
	char *src = own(harness_mkdir("joliet", 0755));
	char *img = own(harness_strdup_printf("%s/joliet.iso", harness_scratch()));
	char *f = own(harness_strdup_printf("%s/hello", src));
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;
	const char *argv[] = { "xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V",
	                       "AIRLOCK_3", "-o", img, src, NULL };

	put(f, "hi\n", 3);
	cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0);
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	refuse(img, &p, "volume.malformed", &res);
	expect_evidence(&res, img, size_of(img));
}

Test(quarantine, a_truncated_device_leaves_the_hash_of_the_probed_bytes, .timeout = 120)
{
	struct volume_info vi;
	char *img = make_image("trunc_dev", 3 * MiB, 6, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;
	char *dev = NULL;

	harness_loop_require();
	cr_assert_eq(truncate(img, (off_t)(vi.bytes - 2048)), 0);
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	cr_assert_eq(harness_loop_attach(img, 1, &dev), 0);
	refuse(dev, &p, "volume.truncated", &res);
	harness_loop_detach(dev);
	free(dev);
	/* A medium is read no further than its descriptors. */
	expect_evidence(&res, img, VOLUME_PROBE_BYTES);
}

Test(quarantine, a_copy_or_a_volume_left_alone_carries_no_read_evidence)
{
	struct volume_info vi;
	char *img = make_image("noev", MiB, 5, &vi);
	char *junk = own(harness_strdup_printf("%s/junk.img", harness_scratch()));
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;
	unsigned char zero[128 * 1024];
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(quarantine_copy(img, &p, NULL, NULL, &res, &e), 0, "%s", e.message);
	cr_assert_eq(res.have_read, 0);
	memset(zero, 0, sizeof(zero));
	put(junk, zero, sizeof(zero));
	alerr_clear(&e);
	cr_assert_lt(quarantine_copy(junk, &p, NULL, NULL, &res, &e), 0);
	cr_assert_str_eq(e.reason, "media.not_airlock");
	cr_assert_eq(res.have_read, 0);
}

Test(quarantine, a_symlinked_image_is_refused)
{
	struct volume_info vi;
	char *img = make_image("target", MiB, 5, &vi);
	char *link = own(harness_strdup_printf("%s/link.iso", harness_scratch()));
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };

	cr_assert_eq(symlink(img, link), 0);
	cr_assert_eq(mkdir(p.dir, 0700), 0);
	expect_refused(link, &p, ALERR_NOINPUT, "media.not_block", "symbolic link");
}

Test(quarantine, a_missing_source_is_not_found)
{
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };

	cr_assert_eq(mkdir(p.dir, 0700), 0);
	expect_refused("/nonexistent/airlock.iso", &p, ALERR_NOINPUT, "media.not_found", NULL);
}

Test(quarantine, an_unsafe_policy_directory_is_refused)
{
	struct volume_info vi;
	char *img = make_image("unsafe", MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	char *link = qdir("qlink-unsafe");
	struct quarantine_result res;
	struct alerr e;

	cr_assert_eq(mkdir(p.dir, 0700), 0);
	cr_assert_eq(chmod(p.dir, 0770), 0);
	expect_refused(img, &p, ALERR_CANTCREAT, "quarantine.dir", "writable by group");
	cr_assert_eq(chmod(p.dir, 0700), 0);
	cr_assert_eq(symlink(p.dir, link), 0);
	p.dir = link;
	alerr_clear(&e);
	cr_assert_lt(quarantine_copy(img, &p, NULL, NULL, &res, &e), 0);
	cr_assert_str_eq(e.reason, "quarantine.dir");
	cr_assert_not_null(strstr(e.message, "symbolic link"), "%s", e.message);
	cr_assert_eq(alerr_exit_code(e.cls), 73);
}

Test(quarantine, a_relative_directory_or_no_cap_is_a_config_error)
{
	struct quarantine_policy p = { .dir = "relative", .max_bytes = 1 };
	struct quarantine_result res;
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(quarantine_copy("/dev/null", &p, NULL, NULL, &res, &e), 0);
	cr_assert_str_eq(e.reason, "quarantine.policy");
	cr_assert_eq(e.cls, ALERR_CONFIG);
}

/* A small tmpfs on dir, in this test process's own mount namespace. */
static void private_tmpfs(const char *dir, const char *size)
{
	char *opts = harness_strdup_printf("size=%s,mode=0700", size);

	if (geteuid() != 0) {
		if (getenv("CI"))
			cr_assert_fail("CI runs as root: a tmpfs is needed");
		cr_skip_test("needs root to mount a tmpfs");
	}
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare: %s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(mount("airlock-q", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts), 0,
	             "mount tmpfs: %s", strerror(errno));
	free(opts);
}

Test(quarantine, too_little_free_space_is_refused_before_the_copy)
{
	struct volume_info vi;
	char *img = make_image("full", 3 * MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };

	private_tmpfs(p.dir, "1m");
	expect_refused(img, &p, ALERR_CANTCREAT, "quarantine.full", "bytes free");
	cr_assert_eq(alerr_exit_code(ALERR_CANTCREAT), 73);
}

/* Fill the quarantine filesystem once the copy has started. */
static int fill_progress(void *ctx, uint64_t done, uint64_t total)
{
	const char *path = ctx;
	static int filled;
	char buf[65536];
	int fd;

	(void)done;
	(void)total;
	if (filled++)
		return 0;
	memset(buf, 0, sizeof(buf));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return 0;
}

Test(quarantine, a_filesystem_full_during_the_copy_leaves_no_partial_file)
{
	struct volume_info vi;
	char *img = make_image("enospc", 3 * MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	char *filler = own(harness_strdup_printf("%s/filler", p.dir));
	struct quarantine_result res;
	struct alerr e;

	private_tmpfs(p.dir, "8m");
	alerr_clear(&e);
	cr_assert_lt(quarantine_copy(img, &p, fill_progress, filler, &res, &e), 0);
	cr_assert_str_eq(e.reason, "quarantine.full", "%s", e.message);
	cr_assert_eq(e.cls, ALERR_CANTCREAT);
	cr_assert_eq(alerr_exit_code(e.cls), 73);
	cr_assert_eq(unlink(filler), 0);
	cr_assert_eq(dir_entries(p.dir), 0, "a partial copy was left");
}

/* Catalogue 36: the media goes away part-way. This kernel may lack
 * device-mapper (no dm "error" target) and a loop device cannot be
 * detached while it is open, so the test shrinks the loop device under
 * the copy instead: after the first block, the backing file is cut to
 * 1 MiB and the loop capacity re-read, so the next reads find the end of
 * the media, as a stick pulled out does (EOF, EIO or ENODEV: all are
 * "media.read"). */
struct shrink {
	const char *backing;
	const char *dev;
	int done;
};

static int shrink_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct shrink *s = ctx;

	(void)done;
	(void)total;
	if (s->done++)
		return 0;
	cr_assert_eq(truncate(s->backing, (off_t)MiB), 0);
	{
		const char *argv[] = { "losetup", "--set-capacity", s->dev, NULL };

		cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0);
	}
	return 0;
}

Test(quarantine, media_removed_mid_copy_removes_the_partial_copy, .timeout = 120)
{
	struct volume_info vi;
	char *img = make_image("gone", 6 * MiB, 5, &vi);
	struct quarantine_policy p = { .dir = qdir(__func__), .max_bytes = UINT64_C(1) << 30 };
	struct quarantine_result res;
	struct shrink s = { .backing = img };
	char *dev = NULL;
	struct alerr e;
	int r;

	harness_loop_require();
	cr_assert_eq(harness_loop_attach(img, 1, &dev), 0);
	s.dev = dev;
	alerr_clear(&e);
	r = quarantine_copy(dev, &p, shrink_progress, &s, &res, &e);
	harness_loop_detach(dev);
	free(dev);
	s.dev = NULL;
	cr_assert_lt(r, 0);
	cr_assert_str_eq(e.reason, "media.read", "%s", e.message);
	cr_assert_eq(e.cls, ALERR_IOERR);
	cr_assert_eq(alerr_exit_code(e.cls), 74);
	cr_assert_not_null(strstr(e.message, "media removed"), "%s", e.message);
	cr_assert_eq(dir_entries(p.dir), 0, "a partial copy was left");
}

/* ---- through airlock-import: the custody entry and the kept copy ---- */

struct run {
	char *q, *log, *json, *err;
	int status;
};

/* airlock-import --verify-only --image img: no database is involved up to
 * the verify stage. */
static void import_image(const char *name, const char *img, const char *keyring, struct run *r)
{
	char *tool = own(harness_strdup_printf("%s/src/airlock-import", harness_builddir()));
	char *conf = own(harness_strdup_printf("%s/%s.conf", harness_scratch(), name));
	const char *argv[] = { tool, "--config", conf, "--image", img, "--verify-only", "--json",
	                       "--quiet", "--trust", FPR, "--threshold", "1", "--channel", "nvd",
	                       "--keyring", keyring, "--quarantine", NULL, "--custody-log", NULL,
	                       NULL };
	char *err = NULL;

	r->q = own(harness_strdup_printf("%s/%s.q", harness_scratch(), name));
	r->log = own(harness_strdup_printf("%s/%s.logdir/custody.log", harness_scratch(), name));
	argv[17] = r->q;
	argv[19] = r->log;
	put(conf, "", 0);
	r->status = harness_run(argv, NULL, &r->json, &err);
	r->err = own(err);
	own(r->json);
}

/* The log's line holding needle, or NULL. */
static char *log_line(const char *log, const char *needle)
{
	char *text = own(harness_read_file(log, NULL)), *p, *nl;

	cr_assert_not_null(text, "no custody log %s", log);
	for (p = text; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		cr_assert_not_null(nl);
		*nl = '\0';
		if (strstr(p, needle))
			return p;
	}
	return NULL;
}

Test(quarantine, the_custody_entry_of_a_truncated_image_carries_what_was_read)
{
	struct volume_info vi;
	char *img = make_image("trunc_log", 2 * MiB, 5, &vi);
	size_t len = 0;
	char *data, *line, *want, hex[65];
	uint8_t sum[32];
	struct run r;

	cr_assert_eq(truncate(img, (off_t)(vi.bytes - 4096)), 0);
	import_image("trunc_log", img, "/nonexistent-keyring", &r);
	cr_assert_eq(r.status, 65, "%s%s", r.json, r.err);
	cr_assert_not_null(strstr(r.json, "\"reason\":\"volume.truncated\""), "%s", r.json);
	line = log_line(r.log, "\"event\":\"media.quarantined\"");
	cr_assert_not_null(line, "no media.quarantined entry");
	cr_assert_not_null(strstr(line, "\"outcome\":\"refused\""), "%s", line);
	cr_assert_not_null(strstr(line, "\"image_sha256\":null"), "%s", line);
	data = own(harness_read_file(img, &len));
	cr_assert_eq(len, vi.bytes - 4096);
	cr_assert_eq(digest_buffer(data, len, sum), 0);
	digest_hex(hex, sum);
	want = own(harness_strdup_printf("\"read_bytes\":%zu,\"read_sha256\":\"%s\"", len, hex));
	cr_assert_not_null(strstr(line, want), "%s not in %s", want, line);
}

Test(quarantine, a_configuration_error_after_the_copy_keeps_it_for_review)
{
	struct volume_info vi;
	char *img = make_image("conf_kept", MiB, 5, &vi);
	char *kept, *line, *want, *keyring, hex[65];
	struct stat st;
	struct run r;

	/* Catalogue 17: a keyring writable by others, found once the copy exists. */
	keyring = own(harness_mkdir("conf_kept.keyring", 0700));
	cr_assert_eq(chmod(keyring, 0777), 0);
	import_image("conf_kept", img, keyring, &r);
	cr_assert_eq(r.status, 78, "%s%s", r.json, r.err);
	cr_assert_not_null(strstr(r.json, "\"reason\":\"signature.keyring\""), "%s", r.json);
	kept = own(harness_strdup_printf("\"kept\":\"%s\\/rejected\\/import-", r.q));
	if (!strstr(r.json, kept)) {
		free(owned[--n_owned]);
		kept = own(harness_strdup_printf("\"kept\":\"%s/rejected/import-", r.q));
	}
	cr_assert_not_null(strstr(r.json, kept), "%s not in %s", kept, r.json);
	cr_assert_eq(dir_entries(r.q), 1, "only rejected/ stays in the quarantine");
	kept = own(harness_strdup_printf("%s/rejected", r.q));
	cr_assert_eq(dir_entries(kept), 1);
	{
		const char *argv[] = { "sh", "-c", "cat \"$0\"/import-*/image.iso | sha256sum", kept,
		                       NULL };
		char *out = NULL;

		cr_assert_eq(harness_run(argv, NULL, &out, NULL), 0);
		digest_hex(hex, vi.sha256);
		cr_assert_eq(strncmp(out, hex, 64), 0, "the kept copy is not the volume");
		free(out);
	}
	cr_assert_eq(stat(kept, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	/* The refusal's entry names the copy's hash, as for a rejected bundle. */
	line = log_line(r.log, "\"event\":\"bundle.rejected\"");
	cr_assert_not_null(line, "no bundle.rejected entry");
	cr_assert_not_null(strstr(line, "\"reason\":\"signature.keyring\""), "%s", line);
	want = own(harness_strdup_printf("\"image_sha256\":\"%s\"", hex));
	cr_assert_not_null(strstr(line, want), "%s not in %s", want, line);
}
