#!/bin/sh
# The auditor's commands printed in doc/bundle-format.md section 7, run
# verbatim against a bundle made by the real manifest, digest and sig
# modules: they must pass; after one byte of MANIFEST or of a chunk
# changes, they must fail.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$AIRLOCK_HARNESS/gpgkeys.sh" keys
trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
. ./keys/keys.env

# The block between the markers, without the fences.
sed -n '/<!-- BEGIN auditor-verify/,/<!-- END auditor-verify/p' \
	"$AIRLOCK_SRCDIR/doc/bundle-format.md" | sed -e '1,2d' -e '$d' | sed -e '$d' > verify.sh
grep -q 'gpgv' verify.sh || fail "no gpgv command found in doc/bundle-format.md"
grep -q 'sha256sum' verify.sh || fail "no sha256sum command found in doc/bundle-format.md"

# A 2.5 MiB payload: three chunks of at most 1 MiB.
head -c 2621440 /dev/urandom > payload.bin
"$AIRLOCK_BUILDDIR/tests/tools/al-mkbundle" --out good --payload payload.bin \
	--channel nvd --sequence 7 --gnupghome keys/signer \
	--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --chunk-size 1048576 >/dev/null
[ "$(ls good/AIRLOCK/payload | wc -l)" = 3 ] || fail "expected three chunks"

# The auditor's keyring: the pinned public keys only.
gpg --homedir keys/keyring --batch --quiet --export "$SIGNER1_FPR" "$SIGNER2_FPR" > pinned.gpg
KEYRING=$PWD/pinned.gpg
export KEYRING

run_verify() { (cd "$1" && sh -e ../verify.sh) > "$1.out" 2>&1; }

run_verify good || { cat good.out; fail "the documented commands refused a good bundle"; }
[ "$(grep -c '^\[GNUPG:\] VALIDSIG ' good.out)" = 2 ] || { cat good.out; fail "expected two VALIDSIG lines"; }
grep -q "VALIDSIG .* $SIGNER1_FPR\$" good.out || fail "signer1's primary fingerprint not reported"
grep -q "VALIDSIG .* $SIGNER2_FPR\$" good.out || fail "signer2's primary fingerprint not reported"
[ "$(grep -c ': OK$' good.out)" = 3 ] || { cat good.out; fail "expected three OK lines"; }

# One byte of MANIFEST changed after signing (Channel nvd -> nve): the
# signature check fails.
cp -R good tampered-manifest
chmod -R u+w tampered-manifest
printf 'nve' | dd of=tampered-manifest/AIRLOCK/MANIFEST bs=1 seek=34 conv=notrunc 2>/dev/null
cmp -s good/AIRLOCK/MANIFEST tampered-manifest/AIRLOCK/MANIFEST && fail "tampering did not change MANIFEST"
if run_verify tampered-manifest; then
	cat tampered-manifest.out
	fail "the documented commands accepted a tampered MANIFEST"
fi
grep -q 'BAD SIGNATURE' tampered-manifest.out || { cat tampered-manifest.out; fail "no BAD SIGNATURE line"; }

# One byte of a payload chunk changed: the checksum check fails.
cp -R good tampered-chunk
chmod -R u+w tampered-chunk
printf 'X' | dd of=tampered-chunk/AIRLOCK/payload/000001.chunk bs=1 seek=4096 conv=notrunc 2>/dev/null
cmp -s good/AIRLOCK/payload/000001.chunk tampered-chunk/AIRLOCK/payload/000001.chunk &&
	printf 'Y' | dd of=tampered-chunk/AIRLOCK/payload/000001.chunk bs=1 seek=4096 conv=notrunc 2>/dev/null
if run_verify tampered-chunk; then
	cat tampered-chunk.out
	fail "the documented commands accepted a tampered chunk"
fi
grep -q 'payload/000001.chunk: FAILED' tampered-chunk.out || { cat tampered-chunk.out; fail "no FAILED line for the chunk"; }

# A signature by a key the auditor did not pin: refused.
cp -R good unpinned
chmod -R u+w unpinned
rm -f unpinned/AIRLOCK/SIGNATURES/*.sig
gpg --homedir keys/signer --batch --quiet --yes -u "$UNTRUSTED_FPR!" --digest-algo SHA256 \
	--detach-sign -o "unpinned/AIRLOCK/SIGNATURES/$UNTRUSTED_FPR.sig" unpinned/AIRLOCK/MANIFEST
if run_verify unpinned; then
	cat unpinned.out
	fail "the documented commands accepted an unpinned signer"
fi
echo "doc-verify: documented commands pass on a good bundle and fail on 3 forgeries"
