#include "config.h"

#include <blkid.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libudev.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "log.h"
#include "media.h"
#include "text.h"

#define LABEL_PREFIX "AIRLOCK_"

/* ------------------------------------------------------------------ */
/* Text from devices */

/* Trim blanks, optionally decode udev's \xNN, sanitize into out. */
static void clean_text(char *out, size_t size, const char *in, int decode)
{
	char buf[1024];
	size_t n = 0, i = 0, len, start = 0;
	uint8_t byte;

	if (size == 0)
		return;
	out[0] = '\0';
	if (!in)
		return;
	len = strlen(in);
	while (i < len && n < sizeof(buf)) {
		if (decode && in[i] == '\\' && len - i >= 4 && in[i + 1] == 'x' &&
		    text_hex_decode(&byte, 1, in + i + 2, 2, 1) == 0) {
			buf[n++] = (char)byte;
			i += 4;
		} else {
			buf[n++] = in[i++];
		}
	}
	while (start < n && (buf[start] == ' ' || buf[start] == '\t'))
		start++;
	while (n > start && (buf[n - 1] == ' ' || buf[n - 1] == '\t' ||
	                     buf[n - 1] == '\n'))
		n--;
	log_sanitize(out, size, buf + start, n - start);
}

void media_decode_udev(char *out, size_t size, const char *in)
{
	clean_text(out, size, in, 1);
}

static void shown_path(char *out, size_t size, const char *path)
{
	log_sanitize(out, size, path ? path : "", path ? strlen(path) : 0);
}

/* A sysfs attribute as a decimal number. */
static int sysattr_u64(struct udev_device *d, const char *name, uint64_t *v)
{
	const char *s = udev_device_get_sysattr_value(d, name);
	size_t n;

	if (!s)
		return -ENOENT;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	return text_parse_u64(s, n, UINT64_MAX, v);
}

static int devtype_is(struct udev_device *d, const char *type)
{
	const char *t = udev_device_get_devtype(d);

	return t && strcmp(t, type) == 0;
}

/* The udev property name_ENC (decoded) or name, on d or else on the disk
 * (a partition's database entry repeats the disk's, but only with udevd). */
static void udev_text(char *out, size_t size, struct udev_device *d,
                      struct udev_device *disk, const char *name)
{
	char enc[64];
	struct udev_device *src[2] = { d, disk };
	const char *v;
	size_t i;

	snprintf(enc, sizeof(enc), "%s_ENC", name);
	out[0] = '\0';
	for (i = 0; i < 2 && out[0] == '\0'; i++) {
		if (!src[i])
			continue;
		v = udev_device_get_property_value(src[i], enc);
		if (v && *v) {
			clean_text(out, size, v, 1);
		} else {
			v = udev_device_get_property_value(src[i], name);
			clean_text(out, size, v, 0);
		}
	}
}

/* Without udevd's database: the USB parent, the SCSI/NVMe device's
 * vendor and model attributes, the USB serial. */
static void sysfs_identity(struct media_info *out, struct udev_device *disk)
{
	struct udev_device *p, *usb;
	unsigned int depth = 0;
	const char *v;

	usb = udev_device_get_parent_with_subsystem_devtype(disk, "usb", "usb_device");
	if (out->bus[0] == '\0' && usb)
		snprintf(out->bus, sizeof(out->bus), "usb");
	if (out->serial[0] == '\0' && usb)
		clean_text(out->serial, sizeof(out->serial),
		           udev_device_get_sysattr_value(usb, "serial"), 0);
	for (p = udev_device_get_parent(disk); p && depth < 32;
	     p = udev_device_get_parent(p), depth++) {
		v = udev_device_get_sysattr_value(p, "model");
		if (!v)
			continue;
		if (out->model[0] == '\0')
			clean_text(out->model, sizeof(out->model), v, 0);
		if (out->vendor[0] == '\0')
			clean_text(out->vendor, sizeof(out->vendor),
			           udev_device_get_sysattr_value(p, "vendor"), 0);
		if (out->serial[0] == '\0')
			clean_text(out->serial, sizeof(out->serial),
			           udev_device_get_sysattr_value(p, "serial"), 0);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* media_inspect */

int media_inspect(const char *devnode, struct media_info *out, struct alerr *e)
{
	struct udev *udev = NULL;
	struct udev_device *dev = NULL, *disk;
	char shown[256];
	const char *node;
	struct stat st, nst;
	uint64_t v;
	int r = 0;

	memset(out, 0, sizeof(*out));
	shown_path(shown, sizeof(shown), devnode);
	if (stat(devnode, &st) < 0) {
		int err = errno;

		return alerr_set(e, ALERR_NOINPUT, -err, "media.not_found",
		                 "%s: %s", shown, strerror(err));
	}
	if (!S_ISBLK(st.st_mode))
		return alerr_set(e, ALERR_NOINPUT, -ENOTBLK, "media.not_block",
		                 "%s: not a block device", shown);
	udev = udev_new();
	if (!udev)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "media.udev",
		                 "%s: cannot create a libudev context", shown);
	dev = udev_device_new_from_devnum(udev, 'b', st.st_rdev);
	if (!dev) {
		r = alerr_set(e, ALERR_NOINPUT, -ENODEV, "media.not_found",
		              "%s: block device %u:%u is not in sysfs", shown,
		              major(st.st_rdev), minor(st.st_rdev));
		goto out;
	}
	out->major = major(st.st_rdev);
	out->minor = minor(st.st_rdev);
	disk = dev;
	if (devtype_is(dev, "partition")) {
		disk = udev_device_get_parent_with_subsystem_devtype(dev, "block", "disk");
		if (!disk)
			disk = dev;
	}

	/* The kernel's name when it is the same device, else the caller's
	 * path; either must be usable as is by open(). */
	node = udev_device_get_devnode(dev);
	if (!node || stat(node, &nst) < 0 || !S_ISBLK(nst.st_mode) ||
	    nst.st_rdev != st.st_rdev)
		node = devnode;
	if (strlen(node) >= sizeof(out->devnode) ||
	    !text_is_printable_utf8(node, strlen(node))) {
		r = alerr_set(e, ALERR_USAGE, -ENAMETOOLONG, "media.bad_path",
		              "%s: device path too long or not printable", shown);
		goto out;
	}
	memcpy(out->devnode, node, strlen(node) + 1);
	shown_path(out->syspath, sizeof(out->syspath), udev_device_get_syspath(dev));
	clean_text(out->devtype, sizeof(out->devtype), udev_device_get_devtype(dev), 0);

	udev_text(out->bus, sizeof(out->bus), dev, disk, "ID_BUS");
	udev_text(out->vendor, sizeof(out->vendor), dev, disk, "ID_VENDOR");
	udev_text(out->model, sizeof(out->model), dev, disk, "ID_MODEL");
	udev_text(out->serial, sizeof(out->serial), dev, disk, "ID_SERIAL_SHORT");
	if (out->serial[0] == '\0')
		udev_text(out->serial, sizeof(out->serial), dev, disk, "ID_SERIAL");
	udev_text(out->bus_path, sizeof(out->bus_path), dev, disk, "ID_PATH");
	sysfs_identity(out, disk);

	if (sysattr_u64(disk, "removable", &v) == 0)
		out->removable = v == 1;
	if (sysattr_u64(dev, "ro", &v) == 0)
		out->read_only = v != 0;
	if (sysattr_u64(disk, "diskseq", &v) == 0)
		out->diskseq = v;
	if (sysattr_u64(dev, "size", &v) < 0 || v > UINT64_MAX / 512) {
		r = alerr_set(e, ALERR_IOERR, -EIO, "media.size",
		              "%s: cannot read the device size from sysfs", shown);
		goto out;
	}
	out->size_bytes = v * 512;
out:
	udev_device_unref(dev);
	udev_unref(udev);
	return r;
}

/* ------------------------------------------------------------------ */
/* Device stacks: what sits on a disk (partitions, holders) and what a
 * device sits on (slaves, the disk of a partition). */

struct devset_entry {
	dev_t dev;
	int holder;             /* reached through a holders/ link */
	char note[64];          /* sysname, or why it is a system device */
};

struct devset {
	size_t n;
	struct devset_entry *v;
};

static int devset_init(struct devset *s)
{
	s->n = 0;
	s->v = calloc(MEDIA_MAX_STACK, sizeof(*s->v));
	return s->v ? 0 : -ENOMEM;
}

static const struct devset_entry *devset_find(const struct devset *s, dev_t d)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].dev == d)
			return &s->v[i];
	return NULL;
}

/* 1 when added, 0 when already there, -E2BIG when full. */
static int devset_add(struct devset *s, dev_t d, int holder, const char *note)
{
	if (devset_find(s, d))
		return 0;
	if (s->n >= MEDIA_MAX_STACK)
		return -E2BIG;
	s->v[s->n].dev = d;
	s->v[s->n].holder = holder;
	clean_text(s->v[s->n].note, sizeof(s->v[s->n].note), note, 0);
	s->n++;
	return 1;
}

struct stackwalk {
	struct udev *udev;
	struct devset *set;
	const char *note;       /* for stack_down: what the system uses */
};

typedef int (*stack_fn)(struct stackwalk *w, struct udev_device *d,
                        unsigned int depth, int holder);

/* Call fn on each block device linked from d's sysfs directory sub
 * ("holders", "slaves"). Returns how many, or a negative errno. */
static int sysdir_walk(struct stackwalk *w, struct udev_device *d, const char *sub,
                       stack_fn fn, unsigned int depth, int holder)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *dir;
	int n = 0, r = 0, len;

	len = snprintf(path, sizeof(path), "%s/%s", udev_device_get_syspath(d), sub);
	if (len < 0 || (size_t)len >= sizeof(path))
		return -ENAMETOOLONG;
	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir)) != NULL) {
		struct udev_device *c;

		if (de->d_name[0] == '.')
			continue;
		c = udev_device_new_from_subsystem_sysname(w->udev, "block", de->d_name);
		if (!c)
			continue;
		n++;
		r = fn(w, c, depth + 1, holder);
		udev_device_unref(c);
		if (r < 0)
			break;
	}
	closedir(dir);
	return r < 0 ? r : n;
}

/* d, its partitions and everything stacked on them, recursively. */
static int stack_up(struct stackwalk *w, struct udev_device *d, unsigned int depth,
                    int holder)
{
	struct udev_enumerate *en;
	struct udev_list_entry *le;
	int r;

	if (depth > MEDIA_MAX_STACK_DEPTH)
		return -ELOOP;
	r = devset_add(w->set, udev_device_get_devnum(d), holder,
	               udev_device_get_sysname(d));
	if (r <= 0)
		return r;
	if (devtype_is(d, "disk")) {
		en = udev_enumerate_new(w->udev);
		if (!en)
			return -ENOMEM;
		if (udev_enumerate_add_match_parent(en, d) < 0 ||
		    udev_enumerate_add_match_subsystem(en, "block") < 0 ||
		    udev_enumerate_scan_devices(en) < 0) {
			udev_enumerate_unref(en);
			return -EIO;
		}
		udev_list_entry_foreach(le, udev_enumerate_get_list_entry(en)) {
			struct udev_device *c;

			c = udev_device_new_from_syspath(w->udev, udev_list_entry_get_name(le));
			if (!c)
				continue;
			r = stack_up(w, c, depth + 1, holder);
			udev_device_unref(c);
			if (r < 0)
				break;
		}
		udev_enumerate_unref(en);
		if (r < 0)
			return r;
	}
	r = sysdir_walk(w, d, "holders", stack_up, depth, 1);
	return r < 0 ? r : 0;
}

/* The whole disks under d: through slaves (dm, md) and from a partition
 * to its disk. */
static int stack_down(struct stackwalk *w, struct udev_device *d, unsigned int depth,
                      int holder)
{
	struct udev_device *disk = d;
	int r;

	if (depth > MEDIA_MAX_STACK_DEPTH)
		return -ELOOP;
	r = sysdir_walk(w, d, "slaves", stack_down, depth, holder);
	if (r != 0)
		return r < 0 ? r : 0;
	if (devtype_is(d, "partition")) {
		disk = udev_device_get_parent_with_subsystem_devtype(d, "block", "disk");
		if (!disk)
			return 0;
	}
	r = devset_add(w->set, udev_device_get_devnum(disk), 0, w->note);
	return r < 0 ? r : 0;
}

static int stack_down_devnum(struct stackwalk *w, dev_t devnum)
{
	struct udev_device *d;
	int r;

	if (major(devnum) == 0)
		return 0;
	d = udev_device_new_from_devnum(w->udev, 'b', devnum);
	if (!d)
		return 0;
	r = stack_down(w, d, 0, 0);
	udev_device_unref(d);
	return r;
}

/* ------------------------------------------------------------------ */
/* /proc/self/mountinfo and /proc/swaps */

struct mount_entry {
	dev_t dev;              /* field 3 (0:N for btrfs, overlay...) */
	dev_t srcdev;           /* the source when it is a block device, or 0 */
	const char *mountpoint;
	const char *source;
};

/* The kernel escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *o = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

static dev_t block_rdev(const char *path)
{
	struct stat st;

	if (strncmp(path, "/dev/", 5) != 0 || stat(path, &st) < 0 ||
	    !S_ISBLK(st.st_mode))
		return 0;
	return st.st_rdev;
}

static int parse_majmin(const char *s, dev_t *out)
{
	unsigned long ma, mi;
	char *end;

	errno = 0;
	ma = strtoul(s, &end, 10);
	if (errno || end == s || *end != ':')
		return -EINVAL;
	s = end + 1;
	mi = strtoul(s, &end, 10);
	if (errno || end == s || *end != '\0' || ma > UINT_MAX || mi > UINT_MAX)
		return -EINVAL;
	*out = makedev((unsigned int)ma, (unsigned int)mi);
	return 0;
}

typedef int (*mount_fn)(void *ctx, const struct mount_entry *m);

/* Stops at the first fn() that returns non-zero and returns it. */
static int mountinfo_foreach(mount_fn fn, void *ctx)
{
	char *line = NULL, *save, *f[64];
	size_t cap = 0, nf, dash;
	ssize_t len;
	FILE *fp;
	int r = 0;

	fp = fopen("/proc/self/mountinfo", "re");
	if (!fp)
		return -errno;
	while ((len = getline(&line, &cap, fp)) >= 0) {
		struct mount_entry m;

		if (len > 0 && line[len - 1] == '\n')
			line[len - 1] = '\0';
		nf = 0;
		for (f[nf] = strtok_r(line, " ", &save); f[nf] && nf < 63;
		     f[++nf] = strtok_r(NULL, " ", &save))
			;
		for (dash = 6; dash < nf && strcmp(f[dash], "-") != 0; dash++)
			;
		if (nf < 5 || dash + 2 >= nf || parse_majmin(f[2], &m.dev) < 0)
			continue;
		unescape_octal(f[4]);
		unescape_octal(f[dash + 2]);
		m.mountpoint = f[4];
		m.source = f[dash + 2];
		m.srcdev = block_rdev(m.source);
		r = fn(ctx, &m);
		if (r != 0)
			break;
	}
	if (r == 0 && ferror(fp))
		r = -EIO;
	free(line);
	fclose(fp);
	return r;
}

static const char *const system_mounts[] = {
	"/", "/usr", "/boot", "/boot/efi", "/efi", NULL,
};

static int system_mount_cb(void *ctx, const struct mount_entry *m)
{
	struct stackwalk *w = ctx;
	size_t i;
	int r;

	for (i = 0; system_mounts[i]; i++) {
		if (strcmp(m->mountpoint, system_mounts[i]) != 0)
			continue;
		w->note = m->mountpoint;
		r = stack_down_devnum(w, m->dev);
		if (r == 0 && m->srcdev)
			r = stack_down_devnum(w, m->srcdev);
		return r;
	}
	return 0;
}

/* The whole disks holding the running system: the system mounts and the
 * active swap areas. */
static int system_disks(struct udev *udev, struct devset *set)
{
	struct stackwalk w = { udev, set, NULL };
	char *line = NULL, *sp, note[64];
	size_t cap = 0;
	ssize_t len;
	struct stat st;
	FILE *fp;
	int r;

	r = mountinfo_foreach(system_mount_cb, &w);
	if (r < 0)
		return r;
	fp = fopen("/proc/swaps", "re");
	if (!fp)
		return errno == ENOENT ? 0 : -errno;
	/* The first line is a header; paths are \ooo-escaped. */
	while (r == 0 && (len = getline(&line, &cap, fp)) >= 0) {
		if (line[0] != '/')
			continue;
		sp = strpbrk(line, " \t\n");
		if (sp)
			*sp = '\0';
		unescape_octal(line);
		if (stat(line, &st) < 0)
			continue;
		snprintf(note, sizeof(note), "swap %s", line);
		w.note = note;
		r = stack_down_devnum(&w, S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev);
	}
	free(line);
	fclose(fp);
	return r;
}

struct mounted_find {
	const struct devset *stack;
	char what[64];
	char where[256];
};

static int mounted_cb(void *ctx, const struct mount_entry *m)
{
	struct mounted_find *mf = ctx;
	const struct devset_entry *d;

	d = devset_find(mf->stack, m->dev);
	if (!d && m->srcdev)
		d = devset_find(mf->stack, m->srcdev);
	if (!d)
		return 0;
	snprintf(mf->what, sizeof(mf->what), "%s", d->note);
	clean_text(mf->where, sizeof(mf->where), m->mountpoint, 0);
	return 1;
}

/* The refusals that no option lifts: a partition, the system disk, a
 * disk with something mounted on or stacked over it. */
static int check_always(const struct media_info *info, struct alerr *e)
{
	struct udev *udev = NULL;
	struct udev_device *dev = NULL;
	struct devset sys = { 0, NULL }, stack = { 0, NULL };
	struct mounted_find mf;
	struct stackwalk w;
	const struct devset_entry *hit;
	dev_t devnum = makedev(info->major, info->minor);
	size_t i;
	int r = 0;

	if (strcmp(info->devtype, "disk") != 0)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "media.not_whole_disk",
		                 "%s: refused: a %s, not a whole disk", info->devnode,
		                 info->devtype[0] ? info->devtype : "device of unknown type");
	udev = udev_new();
	if (!udev)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "media.udev",
		                 "%s: cannot create a libudev context", info->devnode);
	dev = udev_device_new_from_devnum(udev, 'b', devnum);
	if (!dev) {
		r = alerr_set(e, ALERR_NOINPUT, -ENODEV, "media.not_found",
		              "%s: block device %u:%u is gone", info->devnode,
		              info->major, info->minor);
		goto out;
	}
	if (devset_init(&sys) < 0 || devset_init(&stack) < 0) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "media.memory", "out of memory");
		goto out;
	}

	r = system_disks(udev, &sys);
	if (r < 0) {
		r = alerr_set(e, ALERR_OSERR, r, "media.system_state",
		              "%s: cannot find the disks holding the system: %s",
		              info->devnode, strerror(-r));
		goto out;
	}
	hit = devset_find(&sys, devnum);
	if (hit) {
		r = alerr_set(e, ALERR_USAGE, -EBUSY, "media.system_disk",
		              "%s: refused: holds the running system (%s)",
		              info->devnode, hit->note);
		goto out;
	}

	w.udev = udev;
	w.set = &stack;
	w.note = NULL;
	r = stack_up(&w, dev, 0, 0);
	if (r < 0) {
		r = alerr_set(e, ALERR_OSERR, r, "media.system_state",
		              "%s: cannot list the devices on this disk: %s",
		              info->devnode, strerror(-r));
		goto out;
	}
	memset(&mf, 0, sizeof(mf));
	mf.stack = &stack;
	r = mountinfo_foreach(mounted_cb, &mf);
	if (r < 0) {
		r = alerr_set(e, ALERR_OSERR, r, "media.system_state",
		              "%s: cannot read /proc/self/mountinfo: %s",
		              info->devnode, strerror(-r));
		goto out;
	}
	if (r > 0) {
		r = alerr_set(e, ALERR_USAGE, -EBUSY, "media.mounted",
		              "%s: refused: %s is mounted on %s", info->devnode,
		              mf.what, mf.where);
		goto out;
	}
	for (i = 0; i < stack.n; i++) {
		if (!stack.v[i].holder)
			continue;
		r = alerr_set(e, ALERR_USAGE, -EBUSY, "media.in_use",
		              "%s: refused: in use by %s (device-mapper, LVM or RAID on it)",
		              info->devnode, stack.v[i].note);
		goto out;
	}
out:
	free(sys.v);
	free(stack.v);
	udev_device_unref(dev);
	udev_unref(udev);
	return r;
}

int media_check_target(const struct media_info *info, int force_device,
                       uint64_t needed_bytes, struct alerr *e)
{
	int r;

	r = check_always(info, e);
	if (r < 0)
		return r;
	if (info->read_only)
		return alerr_set(e, ALERR_USAGE, -EROFS, "media.read_only",
		                 "%s: refused: the device is read-only", info->devnode);
	if (!force_device && strcmp(info->bus, "usb") != 0)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "media.not_usb",
		                 "%s: refused: not a USB disk (bus '%s'); "
		                 "--force-device accepts it", info->devnode, info->bus);
	if (!force_device && !info->removable)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "media.not_removable",
		                 "%s: refused: not a removable disk; "
		                 "--force-device accepts it", info->devnode);
	if (info->size_bytes < needed_bytes)
		return alerr_set(e, ALERR_USAGE, -ENOSPC, "media.too_small",
		                 "%s: refused: %" PRIu64 " bytes, the volume needs %" PRIu64,
		                 info->devnode, info->size_bytes, needed_bytes);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Signatures */

struct sigwalk {
	int fd;
	int wipe;
	media_signature_fn cb;
	void *ctx;
	struct udev *udev;              /* block devices only, for names */
	struct udev_device *disk;
	char shown[256];
	struct alerr *e;
};

struct part {
	unsigned int partno;
	uint64_t start;                 /* 512-byte sectors */
	uint64_t off, size;             /* bytes */
};

/* The name the kernel gives partition partno when its table agrees with
 * the one on the media, else "DISK (partition N)". */
static void part_name(const struct sigwalk *w, const struct part *p, char *out,
                      size_t size)
{
	struct udev_device *c = NULL, *parent;
	const char *sys;
	char kname[128];
	uint64_t start;
	size_t n;

	if (w->disk) {
		sys = udev_device_get_sysname(w->disk);
		n = sys ? strlen(sys) : 0;
		if (n > 0 && n < 100) {
			snprintf(kname, sizeof(kname), "%s%s%u", sys,
			         isdigit((unsigned char)sys[n - 1]) ? "p" : "", p->partno);
			c = udev_device_new_from_subsystem_sysname(w->udev, "block", kname);
		}
	}
	if (c) {
		parent = udev_device_get_parent_with_subsystem_devtype(c, "block", "disk");
		if (parent && udev_device_get_devnum(parent) == udev_device_get_devnum(w->disk) &&
		    sysattr_u64(c, "start", &start) == 0 && start == p->start &&
		    udev_device_get_devnode(c)) {
			shown_path(out, size, udev_device_get_devnode(c));
			udev_device_unref(c);
			return;
		}
		udev_device_unref(c);
	}
	snprintf(out, size, "%s (partition %u)", w->shown, p->partno);
}

static int probe_error(struct sigwalk *w, const char *dev, const char *what)
{
	int err = errno ? errno : EIO;

	return alerr_set(w->e, ALERR_IOERR, -err, "media.probe_failed",
	                 "%s: libblkid cannot %s: %s", dev, what, strerror(err));
}

/* Report (and wipe) every signature in [off, off + size) of the fd; a
 * size of 0 is up to the end. */
static int probe_area(struct sigwalk *w, const char *dev, uint64_t off, uint64_t size)
{
	blkid_probe pr;
	unsigned int count = 0;
	int r = 0, rc;

	pr = blkid_new_probe();
	if (!pr)
		return alerr_set(w->e, ALERR_OSERR, -ENOMEM, "media.memory", "out of memory");
	errno = 0;
	if (blkid_probe_set_device(pr, w->fd, (blkid_loff_t)off, (blkid_loff_t)size) != 0) {
		r = probe_error(w, dev, "open the device");
		goto out;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_TYPE |
	                                  BLKID_SUBLKS_USAGE | BLKID_SUBLKS_LABEL |
	                                  BLKID_SUBLKS_UUID | BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);

	for (;;) {
		struct media_signature sig;
		const char *type = NULL, *off_s = NULL, *v;
		char t[64], usage[64], label[256], uuid[128];
		size_t len = 0;
		uint64_t magoff;

		errno = 0;
		rc = blkid_do_probe(pr);
		if (rc == 1)
			break;
		if (rc < 0) {
			r = probe_error(w, dev, "probe");
			goto out;
		}
		if (++count > MEDIA_MAX_SIGNATURES) {
			r = alerr_set(w->e, ALERR_IOERR, -E2BIG, "media.too_many_signatures",
			              "%s: more than %u signatures%s", dev,
			              MEDIA_MAX_SIGNATURES, w->wipe ? " (a wipe did not take?)" : "");
			goto out;
		}
		if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0) {
			if (blkid_probe_lookup_value(pr, "SBMAGIC_OFFSET", &off_s, NULL) != 0 ||
			    blkid_probe_lookup_value(pr, "SBMAGIC", NULL, &len) != 0)
				off_s = NULL;
			v = NULL;
			blkid_probe_lookup_value(pr, "USAGE", &v, NULL);
			clean_text(usage, sizeof(usage), v, 0);
		} else if (blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) == 0) {
			if (blkid_probe_lookup_value(pr, "PTMAGIC_OFFSET", &off_s, NULL) != 0 ||
			    blkid_probe_lookup_value(pr, "PTMAGIC", NULL, &len) != 0)
				off_s = NULL;
			snprintf(usage, sizeof(usage), "partition_table");
		} else {
			continue;
		}
		if (!off_s || len == 0 ||
		    text_parse_u64(off_s, strlen(off_s), UINT64_MAX, &magoff) < 0)
			continue;       /* no magic to report or wipe */
		clean_text(t, sizeof(t), type, 0);
		v = NULL;
		blkid_probe_lookup_value(pr, "LABEL", &v, NULL);
		clean_text(label, sizeof(label), v, 0);
		v = NULL;
		blkid_probe_lookup_value(pr, "UUID", &v, NULL);
		clean_text(uuid, sizeof(uuid), v, 0);
		sig.dev = dev;
		sig.type = t;
		sig.usage = usage;
		sig.offset = magoff;
		sig.len = len;
		sig.label = label;
		sig.uuid = uuid;
		if (w->cb) {
			r = w->cb(w->ctx, &sig);
			if (r < 0) {
				alerr_set(w->e, ALERR_SOFTWARE, r, "media.aborted",
				          "%s: stopped while listing signatures", dev);
				goto out;
			}
			r = 0;
		}
		if (w->wipe) {
			/* On success it steps back: the same chain is probed
			 * again, on the wiped bytes. */
			errno = 0;
			if (blkid_do_wipe(pr, 0) != 0) {
				int err = errno ? errno : EIO;

				r = alerr_set(w->e, ALERR_IOERR, -err, "media.wipe_failed",
				              "%s: cannot wipe the %s signature at offset %" PRIu64
				              ": %s", dev, t, magoff, strerror(err));
				goto out;
			}
			log_verbose("%s: wiped %s signature (%zu bytes at offset %" PRIu64 ")",
			            dev, t, len, magoff);
		} else if (blkid_probe_hide_range(pr, magoff, len) == 0) {
			/* Hide it and probe the chain again: a filesystem may
			 * have more than one magic (FAT, GPT's backup). */
			blkid_probe_step_back(pr);
		}
	}
out:
	blkid_free_probe(pr);
	return r;
}

/* The partitions in the media's own table (not the kernel's: it may not
 * have read it, as for a loop device without partition scanning). */
static int list_partitions(struct sigwalk *w, struct part *parts, size_t *nparts)
{
	blkid_partlist ls;
	blkid_probe pr;
	int64_t devsize;
	int r = 0, rc, i, n;

	*nparts = 0;
	pr = blkid_new_probe();
	if (!pr)
		return alerr_set(w->e, ALERR_OSERR, -ENOMEM, "media.memory", "out of memory");
	errno = 0;
	if (blkid_probe_set_device(pr, w->fd, 0, 0) != 0) {
		r = probe_error(w, w->shown, "open the device");
		goto out;
	}
	devsize = blkid_probe_get_size(pr);
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_FORCE_GPT);
	errno = 0;
	rc = blkid_do_fullprobe(pr);
	if (rc == 1)
		goto out;
	if (rc < 0) {
		r = probe_error(w, w->shown, "read the partition table");
		goto out;
	}
	ls = blkid_probe_get_partitions(pr);
	n = ls ? blkid_partlist_numof_partitions(ls) : 0;
	if (n < 0)
		n = 0;
	if ((unsigned int)n > MEDIA_MAX_PARTITIONS) {
		r = alerr_set(w->e, ALERR_IOERR, -E2BIG, "media.too_many_partitions",
		              "%s: more than %u partitions", w->shown, MEDIA_MAX_PARTITIONS);
		goto out;
	}
	for (i = 0; i < n; i++) {
		blkid_partition par = blkid_partlist_get_partition(ls, i);
		blkid_loff_t start, size;
		struct part *p = &parts[*nparts];
		int partno;

		if (!par || blkid_partition_is_extended(par))
			continue;
		start = blkid_partition_get_start(par);
		size = blkid_partition_get_size(par);
		partno = blkid_partition_get_partno(par);
		if (start < 0 || size <= 0 || partno < 0 || devsize <= 0 ||
		    (uint64_t)start > (uint64_t)devsize / 512 ||
		    (uint64_t)size > (uint64_t)devsize / 512 ||
		    ((uint64_t)start + (uint64_t)size) * 512 > (uint64_t)devsize) {
			log_warn("%s: partition %d lies outside the device: not probed",
			         w->shown, partno);
			continue;
		}
		p->partno = (unsigned int)partno;
		p->start = (uint64_t)start;
		p->off = (uint64_t)start * 512;
		p->size = (uint64_t)size * 512;
		(*nparts)++;
	}
out:
	blkid_free_probe(pr);
	return r;
}

/* Partitions first (their table is needed to find them), then the disk. */
static int sig_walk(struct sigwalk *w)
{
	struct part *parts;
	char name[320];
	size_t n, i;
	int r;

	parts = calloc(MEDIA_MAX_PARTITIONS, sizeof(*parts));
	if (!parts)
		return alerr_set(w->e, ALERR_OSERR, -ENOMEM, "media.memory", "out of memory");
	r = list_partitions(w, parts, &n);
	for (i = 0; r == 0 && i < n; i++) {
		part_name(w, &parts[i], name, sizeof(name));
		r = probe_area(w, name, parts[i].off, parts[i].size);
	}
	if (r == 0)
		r = probe_area(w, w->shown, 0, 0);
	free(parts);
	return r;
}

static int open_error(struct alerr *e, const char *shown, int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ENXIO:
	case ENODEV:
		return alerr_set(e, ALERR_NOINPUT, -err, "media.not_found",
		                 "%s: %s", shown, strerror(err));
	case ELOOP:
		return alerr_set(e, ALERR_NOINPUT, -err, "media.symlink",
		                 "%s: a symbolic link (give the device or file itself)", shown);
	case ENOMEDIUM:
		return alerr_set(e, ALERR_NOINPUT, -err, "media.no_medium",
		                 "%s: no medium", shown);
	case EBUSY:
		return alerr_set(e, ALERR_TEMPFAIL, -err, "media.busy",
		                 "%s: in use (mounted or held by another program)", shown);
	case EROFS:
	case EACCES:
	case EPERM:
		return alerr_set(e, ALERR_USAGE, -err, "media.read_only",
		                 "%s: cannot open for writing: %s", shown, strerror(err));
	default:
		return alerr_set(e, ALERR_IOERR, -err, "media.open_failed",
		                 "%s: cannot open: %s", shown, strerror(err));
	}
}

/* Open path and check it is a block device or a regular file. */
static int open_media(const char *path, int flags, const char *shown, struct stat *st,
                      struct alerr *e)
{
	int fd;

	fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		int err = errno;

		/* Read-only open of a read-only device: not a refusal. */
		if (!(flags & (O_RDWR | O_WRONLY)) && (err == EACCES || err == EPERM))
			return alerr_set(e, ALERR_NOINPUT, -err, "media.open_failed",
			                 "%s: cannot open: %s", shown, strerror(err));
		return open_error(e, shown, err);
	}
	if (fstat(fd, st) < 0 || !(S_ISBLK(st->st_mode) || S_ISREG(st->st_mode))) {
		close(fd);
		return alerr_set(e, ALERR_NOINPUT, -ENOTBLK, "media.not_block",
		                 "%s: neither a block device nor a regular file", shown);
	}
	return fd;
}

int media_list_signatures(const char *path, media_signature_fn cb, void *ctx,
                          struct alerr *e)
{
	struct sigwalk w;
	struct stat st;
	int r;

	memset(&w, 0, sizeof(w));
	shown_path(w.shown, sizeof(w.shown), path);
	w.fd = open_media(path, O_RDONLY, w.shown, &st, e);
	if (w.fd < 0)
		return w.fd;
	w.cb = cb;
	w.ctx = ctx;
	w.e = e;
	if (S_ISBLK(st.st_mode)) {
		/* Read the media, not pages cached before someone else wrote. */
		(void)posix_fadvise(w.fd, 0, 0, POSIX_FADV_DONTNEED);
		w.udev = udev_new();
		if (w.udev)
			w.disk = udev_device_new_from_devnum(w.udev, 'b', st.st_rdev);
	}
	r = sig_walk(&w);
	udev_device_unref(w.disk);
	udev_unref(w.udev);
	close(w.fd);
	return r;
}

static void reread_partitions(int fd, const char *shown)
{
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	int i, err = 0;

	/* Right after a wipe the kernel or udevd may still hold a partition
	 * for a moment (as wipefs also finds). */
	for (i = 0; i < 5; i++) {
		if (ioctl(fd, BLKRRPART) == 0)
			return;
		err = errno;
		if (err != EBUSY)
			break;
		nanosleep(&ts, NULL);
	}
	if (err == EINVAL)
		log_dbg("%s: the kernel keeps no partitions for this device", shown);
	else
		log_warn("%s: the kernel could not re-read the partition table: %s",
		         shown, strerror(err));
}

int media_open_and_wipe(const struct media_info *info, int *fd_out,
                        media_signature_fn cb, void *ctx, struct alerr *e)
{
	struct sigwalk w;
	struct stat st;
	int r;

	*fd_out = -1;
	memset(&w, 0, sizeof(w));
	shown_path(w.shown, sizeof(w.shown), info->devnode);
	if (strcmp(info->devtype, "disk") != 0)
		return check_always(info, e);
	w.fd = open_media(info->devnode, O_RDWR | O_EXCL, w.shown, &st, e);
	if (w.fd < 0)
		return w.fd;
	if (!S_ISBLK(st.st_mode) ||
	    st.st_rdev != makedev(info->major, info->minor)) {
		r = alerr_set(e, ALERR_USAGE, -ESTALE, "media.changed",
		              "%s: no longer the device that was checked (%u:%u)",
		              w.shown, info->major, info->minor);
		goto fail;
	}
#ifdef BLKGETDISKSEQ
	if (info->diskseq != 0) {
		uint64_t seq = 0;

		if (ioctl(w.fd, BLKGETDISKSEQ, &seq) == 0 && seq != info->diskseq) {
			r = alerr_set(e, ALERR_USAGE, -ESTALE, "media.changed",
			              "%s: the media changed since it was checked "
			              "(disk sequence %" PRIu64 ", was %" PRIu64 ")",
			              w.shown, seq, info->diskseq);
			goto fail;
		}
	}
#endif
	/* Nothing can mount it now: this check cannot race. */
	r = check_always(info, e);
	if (r < 0)
		goto fail;

	(void)posix_fadvise(w.fd, 0, 0, POSIX_FADV_DONTNEED);
	w.wipe = 1;
	w.cb = cb;
	w.ctx = ctx;
	w.e = e;
	w.udev = udev_new();
	if (w.udev)
		w.disk = udev_device_new_from_devnum(w.udev, 'b', st.st_rdev);
	r = sig_walk(&w);
	udev_device_unref(w.disk);
	udev_unref(w.udev);
	if (r < 0)
		goto fail;
	if (fsync(w.fd) < 0) {
		int err = errno;

		r = alerr_set(e, ALERR_IOERR, -err, "media.wipe_failed",
		              "%s: cannot flush the wipe: %s", w.shown, strerror(err));
		goto fail;
	}
	reread_partitions(w.fd, w.shown);
	*fd_out = w.fd;
	return 0;
fail:
	close(w.fd);
	return r;
}

/* ------------------------------------------------------------------ */
/* media_identify */

/* AIRLOCK_<decimal, no leading zero, at most MEDIA_LABEL_MAX_DIGITS>. */
static int parse_label(const char *label, uint64_t *seq)
{
	size_t plen = strlen(LABEL_PREFIX), n;

	if (strncmp(label, LABEL_PREFIX, plen) != 0)
		return -EINVAL;
	label += plen;
	n = strlen(label);
	if (n == 0 || n > MEDIA_LABEL_MAX_DIGITS)
		return -EINVAL;
	return text_parse_u64(label, n, UINT64_MAX, seq);
}

int media_identify(const char *path, struct media_probe *out, struct alerr *e)
{
	const char *type = NULL, *label = NULL;
	char shown[256];
	blkid_probe pr = NULL;
	struct stat st;
	int64_t size;
	int fd, r = 0, rc;

	memset(out, 0, sizeof(*out));
	shown_path(shown, sizeof(shown), path);
	fd = open_media(path, O_RDONLY | O_EXCL, shown, &st, e);
	if (fd < 0)
		return fd;
	pr = blkid_new_probe();
	if (!pr) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "media.memory", "out of memory");
		goto out;
	}
	errno = 0;
	if (blkid_probe_set_device(pr, fd, 0, 0) != 0) {
		int err = errno ? errno : EIO;

		r = err == ENOMEDIUM ? open_error(e, shown, err)
		    : alerr_set(e, ALERR_IOERR, -err, "media.probe_failed",
		                "%s: libblkid cannot open it: %s", shown, strerror(err));
		goto out;
	}
	size = blkid_probe_get_size(pr);
	out->size_bytes = size > 0 ? (uint64_t)size : 0;
	if (size <= 0) {
		r = alerr_set(e, ALERR_NOINPUT, -ENOMEDIUM, "media.not_airlock",
		              "%s: empty: not an airlock volume", shown);
		goto out;
	}
	blkid_probe_enable_partitions(pr, 0);
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL);
	errno = 0;
	rc = blkid_do_safeprobe(pr);
	if (rc == 1) {
		r = alerr_set(e, ALERR_NOINPUT, -ENOMEDIUM, "media.not_airlock",
		              "%s: no known signature: not an airlock volume", shown);
		goto out;
	}
	if (rc == -2) {
		r = alerr_set(e, ALERR_NOINPUT, -ENOMEDIUM, "media.not_airlock",
		              "%s: ambiguous signatures (more than one filesystem): "
		              "not an airlock volume", shown);
		goto out;
	}
	if (rc < 0) {
		int err = errno ? errno : EIO;

		r = alerr_set(e, ALERR_IOERR, -err, "media.probe_failed",
		              "%s: libblkid cannot probe it: %s", shown, strerror(err));
		goto out;
	}
	if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) != 0)
		type = NULL;
	if (blkid_probe_lookup_value(pr, "LABEL", &label, NULL) != 0)
		label = NULL;
	clean_text(out->type, sizeof(out->type), type, 0);
	log_sanitize(out->label, sizeof(out->label), label ? label : "",
	             label ? strlen(label) : 0);
	if (!type || strcmp(type, "iso9660") != 0) {
		r = alerr_set(e, ALERR_NOINPUT, -ENOMEDIUM, "media.not_airlock",
		              "%s: a %s volume, not an airlock volume (iso9660)",
		              shown, out->type[0] ? out->type : "non-filesystem");
		goto out;
	}
	if (!label || parse_label(label, &out->sequence) < 0) {
		r = alerr_set(e, ALERR_NOINPUT, -ENOMEDIUM, "media.not_airlock",
		              "%s: iso9660 volume labelled '%s', not "
		              LABEL_PREFIX "<sequence>: not an airlock volume",
		              shown, out->label);
		goto out;
	}
out:
	blkid_free_probe(pr);
	close(fd);
	return r;
}
