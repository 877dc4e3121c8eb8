/* The writer pipeline: snapshot -> export -> pack -> seal -> place ->
 * record (doc/bundle-format.md, DESIGN.md). airlock-write's main parses
 * options into write_options and calls write_run. */
#ifndef AIRLOCK_WRITE_H
#define AIRLOCK_WRITE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "alerr.h"
#include "sig.h"

/* What the officer is asked to confirm before a device is wiped. */
struct write_target_facts {
	const char *devnode;
	const char *vendor;
	const char *model;
	const char *serial;
	uint64_t size_bytes;
};

struct write_options {
	const char *source;               /* libpq conninfo or URI */
	const char *const *schemas;
	size_t n_schemas;
	const char *channel;
	const char *const *signers;       /* fingerprints */
	size_t n_signers;
	const char *gnupghome;            /* NULL: GnuPG's default */
	const char *device;               /* exactly one of device, image */
	const char *image;
	int force_device;
	uint64_t sequence;                /* 0: one above the last written */
	uint64_t valid_for;               /* seconds */
	const char *courier;              /* may be NULL */
	const char *workdir;              /* parent of the private work dir */
	unsigned int jobs;
	uint64_t chunk_size;
	const char *custody_log;
	const char *state_dir;            /* low-side sequence state */
	int progress;                     /* draw progress bars on a tty */
	/* Called once the device passed its checks and before anything is
	 * exported or wiped; returns 0 to go on, a negative errno (with e
	 * filled) to stop. NULL: no confirmation (--yes). */
	int (*confirm)(void *ctx, const struct write_target_facts *t, struct alerr *e);
	void *confirm_ctx;
};

struct write_result {
	char bundle_id[37];
	char channel[64];
	uint64_t sequence;
	char manifest_sha256[65];
	char fingerprint[24];             /* "ABCD-EF01-2345-6789": read aloud */
	char target[4096];                /* device node or image path */
	char media_vendor[64];
	char media_model[64];
	char media_serial[128];
	char signers[SIG_MAX_FILES][SIG_FPR_SIZE];
	size_t n_signers;
	uint64_t tables;
	uint64_t rows;
	uint64_t payload_bytes;           /* compressed, all chunks */
	uint64_t volume_bytes;
	char volume_sha256[65];
	uint64_t custody_seq;
	char custody_hash[65];
	int64_t created;
	int64_t valid_until;
};

/* Set from a signal handler: the pipeline stops at its next check point,
 * removes its temporary files and fails with ALERR_TEMPFAIL "interrupted". */
extern volatile sig_atomic_t write_interrupted;

/* Run the whole writer. On failure nothing is left in the work directory,
 * no receipt is made and a custody entry records the failure (when the
 * log itself can be written). */
int write_run(const struct write_options *o, struct write_result *res, struct alerr *e);

#endif
