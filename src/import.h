/* The importer pipeline: detect -> identify -> quarantine -> verify ->
 * restore -> record (DESIGN.md, doc/bundle-format.md section 6).
 * airlock-import's main parses options into import_options and calls
 * import_run. */
#ifndef AIRLOCK_IMPORT_H
#define AIRLOCK_IMPORT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "alerr.h"
#include "sig.h"

struct import_options {
	const char *device;               /* exactly one of device, image */
	const char *image;
	const char *target;               /* libpq conninfo of the feeds database */
	const char *keyring;              /* airlock's own GnuPG home */
	const char *const *trust;         /* pinned primary-key fingerprints */
	size_t n_trust;
	unsigned int threshold;
	const char *const *channels;      /* accepted channels */
	size_t n_channels;
	int require_media_serial;
	const char *quarantine;           /* quarantine directory */
	uint64_t max_bytes;
	uint64_t max_files;
	uint64_t max_path;
	uint64_t lock_timeout;            /* seconds */
	uint64_t retention;               /* seconds rejected copies are kept */
	unsigned int jobs;
	const char *custody_log;
	int verify_only;                  /* stop before the restore */
	int progress;                     /* progress bars on a terminal */
};

enum import_outcome {
	IMPORT_RESTORED = 0,   /* verified and restored */
	IMPORT_VERIFIED,       /* --verify-only: verified, not restored */
	IMPORT_IGNORED,        /* not an airlock volume: left alone */
	IMPORT_REJECTED,       /* refused (exit 65) */
	IMPORT_FAILED,         /* any other failure */
};

struct import_result {
	enum import_outcome outcome;
	char run_id[40];
	char source[4096];
	char device_serial[128];
	char image_sha256[65];
	uint64_t image_bytes;
	char kept[4096];                  /* where a refused copy is kept */
	char channel[64];
	uint64_t sequence;
	char bundle_id[37];
	char manifest_sha256[65];
	char signers[SIG_MAX_FILES][SIG_FPR_SIZE];
	size_t n_signers;
	size_t tables;
	uint64_t rows;
	double restore_seconds;
	int major_differs;
	uint32_t source_version;
	uint32_t target_version;
	uint64_t custody_seq;
	char custody_hash[65];
};

/* Set from a signal handler: the import stops at its next check point;
 * before the swap nothing is changed, after it the import completes. */
extern volatile sig_atomic_t import_interrupted;

/* Run one import. Every stage leaves a custody entry, success or refusal;
 * a refusal, or a configuration error found after the copy, keeps the
 * quarantine copy under <quarantine>/rejected. */
int import_run(const struct import_options *o, struct import_result *res, struct alerr *e);

const char *import_outcome_name(enum import_outcome o);

#endif
