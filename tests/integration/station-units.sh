#!/bin/sh
# The station's udev rules and systemd units as installed: `make install`
# puts them where udev and systemd look, with the build's paths; the units
# pass `systemd-analyze verify` (and the hardening its security check
# scores); udevd parses the rules without a complaint.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
S=$(pwd -P)

fail() { echo "FAIL: $*" >&2; exit 1; }

# Install the udev/ fragment alone into a DESTDIR, with the directories
# given on the command line (as --with-udevdir and
# --with-systemdsystemunitdir would).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$AIRLOCK_BUILDDIR" install-dist_udevrulesDATA install-nodist_systemdsystemunitDATA \
	DESTDIR="$S/dest" udevrulesdir=/usr/lib/udev/rules.d \
	systemdsystemunitdir=/usr/lib/systemd/system >/dev/null
# The build's own paths, expanded as make expands them.
mkvar() {
	printf 'station-units-print:\n\t@echo $(%s)\n' "$1" |
		env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$AIRLOCK_BUILDDIR" \
			-f Makefile -f - station-units-print
}
sbindir=$(mkvar sbindir)
localstatedir=$(mkvar localstatedir)
[ -n "$sbindir" ] && [ -n "$localstatedir" ] || fail "cannot read the build's paths"
for f in usr/lib/udev/rules.d/59-airlock-noprobe.rules usr/lib/udev/rules.d/60-airlock.rules \
         usr/lib/systemd/system/airlock-import@.service \
         usr/lib/systemd/system/airlock-import-spool.service \
         usr/lib/systemd/system/airlock-import-spool.path \
         usr/lib/systemd/system/airlock-import-spool.timer; do
	[ -f "dest/$f" ] || fail "make install did not install /$f"
done
U=dest/usr/lib/systemd/system
grep -q "^ExecStart=$sbindir/airlock-import --device /dev/%I\$" "$U/airlock-import@.service" ||
	fail "ExecStart does not name the installed binary"
grep -q "^ReadWritePaths=-$localstatedir/lib/airlock -$localstatedir/log/airlock\$" "$U/airlock-import@.service" ||
	fail "ReadWritePaths does not follow localstatedir"
! grep -q '@[a-z]*@' "$U"/airlock-* || fail "an @variable@ was left in a unit"
grep -q '^SuccessExitStatus=66$' "$U/airlock-import@.service" || fail "exit 66 is not success"
grep -q '^DeviceAllow=/dev/%I r$' "$U/airlock-import@.service" || fail "the device is not read-only"
grep -q '^RuntimeMaxSec=' "$U/airlock-import@.service" || fail "no watchdog"

# The rule never runs long work and starts the unit.
R=dest/usr/lib/udev/rules.d
! grep -v '^#' "$R/60-airlock.rules" "$R/59-airlock-noprobe.rules" | grep -q 'RUN' || fail "a rule uses RUN"
grep -q 'ENV{SYSTEMD_WANTS}+="airlock-import@%k.service"' "$R/60-airlock.rules" || fail "no SYSTEMD_WANTS"
grep -q 'ENV{UDISKS_IGNORE}="1"' "$R/60-airlock.rules" || fail "no UDISKS_IGNORE"
grep -q 'ENV{UDEV_DISABLE_PERSISTENT_STORAGE_BLKID_FLAG}="1"' "$R/59-airlock-noprobe.rules" ||
	fail "udev's blkid is not turned off"
# Sorted before 60-persistent-storage.rules, whatever the locale.
[ "$(printf '%s\n' 60-persistent-storage.rules 59-airlock-noprobe.rules | LC_ALL=C sort | head -n 1)" = \
  59-airlock-noprobe.rules ] || fail "the early rule does not sort first"

# verify checks that ExecStart exists: point the copies at the build tree.
mkdir -p check
for f in "$U"/airlock-*; do
	sed "s|^ExecStart=$sbindir/|ExecStart=$AIRLOCK_BUILDDIR/src/|" "$f" > "check/${f##*/}"
done
U=check
if command -v systemd-analyze >/dev/null 2>&1; then
	# The instance as udev would start it; the units directory first,
	# then the system's (for the targets the units refer to).
	( cd "$U" && SYSTEMD_UNIT_PATH="$S/$U:" systemd-analyze verify --man=no \
		airlock-import@sdb.service airlock-import-spool.service \
		airlock-import-spool.path airlock-import-spool.timer ) > verify.out 2>&1 ||
		{ cat verify.out; fail "systemd-analyze verify"; }
	[ ! -s verify.out ] || { cat verify.out; fail "systemd-analyze verify has remarks"; }
	if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
		( cd "$U" && SYSTEMD_UNIT_PATH="$S/$U:" systemd-analyze security --offline=yes \
			--threshold=20 airlock-import@sdb.service ) > security.out 2>&1 ||
			{ cat security.out; fail "the import unit's exposure is above 2.0"; }
	fi
else
	echo "note: no systemd-analyze: units not verified" >&2
fi

# udevd's own parser: udevadm verify (systemd >= 253), else the rules are
# loaded by `udevadm test` from a private copy of the rules directory.
if udevadm verify --help >/dev/null 2>&1; then
	udevadm verify "$R/59-airlock-noprobe.rules" "$R/60-airlock.rules" || fail "udevadm verify"
elif [ "$(id -u)" = 0 ] && [ -e /sys/class/block/loop0 ] && command -v unshare >/dev/null; then
	# A private mount namespace: /run/udev/rules.d gets only these rules.
	unshare -m sh -c '
		mount -t tmpfs none /run/udev 2>/dev/null || { mkdir -p /run/udev && mount -t tmpfs none /run/udev; }
		mkdir /run/udev/rules.d && cp "$1"/*.rules /run/udev/rules.d/ &&
		udevadm test --action=add /sys/class/block/loop0' sh "$S/$R" > test.out 2>&1 ||
		{ cat test.out; fail "udevadm test"; }
	grep -q 'Reading rules file: /run/udev/rules.d/60-airlock.rules' test.out ||
		{ cat test.out; fail "udevadm test did not read the rules"; }
	! grep -i -E 'airlock.*(invalid|error|unknown|ignoring)' test.out ||
		fail "udevd complains about the rules"
else
	echo "note: the rules were not parsed by udev (no udevadm verify, not root)" >&2
fi
echo "station-units.sh: all cases passed"
