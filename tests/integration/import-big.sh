#!/bin/sh
# Catalogue 34: a valid bundle over 4 GiB round-trips. Tables of random
# bytes (incompressible: its COPY text is hex, which zstd brings back to
# about the bytes' size) made server-side, airlock-write --image with
# chunks of 2 GiB (the largest allowed: one ISO 9660 extent each, the
# third starting past 4 GiB), airlock-import --image, and the target's
# tables' checksums equal the source's.
#
# Skipped (77) when AIRLOCK_SKIP_BIG=1, or when the scratch filesystem has
# less free space than the run needs: the source table, the writer's
# chunks, libarchive's spool of them and the image exist at once (4 x the
# bundle), then the quarantine copy and the target table. AIRLOCK_BIG_MIB
# sets the random bytes (default 4224 MiB: a volume of about 4.13 GiB).
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
I=$AIRLOCK_BUILDDIR/src/airlock-import
S=$AIRLOCK_SCRATCH
MIB=${AIRLOCK_BIG_MIB:-4224}
ROW_KIB=256

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

[ "${AIRLOCK_SKIP_BIG:-0}" != 1 ] || skip "AIRLOCK_SKIP_BIG=1"
need_kib=$(((4 * MIB + 2048) * 1024))
free_kib=$(df -Pk "$S" | awk 'NR == 2 { print $4 }')
[ "$free_kib" -ge "$need_kib" ] ||
	skip "$((free_kib / 1024)) MiB free in $S, $((need_kib / 1024)) MiB needed"
command -v jq >/dev/null 2>&1 || fail "jq is needed (scripts/setup installs it)"

t0=$(date +%s)
lap() { echo "$(($(date +%s) - t0))s: $*"; }

. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_start high
# Loads into a table created in the same transaction write no WAL.
for c in low high; do
	pg_psql "$c" -c "ALTER SYSTEM SET wal_level = minimal" -c "ALTER SYSTEM SET max_wal_senders = 0" \
		-c "ALTER SYSTEM SET max_wal_size = '4GB'" >/dev/null
	pg_restart "$c"
done
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
pg_cleanup_on_exit
mkdir -p work state out
mkdir -m 0700 quarantine

# The random bytes, ROW_KIB per row, read from /dev/urandom by the server,
# in two tables filled (and later checksummed) by two sessions at once:
# the writer exports and the importer loads them in parallel too.
rows=$((MIB * 1024 / ROW_KIB / 2))
fill() {
	pg_psql low -c "BEGIN" \
		-c "CREATE TABLE big.$1 (id integer PRIMARY KEY, data bytea NOT NULL)" \
		-c "ALTER TABLE big.$1 ALTER COLUMN data SET STORAGE EXTERNAL" \
		-c "INSERT INTO big.$1 SELECT g, pg_read_binary_file('/dev/urandom', 0, $ROW_KIB * 1024)
		    FROM generate_series(1, $rows) g" \
		-c "COMMIT" >/dev/null
}
# sums CLUSTER: each table's row count, bytes and an MD5 of its rows' MD5s.
sums() {
	for t in a b; do
		pg_psql "$1" -c "SELECT '$t ' || count(*) || ' ' || sum(length(data)) || ' ' ||
			md5(string_agg(id || ':' || md5(data), ',' ORDER BY id)) FROM big.$t" > "sum-$1-$t" &
	done
	wait
	cat "sum-$1-a" "sum-$1-b"
}
pg_psql low -c "CREATE SCHEMA big"
fill a &
fill_a=$!
fill b || fail "the source table b"
wait "$fill_a" || fail "the source table a"
src=$(sums low)
case $src in "a $rows "*"b $rows "*) ;; *) fail "the source tables: $src" ;; esac
lap "source tables: $src"

"$W" --source "$(pg_conninfo low)" --schema big --channel nvd \
	--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
	--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet \
	--jobs 2 --chunk-size 2G --sequence 1 --image "$S/out/big.iso" --json > write.json 2> write.err ||
	{ cat write.err write.json; fail "airlock-write failed"; }
size=$(stat -c %s out/big.iso)
lap "written: $size bytes"
[ "$size" -gt 4294967296 ] || fail "the volume is $size bytes, not over 4 GiB"
# The source and the writer's leftovers are no longer needed: room for the
# quarantine copy and the target.
pg_stop low
rm -rf work

"$I" --target "$(pg_conninfo high)" --keyring "$S/keys/keyring" \
	--trust "$SIGNER1_FPR" --trust "$SIGNER2_FPR" --threshold 2 --channel nvd \
	--quarantine "$S/quarantine" --custody-log "$S/high.log" --quiet \
	--jobs 2 --image "$S/out/big.iso" --json > import.json 2> import.err ||
	{ cat import.err import.json; fail "airlock-import of a bundle over 4 GiB failed"; }
jq -e '.ok == true' import.json >/dev/null || { cat import.json; fail "import JSON"; }
lap "imported"
dst=$(sums high)
[ "$dst" = "$src" ] || fail "the target's tables differ: $dst, the source had $src"
[ -z "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] || fail "a quarantine copy was left"
lap "import-big.sh: a volume of $size bytes round-tripped"
