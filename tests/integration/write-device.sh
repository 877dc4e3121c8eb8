#!/bin/sh
# airlock-write onto block devices (loop devices standing in for USB
# sticks): the volume lands on the device and reads back; the refusals of
# catalogue 48 and 49 leave the device byte-identical.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
S=$AIRLOCK_SCRATCH

fail() { echo "FAIL: $*" >&2; exit 1; }

. "$AIRLOCK_HARNESS/loop.sh"
loop_require
. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
mnt=
cleanup() {
	[ -z "$mnt" ] || umount "$mnt" 2>/dev/null || true
	"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys
}
trap cleanup EXIT
pg_cleanup_on_exit
loop_cleanup_on_exit
mkdir -p work state

write() {
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --gnupghome "$S/keys/signer" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/custody.log" "$@"
}

expect_refused() { # CODE PATTERN DEV ARGS...: refused, device unchanged
	code=$1; pattern=$2; dev=$3; shift 3
	before=$(sha256sum < "$dev")
	set +e
	write --device "$dev" "$@" > out.txt 2> err.txt < /dev/null
	rc=$?
	set -e
	[ "$rc" = "$code" ] || { cat err.txt; fail "expected exit $code, got $rc ($*)"; }
	grep -Eq "$pattern" err.txt || { cat err.txt; fail "message does not match '$pattern'"; }
	[ ! -s out.txt ] || fail "a receipt was printed"
	[ "$(sha256sum < "$dev")" = "$before" ] || fail "the device was changed by a refused write"
	[ -z "$(ls -A work)" ] || fail "temporary files left"
}

# A 16 MiB stick holding an old ext4 filesystem.
truncate -s 16M stick.img
mkfs.ext4 -q -F -L OLDSTUFF stick.img
dev=$(loop_attach stick.img)

# Not USB: refused without --force-device; and no confirmation without a
# terminal unless --yes.
expect_refused 64 'USB|usb' "$dev" --yes
expect_refused 64 'terminal|--yes' "$dev" --force-device

# Written with --force-device --yes: the old filesystem is gone, the
# volume reads back, an independent reader lists it.
write --device "$dev" --force-device --yes > receipt.txt 2> err.txt || { cat err.txt; fail "device write failed"; }
grep -q 'bundle written and verified' receipt.txt || fail "no receipt"
grep -q "target       $dev" receipt.txt || { cat receipt.txt; fail "target not in the receipt"; }
grep -q 'ext4' err.txt || { cat err.txt; fail "the wiped ext4 signature was not reported"; }
blkid -p -o export "$dev" > blkid.txt
grep -qx 'TYPE=iso9660' blkid.txt && grep -qx 'LABEL=AIRLOCK_1' blkid.txt || { cat blkid.txt; fail "device does not hold AIRLOCK_1"; }
bsdtar -tf "$dev" | grep -q '^AIRLOCK/MANIFEST$' || fail "MANIFEST not on the device"
tail -n 1 custody.log | jq -e ".event == \"bundle.written\" and .device.devnode == \"$dev\"" >/dev/null ||
	{ tail -n 1 custody.log; fail "custody entry lacks the device"; }

# Catalogue 48: a device smaller than the volume is refused before any wipe.
truncate -s 64K tiny.img
mkfs.vfat -n TINY tiny.img >/dev/null 2>&1 || printf 'TINYMARK' | dd of=tiny.img conv=notrunc 2>/dev/null
tiny=$(loop_attach tiny.img)
expect_refused 64 'small|too_small' "$tiny" --force-device --yes

# Catalogue 49: a disk with a mounted partition is refused, even with
# --force-device (an ext4 partition, loop-mounted).
truncate -s 32M parted.img
printf 'label: gpt\n,16M\n,\n' | sfdisk -q parted.img
pdev=$(loop_attach --partscan parted.img)
i=0
until [ -b "${pdev}p1" ]; do
	i=$((i + 1)); [ $i -lt 50 ] || fail "no partition node ${pdev}p1"; sleep 0.1
done
mkfs.ext4 -q -F "${pdev}p1"
mnt=$S/mnt
mkdir -p "$mnt"
mount "${pdev}p1" "$mnt"
expect_refused 64 'mounted' "$pdev" --force-device --yes
umount "$mnt"
mnt=
echo "write-device.sh: all cases passed"
