#!/bin/sh
# The shell API of the real-service harness (tests/harness/pg.sh and
# loop.sh) as the other integration tests use it, and its cleanup when a
# script exits, fails, is terminated or is killed.
set -eu

H=${AIRLOCK_HARNESS:?run through make check (tests/harness/run-test)}
S=${AIRLOCK_SCRATCH:?run through make check (tests/harness/run-test)}
cd "$S"

. "$H/pg.sh"
. "$H/loop.sh"

ntest=0
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
ok() {
	ntest=$((ntest + 1))
	echo "ok $ntest - $*"
}

# postmaster processes serving data directory $1
pg_procs() {
	pgrep -f -- "postgres -D $1\$" || :
}

# wait up to 30 s for "$@" to succeed (cleanup after SIGKILL is
# asynchronous: a watcher polls once a second)
wait_for() {
	i=0
	while ! "$@"; do
		i=$((i + 1))
		[ "$i" -lt 300 ] || return 1
		sleep 0.1
	done
}

no_pg_left() {
	[ ! -e "$1" ] && [ -z "$(pg_procs "$1/data")" ]
}

not_attached() {
	[ -z "$(losetup -j "$1")" ]
}

# Loop devices must work as root and in CI; elsewhere their cases are
# skipped and the PostgreSQL ones still run.
rc=0
sh "$H/loop.sh" require || rc=$?
case $rc in
0) have_loop=yes ;;
77) have_loop= ;;
*) fail "loop devices unusable here (loop.sh require: exit $rc)" ;;
esac

# ---------------------------------------------------------------------
# PostgreSQL

pg_start low
if (pg_start low) 2>/dev/null; then
	fail "a second pg_start low worked"
fi
pg_start 'bad/name' 2>/dev/null && fail "pg_start took a bad name"
[ "$PGHOST" = "$PG_LOW_HOST" ] && [ "$PGPORT" = "$PG_LOW_PORT" ] &&
	[ "$PGUSER" = postgres ] && [ "$PGDATABASE" = airlock_test ] ||
	fail "PG* not exported for low"
[ "$PG_LOW_DIR" = "$S/pg-low" ] || fail "PG_LOW_DIR=$PG_LOW_DIR"
[ -S "$PG_LOW_HOST/.s.PGSQL.$PG_LOW_PORT" ] || fail "no socket"
v=$(psql -X -A -t -c 'SELECT version()')
case $v in
PostgreSQL*) ;;
*) fail "version() = $v" ;;
esac
[ "$(psql -X -A -t -d "$(pg_conninfo low)" -c 'SELECT current_database()')" = airlock_test ] ||
	fail "conninfo does not reach airlock_test"
pg_psql low -c "CREATE TABLE feed (id int PRIMARY KEY, name text); INSERT INTO feed VALUES (1, 'nvd'), (2, 'ghsa')"
[ "$(pg_psql low -c 'SELECT string_agg(name, $$,$$ ORDER BY id) FROM feed')" = nvd,ghsa ] ||
	fail "rows not read back"
ok "pg_start: a cluster answers psql through PG* and its conninfo"

pg_start high
[ "$PGHOST" = "$PG_HIGH_HOST" ] || fail "PG* not switched to high"
[ "$PG_HIGH_PORT" != "$PG_LOW_PORT" ] || fail "same port"
[ "$(pg_psql high -c "SELECT to_regclass('feed') IS NULL")" = t ] ||
	fail "high sees low's table"
pg_use low
[ "$(psql -X -A -t -c 'SELECT count(*) FROM feed')" = 2 ] || fail "pg_use low"
ok "two clusters at once are independent"

pg_kill low
pg_is_running low && fail "running after pg_kill"
psql -X -A -t -c 'SELECT 1' >/dev/null 2>&1 && fail "reachable after pg_kill"
pg_restart low
pg_is_running low || fail "not running after pg_restart"
[ "$(pg_psql low -c 'SELECT count(*) FROM feed')" = 2 ] || fail "rows lost"
pg_restart low
[ "$(pg_psql low -c 'SELECT 1')" = 1 ] || fail "restart of a running server"
ok "pg_kill makes the server unreachable, pg_restart brings it back with its rows"

low_dir=$PG_LOW_DIR
[ -n "$(pg_procs "$low_dir/data")" ] || fail "pg_procs does not see the server"
pg_stop low
no_pg_left "$low_dir" || fail "pg_stop left $low_dir or its server"
[ -z "${PG_LOW_DIR-}" ] || fail "PG_LOW_DIR still set"
[ -z "${PGHOST-}" ] || fail "PGHOST still points to the stopped cluster"
pg_psql high -c 'SELECT 1' >/dev/null || fail "stopping low stopped high"
pg_start low
[ "$(pg_psql low -c "SELECT to_regclass('feed') IS NULL")" = t ] || fail "not a new cluster"
pg_stop_all
no_pg_left "$low_dir" || fail "pg_stop_all left low"
[ -z "$_pg_names" ] || fail "pg_stop_all left $_pg_names"
ok "pg_stop and pg_stop_all stop the server and remove the directory"

# A script killed halfway leaves nothing behind.
cat >term.sh <<'EOF'
. "$1/pg.sh"
. "$1/loop.sh"
pg_start x || exit 9
printf '%s\n' "$PG_X_DIR" >x.dir
if [ -n "$4" ]; then
	loop_attach "$2" >x.dev || exit 9
fi
kill -"$3" $$
sleep 60
EOF
truncate -s 4M term.img
rc=0
sh term.sh "$H" "$S/term.img" TERM "$have_loop" || rc=$?
[ "$rc" = 143 ] || fail "term.sh TERM: exit $rc"
no_pg_left "$(cat x.dir)" || fail "SIGTERM left a cluster"
if [ -n "$have_loop" ]; then
	[ -s x.dev ] || fail "term.sh attached nothing"
	not_attached term.img || fail "SIGTERM left $(losetup -j term.img)"
fi
ok "a script terminated by SIGTERM stops its cluster and detaches its device at once"

# The same names again at once: the watchers of the dead script must
# leave the new cluster and the new attachment alone.
cat >again.sh <<'EOF'
. "$1/pg.sh"
. "$1/loop.sh"
pg_start x || exit 9
if [ -n "$3" ]; then
	dev=$(loop_attach "$2") || exit 9
fi
sleep 2.5
pg_psql x -c 'SELECT 1' >/dev/null || exit 10
if [ -n "$3" ]; then
	case $(losetup -j "$2") in
	"$dev:"*) ;;
	*) exit 11 ;;
	esac
fi
EOF
rc=0
sh again.sh "$H" "$S/term.img" "$have_loop" || rc=$?
[ "$rc" = 0 ] || fail "again.sh: exit $rc (a stale watcher took the new cluster or device)"
ok "a stale watcher leaves a new cluster and device of the same name alone"

rm -f x.dir x.dev
rc=0
sh term.sh "$H" "$S/term.img" KILL "$have_loop" || rc=$?
[ "$rc" = 137 ] || fail "term.sh KILL: exit $rc"
wait_for no_pg_left "$(cat x.dir)" || fail "SIGKILL left a cluster"
if [ -n "$have_loop" ]; then
	wait_for not_attached term.img || fail "SIGKILL left $(losetup -j term.img)"
fi
ok "a script killed by SIGKILL is cleaned up by the watchers"

# EXIT traps set before or after sourcing still run, with the status.
cat >chain.sh <<'EOF'
trap 'echo "before $?" >>chain.out' EXIT
. "$1/pg.sh"
pg_start y
printf '%s\n' "$PG_Y_DIR" >y.dir
exit 3
EOF
rc=0
sh chain.sh "$H" || rc=$?
[ "$rc" = 3 ] || fail "chain.sh exit $rc"
[ "$(cat chain.out)" = "before 3" ] || fail "earlier EXIT trap: $(cat chain.out)"
no_pg_left "$(cat y.dir)" || fail "chained trap left a cluster"
cat >chain2.sh <<'EOF'
. "$1/pg.sh"
trap 'echo "after $?" >>chain2.out' EXIT
pg_start z
printf '%s\n' "$PG_Z_DIR" >z.dir
false
EOF
rc=0
sh chain2.sh "$H" || rc=$?
[ "$rc" = 1 ] || fail "chain2.sh exit $rc"
[ "$(cat chain2.out)" = "after 1" ] || fail "later EXIT trap: $(cat chain2.out)"
no_pg_left "$(cat z.dir)" || fail "re-chained trap left a cluster"
ok "EXIT traps set before or after sourcing are kept and see the exit status"

# ---------------------------------------------------------------------
# Loop devices

loop_cases() {
	loop_require

	# the pattern: 64 KiB at 1 MiB + 4 KiB
	head -c 65536 /dev/urandom >pattern
	truncate -s 4M rw.img
	dev=$(loop_attach rw.img)
	[ -b "$dev" ] || fail "$dev is not a block device"
	case $(losetup -j "$S/rw.img") in
	"$dev:"*) ;;
	*) fail "losetup -j: $(losetup -j rw.img)" ;;
	esac
	[ "$(blockdev --getsize64 "$dev")" = 4194304 ] || fail "device size"
	dd if=pattern of="$dev" bs=4096 seek=257 conv=notrunc,fsync status=none
	loop_detach "$dev"
	not_attached rw.img || fail "loop_detach left rw.img attached"
	dd if=rw.img bs=4096 skip=257 count=16 status=none | cmp -s - pattern ||
		fail "pattern not in the image"
	[ "$(dd if=rw.img bs=4096 count=257 status=none | tr -d '\0' | wc -c)" = 0 ] ||
		fail "bytes before the pattern changed"
	ok "a pattern written through the device reaches the image"

	cp rw.img rw.copy
	dev=$(loop_attach -r rw.img)
	[ "$(blockdev --getro "$dev")" = 1 ] || fail "not read-only"
	if err=$(head -c 4096 /dev/zero | dd of="$dev" bs=4096 conv=notrunc,fsync status=none 2>&1); then
		fail "a read-only device took a write"
	fi
	case $err in
	*"Operation not permitted"*|*"Read-only file system"*|*"Permission denied"*) ;;
	*) fail "write error: $err" ;;
	esac
	loop_detach "$dev"
	cmp -s rw.img rw.copy || fail "the read-only image changed"
	ok "a read-only attach refuses writes"

	imgs=
	devs=
	for i in 1 2 3 4 5 6 7 8 9 10; do
		truncate -s 1M "many$i.img"
		d=$(loop_attach "many$i.img")
		[ -b "$d" ] || fail "$d (device $i) has no node"
		case " $devs " in
		*" $d "*) fail "$d given twice" ;;
		esac
		devs="$devs $d"
		imgs="$imgs many$i.img"
	done
	loop_detach_all
	for i in $imgs; do
		not_attached "$i" || fail "loop_detach_all left $i"
	done
	[ ! -s "$_loop_state" ] || fail "loop_detach_all left its list"
	ok "ten devices at once each get a node; loop_detach_all detaches them"

	# A static /dev (a container without devtmpfs or udev): attach makes the
	# nodes itself. Needs a private mount namespace to hide the real /dev.
	if unshare -m true 2>/dev/null; then
		truncate -s 1M static.img
		unshare -m sh -c '
			set -e
			mount -t tmpfs tmpfs /dev
			mknod -m 0666 /dev/null c 1 3
			. "$1/loop.sh"
			loop_require
			[ ! -e /dev/loop0 ]
			dev=$(loop_attach "$2")
			[ -b "$dev" ]
			loop_detach "$dev"
		' sh "$H" "$S/static.img" || fail "attach with a static /dev"
		not_attached static.img || fail "static /dev case left a device"
		ok "with a static /dev, loop-control and loopN nodes are made"
	else
		echo "ok - # SKIP static /dev case: no mount namespace here"
	fi
}

if [ -n "$have_loop" ]; then
	loop_cases
else
	echo "ok - # SKIP loop device cases: not root and not CI"
fi

# loop_require: skip (77) only when neither root nor CI; CI fails hard.
require_cases() {
	mkdir -m 0755 pub
	cp "$H/loop.sh" pub/loop.sh
	chmod 0644 pub/loop.sh
	nobody() {
		setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
}
rc=0
nobody env -u CI sh pub/loop.sh require 2>req.err || rc=$?
[ "$rc" = 77 ] || fail "require as nobody: exit $rc"
grep -q 'SKIP: attaching loop devices needs root' req.err || fail "$(cat req.err)"
rc=0
nobody env CI=true sh pub/loop.sh require 2>req.err || rc=$?
[ "$rc" = 99 ] || fail "require as nobody under CI: exit $rc"
grep -q 'ERROR:.*CI=true' req.err || fail "$(cat req.err)"
rc=0
nobody env -u CI TMPDIR=/tmp sh -c '. "$1"; loop_require; echo not reached' sh pub/loop.sh \
	>req.out 2>&1 || rc=$?
grep -q 'not reached' req.out && fail "loop_require returned as nobody"
[ "$rc" = 77 ] || fail "sourced loop_require as nobody: exit $rc"
ok "loop_require skips (77) only outside root and CI; CI=true is a hard error (99)"
}

if [ "$(id -u)" = 0 ]; then
	require_cases
else
	echo "ok - # SKIP loop_require cases: they switch to nobody, which needs root"
fi

echo "1..$ntest"
