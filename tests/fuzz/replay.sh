#!/bin/sh
# Replays seed inputs through the fuzz targets built with a plain main():
# the example MANIFEST of doc/bundle-format.md and every prefix of it, a
# real signature with truncations, and random bytes. Only a crash fails.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
mkdir -p manifest sig

# The example manifest (section 3.5), unindented, and its prefixes.
sed -n '/^### 3.5 Example/,/^## 4/p' "$AIRLOCK_SRCDIR/doc/bundle-format.md" |
	sed -e '1,/^```$/d' -e '/^```$/,$d' > manifest/example
size=$(wc -c < manifest/example)
[ "$size" -gt 500 ] || { echo "example manifest not found in the doc" >&2; exit 1; }
i=1
while [ "$i" -lt "$size" ]; do
	head -c "$i" manifest/example > "manifest/prefix-$i"
	i=$((i + 37))
done
head -c 4096 /dev/urandom > manifest/random

# A real detached signature and cut-down copies of it.
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
. ./keys/keys.env
"$AIRLOCK_HARNESS/gpgkeys.sh" sign keys detached "$SIGNER1_FPR" manifest/example sig/good
"$AIRLOCK_HARNESS/gpgkeys.sh" sign keys armor "$SIGNER1_FPR" manifest/example sig/armor
n=$(wc -c < sig/good)
i=0
while [ "$i" -lt "$n" ]; do
	head -c "$i" sig/good > "sig/cut-$i"
	i=$((i + 1))
done
head -c 300 /dev/urandom > sig/random

"$AIRLOCK_BUILDDIR/tests/fuzz/fuzz-manifest" manifest/*
"$AIRLOCK_BUILDDIR/tests/fuzz/fuzz-sig-packet" sig/*
