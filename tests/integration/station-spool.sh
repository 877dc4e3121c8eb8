#!/bin/sh
# airlock-import --spool: complete images only (renamed into place: *.iso,
# no dot file, no *.partial*), in sequence order whatever their names and
# mtimes, each moved to done/ or rejected/; a replay is rejected; with the
# database down the image stays for the next run; the exit status is the
# worst of the run.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
I=$AIRLOCK_BUILDDIR/src/airlock-import
AUDIT=$AIRLOCK_BUILDDIR/src/airlock-audit
S=$AIRLOCK_SCRATCH

fail() { echo "FAIL: $*" >&2; exit 1; }

. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_start high
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
pg_cleanup_on_exit
mkdir -p work state out spool
mkdir -m 0700 quarantine

write() {
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet "$@"
}
spool() {
	"$I" --target "$(pg_conninfo high)" --keyring "$S/keys/keyring" \
		--trust "$SIGNER1_FPR" --trust "$SIGNER2_FPR" --threshold 2 --channel nvd \
		--quarantine "$S/quarantine" --custody-log "$S/high.log" --lock-timeout 5s \
		--spool "$S/spool" "$@"
}
run_spool() { # EXPECTED-EXIT
	set +e
	spool > spool.out 2> spool.err
	rc=$?
	set -e
	cat spool.err >> spool.all
	[ "$rc" = "$1" ] || { cat spool.err; fail "spool run: expected exit $1, got $rc"; }
	[ ! -s spool.out ] || fail "--spool wrote to stdout"
}
imported() {
	pg_psql high -c "SELECT coalesce(string_agg(sequence::text, ',' ORDER BY imported_at, sequence), '') FROM airlock.imports WHERE channel = 'nvd'" 2>/dev/null || echo ""
}

# Two bundles, sequence 1 and 2. Their names sort the other way round, and
# the newer one is dropped first.
write --image "$S/out/one.iso" >/dev/null
pg_psql low -c "UPDATE feeds.advisories SET summary = 'changed' WHERE id IN (SELECT id FROM feeds.advisories LIMIT 3)"
write --image "$S/out/two.iso" >/dev/null
cp out/two.iso spool/a-second.iso
touch -d '2020-01-01' spool/a-second.iso
cp out/one.iso spool/z-first.iso
# Not complete, not an image, not a regular file: never taken.
cp out/one.iso spool/.z-third.iso.partial-Ab12Cd
cp out/one.iso spool/b.iso.partial
cp out/one.iso spool/c.img
ln -s "$S/out/one.iso" spool/link.iso
# Not an airlock volume: rejected (66), after the bundles.
truncate -s 4M spool/junk.iso
mkfs.ext4 -q -F spool/junk.iso

run_spool 66
[ "$(pg_psql high -c "SELECT string_agg(sequence::text, ',' ORDER BY sequence) FROM airlock.imports WHERE channel = 'nvd'")" = "1,2" ] ||
	fail "both bundles were not imported"
# Sequence order: 1 restored before 2 (2 first would have made 1 a rollback).
grep -q '"reason":"policy.rollback"' high.log && fail "the images were not taken in sequence order"
n1=$(grep -n '"event":"restore.done"' high.log | grep '"sequence":1' | head -n 1 | cut -d: -f1)
n2=$(grep -n '"event":"restore.done"' high.log | grep '"sequence":2' | head -n 1 | cut -d: -f1)
[ -n "$n1" ] && [ -n "$n2" ] && [ "$n1" -lt "$n2" ] || fail "sequence 1 was not restored before sequence 2"
[ -f spool/done/z-first.iso ] && [ -f spool/done/a-second.iso ] || { ls -lR spool; fail "imported images not in done/"; }
[ -f spool/rejected/junk.iso ] || { ls -lR spool; fail "the non-airlock image is not in rejected/"; }
for f in .z-third.iso.partial-Ab12Cd b.iso.partial c.img link.iso; do
	[ -e "spool/$f" ] || [ -L "spool/$f" ] || fail "$f was touched"
done
grep -q 'link.iso is not a regular file' spool.err || { cat spool.err; fail "the symlink is not reported"; }
grep -q 'partial' high.log && fail "a partial file was imported"
grep -q '1 rejected' spool.err || { cat spool.err; fail "no summary line"; }
grep -q 'junk.iso: not an airlock volume' spool.err || { cat spool.err; fail "no line for the non-airlock image"; }

# An empty spool (only what is never taken): nothing to do, exit 0.
run_spool 0

# A replay: rejected (65), moved aside, the live feed stays.
cp out/two.iso spool/again.iso
run_spool 65
[ -f spool/rejected/again.iso ] || fail "the replayed image is not in rejected/"
tail -n 1 high.log | grep -q '"reason":"policy.replay"' || fail "no policy.replay entry"
# The same name again later: done/ and rejected/ never lose a file.
cp out/two.iso spool/again.iso
run_spool 65
[ -f spool/rejected/again.iso.1 ] || { ls spool/rejected; fail "a second again.iso overwrote the first"; }

# The database down: not the image's fault. It stays, the run stops (75
# or 69), and the next run imports it.
pg_psql low -c "UPDATE feeds.advisories SET summary = 'third' WHERE id IN (SELECT id FROM feeds.advisories LIMIT 2)"
write --image "$S/out/three.iso" >/dev/null
cp out/three.iso spool/three.iso
pg_kill high
set +e
spool > /dev/null 2> spool.err
rc=$?
set -e
[ "$rc" = 69 ] || { cat spool.err; fail "database down: expected 69, got $rc"; }
[ -f spool/three.iso ] || fail "an image the station could not import was moved"
grep -q 'stays for the next run' spool.err || { cat spool.err; fail "no 'stays' line"; }
pg_restart high
run_spool 0
[ -f spool/done/three.iso ] || fail "the image left behind was not imported on the next run"

"$AUDIT" verify --custody-log "$S/high.log" >/dev/null || fail "the custody log does not verify"

# Usage: --spool excludes the other sources and --json.
set +e
"$I" --spool "$S/spool" --image out/one.iso >/dev/null 2>&1; rc1=$?
"$I" --spool "$S/spool" --json >/dev/null 2>&1; rc2=$?
"$I" --spool "$S/nonexistent" --trust "$SIGNER1_FPR" --threshold 1 --channel nvd --keyring "$S/keys/keyring" \
	--target "$(pg_conninfo high)" --quarantine "$S/quarantine" --custody-log "$S/high.log" \
	>/dev/null 2>spool.err; rc3=$?
set -e
[ "$rc1" = 64 ] && [ "$rc2" = 64 ] || fail "usage errors: got $rc1 $rc2"
[ "$rc3" = 66 ] || { cat spool.err; fail "a missing spool directory: expected 66, got $rc3"; }
echo "station-spool.sh: all cases passed"
