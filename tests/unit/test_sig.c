/* The sig module against real GnuPG keys (tests/harness/gpgkeys.sh):
 * catalogue cases 6-17, signing, and the external gpgv check. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerr.h"
#include "harness.h"
#include "harness_gpg.h"
#include "sig.h"
#include "sig_packet.h"

HARNESS_GPG_HOOKS();

static const char manifest[] =
	"Format: airlock-1\n"
	"Channel: feeds\n"
	"Sequence: 42\n"
	"SHA256:\n"
	" 0f343b0931126a20f133d67c2b018a3b8ee8b4e1aa4b0b8c7dd8a2c6a7e5a7a1"
	" 1048576 payload/000000.chunk\n";

static struct harness_keys K;
static char *wd;            /* this test's own directory */
static char *manifest_path; /* manifest written there */

#define MAX_BLOBS (SIG_MAX_FILES + 1)
static struct sig_blob blobs[MAX_BLOBS];
static size_t n_blobs;
static struct sig_report rep;
static struct alerr err;

static void setup(void)
{
	char *tmpl;

	cr_assert_eq(harness_gpg_keys(&K), 0, "throwaway keys");
	tmpl = harness_strdup_printf("%s/t.XXXXXX", harness_scratch());
	cr_assert_not_null(mkdtemp(tmpl));
	wd = tmpl;
	manifest_path = harness_strdup_printf("%s/MANIFEST", wd);
	harness_write_file(manifest_path, manifest, sizeof(manifest) - 1);
	n_blobs = 0;
	alerr_clear(&err);
	memset(&rep, 0, sizeof(rep));
}

static void teardown(void)
{
	size_t i;

	sig_report_clear(&rep);
	for (i = 0; i < n_blobs; i++)
		free((void *)(uintptr_t)blobs[i].data);
	free(manifest_path);
	free(wd);
}

TestSuite(sig, .init = setup, .fini = teardown);

/* Append a blob that the test owns (data malloc'd). */
static void add_blob(const char *name, void *data, size_t len)
{
	cr_assert_lt(n_blobs, MAX_BLOBS);
	blobs[n_blobs].name = name;
	blobs[n_blobs].data = data;
	blobs[n_blobs].len = len;
	n_blobs++;
}

/* Sign the manifest through the module, as airlock-write does. */
static void add_signed(const char *name, const char *fpr, const char *want_primary)
{
	char primary[SIG_FPR_SIZE];
	struct alerr e;
	void *sig;
	size_t len;
	int rc;

	alerr_clear(&e);
	rc = sig_sign_detached(K.signer_home, fpr, manifest, sizeof(manifest) - 1,
	                       &sig, &len, primary, &e);
	cr_assert_eq(rc, 0, "signing with %s: %s [%s]", fpr, e.message, e.reason);
	cr_assert_str_eq(primary, want_primary);
	add_blob(name, sig, len);
}

/* A fixture made by gpgkeys.sh over the manifest (or over in). */
static void *make_fixture(const char *kind, const char *fpr, const char *in, size_t *len)
{
	char *out = harness_strdup_printf("%s/%s-%s.out", wd, kind, fpr);
	void *data;

	cr_assert_eq(harness_gpg_fixture(&K, kind, fpr, in ? in : manifest_path, out), 0,
	             "fixture %s by %s", kind, fpr);
	data = harness_read_file(out, len);
	cr_assert_not_null(data);
	free(out);
	return data;
}

static void add_fixture(const char *name, const char *kind, const char *fpr)
{
	size_t len;
	void *data = make_fixture(kind, fpr, NULL, &len);

	add_blob(name, data, len);
}

static void add_bytes(const char *name, const void *bytes, size_t len)
{
	void *data = malloc(len ? len : 1);

	cr_assert_not_null(data);
	if (len)
		memcpy(data, bytes, len);
	add_blob(name, data, len);
}

/* The default policy pins every key that may sign, but not "untrusted"
 * or "unknown". */
static int verify_with(const char *keyring, const void *data, size_t len,
                       unsigned int threshold, const char *const *pins, size_t n_pins)
{
	const char *dflt[] = { K.signer1, K.signer2, K.signer3, K.revoked,
	                       K.expired, K.encronly };
	struct sig_policy p;

	p.keyring_dir = keyring;
	p.pinned = pins ? pins : dflt;
	p.n_pinned = pins ? n_pins : sizeof(dflt) / sizeof(dflt[0]);
	p.threshold = threshold;
	sig_report_clear(&rep);
	alerr_clear(&err);
	return sig_verify(&p, data, len, blobs, n_blobs, &rep, &err);
}

static int verify(unsigned int threshold)
{
	return verify_with(K.keyring_home, manifest, sizeof(manifest) - 1,
	                   threshold, NULL, 0);
}

static void assert_outcome(size_t i, enum sig_verdict v, const char *reason)
{
	cr_assert_lt(i, rep.n);
	cr_assert_eq(rep.outcomes[i].verdict, v, "%s: verdict %d (%s: %s), want %s",
	             rep.outcomes[i].name, rep.outcomes[i].verdict,
	             rep.outcomes[i].reason, rep.outcomes[i].detail, reason);
	cr_assert_str_eq(rep.outcomes[i].reason, reason);
	cr_assert_str_eq(rep.outcomes[i].reason, sig_verdict_reason(v));
}

static void assert_rejected(const char *reason, const char *msg_part)
{
	cr_assert_eq(err.cls, ALERR_REJECT, "class %d: %s", err.cls, err.message);
	cr_assert_str_eq(err.reason, reason);
	cr_assert_not_null(strstr(err.message, msg_part), "message: %s", err.message);
}

/* One blob, threshold 1: refused with this verdict. */
static void assert_single_refused(enum sig_verdict v, const char *reason)
{
	char *part;

	cr_assert_neq(verify(1), 0);
	cr_assert_eq(rep.n, 1);
	assert_outcome(0, v, reason);
	cr_assert_eq(rep.n_valid, 0);
	part = harness_strdup_printf("1 valid signature required, 0 found (%s: %s)",
	                             blobs[0].name, reason);
	assert_rejected("signature.threshold", part);
	free(part);
}

/* Copy a GnuPG home's key files into <wd>/name (mode 0700). Not the
 * whole directory: other tests use it at the same time and gpg's lock
 * files come and go. */
static char *copy_home(const char *src, const char *name, const char *what)
{
	char *dst = harness_strdup_printf("%s/%s", wd, name);
	char *from = harness_strdup_printf("%s/%s", src, what);
	const char *argv[] = { "cp", "-pR", from, dst, NULL };

	if (mkdir(dst, 0700) < 0 && errno != EEXIST)
		cr_assert_fail("mkdir %s: %s", dst, strerror(errno));
	cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0, "cp %s", from);
	free(from);
	return dst;
}

static char *copy_keyring(const char *name)
{
	return copy_home(K.keyring_home, name, "pubring.kbx");
}

/* ---- signing and the good cases ---------------------------------- */

Test(sig, signer1_signs_and_verifies_with_threshold_1)
{
	add_signed("signer1.sig", K.signer1, K.signer1);
	cr_assert_eq(verify(1), 0, "%s [%s]", err.message, err.reason);
	assert_outcome(0, SIG_VALID, "signature.valid");
	cr_assert_str_eq(rep.outcomes[0].name, "signer1.sig");
	cr_assert_str_eq(rep.outcomes[0].primary_fpr, K.signer1);
	cr_assert_str_eq(rep.outcomes[0].signing_fpr, K.signer1);
	cr_assert_gt(rep.outcomes[0].created, 0);
	cr_assert_eq(rep.n_valid, 1);
	cr_assert_str_eq(rep.valid_signers[0], K.signer1);
	cr_assert_not(alerr_failed(&err));
}

Test(sig, empty_data_signs_and_verifies)
{
	char primary[SIG_FPR_SIZE];
	void *sig;
	size_t len;
	int rc;

	rc = sig_sign_detached(K.signer_home, K.signer1, NULL, 0, &sig, &len, primary, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	add_blob("empty-data.sig", sig, len);
	cr_assert_eq(verify_with(K.keyring_home, NULL, 0, 1, NULL, 0), 0, "%s", err.message);
	assert_outcome(0, SIG_VALID, "signature.valid");
	cr_assert_neq(verify(1), 0, "the same signature does not cover the manifest");
	assert_outcome(0, SIG_BAD, "signature.bad");
}

Test(sig, detached_signature_is_binary_sha256_or_stronger_one_packet)
{
	const unsigned char *p;
	const char *why = NULL;
	size_t hdr;

	add_signed("signer1.sig", K.signer1, K.signer1);
	p = blobs[0].data;
	cr_assert_eq(sig_packet_check(p, blobs[0].len, &why), 0, "%s", why);
	/* Old or new format header, then v4, type 0x00, hash >= SHA-256. */
	hdr = (p[0] & 0x40) ? (p[1] < 192 ? 2 : 3) : (size_t)((p[0] & 3) == 0 ? 2 : 3);
	cr_assert_eq(p[hdr], 4);
	cr_assert_eq(p[hdr + 1], 0x00);
	cr_assert(p[hdr + 3] == 8 || p[hdr + 3] == 9 || p[hdr + 3] == 10,
	          "hash algorithm %u", p[hdr + 3]);
}

Test(sig, threshold_2_with_signer1_and_signer2)
{
	add_signed("signer2.sig", K.signer2, K.signer2);
	add_signed("signer1.sig", K.signer1, K.signer1);
	cr_assert_eq(verify(2), 0, "%s", err.message);
	assert_outcome(0, SIG_VALID, "signature.valid");
	assert_outcome(1, SIG_VALID, "signature.valid");
	cr_assert_eq(rep.n_valid, 2);
	/* Sorted, whatever the blob order. */
	cr_assert_lt(strcmp(rep.valid_signers[0], rep.valid_signers[1]), 0);
	cr_assert(strcmp(rep.valid_signers[0], K.signer1) == 0 ||
	          strcmp(rep.valid_signers[1], K.signer1) == 0);
	cr_assert(strcmp(rep.valid_signers[0], K.signer2) == 0 ||
	          strcmp(rep.valid_signers[1], K.signer2) == 0);
}

Test(sig, signer3_subkey_counts_as_signer3_primary)
{
	const char *pins[] = { K.signer3 };

	add_signed("signer3.sig", K.signer3_subkey, K.signer3);
	cr_assert_eq(verify_with(K.keyring_home, manifest, sizeof(manifest) - 1, 1, pins, 1),
	             0, "%s", err.message);
	assert_outcome(0, SIG_VALID, "signature.valid");
	cr_assert_str_eq(rep.outcomes[0].primary_fpr, K.signer3);
	cr_assert_str_eq(rep.outcomes[0].signing_fpr, K.signer3_subkey);
	cr_assert_str_eq(rep.valid_signers[0], K.signer3);
}

Test(sig, signing_with_a_certify_only_primary_uses_its_signing_subkey)
{
	add_signed("signer3.sig", K.signer3, K.signer3);
	cr_assert_eq(verify(1), 0, "%s", err.message);
	cr_assert_str_eq(rep.outcomes[0].signing_fpr, K.signer3_subkey);
}

Test(sig, signing_with_a_subkey_gpg_would_not_pick_is_refused)
{
	char primary[SIG_FPR_SIZE];
	void *sig = (void *)1;
	size_t len = 1;

	cr_assert_neq(sig_sign_detached(K.signer_home, K.signer3_subkey2, manifest,
	                                sizeof(manifest) - 1, &sig, &len, primary, &err), 0);
	cr_assert_eq(err.cls, ALERR_CONFIG);
	cr_assert_str_eq(err.reason, "signature.signer");
	cr_assert_not_null(strstr(err.message, K.signer3_subkey2), "%s", err.message);
	cr_assert_null(sig);
	cr_assert_eq(len, 0);
	cr_assert_str_eq(primary, "");
}

Test(sig, signing_with_a_nonexistent_fingerprint_fails_clearly)
{
	const char *none = "0123456789ABCDEF0123456789ABCDEF01234567";
	char primary[SIG_FPR_SIZE];
	void *sig;
	size_t len;

	cr_assert_neq(sig_sign_detached(K.signer_home, none, manifest,
	                                sizeof(manifest) - 1, &sig, &len, primary, &err), 0);
	cr_assert_eq(err.cls, ALERR_CONFIG);
	cr_assert_str_eq(err.reason, "signature.signer");
	cr_assert_not_null(strstr(err.message, "no key with fingerprint " "0123456789ABCDEF"),
	                   "%s", err.message);
	cr_assert_not_null(strstr(err.message, K.signer_home), "%s", err.message);
}

Test(sig, signing_with_a_malformed_fingerprint_fails_before_gnupg)
{
	char primary[SIG_FPR_SIZE];
	void *sig;
	size_t len;

	cr_assert_neq(sig_sign_detached(K.signer_home, "signer1", manifest,
	                                sizeof(manifest) - 1, &sig, &len, primary, &err), 0);
	cr_assert_str_eq(err.reason, "signature.fingerprint");
	cr_assert_not_null(strstr(err.message, "\"signer1\""), "%s", err.message);
}

Test(sig, signing_with_an_expired_key_is_refused)
{
	char primary[SIG_FPR_SIZE];
	void *sig;
	size_t len;

	cr_assert_neq(sig_sign_detached(K.signer_home, K.expired, manifest,
	                                sizeof(manifest) - 1, &sig, &len, primary, &err), 0);
	cr_assert_eq(err.cls, ALERR_CONFIG);
	cr_assert_str_eq(err.reason, "signature.signer");
	cr_assert_not_null(strstr(err.message, "has expired"), "%s", err.message);
}

Test(sig, signing_refuses_a_weak_digest_forced_by_gpg_conf)
{
	char *home = copy_home(K.signer_home, "signer-sha1", "pubring.kbx");
	char *conf = harness_strdup_printf("%s/gpg.conf", home);
	const char *kill[] = { "gpgconf", "--homedir", home, "--kill", "all", NULL };
	const char *line = "digest-algo SHA1\n";
	char primary[SIG_FPR_SIZE];
	void *sig;
	size_t len;
	int rc;

	free(copy_home(K.signer_home, "signer-sha1", "private-keys-v1.d"));
	harness_write_file(conf, line, strlen(line));
	rc = sig_sign_detached(home, K.signer1, manifest, sizeof(manifest) - 1,
	                       &sig, &len, primary, &err);
	harness_run(kill, NULL, NULL, NULL);
	cr_assert_neq(rc, 0);
	cr_assert_str_eq(err.reason, "signature.weak_hash");
	cr_assert_not_null(strstr(err.message, "SHA1"), "%s", err.message);
	free(conf);
	free(home);
}

/* ---- catalogue 6-11: keys and algorithms --------------------------- */

Test(sig, case06_key_not_in_keyring)
{
	add_fixture("unknown.sig", "detached", K.unknown);
	assert_single_refused(SIG_UNKNOWN_KEY, "signature.unknown_key");
	cr_assert_str_eq(rep.outcomes[0].signing_fpr, K.unknown);
	cr_assert_str_eq(rep.outcomes[0].primary_fpr, "");
}

Test(sig, case07_pinned_key_revoked_after_signing)
{
	add_fixture("revoked.sig", "before-revocation", K.revoked);
	assert_single_refused(SIG_REVOKED, "signature.revoked");
	cr_assert_str_eq(rep.outcomes[0].primary_fpr, K.revoked);
}

Test(sig, case07_revoked_key_signing_now_is_refused_too)
{
	/* signer/ never saw the revocation, so the module signs happily. */
	add_signed("revoked.sig", K.revoked, K.revoked);
	assert_single_refused(SIG_REVOKED, "signature.revoked");
}

Test(sig, case08_expired_key)
{
	add_fixture("expired.sig", "expired-key", K.expired);
	assert_single_refused(SIG_KEY_EXPIRED, "signature.key_expired");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "2020-12-31"), "%s",
	                   rep.outcomes[0].detail);
}

Test(sig, case08_expired_signature)
{
	add_fixture("signer2.sig", "expired-sig", K.signer2);
	assert_single_refused(SIG_EXPIRED, "signature.expired");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "2020-06-02"), "%s",
	                   rep.outcomes[0].detail);
}

Test(sig, case09_key_in_keyring_but_not_pinned)
{
	add_signed("untrusted.sig", K.untrusted, K.untrusted);
	assert_single_refused(SIG_UNPINNED, "signature.untrusted");
	cr_assert_str_eq(rep.outcomes[0].primary_fpr, K.untrusted);
}

Test(sig, case10_subkey_that_may_not_sign)
{
	add_fixture("encronly.sig", "detached", K.encronly_subkey);
	assert_single_refused(SIG_WRONG_USAGE, "signature.wrong_usage");
	cr_assert_str_eq(rep.outcomes[0].primary_fpr, K.encronly);
	cr_assert_str_eq(rep.outcomes[0].signing_fpr, K.encronly_subkey);
}

Test(sig, case11_sha1_signature)
{
	add_fixture("signer1.sig", "sha1", K.signer1);
	assert_single_refused(SIG_WEAK_HASH, "signature.weak_hash");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "SHA1"), "%s",
	                   rep.outcomes[0].detail);
}

/* ---- catalogue 12, 13, 16: what a signature file may hold ------------ */

Test(sig, case12_no_signature_files)
{
	cr_assert_neq(verify(1), 0);
	assert_rejected("signature.none", "no signature files");
	cr_assert_eq(rep.n, 0);
}

Test(sig, case12_empty_signature_file)
{
	add_bytes("empty.sig", "", 0);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "empty"));
}

Test(sig, case12_garbage_bytes)
{
	static const unsigned char garbage[] = {
		0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x42,
	};

	add_bytes("garbage.sig", garbage, sizeof(garbage));
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
}

Test(sig, case12_garbage_that_looks_like_a_signature_header)
{
	/* Tag 2, new format, length 40, body too short and nonsense. */
	static const unsigned char fake[] = { 0xc2, 0x28, 0x04, 0x00, 0x16, 0x08 };

	add_bytes("fake.sig", fake, sizeof(fake));
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "truncated"), "%s",
	                   rep.outcomes[0].detail);
}

Test(sig, case12_oversize_signature_file)
{
	size_t len = SIG_FILE_MAX_BYTES + 1;
	unsigned char *big = calloc(1, len);

	cr_assert_not_null(big);
	big[0] = 0x89;  /* old-format signature packet header */
	add_blob("big.sig", big, len);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "larger"));
}

Test(sig, more_signature_files_than_allowed_are_refused_unread)
{
	size_t i;

	for (i = 0; i < SIG_MAX_FILES + 1; i++)
		add_bytes("x.sig", "x", 1);
	cr_assert_neq(verify(1), 0);
	assert_rejected("signature.too_many", "at most 32");
	cr_assert_eq(rep.n, 0);
}

Test(sig, armored_signature_is_refused_binary_only)
{
	add_fixture("signer1.asc", "armor", K.signer1);
	cr_assert_eq(memcmp(blobs[0].data, "-----BEGIN PGP SIGNATURE", 24), 0);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
}

Test(sig, case13_inline_signed_message_with_other_content)
{
	const char *other = "Format: airlock-1\nChannel: evil\nSequence: 999\n";
	char *in = harness_strdup_printf("%s/other", wd);
	size_t len;
	void *data;

	harness_write_file(in, other, strlen(other));
	data = make_fixture("inline", K.signer1, in, &len);
	add_blob("signer1.sig", data, len);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	free(in);
}

Test(sig, case13_inline_signed_message_with_the_same_content)
{
	add_fixture("signer1.sig", "inline", K.signer1);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
}

Test(sig, case16_clearsigned_manifest)
{
	add_fixture("signer1.sig", "clearsign", K.signer1);
	cr_assert_eq(memcmp(blobs[0].data, "-----BEGIN PGP SIGNED MESSAGE", 29), 0);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
}

Test(sig, case16_key_block_in_the_signature_file)
{
	add_fixture("signer1.sig", "keyblock", K.signer1);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "not a signature packet"),
	                   "%s", rep.outcomes[0].detail);
}

Test(sig, case16_key_block_after_a_good_signature)
{
	size_t slen, klen;
	void *s = make_fixture("detached", K.signer1, NULL, &slen);
	void *kb = make_fixture("keyblock", K.untrusted, NULL, &klen);
	char *both = malloc(slen + klen);

	cr_assert_not_null(both);
	memcpy(both, s, slen);
	memcpy(both + slen, kb, klen);
	free(s);
	free(kb);
	add_blob("signer1.sig", both, slen + klen);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "data after"));
}

Test(sig, two_signatures_concatenated_in_one_file)
{
	size_t l1, l2;
	void *s1 = make_fixture("detached", K.signer1, NULL, &l1);
	void *s2 = make_fixture("detached", K.signer2, NULL, &l2);
	char *both = malloc(l1 + l2);

	cr_assert_not_null(both);
	memcpy(both, s1, l1);
	memcpy(both + l1, s2, l2);
	free(s1);
	free(s2);
	add_blob("both.sig", both, l1 + l2);
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "data after"));
}

Test(sig, text_mode_signature_type_is_refused)
{
	unsigned char *p;
	size_t hdr;

	add_fixture("signer1.sig", "detached", K.signer1);
	p = (unsigned char *)(uintptr_t)blobs[0].data;
	hdr = (p[0] & 0x40) ? 2 : (size_t)((p[0] & 3) == 0 ? 2 : 3);
	p[hdr + 1] = 0x01;  /* canonical text document */
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "binary-document"));
}

Test(sig, version_3_signature_packet_is_refused)
{
	unsigned char *p;
	size_t hdr;

	add_fixture("signer1.sig", "detached", K.signer1);
	p = (unsigned char *)(uintptr_t)blobs[0].data;
	hdr = (p[0] & 0x40) ? 2 : (size_t)((p[0] & 3) == 0 ? 2 : 3);
	p[hdr] = 3;
	assert_single_refused(SIG_MALFORMED, "signature.malformed");
	cr_assert_not_null(strstr(rep.outcomes[0].detail, "version 4"));
}

Test(sig, packet_framing_edge_cases)
{
	/* New-format partial body length and old-format indeterminate
	 * length are never valid for a signature. */
	static const unsigned char partial[] = { 0xc2, 0xe1, 0x04, 0x00 };
	static const unsigned char indeterminate[] = { 0x8b, 0x04, 0x00 };
	static const unsigned char onepass[] = { 0x90, 0x0d, 0x03, 0x00, 0x08, 0x16,
		1, 2, 3, 4, 5, 6, 7, 8, 1 };
	const char *why;

	cr_assert_eq(sig_packet_check(partial, sizeof(partial), &why), -EBADMSG);
	cr_assert_not_null(strstr(why, "partial"));
	cr_assert_eq(sig_packet_check(indeterminate, sizeof(indeterminate), &why), -EBADMSG);
	cr_assert_not_null(strstr(why, "indeterminate"));
	cr_assert_eq(sig_packet_check(onepass, sizeof(onepass), &why), -EBADMSG);
	cr_assert_not_null(strstr(why, "not a signature packet"));
	cr_assert_eq(sig_packet_check("x", 1, &why), -EBADMSG);
}

/* ---- catalogue 14, 15, 5: counting ----------------------------------- */

Test(sig, case14_same_key_twice_counts_once)
{
	add_signed("a.sig", K.signer1, K.signer1);
	add_signed("b.sig", K.signer1, K.signer1);
	cr_assert_neq(verify(2), 0);
	assert_outcome(0, SIG_VALID, "signature.valid");
	assert_outcome(1, SIG_DUPLICATE, "signature.duplicate");
	cr_assert_eq(rep.n_valid, 1);
	assert_rejected("signature.threshold",
	                "2 valid signatures required, 1 found (b.sig: signature.duplicate)");
}

Test(sig, case14_two_subkeys_of_one_primary_count_once)
{
	add_signed("sub1.sig", K.signer3_subkey, K.signer3);
	add_fixture("sub2.sig", "detached", K.signer3_subkey2);
	cr_assert_neq(verify(2), 0);
	assert_outcome(0, SIG_VALID, "signature.valid");
	assert_outcome(1, SIG_DUPLICATE, "signature.duplicate");
	cr_assert_str_eq(rep.outcomes[1].signing_fpr, K.signer3_subkey2);
	cr_assert_str_eq(rep.outcomes[1].primary_fpr, K.signer3);
	cr_assert_eq(rep.n_valid, 1);
	assert_rejected("signature.threshold", "2 valid signatures required, 1 found");
}

Test(sig, case15_one_bad_among_several_the_rest_still_count)
{
	add_signed("signer1.sig", K.signer1, K.signer1);
	add_bytes("garbage.sig", "\x89\x01", 2);
	add_fixture("revoked.sig", "before-revocation", K.revoked);
	add_signed("signer2.sig", K.signer2, K.signer2);
	cr_assert_eq(verify(2), 0, "%s", err.message);
	assert_outcome(0, SIG_VALID, "signature.valid");
	assert_outcome(1, SIG_MALFORMED, "signature.malformed");
	assert_outcome(2, SIG_REVOKED, "signature.revoked");
	assert_outcome(3, SIG_VALID, "signature.valid");
	cr_assert_eq(rep.n_valid, 2);
}

Test(sig, case15_refused_only_when_fewer_than_threshold_remain)
{
	add_signed("signer1.sig", K.signer1, K.signer1);
	add_fixture("signer2.sig", "before-revocation", K.revoked);
	add_signed("signer3.sig", K.signer3, K.signer3);
	cr_assert_neq(verify(3), 0);
	assert_outcome(0, SIG_VALID, "signature.valid");
	assert_outcome(1, SIG_REVOKED, "signature.revoked");
	assert_outcome(2, SIG_VALID, "signature.valid");
	cr_assert_eq(rep.n_valid, 2);
	assert_rejected("signature.threshold",
	                "3 valid signatures required, 2 found (signer2.sig: signature.revoked)");
}

Test(sig, case05_manifest_changed_after_signing)
{
	char *changed = strdup(manifest);

	cr_assert_not_null(changed);
	add_signed("signer1.sig", K.signer1, K.signer1);
	changed[strlen("Format: airlock-1\nChannel: feeds\nSequence: 4")] = '3';
	cr_assert_neq(verify_with(K.keyring_home, changed, strlen(changed), 1, NULL, 0), 0);
	assert_outcome(0, SIG_BAD, "signature.bad");
	assert_rejected("signature.threshold",
	                "1 valid signature required, 0 found (signer1.sig: signature.bad)");
	free(changed);
}

/* ---- catalogue 17: the keyring itself -------------------------------- */

static void assert_keyring_refused(const char *keyring, const char *msg_part)
{
	/* A blob that would crash nothing but must not even be looked at. */
	add_signed("signer1.sig", K.signer1, K.signer1);
	cr_assert_neq(verify_with(keyring, manifest, sizeof(manifest) - 1, 1, NULL, 0), 0);
	cr_assert_eq(err.cls, ALERR_CONFIG, "class %d: %s", err.cls, err.message);
	cr_assert_str_eq(err.reason, "signature.keyring");
	cr_assert_not_null(strstr(err.message, msg_part), "message: %s", err.message);
	cr_assert_eq(rep.n, 0, "no blob was judged");
	cr_assert_null(rep.outcomes);
}

Test(sig, case17_keyring_missing)
{
	char *missing = harness_strdup_printf("%s/no-such-keyring", wd);

	assert_keyring_refused(missing, "does not exist");
	free(missing);
}

Test(sig, case17_keyring_writable_by_others)
{
	char *kr = copy_keyring("keyring-0777");

	cr_assert_eq(chmod(kr, 0777), 0);
	assert_keyring_refused(kr, "writable by group or others (mode 0777)");
	free(kr);
}

Test(sig, case17_keyring_owned_by_another_user)
{
	char *kr = copy_keyring("keyring-nobody");

	cr_assert_eq(geteuid(), 0, "needs root to chown (CI runs as root)");
	cr_assert_eq(chown(kr, 65534, 65534), 0);
	assert_keyring_refused(kr, "owned by uid 65534");
	free(kr);
}

Test(sig, case17_keyring_is_not_a_directory)
{
	char *file = harness_strdup_printf("%s/keyring-file", wd);

	harness_write_file(file, "x", 1);
	assert_keyring_refused(file, "not a directory");
	free(file);
}

Test(sig, case17_keyring_is_a_symlink)
{
	char *link = harness_strdup_printf("%s/keyring-link", wd);

	cr_assert_eq(symlink(K.keyring_home, link), 0);
	assert_keyring_refused(link, "symbolic link");
	free(link);
}

Test(sig, case17_keyring_file_writable_by_group)
{
	char *kr = copy_keyring("keyring-kbx");
	char *kbx = harness_strdup_printf("%s/pubring.kbx", kr);

	cr_assert_eq(chmod(kbx, 0664), 0);
	assert_keyring_refused(kr, "pubring.kbx must be a regular file");
	free(kbx);
	free(kr);
}

Test(sig, sig_keyring_check_accepts_the_real_keyring)
{
	cr_assert_eq(sig_keyring_check(K.keyring_home, &err), 0, "%s", err.message);
}

Test(sig, callers_gnupghome_is_ignored)
{
	/* GNUPGHOME holds every key; the policy even pins "unknown". Only the
	 * configured keyring counts, and "unknown" is not in it. */
	const char *pins[] = { K.signer1, K.unknown };

	cr_assert_eq(setenv("GNUPGHOME", K.signer_home, 1), 0);
	add_fixture("unknown.sig", "detached", K.unknown);
	cr_assert_neq(verify_with(K.keyring_home, manifest, sizeof(manifest) - 1, 1,
	                          pins, 2), 0);
	assert_outcome(0, SIG_UNKNOWN_KEY, "signature.unknown_key");
}

Test(sig, callers_gnupghome_cannot_lend_a_subkey_its_signing_usage)
{
	/* In GNUPGHOME (signer/) encronly's subkey may sign; in the keyring
	 * it may not. The keyring decides. */
	cr_assert_eq(setenv("GNUPGHOME", K.signer_home, 1), 0);
	add_fixture("encronly.sig", "detached", K.encronly_subkey);
	add_signed("signer1.sig", K.signer1, K.signer1);
	cr_assert_neq(verify(2), 0);
	assert_outcome(0, SIG_WRONG_USAGE, "signature.wrong_usage");
	assert_outcome(1, SIG_VALID, "signature.valid");
	assert_rejected("signature.threshold", "2 valid signatures required, 1 found "
	                "(encronly.sig: signature.wrong_usage)");
}

/* ---- policy and fingerprints ----------------------------------------- */

Test(sig, policy_threshold_zero_is_a_config_error)
{
	add_signed("signer1.sig", K.signer1, K.signer1);
	cr_assert_neq(verify(0), 0);
	cr_assert_eq(err.cls, ALERR_CONFIG);
	cr_assert_str_eq(err.reason, "signature.policy");
	cr_assert_eq(rep.n, 0);
}

Test(sig, policy_threshold_above_pinned_count_is_a_config_error)
{
	const char *pins[] = { K.signer1, K.signer2 };

	add_signed("signer1.sig", K.signer1, K.signer1);
	cr_assert_neq(verify_with(K.keyring_home, manifest, sizeof(manifest) - 1, 3,
	                          pins, 2), 0);
	cr_assert_eq(err.cls, ALERR_CONFIG);
	cr_assert_str_eq(err.reason, "signature.policy");
	cr_assert_not_null(strstr(err.message, "threshold 3"), "%s", err.message);
}

Test(sig, policy_pinned_twice_or_not_a_fingerprint_is_a_config_error)
{
	char lower[SIG_FPR_SIZE];
	const char *twice[] = { K.signer1, lower };
	const char *bad[] = { K.signer1, "DEADBEEF" };
	size_t i;

	for (i = 0; K.signer1[i]; i++)
		lower[i] = (char)(K.signer1[i] >= 'A' && K.signer1[i] <= 'F' ?
		                  K.signer1[i] - 'A' + 'a' : K.signer1[i]);
	lower[i] = '\0';
	add_signed("signer1.sig", K.signer1, K.signer1);
	cr_assert_neq(verify_with(K.keyring_home, manifest, sizeof(manifest) - 1, 1,
	                          twice, 2), 0);
	cr_assert_str_eq(err.reason, "signature.policy");
	cr_assert_not_null(strstr(err.message, "pinned twice"), "%s", err.message);
	cr_assert_neq(verify_with(K.keyring_home, manifest, sizeof(manifest) - 1, 1,
	                          bad, 2), 0);
	cr_assert_str_eq(err.reason, "signature.policy");
	cr_assert_not_null(strstr(err.message, "pinned key 2"), "%s", err.message);
}

Test(sig, pinned_fingerprints_may_be_lower_case)
{
	char lower[SIG_FPR_SIZE];
	const char *pins[1] = { lower };
	size_t i;

	for (i = 0; K.signer1[i]; i++)
		lower[i] = (char)(K.signer1[i] >= 'A' && K.signer1[i] <= 'F' ?
		                  K.signer1[i] - 'A' + 'a' : K.signer1[i]);
	lower[i] = '\0';
	add_signed("signer1.sig", K.signer1, K.signer1);
	cr_assert_eq(verify_with(K.keyring_home, manifest, sizeof(manifest) - 1, 1,
	                         pins, 1), 0, "%s", err.message);
	cr_assert_str_eq(rep.valid_signers[0], K.signer1);
}

Test(sig, fpr_normalize)
{
	static const char *const bad[] = {
		"0xF4F3348ED1057F7E572C5657DFF40530A2EAA00C",  /* prefix */
		"F4F3348ED1057F7E572C5657DFF40530A2EAA00",     /* 39 digits */
		"F4F3348ED1057F7E572C5657DFF40530A2EAA00C0",   /* 41 digits */
		"G4F3348ED1057F7E572C5657DFF40530A2EAA00C",    /* not hex */
		"DFF40530A2EAA00C",                            /* a key id */
		"",
		"F4F3348ED1057F7E572C5657DFF40530A2EAA00C\n",
		" F4F3348ED1057F7E572C5657DFF40530A2EAA00C",
	};
	char out[SIG_FPR_SIZE];
	struct alerr e;
	char v5[65];
	size_t i;

	alerr_clear(&e);
	cr_assert_eq(sig_fpr_normalize("f4f3348ed1057f7e572c5657dff40530a2eaa00c", out, &e), 0);
	cr_assert_str_eq(out, "F4F3348ED1057F7E572C5657DFF40530A2EAA00C");
	cr_assert_eq(sig_fpr_normalize("F4f3348Ed1057f7E572c5657dff40530A2EAA00C", out, &e), 0);
	cr_assert_str_eq(out, "F4F3348ED1057F7E572C5657DFF40530A2EAA00C");
	memset(v5, 'a', 64);
	v5[64] = '\0';
	cr_assert_eq(sig_fpr_normalize(v5, out, &e), 0);
	cr_assert_eq(strlen(out), 64);
	cr_assert_eq(out[0], 'A');

	cr_assert_eq(sig_fpr_normalize("F4F3 348E D105 7F7E 572C  5657 DFF4 0530 A2EA A00C",
	                               out, &e), -EINVAL);
	cr_assert_str_eq(e.reason, "signature.fingerprint");
	cr_assert_eq(e.cls, ALERR_USAGE);
	cr_assert_str_eq(out, "");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(out, "untouched");
		cr_assert_eq(sig_fpr_normalize(bad[i], out, NULL), -EINVAL, "%s", bad[i]);
		cr_assert_str_eq(out, "");
	}
	cr_assert_eq(sig_fpr_normalize(NULL, out, NULL), -EINVAL);
}

Test(sig, verdict_reasons_are_stable)
{
	cr_assert_str_eq(sig_verdict_reason(SIG_VALID), "signature.valid");
	cr_assert_str_eq(sig_verdict_reason(SIG_BAD), "signature.bad");
	cr_assert_str_eq(sig_verdict_reason(SIG_UNKNOWN_KEY), "signature.unknown_key");
	cr_assert_str_eq(sig_verdict_reason(SIG_UNPINNED), "signature.untrusted");
	cr_assert_str_eq(sig_verdict_reason(SIG_REVOKED), "signature.revoked");
	cr_assert_str_eq(sig_verdict_reason(SIG_KEY_EXPIRED), "signature.key_expired");
	cr_assert_str_eq(sig_verdict_reason(SIG_EXPIRED), "signature.expired");
	cr_assert_str_eq(sig_verdict_reason(SIG_WEAK_HASH), "signature.weak_hash");
	cr_assert_str_eq(sig_verdict_reason(SIG_WRONG_USAGE), "signature.wrong_usage");
	cr_assert_str_eq(sig_verdict_reason(SIG_MALFORMED), "signature.malformed");
	cr_assert_str_eq(sig_verdict_reason(SIG_DUPLICATE), "signature.duplicate");
}

/* ---- the external tool agrees ---------------------------------------- */

Test(sig, produced_signature_verifies_with_real_gpgv)
{
	char *sigf = harness_strdup_printf("%s/MANIFEST.sig", wd);
	char *kbx = harness_strdup_printf("%s/pubring.kbx", K.keyring_home);
	char *home = harness_strdup_printf("%s/gpgv-home", wd);
	const char *argv[] = { "gpgv", "--homedir", home, "--status-fd", "1",
	                       "--keyring", kbx, sigf, manifest_path, NULL };
	char *out = NULL, *errs = NULL, *want;
	int st;

	cr_assert_eq(mkdir(home, 0700), 0);
	add_signed("MANIFEST.sig", K.signer1, K.signer1);
	harness_write_file(sigf, blobs[0].data, blobs[0].len);
	st = harness_run(argv, NULL, &out, &errs);
	cr_assert_eq(st, 0, "gpgv exit %d:\n%s%s", st, out, errs);
	want = harness_strdup_printf("[GNUPG:] VALIDSIG %s ", K.signer1);
	cr_assert_not_null(strstr(out, want), "gpgv said:\n%s", out);
	free(want);
	free(out);
	free(errs);
	free(home);
	free(kbx);
	free(sigf);
}

Test(sig, gpgv_also_rejects_a_forged_manifest)
{
	/* A forgery must fail in the external tool too (signify's regress). */
	char *sigf = harness_strdup_printf("%s/MANIFEST.sig", wd);
	char *forged = harness_strdup_printf("%s/MANIFEST.forged", wd);
	char *kbx = harness_strdup_printf("%s/pubring.kbx", K.keyring_home);
	char *home = harness_strdup_printf("%s/gpgv-home", wd);
	const char *argv[] = { "gpgv", "--homedir", home, "--keyring", kbx, sigf,
	                       forged, NULL };
	const char *text = "Format: airlock-1\nChannel: feeds\nSequence: 43\n";

	cr_assert_eq(mkdir(home, 0700), 0);
	add_signed("MANIFEST.sig", K.signer1, K.signer1);
	harness_write_file(sigf, blobs[0].data, blobs[0].len);
	harness_write_file(forged, text, strlen(text));
	cr_assert_neq(harness_run(argv, NULL, NULL, NULL), 0);
	free(home);
	free(kbx);
	free(forged);
	free(sigf);
}

/* ---- resolving a signer without signing ---------------------------- */

Test(sig, signer_resolve_gives_the_primary_of_a_subkey)
{
	char fpr[SIG_FPR_SIZE];
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(sig_signer_resolve(K.signer_home, K.signer3_subkey, fpr, &e), 0,
	             "%s", e.message);
	cr_assert_str_eq(fpr, K.signer3);
	cr_assert_eq(sig_signer_resolve(K.signer_home, K.signer1, fpr, &e), 0, "%s", e.message);
	cr_assert_str_eq(fpr, K.signer1);
}

Test(sig, signer_resolve_refuses_unknown_and_expired_keys)
{
	char fpr[SIG_FPR_SIZE];
	struct alerr e;

	alerr_clear(&e);
	cr_assert_lt(sig_signer_resolve(K.signer_home,
	             "0000000000000000000000000000000000000000", fpr, &e), 0);
	cr_assert_str_eq(e.reason, "signature.signer");
	cr_assert_eq(e.cls, ALERR_CONFIG);
	cr_assert_str_eq(fpr, "");
	alerr_clear(&e);
	cr_assert_lt(sig_signer_resolve(K.signer_home, K.expired, fpr, &e), 0);
	cr_assert(strstr(e.message, "expired"), "%s", e.message);
}
