#!/bin/sh
# The by-hand commands of doc/auditor-guide.md (sed, sha256sum, jq), run
# verbatim on custody logs written by the custody module: they pass on a
# clean log and print what airlock-audit verify prints; they fail on each
# kind of tampering; the torn-write and anchor commands check a recorded
# torn write and a cut tail.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}"
cd "${AIRLOCK_SCRATCH:?}"
command -v jq >/dev/null 2>&1 || { echo "SKIP: jq is not installed (apt-get install jq)"; exit 77; }

AUDIT=$AIRLOCK_BUILDDIR/src/airlock-audit
APPEND=$AIRLOCK_BUILDDIR/tests/unit/al-custody-append
GUIDE=$AIRLOCK_SRCDIR/doc/auditor-guide.md

fail() { echo "FAIL: $*" >&2; exit 1; }

# The block between <!-- BEGIN name --> and <!-- END name -->, without
# the markers and the code fences.
block() {
	sed -n "/<!-- BEGIN $1 -->/,/<!-- END $1 -->/p" "$GUIDE" |
		sed -e '1,2d' -e '$d' | sed -e '$d' > "$1.sh"
	[ -s "$1.sh" ] || fail "no $1 block in doc/auditor-guide.md"
}
block audit-by-hand
block audit-anchor
block audit-torn
grep -q sha256sum audit-by-hand.sh || fail "the by-hand block does not use sha256sum"
grep -q jq audit-by-hand.sh || fail "the by-hand block does not use jq"

# by_hand LOG: run the documented commands in a directory of their own.
by_hand() {
	rm -rf work && mkdir work
	(cd work && LOG=$1 sh -e ../audit-by-hand.sh) > by-hand.out 2>&1
}

app() { "$APPEND" "$@" >/dev/null || fail "append $*"; }

# A log whose text has quotes, backslashes, commas, non-ASCII and escaped
# bytes, to exercise the shell loop.
L=$PWD/custody.log
R1=0f8fad5b-d9cb-469f-a165-70867728950e
app --log "$L" --event media.inserted --run $R1 --devnode /dev/sdc \
	--serial "$(printf 'A\\B"C\001')" --vendor 'Caf\303\251' --model 'x, y / z' --size 123
app --log "$L" --event media.quarantined --outcome ok --run $R1 \
	--image-sha256 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
app --log "$L" --event bundle.verified --outcome ok --run $R1 --channel nvd --sequence 7 \
	--bundle-id 6f1c2a4e-0b7d-4c52-9a55-3f0e2d1c4b6a --verified --signed-host 'low-01' \
	--signed-courier "$(printf 'Jos\303\251 O\047Brien')" \
	--signer 0123456789ABCDEF0123456789ABCDEF01234567 --detail 'note=a "quoted" \ value'
app --log "$L" --event restore.intent --run $R1
app --log "$L" --event restore.done --outcome ok --run $R1 --detail rows=42
app --log "$L" --event bundle.rejected --outcome refused --reason checksum.mismatch --count 5

by_hand "$L" || { cat by-hand.out; fail "the documented commands refused a clean log"; }
"$AUDIT" verify --custody-log "$L" > audit.out
[ "$(tail -n 1 by-hand.out)" = "$(cat audit.out)" ] ||
	fail "by hand: $(tail -n 1 by-hand.out); airlock-audit: $(cat audit.out)"

# Each tampering: the documented commands fail.
n=0
tampered() {
	n=$((n + 1))
	if by_hand "$PWD/t.log"; then
		cat by-hand.out
		fail "the documented commands accepted: $1"
	fi
	if "$AUDIT" verify --custody-log t.log > /dev/null 2>&1; then
		fail "airlock-audit accepted: $1"
	fi
}
cp "$L" t.log; sed -i '2s/"outcome":"ok"/"outcome":"error"/' t.log; tampered "an edited outcome"
cp "$L" t.log; sed -i '3s/"sequence":7/"sequence":8/' t.log; tampered "an edited sequence"
cp "$L" t.log; sed -i '1s/"size":123/"size":124/' t.log; tampered "an edited size"
cp "$L" t.log; sed -i '5s/"time":"2/"time":"3/' t.log; tampered "an edited time"
cp "$L" t.log; sed -i '4d' t.log; tampered "a deleted entry"
{ sed -n 1,2p "$L"; sed -n 4p "$L"; sed -n 3p "$L"; sed -n '5,$p' "$L"; } > t.log
tampered "two entries swapped"
cp "$L" t.log; sed -i '2s/"seq":2,/"seq": 2,/' t.log; tampered "whitespace added"
cp "$L" t.log; sed -i '2s/"outcome":"ok"/"outcome":"error","outcome":"ok"/' t.log
tampered "a duplicate member"
# A forged entry hashed right but chained to nothing.
cp "$L" t.log
body=$(tail -n 1 "$L" | sed -e 's/"seq":10,/"seq":11,/' \
	-e 's/"prev":"[0-9a-f]*"/"prev":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"/' \
	-e 's/,"hash":"[0-9a-f]\{64\}"}$/}/')
printf '%s,"hash":"%s"}\n' "${body%?}" "$(printf '%s' "$body" | sha256sum | cut -c1-64)" >> t.log
tampered "a forged entry with a wrong prev"
# The whole line rewritten with a new hash: the next prev breaks.
cp "$L" t.log
body=$(sed -n 3p "$L" | sed -e 's/"channel":"nvd"/"channel":"nve"/' \
	-e 's/,"hash":"[0-9a-f]\{64\}"}$/}/')
line=$(printf '%s,"hash":"%s"}' "${body%?}" "$(printf '%s' "$body" | sha256sum | cut -c1-64)")
{ sed -n 1,2p "$L"; printf '%s\n' "$line"; sed -n '4,$p' "$L"; } > t.log
tampered "an entry rewritten with its hash"
# A member of the wrong type, rehashed so that only step 2 can see it.
cp "$L" t.log
body=$(sed -n 10p "$L" | sed -e 's/"uid":0,/"uid":"0",/' -e 's/,"hash":"[0-9a-f]\{64\}"}$/}/')
line=$(printf '%s,"hash":"%s"}' "${body%?}" "$(printf '%s' "$body" | sha256sum | cut -c1-64)")
{ sed -n 1,9p "$L"; printf '%s\n' "$line"; } > t.log
tampered "a member of the wrong type"
grep -q 'FAILED: line 10: a member is missing, misplaced or malformed' by-hand.out ||
	{ cat by-hand.out; fail "step 2 did not name line 10"; }

# A torn write, recorded by the next append: the torn-write commands
# find what the custody.torn_tail entry records, and the log without the
# torn lines passes the steps of section 5.
cp "$L" torn.log
truncate -s -30 torn.log
app --log "$PWD/torn.log" --event media.inserted --devnode /dev/sdd
"$AUDIT" verify --custody-log torn.log > /dev/null || fail "airlock-audit refused a recorded torn write"
TORN=$(grep -n '"event":"custody.torn_tail"' torn.log | cut -d: -f1)
[ "$TORN" = 11 ] || fail "custody.torn_tail at line $TORN"
(LOG=$PWD/torn.log TORN=$TORN sh -e audit-torn.sh) > torn.out 2>&1 || { cat torn.out; fail "torn commands"; }
[ "$(wc -l < torn.out)" = 2 ] || { cat torn.out; fail "torn commands: expected two lines"; }
[ "$(sed -n 1p torn.out)" = "$(sed -n 2p torn.out)" ] || { cat torn.out; fail "torn record does not match"; }
by_hand "$PWD/custody-without-torn.log" || { cat by-hand.out; fail "the log without its torn lines"; }
# The torn bytes changed: the record no longer matches.
sed -i '10s/^{"v":1/{"v":2/' torn.log
(LOG=$PWD/torn.log TORN=$TORN sh -e audit-torn.sh) > torn.out 2>&1
[ "$(sed -n 1p torn.out)" != "$(sed -n 2p torn.out)" ] || fail "a changed torn line matched its record"

# Anchors: the commands pass for an anchor in the log, fail once the tail
# is cut.
SEQ=9
HASH=$(sed -n 9p "$L" | jq -r .hash)
(LOG=$L SEQ=$SEQ HASH=$HASH sh -e audit-anchor.sh) || fail "the anchor commands refused a good anchor"
sed -e '8,$d' "$L" > cut.log
by_hand "$PWD/cut.log" || fail "a cut log is still a whole chain"
if (LOG=$PWD/cut.log SEQ=$SEQ HASH=$HASH sh -e audit-anchor.sh) 2>/dev/null; then
	fail "the anchor commands accepted a cut tail"
fi

echo "audit-by-hand: the documented commands pass on a clean log and fail on $n forgeries"
