#!/bin/sh
# airlock-write on a low-side cluster, airlock-import into a high-side
# cluster: the feed lands identical; a second bundle replaces it; replay,
# tampering, an unpinned signer, a wrong channel and a non-airlock volume
# are refused with the live feed byte-identical, no staging schema left,
# the refused copy kept and a custody entry naming the reason.
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
mkdir -p work state out
mkdir -m 0700 quarantine

write() {
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet "$@"
}
import() {
	"$I" --target "$(pg_conninfo high)" --keyring "$S/keys/keyring" \
		--trust "$SIGNER1_FPR" --trust "$SIGNER2_FPR" --threshold 2 --channel nvd \
		--quarantine "$S/quarantine" --custody-log "$S/high.log" --lock-timeout 5s --quiet "$@"
}
# A checksum of every table of a schema (empty when the schema is absent).
live_sum() { pg_tables_sum high feeds; }
staging_left() { pg_staging_count high; }
src_sum() {
	pg_psql low -c "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM feeds.$1 t"
}
dst_sum() {
	pg_psql high -c "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM feeds.$1 t"
}

# --- a bundle lands ---------------------------------------------------------
write --image "$S/out/one.iso" >/dev/null
import --image "$S/out/one.iso" > result.txt 2> err.txt || { cat err.txt; fail "import of a good bundle failed"; }
grep -q 'airlock bundle imported' result.txt || { cat result.txt; fail "no result"; }
for t in vendors advisories packages cvss; do
	[ "$(src_sum $t)" = "$(dst_sum $t)" ] || fail "table $t differs after the import"
done
[ "$(pg_psql high -c "SELECT count(*) FROM airlock.imports WHERE channel = 'nvd' AND sequence = 1")" = 1 ] ||
	fail "no airlock.imports row"
[ "$(staging_left)" = 0 ] || fail "staging schema left after a good import"
[ -z "$(ls quarantine | grep -v rejected || true)" ] || fail "an accepted quarantine copy was left"
for ev in media.inserted media.quarantined bundle.verified restore.intent restore.done; do
	grep -q "\"event\":\"$ev\"" high.log || fail "custody: no $ev entry"
done
"$AUDIT" verify --custody-log "$S/high.log" >/dev/null || fail "the high-side log does not verify"
# The database anchors the log: the intent entry's hash is in airlock.imports.
anchor=$(pg_psql high -c "SELECT custody_seq || ':' || custody_hash FROM airlock.imports WHERE sequence = 1")
"$AUDIT" verify --custody-log "$S/high.log" --anchor "$anchor" >/dev/null || fail "anchor $anchor does not match the log"

# --- a second bundle replaces the feed -----------------------------------------
pg_psql low -c "UPDATE feeds.advisories SET summary = 'changed' WHERE id IN (SELECT id FROM feeds.advisories LIMIT 3)"
write --image "$S/out/two.iso" >/dev/null
import --image "$S/out/two.iso" --json > two.json 2> err.txt || { cat err.txt; fail "second import failed"; }
jq -e '.ok == true and .outcome == "restored" and .sequence == 2' two.json >/dev/null || { cat two.json; fail "JSON"; }
[ "$(src_sum advisories)" = "$(dst_sum advisories)" ] || fail "the second bundle's data did not land"
live=$(live_sum)
[ -n "$live" ] || fail "no live checksum"

# --- refusals ----------------------------------------------------------------------
refused() { # CODE REASON IMAGE [ARGS...]
	code=$1; reason=$2; image=$3; shift 3
	before=$(wc -l < high.log)
	set +e
	import --image "$image" --json "$@" > refused.json 2> refused.err
	rc=$?
	set -e
	[ "$rc" = "$code" ] || { cat refused.err; fail "$reason: expected exit $code, got $rc"; }
	[ "$(grep -c . refused.err)" -ge 1 ] || fail "$reason: no message"
	jq -e --arg r "$reason" '.ok == false and .reason == $r' refused.json >/dev/null ||
		{ cat refused.json; fail "expected reason $reason"; }
	[ "$(live_sum)" = "$live" ] || fail "$reason: the live feed changed"
	[ "$(staging_left)" = 0 ] || fail "$reason: a staging schema was left"
	tail -n +"$((before + 1))" high.log | grep -q "\"reason\":\"$reason\"" ||
		fail "$reason: no custody entry with the reason"
}

# Catalogue 19: the same bundle again.
refused 65 policy.replay "$S/out/two.iso"
# Catalogue 18: an older one.
refused 65 policy.rollback "$S/out/one.iso"
ls quarantine/rejected/import-*/image.iso >/dev/null 2>&1 || fail "refused copies are not kept"

# Catalogue 5: one byte of MANIFEST changed after signing.
write --image "$S/out/three.iso" >/dev/null
cp out/three.iso out/tampered.iso
off=$(grep -abo 'Channel: nvd' out/tampered.iso | head -n 1 | cut -d: -f1)
printf 'x' | dd of=out/tampered.iso bs=1 seek=$((off + 9)) conv=notrunc 2>/dev/null
refused 65 signature.threshold "$S/out/tampered.iso"

# Catalogue 9: signed by a key in the keyring that is not pinned.
"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd --signer "$UNTRUSTED_FPR" \
	--signer "$SIGNER1_FPR" --gnupghome "$S/keys/signer" --workdir "$S/work" \
	--state-dir "$S/state-u" --sequence 50 --custody-log "$S/low.log" --quiet --image "$S/out/unpinned.iso" >/dev/null
refused 65 signature.threshold "$S/out/unpinned.iso"
grep -q 'signature.untrusted' high.log || fail "the unpinned signature's verdict is not recorded"

# Catalogue 23: a channel the station does not accept.
"$W" --source "$(pg_conninfo low)" --schema feeds --channel other --signer "$SIGNER1_FPR" \
	--signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" --workdir "$S/work" \
	--state-dir "$S/state" --custody-log "$S/low.log" --quiet --image "$S/out/other.iso" >/dev/null
refused 65 policy.channel "$S/out/other.iso"

# Catalogue 33: not an airlock volume: left alone, exit 66.
truncate -s 4M out/ext4.img
mkfs.ext4 -q -F out/ext4.img
set +e
import --image "$S/out/ext4.img" > /dev/null 2> refused.err
rc=$?
set -e
[ "$rc" = 66 ] || { cat refused.err; fail "a non-airlock volume: expected 66, got $rc"; }
tail -n 1 high.log | jq -e '.event == "media.ignored"' >/dev/null || fail "the ignored media is not logged"

# --verify-only checks everything and restores nothing.
import --image "$S/out/three.iso" --verify-only > vo.txt 2> err.txt || { cat err.txt; fail "--verify-only failed"; }
grep -q 'verified (--verify-only' vo.txt || fail "--verify-only result"
[ "$(live_sum)" = "$live" ] || fail "--verify-only changed the feed"
# ... and the bundle still imports afterwards.
import --image "$S/out/three.iso" >/dev/null 2> err.txt || { cat err.txt; fail "import after --verify-only failed"; }

# Catalogue 44: killed after the swap committed but before its last
# custody entry. The log then ends on the import's restore.intent (a cut
# after that entry keeps the chain valid); the next start asks the database
# and records the answer.
tail -n 1 high.log | jq -e '.event == "restore.done"' >/dev/null || fail "expected restore.done last"
run=$(tail -n 1 high.log | jq -r .run)
head -n -1 high.log > high.cut && cat high.cut > high.log
tail -n 1 high.log | jq -e '.event == "restore.intent"' >/dev/null || fail "expected restore.intent last"
write --image "$S/out/four.iso" >/dev/null
import --image "$S/out/four.iso" >/dev/null 2> err.txt || { cat err.txt; fail "import after a crash failed"; }
jq -se --arg run "$run" 'any(.[]; .event == "custody.reconciled" and .details.reconciles_run == $run and .details.committed == true)' \
	high.log >/dev/null || fail "no custody.reconciled entry for run $run"
"$AUDIT" verify --custody-log "$S/high.log" >/dev/null || fail "the log does not verify after reconciliation"

# Objects of another schema over the feed (a view, a foreign key): the swap
# would drop them with the old schema, so the import is refused (78) before
# anything is loaded; they and the feed stay, the copy is kept; once they
# are gone the same bundle imports.
live=$(live_sum)
write --image "$S/out/five.iso" >/dev/null
pg_psql high -c "CREATE SCHEMA reports;
	CREATE VIEW reports.recent AS SELECT id FROM feeds.advisories;
	CREATE TABLE reports.notes (id bigint REFERENCES feeds.advisories (id))" >/dev/null
kept=$(find quarantine/rejected -mindepth 1 -maxdepth 1 -name 'import-*' | wc -l)
refused 78 restore.dependents "$S/out/five.iso"
grep 'error:' refused.err | grep -F '[restore.dependents]' | grep -q 'view reports.recent' ||
	{ cat refused.err; fail "restore.dependents: the error line does not name the view"; }
[ "$(pg_psql high -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'reports'::regnamespace AND relname IN ('recent', 'notes')")" = 2 ] ||
	fail "restore.dependents: the user's objects were touched"
[ "$(find quarantine/rejected -mindepth 1 -maxdepth 1 -name 'import-*' | wc -l)" = $((kept + 1)) ] ||
	fail "restore.dependents: the copy was not kept"
pg_psql high -c "DROP SCHEMA reports CASCADE" >/dev/null
import --image "$S/out/five.iso" >/dev/null 2> err.txt || { cat err.txt; fail "the import after the dependents were dropped failed"; }

# Catalogue 40: PostgreSQL down at start: exit 69, nothing staged.
pg_kill high
set +e
import --image "$S/out/three.iso" > /dev/null 2> refused.err
rc=$?
set -e
[ "$rc" = 69 ] || { cat refused.err; fail "database down: expected 69, got $rc"; }
pg_restart high

"$AUDIT" verify --custody-log "$S/high.log" >/dev/null || fail "the high-side log does not verify at the end"

# The real trail of writes and imports renders in the three formats.
for log in low.log high.log; do
	n=$(wc -l < "$log")
	"$AUDIT" list --custody-log "$S/$log" --format json > list.json || fail "list --format json ($log)"
	[ "$(wc -l < list.json)" = "$n" ] || fail "list --format json: $n entries expected ($log)"
	jq -e -s 'all(.[]; has("seq") and has("event") and has("hash"))' list.json >/dev/null || fail "list JSON content ($log)"
	"$AUDIT" list --custody-log "$S/$log" --format csv > list.csv || fail "list --format csv ($log)"
	[ "$(wc -l < list.csv)" -gt "$n" ] || fail "list --format csv: a header and $n rows expected ($log)"
	"$AUDIT" list --custody-log "$S/$log" > list.txt || fail "list ($log)"
	grep -q 'bundle.written\|restore.done' list.txt || fail "list table content ($log)"
done
bundle=$(jq -r 'select(.event == "restore.done") | .bundle.bundle_id' high.log | head -n 1)
"$AUDIT" show --custody-log "$S/high.log" "$bundle" > show.txt || fail "show $bundle"
grep -q 'restore.done' show.txt && grep -q 'bundle.verified' show.txt || { cat show.txt; fail "show: the trail is incomplete"; }
echo "import.sh: all cases passed"
