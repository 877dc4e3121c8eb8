#!/bin/sh
# al-forge, checked by tools that share no code with airlock: a valid
# forged image is a bundle that bsdtar lists, gpgv and sha256sum accept;
# each integrity attack is caught by them as it should be; the volume is
# the real writer's (blkid: iso9660, AIRLOCK_<sequence>).
set -eu
: "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"

fail() { echo "FAIL: $*" >&2; exit 1; }
forge="$AIRLOCK_BUILDDIR/tests/tools/al-forge"

"$AIRLOCK_HARNESS/gpgkeys.sh" keys
trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
. ./keys/keys.env
gpg --homedir keys/keyring --batch --quiet --export "$SIGNER1_FPR" > pinned.gpg

"$forge" --help | grep -q 'flip-chunk-byte' || fail "--help does not list the attacks"
"$forge" --attack no-such-attack --out x.iso --signer "$SIGNER1_FPR" 2>/dev/null && fail "an unknown attack was accepted"

# make NAME ATTACK [args]: forge, then extract the tree into NAME/
make() {
	name=$1 attack=$2
	shift 2
	"$forge" --out "$name.iso" --gnupghome keys/signer --signer "$SIGNER1_FPR" \
		--attack "$attack" --sequence 5 "$@" >/dev/null
	mkdir "$name"
	bsdtar -C "$name" -xf "$name.iso" AIRLOCK
}
sigok() { (cd "$1/AIRLOCK" && for s in SIGNATURES/*.sig; do
	gpgv --keyring "$PWD/../../pinned.gpg" "$s" MANIFEST >/dev/null 2>&1 || exit 1; done); }
sumok() { (cd "$1/AIRLOCK" && sed -e '1,/^SHA256:$/d' -e 's/^ \([0-9a-f]\{64\}\) [0-9]\{1,\} /\1  /' MANIFEST |
	sha256sum --strict --check --quiet >/dev/null 2>&1); }

make good none
blkid -p -o export good.iso | grep -qx 'LABEL=AIRLOCK_5' || fail "label is not AIRLOCK_5"
blkid -p -o export good.iso | grep -qx 'TYPE=iso9660' || fail "not an ISO 9660 volume"
sigok good || fail "gpgv refuses the valid forged bundle"
sumok good || fail "sha256sum refuses the valid forged bundle"
"$forge" --out again.iso --gnupghome keys/signer --signer "$SIGNER1_FPR" --sequence 5 >/dev/null
mkdir again && bsdtar -C again -xf again.iso AIRLOCK
cmp good/AIRLOCK/MANIFEST again/AIRLOCK/MANIFEST || fail "MANIFEST is not deterministic"
cmp good/AIRLOCK/payload/000000.chunk again/AIRLOCK/payload/000000.chunk || fail "payload is not deterministic"

make flip flip-chunk-byte
sigok flip || fail "flip-chunk-byte broke the signature"
sumok flip && fail "sha256sum accepts a flipped chunk byte"
make short chunk-short
sumok short && fail "sha256sum accepts a short chunk"
make mbyte manifest-byte
sigok mbyte && fail "gpgv accepts MANIFEST changed after signing"
make arm armored
head -c 27 arm/AIRLOCK/SIGNATURES/*.sig | grep -q 'BEGIN PGP SIGNATURE' || fail "armored attack is not armored"
make clear clearsigned
grep -q 'BEGIN PGP SIGNED MESSAGE' clear/AIRLOCK/SIGNATURES/*.sig || fail "clearsigned attack is not clearsigned"
make nosig no-sig
[ -z "$(ls nosig/AIRLOCK/SIGNATURES 2>/dev/null)" ] || fail "no-sig left a signature"
make extra extra-file
[ -f extra/AIRLOCK/payload/000002.chunk ] || fail "extra-file added no chunk"
echo "forge: all checks passed"
