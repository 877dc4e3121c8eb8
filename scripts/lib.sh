# Shared shell helpers for scripts/ (sourced, POSIX sh).

# The packages airlock needs to build, test and run, from Debian.
AIRLOCK_BUILD_PACKAGES="build-essential autoconf automake autoconf-archive pkg-config
 libpq-dev libblkid-dev libudev-dev libgpgme-dev libarchive-dev libzstd-dev
 libgcrypt20-dev libinih-dev libjson-c-dev uuid-dev libcriterion-dev"
AIRLOCK_RUNTIME_PACKAGES="postgresql postgresql-client gnupg gpgv gpg-agent
 util-linux udev systemd xorriso libarchive-tools zstd jq man-db groff-base
 procps e2fsprogs dosfstools fdisk kmod python3 time systemd-container strace"

msg() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { msg "error: $*"; exit 1; }

# Succeeds when every package named is installed.
packages_installed() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || return 1
	done
	return 0
}

# Top of the source tree (the parent of scripts/).
airlock_srcdir() {
	cd "$(dirname "$0")/.." && pwd
}
