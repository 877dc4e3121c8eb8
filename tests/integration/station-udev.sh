#!/bin/sh
# The station with a real udevd: 60-airlock.rules (a test variant that
# matches this test's loop devices instead of USB disks and gives them a
# serial) marks the device, `airlock-import --watch` follows udev's
# events, and attaching a bundle image with losetup is all it takes:
# the feed lands and the custody log has the whole trail. A non-airlock
# volume is logged and left alone; two devices attached at once are
# imported one after the other; a device cut in the middle of its copy
# ends that import cleanly and the next device is imported; a loop device
# detached (losetup -d) during its copy is detached only once the copy is
# done; SIGTERM stops the watcher. The test stops what it started (udevd,
# the watcher, loop devices, its rules, its cgroup).
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
I=$AIRLOCK_BUILDDIR/src/airlock-import
AUDIT=$AIRLOCK_BUILDDIR/src/airlock-audit
FORGE=$AIRLOCK_BUILDDIR/tests/tools/al-forge
S=$(pwd -P)
RULES=/run/udev/rules.d
TAG=airlock-test-$$

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root (udevd, loop devices)"
UDEVD=
for f in /lib/systemd/systemd-udevd /usr/lib/systemd/systemd-udevd /sbin/udevd; do
	[ -x "$f" ] && { UDEVD=$f; break; }
done
[ -n "$UDEVD" ] && command -v udevadm >/dev/null || skip "systemd-udevd is not installed (apt package udev)"
case $S in *[!A-Za-z0-9/._-]*) skip "scratch path $S cannot be put in a udev glob";; esac

. "$AIRLOCK_HARNESS/loop.sh"
loop_require
. "$AIRLOCK_HARNESS/pg.sh"

SLOW_CG=
# A really slow device: the kernel's block throttle caps the reads of one
# device (MAJ:MIN) by the processes in a cgroup (blkio under cgroup v1,
# io.max under v2). slow_start MAJ:MIN BYTES_PER_SECOND PID puts PID in
# it; 1 when there is no such throttle here. slow_end puts PID back.
slow_pid=
slow_home=
slow_start() {
	if [ -f /sys/fs/cgroup/blkio/cgroup.procs ]; then
		slow_home=/sys/fs/cgroup/blkio$(sed -n 's/^[0-9]*:blkio:\(.*\)$/\1/p' "/proc/$3/cgroup")
		SLOW_CG=/sys/fs/cgroup/blkio/airlock-slow-$$
		mkdir -p "$SLOW_CG" 2>/dev/null &&
			echo "$1 $2" > "$SLOW_CG/blkio.throttle.read_bps_device" 2>/dev/null &&
			echo "$3" > "$SLOW_CG/cgroup.procs" && { slow_pid=$3; return 0; }
	elif grep -qw io /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		slow_home=/sys/fs/cgroup$(sed -n 's/^0::\(.*\)$/\1/p' "/proc/$3/cgroup")
		echo +io > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
		SLOW_CG=/sys/fs/cgroup/airlock-slow-$$
		mkdir -p "$SLOW_CG" 2>/dev/null &&
			echo "$1 rbps=$2" > "$SLOW_CG/io.max" 2>/dev/null &&
			echo "$3" > "$SLOW_CG/cgroup.procs" && { slow_pid=$3; return 0; }
	fi
	slow_end
	return 1
}
slow_end() {
	if [ -n "$slow_pid" ]; then
		echo "$slow_pid" > "$slow_home/cgroup.procs" 2>/dev/null || :
	fi
	[ -z "$SLOW_CG" ] || rmdir "$SLOW_CG" 2>/dev/null || :
	SLOW_CG=
	slow_pid=
}
# wait_copying BYTES: the watcher's copy into quarantine holds at least
# BYTES (at most 120 s).
wait_copying() {
	i=0
	while :; do
		for f in quarantine/import-*/image.iso; do
			[ -e "$f" ] || continue
			[ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -ge "$1" ] && return 0
		done
		i=$((i + 1))
		[ "$i" -le 1200 ] || { cat watch.err; fail "the copy did not start in 120 s"; }
		kill -0 "$watch_pid" 2>/dev/null || { cat watch.err; fail "the watcher died"; }
		sleep 0.1
	done
}
feed_sum() {
	pg_psql high -c "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM feeds.advisories t" 
}

udevd_pid=
watch_pid=
cleanup() {
	slow_end
	if [ -n "$watch_pid" ]; then
		kill -TERM "$watch_pid" 2>/dev/null || :
		wait "$watch_pid" 2>/dev/null || :
	fi
	loop_detach_all || :
	rm -f "$RULES/00-$TAG.rules" "$RULES/59-$TAG.rules" "$RULES/60-$TAG.rules" \
		"$RULES/99-$TAG.rules"
	if [ -n "$udevd_pid" ]; then
		kill -TERM "$udevd_pid" 2>/dev/null || :
		wait "$udevd_pid" 2>/dev/null || :
	else
		udevadm control --reload 2>/dev/null || :
	fi
	"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys 2>/dev/null || :
}
trap cleanup EXIT
pg_cleanup_on_exit
loop_cleanup_on_exit

pg_start low
pg_start high
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
mkdir -p work state img
mkdir -m 0700 quarantine

write() {
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet "$@"
}
src_sum() {
	pg_psql low -c "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM feeds.$1 t"
}
dst_sum() {
	pg_psql high -c "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM feeds.$1 t"
}
# Wait (at most 120 s) until the custody log has N lines matching PATTERN.
wait_log() { # N PATTERN WHAT
	i=0
	# Through cat: a log not yet created counts 0 matches (grep -c on a
	# missing file prints nothing, and the test would stop waiting).
	while [ "$(cat high.log 2>/dev/null | grep -c -- "$2" || true)" -lt "$1" ]; do
		i=$((i + 1))
		[ "$i" -le 240 ] || { cat watch.err; fail "timed out waiting for $3"; }
		kill -0 "$watch_pid" 2>/dev/null || { cat watch.err; fail "the watcher died waiting for $3"; }
		sleep 0.5
	done
}
# The entries of one run (by run id), in log order.
run_events() {
	jq -r --arg r "$1" 'select(.run == $r) | .event' high.log | tr '\n' ' '
}

# --- the rules: the production files, narrowed to this test's loop devices -----
# The main rule matches USB disks on "add"; loop devices are never USB, and
# attaching a backing file is a "change" event on an existing disk.
sed -e 's|^SUBSYSTEMS!="usb", GOTO="airlock_end"$|KERNEL!="loop*", GOTO="airlock_end"\
ATTR{loop/backing_file}!="'"$S"'/img/*", GOTO="airlock_end"|' \
    -e 's|^ACTION=="add", ATTR{size}!="0", |ACTION=="add\|change", ATTR{size}!="0", ENV{ID_SERIAL_SHORT}="TESTSERIAL", |' \
	"$AIRLOCK_SRCDIR/udev/60-airlock.rules" > "60-$TAG.rules"
grep -q 'ENV{ID_SERIAL_SHORT}="TESTSERIAL"' "60-$TAG.rules" && grep -q 'KERNEL!="loop\*"' "60-$TAG.rules" ||
	fail "udev/60-airlock.rules changed: update the test variant"
grep -q 'ENV{AIRLOCK_IMPORT}="1"' "60-$TAG.rules" && grep -q 'TAG+="airlock"' "60-$TAG.rules" ||
	fail "60-airlock.rules does not mark the device for --watch"
sed -e 's|^SUBSYSTEMS=="usb", |KERNEL=="loop*", ATTR{loop/backing_file}=="'"$S"'/img/*", |' \
	"$AIRLOCK_SRCDIR/udev/59-airlock-noprobe.rules" > "59-$TAG.rules"
grep -q 'KERNEL=="loop\*"' "59-$TAG.rules" || fail "udev/59-airlock-noprobe.rules changed: update the test variant"
# Other tests' loop devices, while this udevd runs: no probing, no inotify
# watch (its change events would reprobe devices they write).
cat > "00-$TAG.rules" <<EOR
SUBSYSTEM=="block", KERNEL=="loop*", ATTR{loop/backing_file}!="$S/img/*", ENV{UDEV_DISABLE_PERSISTENT_STORAGE_RULES_FLAG}="1"
EOR
cat > "99-$TAG.rules" <<EOR
SUBSYSTEM=="block", KERNEL=="loop*", ATTR{loop/backing_file}!="$S/img/*", OPTIONS+="nowatch"
EOR
mkdir -p "$RULES"
cp "00-$TAG.rules" "59-$TAG.rules" "60-$TAG.rules" "99-$TAG.rules" "$RULES/"

# --- udevd ----------------------------------------------------------------------
if udevadm control --ping >/dev/null 2>&1; then
	echo "note: using the udevd already running" >&2
	udevadm control --reload
else
	"$UDEVD" --debug > udevd.log 2>&1 &
	udevd_pid=$!
	i=0
	until udevadm control --ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 50 ] || ! kill -0 "$udevd_pid" 2>/dev/null; then
			tail -n 20 udevd.log >&2
			fail "systemd-udevd does not start here (see above)"
		fi
		sleep 0.2
	done
fi
udevadm verify "$RULES/59-$TAG.rules" "$RULES/60-$TAG.rules" >/dev/null 2>&1 ||
	udevadm --version | grep -q '^25[0-4]$' ||
	fail "udevadm verify refuses the rules"

# --- the watcher -------------------------------------------------------------------
cat > airlock.conf <<EOF2
[common]
custody-log = $S/high.log

[import]
target = $(pg_conninfo high)
keyring = $S/keys/keyring
trust = $SIGNER1_FPR
trust = $SIGNER2_FPR
threshold = 2
channel = nvd
require-media-serial = no
quarantine = $S/quarantine
lock-timeout = 5s
EOF2
"$I" --watch --config "$S/airlock.conf" > watch.out 2> watch.err &
watch_pid=$!
i=0
until grep -q 'watching for airlock media' watch.err; do
	i=$((i + 1))
	[ "$i" -le 100 ] && kill -0 "$watch_pid" 2>/dev/null || { cat watch.err; fail "the watcher did not start"; }
	sleep 0.1
done

# --- a bundle: attach it, nothing else ---------------------------------------------
write --image "$S/img/one.iso" >/dev/null
dev1=$(loop_attach --read-only "$S/img/one.iso")
wait_log 1 '"event":"restore.done"' "the import of $dev1"
for t in vendors advisories packages cvss; do
	[ "$(src_sum $t)" = "$(dst_sum $t)" ] || fail "table $t differs after the import"
done
run1=$(jq -r 'select(.event == "restore.done") | .run' high.log | head -n 1)
[ "$(run_events "$run1")" = "media.inserted media.quarantined bundle.verified restore.intent restore.done " ] ||
	{ cat high.log; fail "incomplete custody trail: $(run_events "$run1")"; }
jq -s -e --arg r "$run1" --arg d "$dev1" 'map(select(.run == $r and .event == "media.inserted"))
	| .[0].device.serial == "TESTSERIAL" and .[0].device.devnode == $d' high.log >/dev/null ||
	{ grep media.inserted high.log; fail "the device serial (set by the rule) or node $dev1 is not in the log"; }
"$AUDIT" verify --custody-log "$S/high.log" >/dev/null || fail "the custody log does not verify"
grep -q "$dev1 inserted: queued" watch.err || { cat watch.err; fail "the watcher did not log the insertion"; }
# udev sends several events for one attachment: one import.
sleep 1
[ "$(grep -c '"event":"media.inserted"' high.log)" = 1 ] || fail "one insertion imported twice"
loop_detach "$dev1"

# --- not an airlock volume: logged, left alone ---------------------------------------
truncate -s 8M img/junk.img
mkfs.ext4 -q -F img/junk.img
before=$(sha256sum < img/junk.img)
dev2=$(loop_attach "$S/img/junk.img")
wait_log 1 '"event":"media.ignored"' "the non-airlock volume on $dev2"
[ "$(sha256sum < img/junk.img)" = "$before" ] || fail "the non-airlock volume was changed"
! grep -q "$dev2" /proc/mounts || fail "the non-airlock volume was mounted"
grep -q "$dev2: not an airlock volume, left alone" watch.err || { cat watch.err; fail "no line for $dev2"; }
# udev's blkid stayed away from it (59-airlock-noprobe.rules): no ID_FS_TYPE.
! udevadm info --query=property --name="$dev2" | grep -q '^ID_FS_TYPE=' ||
	fail "udev probed the untrusted volume"
udevadm info --query=property --name="$dev2" | grep -q '^UDISKS_IGNORE=1$' ||
	fail "UDISKS_IGNORE is not set"
loop_detach "$dev2"

# --- two devices at once: one after the other -----------------------------------------
pg_psql low -c "UPDATE feeds.advisories SET summary = 'changed' WHERE id IN (SELECT id FROM feeds.advisories LIMIT 3)"
write --image "$S/img/two.iso" >/dev/null
cp img/junk.img img/junk2.img
dev3=$(loop_attach --read-only "$S/img/two.iso")
dev4=$(loop_attach --read-only "$S/img/junk2.img")
wait_log 2 '"event":"restore.done"' "the import of $dev3"
wait_log 2 '"event":"media.ignored"' "the non-airlock volume on $dev4"
[ "$(src_sum advisories)" = "$(dst_sum advisories)" ] || fail "the second bundle's data did not land"
# One run at a time: the entries of each run are contiguous in the log.
runs=$(jq -r '.run' high.log | uniq | sort | uniq -d)
[ -z "$runs" ] || { cat high.log; fail "runs interleaved in the log: $runs"; }
"$AUDIT" verify --custody-log "$S/high.log" >/dev/null || fail "the custody log does not verify"

# --- a device cut in the middle of its copy; the next one imported -----------------
# As catalogue 36, under --watch: a forged 48 MiB volume whose reads by the
# watcher the kernel throttles to 2 MiB/s; once the copy is under way the
# backing file is cut and the capacity re-read (what a pulled stick looks
# like to a reader). That import ends with a media I/O error, logged, no
# partial copy; the watcher goes on and imports the next device.
if [ -x "$FORGE" ]; then
	"$FORGE" --out "$S/img/cut.iso" --gnupghome "$S/keys/signer" --signer "$SIGNER1_FPR" \
		--signer "$SIGNER2_FPR" --sequence 20 --created "$(date +%s)" \
		--payload-size 50331648 >/dev/null || fail "al-forge"
	next=$(losetup --find)
	mm=$(cat "/sys/block/${next#/dev/}/dev" 2>/dev/null || echo "7:${next#/dev/loop}")
	if slow_start "$mm" 2097152 "$watch_pid"; then
		live=$(feed_sum)
		n_q=$(grep -c '"event":"media.quarantined"' high.log)
		dev5=$(loop_attach --read-only "$S/img/cut.iso")
		[ "$dev5" = "$next" ] || fail "another test took $next: $dev5 is not throttled"
		wait_copying 1048576
		truncate -s 1M img/cut.iso
		losetup --set-capacity "$dev5"
		wait_log $((n_q + 1)) '"event":"media.quarantined"' "the end of the import of $dev5"
		slow_end
		jq -s -e --arg d "$dev5" 'map(select(.event == "media.quarantined")) | last
			| .device.devnode == $d and .reason == "media.read" and .outcome == "error"' high.log >/dev/null ||
			{ tail -n 3 high.log; fail "no custody entry for the cut copy with media.read"; }
		grep -q "$dev5: failed: .*(media removed or shrunk) \[media.read\] (exit 74)" watch.err ||
			{ cat watch.err; fail "the watcher did not log the removal of $dev5"; }
		[ -z "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] ||
			fail "the partial copy of $dev5 was left"
		[ "$(feed_sum)" = "$live" ] || fail "the live feed changed"
		[ "$(pg_psql high -c "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'airlock\_%'")" = 0 ] ||
			fail "a staging schema was left"
		loop_detach "$dev5"
		kill -0 "$watch_pid" || fail "the watcher died"
		echo "ok: $dev5 cut during the copy: media.read (74), logged, nothing left"

		# the next device, imported normally
		pg_psql low -c "UPDATE feeds.advisories SET summary = 'after the cut' WHERE id IN (SELECT id FROM feeds.advisories LIMIT 2)"
		write --image "$S/img/three.iso" >/dev/null
		n_d=$(grep -c '"event":"restore.done"' high.log)
		dev6=$(loop_attach --read-only "$S/img/three.iso")
		wait_log $((n_d + 1)) '"event":"restore.done"' "the import of $dev6 after the cut"
		[ "$(src_sum advisories)" = "$(dst_sum advisories)" ] || fail "the feed after the cut did not land"
		loop_detach "$dev6"
		echo "ok: $dev6 imported after the cut"

		# losetup -d during the copy: the kernel only marks a loop device
		# in use for autoclear; it is detached when the importer closes
		# it, after the whole copy. The import lands.
		pg_psql low -c "UPDATE feeds.advisories SET summary = 'lazy detach' WHERE id IN (SELECT id FROM feeds.advisories LIMIT 2)"
		write --image "$S/img/four.iso" >/dev/null
		size4=$(stat -c %s img/four.iso)
		next=$(losetup --find)
		mm=$(cat "/sys/block/${next#/dev/}/dev" 2>/dev/null || echo "7:${next#/dev/loop}")
		rate=$((size4 / 8 + 1))
		slow_start "$mm" "$rate" "$watch_pid" || fail "the throttle worked a moment ago"
		n_d=$(grep -c '"event":"restore.done"' high.log)
		dev7=$(loop_attach --read-only "$S/img/four.iso")
		[ "$dev7" = "$next" ] || fail "another test took $next: $dev7 is not throttled"
		wait_copying 1
		losetup -d "$dev7"
		wait_log $((n_d + 1)) '"event":"restore.done"' "the import of $dev7 (detached during its copy)"
		slow_end
		[ "$(src_sum advisories)" = "$(dst_sum advisories)" ] || fail "the feed of $dev7 did not land"
		i=0
		while [ -e "/sys/block/${dev7#/dev/}/loop/backing_file" ]; do
			i=$((i + 1))
			[ "$i" -le 100 ] || fail "$dev7 is still attached after its import"
			sleep 0.1
		done
		echo "ok: $dev7 detached during its copy: the kernel deferred it, the import landed"
	else
		echo "note: no block throttle (cgroup blkio or io) here: the cut during the copy is not tested" >&2
	fi
else
	fail "$FORGE is not built (make check builds it)"
fi

# --- SIGTERM: the watcher stops, exit 0 ----------------------------------------------
kill -TERM "$watch_pid"
set +e
wait "$watch_pid"
rc=$?
set -e
watch_pid=
[ "$rc" = 0 ] || { cat watch.err; fail "the watcher exited $rc on SIGTERM"; }
grep -q 'stopping on signal 15' watch.err || { cat watch.err; fail "no stop line"; }
[ ! -s watch.out ] || fail "--watch wrote to stdout"
echo "station-udev.sh: all cases passed"
