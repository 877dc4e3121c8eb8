/* OpenPGP signatures on MANIFEST: detached signing on the low side and
 * M-of-N verification against pinned primary-key fingerprints on the high
 * side. The one wrapper around GPGME: no GPGME type leaves sig.c. */
#ifndef AIRLOCK_SIG_H
#define AIRLOCK_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"
#include "bounds.h"

/* A fingerprint as text: 40 (v4) or 64 (v5) upper-case hex digits + NUL. */
#define SIG_FPR_SIZE 65
#define SIG_DETAIL_MAX 256

/* Sign len bytes of data with the key whose primary or subkey fingerprint
 * is exactly signer_fpr, in GnuPG home gnupghome (NULL: GnuPG's default).
 * The key must be able to sign and be neither revoked nor expired; a
 * subkey fingerprint must name the subkey gpg signs with. The agent and
 * pinentry are used as configured (smartcards work). On success *sig_out
 * is a malloc'd binary detached signature (SHA-256 or stronger, checked
 * after signing: GPGME cannot choose the digest) and primary_fpr holds
 * the key's primary fingerprint. */
int sig_sign_detached(const char *gnupghome, const char *signer_fpr,
                      const void *data, size_t len,
                      void **sig_out, size_t *sig_len,
                      char primary_fpr[SIG_FPR_SIZE], struct alerr *e);

/* Check, without signing, that signer_fpr names a usable signing key in
 * gnupghome (the same rules as sig_sign_detached) and give its primary
 * fingerprint: the writer lists the signers in MANIFEST before signing. */
int sig_signer_resolve(const char *gnupghome, const char *signer_fpr,
                       char primary_fpr[SIG_FPR_SIZE], struct alerr *e);

/* What the importer trusts: its own GnuPG home and the primary-key
 * fingerprints allowed to sign; threshold distinct pinned keys needed. */
struct sig_policy {
	const char *keyring_dir;
	const char *const *pinned;
	size_t n_pinned;
	unsigned int threshold;
};

/* One detached-signature file from the volume. */
struct sig_blob {
	const char *name;
	const void *data;
	size_t len;
};

enum sig_verdict {
	SIG_VALID = 0,     /* signature.valid */
	SIG_BAD,           /* signature.bad */
	SIG_UNKNOWN_KEY,   /* signature.unknown_key */
	SIG_UNPINNED,      /* signature.untrusted */
	SIG_REVOKED,       /* signature.revoked */
	SIG_KEY_EXPIRED,   /* signature.key_expired */
	SIG_EXPIRED,       /* signature.expired */
	SIG_WEAK_HASH,     /* signature.weak_hash */
	SIG_WRONG_USAGE,   /* signature.wrong_usage */
	SIG_MALFORMED,     /* signature.malformed */
	SIG_DUPLICATE,     /* signature.duplicate */
};

/* The verdict on one blob. Fingerprints are empty when unknown. */
struct sig_outcome {
	enum sig_verdict verdict;
	char name[SIG_NAME_MAX + 1];         /* blob name, made printable */
	char primary_fpr[SIG_FPR_SIZE];      /* the signing key's primary */
	char signing_fpr[SIG_FPR_SIZE];      /* the (sub)key that signed */
	int64_t created;                     /* signature time, 0 if unknown */
	char reason[ALERR_REASON_MAX];       /* e.g. "signature.revoked" */
	char detail[SIG_DETAIL_MAX];         /* one line for people */
};

struct sig_report {
	struct sig_outcome *outcomes;        /* one per blob, in blob order */
	size_t n;
	char **valid_signers;                /* distinct pinned primary fprs */
	size_t n_valid;                      /* that signed validly, sorted */
};

/* Verify every blob as a detached signature over data under policy p and
 * fill r (also on rejection, so each blob's outcome can be logged; clear
 * it with sig_report_clear). Returns 0 only if n_valid >= threshold;
 * otherwise ALERR_REJECT "signature.threshold" ("signature.none" without
 * blobs), ALERR_CONFIG for a bad policy or keyring (checked before any
 * blob is read), ALERR_SOFTWARE/ALERR_OSERR when GnuPG cannot run. */
int sig_verify(const struct sig_policy *p, const void *data, size_t len,
               const struct sig_blob *sigs, size_t n_sigs,
               struct sig_report *r, struct alerr *e);

/* Free what sig_verify put into r and zero it. */
void sig_report_clear(struct sig_report *r);

/* Refuse a keyring directory that is missing, a symlink, not a
 * directory, not owned by the effective uid or writable by group or
 * others, or whose key files are ("signature.keyring", ALERR_CONFIG). */
int sig_keyring_check(const char *dir, struct alerr *e);

/* Canonical fingerprint: 40 or 64 hex digits, either case, nothing else
 * (no spaces, no 0x); written upper-case ("signature.fingerprint"). */
int sig_fpr_normalize(const char *in, char out[SIG_FPR_SIZE], struct alerr *e);

/* The stable reason code of a verdict ("signature.revoked"). */
const char *sig_verdict_reason(enum sig_verdict v);

#endif
