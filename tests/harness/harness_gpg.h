/* Throwaway GnuPG keys for the tests, made by tests/harness/gpgkeys.sh
 * once per test binary run and shared by all its tests (see that script
 * for what each key is). A Criterion binary generates them in its runner
 * process before any test is forked and stops the gpg-agents at its exit:
 *
 *     #include "harness_gpg.h"
 *     HARNESS_GPG_HOOKS();
 *
 * Tests then call harness_gpg_keys() to read the cached keys. */
#ifndef AIRLOCK_HARNESS_GPG_H
#define AIRLOCK_HARNESS_GPG_H

#include <criterion/hooks.h>
#include <stdlib.h>

#define HARNESS_FPR_SIZE 65
#define HARNESS_PATH_SIZE 512

struct harness_keys {
	char dir[HARNESS_PATH_SIZE];          /* what gpgkeys.sh made */
	char signer_home[HARNESS_PATH_SIZE];  /* secret keys: the low side */
	char keyring_home[HARNESS_PATH_SIZE]; /* the importer's keyring */
	char script[HARNESS_PATH_SIZE];       /* gpgkeys.sh itself */
	char signer1[HARNESS_FPR_SIZE];
	char signer2[HARNESS_FPR_SIZE];
	char signer3[HARNESS_FPR_SIZE];
	char signer3_subkey[HARNESS_FPR_SIZE];   /* gpg's default for signer3 */
	char signer3_subkey2[HARNESS_FPR_SIZE];  /* a second signing subkey */
	char revoked[HARNESS_FPR_SIZE];
	char expired[HARNESS_FPR_SIZE];
	char untrusted[HARNESS_FPR_SIZE];
	char unknown[HARNESS_FPR_SIZE];
	char encronly[HARNESS_FPR_SIZE];
	char encronly_subkey[HARNESS_FPR_SIZE];
};

/* Fill k, generating the keys into <scratch>/gpgkeys on the first call
 * of the run (serialised by a lock file, so concurrent test processes
 * wait for one generation). Exports AIRLOCK_SCRATCH so that forked tests
 * share the keys. Returns 0, or -1 after printing why. */
int harness_gpg_keys(struct harness_keys *k);

/* Make a fixture with "gpgkeys.sh sign": kind is one of the script's
 * fixture kinds (detached, sha1, armor, clearsign, inline, expired-key,
 * expired-sig, before-revocation, keyblock). Returns 0, or -1 after
 * printing gpg's complaint. */
int harness_gpg_fixture(const struct harness_keys *k, const char *kind,
                        const char *fpr, const char *in, const char *out);

/* Stop the gpg-agents of the generated homes (in the process that
 * generated them; a no-op elsewhere). Also registered with atexit. */
void harness_gpg_cleanup(void);

/* Generate in the runner before any test is forked; the agents are
 * stopped when the runner exits (atexit), after every test. */
#define HARNESS_GPG_HOOKS()                                              \
	ReportHook(PRE_ALL)(struct criterion_test_set *harness_gpg_set_) \
	{                                                                \
		struct harness_keys harness_gpg_k_;                      \
		(void)harness_gpg_set_;                                  \
		if (harness_gpg_keys(&harness_gpg_k_) != 0)              \
			abort();                                         \
	}                                                                \
	extern int harness_gpg_hooks_semicolon_

#endif
