#!/bin/sh
# The station's units under a real systemd: a container booted with
# systemd-nspawn (--boot, PID 1 is /lib/systemd/systemd) over a throwaway
# tree (--volatile=yes: an empty tmpfs root, the host's /usr read-only;
# an overlay makes /usr writable in the container only), the units exactly
# as `make install` installs them, started as udev's SYSTEMD_WANTS would
# start them:
# - a loop device with a bundle by airlock-write: the unit succeeds, the
#   feed lands, the custody log has the trail;
# - a non-airlock volume: exit 66, counted as success, logged;
# - RuntimeMaxSec (catalogue 37): slow media, the unit is stopped by
#   systemd with result "timeout", the import rolls back (custody entry
#   "interrupted"), no partial quarantine copy remains;
# - airlock-import-spool.path: an image renamed into the inbox is imported;
#   airlock-import-spool.timer is scheduled.
# The units are not edited: the build's airlock-import, the test's
# configuration, quarantine, log and spool directories and PostgreSQL's
# socket are bind-mounted at the paths the installed units name (sbindir,
# sysconfdir, localstatedir, /run), so ExecStart=, ReadWritePaths= and the
# hardening are checked as shipped. Only the watchdog case adds a drop-in
# (RuntimeMaxSec=), as a site would (and a sanitizer build, detect_leaks=0).
# Skips (77) when systemd cannot run as PID 1 of a container here. Stops
# what it started (the container, loop devices, PostgreSQL, a cgroup).
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
I=$AIRLOCK_BUILDDIR/src/airlock-import
AUDIT=$AIRLOCK_BUILDDIR/src/airlock-audit
FORGE=$AIRLOCK_BUILDDIR/tests/tools/al-forge
S=$(pwd -P)

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn, loop devices)"
command -v systemd-nspawn >/dev/null 2>&1 ||
	skip "systemd-nspawn is not installed (apt package systemd-container)"
SYSTEMD=
for f in /lib/systemd/systemd /usr/lib/systemd/systemd; do
	[ -x "$f" ] && { SYSTEMD=$f; break; }
done
[ -n "$SYSTEMD" ] || skip "no /lib/systemd/systemd (apt package systemd)"
command -v nsenter >/dev/null 2>&1 || skip "no nsenter (apt package util-linux)"
[ -x "$I" ] && [ -x "$W" ] || fail "the build has no airlock-import/airlock-write"
[ -x "$FORGE" ] || fail "$FORGE is not built (make check builds it)"

. "$AIRLOCK_HARNESS/loop.sh"
loop_require
. "$AIRLOCK_HARNESS/pg.sh"

# The build's installation paths, expanded as make expands them.
mkvar() {
	printf 'station-systemd-print:\n\t@echo $(%s)\n' "$1" |
		env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$AIRLOCK_BUILDDIR" \
			-f Makefile -f - station-systemd-print
}
sbindir=$(mkvar sbindir)
sysconfdir=$(mkvar sysconfdir)
localstatedir=$(mkvar localstatedir)
for d in "$sbindir" "$sysconfdir" "$localstatedir"; do
	case $d in /*) ;; *) fail "cannot read the build's paths ($d)";; esac
	# the container mounts its own /tmp, and the unit's PrivateTmp= gives
	# the service another: nothing installed below them can be run there
	case $d in
	/tmp|/tmp/*|/var/tmp|/var/tmp/*)
		skip "the build installs below $d (make distcheck's _inst?): the unit's PrivateTmp= hides it; configure with another prefix" ;;
	esac
done

nspawn_pid=
ct_pid=
slow_pid=
SLOW_CG=
M=airlock-sd-$$
cleanup() {
	slow_end
	if [ -n "$nspawn_pid" ]; then
		# The first SIGTERM halts the container (systemd shuts down),
		# a second one ends it at once.
		kill -TERM "$nspawn_pid" 2>/dev/null || :
		i=0
		while kill -0 "$nspawn_pid" 2>/dev/null && [ "$i" -lt 150 ]; do
			sleep 0.2
			i=$((i + 1))
		done
		kill -TERM "$nspawn_pid" 2>/dev/null || :
		sleep 0.5
		kill -KILL "$nspawn_pid" 2>/dev/null || :
		wait "$nspawn_pid" 2>/dev/null || :
		nspawn_pid=
	fi
	rmdir "/run/systemd/nspawn/propagate/$M" 2>/dev/null || :
	loop_detach_all || :
	"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys 2>/dev/null || :
}
trap cleanup EXIT
pg_cleanup_on_exit
loop_cleanup_on_exit

# --- the block throttle (slow media) --------------------------------------------
# slow_start MAJ:MIN BYTES_PER_SECOND PID: the kernel caps the reads of that
# device by PID (a cgroup v1 blkio group of the host; the container's
# systemd does not manage blkio). 1 when there is no such throttle.
slow_home=
slow_start() {
	[ -f /sys/fs/cgroup/blkio/cgroup.procs ] || return 1
	slow_home=/sys/fs/cgroup/blkio$(sed -n 's/^[0-9]*:blkio:\(.*\)$/\1/p' "/proc/$3/cgroup")
	SLOW_CG=/sys/fs/cgroup/blkio/airlock-sd-$$
	if mkdir -p "$SLOW_CG" 2>/dev/null &&
	   echo "$1 $2" > "$SLOW_CG/blkio.throttle.read_bps_device" 2>/dev/null &&
	   echo "$3" > "$SLOW_CG/cgroup.procs"; then
		slow_pid=$3
		return 0
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

# --- keys, databases, a bundle -----------------------------------------------------
pg_start low
pg_start high
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
mkdir -p work state img
write() {
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet "$@"
}
sums() {
	for t in vendors advisories packages cvss; do
		pg_psql "$1" -c "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM feeds.$t t"
	done
}

# --- the station's tree, as the units expect it ------------------------------------
# ct/units: what `make install` installs into systemdsystemunitdir (bound
# to the container's /etc/systemd/system); ct/etc: sysconfdir/airlock;
# ct/lib, ct/log, ct/spool: localstatedir/{lib,log,spool}/airlock.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$AIRLOCK_BUILDDIR" \
	install-nodist_systemdsystemunitDATA DESTDIR="$S/ct/dest" \
	systemdsystemunitdir=/etc/systemd/system >/dev/null
U=$S/ct/dest/etc/systemd/system
[ -f "$U/airlock-import@.service" ] || fail "make install did not install airlock-import@.service"
grep -q "^ExecStart=$sbindir/airlock-import --device /dev/%I\$" "$U/airlock-import@.service" ||
	fail "the unit's ExecStart is not $sbindir/airlock-import --device /dev/%I"
# A sanitizer build: LeakSanitizer stops the process's threads with
# ptrace(), which the units' SystemCallFilter= (rightly) refuses, and the
# process then exits 1. Leak checking is off in the units; ASan and UBSan
# still check every access. The only drop-in besides the watchdog's.
if grep -q __asan_init "$I"; then
	for u in airlock-import@.service airlock-import-spool.service; do
		mkdir -p "$U/$u.d"
		printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' > "$U/$u.d/00-sanitizer.conf"
	done
	echo "note: sanitizer build: detect_leaks=0 in the units (LeakSanitizer needs ptrace)"
fi
mkdir -m 0700 ct/etc ct/lib ct/log ct/spool
mkdir -m 0700 ct/lib/quarantine
cp -a keys/keyring ct/etc/keyring
PGSOCK=/run/airlock-pg
HIGH=$(pg_conninfo high | sed "s|host=[^ ]*|host=$PGSOCK|")
cat > ct/etc/airlock.conf <<EOF
[common]
custody-log = $localstatedir/log/airlock/custody.log

[import]
# The unit has no network: PostgreSQL over its Unix socket.
target = $HIGH
keyring = $sysconfdir/airlock/keyring
trust = $SIGNER1_FPR
trust = $SIGNER2_FPR
threshold = 2
channel = nvd
require-media-serial = no
quarantine = $localstatedir/lib/airlock/quarantine
lock-timeout = 5s
EOF
LOG=$S/ct/log/custody.log
Q=$S/ct/lib/quarantine

# --- boot ---------------------------------------------------------------------------
# /usr is the host's, read-only: an overlay (upper layer in a temporary
# directory nspawn removes) lets the bind mounts below /usr be made.
overlay=
for d in "$sbindir" "$sysconfdir" "$localstatedir"; do
	case $d in /usr|/usr/*) overlay=--overlay=/usr::/usr ;; esac
done
# DevicePolicy=/DeviceAllow= are enforced only with the unified cgroup
# hierarchy (a BPF program on the unit's cgroup): on a hybrid host nspawn
# would give the container read-only v1 controllers and the device
# allow-list would silently not apply. The container's manager needs
# CAP_BPF and the bpf() system call (nspawn's default filter refuses it).
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 \
systemd-nspawn --quiet --directory=/ --volatile=yes --boot --register=no --keep-unit \
	--console=pipe --machine="$M" $overlay --capability=CAP_BPF --system-call-filter=bpf \
	--bind="$U:/etc/systemd/system" \
	--bind-ro="$I:$sbindir/airlock-import" \
	--bind="$S/ct/etc:$sysconfdir/airlock" \
	--bind="$S/ct/lib:$localstatedir/lib/airlock" \
	--bind="$S/ct/log:$localstatedir/log/airlock" \
	--bind="$S/ct/spool:$localstatedir/spool/airlock" \
	--bind="$PG_HIGH_HOST:$PGSOCK" \
	< /dev/null > nspawn.log 2>&1 &
nspawn_pid=$!
# The container's PID 1 is nspawn's child.
i=0
while :; do
	ct_pid=$(pgrep -P "$nspawn_pid" 2>/dev/null | head -n 1) || ct_pid=
	if [ -n "$ct_pid" ] && [ "$(readlink "/proc/$ct_pid/exe" 2>/dev/null)" = "$(readlink -f "$SYSTEMD")" ]; then
		break
	fi
	if ! kill -0 "$nspawn_pid" 2>/dev/null || [ "$i" -gt 150 ]; then
		cat nspawn.log >&2
		nspawn_pid=
		skip "systemd-nspawn --boot does not start systemd here (see above)"
	fi
	i=$((i + 1))
	sleep 0.2
done
ct() {
	nsenter --target "$ct_pid" --all -- "$@"
}
# Until its manager answers (the bus socket appears during the boot).
i=0
until ct test -S /run/systemd/private 2>/dev/null; do
	i=$((i + 1))
	if ! kill -0 "$nspawn_pid" 2>/dev/null || [ "$i" -gt 300 ]; then
		cat nspawn.log >&2
		skip "systemd in the container does not answer on /run/systemd/private"
	fi
	sleep 0.2
done
state=$(timeout 90 nsenter --target "$ct_pid" --all -- systemctl is-system-running --wait 2>&1) || :
case $state in
running|degraded) ;;
*)
	cat nspawn.log >&2
	ct systemctl --no-pager --failed >&2 || :
	skip "systemd in the container did not finish booting: '$state'"
	;;
esac
[ "$(ct cat /proc/1/comm)" = systemd ] || fail "PID 1 of the container is not systemd"
ct systemctl --no-pager --failed > failed.out 2>&1 || :
echo "systemd $(ct systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') is PID 1 of container $M ($state)"

# The loop device DEV, made inside the container (nspawn's /dev is
# static: no udev there).
ct_dev() {
	mm=$(cat "/sys/block/${1#/dev/}/dev")
	ct sh -c '[ -b "$1" ] || mknod -m 0660 "$1" b "$2" "$3"' sh "$1" "${mm%%:*}" "${mm#*:}"
}
show() { # UNIT PROPERTY
	ct systemctl show -p "$2" --value "$1"
}
# wait_done UNIT: until it is no longer active (at most 120 s).
wait_done() {
	i=0
	while :; do
		st=$(show "$1" ActiveState)
		case $st in inactive|failed) return 0 ;; esac
		i=$((i + 1))
		[ "$i" -le 600 ] || { ct journalctl --no-pager -u "$1" >&2; fail "$1 is still $st after 120 s"; }
		sleep 0.2
	done
}
# start_as_udev DEV: what SYSTEMD_WANTS does. udev's device unit
# (dev-loopN.device, none here: no udevd in the container) has
# Wants=airlock-import@loopN.service; a target stands in for it. The
# reference keeps the finished service loaded, so that its Result and
# ExecMainStatus can be read.
start_as_udev() {
	k=${1#/dev/}
	cat > "$U/airlock-test-$k.target" <<EOU
[Unit]
Description=stands in for dev-$k.device with SYSTEMD_WANTS=airlock-import@$k.service
Wants=airlock-import@$k.service
EOU
	ct systemctl daemon-reload
	ct systemctl start "airlock-test-$k.target" ||
		{ journal "airlock-import@$k.service" >&2; fail "systemctl start (for $1)"; }
	[ "$(show "airlock-import@$k.service" ActiveState)" != inactive ] ||
		[ "$(show "airlock-import@$k.service" InvocationID)" != "" ] ||
		fail "airlock-import@$k.service was not started"
}
journal() {
	ct journalctl --no-pager -o cat -u "$1"
}
run_events() {
	jq -r --arg r "$1" 'select(.run == $r) | .event' "$LOG" | tr '\n' ' '
}

# --- a bundle on a loop device: the unit as udev would start it --------------------
write --image "$S/img/one.iso" >/dev/null
dev1=$(loop_attach --read-only "$S/img/one.iso")
ct_dev "$dev1"
u1=airlock-import@${dev1#/dev/}.service
# The unit's device allow-list, and that this container enforces one: a
# writable loop device allowed "r" may be read, not written, and another
# device (the bundle's) not opened at all.
# (ProtectClock= adds "char-rtc r".)
show "$u1" DeviceAllow > allow.out
[ "$(show "$u1" DevicePolicy)" = closed ] && grep -qx "$dev1 r" allow.out && ! grep -q ' [rwm]*[wm]' allow.out ||
	{ cat allow.out; fail "$u1: DevicePolicy=$(show "$u1" DevicePolicy), DeviceAllow= above"; }
truncate -s 1M img/probe.img
devp=$(loop_attach "$S/img/probe.img")
ct_dev "$devp"
rc=0
ct systemd-run --quiet --wait --pipe -p DevicePolicy=closed -p "DeviceAllow=$devp r" \
	sh -c 'head -c 512 "$1" >/dev/null || exit 10; (: >> "$1") 2>/dev/null && exit 11
	       head -c 512 "$2" >/dev/null 2>&1 && exit 12; exit 0' sh "$devp" "$dev1" > probe.out 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat probe.out; fail "DeviceAllow= is not enforced in the container (probe exit $rc: 10 allowed device unreadable, 11 writable, 12 other device readable)"; }
(: >> "$devp") || fail "$devp is not writable from the host: the probe proves nothing"
loop_detach "$devp"
start_as_udev "$dev1"
wait_done "$u1"
res="$(show "$u1" Result) $(show "$u1" ExecMainCode) $(show "$u1" ExecMainStatus)"
[ "$res" = "success 1 0" ] || { journal "$u1" >&2; cat "$LOG" >&2; fail "$u1: Result ExecMainCode ExecMainStatus = $res"; }
[ "$(sums low)" = "$(sums high)" ] || fail "the feed did not land"
run1=$(jq -r 'select(.event == "restore.done") | .run' "$LOG" | tail -n 1)
[ -n "$run1" ] || { cat "$LOG"; fail "no restore.done in the custody log"; }
[ "$(run_events "$run1")" = "media.inserted media.quarantined bundle.verified restore.intent restore.done " ] ||
	{ cat "$LOG"; fail "incomplete custody trail: $(run_events "$run1")"; }
jq -s -e --arg r "$run1" --arg d "$dev1" 'map(select(.run == $r and .event == "media.inserted"))
	| .[0].device.devnode == $d' "$LOG" >/dev/null || fail "the custody log does not name $dev1"
"$AUDIT" verify --custody-log "$LOG" >/dev/null || fail "the custody log does not verify"
[ "$(show "$u1" ExecStart | sed -n 's/.*argv\[\]=\([^;]*\) ;.*/\1/p')" = "$sbindir/airlock-import --device $dev1" ] ||
	fail "$u1 ran $(show "$u1" ExecStart)"
echo "--- journal of $u1:"
journal "$u1"
echo "---"
loop_detach "$dev1"
echo "ok: $u1: success, the feed landed, the custody trail is complete"

# --- not an airlock volume: 66, counted as success ----------------------------------
truncate -s 8M img/junk.img
mkfs.ext4 -q -F img/junk.img
before=$(sha256sum < img/junk.img)
dev2=$(loop_attach --read-only "$S/img/junk.img")
ct_dev "$dev2"
u2=airlock-import@${dev2#/dev/}.service
start_as_udev "$dev2"
wait_done "$u2"
res="$(show "$u2" ActiveState) $(show "$u2" Result) $(show "$u2" ExecMainStatus)"
[ "$res" = "inactive success 66" ] || { journal "$u2" >&2; fail "$u2: ActiveState Result ExecMainStatus = $res"; }
jq -s -e --arg d "$dev2" 'map(select(.event == "media.ignored" and .device.devnode == $d)) | length == 1' \
	"$LOG" >/dev/null || { cat "$LOG"; fail "no media.ignored entry for $dev2"; }
journal "$u2" | grep -q "not an airlock volume" || { journal "$u2"; fail "the journal has no line for $dev2"; }
[ "$(sha256sum < img/junk.img)" = "$before" ] || fail "the non-airlock volume was changed"
loop_detach "$dev2"
echo "ok: $u2: exit 66 counted as success, logged"

# --- RuntimeMaxSec (catalogue 37): slow media, stopped by systemd -------------------
# A forged 48 MiB volume read at 1 MiB/s; a drop-in for this instance sets
# RuntimeMaxSec=5s. systemd sends KillSignal (SIGTERM, to the main process:
# KillMode=mixed) followed by SIGCONT; the import rolls back before the
# swap and exits 75, well within TimeoutStopSec.
"$FORGE" --out "$S/img/slow.iso" --gnupghome "$S/keys/signer" --signer "$SIGNER1_FPR" \
	--signer "$SIGNER2_FPR" --sequence 20 --created "$(date +%s)" \
	--payload-size 50331648 >/dev/null || fail "al-forge"
live=$(sums high)
dev3=$(loop_attach --read-only "$S/img/slow.iso")
ct_dev "$dev3"
u3=airlock-import@${dev3#/dev/}.service
mkdir "$U/$u3.d"
printf '[Service]\nRuntimeMaxSec=5s\n' > "$U/$u3.d/50-watchdog.conf"
ct systemctl daemon-reload
[ "$(show "$u3" RuntimeMaxUSec)" = 5s ] || fail "the drop-in was not read: RuntimeMaxUSec=$(show "$u3" RuntimeMaxUSec)"
# The throttle is set before the unit starts: the container's PID 1 goes
# into the host's blkio group (v1; the container's systemd runs on the
# unified hierarchy and leaves it alone), and the service it forks
# inherits it. Only reads of this one device are capped.
mm=$(cat "/sys/block/${dev3#/dev/}/dev")
how=
if slow_start "$mm" 1048576 "$ct_pid"; then
	how="read at 1 MiB/s"
	start_as_udev "$dev3"
else
	# No block throttle: hold the copy with SIGSTOP; systemd's SIGCONT
	# after its SIGTERM lets the import see the signal.
	start_as_udev "$dev3"
	i=0
	while mpid=$(show "$u3" MainPID) && [ "$mpid" = 0 ]; do
		i=$((i + 1))
		[ "$i" -le 100 ] || { journal "$u3" >&2; fail "$u3 has no main process"; }
		sleep 0.1
	done
	# MainPID is the container's; NSpid in the host's /proc maps it.
	hpid=
	for p in $(pgrep -x airlock-import); do
		case $(sed -n 's/^NSpid:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null) in
		*[[:space:]]"$mpid") hpid=$p ;;
		esac
	done
	[ -n "$hpid" ] || fail "cannot find the host pid of $u3 ($mpid)"
	size=$(stat -c %s img/slow.iso)
	while kill -0 "$hpid" 2>/dev/null; do
		f=$(ls -d "$Q"/import-*/image.iso 2>/dev/null | head -n 1) || f=
		[ -n "$f" ] || continue
		kill -STOP "$hpid"
		[ "$(stat -c %s "$f" 2>/dev/null || echo "$size")" -lt "$size" ] ||
			fail "the copy ended before it could be stopped"
		how="held with SIGSTOP"
		break
	done
fi
wait_done "$u3"
slow_end
res="$(show "$u3" Result) $(show "$u3" ExecMainCode) $(show "$u3" ExecMainStatus)"
[ "$res" = "timeout 1 75" ] || { journal "$u3" >&2; tail -n 3 "$LOG" >&2; fail "$u3: Result ExecMainCode ExecMainStatus = $res (want timeout, exited 75)"; }
journal "$u3" | grep -q "runtime time limit" || { journal "$u3"; fail "the journal does not say systemd stopped $u3"; }
jq -s -e --arg d "$dev3" 'map(select(.event == "media.quarantined" and .device.devnode == $d
	and .reason == "interrupted" and (.details.message | test("signal 15")))) | length == 1' "$LOG" >/dev/null ||
	{ tail -n 3 "$LOG"; fail "no custody entry saying the import of $dev3 was interrupted"; }
[ -z "$(find "$Q" -mindepth 1 -maxdepth 1 -name 'import-*')" ] || { ls -laR "$Q"; fail "a partial quarantine copy remains"; }
[ "$(sums high)" = "$live" ] || fail "the live feed changed"
"$AUDIT" verify --custody-log "$LOG" >/dev/null || fail "the custody log does not verify"
loop_detach "$dev3"
echo "ok: $u3: RuntimeMaxSec ($how): result timeout, exit 75, interrupted, nothing left"

# --- the spool: the path unit and the timer -----------------------------------------
pg_psql low -c "UPDATE feeds.advisories SET summary = 'spooled' WHERE id IN (SELECT id FROM feeds.advisories LIMIT 3)"
ct systemctl start airlock-import-spool.path
[ "$(show airlock-import-spool.path ActiveState)" = active ] || fail "airlock-import-spool.path is not active"
[ -d ct/spool/inbox ] || fail "the path unit did not make the inbox"
write --image "$S/ct/spool/.two.iso" >/dev/null
n=$(grep -c '"event":"restore.done"' "$LOG")
mv ct/spool/.two.iso ct/spool/inbox/two.iso
i=0
while [ ! -e ct/spool/inbox/done/two.iso ] || [ "$(show airlock-import-spool.service ActiveState)" != inactive ]; do
	i=$((i + 1))
	[ "$i" -le 600 ] || { journal airlock-import-spool.service >&2; ls -laR ct/spool >&2; fail "the spooled image was not imported"; }
	sleep 0.2
done
[ "$(show airlock-import-spool.service Result)" = success ] || fail "airlock-import-spool.service: $(show airlock-import-spool.service Result)"
[ "$(grep -c '"event":"restore.done"' "$LOG")" = $((n + 1)) ] || fail "no restore.done for the spooled image"
[ "$(sums low)" = "$(sums high)" ] || fail "the spooled feed did not land"
"$AUDIT" verify --custody-log "$LOG" >/dev/null || fail "the custody log does not verify"
echo "ok: airlock-import-spool.path: the image renamed into the inbox was imported"
ct systemctl stop airlock-import-spool.path
ct systemctl start airlock-import-spool.timer
[ "$(show airlock-import-spool.timer ActiveState)" = active ] || fail "airlock-import-spool.timer is not active"
next=$(show airlock-import-spool.timer NextElapseUSecRealtime)
[ -n "$next" ] && [ "$next" != n/a ] || fail "airlock-import-spool.timer has no next elapse"
ct systemctl stop airlock-import-spool.timer
echo "ok: airlock-import-spool.timer scheduled ($next)"

echo "station-systemd.sh: all cases passed"
