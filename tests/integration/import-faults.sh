#!/bin/sh
# airlock-import under faults (CATALOGUE.md 36-45): the media removed during
# the copy, very slow media ended by the unit's watchdog, two imports at
# once, the quarantine filesystem full, PostgreSQL stopped in the middle of
# COPY or of the swap, rows violating a constraint, a reader holding the
# live tables at the swap, the custody log that cannot be written. Each
# ends with the documented exit code and reason, the live feed as it was,
# no staging schema left, a custody entry (where the log can be written);
# and a rerun succeeds where the catalogue says so.
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
command -v strace >/dev/null || fail "strace is needed (scripts/setup installs it)"

. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_start high
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
LOOPDEV=
SLOW_CG=
reader=
cleanup() {
	[ -z "$reader" ] || kill "$reader" 2>/dev/null || :
	[ -z "$LOOPDEV" ] || losetup -d "$LOOPDEV" 2>/dev/null || :
	if [ -n "$SLOW_CG" ]; then
		# an importer left in the throttle by a failed case
		for p in $(cat "$SLOW_CG/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || :; done
		sleep 0.5
		rmdir "$SLOW_CG" 2>/dev/null || :
	fi
	mountpoint -q "$S/qsmall" 2>/dev/null && umount "$S/qsmall"
	mountpoint -q "$S/clog" 2>/dev/null && umount "$S/clog"
	"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys
}
trap cleanup EXIT
pg_cleanup_on_exit
mkdir -p work state out qsmall clog
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
CLOG=$S/high.log
LOCKT=2s
IMPORT_EXEC=
import() {
	$IMPORT_EXEC "$I" --target "$(pg_conninfo high)" --keyring "$S/keys/keyring" \
		--trust "$SIGNER1_FPR" --trust "$SIGNER2_FPR" --threshold 2 --channel nvd \
		--quarantine "$QDIR" --custody-log "$CLOG" --lock-timeout "$LOCKT" --quiet "$@"
}
# import_bg ARGS: import in the background; $! is the importer itself (a
# function run with & would leave $! naming the subshell, and SIGSTOP or
# SIGTERM would miss the importer).
import_bg() {
	(IMPORT_EXEC='exec'; import "$@") &
}
live_sum() { pg_tables_sum high feeds airlock; }
staging_left() { pg_staging_count high; }
# check CODE REASON RC: the outcome of the run whose output is in run.json,
# run.err and whose custody entries follow line $before of high.log.
check() {
	code=$1 reason=$2 rc=$3
	[ "$rc" = "$code" ] || { cat run.err run.json; fail "$reason: expected exit $code, got $rc"; }
	grep 'error:' run.err | grep -qF "[$reason]" || { cat run.err; fail "$reason: no error line naming it"; }
	jq -e --arg r "$reason" '.ok == false and .reason == $r' run.json >/dev/null ||
		{ cat run.json; fail "$reason: JSON"; }
	tail -n +"$((before + 1))" "$CLOG" | grep -q "\"reason\":\"$reason\"" ||
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

# A really slow device: the kernel's block throttle caps the reads of one
# device by the processes in a cgroup (a blkio cgroup under cgroup v1,
# io.max under v2), as IOReadBandwidthMax= would in a unit. slow_setup DEV
# BYTES_PER_SECOND: 0 when in place; ./incg CMD runs CMD inside it.
slow_setup() {
	mm=$(cat "/sys/block/${1#/dev/}/dev") || return 1
	if [ -f /sys/fs/cgroup/blkio/cgroup.procs ]; then
		SLOW_CG=/sys/fs/cgroup/blkio/airlock-slow-$$
		mkdir -p "$SLOW_CG" 2>/dev/null &&
			echo "$mm $2" > "$SLOW_CG/blkio.throttle.read_bps_device" 2>/dev/null && return 0
	elif grep -qw io /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		echo +io > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
		SLOW_CG=/sys/fs/cgroup/airlock-slow-$$
		mkdir -p "$SLOW_CG" 2>/dev/null &&
			echo "$mm rbps=$2" > "$SLOW_CG/io.max" 2>/dev/null && return 0
	fi
	[ -z "$SLOW_CG" ] || rmdir "$SLOW_CG" 2>/dev/null || :
	SLOW_CG=
	return 1
}
cat > incg <<'EOS'
#!/bin/sh
echo $$ > "$SLOW_CG/cgroup.procs" || exit 99
exec "$@"
EOS
chmod 0755 incg
# wait_copying PID DIR BYTES: wait (at most 120 s) until PID's image file
# under DIR holds at least BYTES; 0 then, 1 when PID ended first.
wait_copying() {
	n=0
	while kill -0 "$1" 2>/dev/null; do
		for f in "$2"/import-*/image.iso; do
			[ -e "$f" ] || continue
			[ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -ge "$3" ] && return 0
		done
		n=$((n + 1))
		[ "$n" -lt 1200 ] || fail "the copy did not start in 120 s"
		sleep 0.1
	done
	return 1
}
# reader_start: a session holds ACCESS SHARE on feeds.advisories (until
# reader_stop or the server's end), so the swap waits for its lock.
reader_start() {
	pg_psql high -c "SET application_name = 'airlock_test_reader'; BEGIN; LOCK TABLE feeds.advisories IN ACCESS SHARE MODE; SELECT pg_sleep(600)" >/dev/null 2>&1 &
	reader=$!
	n=0
	until [ "$(pg_psql high -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'airlock_test_reader' AND wait_event = 'PgSleep'")" = 1 ]; do
		n=$((n + 1))
		[ "$n" -lt 300 ] || fail "the reader did not start"
		sleep 0.1
	done
}
reader_stop() {
	pg_psql high -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'airlock_test_reader'" >/dev/null 2>&1 || :
	wait "$reader" 2>/dev/null || :
	reader=
}
# wait_swap_held PID: the importer PID waits for the live tables' lock in
# its swap transaction (LOCK TABLE ... ACCESS EXCLUSIVE behind the reader).
wait_swap_held() {
	n=0
	until [ "$(pg_psql high -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'LOCK TABLE %ACCESS EXCLUSIVE%'")" = 1 ]; do
		kill -0 "$1" 2>/dev/null || { cat run.err; fail "the importer ended before the swap"; }
		n=$((n + 1))
		[ "$n" -lt 1200 ] || fail "the importer never waited in the swap"
		sleep 0.1
	done
}
# pg_fast_stop NAME: pg_ctl stop -m fast (pg.sh's pg_kill is -m immediate).
pg_fast_stop() {
	(cd "$PG_HIGH_DIR" && setpriv --reuid="${AIRLOCK_PG_RUNAS:-postgres}" \
		--regid="$(id -g "${AIRLOCK_PG_RUNAS:-postgres}")" --init-groups -- \
		"$PG_HIGH_BINDIR/pg_ctl" -D "$PG_HIGH_DATA" -m fast -w -t 60 -s stop) >/dev/null
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
	import_bg --image "$S/out/big.iso" --json > run.json 2> run.err
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
	import_bg --device "$LOOPDEV" --json > run.json 2> run.err
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

# --- 37: very slow media: the unit's watchdog ends the import ---------------------
# At RuntimeMaxSec systemd stops the unit: KillSignal (SIGTERM) to the
# importer (KillMode=mixed), SIGKILL to what is left after TimeoutStopSec.
# The unit must let airlock clean up: a catchable KillSignal, and a
# TimeoutStopSec long enough to finish the chunk being read and roll back.
unit=$AIRLOCK_SRCDIR/udev/airlock-import@.service.in
grep -q '^RuntimeMaxSec=[1-9]' "$unit" || fail "37: the unit has no RuntimeMaxSec watchdog"
ks=$(sed -n 's/^KillSignal=//p' "$unit")
case ${ks:-SIGTERM} in
SIGTERM|SIGINT|SIGHUP|TERM|INT|HUP) ;;
*) fail "37: KillSignal=$ks: airlock cannot roll back on it" ;;
esac
km=$(sed -n 's/^KillMode=//p' "$unit")
case ${km:-control-group} in
mixed|control-group|process) ;;
*) fail "37: KillMode=$km: the importer would not be signalled" ;;
esac
! grep -q '^SendSIGTERM=no' "$unit" || fail "37: SendSIGTERM=no"
tss=$(sed -n 's/^TimeoutStopSec=//p' "$unit")
case $tss in
infinity) tss_s=86400 ;;
*min) tss_s=$((${tss%min} * 60)) ;;
*s) tss_s=${tss%s} ;;
[0-9]*) tss_s=$tss ;;
*) fail "37: TimeoutStopSec='$tss' is not understood here: update the test" ;;
esac
[ "$tss_s" -ge 60 ] || fail "37: TimeoutStopSec=$tss leaves the importer too little time"
# The device: the forged volume behind a loop device whose reads the kernel
# throttles to 1 MiB/s (48 s for the volume). Once the copy is under way
# the "watchdog" fires: SIGTERM, and SIGKILL if the importer is still there
# 30 s later (the unit allows it $tss). Without a throttle here, the
# importer is held with SIGSTOP instead while the SIGTERM is sent.
cp out/big.iso out/slow.iso
LOOPDEV=$(losetup --find --show --read-only --direct-io=off out/slow.iso)
before=$(wc -l < high.log)
killed=
if slow_setup "$LOOPDEV" 1048576; then
	export SLOW_CG
	t0=$(date +%s)
	./incg "$I" --target "$(pg_conninfo high)" --keyring "$S/keys/keyring" \
		--trust "$SIGNER1_FPR" --trust "$SIGNER2_FPR" --threshold 2 --channel nvd \
		--quarantine "$QDIR" --custody-log "$CLOG" --lock-timeout 2s --quiet \
		--device "$LOOPDEV" --json > run.json 2> run.err &
	pid=$!
	wait_copying "$pid" "$S/quarantine" 1048576 || { cat run.err; fail "37: the import ended before the watchdog"; }
	kill -TERM "$pid"
	n=0
	while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 300 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; killed=1; }
	how="throttled to 1 MiB/s, SIGTERM after $(($(date +%s) - t0)) s"
else
	echo "37: no block throttle here (cgroup blkio or io): holding the importer with SIGSTOP"
	import_bg --device "$LOOPDEV" --json > run.json 2> run.err
	pid=$!
	stop_when_copying "$pid" "$S/quarantine" "$size" || fail "37: could not stop the copy part-way"
	kill -TERM "$pid"
	kill -CONT "$pid"
	how="held with SIGSTOP"
fi
set +e
wait "$pid"
rc=$?
set -e
losetup -d "$LOOPDEV"
LOOPDEV=
[ -z "$SLOW_CG" ] || { rmdir "$SLOW_CG" 2>/dev/null || :; SLOW_CG=; }
[ -z "$killed" ] || { cat run.err; fail "37: the importer ignored SIGTERM for 30 s (SIGKILL sent)"; }
check 75 interrupted "$rc"
grep -q 'interrupted by signal 15' run.err || { cat run.err; fail "37: the error line does not name the signal"; }
tail -n +"$((before + 1))" high.log | jq -e -s 'map(select(.event == "media.quarantined"
	and .reason == "interrupted" and (.details.message | test("signal 15")))) | length == 1' >/dev/null ||
	{ tail -n +"$((before + 1))" high.log; fail "37: no custody entry saying the import was interrupted"; }
[ -z "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] || fail "37: a partial copy was left"
[ "$(live_sum)" = "$live" ] || fail "37: the live feed changed"
[ "$(staging_left)" = 0 ] || fail "37: a staging schema was left"
echo "ok: 37 watchdog ($how)"

# --- 37 past TimeoutStopSec (or a power cut): the importer SIGKILLed mid-copy ------
# It cannot clean up: its partial copy stays until the next run, which
# removes it (no live import holds its directory's lock) before it copies.
import_bg --image "$S/out/big.iso" --json > run.json 2> run.err
pid=$!
stop_when_copying "$pid" "$S/quarantine" "$size" || fail "37/KILL: could not stop the copy part-way"
kill -KILL "$pid"
set +e
wait "$pid"
set -e
left=$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')
[ -n "$left" ] || fail "37/KILL: no partial copy to clean up (the test did not stop the copy)"
# the killed run: its last entry is media.inserted, it has no ending;
# its copy's directory is named after it
killed=$(jq -r -s 'map(select(.event == "media.inserted")) | last | .run' "$CLOG")
case $left in *"/import-$killed-"??????) ;; *) fail "37/KILL: $left is not named after run $killed" ;; esac
import --image "$S/out/big.iso" --verify-only > run.json 2> run.err ||
	{ cat run.err; fail "37/KILL: the next run failed"; }
[ ! -e "$left" ] || fail "37/KILL: the next run left the killed run's partial copy $left"
[ -z "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] ||
	fail "37/KILL: a copy was left"
[ "$(live_sum)" = "$live" ] || fail "37/KILL: the live feed changed"
# the next run closed the killed one in the custody log, once
jq -e -s --arg k "$killed" '[.[] | select(.event == "custody.reconciled" and
	.details.reconciles_run == $k)] | length == 1 and .[0].outcome == "error" and
	.[0].reason == "import.interrupted" and .[0].details.committed == false and
	.[0].details.last_event == "media.inserted"' "$CLOG" >/dev/null ||
	{ jq -c "select(.run == \"$killed\" or .details.reconciles_run == \"$killed\")" "$CLOG"; fail "37/KILL: the killed run was not closed in the custody log"; }
import --image "$S/out/big.iso" --verify-only > run.json 2> run.err ||
	{ cat run.err; fail "37/KILL: the third run failed"; }
[ "$(jq -s --arg k "$killed" '[.[] | select(.details.reconciles_run == $k)] | length' "$CLOG")" = 1 ] ||
	fail "37/KILL: the killed run was closed twice"
"$AIRLOCK_BUILDDIR/src/airlock-audit" verify --custody-log "$CLOG" >/dev/null ||
	fail "37/KILL: the custody log does not verify"
echo "ok: 37 SIGKILL mid-copy: the partial copy is removed and the run closed in the custody log by the next run"

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
import_bg --image "$S/out/four.iso" --json > run.json 2> run.err
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
import_bg --image "$S/out/five.iso" --json > five.json 2> five.err
p5=$!
import_bg --image "$S/out/six.iso" --json > six.json 2> six.err
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

# --- 41: PostgreSQL stopped while the swap transaction is open -------------------
# The hold point: a reader holds ACCESS SHARE on a live table, the importer
# (lock timeout 120 s) waits for it inside its swap transaction; the server
# is stopped then, -m immediate (a crash) and -m fast (an orderly
# shutdown). Exit 69 with db.unavailable; after the restart the live feed is
# as it was; the staging schema the run could not drop is gone after the
# next run, which succeeds.
seq=7
LOCKT=120s
live=$(live_sum)
for mode in immediate fast; do
	pg_psql low -c "UPDATE feeds.vendors SET homepage = 'https://seq$seq.example' WHERE id = 1" >/dev/null
	write "$S/out/swap-$mode.iso" --sequence "$seq"
	reader_start
	before=$(wc -l < high.log)
	import_bg --image "$S/out/swap-$mode.iso" --json > run.json 2> run.err
	pid=$!
	wait_swap_held "$pid"
	if [ "$mode" = immediate ]; then pg_kill high; else pg_fast_stop; fi
	set +e
	wait "$pid"
	rc=$?
	set -e
	wait "$reader" 2>/dev/null || :
	reader=
	check 69 db.unavailable "$rc"
	tail -n +"$((before + 1))" high.log | grep -q '"event":"restore.failed"' ||
		fail "41 ($mode): no restore.failed entry"
	! tail -n +"$((before + 1))" high.log | grep -q '"event":"restore.intent"' ||
		fail "41 ($mode): a restore intent was recorded for a swap that never held its locks"
	pg_restart high
	[ "$(live_sum)" = "$live" ] || fail "41 ($mode): the live feed changed"
	left=$(staging_left)
	import --image "$S/out/swap-$mode.iso" >/dev/null 2>err.txt || { cat err.txt; fail "41 ($mode): the rerun failed"; }
	[ "$(staging_left)" = 0 ] || fail "41 ($mode): a staging schema was left after the rerun"
	[ "$(pg_psql high -c "SELECT max(sequence) FROM airlock.imports WHERE channel = 'nvd'")" = "$seq" ] ||
		fail "41 ($mode): the rerun did not record sequence $seq"
	[ "$(pg_psql high -c "SELECT homepage FROM feeds.vendors WHERE id = 1")" = "https://seq$seq.example" ] ||
		fail "41 ($mode): the rerun did not land the feed"
	echo "ok: 41 swap, pg_ctl stop -m $mode: $left staging schema(s) after the restart, rerun restored"
	live=$(live_sum)
	seq=$((seq + 1))
done

# --- 45: the custody log cannot be written or synced -----------------------------
# The log on its own small ext4 (1 KiB blocks, nothing reserved: the free
# room left in the log's last block is always less than one entry). The
# importer waits in the swap behind a reader (as above) with its inserted,
# quarantined and verified entries written; the filesystem is filled (45a)
# or remounted read-only (45b), and the reader lets go: the restore intent
# cannot be recorded, so the swap rolls back. The refusal itself cannot be
# recorded either: the importer says so on stderr (and syslog) and exits
# with the custody error's status, 74.
truncate -s 4M clog.img
mkfs.ext4 -q -F -b 1024 -m 0 -O ^has_journal clog.img
mount -o loop clog.img "$S/clog"
chmod 0700 "$S/clog"
CLOG=$S/clog/custody.log
for how in full readonly; do
	pg_psql low -c "UPDATE feeds.vendors SET homepage = 'https://seq$seq.example' WHERE id = 1" >/dev/null
	write "$S/out/log-$how.iso" --sequence "$seq"
	reader_start
	before=0
	[ ! -f "$CLOG" ] || before=$(wc -l < "$CLOG")
	import_bg --image "$S/out/log-$how.iso" --json > run.json 2> run.err
	pid=$!
	wait_swap_held "$pid"
	tail -n +"$((before + 1))" "$CLOG" | grep -q '"event":"bundle.verified"' ||
		fail "45 ($how): the entries before the swap are missing"
	if [ "$how" = full ]; then
		dd if=/dev/zero of=clog/filler bs=1k 2>/dev/null || :
		reason=custody.write
	else
		mount -o remount,ro "$S/clog"
		reason=custody.open
	fi
	lines=$(wc -l < "$CLOG")
	reader_stop
	set +e
	wait "$pid"
	rc=$?
	set -e
	[ "$rc" = 74 ] || { cat run.err run.json; fail "45 ($how): expected exit 74, got $rc"; }
	grep 'error:' run.err | grep -qF "[$reason]" || { cat run.err; fail "45 ($how): no error line naming $reason"; }
	jq -e --arg r "$reason" '.ok == false and .reason == $r' run.json >/dev/null ||
		{ cat run.json; fail "45 ($how): JSON"; }
	grep -q 'warning: custody: ' run.err ||
		{ cat run.err; fail "45 ($how): the failure to record the refusal is not reported"; }
	[ "$(tail -n +"$((before + 1))" "$CLOG" | grep -c '"event":"restore\.')" = 0 ] ||
		fail "45 ($how): a restore entry was recorded"
	[ "$(live_sum)" = "$live" ] || fail "45 ($how): the live feed changed"
	[ "$(staging_left)" = 0 ] || fail "45 ($how): the staging schema was left"
	[ "$(pg_psql high -c "SELECT max(sequence) FROM airlock.imports WHERE channel = 'nvd'")" = $((seq - 1)) ] ||
		fail "45 ($how): the import was recorded in the database"
	sed "s/^/  45 ($how) stderr: /" run.err
	echo "ok: 45 $how: $reason ($rc), $(($(wc -l < "$CLOG") - lines)) line(s) added after the failure"
	if [ "$how" = full ]; then rm -f clog/filler; else mount -o remount,rw "$S/clog"; fi
	import --image "$S/out/log-$how.iso" >/dev/null 2>err.txt || { cat err.txt; fail "45 ($how): the rerun failed"; }
	[ "$(pg_psql high -c "SELECT max(sequence) FROM airlock.imports WHERE channel = 'nvd'")" = "$seq" ] ||
		fail "45 ($how): the rerun did not record sequence $seq"
	"$AIRLOCK_BUILDDIR/src/airlock-audit" verify --custody-log "$CLOG" > audit.out 2>&1 ||
		{ cat audit.out; fail "45 ($how): the custody log does not verify after the rerun"; }
	echo "ok: 45 $how: rerun restored, the log verifies"
	live=$(live_sum)
	seq=$((seq + 1))
done
CLOG=$S/high.log
LOCKT=2s
umount "$S/clog"

# --- the importer itself SIGKILLed once its load is committed --------------------
# (a power cut, or SIGKILL after the unit's stop timeout). The hold point
# is the swap, behind a reader (polling for a COPY in flight raced with a
# short load): the staging schema the parallel load committed and the
# quarantine copy are left, the live feed is as it was; the next run
# removes both and imports.
write "$S/out/kill-load.iso" --sequence "$seq"
reader_start
LOCKT=120s
import_bg --image "$S/out/kill-load.iso" --jobs 2 --json > run.json 2> run.err
pid=$!
wait_swap_held "$pid"
kill -KILL "$pid"
set +e
wait "$pid"
set -e
reader_stop
LOCKT=2s
# the killed run's sessions end once their lock wait does (a backend
# waiting for a lock does not notice its client is gone)
n=0
until [ "$(pg_psql high -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'airlock'")" = 0 ]; do
	n=$((n + 1))
	[ "$n" -lt 300 ] || fail "kill-load: the killed run's sessions did not end"
	sleep 0.1
done
[ "$(live_sum)" = "$live" ] || fail "kill-load: the live feed changed"
[ "$(staging_left)" -ge 1 ] || fail "kill-load: no staging schema was left"
[ -n "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] || fail "kill-load: no copy was left"
import --image "$S/out/kill-load.iso" >/dev/null 2>err.txt || { cat err.txt; fail "kill-load: the rerun failed"; }
[ "$(staging_left)" = 0 ] || fail "kill-load: the rerun left a staging schema"
[ -z "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] || fail "kill-load: the rerun left a copy"
[ "$(pg_psql high -c "SELECT max(sequence) FROM airlock.imports WHERE channel = 'nvd'")" = "$seq" ] ||
	fail "kill-load: the rerun did not record sequence $seq"
# killed after bundle.verified, before its intent: closed as interrupted
jq -e -s '[.[] | select(.event == "custody.reconciled" and .reason == "import.interrupted"
	and .details.last_event == "bundle.verified" and .details.committed == false
	and .bundle.sequence == '"$seq"')] | length == 1' "$CLOG" >/dev/null ||
	fail "kill-load: the killed run was not closed in the custody log"
echo "ok: importer SIGKILLed after its load: feed unchanged, the rerun cleans up and imports"

# --- an import that starts while another is between its intent and its done ------
# (two sticks at once). The first import has committed its swap and is
# held for 6 s before its restore.done entry: strace delays its 8th flock
# call (the log's for media.inserted; the log's shared lock and unlock
# while it reads the log at start; its quarantine copy's directory; the
# log's for media.quarantined, bundle.verified, restore.intent; then the
# one for restore.done). The second import starts then, reads an intent
# without its done, and must leave it alone: the first is alive (its
# quarantine copy is locked) and writes its own ending. The second is then
# refused on its own account (an older bundle) once the first has ended
# and let go of the channel. The hold is checked: the
# first import's done comes seconds after its intent.
seq=$((seq + 1))
write "$S/out/race.iso" --sequence "$seq"
live=$(live_sum)
# (LeakSanitizer cannot run under ptrace: off for this one run of a
# sanitizer build; the other runs of the same code check for leaks)
(IMPORT_EXEC="exec strace -f -qq -o $S/strace.out -e trace=flock -e inject=flock:delay_enter=6000000:when=8"
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
	export ASAN_OPTIONS
	import --image "$S/out/race.iso" --json > race.json 2> race.err) &
apid=$!
n=0
until [ "$(jq -s --argjson q "$seq" '[.[] | select(.event == "restore.intent" and .bundle.sequence == $q)] | length' "$CLOG")" = 1 ]; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || { cat race.err; fail "race: the first import wrote no intent"; }
	kill -0 "$apid" 2>/dev/null || { cat race.err; fail "race: the first import ended before its intent"; }
	sleep 0.1
done
arun=$(jq -r -s --argjson q "$seq" '[.[] | select(.event == "restore.intent" and .bundle.sequence == $q)][0].run' "$CLOG")
[ "$(jq -s --arg r "$arun" '[.[] | select(.run == $r and .event == "restore.done")] | length' "$CLOG")" = 0 ] ||
	fail "race: the first import was done before the second started (the hold did not hold)"
# (it waits for the channel's lock, which the first holds to its end)
LOCKT=60s
set +e
import --image "$S/out/one.iso" --json > run.json 2> run.err
rc=$?
set -e
LOCKT=2s
[ "$rc" = 65 ] || { cat run.err; fail "race: the second import exited $rc, not 65"; }
jq -e '.reason == "policy.rollback"' run.json >/dev/null || { cat run.json; fail "race: the second import's reason"; }
set +e
wait "$apid"
rc=$?
set -e
[ "$rc" = 0 ] || { cat race.err; fail "race: the first import exited $rc"; }
[ "$(jq -s --arg r "$arun" '[.[] | select(.details.reconciles_run == $r)] | length' "$CLOG")" = 0 ] ||
	{ jq -c "select(.details.reconciles_run == \"$arun\")" "$CLOG"; fail "race: the second import reconciled a live import's intent"; }
[ "$(jq -r -s --arg r "$arun" '[.[] | select(.run == $r)] | map(.event) | join(" ")' "$CLOG")" = \
	"media.inserted media.quarantined bundle.verified restore.intent restore.done" ] ||
	fail "race: the first import's trail is not whole"
# the hold was where it had to be: seconds between the intent and the done
held=$(jq -r -s --arg r "$arun" '[.[] | select(.run == $r and (.event == "restore.intent"
	or .event == "restore.done")) | .time | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601]
	| .[1] - .[0]' "$CLOG")
[ "$held" -ge 4 ] || { jq -c "select(.run == \"$arun\")" "$CLOG"; cat "$S/strace.out"; fail "race: the intent was held ${held}s, not the 6 s asked"; }
[ "$(pg_psql high -c "SELECT max(sequence) FROM airlock.imports WHERE channel = 'nvd'")" = "$seq" ] ||
	fail "race: sequence $seq was not recorded"
echo "ok: an import starting while another is between its intent and its done leaves that intent alone"

"$AIRLOCK_BUILDDIR/src/airlock-audit" verify --custody-log "$S/high.log" >/dev/null || fail "the custody log does not verify"
echo "import-faults.sh: all cases passed"
