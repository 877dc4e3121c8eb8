/* The ISO 9660 volume of a bundle (doc/bundle-format.md section 2):
 * written by libarchive's ISO 9660 writer straight onto a device or into
 * an image file, hashed as written, read back and compared; the Primary
 * Volume Descriptor parsed strictly; and the importer's listing of an
 * image through libarchive's ISO 9660 reader, that format alone. No
 * libarchive type leaves volume.c.
 *
 * Reason codes. Writer: "volume.bundle_layout" (the bundle directory is not
 * section 1's tree, ALERR_SOFTWARE), "volume.layout" (libarchive wrote an
 * image this module cannot make reproducible, ALERR_SOFTWARE),
 * "volume.archive" (libarchive refused), "volume.cancelled" (the progress
 * callback asked to stop), "media.write" (a write, ENOSPC included,
 * ALERR_IOERR), "media.flush", "media.read" (ALERR_IOERR),
 * "volume.readback_mismatch" (ALERR_IOERR). Probe and listing:
 * "volume.not_iso" (ALERR_NOINPUT: no ISO 9660 primary descriptor),
 * "volume.truncated", "volume.malformed", "volume.entry_name",
 * "volume.entry_type", "volume.duplicate", "volume.too_many_entries",
 * "volume.too_large" (ALERR_REJECT). */
#ifndef AIRLOCK_VOLUME_H
#define AIRLOCK_VOLUME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "alerr.h"

#define VOLUME_BLOCK_SIZE     2048u
#define VOLUME_ID_SIZE        33          /* 32 characters + NUL */
#define VOLUME_APPLICATION_ID "AIRLOCK-BUNDLE-1"
#define VOLUME_LABEL_PREFIX   "AIRLOCK_"

/* What was written: the volume's size and the SHA-256 of its bytes. */
struct volume_info {
	uint64_t bytes;
	uint8_t sha256[32];
};

/* Called as bytes go by; done never exceeds total. A non-zero return
 * stops the operation ("volume.cancelled"). */
typedef int (*volume_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Write the volume for the bundle tree under bundle_dir (the directory
 * holding AIRLOCK/) onto out_fd (a block device or a new, empty regular
 * file, open for reading and writing and positioned at offset 0), as
 * section 2 says: label AIRLOCK_<sequence>, every
 * time set to created, owner 0:0, modes 0444/0555. The same tree and
 * created give the same bytes. libarchive spools the file contents in an
 * unnamed temporary file under bundle_dir (as much space again as the
 * files): while this runs the process environment has TMPDIR=bundle_dir
 * and TZ=UTC0, so call it when no other thread reads the environment.
 * progress (may be NULL) counts the spooled then the written bytes. */
int volume_write(const char *bundle_dir, int out_fd, uint64_t sequence, int64_t created,
                 volume_progress_fn progress, void *pctx, struct volume_info *out,
                 struct alerr *e);

/* Flush fd (fsync; for a block device also BLKFLSBUF, and drop its cached
 * pages so the read comes from the medium), read expected->bytes back from
 * offset 0 and compare their SHA-256. */
int volume_readback(int fd, const struct volume_info *expected,
                    volume_progress_fn progress, void *pctx, struct alerr *e);

/* Bytes from offset 0 that volume_probe_buffer wants: the system area and
 * room for the volume descriptor set. */
#define VOLUME_PROBE_BYTES    (32u * VOLUME_BLOCK_SIZE)

/* Parse the volume descriptors in the first len bytes of a volume (len of
 * at least 19 blocks; VOLUME_PROBE_BYTES is enough): the Primary Volume
 * Descriptor at block 16 gives the volume size (Volume Space Size x
 * Logical Block Size, which must be 2048) and the volume id (trailing
 * spaces removed). Any other descriptor before the terminator (a boot
 * record, a Joliet or other supplementary descriptor) is refused. For the
 * importer, which reads the media once: parse its first bytes, then copy. */
int volume_probe_buffer(const void *buf, size_t len, uint64_t *volume_bytes,
                        char volume_id[VOLUME_ID_SIZE], struct alerr *e);

/* volume_probe_buffer on the first bytes of fd (a regular file or a block
 * device, read with pread), and the volume must fit in it
 * ("volume.truncated"). */
int volume_probe(int fd, uint64_t *volume_bytes, char volume_id[VOLUME_ID_SIZE],
                 struct alerr *e);

/* An upper bound, within a few blocks per directory, of the bytes
 * volume_write will write for the bundle under bundle_dir. */
int volume_estimate(const char *bundle_dir, uint64_t *bytes, struct alerr *e);

/* The importer's caps on a volume's listing. */
struct volume_limits {
	uint64_t max_entries;   /* files and directories */
	uint64_t max_total;     /* bytes in all files */
	uint64_t max_path;      /* bytes in one path */
};

/* One entry of a listing: path relative to the volume root ("AIRLOCK",
 * "AIRLOCK/payload/000000.chunk"), without a trailing slash. */
typedef int (*volume_entry_fn)(void *ctx, const char *path, int is_dir, uint64_t size,
                               struct alerr *e);

/* List the image (a regular file) with libarchive's ISO 9660 reader and
 * nothing else, warnings counting as errors: only the directories and
 * files section 2 names, regular files and directories only, no path
 * twice, within lim and the bounds.h caps. The descriptors are checked
 * first as volume_probe does. entry_cb's non-zero return stops the
 * listing and is returned. */
int volume_list(const char *image_path, const struct volume_limits *lim,
                volume_entry_fn entry_cb, void *ctx, struct alerr *e);

/* One pass over an image with the same reader and checks as volume_list:
 * each entry once, in the order of its place on the volume, the current
 * file's data readable before the next entry is asked for. Reading many
 * files this way reads the image once. */
struct volume_walk;

int volume_walk_open(struct volume_walk **out, const char *image_path,
                     const struct volume_limits *lim, struct alerr *e);

/* The next entry (the root is left out): 1 with *path (valid until the
 * next call), *is_dir and *size set; 0 after the last; a negative errno
 * on a refusal, as volume_list's. */
int volume_walk_next(struct volume_walk *w, const char **path, int *is_dir, uint64_t *size,
                     struct alerr *e);

/* Read the current file's data: the count, 0 at its end, or a negative
 * errno. An unpack_read_fn (ctx is the struct volume_walk). */
ssize_t volume_walk_read(void *ctx, void *buf, size_t len, struct alerr *e);

/* NULL is allowed. */
void volume_walk_close(struct volume_walk *w);

/* One file of an image, streamed through the same reader and checks. */
struct volume_file;

/* Open the file at path ("AIRLOCK/MANIFEST") in the image, walking it
 * from the start (for one file; use volume_walk for many); *size gets its
 * size. A missing path is ALERR_REJECT "bundle.file_missing". */
int volume_file_open(struct volume_file **out, const char *image_path, const char *path,
                     const struct volume_limits *lim, uint64_t *size, struct alerr *e);

/* Read up to len bytes: the count, 0 at the end, or a negative errno. The
 * signature is an unpack_read_fn's (ctx is the struct volume_file). */
ssize_t volume_file_read(void *ctx, void *buf, size_t len, struct alerr *e);

/* NULL is allowed. */
void volume_file_close(struct volume_file *f);

/* The payload chunks AIRLOCK/payload/000000.chunk ... (n_chunks of them,
 * from the verified MANIFEST) of an image, read one after the other as
 * one stream: the source unpack_new reads the payload from. Chunks laid
 * out in order (as volume_write does) are read in one pass over the
 * image; a chunk placed before the one read last is looked for again
 * from the start. A chunk missing is "bundle.file_missing". */
struct volume_chunks;

int volume_chunks_open(struct volume_chunks **out, const char *image_path, uint64_t n_chunks,
                       const struct volume_limits *lim, struct alerr *e);

/* An unpack_read_fn: ctx is the struct volume_chunks. */
ssize_t volume_chunks_read(void *ctx, void *buf, size_t len, struct alerr *e);

/* NULL is allowed. */
void volume_chunks_close(struct volume_chunks *c);

#endif
