/* Verify a quarantined bundle image (doc/bundle-format.md section 6,
 * steps 3-10), in that order, stopping at the first failure: the listing
 * (ISO 9660 reader, caps), the signatures over MANIFEST, the strict
 * manifest parse and the volume label, the file set and every file's
 * size and SHA-256 streamed from the image, the channel, the sequence
 * against the last import, the clock checks and the media serial. Nothing
 * is decompressed here. The image is walked twice, whatever the number of
 * files: the listing, which also reads MANIFEST and the signature files,
 * then the payload files, hashed in the order they lie on the volume.
 *
 * Every refusal is ALERR_REJECT with the reason code of the format
 * document ("signature.threshold", "bundle.file_extra",
 * "checksum.mismatch", "policy.replay"...), except a bad policy or
 * keyring (ALERR_CONFIG "verify.policy", "signature.keyring": checked
 * before the image is read), memory (ALERR_OSERR) and GnuPG failing to
 * run (the sig module's classes). */
#ifndef AIRLOCK_VERIFY_H
#define AIRLOCK_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"
#include "manifest.h"
#include "sig.h"
#include "volume.h"

/* The database's view of a channel: what was last imported. */
struct verify_state {
	int has_last;
	uint64_t last_sequence;
	char last_manifest_sha256[65];   /* lower-case hex */
	int64_t newest_created;          /* newest accepted Created, 0: none */
};

struct verify_policy {
	const char *keyring_dir;
	const char *const *pinned;
	size_t n_pinned;
	unsigned int threshold;
	const char *const *channels;     /* accepted */
	size_t n_channels;
	int require_media_serial;
	const char *media_serial;        /* the inserted media's; NULL for an image */
	uint64_t max_entries, max_total, max_path;   /* volume_list caps, > 0 */
	int64_t now;                     /* the station clock */
	int64_t clock_skew;              /* tolerated future Created, >= 0 */
	/* the database's view, filled by the caller ... */
	int has_last;
	uint64_t last_sequence;
	char last_manifest_sha256[65];
	int64_t newest_created;
	/* ... or, when state_cb is not NULL, asked for once the signed
	 * channel is known (it then replaces the four fields above). A
	 * negative return stops verification with the error it set. */
	int (*state_cb)(void *ctx, const char *channel, struct verify_state *st,
	                struct alerr *e);
	void *state_ctx;
};

struct verify_result {
	struct manifest *manifest;       /* parsed, NULL before step 5 */
	uint8_t manifest_sha256[32];
	int have_manifest_sha256;        /* set once MANIFEST was read */
	struct sig_report sigs;          /* each signature's verdict, the valid signers */
	char volume_id[VOLUME_ID_SIZE];  /* "AIRLOCK_<sequence>" */
	uint64_t n_files;                /* payload files verified */
	uint64_t bytes;                  /* payload bytes hashed */
	const char *step;                /* the step that failed, or "done" */
};

/* Verify the image at image_path (a quarantine copy) under p. res is
 * filled as far as verification went, also on refusal (for the custody
 * entry); release it with verify_result_clear. */
int verify_bundle(const char *image_path, const struct verify_policy *p,
                  struct verify_result *res, struct alerr *e);

/* Free what verify_bundle put into res and zero it; NULL is allowed. */
void verify_result_clear(struct verify_result *res);

#endif
