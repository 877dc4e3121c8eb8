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
