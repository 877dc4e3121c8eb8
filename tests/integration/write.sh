#!/bin/sh
# airlock-write end to end against a real PostgreSQL cluster and real keys:
# the image is listed by an independent ISO reader, verified with the
# gpgv + sha256sum commands of doc/bundle-format.md, and the payload read
# back by zstd + tar. Then the writer-side refusals (catalogue 47-51) that
# need no device: PostgreSQL down, unsupported objects, an existing image,
# interruption; each leaves no temporary file and no receipt.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
S=$AIRLOCK_SCRATCH

fail() { echo "FAIL: $*" >&2; exit 1; }

. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
# Chained after pg.sh's EXIT trap (see pg.sh): keep it last.
trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
pg_cleanup_on_exit
mkdir -p work state out

write() {
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/custody.log" \
		--courier "Sgt. Test" "$@"
}

no_leftovers() {
	[ -z "$(ls -A work)" ] || { ls -laR work; fail "temporary files left in the work directory ($1)"; }
	[ -z "$(ls -A out | grep partial || true)" ] || fail "a partial image was left ($1)"
}

# --- a good bundle -------------------------------------------------------
write --image "$S/out/one.iso" > receipt.txt 2> err.txt || { cat err.txt; fail "airlock-write failed"; }
grep -q 'bundle written and verified' receipt.txt || fail "no receipt"
grep -q 'sequence     1$' receipt.txt || { cat receipt.txt; fail "first sequence is not 1"; }
grep -Eq 'fingerprint  [0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4} ' receipt.txt || fail "no readable fingerprint"
grep -q "$SIGNER1_FPR" receipt.txt && grep -q "$SIGNER2_FPR" receipt.txt || fail "signers missing from the receipt"
no_leftovers good

# An independent ISO reader lists exactly the bundle tree.
bsdtar -tf out/one.iso | sed 's,/$,,' | grep -v '^\.$' | sort > listing.txt
[ "$(grep -c '^AIRLOCK/SIGNATURES/[0-9A-F]\{40\}\.sig$' listing.txt)" = 2 ] || { cat listing.txt; fail "two signature files expected"; }
grep -qx 'AIRLOCK/MANIFEST' listing.txt || fail "no MANIFEST"
grep -qx 'AIRLOCK/payload/000000.chunk' listing.txt || fail "no payload chunk"
[ -z "$(grep -v -e '^AIRLOCK$' -e '^AIRLOCK/SIGNATURES' -e '^AIRLOCK/payload' -e '^AIRLOCK/MANIFEST$' listing.txt)" ] ||
	{ cat listing.txt; fail "unexpected entries on the volume"; }
blkid -p -o export out/one.iso > blkid.txt
grep -qx 'TYPE=iso9660' blkid.txt && grep -qx 'LABEL=AIRLOCK_1' blkid.txt || { cat blkid.txt; fail "not an AIRLOCK_1 ISO 9660 volume"; }

# The auditor's commands of doc/bundle-format.md, verbatim.
mkdir bundle
bsdtar -xf out/one.iso -C bundle AIRLOCK
sed -n '/<!-- BEGIN auditor-verify/,/<!-- END auditor-verify/p' \
	"$AIRLOCK_SRCDIR/doc/bundle-format.md" | sed -e '1,2d' -e '$d' | sed -e '$d' > verify.sh
gpg --homedir keys/keyring --batch --quiet --export "$SIGNER1_FPR" "$SIGNER2_FPR" > pinned.gpg
(cd bundle && KEYRING=$S/pinned.gpg sh -e ../verify.sh) > verify.out 2>&1 || { cat verify.out; fail "documented verification failed"; }
[ "$(grep -c 'VALIDSIG' verify.out)" = 2 ] || fail "two valid signatures expected"
grep -q 'payload/000000.chunk: OK' verify.out || fail "chunk not verified"

# The manifest carries the custody facts and the row counts.
M=bundle/AIRLOCK/MANIFEST
grep -qx 'Channel: nvd' $M && grep -qx 'Sequence: 1' $M && grep -qx 'Courier: Sgt. Test' $M || fail "manifest fields"
grep -qx 'Schemas: feeds' $M || fail "Schemas"
rows=$(pg_psql low -c 'SELECT count(*) FROM feeds.advisories')
grep -qx " feeds.advisories $rows" $M || { cat $M; fail "row count of feeds.advisories ($rows) not in the manifest"; }

# The payload decompresses with standard tools into catalog.json and COPY text.
cat bundle/AIRLOCK/payload/*.chunk | zstd -dcq | tar -tf - > members.txt
head -n 1 members.txt | grep -qx 'catalog.json' || { cat members.txt; fail "catalog.json is not the first member"; }
grep -q '^data/feeds/advisories/000000.copy$' members.txt || fail "no advisories data"
cat bundle/AIRLOCK/payload/*.chunk | zstd -dcq | tar -xOf - catalog.json | jq -e '.format == "airlock-catalog/1"' >/dev/null ||
	fail "catalog.json format"

# One custody entry for the bundle, chained from the start.
[ "$(wc -l < custody.log)" = 1 ] || fail "one custody entry expected"
jq -e '.event == "bundle.written" and .outcome == "ok" and .bundle.sequence == 1 and .side == "low"' custody.log >/dev/null ||
	{ cat custody.log; fail "custody entry content"; }

# --- the sequence goes up; --json ----------------------------------------
write --image "$S/out/two.iso" --json > two.json 2> err.txt || { cat err.txt; fail "second write failed"; }
jq -e '.ok == true and .sequence == 2 and .channel == "nvd" and (.signers | length) == 2' two.json >/dev/null ||
	{ cat two.json; fail "JSON result"; }
[ "$(cat state/sequence/nvd)" = 2 ] || fail "sequence state not saved"

# --- refusals --------------------------------------------------------------
expect() { # expect CODE REASON-REGEX ARGS...: exit code, one message, no receipt
	code=$1; pattern=$2; shift 2
	set +e
	write "$@" > refused.out 2> refused.err
	rc=$?
	set -e
	[ "$rc" = "$code" ] || { cat refused.err; fail "expected exit $code, got $rc ($*)"; }
	grep -Eq "$pattern" refused.err || { cat refused.err; fail "message does not match '$pattern'"; }
	[ ! -s refused.out ] || { cat refused.out; fail "a receipt was printed on failure"; }
	no_leftovers "$*"
}

# An existing image is never overwritten.
expect 73 'already exists' --image "$S/out/one.iso"
# Both targets, or none.
expect 64 'exclude each other' --image "$S/out/x.iso" --device /dev/null
expect 64 'target is required'

# Objects airlock cannot carry are named, every one of them.
pg_psql low -c "CREATE FUNCTION feeds.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
                CREATE TYPE feeds.mood AS ENUM ('a', 'b');"
expect 64 'feeds\.f\(\)|function.*feeds\.f' --image "$S/out/u.iso"
grep -Eq 'mood' refused.err || { cat refused.err; fail "the enum type is not named"; }
[ ! -e out/u.iso ] || fail "an image was written despite the refusal"
pg_psql low -c "DROP FUNCTION feeds.f(); DROP TYPE feeds.mood;"

# A schema that does not exist.
"$W" --source "$(pg_conninfo low)" --schema nosuch --channel nvd --signer "$SIGNER1_FPR" \
	--gnupghome "$S/keys/signer" --workdir "$S/work" --state-dir "$S/state" \
	--custody-log "$S/custody.log" --image "$S/out/n.iso" 2> refused.err && fail "a missing schema was accepted"
grep -q 'nosuch' refused.err || { cat refused.err; fail "the missing schema is not named"; }

# A signer that does not exist fails before any export.
expect 78 'no key with fingerprint' --image "$S/out/k.iso" --signer 0000000000000000000000000000000000000000

# PostgreSQL down at the start: exit 69, nothing staged, the failure in
# the custody log.
pg_kill low
before=$(wc -l < custody.log)
expect 69 'unavailable|connect' --image "$S/out/down.iso"
[ ! -e out/down.iso ] || fail "an image was written with the database down"
after=$(wc -l < custody.log)
[ "$after" -gt "$before" ] || fail "the failure was not recorded"
tail -n 1 custody.log | jq -e '.event == "bundle.write_failed" and .outcome == "error"' >/dev/null ||
	{ tail -n 1 custody.log; fail "failure entry"; }
pg_restart low

# For the mid-export cases, a reader holds a table so that the export's
# COPY waits on it: deterministic, no timing guess.
pg_psql low -c "CREATE TABLE feeds.slow AS SELECT g AS id FROM generate_series(1, 1000) g;"
hold_lock() {
	psql "$(pg_conninfo low)" -X -q -c "BEGIN; LOCK TABLE feeds.slow IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);" \
		>/dev/null 2>&1 &
	holder=$!
	i=0
	until [ "$(pg_psql low -c "SELECT count(*) FROM pg_locks WHERE relation = 'feeds.slow'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1 ]; do
		i=$((i + 1)); [ $i -lt 300 ] || fail "the lock was not taken"; sleep 0.1
	done
}
wait_blocked() {
	i=0
	until [ "$(pg_psql low -c "SELECT count(*) FROM pg_locks WHERE relation = 'feeds.slow'::regclass AND NOT granted")" -ge 1 ]; do
		i=$((i + 1)); [ $i -lt 300 ] || fail "the export never reached the held table"; sleep 0.1
	done
}
release_lock() {
	pg_psql low -c "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = 'feeds.slow'::regclass AND granted AND mode = 'AccessExclusiveLock'" >/dev/null 2>&1 || true
	wait $holder 2>/dev/null || true
}

# Catalogue 47: PostgreSQL stops in the middle of the export.
hold_lock
set +e
write --image "$S/out/mid.iso" > refused.out 2> refused.err &
pid=$!
wait_blocked
pg_kill low
wait $pid
rc=$?
set -e
wait $holder 2>/dev/null || true
[ "$rc" = 69 ] || { cat refused.err; fail "PostgreSQL stopped mid-export: expected 69, got $rc"; }
[ ! -s refused.out ] || fail "a receipt was printed"
[ ! -e out/mid.iso ] || fail "an image was written"
no_leftovers mid-export
pg_restart low

# SIGTERM in the middle: exit 75, no image, no leftovers.
hold_lock
set +e
write --image "$S/out/int.iso" > refused.out 2> refused.err &
pid=$!
wait_blocked
# $pid is the subshell running the write function: signal airlock-write.
kill -TERM "$(pgrep -P $pid -x airlock-write)"
release_lock
wait $pid
rc=$?
set -e
[ "$rc" = 75 ] || { cat refused.err; fail "interrupted write: expected 75, got $rc"; }
grep -q 'interrupted' refused.err || { cat refused.err; fail "no interruption message"; }
[ ! -e out/int.iso ] || fail "an image was left after the interruption"
[ ! -s refused.out ] || fail "a receipt was printed"
no_leftovers interrupted

# The log still verifies as a chain when airlock-audit exists.
if [ -x "$AIRLOCK_BUILDDIR/src/airlock-audit" ]; then
	"$AIRLOCK_BUILDDIR/src/airlock-audit" verify --custody-log "$S/custody.log" >/dev/null ||
		fail "the custody log does not verify"
fi
echo "write.sh: all cases passed"
