#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gpgme.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sig.h"
#include "sig_packet.h"

static const char *const verdict_reasons[] = {
	[SIG_VALID] = "signature.valid",
	[SIG_BAD] = "signature.bad",
	[SIG_UNKNOWN_KEY] = "signature.unknown_key",
	[SIG_UNPINNED] = "signature.untrusted",
	[SIG_REVOKED] = "signature.revoked",
	[SIG_KEY_EXPIRED] = "signature.key_expired",
	[SIG_EXPIRED] = "signature.expired",
	[SIG_WEAK_HASH] = "signature.weak_hash",
	[SIG_WRONG_USAGE] = "signature.wrong_usage",
	[SIG_MALFORMED] = "signature.malformed",
	[SIG_DUPLICATE] = "signature.duplicate",
};

const char *sig_verdict_reason(enum sig_verdict v)
{
	if ((size_t)v >= sizeof(verdict_reasons) / sizeof(verdict_reasons[0]))
		return "signature.bad";
	return verdict_reasons[v];
}

int sig_fpr_normalize(const char *in, char out[SIG_FPR_SIZE], struct alerr *e)
{
	char shown[96];
	size_t n, i;

	out[0] = '\0';
	if (!in)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "signature.fingerprint",
		                 "missing fingerprint");
	n = strnlen(in, SIG_FPR_SIZE);
	for (i = 0; i < n; i++) {
		char c = in[i];

		if (c >= 'a' && c <= 'f')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			break;
		out[i] = c;
	}
	if (i != n || (n != 40 && n != 64)) {
		out[0] = '\0';
		log_sanitize(shown, sizeof(shown), in, strnlen(in, 64));
		return alerr_set(e, ALERR_USAGE, -EINVAL, "signature.fingerprint",
		                 "not a key fingerprint: \"%s\" (40 or 64 hex "
		                 "digits, no spaces)", shown);
	}
	out[n] = '\0';
	return 0;
}

int sig_keyring_check(const char *dir, struct alerr *e)
{
	static const char *const files[] = {
		"pubring.kbx", "pubring.gpg", "trustdb.gpg", "gpg.conf",
		"common.conf",
	};
	struct stat st, dst;
	uid_t uid = geteuid();
	int dfd, rc = 0, have_ring = 0;
	size_t i;

	if (!dir || !*dir)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "signature.keyring",
		                 "no keyring directory configured");
	if (lstat(dir, &st) < 0) {
		int err = errno;

		return alerr_set(e, ALERR_CONFIG, -err, "signature.keyring",
		                 "keyring %s: %s", dir,
		                 err == ENOENT ? "does not exist" : strerror(err));
	}
	if (S_ISLNK(st.st_mode))
		return alerr_set(e, ALERR_CONFIG, -ELOOP, "signature.keyring",
		                 "keyring %s is a symbolic link", dir);
	if (!S_ISDIR(st.st_mode))
		return alerr_set(e, ALERR_CONFIG, -ENOTDIR, "signature.keyring",
		                 "keyring %s is not a directory", dir);
	if (st.st_uid != uid)
		return alerr_set(e, ALERR_CONFIG, -EPERM, "signature.keyring",
		                 "keyring %s is owned by uid %u, not by uid %u",
		                 dir, (unsigned int)st.st_uid, (unsigned int)uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return alerr_set(e, ALERR_CONFIG, -EPERM, "signature.keyring",
		                 "keyring %s is writable by group or others "
		                 "(mode %04o)", dir, (unsigned int)(st.st_mode & 07777));

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		int err = errno;

		return alerr_set(e, ALERR_CONFIG, -err, "signature.keyring",
		                 "keyring %s: %s", dir, strerror(err));
	}
	if (fstat(dfd, &dst) < 0 || dst.st_dev != st.st_dev || dst.st_ino != st.st_ino) {
		rc = alerr_set(e, ALERR_CONFIG, -EAGAIN, "signature.keyring",
		               "keyring %s changed while it was checked", dir);
		goto out;
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct stat fst;

		if (fstatat(dfd, files[i], &fst, AT_SYMLINK_NOFOLLOW) < 0) {
			int err = errno;

			if (err == ENOENT)
				continue;
			rc = alerr_set(e, ALERR_CONFIG, -err, "signature.keyring",
			               "keyring %s/%s: %s", dir, files[i], strerror(err));
			goto out;
		}
		if (!S_ISREG(fst.st_mode) || fst.st_uid != uid ||
		    (fst.st_mode & (S_IWGRP | S_IWOTH))) {
			rc = alerr_set(e, ALERR_CONFIG, -EPERM, "signature.keyring",
			               "keyring %s/%s must be a regular file owned by "
			               "uid %u and not writable by group or others",
			               dir, files[i], (unsigned int)uid);
			goto out;
		}
		if (i < 2)
			have_ring = 1;
	}
	if (!have_ring)
		rc = alerr_set(e, ALERR_CONFIG, -ENOENT, "signature.keyring",
		               "keyring %s holds no public keyring (pubring.kbx)", dir);
out:
	close(dfd);
	return rc;
}

/* A GPGME error as a negative errno. */
static int gerr_errno(gpgme_error_t err)
{
	int n = gpgme_err_code_to_errno(gpgme_err_code(err));

	return n > 0 ? -n : -EIO;
}

/* Errors of the machine (memory, processes, pipes) rather than of the
 * signature: they stop the whole operation. */
static int gerr_is_system(gpgme_error_t err)
{
	return (gpgme_err_code(err) & GPG_ERR_SYSTEM_ERROR) != 0 ||
	       gpgme_err_code(err) == GPG_ERR_ENOMEM;
}

static int gpgme_ready(struct alerr *e)
{
	gpgme_error_t err;

	if (!gpgme_check_version(GPGME_VERSION))
		return alerr_set(e, ALERR_SOFTWARE, -ENOSYS, "signature.engine",
		                 "GPGME %s is older than the %s airlock was built with",
		                 gpgme_check_version(NULL), GPGME_VERSION);
	err = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP);
	if (err)
		return alerr_set(e, ALERR_SOFTWARE, gerr_errno(err), "signature.engine",
		                 "GnuPG (gpg) is not usable: %s", gpgme_strerror(err));
	return 0;
}

static int ctx_open(gpgme_ctx_t *ctx, const char *home, gpgme_keylist_mode_t mode,
                    struct alerr *e)
{
	gpgme_error_t err;

	*ctx = NULL;
	err = gpgme_new(ctx);
	if (err)
		return alerr_set(e, ALERR_OSERR, gerr_errno(err), "signature.engine",
		                 "cannot create a GPGME context: %s", gpgme_strerror(err));
	err = gpgme_set_protocol(*ctx, GPGME_PROTOCOL_OpenPGP);
	if (!err && home)
		err = gpgme_ctx_set_engine_info(*ctx, GPGME_PROTOCOL_OpenPGP, NULL, home);
	if (!err)
		err = gpgme_set_keylist_mode(*ctx, mode);
	if (err) {
		gpgme_release(*ctx);
		*ctx = NULL;
		return alerr_set(e, ALERR_SOFTWARE, gerr_errno(err), "signature.engine",
		                 "cannot set up GPGME for %s: %s",
		                 home ? home : "the default GnuPG home", gpgme_strerror(err));
	}
	/* No keyserver, no dirmngr: nothing leaves the machine. */
	gpgme_set_offline(*ctx, 1);
	gpgme_set_armor(*ctx, 0);
	gpgme_set_textmode(*ctx, 0);
	return 0;
}

static int hash_is_strong(gpgme_hash_algo_t h)
{
	return h == GPGME_MD_SHA256 || h == GPGME_MD_SHA384 || h == GPGME_MD_SHA512;
}

static const char *hash_name(gpgme_hash_algo_t h)
{
	const char *s = gpgme_hash_algo_name(h);

	return s ? s : "an unknown hash";
}

static gpgme_subkey_t subkey_by_fpr(gpgme_key_t key, const char *fpr)
{
	gpgme_subkey_t s;

	for (s = key ? key->subkeys : NULL; s; s = s->next)
		if (s->fpr && strcasecmp(s->fpr, fpr) == 0)
			return s;
	return NULL;
}

static int subkey_signs(gpgme_subkey_t s)
{
	return s->can_sign && s->secret && !s->revoked && !s->expired &&
	       !s->disabled && !s->invalid;
}

/* The subkey gpg picks for "-u PRIMARY": the newest usable signing
 * (sub)key. GPGME can only name the primary key to gpg. */
static gpgme_subkey_t default_signing_subkey(gpgme_key_t key)
{
	gpgme_subkey_t s, best = NULL;

	for (s = key->subkeys; s; s = s->next)
		if (subkey_signs(s) && (!best || s->timestamp >= best->timestamp))
			best = s;
	return best;
}

static int signer_check(gpgme_key_t key, gpgme_subkey_t want, const char *home,
                        struct alerr *e)
{
	gpgme_subkey_t primary = key->subkeys, dflt;
	const char *fpr = want->fpr;

	if (key->revoked || primary->revoked)
		return alerr_set(e, ALERR_CONFIG, -EKEYREVOKED, "signature.signer",
		                 "signing key %s is revoked", primary->fpr);
	if (key->expired || primary->expired)
		return alerr_set(e, ALERR_CONFIG, -EKEYEXPIRED, "signature.signer",
		                 "signing key %s has expired", primary->fpr);
	if (key->disabled || key->invalid)
		return alerr_set(e, ALERR_CONFIG, -EKEYREJECTED, "signature.signer",
		                 "signing key %s is disabled or invalid", primary->fpr);
	dflt = default_signing_subkey(key);
	if (!dflt)
		return alerr_set(e, ALERR_CONFIG, -ENOKEY, "signature.signer",
		                 "key %s has no usable signing key with its secret "
		                 "part in %s", primary->fpr, home);
	if (want == primary)
		return 0;
	if (!want->can_sign)
		return alerr_set(e, ALERR_CONFIG, -EKEYREJECTED, "signature.signer",
		                 "subkey %s may not sign", fpr);
	if (!subkey_signs(want))
		return alerr_set(e, ALERR_CONFIG, -EKEYREJECTED, "signature.signer",
		                 "subkey %s is revoked, expired, invalid or has no "
		                 "secret part in %s", fpr, home);
	if (dflt != want)
		return alerr_set(e, ALERR_CONFIG, -EKEYREJECTED, "signature.signer",
		                 "subkey %s is not the one gpg signs with for %s "
		                 "(that is %s, the newest); name the primary key or "
		                 "that subkey", fpr, primary->fpr, dflt->fpr);
	return 0;
}

/* Open a signing context on gnupghome and find the usable signing key
 * named by signer_fpr (primary or subkey fingerprint): *want is the
 * subkey it names. On failure nothing is left open. */
static int signer_open(const char *gnupghome, const char *signer_fpr,
                       gpgme_ctx_t *ctx_out, gpgme_key_t *key_out,
                       gpgme_subkey_t *want_out, char fpr[SIG_FPR_SIZE],
                       struct alerr *e)
{
	const char *home = gnupghome ? gnupghome : "the default GnuPG home";
	gpgme_ctx_t ctx = NULL;
	gpgme_key_t key = NULL;
	gpgme_subkey_t want;
	gpgme_error_t err;
	int rc;

	*ctx_out = NULL;
	*key_out = NULL;
	*want_out = NULL;
	rc = sig_fpr_normalize(signer_fpr, fpr, e);
	if (rc)
		return rc;
	rc = gpgme_ready(e);
	if (rc)
		return rc;
	rc = ctx_open(&ctx, gnupghome,
	              GPGME_KEYLIST_MODE_LOCAL | GPGME_KEYLIST_MODE_WITH_SECRET, e);
	if (rc)
		return rc;
	err = gpgme_get_key(ctx, fpr, &key, 0);
	if (gpgme_err_code(err) == GPG_ERR_EOF) {
		rc = alerr_set(e, ALERR_CONFIG, -ENOKEY, "signature.signer",
		               "no key with fingerprint %s in %s", fpr, home);
		goto fail;
	}
	if (err) {
		rc = alerr_set(e, gerr_is_system(err) ? ALERR_OSERR : ALERR_CONFIG,
		               gerr_errno(err), "signature.signer",
		               "looking up key %s in %s: %s", fpr, home,
		               gpgme_strerror(err));
		goto fail;
	}
	want = subkey_by_fpr(key, fpr);
	if (!want || !key->subkeys->fpr) {
		rc = alerr_set(e, ALERR_CONFIG, -ENOKEY, "signature.signer",
		               "no key with fingerprint %s in %s", fpr, home);
		goto fail;
	}
	rc = signer_check(key, want, home, e);
	if (rc)
		goto fail;
	*ctx_out = ctx;
	*key_out = key;
	*want_out = want;
	return 0;
fail:
	gpgme_key_unref(key);
	gpgme_release(ctx);
	return rc;
}

int sig_signer_resolve(const char *gnupghome, const char *signer_fpr,
                       char primary_fpr[SIG_FPR_SIZE], struct alerr *e)
{
	gpgme_ctx_t ctx;
	gpgme_key_t key;
	gpgme_subkey_t want;
	char fpr[SIG_FPR_SIZE];
	int rc;

	primary_fpr[0] = '\0';
	rc = signer_open(gnupghome, signer_fpr, &ctx, &key, &want, fpr, e);
	if (rc)
		return rc;
	rc = sig_fpr_normalize(key->subkeys->fpr, primary_fpr, e);
	gpgme_key_unref(key);
	gpgme_release(ctx);
	return rc;
}

int sig_sign_detached(const char *gnupghome, const char *signer_fpr,
                      const void *data, size_t len,
                      void **sig_out, size_t *sig_len,
                      char primary_fpr[SIG_FPR_SIZE], struct alerr *e)
{
	const char *home = gnupghome ? gnupghome : "the default GnuPG home";
	gpgme_data_t in = NULL, out = NULL;
	gpgme_ctx_t ctx = NULL;
	gpgme_key_t key = NULL;
	gpgme_subkey_t want, used;
	gpgme_sign_result_t res;
	gpgme_new_signature_t ns;
	gpgme_error_t err;
	char fpr[SIG_FPR_SIZE];
	const char *why;
	char *buf = NULL;
	size_t blen = 0;
	int rc;

	if (sig_out)
		*sig_out = NULL;
	if (sig_len)
		*sig_len = 0;
	if (primary_fpr)
		primary_fpr[0] = '\0';
	if (!sig_out || !sig_len || !primary_fpr || (!data && len))
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "internal",
		                 "sig_sign_detached: invalid arguments");
	rc = signer_open(gnupghome, signer_fpr, &ctx, &key, &want, fpr, e);
	if (rc)
		goto out;

	gpgme_signers_clear(ctx);
	err = gpgme_signers_add(ctx, key);
	if (!err)
		err = gpgme_data_new_from_mem(&in, len ? data : "", len, 0);
	if (!err)
		err = gpgme_data_new(&out);
	if (err) {
		rc = alerr_set(e, ALERR_OSERR, gerr_errno(err), "signature.engine",
		               "GPGME: %s", gpgme_strerror(err));
		goto out;
	}
	err = gpgme_op_sign(ctx, in, out, GPGME_SIG_MODE_DETACH);
	if (err) {
		rc = alerr_set(e, gerr_is_system(err) ? ALERR_OSERR : ALERR_SOFTWARE,
		               gerr_errno(err), "signature.sign",
		               "signing with %s failed: %s", fpr, gpgme_strerror(err));
		goto out;
	}
	res = gpgme_op_sign_result(ctx);
	if (!res || res->invalid_signers || !res->signatures || res->signatures->next) {
		rc = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "signature.sign",
		               "signing with %s did not produce exactly one signature", fpr);
		goto out;
	}
	ns = res->signatures;
	if (ns->type != GPGME_SIG_MODE_DETACH || ns->sig_class != 0 || !ns->fpr) {
		rc = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "signature.sign",
		               "GnuPG made a signature of class 0x%02x, not a binary "
		               "detached one", ns->sig_class);
		goto out;
	}
	/* gpg takes the digest from its own configuration; GPGME cannot
	 * choose it, so check what came out. */
	if (!hash_is_strong(ns->hash_algo)) {
		rc = alerr_set(e, ALERR_CONFIG, -EKEYREJECTED, "signature.weak_hash",
		               "gpg signed with %s; the importer accepts only SHA-256, "
		               "SHA-384 or SHA-512 (check digest-algo and "
		               "personal-digest-preferences in %s/gpg.conf)",
		               hash_name(ns->hash_algo), home);
		goto out;
	}
	used = subkey_by_fpr(key, ns->fpr);
	if (!used || (want != key->subkeys && used != want)) {
		rc = alerr_set(e, ALERR_CONFIG, -EKEYREJECTED, "signature.signer",
		               "gpg signed with %s instead of %s", ns->fpr, fpr);
		goto out;
	}

	buf = gpgme_data_release_and_get_mem(out, &blen);
	out = NULL;
	if (!buf) {
		rc = alerr_set(e, ALERR_OSERR, -ENOMEM, "signature.engine",
		               "cannot take the signature from GPGME");
		goto out;
	}
	if (sig_packet_check(buf, blen, &why) < 0) {
		rc = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "signature.sign",
		               "GnuPG produced a signature the importer would refuse: %s",
		               why);
		goto out;
	}
	*sig_out = malloc(blen);
	if (!*sig_out) {
		rc = alerr_set(e, ALERR_OSERR, -ENOMEM, "signature.engine",
		               "out of memory");
		goto out;
	}
	memcpy(*sig_out, buf, blen);
	*sig_len = blen;
	rc = sig_fpr_normalize(key->subkeys->fpr, primary_fpr, e);
	if (rc) {
		free(*sig_out);
		*sig_out = NULL;
		*sig_len = 0;
	}
out:
	gpgme_free(buf);
	gpgme_data_release(out);
	gpgme_data_release(in);
	gpgme_key_unref(key);
	gpgme_release(ctx);
	return rc;
}

void sig_report_clear(struct sig_report *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n_valid; i++)
		free(r->valid_signers[i]);
	free(r->valid_signers);
	free(r->outcomes);
	memset(r, 0, sizeof(*r));
}

static void set_outcome(struct sig_outcome *o, enum sig_verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_outcome(struct sig_outcome *o, enum sig_verdict v, const char *fmt, ...)
{
	va_list ap;

	o->verdict = v;
	snprintf(o->reason, sizeof(o->reason), "%s", sig_verdict_reason(v));
	va_start(ap, fmt);
	vsnprintf(o->detail, sizeof(o->detail), fmt, ap);
	va_end(ap);
}

static void fmt_time(char *buf, size_t size, long int t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&tt, &tm) ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "an unknown time");
}

struct pinset {
	char (*fpr)[SIG_FPR_SIZE];
	size_t n;
};

static int pinned(const struct pinset *ps, const char *fpr)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->fpr[i], fpr) == 0)
			return 1;
	return 0;
}

/* Judge the one signature GnuPG reported for a blob. */
static int judge(gpgme_ctx_t ctx, const struct pinset *ps, gpgme_signature_t s,
                 struct sig_outcome *o, struct alerr *e)
{
	gpgme_error_t code = gpgme_err_code(s->status);
	gpgme_sigsum_t sum = s->summary;
	gpgme_key_t key = NULL;
	gpgme_subkey_t sub, primary;
	gpgme_error_t err;
	char when[48], shown[80];

	o->created = s->timestamp;
	if (s->fpr)
		log_sanitize(shown, sizeof(shown), s->fpr, strnlen(s->fpr, 64));
	else
		snprintf(shown, sizeof(shown), "(none)");

	if (code == GPG_ERR_BAD_SIGNATURE) {
		set_outcome(o, SIG_BAD, "signature by key %s does not match the "
		            "signed data", shown);
		return 0;
	}
	if (code == GPG_ERR_NO_PUBKEY || (sum & GPGME_SIGSUM_KEY_MISSING)) {
		(void)sig_fpr_normalize(s->fpr, o->signing_fpr, NULL);
		set_outcome(o, SIG_UNKNOWN_KEY, "signed by key %s, which is not in "
		            "the keyring", shown);
		return 0;
	}
	/* A key id alone (no issuer fingerprint) is not enough to look up. */
	if (!s->fpr || sig_fpr_normalize(s->fpr, o->signing_fpr, NULL) < 0) {
		set_outcome(o, SIG_UNKNOWN_KEY, "signature names key id %s but no "
		            "fingerprint (%s)", shown, gpgme_strerror(s->status));
		return 0;
	}
	err = gpgme_get_key(ctx, o->signing_fpr, &key, 0);
	if (err && gerr_is_system(err))
		return alerr_set(e, ALERR_OSERR, gerr_errno(err), "signature.engine",
		                 "looking up key %s: %s", o->signing_fpr,
		                 gpgme_strerror(err));
	sub = err ? NULL : subkey_by_fpr(key, o->signing_fpr);
	if (!sub || !key->subkeys->fpr ||
	    sig_fpr_normalize(key->subkeys->fpr, o->primary_fpr, NULL) < 0) {
		set_outcome(o, SIG_UNKNOWN_KEY, "signed by key %s, which is not in "
		            "the keyring%s%s", o->signing_fpr, err ? ": " : "",
		            err ? gpgme_strerror(err) : "");
		goto out;
	}
	primary = key->subkeys;

	if (!pinned(ps, o->primary_fpr)) {
		set_outcome(o, SIG_UNPINNED, "signed by key %s, which is in the "
		            "keyring but not pinned", o->primary_fpr);
		goto out;
	}
	if (key->revoked || primary->revoked || sub->revoked ||
	    code == GPG_ERR_CERT_REVOKED || (sum & GPGME_SIGSUM_KEY_REVOKED)) {
		if (sub != primary && sub->revoked && !primary->revoked)
			set_outcome(o, SIG_REVOKED, "signing subkey %s of key %s "
			            "has been revoked", sub->fpr, o->primary_fpr);
		else
			set_outcome(o, SIG_REVOKED, "key %s has been revoked",
			            o->primary_fpr);
		goto out;
	}
	if (key->expired || primary->expired || sub->expired ||
	    code == GPG_ERR_KEY_EXPIRED || (sum & GPGME_SIGSUM_KEY_EXPIRED)) {
		gpgme_subkey_t x = primary->expired ? primary : sub;

		fmt_time(when, sizeof(when), x->expires);
		set_outcome(o, SIG_KEY_EXPIRED, "%s %s expired on %s",
		            x == primary ? "key" : "signing subkey", x->fpr, when);
		goto out;
	}
	if (code == GPG_ERR_SIG_EXPIRED || (sum & GPGME_SIGSUM_SIG_EXPIRED)) {
		fmt_time(when, sizeof(when), (long int)s->exp_timestamp);
		set_outcome(o, SIG_EXPIRED, "signature by key %s expired on %s",
		            o->primary_fpr, when);
		goto out;
	}
	if (code == GPG_ERR_WRONG_KEY_USAGE || s->wrong_key_usage || !sub->can_sign) {
		set_outcome(o, SIG_WRONG_USAGE, "%s %s of key %s may not sign",
		            sub == primary ? "primary key" : "subkey", sub->fpr,
		            o->primary_fpr);
		goto out;
	}
	if (!hash_is_strong(s->hash_algo)) {
		set_outcome(o, SIG_WEAK_HASH, "signature by key %s uses %s; SHA-256, "
		            "SHA-384 or SHA-512 required", o->primary_fpr,
		            hash_name(s->hash_algo));
		goto out;
	}
	if (key->disabled || key->invalid || sub->disabled || sub->invalid) {
		set_outcome(o, SIG_BAD, "key %s is disabled or invalid in the keyring",
		            o->primary_fpr);
		goto out;
	}
	if (code != GPG_ERR_NO_ERROR) {
		set_outcome(o, SIG_BAD, "signature by key %s: %s", o->primary_fpr,
		            gpgme_strerror(s->status));
		goto out;
	}
	if (sum & (GPGME_SIGSUM_RED | GPGME_SIGSUM_CRL_MISSING | GPGME_SIGSUM_CRL_TOO_OLD |
	           GPGME_SIGSUM_BAD_POLICY | GPGME_SIGSUM_SYS_ERROR |
	           GPGME_SIGSUM_TOFU_CONFLICT)) {
		set_outcome(o, SIG_BAD, "signature by key %s: GnuPG reports a problem "
		            "(summary 0x%04x)", o->primary_fpr, (unsigned int)sum);
		goto out;
	}
	fmt_time(when, sizeof(when), s->timestamp);
	set_outcome(o, SIG_VALID, "good signature by key %s made on %s",
	            o->primary_fpr, when);
out:
	gpgme_key_unref(key);
	return 0;
}

/* Verify one blob; only failures of the machine return non-zero. */
static int verify_one(gpgme_ctx_t ctx, const struct pinset *ps,
                      const void *data, size_t len, const struct sig_blob *b,
                      struct sig_outcome *o, struct alerr *e)
{
	gpgme_data_t sigd = NULL, text = NULL;
	gpgme_verify_result_t res;
	gpgme_error_t err;
	const char *why;
	int rc = 0;

	if (b->name)
		log_sanitize(o->name, sizeof(o->name), b->name, strnlen(b->name, SIG_NAME_MAX));
	else
		snprintf(o->name, sizeof(o->name), "(unnamed)");
	if (!b->data && b->len) {
		set_outcome(o, SIG_MALFORMED, "no data");
		return 0;
	}
	/* Only one bare signature packet reaches GnuPG: no armor, no
	 * cleartext, no inline message, no key block, no second signature
	 * that could hide behind the first. */
	if (sig_packet_check(b->data, b->len, &why) < 0) {
		set_outcome(o, SIG_MALFORMED, "not one binary OpenPGP signature: %s", why);
		return 0;
	}
	err = gpgme_data_new_from_mem(&sigd, b->data, b->len, 0);
	if (!err)
		err = gpgme_data_new_from_mem(&text, len ? data : "", len, 0);
	if (err) {
		rc = alerr_set(e, ALERR_OSERR, gerr_errno(err), "signature.engine",
		               "GPGME: %s", gpgme_strerror(err));
		goto out;
	}
	err = gpgme_op_verify(ctx, sigd, text, NULL);
	if (err) {
		if (gerr_is_system(err)) {
			rc = alerr_set(e, ALERR_OSERR, gerr_errno(err), "signature.engine",
			               "verifying %s: %s", o->name, gpgme_strerror(err));
			goto out;
		}
		set_outcome(o, SIG_MALFORMED, "GnuPG cannot read it: %s",
		            gpgme_strerror(err));
		goto out;
	}
	res = gpgme_op_verify_result(ctx);
	if (!res || !res->signatures || res->signatures->next) {
		set_outcome(o, SIG_MALFORMED, "GnuPG found %s signature in it",
		            res && res->signatures ? "more than one" : "no");
		goto out;
	}
	rc = judge(ctx, ps, res->signatures, o, e);
out:
	gpgme_data_release(text);
	gpgme_data_release(sigd);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int policy_load(const struct sig_policy *p, struct pinset *ps, struct alerr *e)
{
	size_t i, j;

	ps->fpr = NULL;
	ps->n = 0;
	if (!p || !p->keyring_dir)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "signature.policy",
		                 "no keyring directory configured");
	if (p->n_pinned == 0 || !p->pinned)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "signature.policy",
		                 "no trusted key fingerprint is pinned");
	if (p->n_pinned > SIG_MAX_PINNED)
		return alerr_set(e, ALERR_CONFIG, -E2BIG, "signature.policy",
		                 "%zu pinned fingerprints, at most %u allowed",
		                 p->n_pinned, SIG_MAX_PINNED);
	if (p->threshold == 0 || p->threshold > p->n_pinned)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "signature.policy",
		                 "threshold %u must be between 1 and the number of "
		                 "pinned keys (%zu)", p->threshold, p->n_pinned);
	ps->fpr = calloc(p->n_pinned, sizeof(*ps->fpr));
	if (!ps->fpr)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "signature.engine",
		                 "out of memory");
	for (i = 0; i < p->n_pinned; i++) {
		struct alerr fe;

		alerr_clear(&fe);
		if (sig_fpr_normalize(p->pinned[i], ps->fpr[i], &fe) < 0)
			return alerr_set(e, ALERR_CONFIG, -EINVAL, "signature.policy",
			                 "pinned key %zu: %s", i + 1, fe.message);
		for (j = 0; j < i; j++)
			if (strcmp(ps->fpr[i], ps->fpr[j]) == 0)
				return alerr_set(e, ALERR_CONFIG, -EINVAL, "signature.policy",
				                 "key %s is pinned twice", ps->fpr[i]);
		ps->n = i + 1;
	}
	return 0;
}

/* "2 valid signatures required, 1 found (b.sig: signature.revoked, ...)" */
static int threshold_fail(const struct sig_report *r, unsigned int threshold,
                          struct alerr *e)
{
	char list[ALERR_MESSAGE_MAX];
	size_t i, off = 0;

	list[0] = '\0';
	for (i = 0; i < r->n; i++) {
		const struct sig_outcome *o = &r->outcomes[i];
		int n;

		if (o->verdict == SIG_VALID)
			continue;
		n = snprintf(list + off, sizeof(list) - off, "%s%s: %s",
		             off ? ", " : "", o->name, o->reason);
		if (n < 0 || (size_t)n >= sizeof(list) - off) {
			list[off] = '\0';
			break;
		}
		off += (size_t)n;
	}
	return alerr_set(e, ALERR_REJECT, -EBADMSG, "signature.threshold",
	                 "%u valid signature%s required, %zu found%s%s%s",
	                 threshold, threshold == 1 ? "" : "s", r->n_valid,
	                 off ? " (" : "", list, off ? ")" : "");
}

int sig_verify(const struct sig_policy *p, const void *data, size_t len,
               const struct sig_blob *sigs, size_t n_sigs,
               struct sig_report *r, struct alerr *e)
{
	struct pinset ps = { NULL, 0 };
	gpgme_ctx_t ctx = NULL;
	gpgme_error_t err;
	int rc, keep = 0;
	size_t i, j;

	if (!r || (!data && len) || (!sigs && n_sigs))
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "internal",
		                 "sig_verify: invalid arguments");
	memset(r, 0, sizeof(*r));
	rc = policy_load(p, &ps, e);
	if (rc)
		goto out;
	/* The keyring is judged before anything in it or on the media is
	 * read. */
	rc = sig_keyring_check(p->keyring_dir, e);
	if (rc)
		goto out;
	if (n_sigs == 0) {
		rc = alerr_set(e, ALERR_REJECT, -EBADMSG, "signature.none",
		               "no signature files: %u valid signature%s required",
		               p->threshold, p->threshold == 1 ? "" : "s");
		goto out;
	}
	if (n_sigs > SIG_MAX_FILES) {
		rc = alerr_set(e, ALERR_REJECT, -E2BIG, "signature.too_many",
		               "%zu signature files, at most %u allowed",
		               n_sigs, SIG_MAX_FILES);
		goto out;
	}
	rc = gpgme_ready(e);
	if (rc)
		goto out;
	rc = ctx_open(&ctx, p->keyring_dir, GPGME_KEYLIST_MODE_LOCAL, e);
	if (rc)
		goto out;
	/* Validity comes from the pinned list alone, never from the web of
	 * trust; "always" also keeps gpg from rebuilding the trustdb. */
	err = gpgme_set_ctx_flag(ctx, "trust-model", "always");
	if (err) {
		rc = alerr_set(e, ALERR_SOFTWARE, gerr_errno(err), "signature.engine",
		               "GPGME: %s", gpgme_strerror(err));
		goto out;
	}
	r->outcomes = calloc(n_sigs, sizeof(*r->outcomes));
	r->valid_signers = calloc(n_sigs, sizeof(*r->valid_signers));
	if (!r->outcomes || !r->valid_signers) {
		rc = alerr_set(e, ALERR_OSERR, -ENOMEM, "signature.engine", "out of memory");
		goto out;
	}
	r->n = n_sigs;
	for (i = 0; i < n_sigs; i++) {
		struct sig_outcome *o = &r->outcomes[i];

		rc = verify_one(ctx, &ps, data, len, &sigs[i], o, e);
		if (rc)
			goto out;
		if (o->verdict != SIG_VALID)
			continue;
		for (j = 0; j < r->n_valid; j++)
			if (strcmp(r->valid_signers[j], o->primary_fpr) == 0)
				break;
		if (j < r->n_valid) {
			set_outcome(o, SIG_DUPLICATE, "key %s already counted",
			            o->primary_fpr);
			continue;
		}
		r->valid_signers[r->n_valid] = strdup(o->primary_fpr);
		if (!r->valid_signers[r->n_valid]) {
			rc = alerr_set(e, ALERR_OSERR, -ENOMEM, "signature.engine",
			               "out of memory");
			goto out;
		}
		r->n_valid++;
	}
	for (i = 0; i < n_sigs; i++)
		log_dbg("signature %s: %s: %s", r->outcomes[i].name,
		        r->outcomes[i].reason, r->outcomes[i].detail);
	qsort(r->valid_signers, r->n_valid, sizeof(*r->valid_signers), cmp_str);
	keep = 1;
	if (r->n_valid < p->threshold)
		rc = threshold_fail(r, p->threshold, e);
out:
	if (rc && !keep)
		sig_report_clear(r);
	gpgme_release(ctx);
	free(ps.fpr);
	return rc;
}
