/* The media module on real loop devices: inspect, target checks, the
 * signature list compared with wipefs, the wipe, identify. Runs without
 * udevd (properties from sysfs) and on kernels that do not read partition
 * tables themselves (partx adds the partitions) or have a static /dev
 * (partition nodes made in the scratch directory). */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "alerr.h"
#include "harness.h"
#include "harness_loop.h"
#include "media.h"

#define MIB (UINT64_C(1) << 20)
#define MAX_SIGS 64

/* ------------------------------------------------------------------ */
/* Helpers */

/* A new sparse image of size bytes in the scratch directory. */
static char *new_image(const char *tag, uint64_t size)
{
	char *path = harness_strdup_printf("%s/%s.XXXXXX.img", harness_scratch(), tag);
	int fd;

	fd = mkstemps(path, 4);
	cr_assert_geq(fd, 0, "mkstemps %s: %s", path, strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	cr_assert_eq(close(fd), 0);
	return path;
}

/* Run argv; its exit status, stdout in *out (malloc'd) when out. */
static int run(const char *const argv[], char **out)
{
	char *o = NULL, *err = NULL;
	int rc;

	rc = harness_run(argv, NULL, &o, &err);
	if (rc != 0)
		fprintf(stderr, "%s: exit %d\n%s%s", argv[0], rc, o ? o : "", err ? err : "");
	free(err);
	if (out)
		*out = o;
	else
		free(o);
	return rc;
}

static void run_ok(const char *const argv[])
{
	int rc = run(argv, NULL);

	cr_assert_eq(rc, 0, "%s %s: exit %d (see stderr)", argv[0],
	             argv[1] ? argv[1] : "", rc);
}

static void sh_ok(const char *script, const char *arg)
{
	const char *argv[] = { "sh", "-c", script, "sh", arg, NULL };

	run_ok(argv);
}

static char *sha256(const char *path)
{
	const char *argv[] = { "sha256sum", path, NULL };
	char *out = NULL;

	cr_assert_eq(run(argv, &out), 0);
	cr_assert_geq(strlen(out), 64);
	out[64] = '\0';
	return out;
}

static dev_t read_devnum(const char *sysfile)
{
	unsigned int ma, mi;
	size_t len;
	char *s = harness_read_file(sysfile, &len);

	cr_assert_not_null(s, "%s: %s", sysfile, strerror(errno));
	cr_assert_eq(sscanf(s, "%u:%u", &ma, &mi), 2, "%s: '%s'", sysfile, s);
	free(s);
	return makedev(ma, mi);
}

/* A node for the block device behind sysdir: node when it is one (udev or
 * devtmpfs made it), else one made in the scratch directory (a static
 * /dev, no udevd). */
static char *block_node(const char *node, const char *sysdir)
{
	char *devfile = harness_strdup_printf("%s/dev", sysdir);
	dev_t want = read_devnum(devfile);
	const char *base = strrchr(node, '/') + 1;
	struct stat st;
	char *path;

	free(devfile);
	if (stat(node, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == want)
		return harness_strdup_printf("%s", node);
	path = harness_strdup_printf("%s/%s", harness_scratch(), base);
	(void)unlink(path);
	cr_assert_eq(mknod(path, S_IFBLK | 0600, want), 0, "mknod %s: %s", path,
	             strerror(errno));
	return path;
}

static char *part_sysdir(const char *dev, unsigned int n)
{
	return harness_strdup_printf("/sys/class/block/%sp%u", dev + 5, n);
}

/* Make the kernel show dev's partitions: partition scanning on (a kernel
 * with a parser for the table reads it then), and partx -a (BLKPG, from
 * libblkid's reading of the table) for a kernel built without one. */
static void loop_partitions(const char *dev, unsigned int nparts)
{
	struct loop_info64 li;
	char *sys;
	unsigned int i;
	int fd, tries;

	fd = open(dev, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", dev, strerror(errno));
	memset(&li, 0, sizeof(li));
	cr_assert_eq(ioctl(fd, LOOP_GET_STATUS64, &li), 0, "%s: %s", dev, strerror(errno));
	if (!(li.lo_flags & LO_FLAGS_PARTSCAN)) {
		li.lo_flags |= LO_FLAGS_PARTSCAN;
		cr_assert_eq(ioctl(fd, LOOP_SET_STATUS64, &li), 0,
		             "%s: partition scanning: %s", dev, strerror(errno));
	}
	close(fd);
	sys = part_sysdir(dev, nparts);
	if (access(sys, F_OK) != 0) {
		const char *argv[] = { "partx", "-a", dev, NULL };

		run_ok(argv);
	}
	free(sys);
	for (i = 1; i <= nparts; i++) {
		sys = part_sysdir(dev, i);
		for (tries = 0; tries < 50 && access(sys, F_OK) != 0; tries++)
			usleep(100 * 1000);
		cr_assert_eq(access(sys, F_OK), 0, "%s: no partition %u", dev, i);
		free(sys);
	}
}

/* A 40 MiB GPT disk on a loop device: partition 1 (16 MiB) ext4 labelled
 * AL_EXT4, partition 2 vfat labelled ALFAT (when with_fs). */
struct pdisk {
	char *image;
	char *dev;
	char *p[3];             /* partition nodes, [1] and [2] */
};

static void pdisk_make(struct pdisk *d, const char *tag, int with_fs)
{
	unsigned int i;

	memset(d, 0, sizeof(*d));
	d->image = new_image(tag, 40 * MIB);
	sh_ok("printf 'label: gpt\\n,16MiB\\n,\\n' | sfdisk -q \"$1\"", d->image);
	cr_assert_eq(harness_loop_attach(d->image, 0, &d->dev), 0);
	loop_partitions(d->dev, 2);
	for (i = 1; i <= 2; i++) {
		char *node = harness_strdup_printf("%sp%u", d->dev, i);
		char *sys = part_sysdir(d->dev, i);

		d->p[i] = block_node(node, sys);
		free(node);
		free(sys);
	}
	if (with_fs) {
		const char *ext4[] = { "mkfs.ext4", "-q", "-F", "-L", "AL_EXT4", d->p[1], NULL };
		const char *vfat[] = { "mkfs.vfat", "-n", "ALFAT", d->p[2], NULL };

		run_ok(ext4);
		run_ok(vfat);
	}
}

static void pdisk_free(struct pdisk *d)
{
	harness_loop_detach(d->dev);
	free(d->dev);
	free(d->image);
	free(d->p[1]);
	free(d->p[2]);
}

/* An 8 MiB loop device of zeros. */
static char *plain_loop(const char *tag, int read_only, char **image_out)
{
	char *image = new_image(tag, 8 * MIB), *dev;

	cr_assert_eq(harness_loop_attach(image, read_only, &dev), 0);
	if (image_out)
		*image_out = image;
	else
		free(image);
	return dev;
}

static void inspect_ok(const char *dev, struct media_info *info)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(media_inspect(dev, info, &e), 0, "%s: %s [%s]", dev, e.message, e.reason);
}

static void assert_refused(int r, const struct alerr *e, enum alerr_class cls,
                           const char *reason, const char *in_message)
{
	cr_assert_lt(r, 0, "accepted (expected %s)", reason);
	cr_assert_eq(e->errnum, r);
	cr_assert_str_eq(e->reason, reason, "reason %s (%s)", e->reason, e->message);
	cr_assert_eq(e->cls, cls, "class %s for %s", alerr_class_name(e->cls), e->reason);
	if (in_message)
		cr_assert_not_null(strstr(e->message, in_message), "'%s' not in '%s'",
		                   in_message, e->message);
	cr_assert_null(strchr(e->message, '\n'), "one line: %s", e->message);
}

/* Lines "DEV 0xOFFSET TYPE LABEL", sorted, for comparisons. */
struct siglist {
	size_t n;
	char line[MAX_SIGS][200];
};

static int collect(void *ctx, const struct media_signature *s)
{
	struct siglist *l = ctx;

	cr_assert_lt(l->n, MAX_SIGS);
	snprintf(l->line[l->n++], sizeof(l->line[0]), "%s 0x%" PRIx64 " %s %s",
	         s->dev, s->offset, s->type, s->label);
	cr_assert_gt(s->len, 0);
	cr_assert_neq(s->usage[0], '\0');
	return 0;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(a, b);
}

static char *siglist_join(struct siglist *l)
{
	size_t i, cap = 1, len = 0;
	char *s;

	qsort(l->line, l->n, sizeof(l->line[0]), cmp_line);
	for (i = 0; i < l->n; i++)
		cap += strlen(l->line[i]) + 1;
	s = malloc(cap);
	cr_assert_not_null(s);
	s[0] = '\0';
	for (i = 0; i < l->n; i++) {
		memcpy(s + len, l->line[i], strlen(l->line[i]));
		len += strlen(l->line[i]);
		s[len++] = '\n';
		s[len] = '\0';
	}
	return s;
}

/* What wipefs -p lists on node, as lines named name. */
static void wipefs_list(struct siglist *l, const char *node, const char *name)
{
	const char *argv[] = { "wipefs", "-p", node, NULL };
	char *out = NULL, *line, *save, *q;
	const char *f[4];
	int i;

	cr_assert_eq(run(argv, &out), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		/* offset,uuid,label,type */
		for (i = 0, q = line; i < 4; i++) {
			f[i] = q ? q : "";
			if (q) {
				q = strchr(q, ',');
				if (q)
					*q++ = '\0';
			}
		}
		cr_assert_lt(l->n, MAX_SIGS);
		snprintf(l->line[l->n++], sizeof(l->line[0]), "%s %s %s %s",
		         name, f[0], f[3], f[2]);
	}
	free(out);
}

/* Is dev (or the image behind something) mounted anywhere we can see? */
static int mounted_here(dev_t dev, const char *source)
{
	size_t len;
	char *mi = harness_read_file("/proc/self/mountinfo", &len), *line, *save;
	char majmin[32];
	int hit = 0;

	cr_assert_not_null(mi);
	snprintf(majmin, sizeof(majmin), " %u:%u ", major(dev), minor(dev));
	for (line = strtok_r(mi, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if ((dev && strstr(line, majmin)) || (source && strstr(line, source)))
			hit = 1;
	free(mi);
	return hit;
}

static dev_t rdev_of(const char *node)
{
	struct stat st;

	cr_assert_eq(stat(node, &st), 0, "%s: %s", node, strerror(errno));
	return st.st_rdev;
}

/* ------------------------------------------------------------------ */
/* media_decode_udev (no devices needed) */

Test(decode, udev_escapes_are_decoded_and_blanks_trimmed)
{
	char out[64];

	media_decode_udev(out, sizeof(out), "SanDisk\\x20Ultra\\x20Fit\\x20\\x20\\x20");
	cr_assert_str_eq(out, "SanDisk Ultra Fit");
	media_decode_udev(out, sizeof(out), "  Kingston ");
	cr_assert_str_eq(out, "Kingston");
	media_decode_udev(out, sizeof(out), NULL);
	cr_assert_str_eq(out, "");
}

Test(decode, control_bytes_and_bad_utf8_stay_escaped)
{
	char out[64];

	/* A newline or escape from firmware must not reach a log line. */
	media_decode_udev(out, sizeof(out), "evil\\x0a\\x1b[2Jstick");
	cr_assert_str_eq(out, "evil\\x0a\\x1b[2Jstick");
	media_decode_udev(out, sizeof(out), "bad\\xff\\xfe");
	cr_assert_str_eq(out, "bad\\xff\\xfe");
	media_decode_udev(out, sizeof(out), "nul\\x00here");
	cr_assert_str_eq(out, "nul\\x00here");
	/* Not an escape: the backslash itself is shown escaped. */
	media_decode_udev(out, sizeof(out), "a\\xZZ");
	cr_assert_str_eq(out, "a\\x5cxZZ");
	media_decode_udev(out, sizeof(out), "caf\\xc3\\xa9");
	cr_assert_str_eq(out, "caf\xc3\xa9");
}

Test(decode, output_is_bounded)
{
	char out[8];

	media_decode_udev(out, sizeof(out), "0123456789abcdef");
	cr_assert_str_eq(out, "0123456");
	media_decode_udev(out, sizeof(out), "abcd\\x01");
	cr_assert_str_eq(out, "abcd");
}

/* ------------------------------------------------------------------ */
/* media_inspect */

Test(inspect, loop_device_is_a_disk_not_on_usb)
{
	struct media_info info;
	char *dev, *syspath;

	harness_loop_require();
	dev = plain_loop("inspect", 0, NULL);
	inspect_ok(dev, &info);
	cr_assert_str_eq(info.devnode, dev);
	cr_assert_str_eq(info.devtype, "disk");
	cr_assert_str_eq(info.bus, "");
	cr_assert_eq(info.major, 7);
	cr_assert_eq(makedev(info.major, info.minor), rdev_of(dev));
	cr_assert_eq(info.size_bytes, 8 * MIB);
	cr_assert_eq(info.read_only, 0);
	cr_assert_eq(info.removable, 0);
	syspath = harness_strdup_printf("/block/%s", dev + 5);
	cr_assert_not_null(strstr(info.syspath, syspath), "%s", info.syspath);
	free(syspath);
	harness_loop_detach(dev);
	free(dev);
}

Test(inspect, symlink_to_the_device_gives_the_kernel_name)
{
	struct media_info info;
	char *dev, *link;

	harness_loop_require();
	dev = plain_loop("inspect-link", 0, NULL);
	link = harness_strdup_printf("%s/by-id-link.%d", harness_scratch(), (int)getpid());
	cr_assert_eq(symlink(dev, link), 0);
	inspect_ok(link, &info);
	cr_assert_str_eq(info.devnode, dev);
	harness_loop_detach(dev);
	free(dev);
	free(link);
}

Test(inspect, read_only_loop_device_is_read_only)
{
	struct media_info info;
	char *dev;

	harness_loop_require();
	dev = plain_loop("inspect-ro", 1, NULL);
	inspect_ok(dev, &info);
	cr_assert_eq(info.read_only, 1);
	harness_loop_detach(dev);
	free(dev);
}

Test(inspect, regular_file_is_not_a_block_device)
{
	struct media_info info;
	struct alerr e;
	char *image = new_image("not-block", MIB);

	alerr_clear(&e);
	assert_refused(media_inspect(image, &info, &e), &e, ALERR_NOINPUT,
	               "media.not_block", image);
	free(image);
}

Test(inspect, missing_device_is_not_found)
{
	struct media_info info;
	struct alerr e;

	alerr_clear(&e);
	assert_refused(media_inspect("/dev/airlock-no-such-device", &info, &e), &e,
	               ALERR_NOINPUT, "media.not_found", "/dev/airlock-no-such-device");
}

Test(inspect, partition_of_a_loop_device_is_a_partition)
{
	struct media_info info;
	struct pdisk d;

	harness_loop_require();
	pdisk_make(&d, "inspect-part", 0);
	inspect_ok(d.p[1], &info);
	cr_assert_str_eq(info.devtype, "partition");
	cr_assert_eq(info.size_bytes, 16 * MIB);
	cr_assert_eq(makedev(info.major, info.minor), rdev_of(d.p[1]));
	pdisk_free(&d);
}

/* ------------------------------------------------------------------ */
/* media_check_target */

Test(check_target, loop_device_without_force_is_not_usb)
{
	struct media_info info;
	struct alerr e;
	char *dev;

	harness_loop_require();
	dev = plain_loop("check-notusb", 0, NULL);
	inspect_ok(dev, &info);
	alerr_clear(&e);
	assert_refused(media_check_target(&info, 0, MIB, &e), &e, ALERR_USAGE,
	               "media.not_usb", dev);
	cr_assert_not_null(strstr(e.message, "--force-device"), "%s", e.message);
	harness_loop_detach(dev);
	free(dev);
}

Test(check_target, loop_device_with_force_is_accepted)
{
	struct media_info info;
	struct alerr e;
	char *dev;

	harness_loop_require();
	dev = plain_loop("check-force", 0, NULL);
	inspect_ok(dev, &info);
	alerr_clear(&e);
	cr_assert_eq(media_check_target(&info, 1, 8 * MIB, &e), 0, "%s [%s]",
	             e.message, e.reason);
	harness_loop_detach(dev);
	free(dev);
}

/* bus and removable come from the description: as udev shows a stick. */
Test(check_target, usb_disk_that_is_not_removable_needs_force)
{
	struct media_info info;
	struct alerr e;
	char *dev;

	harness_loop_require();
	dev = plain_loop("check-notremovable", 0, NULL);
	inspect_ok(dev, &info);
	snprintf(info.bus, sizeof(info.bus), "usb");
	info.removable = 0;
	alerr_clear(&e);
	assert_refused(media_check_target(&info, 0, MIB, &e), &e, ALERR_USAGE,
	               "media.not_removable", dev);
	alerr_clear(&e);
	cr_assert_eq(media_check_target(&info, 1, MIB, &e), 0, "%s", e.message);
	harness_loop_detach(dev);
	free(dev);
}

Test(check_target, removable_usb_disk_is_accepted_without_force)
{
	struct media_info info;
	struct alerr e;
	char *dev;

	harness_loop_require();
	dev = plain_loop("check-usb", 0, NULL);
	inspect_ok(dev, &info);
	snprintf(info.bus, sizeof(info.bus), "usb");
	info.removable = 1;
	alerr_clear(&e);
	cr_assert_eq(media_check_target(&info, 0, MIB, &e), 0, "%s", e.message);
	harness_loop_detach(dev);
	free(dev);
}

Test(check_target, partition_is_not_a_whole_disk)
{
	struct media_info info;
	struct alerr e;
	struct pdisk d;
	int fd;

	harness_loop_require();
	pdisk_make(&d, "check-part", 0);
	inspect_ok(d.p[1], &info);
	alerr_clear(&e);
	assert_refused(media_check_target(&info, 1, MIB, &e), &e, ALERR_USAGE,
	               "media.not_whole_disk", "partition");
	alerr_clear(&e);
	assert_refused(media_open_and_wipe(&info, &fd, NULL, NULL, &e), &e, ALERR_USAGE,
	               "media.not_whole_disk", NULL);
	cr_assert_eq(fd, -1);
	pdisk_free(&d);
}

Test(check_target, too_small_for_the_volume)
{
	struct media_info info;
	struct alerr e;
	char *dev;

	harness_loop_require();
	dev = plain_loop("check-small", 0, NULL);
	inspect_ok(dev, &info);
	alerr_clear(&e);
	assert_refused(media_check_target(&info, 1, 8 * MIB + 1, &e), &e, ALERR_USAGE,
	               "media.too_small", "8388608 bytes, the volume needs 8388609");
	harness_loop_detach(dev);
	free(dev);
}

Test(check_target, read_only_device_is_refused_even_with_force)
{
	struct media_info info;
	struct alerr e;
	char *dev;

	harness_loop_require();
	dev = plain_loop("check-ro", 1, NULL);
	inspect_ok(dev, &info);
	alerr_clear(&e);
	assert_refused(media_check_target(&info, 1, MIB, &e), &e, ALERR_USAGE,
	               "media.read_only", dev);
	harness_loop_detach(dev);
	free(dev);
}

static char *mounted_dir;

static void unmount_fini(void)
{
	if (mounted_dir)
		(void)umount2(mounted_dir, MNT_DETACH);
}

/* Catalogue 49: a loop device whose ext4 partition is mounted. */
Test(check_target, disk_with_a_mounted_partition_is_refused_even_with_force,
     .fini = unmount_fini)
{
	struct media_info info;
	struct alerr e1, e2, e3;
	struct media_probe probe;
	struct pdisk d;
	char *before, *after, *name, *dir;
	int r1, r2, r3, fd = -1;

	harness_loop_require();
	pdisk_make(&d, "check-mounted", 1);
	/* A private mount namespace: the mount goes with this process, even
	 * if it dies; where that is not allowed, the fini unmounts. */
	if (unshare(CLONE_NEWNS) == 0)
		cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	dir = harness_mkdir("mount point", 0700);
	mounted_dir = dir;
	cr_assert_eq(mount(d.p[1], dir, "ext4", MS_RDONLY, "noload"), 0,
	             "mount %s: %s", d.p[1], strerror(errno));
	before = sha256(d.image);

	inspect_ok(d.dev, &info);
	alerr_clear(&e1);
	alerr_clear(&e2);
	alerr_clear(&e3);
	r1 = media_check_target(&info, 1, MIB, &e1);
	r2 = media_open_and_wipe(&info, &fd, NULL, NULL, &e2);
	r3 = media_identify(d.dev, &probe, &e3);
	after = sha256(d.image);
	cr_assert_eq(umount(dir), 0, "umount: %s", strerror(errno));
	mounted_dir = NULL;

	name = harness_strdup_printf("%sp1 is mounted on %s", d.dev + 5, harness_scratch());
	assert_refused(r1, &e1, ALERR_USAGE, "media.mounted", name);
	cr_assert_not_null(strstr(e1.message, "/mount point"), "%s", e1.message);
	cr_assert_eq(strncmp(e1.message, d.dev, strlen(d.dev)), 0, "%s", e1.message);
	/* The mount holds the partition: the exclusive open fails first. */
	assert_refused(r2, &e2, ALERR_TEMPFAIL, "media.busy", d.dev);
	cr_assert_eq(fd, -1);
	assert_refused(r3, &e3, ALERR_TEMPFAIL, "media.busy", d.dev);
	cr_assert_str_eq(before, after, "the image changed");

	alerr_clear(&e1);
	cr_assert_eq(media_check_target(&info, 1, MIB, &e1), 0, "after umount: %s",
	             e1.message);
	free(name);
	free(dir);
	free(before);
	free(after);
	pdisk_free(&d);
}

/* The disk / is on, from /proc/self/mountinfo; NULL when / is not on a
 * block device here (overlay, tmpfs...). */
static char *root_disk_node(void)
{
	size_t len;
	char *mi = harness_read_file("/proc/self/mountinfo", &len), *line, *save;
	char *sys, *uevent, *name, *node, *p, *part, *path;
	unsigned int ma = 0, mi_ = 0;
	struct stat st;

	cr_assert_not_null(mi);
	for (line = strtok_r(mi, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned int a, b;
		char mp[4096], src[4096];
		char *dash = strstr(line, " - ");

		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mp) != 3 ||
		    strcmp(mp, "/") != 0 || !dash)
			continue;
		if (sscanf(dash, " - %*s %4095s", src) == 1 && a == 0 &&
		    stat(src, &st) == 0 && S_ISBLK(st.st_mode)) {
			a = major(st.st_rdev);
			b = minor(st.st_rdev);
		}
		/* The last "/" listed is the one in effect. */
		ma = a;
		mi_ = b;
	}
	free(mi);
	if (ma == 0)
		return NULL;
	sys = harness_strdup_printf("/sys/dev/block/%u:%u", ma, mi_);
	part = harness_strdup_printf("%s/partition", sys);
	if (access(part, F_OK) == 0) {
		char *up = harness_strdup_printf("%s/..", sys);

		free(sys);
		sys = up;
	}
	free(part);
	uevent = harness_strdup_printf("%s/uevent", sys);
	p = harness_read_file(uevent, &len);
	cr_assert_not_null(p, "%s", uevent);
	name = strstr(p, "DEVNAME=");
	cr_assert_not_null(name);
	name += 8;
	name[strcspn(name, "\n")] = '\0';
	path = harness_strdup_printf("/dev/%s", name);
	node = block_node(path, sys);
	free(path);
	free(p);
	free(uevent);
	free(sys);
	return node;
}

Test(check_target, disk_holding_root_is_refused_even_with_force)
{
	struct media_info info;
	struct alerr e;
	char *node = root_disk_node();

	if (!node)
		cr_skip_test("/ is not on a block device here");
	inspect_ok(node, &info);
	cr_assert_str_eq(info.devtype, "disk");
	alerr_clear(&e);
	assert_refused(media_check_target(&info, 1, 0, &e), &e, ALERR_USAGE,
	               "media.system_disk", "holds the running system (/");
	alerr_clear(&e);
	assert_refused(media_check_target(&info, 0, 0, &e), &e, ALERR_USAGE,
	               "media.system_disk", NULL);
	/* No media_open_and_wipe here: not on the disk this test runs from. */
	free(node);
}

static char *swap_node;

static void swapoff_fini(void)
{
	if (swap_node)
		(void)swapoff(swap_node);
}

Test(check_target, disk_with_active_swap_is_refused_even_with_force,
     .fini = swapoff_fini)
{
	const char *mkswap[] = { "mkswap", NULL, NULL };
	struct media_info info;
	struct alerr e;
	struct pdisk d;
	int r, err;

	harness_loop_require();
	pdisk_make(&d, "check-swap", 0);
	mkswap[1] = d.p[1];
	run_ok(mkswap);
	swap_node = d.p[1];
	if (swapon(d.p[1], 0) < 0) {
		err = errno;
		swap_node = NULL;
		pdisk_free(&d);
		cr_skip_test("swapon: %s", strerror(err));
	}
	inspect_ok(d.dev, &info);
	alerr_clear(&e);
	r = media_check_target(&info, 1, 0, &e);
	cr_assert_eq(swapoff(d.p[1]), 0, "swapoff: %s", strerror(errno));
	swap_node = NULL;
	assert_refused(r, &e, ALERR_USAGE, "media.system_disk", "swap");
	pdisk_free(&d);
}

Test(check_target, disk_under_device_mapper_is_in_use)
{
	char *dev, *name, *table, *sectors;
	const char *create[] = { "dmsetup", "create", "--noudevsync", NULL, "--table", NULL, NULL };
	const char *remove[] = { "dmsetup", "remove", "--noudevsync", NULL, NULL };
	struct media_info info;
	struct alerr e;
	char *err = NULL;
	int r;

	harness_loop_require();
	dev = plain_loop("check-dm", 0, NULL);
	name = harness_strdup_printf("airlock-test-media-%d", (int)getpid());
	sectors = harness_strdup_printf("%" PRIu64, 8 * MIB / 512);
	table = harness_strdup_printf("0 %s linear %s 0", sectors, dev);
	create[3] = name;
	create[5] = table;
	remove[3] = name;
	if (harness_run(create, NULL, NULL, &err) != 0) {
		harness_loop_detach(dev);
		cr_skip_test("device-mapper unavailable: %s", err ? err : "");
	}
	inspect_ok(dev, &info);
	alerr_clear(&e);
	r = media_check_target(&info, 1, 0, &e);
	run_ok(remove);
	assert_refused(r, &e, ALERR_USAGE, "media.in_use", "dm-");
	free(err);
	free(name);
	free(table);
	free(sectors);
	harness_loop_detach(dev);
	free(dev);
}

/* ------------------------------------------------------------------ */
/* media_list_signatures */

/* What wipefs sees on the disk and on each partition. */
static char *wipefs_expected(const struct pdisk *d)
{
	struct siglist *l = calloc(1, sizeof(*l));
	unsigned int i;
	char *s;

	cr_assert_not_null(l);
	wipefs_list(l, d->dev, d->dev);
	for (i = 1; i <= 2; i++) {
		char *name = harness_strdup_printf("%sp%u", d->dev, i);

		wipefs_list(l, d->p[i], name);
		free(name);
	}
	s = siglist_join(l);
	free(l);
	return s;
}

Test(signatures, gpt_ext4_vfat_on_a_loop_device_as_wipefs_lists_them)
{
	struct siglist *l = calloc(1, sizeof(*l));
	struct alerr e;
	struct pdisk d;
	char *got, *want, *ext4, *vfat;

	harness_loop_require();
	cr_assert_not_null(l);
	pdisk_make(&d, "sigs", 1);
	alerr_clear(&e);
	cr_assert_eq(media_list_signatures(d.dev, collect, l, &e), 0, "%s", e.message);
	got = siglist_join(l);
	want = wipefs_expected(&d);
	cr_assert_str_eq(got, want, "media:\n%s\nwipefs:\n%s", got, want);
	ext4 = harness_strdup_printf("%sp1 0x438 ext4 AL_EXT4\n", d.dev);
	vfat = harness_strdup_printf("%sp2 0x36 vfat ALFAT\n", d.dev);
	cr_assert_not_null(strstr(got, ext4), "%s", got);
	cr_assert_not_null(strstr(got, vfat), "%s", got);
	cr_assert_not_null(strstr(got, " 0x200 gpt "), "%s", got);
	cr_assert_not_null(strstr(got, " 0x1fe PMBR "), "%s", got);
	free(ext4);
	free(vfat);
	free(got);
	free(want);
	free(l);
	pdisk_free(&d);
}

/* The same list from the image file: partitions from the table itself. */
Test(signatures, image_file_lists_the_same_signatures)
{
	struct siglist *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct alerr e;
	struct pdisk d;
	size_t i;
	char *p, *ga, *gb, *prefix;

	harness_loop_require();
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	pdisk_make(&d, "sigs-image", 1);
	alerr_clear(&e);
	cr_assert_eq(media_list_signatures(d.dev, collect, a, &e), 0, "%s", e.message);
	cr_assert_eq(media_list_signatures(d.image, collect, b, &e), 0, "%s", e.message);
	/* "/dev/loopNpM" and "IMAGE (partition M)" name the same area. */
	prefix = harness_strdup_printf("%s (partition ", d.image);
	for (i = 0; i < b->n; i++) {
		char tmp[200];

		if (strncmp(b->line[i], prefix, strlen(prefix)) == 0) {
			p = b->line[i] + strlen(prefix);
			snprintf(tmp, sizeof(tmp), "%sp%c%s", d.dev, p[0], p + 2);
		} else {
			cr_assert_eq(strncmp(b->line[i], d.image, strlen(d.image)), 0, "%s",
			             b->line[i]);
			snprintf(tmp, sizeof(tmp), "%s%s", d.dev, b->line[i] + strlen(d.image));
		}
		memcpy(b->line[i], tmp, sizeof(tmp));
	}
	ga = siglist_join(a);
	gb = siglist_join(b);
	cr_assert_str_eq(ga, gb);
	free(prefix);
	free(ga);
	free(gb);
	free(a);
	free(b);
	pdisk_free(&d);
}

/* No partitions in the kernel (no partition scanning): found in the table. */
Test(signatures, partitions_found_without_kernel_partitions)
{
	struct siglist *l = calloc(1, sizeof(*l));
	struct alerr e;
	struct pdisk d;
	char *dev, *got, *ext4;

	harness_loop_require();
	cr_assert_not_null(l);
	pdisk_make(&d, "sigs-noscan", 1);
	harness_loop_detach(d.dev);
	cr_assert_eq(harness_loop_attach(d.image, 1, &dev), 0);
	alerr_clear(&e);
	cr_assert_eq(media_list_signatures(dev, collect, l, &e), 0, "%s", e.message);
	got = siglist_join(l);
	ext4 = harness_strdup_printf("%s (partition 1) 0x438 ext4 AL_EXT4\n", dev);
	cr_assert_not_null(strstr(got, ext4), "%s", got);
	harness_loop_detach(dev);
	free(dev);
	free(ext4);
	free(got);
	free(l);
	free(d.image);
	free(d.p[1]);
	free(d.p[2]);
	free(d.dev);
}

Test(signatures, random_bytes_have_none)
{
	struct siglist *l = calloc(1, sizeof(*l));
	struct alerr e;
	char *image = new_image("sigs-random", 0);
	char *of = harness_strdup_printf("of=%s", image);
	const char *argv[] = { "dd", "if=/dev/urandom", of, "bs=1M", "count=4", "status=none", NULL };

	cr_assert_not_null(l);
	run_ok(argv);
	alerr_clear(&e);
	cr_assert_eq(media_list_signatures(image, collect, l, &e), 0, "%s", e.message);
	cr_assert_eq(l->n, 0, "%s", l->n ? l->line[0] : "");
	free(of);
	free(image);
	free(l);
}

static int stop_at_first(void *ctx, const struct media_signature *s)
{
	(void)s;
	(*(int *)ctx)++;
	return -ECANCELED;
}

Test(signatures, callback_can_stop_the_walk)
{
	struct alerr e;
	struct pdisk d;
	int calls = 0;

	harness_loop_require();
	pdisk_make(&d, "sigs-stop", 1);
	alerr_clear(&e);
	cr_assert_eq(media_list_signatures(d.image, stop_at_first, &calls, &e), -ECANCELED);
	cr_assert_eq(calls, 1);
	cr_assert_str_eq(e.reason, "media.aborted");
	pdisk_free(&d);
}

Test(signatures, missing_path_is_not_found)
{
	struct alerr e;

	alerr_clear(&e);
	assert_refused(media_list_signatures("/nonexistent/airlock.img", NULL, NULL, &e),
	               &e, ALERR_NOINPUT, "media.not_found", "/nonexistent/airlock.img");
}

/* ------------------------------------------------------------------ */
/* media_open_and_wipe */

/* Nothing left for blkid in [off, off+size) of image. */
static void assert_blkid_finds_nothing(const char *image, uint64_t off, uint64_t size)
{
	char *o = harness_strdup_printf("%" PRIu64, off);
	char *s = harness_strdup_printf("%" PRIu64, size);
	const char *argv[] = { "blkid", "-p", "-O", o, "-S", s, image, NULL };
	char *out = NULL;
	int rc = harness_run(argv, NULL, &out, NULL);

	/* blkid exits 2 when it finds nothing. */
	cr_assert_eq(rc, 2, "blkid -p -O %s -S %s: exit %d: %s", o, s, rc, out ? out : "");
	free(out);
	free(o);
	free(s);
}

static uint64_t sys_u64(const char *path)
{
	size_t len;
	char *s = harness_read_file(path, &len);
	uint64_t v;

	cr_assert_not_null(s, "%s", path);
	v = strtoull(s, NULL, 10);
	free(s);
	return v;
}

Test(wipe, every_signature_goes_and_the_fd_is_exclusive)
{
	struct siglist *listed = calloc(1, sizeof(*listed)), *wiped = calloc(1, sizeof(*wiped));
	struct siglist *after = calloc(1, sizeof(*after));
	struct media_info info;
	struct media_probe probe;
	struct alerr e;
	struct pdisk d;
	uint64_t off[3], size[3];
	char *a, *b, *sys, *out = NULL;
	const char *wipefs[] = { "wipefs", "-p", NULL, NULL };
	unsigned int i;
	int fd = -1, fd2;

	harness_loop_require();
	cr_assert_not_null(listed);
	cr_assert_not_null(wiped);
	cr_assert_not_null(after);
	pdisk_make(&d, "wipe", 1);
	for (i = 1; i <= 2; i++) {
		char *f = harness_strdup_printf("%s/%sp%u/start", "/sys/class/block", d.dev + 5, i);

		off[i] = sys_u64(f) * 512;
		free(f);
		f = harness_strdup_printf("%s/%sp%u/size", "/sys/class/block", d.dev + 5, i);
		size[i] = sys_u64(f) * 512;
		free(f);
	}
	alerr_clear(&e);
	cr_assert_eq(media_list_signatures(d.dev, collect, listed, &e), 0, "%s", e.message);
	cr_assert_geq(listed->n, 5);
	inspect_ok(d.dev, &info);
	cr_assert_eq(media_check_target(&info, 1, MIB, &e), 0, "%s", e.message);

	cr_assert_eq(media_open_and_wipe(&info, &fd, collect, wiped, &e), 0, "%s [%s]",
	             e.message, e.reason);
	cr_assert_geq(fd, 0);
	a = siglist_join(listed);
	b = siglist_join(wiped);
	cr_assert_str_eq(a, b, "listed:\n%s\nwiped:\n%s", a, b);

	/* Held exclusively: nothing else can open it exclusively or mount it. */
	fd2 = open(d.dev, O_RDWR | O_EXCL | O_CLOEXEC);
	cr_assert_eq(fd2, -1, "second exclusive open succeeded");
	cr_assert_eq(errno, EBUSY, "%s", strerror(errno));
	alerr_clear(&e);
	fd2 = -1;
	assert_refused(media_open_and_wipe(&info, &fd2, NULL, NULL, &e), &e,
	               ALERR_TEMPFAIL, "media.busy", d.dev);
	alerr_clear(&e);
	assert_refused(media_identify(d.dev, &probe, &e), &e, ALERR_TEMPFAIL,
	               "media.busy", NULL);

	/* Nothing on the disk, and the kernel dropped the partitions. */
	wipefs[2] = d.dev;
	cr_assert_eq(run(wipefs, &out), 0);
	cr_assert_str_eq(out, "", "wipefs still lists:\n%s", out);
	free(out);
	for (i = 1; i <= 2; i++) {
		sys = part_sysdir(d.dev, i);
		cr_assert_neq(access(sys, F_OK), 0, "%s is still there", sys);
		free(sys);
	}
	cr_assert_eq(close(fd), 0);

	/* Nothing in the old partitions' areas either. */
	alerr_clear(&e);
	cr_assert_eq(media_list_signatures(d.image, collect, after, &e), 0, "%s", e.message);
	cr_assert_eq(after->n, 0, "left: %s", after->line[0]);
	assert_blkid_finds_nothing(d.image, 0, 40 * MIB);
	for (i = 1; i <= 2; i++)
		assert_blkid_finds_nothing(d.image, off[i], size[i]);

	/* Closed: free again. */
	fd2 = open(d.dev, O_RDWR | O_EXCL | O_CLOEXEC);
	cr_assert_geq(fd2, 0, "%s", strerror(errno));
	close(fd2);
	free(a);
	free(b);
	free(listed);
	free(wiped);
	free(after);
	pdisk_free(&d);
}

Test(wipe, a_different_device_at_the_checked_path_is_refused)
{
	struct media_info info;
	struct alerr e;
	char *dev_a, *dev_b, *image_b, *before, *after;
	int fd = -1;

	harness_loop_require();
	dev_a = plain_loop("wipe-a", 0, NULL);
	dev_b = plain_loop("wipe-b", 0, &image_b);
	sh_ok("printf 'label: gpt\\n,\\n' | sfdisk -q \"$1\"", dev_b);
	before = sha256(image_b);
	inspect_ok(dev_a, &info);
	/* As if /dev/sdX now named another stick. */
	snprintf(info.devnode, sizeof(info.devnode), "%s", dev_b);
	alerr_clear(&e);
	assert_refused(media_open_and_wipe(&info, &fd, NULL, NULL, &e), &e, ALERR_USAGE,
	               "media.changed", dev_b);
	cr_assert_eq(fd, -1);
	after = sha256(image_b);
	cr_assert_str_eq(before, after);
	harness_loop_detach(dev_a);
	harness_loop_detach(dev_b);
	free(dev_a);
	free(dev_b);
	free(image_b);
	free(before);
	free(after);
}

/* The same device number, other media: the disk sequence tells. */
Test(wipe, media_swapped_since_the_check_is_refused)
{
	struct media_info info;
	struct alerr e;
	char *dev_a = NULL, *dev_b = NULL, *image_b, *before, *after;
	int fd = -1, tries;

	harness_loop_require();
	image_b = new_image("wipe-seq-b", 8 * MIB);
	sh_ok("printf 'label: gpt\\n,\\n' | sfdisk -q \"$1\"", image_b);
	before = sha256(image_b);
	/* Tests running in parallel may take the freed device number. */
	for (tries = 0; tries < 20; tries++) {
		free(dev_a);
		free(dev_b);
		dev_a = plain_loop("wipe-seq-a", 0, NULL);
		inspect_ok(dev_a, &info);
		if (info.diskseq == 0) {
			harness_loop_detach(dev_a);
			cr_skip_test("no disk sequence numbers (Linux < 5.15)");
		}
		harness_loop_detach(dev_a);
		cr_assert_eq(harness_loop_attach(image_b, 0, &dev_b), 0);
		if (strcmp(dev_a, dev_b) == 0)
			break;
		harness_loop_detach(dev_b);
	}
	if (tries == 20)
		cr_skip_test("never got the same loop device number back");
	alerr_clear(&e);
	assert_refused(media_open_and_wipe(&info, &fd, NULL, NULL, &e), &e, ALERR_USAGE,
	               "media.changed", "disk sequence");
	cr_assert_eq(fd, -1);
	harness_loop_detach(dev_b);
	after = sha256(image_b);
	cr_assert_str_eq(before, after);
	free(dev_a);
	free(dev_b);
	free(image_b);
	free(before);
	free(after);
}

/* The same check, without depending on device numbers. */
Test(wipe, disk_sequence_mismatch_is_refused)
{
	struct media_info info;
	struct alerr e;
	char *dev, *image, *before, *after;
	int fd = -1;

	harness_loop_require();
	dev = plain_loop("wipe-seq", 0, &image);
	sh_ok("printf 'label: gpt\\n,\\n' | sfdisk -q \"$1\"", dev);
	before = sha256(image);
	inspect_ok(dev, &info);
	if (info.diskseq == 0) {
		harness_loop_detach(dev);
		cr_skip_test("no disk sequence numbers (Linux < 5.15)");
	}
	info.diskseq++;
	alerr_clear(&e);
	assert_refused(media_open_and_wipe(&info, &fd, NULL, NULL, &e), &e, ALERR_USAGE,
	               "media.changed", "disk sequence");
	cr_assert_eq(fd, -1);
	after = sha256(image);
	cr_assert_str_eq(before, after);
	harness_loop_detach(dev);
	free(dev);
	free(image);
	free(before);
	free(after);
}

/* ------------------------------------------------------------------ */
/* media_identify (catalogue 33) */

static char *make_iso(const char *tag, const char *label)
{
	char *dir, *iso, *file;
	const char *argv[] = { "xorriso", "-as", "mkisofs", "-quiet", "-V", label, "-R",
	                       "-o", NULL, NULL, NULL };

	dir = harness_mkdir(tag, 0755);
	file = harness_strdup_printf("%s/MANIFEST", dir);
	harness_write_file(file, "hello\n", 6);
	iso = harness_strdup_printf("%s/%s.iso", harness_scratch(), tag);
	argv[8] = iso;
	argv[9] = dir;
	run_ok(argv);
	free(file);
	free(dir);
	return iso;
}

static void identify_refused(const char *path, const char *type, const char *label)
{
	struct media_probe p;
	struct alerr e;

	alerr_clear(&e);
	assert_refused(media_identify(path, &p, &e), &e, ALERR_NOINPUT,
	               "media.not_airlock", "not an airlock volume");
	cr_assert_str_eq(p.type, type);
	if (label)
		cr_assert_str_eq(p.label, label);
	cr_assert_eq(mounted_here(0, path), 0, "%s got mounted", path);
}

Test(identify, airlock_iso_image)
{
	struct media_probe p;
	struct alerr e;
	struct stat st;
	char *iso = make_iso("id-ok", "AIRLOCK_42");

	alerr_clear(&e);
	cr_assert_eq(media_identify(iso, &p, &e), 0, "%s [%s]", e.message, e.reason);
	cr_assert_str_eq(p.type, "iso9660");
	cr_assert_str_eq(p.label, "AIRLOCK_42");
	cr_assert_eq(p.sequence, 42);
	cr_assert_eq(stat(iso, &st), 0);
	cr_assert_eq(p.size_bytes, (uint64_t)st.st_size);
	free(iso);
}

Test(identify, airlock_iso_on_a_loop_device_is_not_mounted)
{
	struct media_probe p;
	struct alerr e;
	char *iso = make_iso("id-dev", "AIRLOCK_7"), *dev;
	dev_t rdev;

	harness_loop_require();
	cr_assert_eq(harness_loop_attach(iso, 1, &dev), 0);
	rdev = rdev_of(dev);
	cr_assert_eq(mounted_here(rdev, dev), 0);
	alerr_clear(&e);
	cr_assert_eq(media_identify(dev, &p, &e), 0, "%s [%s]", e.message, e.reason);
	cr_assert_str_eq(p.type, "iso9660");
	cr_assert_str_eq(p.label, "AIRLOCK_7");
	cr_assert_eq(p.sequence, 7);
	cr_assert_eq(mounted_here(rdev, dev), 0, "%s got mounted", dev);
	harness_loop_detach(dev);
	free(dev);
	free(iso);
}

Test(identify, iso_with_another_label)
{
	char *iso = make_iso("id-other", "OTHER");

	identify_refused(iso, "iso9660", "OTHER");
	free(iso);
}

Test(identify, label_with_a_leading_zero)
{
	char *iso = make_iso("id-zero", "AIRLOCK_042");

	identify_refused(iso, "iso9660", "AIRLOCK_042");
	free(iso);
}

Test(identify, label_without_digits)
{
	char *iso = make_iso("id-nodigits", "AIRLOCK_");

	identify_refused(iso, "iso9660", "AIRLOCK_");
	free(iso);
}

Test(identify, label_with_twenty_digits)
{
	char *iso = make_iso("id-long", "AIRLOCK_12345678901234567890");

	identify_refused(iso, "iso9660", "AIRLOCK_12345678901234567890");
	free(iso);
}

Test(identify, label_with_a_suffix)
{
	char *iso = make_iso("id-suffix", "AIRLOCK_42X");

	identify_refused(iso, "iso9660", "AIRLOCK_42X");
	free(iso);
}

Test(identify, ext4_image)
{
	char *image = new_image("id-ext4", 8 * MIB);
	const char *argv[] = { "mkfs.ext4", "-q", "-F", "-L", "AIRLOCK_42", image, NULL };

	run_ok(argv);
	identify_refused(image, "ext4", "AIRLOCK_42");
	free(image);
}

Test(identify, fat_image)
{
	char *image = new_image("id-fat", 8 * MIB);
	const char *argv[] = { "mkfs.vfat", "-n", "AIRLOCK_42", image, NULL };

	run_ok(argv);
	identify_refused(image, "vfat", NULL);
	free(image);
}

Test(identify, random_bytes)
{
	char *image = new_image("id-random", 0);
	char *of = harness_strdup_printf("of=%s", image);
	const char *argv[] = { "dd", "if=/dev/urandom", of, "bs=1M", "count=2", "status=none", NULL };

	run_ok(argv);
	identify_refused(image, "", "");
	free(of);
	free(image);
}

Test(identify, empty_file)
{
	char *image = new_image("id-empty", 0);

	identify_refused(image, "", "");
	free(image);
}

/* An ISO labelled AIRLOCK_42 whose system area also holds an ext4
 * superblock: a polyglot is not an airlock volume. */
Test(identify, iso_with_an_ext4_superblock_too)
{
	char *iso = make_iso("id-poly", "AIRLOCK_42");
	char *ext4 = new_image("id-poly-ext4", 8 * MIB);
	const char *mkfs[] = { "mkfs.ext4", "-q", "-F", ext4, NULL };
	char *in = harness_strdup_printf("if=%s", ext4), *out = harness_strdup_printf("of=%s", iso);
	const char *dd[] = { "dd", in, out, "bs=1024", "skip=1", "seek=1", "count=3",
	                     "conv=notrunc", "status=none", NULL };

	run_ok(mkfs);
	run_ok(dd);
	identify_refused(iso, "ext4", NULL);
	free(in);
	free(out);
	free(ext4);
	free(iso);
}

Test(identify, symlink_is_refused)
{
	struct media_probe p;
	struct alerr e;
	char *iso = make_iso("id-link", "AIRLOCK_42");
	char *link = harness_strdup_printf("%s/id-link.iso.link", harness_scratch());

	cr_assert_eq(symlink(iso, link), 0);
	alerr_clear(&e);
	assert_refused(media_identify(link, &p, &e), &e, ALERR_NOINPUT, "media.symlink", link);
	free(link);
	free(iso);
}

Test(identify, directory_is_refused)
{
	struct media_probe p;
	struct alerr e;
	char *dir = harness_mkdir("id-dir", 0755);

	alerr_clear(&e);
	assert_refused(media_identify(dir, &p, &e), &e, ALERR_NOINPUT, "media.not_block", dir);
	free(dir);
}

Test(identify, missing_file_is_not_found)
{
	struct media_probe p;
	struct alerr e;

	alerr_clear(&e);
	assert_refused(media_identify("/nonexistent/airlock.iso", &p, &e), &e,
	               ALERR_NOINPUT, "media.not_found", NULL);
}
