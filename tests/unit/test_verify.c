/* verify_bundle on images forged by tests/tools/al-forge with the harness
 * keys: one test per catalogue case 1-24 (and a few volume cases 25-33 at
 * the verify level), each asserting the exact reason code and the key
 * part of the message; and a valid bundle that passes. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerr.h"
#include "digest.h"
#include "harness.h"
#include "harness_gpg.h"
#include "verify.h"

HARNESS_GPG_HOOKS();

#define CREATED INT64_C(1764335671)          /* al-forge's default */
#define VALID_FOR INT64_C(1209600)

static struct harness_keys K;
static const char *pinned[3];
static const char *const channels[] = { "nvd", "ghsa" };
static struct verify_policy P;
static struct verify_result R;
static struct alerr E;

static void setup(void)
{
	cr_assert_eq(harness_gpg_keys(&K), 0, "throwaway keys");
	pinned[0] = K.signer1;
	pinned[1] = K.signer2;
	pinned[2] = K.signer3;
	memset(&P, 0, sizeof(P));
	P.keyring_dir = K.keyring_home;
	P.pinned = pinned;
	P.n_pinned = 3;
	P.threshold = 1;
	P.channels = channels;
	P.n_channels = 2;
	P.max_entries = 1000;
	P.max_total = UINT64_C(1) << 32;
	P.max_path = 255;
	P.now = CREATED + 3600;
	P.clock_skew = 300;
	memset(&R, 0, sizeof(R));
	alerr_clear(&E);
}

/* Paths made by a test, freed after it. */
static char *owned[64];
static size_t n_owned;

static char *own(char *p)
{
	if (n_owned < sizeof(owned) / sizeof(owned[0]))
		owned[n_owned++] = p;
	return p;
}

static void teardown(void)
{
	verify_result_clear(&R);
	while (n_owned > 0)
		free(owned[--n_owned]);
}

TestSuite(verify, .init = setup, .fini = teardown, .timeout = 120);

/* al-forge --attack ATTACK with extra arguments (NULL-terminated) and
 * the given signers; returns the image path. */
static char *forge(const char *name, const char *attack, const char *const signers[],
                   const char *const extra[])
{
	const char *argv[64];
	char *tool = harness_strdup_printf("%s/tests/tools/al-forge", harness_builddir());
	char *img = harness_strdup_printf("%s/%s-%ld.iso", harness_scratch(), name,
	                                  (long)getpid());
	char *err = NULL;
	size_t n = 0, i;
	int st;

	argv[n++] = tool;
	argv[n++] = "--out";
	argv[n++] = img;
	argv[n++] = "--gnupghome";
	argv[n++] = K.signer_home;
	argv[n++] = "--attack";
	argv[n++] = attack;
	for (i = 0; signers && signers[i]; i++) {
		argv[n++] = "--signer";
		argv[n++] = signers[i];
	}
	for (i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	st = harness_run(argv, NULL, NULL, &err);
	cr_assert_eq(st, 0, "al-forge %s: %s", attack, err);
	free(err);
	free(tool);
	return own(img);
}

static char *forge1(const char *name, const char *attack, const char *signer)
{
	const char *s[] = { signer, NULL };

	return forge(name, attack, s, NULL);
}

static void expect(const char *img, const char *reason, const char *part)
{
	int r = verify_bundle(img, &P, &R, &E);

	cr_assert_lt(r, 0, "verified, expected %s", reason);
	cr_assert_str_eq(E.reason, reason, "%s", E.message);
	cr_assert_eq(E.cls, ALERR_REJECT, "%s: class %d", E.message, E.cls);
	cr_assert_eq(alerr_exit_code(E.cls), 65);
	if (part)
		cr_assert_not_null(strstr(E.message, part), "message: %s", E.message);
}

/* The verdict sig_verify gave the blob whose signer or name matches. */
static void expect_outcome(size_t i, const char *reason)
{
	cr_assert_gt(R.sigs.n, i, "only %zu signature outcomes", R.sigs.n);
	cr_assert_str_eq(R.sigs.outcomes[i].reason, reason, "%s",
	                 R.sigs.outcomes[i].detail);
}

static void expect_ok(const char *img)
{
	cr_assert_eq(verify_bundle(img, &P, &R, &E), 0, "%s [%s]", E.message, E.reason);
	cr_assert_str_eq(R.step, "done");
}

/* ---- a valid bundle ---- */

Test(verify, a_valid_bundle_passes_with_manifest_signers_and_hash)
{
	const char *s[] = { K.signer1, K.signer2, NULL };
	char *img = forge("valid", "none", s, NULL);
	struct volume_limits lim = { 1000, UINT64_C(1) << 32, 255 };
	struct volume_file *f = NULL;
	uint64_t size = 0;
	uint8_t sum[32];
	char buf[8192];
	ssize_t n;

	P.threshold = 2;
	expect_ok(img);
	cr_assert_not_null(R.manifest);
	cr_assert_str_eq(R.manifest->channel, "nvd");
	cr_assert_eq(R.manifest->sequence, 1);
	cr_assert_eq(R.manifest->n_files, 2);
	cr_assert_eq(R.n_files, 2);
	cr_assert_eq(R.sigs.n_valid, 2);
	cr_assert(strcmp(R.sigs.valid_signers[0], K.signer1) == 0 ||
	          strcmp(R.sigs.valid_signers[1], K.signer1) == 0);
	cr_assert_str_eq(R.volume_id, "AIRLOCK_1");
	/* The manifest hash is the SHA-256 of AIRLOCK/MANIFEST's bytes. */
	cr_assert_eq(volume_file_open(&f, img, "AIRLOCK/MANIFEST", &lim, &size, &E), 0);
	n = volume_file_read(f, buf, sizeof(buf), &E);
	cr_assert_eq((uint64_t)n, size);
	volume_file_close(f);
	digest_buffer(buf, (size_t)n, sum);
	cr_assert(digest_equal(sum, R.manifest_sha256));
}

/* ---- integrity, catalogue 1-5 ---- */

Test(verify, c01_one_flipped_payload_byte)
{
	expect(forge1("c01", "flip-chunk-byte", K.signer1), "checksum.mismatch",
	       "payload/000000.chunk: SHA-256");
}

Test(verify, c02_a_chunk_one_byte_short)
{
	expect(forge1("c02s", "chunk-short", K.signer1), "checksum.size_mismatch",
	       "payload/000001.chunk: 4095 bytes, the manifest says 4096");
}

Test(verify, c02_a_chunk_one_byte_long)
{
	expect(forge1("c02l", "chunk-long", K.signer1), "checksum.size_mismatch",
	       "payload/000001.chunk: 4097 bytes");
}

Test(verify, c03_a_file_the_manifest_does_not_list)
{
	expect(forge1("c03", "extra-file", K.signer1), "bundle.file_extra",
	       "payload/000002.chunk is on the volume but not listed");
}

Test(verify, c04_a_listed_file_the_volume_lacks)
{
	expect(forge1("c04", "missing-file", K.signer1), "bundle.file_missing",
	       "payload/000001.chunk is listed in MANIFEST but not on the volume");
}

Test(verify, c05_manifest_changed_after_signing)
{
	expect(forge1("c05", "manifest-byte", K.signer1), "signature.threshold", NULL);
	expect_outcome(0, "signature.bad");
	cr_assert_null(R.manifest, "the manifest is parsed only after the signatures");
}

/* ---- signatures and trust, catalogue 6-17 ---- */

Test(verify, c06_a_key_not_in_the_keyring)
{
	expect(forge1("c06", "none", K.unknown), "signature.threshold", NULL);
	expect_outcome(0, "signature.unknown_key");
}

Test(verify, c07_a_pinned_key_since_revoked)
{
	pinned[0] = K.revoked;
	expect(forge1("c07", "none", K.revoked), "signature.threshold", NULL);
	expect_outcome(0, "signature.revoked");
}

Test(verify, c08_an_expired_key)
{
	pinned[0] = K.expired;
	expect(forge1("c08k", "sign-in-2020", K.expired), "signature.threshold", NULL);
	expect_outcome(0, "signature.key_expired");
}

Test(verify, c08_an_expired_signature)
{
	expect(forge1("c08s", "expired-sig", K.signer1), "signature.threshold", NULL);
	expect_outcome(0, "signature.expired");
}

Test(verify, c09_a_key_in_the_keyring_but_not_pinned)
{
	expect(forge1("c09", "none", K.untrusted), "signature.threshold", NULL);
	expect_outcome(0, "signature.untrusted");
}

Test(verify, c10_a_subkey_that_may_not_sign)
{
	pinned[0] = K.encronly;
	expect(forge1("c10", "none", K.encronly_subkey), "signature.threshold", NULL);
	expect_outcome(0, "signature.wrong_usage");
}

Test(verify, c11_a_sha1_signature)
{
	expect(forge1("c11", "sha1", K.signer1), "signature.threshold", NULL);
	expect_outcome(0, "signature.weak_hash");
}

Test(verify, c12_no_signature_file)
{
	expect(forge1("c12n", "no-sig", K.signer1), "signature.none", "no signature files");
}

Test(verify, c12_an_empty_signature_file)
{
	expect(forge1("c12e", "empty-sig", K.signer1), "signature.threshold", NULL);
	expect_outcome(0, "signature.malformed");
}

Test(verify, c12_a_garbage_signature_file)
{
	expect(forge1("c12g", "garbage-sig", K.signer1), "signature.threshold", NULL);
	expect_outcome(0, "signature.malformed");
}

Test(verify, c13_an_inline_signed_message_with_other_content)
{
	expect(forge1("c13", "inline-sig", K.signer1), "signature.threshold", NULL);
	expect_outcome(0, "signature.malformed");
}

Test(verify, c14_the_same_key_twice_counts_once)
{
	P.threshold = 2;
	expect(forge1("c14", "sig-twice-same-key", K.signer1), "signature.threshold", NULL);
	cr_assert_eq(R.sigs.n_valid, 1);
}

Test(verify, c14_two_subkeys_of_one_primary_count_once)
{
	const char *s[] = { K.signer3_subkey, K.signer3_subkey2, NULL };

	P.threshold = 2;
	expect(forge("c14sub", "none", s, NULL), "signature.threshold", NULL);
	cr_assert_eq(R.sigs.n_valid, 1);
}

Test(verify, c15_one_bad_among_several_counts_for_nothing)
{
	const char *s[] = { K.signer1, K.signer2, K.signer3, NULL };
	char *img = forge("c15", "garbage-sig", s, NULL);

	P.threshold = 2;
	expect_ok(img);
	cr_assert_eq(R.sigs.n_valid, 2);
	verify_result_clear(&R);
	alerr_clear(&E);
	P.threshold = 3;
	expect(img, "signature.threshold", NULL);
	cr_assert_eq(R.sigs.n_valid, 2);
}

Test(verify, c16_a_clearsigned_manifest)
{
	expect(forge1("c16c", "clearsigned", K.signer1), "signature.threshold", NULL);
	expect_outcome(0, "signature.malformed");
}

Test(verify, c16_an_armored_signature)
{
	expect(forge1("c16a", "armored", K.signer1), "signature.threshold", NULL);
	expect_outcome(0, "signature.malformed");
}

Test(verify, c17_a_missing_keyring_is_refused_before_anything_is_read)
{
	P.keyring_dir = "/nonexistent/keyring";
	cr_assert_lt(verify_bundle("/nonexistent/image.iso", &P, &R, &E), 0);
	cr_assert_str_eq(E.reason, "signature.keyring", "%s", E.message);
	cr_assert_eq(E.cls, ALERR_CONFIG);
	cr_assert_str_eq(R.step, "policy");
}

Test(verify, c17_a_keyring_writable_by_others_is_refused)
{
	char *kr = own(harness_strdup_printf("%s/kr-%ld", harness_scratch(), (long)getpid()));
	char *cmd = own(harness_strdup_printf("cp -a '%s' '%s' && chmod 0777 '%s'",
	                                  K.keyring_home, kr, kr));
	const char *argv[] = { "sh", "-c", cmd, NULL };

	cr_assert_eq(harness_run(argv, NULL, NULL, NULL), 0);
	P.keyring_dir = kr;
	cr_assert_lt(verify_bundle("/nonexistent/image.iso", &P, &R, &E), 0);
	cr_assert_str_eq(E.reason, "signature.keyring", "%s", E.message);
	cr_assert_eq(E.cls, ALERR_CONFIG);
}

/* ---- policy, catalogue 18-24 ---- */

Test(verify, c18_a_sequence_older_than_the_last)
{
	const char *x[] = { "--sequence", "3", NULL };
	const char *s[] = { K.signer1, NULL };

	P.has_last = 1;
	P.last_sequence = 5;
	expect(forge("c18", "none", s, x), "policy.rollback",
	       "sequence 3 of channel nvd is older than the last imported, 5");
}

Test(verify, c19_the_same_bundle_again_is_a_replay)
{
	char *img = forge1("c19", "none", K.signer1);

	expect_ok(img);
	P.has_last = 1;
	P.last_sequence = 1;
	digest_hex(P.last_manifest_sha256, R.manifest_sha256);
	verify_result_clear(&R);
	expect(img, "policy.replay", "already imported");
}

Test(verify, c20_same_sequence_other_content_is_equivocation)
{
	P.has_last = 1;
	P.last_sequence = 1;
	memset(P.last_manifest_sha256, 'a', 64);
	expect(forge1("c20", "none", K.signer1), "policy.equivocation", "flagged for the auditor");
}

Test(verify, c21_past_valid_until)
{
	P.now = CREATED + VALID_FOR + 1;
	expect(forge1("c21", "none", K.signer1), "policy.expired",
	       "valid until 2025-12-12T13:14:31Z");
}

Test(verify, c22_created_in_the_future)
{
	P.now = CREATED - 301;
	expect(forge1("c22f", "none", K.signer1), "policy.future", "after the station clock");
}

Test(verify, c22_a_small_clock_skew_is_tolerated)
{
	P.now = CREATED - 299;
	expect_ok(forge1("c22s", "none", K.signer1));
}

Test(verify, c22_station_clock_before_the_newest_accepted)
{
	P.newest_created = CREATED + 86400;
	expect(forge1("c22c", "none", K.signer1), "policy.clock",
	       "earlier than the newest bundle already accepted");
}

Test(verify, c23_a_channel_not_accepted)
{
	const char *x[] = { "--channel", "osv", NULL };
	const char *s[] = { K.signer1, NULL };

	expect(forge("c23", "none", s, x), "policy.channel", "channel osv is not accepted");
}

Test(verify, c24_a_media_serial_that_does_not_match)
{
	const char *x[] = { "--media-serial", "4C530001230517115042", NULL };
	const char *s[] = { K.signer1, NULL };
	char *img = forge("c24", "none", s, x);

	P.require_media_serial = 1;
	P.media_serial = "4C530001230517115042";
	expect_ok(img);
	verify_result_clear(&R);
	P.media_serial = "4C530001230517115043";
	expect(img, "policy.media_serial", "does not match the signed 4C530001230517115042");
	verify_result_clear(&R);
	alerr_clear(&E);
	P.media_serial = NULL;
	expect(img, "policy.media_serial", "the media has none");
}

Test(verify, c24_a_required_serial_the_manifest_lacks)
{
	P.require_media_serial = 1;
	P.media_serial = "X";
	expect(forge1("c24n", "none", K.signer1), "policy.media_serial", "signs none");
}

Test(verify, the_state_callback_gives_the_last_import_of_the_channel)
{
	expect_ok(forge1("cb0", "none", K.signer1));
}

static int state_cb(void *ctx, const char *channel, struct verify_state *st, struct alerr *e)
{
	(void)e;
	cr_assert_str_eq(channel, "nvd");
	*(int *)ctx += 1;
	st->has_last = 1;
	st->last_sequence = 9;
	return 0;
}

Test(verify, the_state_callback_is_asked_once_the_channel_is_known)
{
	int calls = 0;

	P.state_cb = state_cb;
	P.state_ctx = &calls;
	expect(forge1("cb1", "none", K.signer1), "policy.rollback", NULL);
	cr_assert_eq(calls, 1);
}

/* ---- the volume, as verify sees it ---- */

Test(verify, a_label_that_does_not_match_the_sequence)
{
	const char *x[] = { "--label-sequence", "2", NULL };
	const char *s[] = { K.signer1, NULL };

	expect(forge("label", "none", s, x), "volume.label_mismatch",
	       "volume label AIRLOCK_2 does not match the signed Sequence 1");
}

Test(verify, c25_a_stray_file_is_refused_at_the_listing)
{
	expect(forge1("c25", "stray-file", K.signer1), "volume.entry_name", "AIRLOCK/README");
	cr_assert_str_eq(R.step, "list");
}

Test(verify, c26_a_symlink_entry_is_refused)
{
	expect(forge1("c26", "symlink", K.signer1), "volume.entry_type", "000001.chunk");
}

Test(verify, c31_the_entry_cap_is_applied)
{
	P.max_entries = 4;
	expect(forge1("c31", "none", K.signer1), "volume.too_many_entries", "more than 4");
}

Test(verify, c31_the_path_cap_is_applied)
{
	P.max_path = 16;
	expect(forge1("c31p", "none", K.signer1), "volume.entry_name", "a path of");
}

Test(verify, c30_the_total_size_cap_is_applied)
{
	P.max_total = 4096;
	expect(forge1("c30", "none", K.signer1), "volume.too_large", "exceed 4096 bytes");
}

Test(verify, c33_random_bytes_are_not_a_volume)
{
	char *img = own(harness_strdup_printf("%s/random-%ld.img", harness_scratch(), (long)getpid()));
	unsigned char buf[128 * 1024];
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)((i * 2654435761u) >> 9);
	harness_write_file(img, buf, sizeof(buf));
	cr_assert_lt(verify_bundle(img, &P, &R, &E), 0);
	cr_assert_str_eq(E.reason, "volume.not_iso", "%s", E.message);
	cr_assert_eq(E.cls, ALERR_NOINPUT);
}

Test(verify, a_bad_policy_is_a_config_error)
{
	P.threshold = 0;
	cr_assert_lt(verify_bundle("/nonexistent", &P, &R, &E), 0);
	cr_assert_str_eq(E.reason, "verify.policy");
	cr_assert_eq(E.cls, ALERR_CONFIG);
}

/* ---- one pass over the image for the payload ---- */

Test(verify, a_bundle_of_many_chunks_verifies_every_one)
{
	const char *x[] = { "--payload-size", "67108864", NULL };   /* 64 chunks */
	const char *s[] = { K.signer1, NULL };

	expect_ok(forge("many", "none", s, x));
	cr_assert_eq(R.manifest->n_files, 64);
	cr_assert_eq(R.n_files, 64);
	cr_assert_eq(R.bytes, UINT64_C(67108864));
}

/* img's files rebuilt by xorriso with the chunks laid out last first and
 * MANIFEST after them (libarchive's reader meets files in that order). */
static char *relayout(const char *img, const char *name)
{
	char *dir = own(harness_strdup_printf("%s/%s-%ld", harness_scratch(), name, (long)getpid()));
	char *out = own(harness_strdup_printf("%s.iso", dir));
	char *cmd = harness_strdup_printf(
		"mkdir '%s' && cd '%s' && bsdtar -xf '%s' AIRLOCK && chmod -R u+w AIRLOCK && "
		"xorriso -as mkisofs -quiet -R --sort-weight 30 /AIRLOCK/payload/000001.chunk "
		"--sort-weight 20 /AIRLOCK/payload/000000.chunk --sort-weight 10 /AIRLOCK/SIGNATURES "
		"-V AIRLOCK_1 -o '%s' . 2>&1", dir, dir, img, out);
	const char *argv[] = { "sh", "-c", cmd, NULL };
	char *o = NULL;

	cr_assert_eq(harness_run(argv, NULL, &o, NULL), 0, "%s", o);
	free(o);
	free(cmd);
	return out;
}

Test(verify, a_bundle_laid_out_in_another_order_verifies)
{
	expect_ok(relayout(forge1("layout", "none", K.signer1), "layout"));
	cr_assert_eq(R.n_files, 2);
}

Test(verify, a_flipped_byte_is_found_whatever_the_layout)
{
	expect(relayout(forge1("layoutflip", "flip-chunk-byte", K.signer1), "layoutflip"),
	       "checksum.mismatch", "payload/000000.chunk: SHA-256");
	cr_assert_str_eq(R.step, "files");
}
