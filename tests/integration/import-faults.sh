#!/bin/sh
# airlock-import under faults (CATALOGUE.md 36-43): the media removed during
# the copy, two imports at once, the quarantine filesystem full, PostgreSQL
# stopped in the middle of COPY, rows violating a constraint, a reader
# holding the live tables at the swap. Each ends with the documented exit
# code and reason, the live feed as it was, no staging schema left, a
# custody entry; and a rerun succeeds where the catalogue says so.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
I=$AIRLOCK_BUILDDIR/src/airlock-import
FORGE=$AIRLOCK_BUILDDIR/tests/tools/al-forge
S=$AIRLOCK_SCRATCH
NOW=$(date +%s)

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (tmpfs, loop devices); CI runs as root"
command -v jq >/dev/null || fail "jq is needed"

. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_start high
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
LOOPDEV=
cleanup() {
	[ -z "$LOOPDEV" ] || losetup -d "$LOOPDEV" 2>/dev/null || :
	mountpoint -q "$S/qsmall" 2>/dev/null && umount "$S/qsmall"
	"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys
}
trap cleanup EXIT
pg_cleanup_on_exit
mkdir -p work state out qsmall
mkdir -m 0700 quarantine

write() { # IMAGE [args]
	img=$1
	shift
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet \
		--image "$img" "$@" >/dev/null || fail "airlock-write $img"
}
QDIR=$S/quarantine
import() {
	"$I" --target "$(pg_conninfo high)" --keyring "$S/keys/keyring" \
		--trust "$SIGNER1_FPR" --trust "$SIGNER2_FPR" --threshold 2 --channel nvd \
		--quarantine "$QDIR" --custody-log "$S/high.log" --lock-timeout 2s --quiet "$@"
}
live_sum() {
	pg_psql high -c "SELECT coalesce(string_agg(n || ':' || c, ' ' ORDER BY n), '') FROM (
		SELECT c.relname AS n, (xpath('/row/c/text()', query_to_xml(
			format('SELECT md5(coalesce(string_agg(t::text, %L ORDER BY t::text), %L)) AS c FROM %I.%I t',
			       ',', '', n.nspname, c.relname), false, true, '')))[1]::text AS c
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ('feeds', 'airlock') AND c.relkind = 'r') s"
}
staging_left() {
	pg_psql high -c "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'airlock\_staging\_%' OR nspname LIKE 'airlock\_old\_%'"
}
# check CODE REASON RC: the outcome of the run whose output is in run.json,
# run.err and whose custody entries follow line $before of high.log.
check() {
	code=$1 reason=$2 rc=$3
	[ "$rc" = "$code" ] || { cat run.err run.json; fail "$reason: expected exit $code, got $rc"; }
	grep 'error:' run.err | grep -qF "[$reason]" || { cat run.err; fail "$reason: no error line naming it"; }
	jq -e --arg r "$reason" '.ok == false and .reason == $r' run.json >/dev/null ||
		{ cat run.json; fail "$reason: JSON"; }
	tail -n +"$((before + 1))" high.log | grep -q "\"reason\":\"$reason\"" ||
		fail "$reason: no custody entry with the reason"
	echo "ok: $reason ($rc)"
}
# stop_when_copying PID DIR: SIGSTOP the importer PID once its image file
# exists under DIR and before it is complete; 0 when caught part-way.
stop_when_copying() {
	pid=$1 dir=$2 want=$3
	while kill -0 "$pid" 2>/dev/null; do
		for f in "$dir"/import-*/image.iso; do
			[ -e "$f" ] || continue
			kill -STOP "$pid"
			got=$(stat -c %s "$f" 2>/dev/null || echo "$want")
			[ "$got" -lt "$want" ] && return 0
			kill -CONT "$pid"
			return 1
		done
	done
	return 1
}

# --- a feed lands (sequence 1) --------------------------------------------------
write "$S/out/one.iso"
import --image "$S/out/one.iso" >/dev/null 2>err.txt || { cat err.txt; fail "the first import failed"; }
live=$(live_sum)

# --- 39: the quarantine filesystem fills up during the copy ------------------------
# A 48 MiB forged volume, a tmpfs just big enough for it; once the copy has
# started the importer is stopped, the filesystem filled, and it resumes.
"$FORGE" --out "$S/out/big.iso" --gnupghome "$S/keys/signer" --signer "$SIGNER1_FPR" \
	--signer "$SIGNER2_FPR" --sequence 20 --created "$NOW" --payload-size 50331648 >/dev/null
size=$(stat -c %s out/big.iso)
mount -t tmpfs -o size=$((size + 1048576)),mode=0700 airlock-qsmall "$S/qsmall"
caught=0
for try in 1 2 3; do
	before=$(wc -l < high.log)
	QDIR=$S/qsmall
	import --image "$S/out/big.iso" --json > run.json 2> run.err &
	pid=$!
	if stop_when_copying "$pid" "$S/qsmall" "$size"; then
		dd if=/dev/zero of=qsmall/filler bs=64k 2>/dev/null || :
		kill -CONT "$pid"
		caught=1
	fi
	set +e
	wait "$pid"
	rc=$?
	set -e
	QDIR=$S/quarantine
	rm -f qsmall/filler
	[ "$caught" = 1 ] && break
	echo "39: the copy ended before it could be stopped (try $try)"
done
[ "$caught" = 1 ] || fail "39: could not stop the copy part-way"
check 73 quarantine.full "$rc"
[ -z "$(ls -A qsmall)" ] || { ls -laR qsmall; fail "39: the partial copy was left"; }
[ "$(live_sum)" = "$live" ] || fail "39: the live feed changed"
umount "$S/qsmall"

# --- 36: the media removed during the copy into quarantine -----------------------
# A loop device over the forged volume; once the copy has started, the
# backing file is cut and the capacity re-read (a pulled stick reads as the
# end of the media or EIO): exit 74, no partial copy.
cp out/big.iso out/gone.iso
LOOPDEV=$(losetup --find --show --read-only out/gone.iso)
caught=0
for try in 1 2 3; do
	before=$(wc -l < high.log)
	import --device "$LOOPDEV" --json > run.json 2> run.err &
	pid=$!
	if stop_when_copying "$pid" "$S/quarantine" "$size"; then
		truncate -s 1M out/gone.iso
		losetup --set-capacity "$LOOPDEV"
		kill -CONT "$pid"
		caught=1
	fi
	set +e
	wait "$pid"
	rc=$?
	set -e
	[ "$caught" = 1 ] && break
	echo "36: the copy ended before it could be stopped (try $try)"
done
losetup -d "$LOOPDEV"
LOOPDEV=
[ "$caught" = 1 ] || fail "36: could not stop the copy part-way"
check 74 media.read "$rc"
[ -z "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] || fail "36: a partial copy was left"
[ "$(live_sum)" = "$live" ] || fail "36: the live feed changed"

# --- 42: rows violating a constraint --------------------------------------------
# The source holds rows its CHECK constraint (NOT VALID) does not accept; the
# bundle carries the definition and the restore validates it.
pg_psql low -c "ALTER TABLE feeds.cvss ADD CONSTRAINT base_small CHECK (base < 0) NOT VALID" >/dev/null
write "$S/out/bad.iso" --sequence 2
pg_psql low -c "ALTER TABLE feeds.cvss DROP CONSTRAINT base_small" >/dev/null
before=$(wc -l < high.log)
set +e
import --image "$S/out/bad.iso" --json > run.json 2> run.err
rc=$?
set -e
check 65 restore.constraint "$rc"
[ "$(live_sum)" = "$live" ] || fail "42: the live feed changed"
[ "$(staging_left)" = 0 ] || fail "42: the staging schema was left"
ls quarantine/rejected/import-*/image.iso >/dev/null 2>&1 || fail "42: the refused copy was not kept"

# --- 43: a reader holds the live tables at the swap -------------------------------
write "$S/out/three.iso" --sequence 3
pg_psql high -c "SET application_name = 'airlock_test_reader'; BEGIN; LOCK TABLE feeds.advisories IN ACCESS SHARE MODE; SELECT pg_sleep(600)" >/dev/null 2>&1 &
reader=$!
n=0
until [ "$(pg_psql high -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'airlock_test_reader' AND wait_event = 'PgSleep'")" = 1 ]; do
	n=$((n + 1))
	[ "$n" -lt 300 ] || fail "43: the reader did not start"
	sleep 0.1
done
before=$(wc -l < high.log)
set +e
import --image "$S/out/three.iso" --json > run.json 2> run.err
rc=$?
set -e
jq -r .reason run.json > reason43.txt
check 75 "$(cat reason43.txt)" "$rc"
[ "$(live_sum)" = "$live" ] || fail "43: the live feed changed"
[ "$(staging_left)" = 0 ] || fail "43: the staging schema was left"
pg_psql high -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'airlock_test_reader'" >/dev/null
wait "$reader" || :
import --image "$S/out/three.iso" >/dev/null 2>err.txt || { cat err.txt; fail "43: the run after the reader ended failed"; }
[ "$(pg_psql high -c "SELECT max(sequence) FROM airlock.imports WHERE channel = 'nvd'")" = 3 ] ||
	fail "43: sequence 3 is not recorded"
echo "ok: 43 rerun restored"
live=$(live_sum)

# --- 41: PostgreSQL stopped in the middle of COPY ---------------------------------
# A feed big enough that COPY is seen in pg_stat_activity; the server is
# killed then, and restarted: the live feed is as it was, and a rerun succeeds.
pg_psql low -c "INSERT INTO feeds.advisories (vendor_id, ident, severity, summary, raw)
	SELECT 1, 'BIG-' || g, 5, repeat('x', 400), convert_to(repeat('y', 200), 'UTF8')
	FROM generate_series(1, 400000) g" >/dev/null
write "$S/out/four.iso" --sequence 4
before=$(wc -l < high.log)
import --image "$S/out/four.iso" --json > run.json 2> run.err &
pid=$!
seen=0
while kill -0 "$pid" 2>/dev/null; do
	if [ "$(pg_psql high -c "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'COPY %FROM STDIN%' AND state = 'active'" 2>/dev/null || echo 0)" != 0 ]; then
		pg_kill high
		seen=1
		break
	fi
done
set +e
wait "$pid"
rc=$?
set -e
[ "$seen" = 1 ] || fail "41: COPY was never seen running (rc $rc)"
[ "$rc" = 69 ] || [ "$rc" = 75 ] || { cat run.err; fail "41: expected exit 69 or 75, got $rc"; }
jq -e '.ok == false' run.json >/dev/null || { cat run.json; fail "41: JSON"; }
tail -n +"$((before + 1))" high.log | grep -q '"event":"restore.failed"' || fail "41: no restore.failed entry"
echo "ok: 41 $(jq -r .reason run.json) ($rc)"
pg_restart high
[ "$(live_sum)" = "$live" ] || fail "41: the live feed changed"
import --image "$S/out/four.iso" >/dev/null 2>err.txt || { cat err.txt; fail "41: the rerun failed"; }
[ "$(staging_left)" = 0 ] || fail "41: a staging schema was left after the rerun"
[ "$(pg_psql high -c "SELECT count(*) FROM feeds.advisories WHERE ident LIKE 'BIG-%'")" = 400000 ] ||
	fail "41: the rerun did not land the feed"
echo "ok: 41 rerun restored"

# --- 38: two imports of one channel at once -------------------------------------
# Sequences 5 and 6 started together serialize on the channel's lock: both
# end, with 6 restored last; 5 is restored first or refused as a rollback.
pg_psql low -c "DELETE FROM feeds.advisories WHERE ident LIKE 'BIG-%'" >/dev/null
write "$S/out/five.iso" --sequence 5
pg_psql low -c "UPDATE feeds.vendors SET homepage = 'https://six.example' WHERE id = 1" >/dev/null
write "$S/out/six.iso" --sequence 6
before=$(wc -l < high.log)
import --image "$S/out/five.iso" --json > five.json 2> five.err &
p5=$!
import --image "$S/out/six.iso" --json > six.json 2> six.err &
p6=$!
set +e
wait "$p5"
rc5=$?
wait "$p6"
rc6=$?
set -e
[ "$rc6" = 0 ] || { cat six.err; fail "38: sequence 6 failed ($rc6)"; }
case $rc5 in
0) ;;
65) jq -e '.reason == "policy.rollback"' five.json >/dev/null || { cat five.json; fail "38: 5 refused, not as a rollback"; } ;;
*) cat five.err; fail "38: sequence 5 ended with $rc5" ;;
esac
[ "$(pg_psql high -c "SELECT max(sequence) FROM airlock.imports WHERE channel = 'nvd'")" = 6 ] || fail "38: 6 is not the last"
[ "$(pg_psql high -c "SELECT homepage FROM feeds.vendors WHERE id = 1")" = https://six.example ] ||
	fail "38: the feed is not sequence 6's"
[ "$(staging_left)" = 0 ] || fail "38: a staging schema was left"
[ "$(tail -n +"$((before + 1))" high.log | grep -c '"event":"media.inserted"')" = 2 ] || fail "38: not both logged"
echo "ok: 38 (5: $rc5, 6: $rc6)"

"$AIRLOCK_BUILDDIR/src/airlock-audit" verify --custody-log "$S/high.log" >/dev/null || fail "the custody log does not verify"
echo "import-faults.sh: all cases passed"
