/* Quarantine (doc/bundle-format.md section 6, step 2): the media, or an
 * image file, read once, sequentially, up to the size its ISO 9660
 * Primary Volume Descriptor declares, into a new root-only image file in a
 * new per-import directory, hashed as it is copied. After this the media
 * is never read again: everything else works on the copy.
 *
 * Reason codes: "media.not_found", "media.not_block" (neither a block
 * device nor a regular file), "media.not_airlock" (no ISO 9660 primary
 * descriptor or a label that is not AIRLOCK_<sequence>: ALERR_NOINPUT),
 * "media.busy" (ALERR_TEMPFAIL), "media.read" (ALERR_IOERR: a read
 * error, the media removed or shorter mid-copy), "volume.malformed",
 * "volume.too_large" (over the policy's cap), "volume.truncated" (the
 * media is shorter than its volume: ALERR_REJECT), "quarantine.policy"
 * (ALERR_CONFIG), "quarantine.dir" (the policy directory cannot be made,
 * is a symlink, not a directory, not ours or group/other writable),
 * "quarantine.full" (not enough free space, ENOSPC, EDQUOT),
 * "quarantine.write" (ALERR_CANTCREAT), "quarantine.cancelled". */
#ifndef AIRLOCK_QUARANTINE_H
#define AIRLOCK_QUARANTINE_H

#include <stdint.h>

#include "alerr.h"
#include "volume.h"

#define QUARANTINE_PATH_MAX 4096
#define QUARANTINE_IMAGE_NAME "image.iso"

struct quarantine_policy {
	const char *dir;        /* the quarantine directory (absolute) */
	uint64_t max_bytes;     /* cap on the declared volume size, > 0 */
	/* the import's custody run id (QUARANTINE_RUN_LEN characters of
	 * [0-9a-f-]), put in the copy's directory name, import-<run>-XXXXXX,
	 * so that a copy swept or kept names its run; NULL: import-XXXXXX */
	const char *run;
};

#define QUARANTINE_RUN_LEN 36u

struct quarantine_result {
	char dir[QUARANTINE_PATH_MAX];    /* <policy dir>/import-[<run>-]XXXXXX, 0700 */
	char image[QUARANTINE_PATH_MAX];  /* <dir>/image.iso, 0600 */
	uint64_t bytes;                   /* the declared volume size, copied */
	uint8_t sha256[32];               /* of those bytes */
	char volume_id[VOLUME_ID_SIZE];   /* "AIRLOCK_<sequence>" */
	/* Set by a refusal made before the copy exists (volume.malformed,
	 * volume.too_large, volume.truncated), as the evidence of what was
	 * seen: the SHA-256 of the source's first read_bytes bytes, the whole
	 * source for an image file of at most max_bytes, else the bytes the
	 * descriptors were probed from. */
	int have_read;
	uint64_t read_bytes;
	uint8_t read_sha256[32];
	/* dir, open and flock'ed while the import uses it (-1: none), so
	 * that quarantine_sweep knows a live import's copy from a dead one */
	int lock_fd;
};

/* Copy source (a block device, opened O_EXCL, or an image file, never a
 * symlink) into a new quarantine directory under p->dir, as said above.
 * progress (may be NULL) sees the bytes copied; a non-zero return stops
 * the copy. On any failure nothing is left under p->dir but what was
 * there before (and p->dir itself when it was created); res keeps the
 * volume id when it was read, and the have_read evidence. */
int quarantine_copy(const char *source, const struct quarantine_policy *p,
                    int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
                    struct quarantine_result *res, struct alerr *e);

/* Let go of the copy's lock (after it was removed or moved away). */
void quarantine_release(struct quarantine_result *res);

/* Remove the import-* directories under dir that no live import holds:
 * the partial copies of imports killed (SIGKILL, power loss) before they
 * could clean up. rejected/ is left alone. *removed (may be NULL) gets
 * their count; a missing dir is none. dead (may be NULL) is called with
 * the run id of each removed directory whose name holds one. */
int quarantine_sweep(const char *dir, size_t *removed,
                     void (*dead)(void *ctx, const char *run), void *ctx,
                     struct alerr *e);

/* 1 when an import of run (QUARANTINE_RUN_LEN characters) is alive: a
 * directory import-<run>-XXXXXX under dir is locked by it; else 0 (no
 * such directory, or none locked: its import is gone). */
int quarantine_run_alive(const char *dir, const char *run);

#endif
