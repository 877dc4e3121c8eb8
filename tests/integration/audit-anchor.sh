#!/bin/sh
# airlock-audit verify --target (catalogue 46): two bundles written and
# imported with the real binaries; the high-side log verifies against the
# anchors airlock.imports recorded (also through the config's [import]
# target, and by hand with the guide's query); a cut tail, an anchored
# entry edited, and a consistent rewrite of the log from an anchor on
# (which passes without the database) are each caught with exit 65; a
# malformed anchor row, an unreachable database and a misplaced --target
# give their exit codes.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
command -v jq >/dev/null 2>&1 || { echo "SKIP: jq is not installed (apt-get install jq)"; exit 77; }
W=$AIRLOCK_BUILDDIR/src/airlock-write
I=$AIRLOCK_BUILDDIR/src/airlock-import
AUDIT=$AIRLOCK_BUILDDIR/src/airlock-audit
GUIDE=$AIRLOCK_SRCDIR/doc/auditor-guide.md
S=$AIRLOCK_SCRATCH

fail() { echo "FAIL: $*" >&2; exit 1; }

# run CMD...: exit status in $rc, output in the files out and err.
run() { set +e; "$@" >out 2>err; rc=$?; set -e; }

# expect RC TEXT CMD...: the status is RC and stderr holds TEXT.
expect() {
	want=$1 text=$2
	shift 2
	run "$@"
	[ "$rc" = "$want" ] || { cat out err >&2; fail "$*: exit $rc, expected $want"; }
	grep -qF -- "$text" err || { cat err >&2; fail "$*: stderr lacks \"$text\""; }
}

. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_start high
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
pg_cleanup_on_exit
mkdir -p work state media
mkdir -m 0700 quarantine
HIGH=$(pg_conninfo high)
H=$S/high.log

write() {
	"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
		--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
		--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet "$@"
}
import() {
	"$I" --target "$HIGH" --keyring "$S/keys/keyring" \
		--trust "$SIGNER1_FPR" --trust "$SIGNER2_FPR" --threshold 2 --channel nvd \
		--quarantine "$S/quarantine" --custody-log "$H" --lock-timeout 5s --quiet "$@"
}

# --- two bundles land ----------------------------------------------------------
write --image "$S/media/one.iso" >/dev/null
import --image "$S/media/one.iso" >/dev/null 2>err || { cat err; fail "first import failed"; }
pg_psql low -c "UPDATE feeds.advisories SET summary = 'changed' WHERE id IN (SELECT id FROM feeds.advisories LIMIT 3)"
write --image "$S/media/two.iso" >/dev/null
import --image "$S/media/two.iso" >/dev/null 2>err || { cat err; fail "second import failed"; }

A1=$(pg_psql high -c "SELECT custody_seq FROM airlock.imports WHERE sequence = 1")
A2=$(pg_psql high -c "SELECT custody_seq FROM airlock.imports WHERE sequence = 2")
[ -n "$A1" ] && [ -n "$A2" ] && [ "$A1" -lt "$A2" ] || fail "anchors $A1 and $A2 not recorded"
N=$(wc -l < "$H")
[ "$A2" -lt "$N" ] || fail "the second anchor ($A2) is the last entry ($N): restore.done missing"
sed -n "${A2}p" "$H" | jq -e '.event == "restore.intent"' >/dev/null ||
	fail "the anchored entry is not the restore intent"

# --- a clean log verifies against the database --------------------------------
run "$AUDIT" verify --target "$HIGH" --custody-log "$H"
[ "$rc" = 0 ] || { cat err; fail "verify --target of a clean log: exit $rc"; }
grep -q "^custody log OK: $N entries, head seq $N hash [0-9a-f]\{64\}; 2 database anchors match\$" out ||
	fail "verify --target output: $(cat out)"
# ... with --anchor options too.
run "$AUDIT" verify --target "$HIGH" --custody-log "$H" \
	--anchor "$A1:$(sed -n "${A1}p" "$H" | jq -r .hash)"
[ "$rc" = 0 ] || { cat err; fail "verify --target --anchor: exit $rc"; }
grep -q '; 1 anchor match; 2 database anchors match$' out || fail "anchors not reported: $(cat out)"

# The config's [import] target, for the configured log; a log named with
# --custody-log is not checked against it unless --target is given.
printf '[common]\ncustody-log = %s\n[import]\ntarget = %s\n' "$H" "$HIGH" > airlock.conf
chmod 0600 airlock.conf
run "$AUDIT" verify --config airlock.conf
[ "$rc" = 0 ] && grep -q '; 2 database anchors match$' out || { cat out err; fail "[import] target not used"; }
cp "$H" copy.log
run "$AUDIT" verify --config airlock.conf --custody-log copy.log
[ "$rc" = 0 ] || { cat err; fail "verify of a copy: exit $rc"; }
# The built-in default target (dbname=feeds) is not used.
printf '[common]\ncustody-log = %s\n' "$H" > plain.conf
chmod 0600 plain.conf
run "$AUDIT" verify --config plain.conf
[ "$rc" = 0 ] || { cat err; fail "verify without a target in the file: exit $rc"; }
grep -q 'anchor' out && fail "a database was consulted without a target: $(cat out)"
grep -q 'anchor' out && fail "a --custody-log copy was checked against [import] target: $(cat out)"

# A database without airlock.imports records no anchors.
run "$AUDIT" verify --target "$(pg_conninfo low)" --custody-log "$H"
[ "$rc" = 0 ] && grep -q '; the database records no anchors$' out || { cat out err; fail "no airlock.imports"; }

# The guide's query, run with psql, gives the same anchors; each passes
# the guide's by-hand commands.
block() {
	sed -n "/<!-- BEGIN $1 -->/,/<!-- END $1 -->/p" "$GUIDE" |
		sed -e '1,2d' -e '$d' | sed -e '$d' > "$1.sh"
	[ -s "$1.sh" ] || fail "no $1 block in doc/auditor-guide.md"
}
block anchor-query
block audit-anchor
DB=$HIGH PATH="$PG_HIGH_BINDIR:$PATH" sh -e anchor-query.sh > anchors.txt ||
	fail "the guide's anchor query failed"
[ "$(cut -d: -f1 anchors.txt | tr '\n' ' ')" = "$A1 $A2 " ] || { cat anchors.txt; fail "the guide's query"; }
while IFS=: read -r SEQ HASH; do
	(LOG=$H SEQ=$SEQ HASH=$HASH sh -e audit-anchor.sh) || fail "by hand: anchor $SEQ refused"
	set -- "$@" --anchor "$SEQ:$HASH"
done < anchors.txt
"$AUDIT" verify --custody-log "$H" "$@" >/dev/null || fail "the guide's anchors do not match"
set --

# --- a cut tail: still a whole chain, caught only through the anchor ----------
head -n $((A2 - 1)) "$H" > cut.log
"$AUDIT" verify --custody-log "$S/cut.log" >/dev/null || fail "a cut log should still be a whole chain"
expect 65 "log cut: it ends at seq $((A2 - 1)) (line $((A2 - 1))), but the database anchors seq $A2" \
	"$AUDIT" verify --target "$HIGH" --custody-log "$S/cut.log"
grep -q '\[custody.log_cut\]$' err || fail "reason code: $(cat err)"
# Cut further, below both anchors.
head -n $((A1 - 1)) "$H" > cut1.log
expect 65 "log cut: it ends at seq $((A1 - 1))" "$AUDIT" verify --target "$HIGH" --custody-log "$S/cut1.log"

# --- an anchored entry edited ---------------------------------------------------
# In place: its own hash no longer matches.
sed -e "${A1}s/\"outcome\":\"info\"/\"outcome\":\"ok\"/" "$H" > edited.log
cmp -s "$H" edited.log && fail "the edit did not change the log"
expect 65 "line $A1 (seq $A1): hash mismatch" \
	"$AUDIT" verify --target "$HIGH" --custody-log "$S/edited.log"

# Rewritten consistently from the anchored entry on (each hash and prev
# recomputed): a whole chain again, but not the one the database anchored.
rehash() { # LINE PREV: LINE with prev set to PREV and its hash recomputed
	body=$(printf '%s\n' "$1" | sed -e 's/,"hash":"[0-9a-f]\{64\}"}$//' \
		-e "s/\"prev\":\"[0-9a-f]\{64\}\"\$/\"prev\":\"$2\"/")
	h=$(printf '%s}' "$body" | sha256sum | cut -c1-64)
	printf '%s,"hash":"%s"}\n' "$body" "$h"
}
head -n $((A1 - 1)) "$H" > rewritten.log
prev=$(tail -n 1 rewritten.log | jq -r .hash)
n=$((A1 - 1))
tail -n +"$A1" "$H" | while IFS= read -r line; do
	n=$((n + 1))
	[ "$n" = "$A1" ] && line=$(printf '%s\n' "$line" | sed -e 's/"outcome":"info"/"outcome":"ok"/')
	line=$(rehash "$line" "$prev")
	prev=$(printf '%s\n' "$line" | jq -r .hash)
	printf '%s\n' "$line" >> rewritten.log
done
[ "$(wc -l < rewritten.log)" = "$N" ] || fail "the rewrite lost lines"
cmp -s "$H" rewritten.log && fail "the rewrite changed nothing"
"$AUDIT" verify --custody-log "$S/rewritten.log" >/dev/null 2>err ||
	{ cat err; fail "a consistent rewrite should still be a whole chain"; }
expect 65 "line $A1 (seq $A1): anchor mismatch: the database recorded hash" \
	"$AUDIT" verify --target "$HIGH" --custody-log "$S/rewritten.log"
grep -q '\[custody.anchor_mismatch\]$' err || fail "reason code: $(cat err)"

# --- the database side -------------------------------------------------------------
# --target applies to verify only.
expect 64 "--target does not apply to list" "$AUDIT" list --target "$HIGH" --custody-log "$H"
# An unreachable database: 69.
expect 69 "db.unavailable" "$AUDIT" verify --target "host=$S/nowhere port=1" --custody-log "$H"
# A malformed anchor row: the record was altered.
pg_psql high -c "UPDATE airlock.imports SET custody_hash = upper(custody_hash) WHERE sequence = 1"
expect 65 "the import of channel nvd sequence 1 has a malformed custody anchor: custody_hash is not 64 lower-case hex digits" \
	"$AUDIT" verify --target "$HIGH" --custody-log "$H"
pg_psql high -c "UPDATE airlock.imports SET custody_hash = lower(custody_hash), custody_seq = NULL WHERE sequence = 1"
expect 65 "custody_seq and custody_hash are not both set [restore.anchor]" \
	"$AUDIT" verify --target "$HIGH" --custody-log "$H"
# A row with no custody anchor at all (an import without a log) is skipped.
pg_psql high -c "UPDATE airlock.imports SET custody_hash = NULL WHERE sequence = 1"
run "$AUDIT" verify --target "$HIGH" --custody-log "$H"
[ "$rc" = 0 ] && grep -q '; 1 database anchor match$' out || { cat out err; fail "a row without an anchor"; }

echo "audit-anchor.sh: all cases passed"
