#!/bin/sh
# airlock-import when the target database's disk fills up in the middle of
# the restore (issue 4: "any failure leaves the live schema exactly as it
# was ... a full disk"): the database's default tablespace is a small
# tmpfs. With one and with two load workers: exit 75 [db.resources], one
# error line, the reason in --json and in a custody entry, the live feed
# byte-identical, no staging schema left, the space given back; once the
# disk has room the same bundle imports.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
I=$AIRLOCK_BUILDDIR/src/airlock-import
S=$AIRLOCK_SCRATCH

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (tmpfs)"; exit 77; }
command -v jq >/dev/null || fail "jq is needed"

. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_start high
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
TS=$S/ts
cleanup() {
	mountpoint -q "$TS" 2>/dev/null && umount "$TS"
	"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys
}
trap cleanup EXIT
pg_cleanup_on_exit
mkdir -p work state out "$TS"
mkdir -m 0700 quarantine

# The feed: the fixture, plus a table of about 8 MiB of COPY text (far
# more than the tablespace holds once loaded).
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
pg_psql low -c "CREATE TABLE feeds.bulk (id integer PRIMARY KEY, t text NOT NULL);
	INSERT INTO feeds.bulk SELECT i, md5(i::text) || md5((i + 1)::text)
	FROM generate_series(1, 120000) i" >/dev/null

write() { # IMAGE SEQ
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --gnupghome "$S/keys/signer" --sequence "$2" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet \
		--image "$1" >/dev/null || fail "airlock-write $1"
}
CLOG=$S/high.log
import() {
	"$I" --target "$(pg_conninfo high)" --keyring "$S/keys/keyring" \
		--trust "$SIGNER1_FPR" --threshold 1 --channel nvd \
		--quarantine "$S/quarantine" --custody-log "$CLOG" --quiet "$@"
}
live_sum() { pg_tables_sum high feeds airlock; }
staging_left() { pg_staging_count high; }

# A first feed lands while the disk has room (sequence 1, without bulk).
pg_psql low -c "ALTER TABLE feeds.bulk RENAME TO bulk_later" >/dev/null
write out/1.iso 1
import --image out/1.iso >/dev/null || fail "the first import"
pg_psql low -c "ALTER TABLE feeds.bulk_later RENAME TO bulk" >/dev/null
write out/2.iso 2
live=$(live_sum)

# The database's tablespace: a 4 MiB tmpfs, owned by the server's user.
mount -t tmpfs -o size=4m,mode=0700 airlock-dbfull "$TS"
chown postgres:postgres "$TS" 2>/dev/null || chown "${AIRLOCK_PG_RUNAS:-postgres}" "$TS"
pg_psql high -c "CREATE TABLESPACE small LOCATION '$TS'" >/dev/null
pg_psql high -c "ALTER DATABASE airlock_test SET default_tablespace = small" >/dev/null
free_kb() { df -k --output=avail "$TS" | tail -n 1 | tr -d ' '; }
empty=$(free_kb)

for jobs in 1 2; do
	before=$(wc -l < "$CLOG")
	set +e
	import --image out/2.iso --jobs "$jobs" --json > run.json 2> run.err
	rc=$?
	set -e
	[ "$rc" = 75 ] || { cat run.err run.json; fail "jobs $jobs: expected exit 75, got $rc"; }
	[ "$(grep -c 'error:' run.err)" = 1 ] || { cat run.err; fail "jobs $jobs: not one error line"; }
	grep 'error:' run.err | grep -F '[db.resources]' | grep -q 'out of resources' ||
		{ cat run.err; fail "jobs $jobs: the error line does not say why"; }
	jq -e '.ok == false and .reason == "db.resources"' run.json >/dev/null ||
		{ cat run.json; fail "jobs $jobs: JSON"; }
	tail -n +"$((before + 1))" "$CLOG" | grep -q '"reason":"db.resources"' ||
		fail "jobs $jobs: no custody entry with the reason"
	[ "$(live_sum)" = "$live" ] || fail "jobs $jobs: the live feed changed"
	[ "$(staging_left)" = 0 ] || fail "jobs $jobs: a staging schema was left"
	# the staging tables' files are gone from the full disk
	[ "$(free_kb)" -ge "$((empty - 64))" ] ||
		fail "jobs $jobs: $(free_kb) KiB free after the failure, $empty before"
	echo "ok: disk full with --jobs $jobs: 75 [db.resources], feed unchanged"
done

# Room again: the same bundle imports.
pg_psql high -c "ALTER DATABASE airlock_test RESET default_tablespace" >/dev/null
import --image out/2.iso >/dev/null || fail "the rerun after the disk has room"
[ "$(pg_psql high -c 'SELECT count(*) FROM feeds.bulk')" = 120000 ] ||
	fail "the rerun did not land the feed"
pg_psql high -c "DROP TABLESPACE small" >/dev/null
echo "ok: the rerun imports"
