/* Block devices: what a device is (libudev), whether airlock may wipe and
 * write it, which signatures are on it and wiping them (libblkid), and
 * whether a device or image holds an airlock volume. The only module that
 * includes libudev.h and blkid.h. Every string it hands out comes from the
 * device (firmware, udev database, on-media labels): decoded, sanitized,
 * untrusted, for display and logs only. */
#ifndef AIRLOCK_MEDIA_H
#define AIRLOCK_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"

struct media_info {
	char devnode[256];      /* "/dev/sdb" (the kernel's name when it exists) */
	char syspath[512];      /* "/sys/devices/.../block/sdb" */
	unsigned int major, minor;
	char devtype[16];       /* "disk" or "partition" */
	char bus[16];           /* ID_BUS ("usb", "ata"...), or "usb" from sysfs; "" */
	int removable;          /* the disk's sysfs removable attribute */
	char vendor[64];        /* ID_VENDOR_ENC decoded (ID_VENDOR, sysfs) */
	char model[64];         /* ID_MODEL_ENC decoded (ID_MODEL, sysfs) */
	char serial[128];       /* ID_SERIAL_SHORT (ID_SERIAL, USB sysfs) */
	char bus_path[256];     /* ID_PATH, or "" without the udev database */
	uint64_t size_bytes;    /* sysfs size * 512 */
	int read_only;          /* sysfs ro */
	uint64_t diskseq;       /* sysfs diskseq (Linux >= 5.15), else 0 */
};

/* Describe the block device behind devnode (symlinks followed; identified
 * by the device number of stat(devnode)). Works without udevd: missing
 * udev properties are taken from sysfs where sysfs has them. ENOENT is
 * ALERR_NOINPUT "media.not_found", anything but a block device
 * ALERR_NOINPUT "media.not_block". */
int media_inspect(const char *devnode, struct media_info *out, struct alerr *e);

/* May airlock wipe and write this target? Refuses with ALERR_USAGE, one
 * line naming the device and the reason: a partition
 * ("media.not_whole_disk"); the disk holding /, /usr, /boot, /boot/efi,
 * /efi or an active swap ("media.system_disk", always); a disk with
 * anything mounted on it, its partitions or the devices stacked on them
 * ("media.mounted", always) or with device-mapper/LVM/RAID stacked on it
 * ("media.in_use", always); a read-only device ("media.read_only"); not
 * USB ("media.not_usb") or not removable ("media.not_removable") unless
 * force_device; smaller than needed_bytes ("media.too_small"). The
 * mount and system state is read afresh from the device number; bus,
 * removable, read_only and size come from info. Writes nothing. */
int media_check_target(const struct media_info *info, int force_device,
                       uint64_t needed_bytes, struct alerr *e);

/* One signature found by libblkid, as wipefs lists it. Strings are
 * sanitized; label and uuid are "" when there is none. */
struct media_signature {
	const char *dev;        /* "/dev/sdb", "/dev/sdb1", "img (partition 1)" */
	const char *type;       /* "ext4", "vfat", "gpt", "PMBR"... */
	const char *usage;      /* "filesystem", "partition_table", "raid"... */
	uint64_t offset;        /* of the magic, from the start of dev */
	size_t len;             /* of the magic */
	const char *label;
	const char *uuid;
};

/* Called once per signature; a negative return stops the walk and is
 * returned by the caller of the walk. */
typedef int (*media_signature_fn)(void *ctx, const struct media_signature *sig);

/* Every signature (superblocks and partition tables, all of them, as
 * wipefs lists them) in each partition of path's partition table, then on
 * path itself. path is a block device or an image file; partitions are
 * found in the on-media table, so this needs no partition device nodes.
 * Reads only. */
int media_list_signatures(const char *path, media_signature_fn cb, void *ctx,
                          struct alerr *e);

/* Open the checked whole disk O_RDWR|O_EXCL (nothing else can mount or
 * hold it from then on), make sure it is still the device info describes
 * (device number, disk sequence: "media.changed") and that it is still
 * not mounted nor the system disk, wipe every signature on its partitions
 * and then on the disk with blkid_do_wipe (cb, when not NULL, sees each
 * one before it is wiped), flush, and have the kernel re-read the
 * partition table. *fd_out gets the exclusive fd for the volume write
 * (the caller closes it). A device in use is ALERR_TEMPFAIL
 * "media.busy". */
int media_open_and_wipe(const struct media_info *info, int *fd_out,
                        media_signature_fn cb, void *ctx, struct alerr *e);

struct media_probe {
	char type[32];          /* libblkid TYPE, "" when none */
	char label[64];         /* libblkid LABEL, sanitized, "" when none */
	uint64_t size_bytes;    /* of the device or image file */
	uint64_t sequence;      /* from the label, for an airlock volume */
};

/* Is path (block device or image file, never a symlink) an airlock
 * volume? Opens it read-only and exclusively and probes superblocks only
 * (no partitions), in this process, with libblkid's safe probe: an
 * airlock volume is TYPE iso9660 and LABEL AIRLOCK_<sequence> (decimal,
 * no leading zero, at most MEDIA_LABEL_MAX_DIGITS digits). Anything else,
 * ambiguous signatures included, is ALERR_NOINPUT "media.not_airlock"
 * with out filled for the log. Never mounts. A device in use is
 * ALERR_TEMPFAIL "media.busy". */
int media_identify(const char *path, struct media_probe *out, struct alerr *e);

/* Decode udev's \xNN escapes (ID_*_ENC values), trim surrounding blanks
 * and sanitize (log_sanitize) into out. in may be NULL (out = ""). */
void media_decode_udev(char *out, size_t size, const char *in);

#endif
