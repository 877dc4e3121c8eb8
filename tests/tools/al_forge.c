/* al-forge: a test tool that makes the hostile bundles of
 * /work/shared/CATALOGUE.md (cases 1-24 and a few volume cases) as ISO
 * 9660 images, with the real manifest, digest, sig and volume modules and
 * one deliberate corruption each. Deterministic but for the signature
 * packets' timestamps (fixed bundle id, payload bytes, times).
 *
 *   al-forge --out IMAGE --gnupghome DIR --signer FPR [--signer FPR ...]
 *            [--attack NAME] [--sequence N] [--label-sequence N]
 *            [--channel C] [--created EPOCH] [--valid-for SECONDS]
 *            [--media-serial X] [--payload-size BYTES] [--rows N]
 *            [--bomb-bytes BYTES]
 *
 * Attacks on the files (the volume itself is the real writer's):
 *   none, flip-chunk-byte, chunk-short, chunk-long, extra-file,
 *   missing-file, manifest-byte (MANIFEST changed after signing).
 * Attacks on the first signer's signature file (the others stay valid):
 *   empty-sig, garbage-sig, inline-sig (an inline-signed message carrying
 *   other content), clearsigned, armored, sha1, expired-sig (expires one
 *   day after 2020-06-01), sign-in-2020 (made on 2020-06-01: a key that
 *   has expired since was valid then), sig-twice-same-key (two files).
 * Attacks that the real writer refuses, written with libarchive's ISO
 * 9660 writer directly (Rock Ridge, no Joliet):
 *   no-sig (no signature file: the signers are only listed), stray-file (AIRLOCK/README),
 *   symlink (AIRLOCK/payload/000001.chunk a symbolic link).
 * Attacks on MANIFEST's text, made before it is signed (the signatures
 * are good: the strict parse is what refuses it, catalogue 28):
 *   manifest-dup-field (Courier twice), manifest-long-line (a Courier
 *   line of 5000 bytes), manifest-too-large (over MANIFEST_MAX_BYTES in
 *   lines of 4000 bytes; the volume written by libarchive directly, as the
 *   real writer refuses such a MANIFEST).
 * A real payload (zstd pax tar: catalog.json for feeds.advisories (line
 * text), then its segments), signed and hashed like any other (catalogue
 * 30, a bomb inside a validly signed payload):
 *   payload-ok (two rows, restorable), bomb-rows (--bomb-bytes of rows in
 *   full 8 MiB segments, far beyond the rows MANIFEST counts), bomb-line
 *   (--bomb-bytes in full segments of one line that never ends),
 *   bomb-member-size (segment 0's header declares 8 GiB - 1), bomb-catalog
 *   (catalog.json's header declares 8 GiB - 1). --rows sets the table's row
 *   count in MANIFEST (default: 2; 1 for bomb-line; 0 without a payload).
 * Attacks on the ISO 9660 structures of the written image (catalogue 32):
 *   rr-ce-loop (chunk 1's Rock Ridge PX entry replaced by a SUSP CE whose
 *   continuation area, a block added at the end, continues into itself),
 *   dir-loop (AIRLOCK/payload's record points at the root directory's
 *   extent), extent-past-end (chunk 0's extent starts beyond the volume),
 *   dir-extent-past-end (AIRLOCK/payload's extent starts beyond it).
 * Wrong channel, old sequence, expiry, future, media serial and label
 * mismatch come from the parameters. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alerr.h"
#include "bounds.h"
#include "digest.h"
#include "log.h"
#include "manifest.h"
#include "pack.h"
#include "sig.h"
#include "volume.h"

extern char **environ;

#define MAX_SIGNERS 8
#define PATHBUF 4096

struct opts {
	const char *out, *gnupghome, *attack, *channel, *media_serial;
	const char *signers[MAX_SIGNERS];
	size_t n_signers;
	uint64_t sequence, label_sequence, payload_size, rows, bomb_bytes;
	int64_t created, valid_for;
};

static const char *const attacks[] = {
	"none", "flip-chunk-byte", "chunk-short", "chunk-long", "extra-file",
	"missing-file", "manifest-byte", "empty-sig", "garbage-sig", "inline-sig",
	"clearsigned", "armored", "sha1", "expired-sig", "sign-in-2020",
	"sig-twice-same-key", "no-sig", "stray-file", "symlink",
	"manifest-dup-field", "manifest-long-line", "manifest-too-large",
	"payload-ok", "bomb-rows", "bomb-line", "bomb-member-size", "bomb-catalog",
	"rr-ce-loop", "dir-loop", "extent-past-end", "dir-extent-past-end", NULL,
};

#define ROWS_BY_ATTACK UINT64_MAX
#define HUGE_MEMBER    ((UINT64_C(1) << 33) - 1)   /* 8 GiB - 1: ustar's largest */
#define MANIFEST_PAD_LINE 4000u

static int is(const struct opts *o, const char *a)
{
	return strcmp(o->attack, a) == 0;
}

static int has_payload(const struct opts *o)
{
	return strncmp(o->attack, "bomb-", 5) == 0 || is(o, "payload-ok");
}

static int on_image(const struct opts *o)
{
	return is(o, "rr-ce-loop") || is(o, "dir-loop") || is(o, "extent-past-end") ||
	       is(o, "dir-extent-past-end");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("al-forge: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(70);
}

static void die_e(const struct alerr *e)
{
	die("%s [%s]", e->message, e->reason);
}

static void path_of(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_of(char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, PATHBUF, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATHBUF)
		die("path too long");
}

static void put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);

	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) || close(fd) < 0)
		die("%s: %s", path, strerror(errno));
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rbe");
	char *buf;
	long n;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
		die("%s: %s", path, strerror(errno));
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("%s: read failed", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* gpg itself, for the signature forms the sig module never makes. */
static void gpg(const struct opts *o, const char *fpr, const char *kind, const char *in,
                const char *out)
{
	char user[128];
	const char *argv[32];
	size_t n = 0;
	pid_t pid;
	int st;

	snprintf(user, sizeof(user), "%s!", fpr);
	argv[n++] = "gpg";
	argv[n++] = "--batch";
	argv[n++] = "--quiet";
	argv[n++] = "--yes";
	argv[n++] = "--no-tty";
	if (o->gnupghome) {
		argv[n++] = "--homedir";
		argv[n++] = o->gnupghome;
	}
	argv[n++] = "--pinentry-mode";
	argv[n++] = "loopback";
	argv[n++] = "--passphrase";
	argv[n++] = "";
	argv[n++] = "--local-user";
	argv[n++] = user;
	if (strcmp(kind, "sha1") == 0) {
		argv[n++] = "--digest-algo";
		argv[n++] = "SHA1";
	} else {
		argv[n++] = "--digest-algo";
		argv[n++] = "SHA256";
	}
	if (strcmp(kind, "expired-sig") == 0 || strcmp(kind, "sign-in-2020") == 0) {
		argv[n++] = "--faked-system-time";
		argv[n++] = "20200601T000000";
	}
	if (strcmp(kind, "expired-sig") == 0) {
		argv[n++] = "--default-sig-expire";
		argv[n++] = "1d";
	}
	argv[n++] = "--output";
	argv[n++] = out;
	if (strcmp(kind, "clearsigned") == 0)
		argv[n++] = "--clearsign";
	else if (strcmp(kind, "inline-sig") == 0)
		argv[n++] = "--sign";
	else if (strcmp(kind, "armored") == 0) {
		argv[n++] = "--armor";
		argv[n++] = "--detach-sign";
	} else
		argv[n++] = "--detach-sign";
	argv[n++] = in;
	argv[n] = NULL;
	if (posix_spawnp(&pid, "gpg", NULL, NULL, (char *const *)(uintptr_t)argv, environ) != 0)
		die("cannot run gpg");
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("gpg (%s) failed for %s", kind, fpr);
}

static void write_chunks(const struct opts *o, const char *top, struct manifest *m)
{
	unsigned char *data = malloc((size_t)o->payload_size);
	char rel[MANIFEST_CHUNK_PATH_LEN + 1], path[PATHBUF];
	uint8_t sum[DIGEST_SHA256_LEN];
	uint64_t off = 0, i = 0;
	struct alerr e;

	alerr_clear(&e);
	if (!data)
		die("out of memory");
	for (off = 0; off < o->payload_size; off++)
		data[off] = (unsigned char)((off * 2654435761u) >> 11);
	for (off = 0; off < o->payload_size; i++) {
		uint64_t n = o->payload_size - off < CHUNK_SIZE_MIN ? o->payload_size - off :
		             CHUNK_SIZE_MIN;

		manifest_chunk_path(rel, sizeof(rel), i);
		path_of(path, "%s/%s", top, rel);
		put(path, data + off, (size_t)n);
		digest_buffer(data + off, (size_t)n, sum);
		if (manifest_add_file(m, rel, n, sum, &e) < 0)
			die_e(&e);
		off += n;
	}
	free(data);
}

/* The corruptions of the payload files, after the manifest is made. */
static void corrupt_chunks(const struct opts *o, const char *top, const struct manifest *m)
{
	char path[PATHBUF], rel[MANIFEST_CHUNK_PATH_LEN + 1];
	const struct manifest_file *last = &m->files[m->n_files - 1];
	size_t len;
	char *b;

	path_of(path, "%s/%s", top, last->path);
	if (is(o, "flip-chunk-byte")) {
		path_of(path, "%s/%s", top, m->files[0].path);
		b = slurp(path, &len);
		b[len / 2] ^= 0x01;
		put(path, b, len);
		free(b);
	} else if (is(o, "chunk-short") || is(o, "chunk-long")) {
		b = slurp(path, &len);
		b = realloc(b, len + 1);
		if (!b)
			die("out of memory");
		b[len] = 'X';
		put(path, b, is(o, "chunk-short") ? len - 1 : len + 1);
		free(b);
	} else if (is(o, "extra-file")) {
		manifest_chunk_path(rel, sizeof(rel), m->n_files);
		path_of(path, "%s/%s", top, rel);
		put(path, "extra\n", 6);
	} else if (is(o, "missing-file")) {
		if (m->n_files < 2)
			die("missing-file needs a payload of two chunks or more");
		if (unlink(path) < 0)
			die("%s: %s", path, strerror(errno));
	}
}

static void sign_all(const struct opts *o, const char *top, const char *text, size_t text_len)
{
	char path[PATHBUF], mpath[PATHBUF], name[SIG_FPR_SIZE];
	size_t i;
	struct alerr e;

	path_of(mpath, "%s/MANIFEST", top);
	for (i = 0; i < o->n_signers; i++) {
		int forged = i == 0 && !is(o, "none") && !is(o, "sig-twice-same-key");
		void *sig = NULL;
		size_t sig_len = 0;

		alerr_clear(&e);
		if (sig_signer_resolve(o->gnupghome, o->signers[i], name, &e) < 0)
			snprintf(name, sizeof(name), "%s", o->signers[i]);
		path_of(path, "%s/SIGNATURES/%s.sig", top, name);
		if (forged && is(o, "empty-sig")) {
			put(path, "", 0);
		} else if (forged && is(o, "garbage-sig")) {
			unsigned char g[200];
			size_t k;

			for (k = 0; k < sizeof(g); k++)
				g[k] = (unsigned char)(k * 37u + 11u);
			put(path, g, sizeof(g));
		} else if (forged && is(o, "inline-sig")) {
			char other[PATHBUF];

			path_of(other, "%s/../other-content", top);
			put(other, "Format: airlock-bundle/1\nChannel: evil\n", 39);
			gpg(o, o->signers[i], "inline-sig", other, path);
			unlink(other);
		} else if (forged && (is(o, "clearsigned") || is(o, "armored") || is(o, "sha1") ||
		                      is(o, "expired-sig") || is(o, "sign-in-2020"))) {
			gpg(o, o->signers[i], o->attack, mpath, path);
		} else {
			if (sig_sign_detached(o->gnupghome, o->signers[i], text, text_len, &sig,
			                      &sig_len, name, &e) < 0) {
				/* A subkey the sig module will not pick (an older
				 * signing subkey): gpg signs with it exactly. */
				if (strcmp(e.reason, "signature.signer") != 0)
					die_e(&e);
				path_of(path, "%s/SIGNATURES/%040zX.sig", top, 0xBEEFu + i);
				gpg(o, o->signers[i], "detached", mpath, path);
				continue;
			}
			path_of(path, "%s/SIGNATURES/%s.sig", top, name);
			put(path, sig, sig_len);
			if (i == 0 && is(o, "sig-twice-same-key")) {
				free(sig);
				if (sig_sign_detached(o->gnupghome, o->signers[i], text, text_len,
				                      &sig, &sig_len, name, &e) < 0)
					die_e(&e);
				path_of(path, "%s/SIGNATURES/%040X.sig", top, 0xF00Du);
				put(path, sig, sig_len);
			}
			free(sig);
		}
	}
}

/* libarchive's ISO 9660 writer on the tree, for the layouts volume_write
 * refuses. */
static void add_entry(struct archive *a, const char *root, const char *rel)
{
	char path[PATHBUF], target[PATHBUF];
	struct archive_entry *en = archive_entry_new();
	struct stat st;
	char *data = NULL;
	size_t len = 0;

	path_of(path, "%s/%s", root, rel);
	if (lstat(path, &st) < 0)
		die("%s: %s", path, strerror(errno));
	archive_entry_set_pathname(en, rel);
	archive_entry_set_uid(en, 0);
	archive_entry_set_gid(en, 0);
	archive_entry_set_mtime(en, 1764335671, 0);
	if (S_ISDIR(st.st_mode)) {
		archive_entry_set_filetype(en, AE_IFDIR);
		archive_entry_set_perm(en, 0555);
	} else if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n < 0)
			die("%s: %s", path, strerror(errno));
		target[n] = '\0';
		archive_entry_set_filetype(en, AE_IFLNK);
		archive_entry_set_perm(en, 0777);
		archive_entry_set_symlink(en, target);
	} else {
		data = slurp(path, &len);
		archive_entry_set_filetype(en, AE_IFREG);
		archive_entry_set_perm(en, 0444);
		archive_entry_set_size(en, (la_int64_t)len);
	}
	if (archive_write_header(a, en) != ARCHIVE_OK ||
	    (len && archive_write_data(a, data, len) != (la_ssize_t)len))
		die("libarchive: %s", archive_error_string(a));
	free(data);
	archive_entry_free(en);
}

static int add_tree(struct archive *a, const char *root, const char *rel)
{
	char path[PATHBUF], sub[PATHBUF];
	struct dirent **names = NULL;
	int n, i;

	path_of(path, "%s/%s", root, rel);
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		die("%s: %s", path, strerror(errno));
	for (i = 0; i < n; i++) {
		struct stat st;

		if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
			path_of(sub, "%s/%s", rel, names[i]->d_name);
			add_entry(a, root, sub);
			path_of(path, "%s/%s", root, sub);
			if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
				add_tree(a, root, sub);
		}
		free(names[i]);
	}
	free(names);
	return 0;
}

static void raw_iso(const struct opts *o, const char *root)
{
	struct archive *a = archive_write_new();
	char label[VOLUME_ID_SIZE];

	snprintf(label, sizeof(label), VOLUME_LABEL_PREFIX "%" PRIu64, o->label_sequence);
	if (!a || archive_write_set_format_iso9660(a) != ARCHIVE_OK ||
	    archive_write_set_option(a, "iso9660", "joliet", NULL) != ARCHIVE_OK ||
	    archive_write_set_option(a, "iso9660", "rockridge", "1") != ARCHIVE_OK ||
	    archive_write_set_option(a, "iso9660", "iso-level", "3") != ARCHIVE_OK ||
	    archive_write_set_option(a, "iso9660", "volume-id", label) != ARCHIVE_OK ||
	    archive_write_open_filename(a, o->out) != ARCHIVE_OK)
		die("libarchive: %s", a ? archive_error_string(a) : "out of memory");
	add_entry(a, root, "AIRLOCK");
	add_tree(a, root, "AIRLOCK");
	if (archive_write_close(a) != ARCHIVE_OK)
		die("libarchive: %s", archive_error_string(a));
	archive_write_free(a);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* ---- catalogue 28: MANIFEST text changed before it is signed ---- */

static char *manifest_mutate(const struct opts *o, char *text, size_t *len)
{
	static const char courier[] = "Courier: Test Courier\n";
	char *at = strstr(text, courier), *out;
	size_t head, extra = 0, k, pos;

	if (!at)
		die("no Courier line in MANIFEST");
	head = (size_t)(at - text) + sizeof(courier) - 1;
	if (is(o, "manifest-dup-field"))
		extra = sizeof(courier) - 1;
	else if (is(o, "manifest-long-line"))
		extra = 5000;
	else            /* manifest-too-large: continuation lines after Courier */
		extra = (MANIFEST_MAX_BYTES / (MANIFEST_PAD_LINE + 2u) + 1u) *
		        (MANIFEST_PAD_LINE + 2u);
	out = malloc(*len + extra + 1);
	if (!out)
		die("out of memory");
	if (is(o, "manifest-long-line")) {
		/* the Courier line grown by 5000 bytes */
		memcpy(out, text, head - 1);
		memset(out + head - 1, 'c', extra);
		pos = head - 1 + extra;
		out[pos++] = '\n';
	} else {
		memcpy(out, text, head);
		pos = head;
		if (is(o, "manifest-dup-field")) {
			memcpy(out + pos, courier, sizeof(courier) - 1);
			pos += sizeof(courier) - 1;
		} else {
			for (k = 0; k < extra / (MANIFEST_PAD_LINE + 2u); k++) {
				out[pos++] = ' ';
				memset(out + pos, 'p', MANIFEST_PAD_LINE);
				pos += MANIFEST_PAD_LINE;
				out[pos++] = '\n';
			}
		}
	}
	memcpy(out + pos, text + head, *len - head);
	pos += *len - head;
	out[pos] = '\0';
	free(text);
	*len = pos;
	return out;
}

/* ---- catalogue 30: real payloads, and bombs inside them ---- */

static const char catalog_json[] =
	"{\"format\":\"airlock-catalog/1\",\"schemas\":[{\"name\":\"feeds\",\"comment\":null,"
	"\"sequences\":[],\"tables\":[{\"name\":\"advisories\",\"comment\":null,"
	"\"columns\":[{\"name\":\"line\",\"type\":\"text\",\"not_null\":false,"
	"\"default\":null,\"identity\":null,\"comment\":null}],"
	"\"constraints\":[],\"indexes\":[]}],\"views\":[]}]}\n";

#define SEGMENT_PATH "data/feeds/advisories/%06" PRIu64 ".copy"

/* The valid shapes go through the real pack writer. */
static void payload_packed(const struct opts *o, const char *top, struct manifest *m)
{
	char dir[PATHBUF], name[64];
	struct pack *p = NULL;
	struct alerr e;
	char *seg;
	uint64_t i, n;
	size_t k;

	alerr_clear(&e);
	path_of(dir, "%s/payload", top);
	if (pack_new(&p, dir, CHUNK_SIZE_MIN, 1, 0, &e) < 0)
		die_e(&e);
	pack_set_mtime(p, o->created);
	if (pack_add_member(p, "catalog.json", catalog_json, sizeof(catalog_json) - 1, &e) < 0)
		die_e(&e);
	if (is(o, "payload-ok")) {
		static const char rows[] = "row one\nrow two\n";

		if (pack_add_member(p, "data/feeds/advisories/000000.copy", rows,
		                    sizeof(rows) - 1, &e) < 0)
			die_e(&e);
	} else {
		seg = malloc(PAYLOAD_SEGMENT_SIZE);
		if (!seg)
			die("out of memory");
		if (is(o, "bomb-rows")) {
			for (k = 0; k < PAYLOAD_SEGMENT_SIZE; k += 8)
				memcpy(seg + k, "bombrow\n", 8);
		} else {
			memset(seg, 'x', PAYLOAD_SEGMENT_SIZE);
		}
		n = o->bomb_bytes / PAYLOAD_SEGMENT_SIZE;
		for (i = 0; i < n; i++) {
			snprintf(name, sizeof(name), SEGMENT_PATH, i);
			if (pack_add_member(p, name, seg, PAYLOAD_SEGMENT_SIZE, &e) < 0)
				die_e(&e);
		}
		free(seg);
	}
	if (pack_finish(p, m, &e) < 0)
		die_e(&e);
	pack_free(p);
}

/* The shapes the pack writer refuses: ustar members written by hand into
 * a libarchive writer (raw format, zstd) that cuts the compressed stream
 * into chunks. */
struct zsink {
	const char *top;
	struct manifest *m;
	unsigned char *buf;
	size_t fill;
	uint64_t n;
};

static void zsink_flush(struct zsink *z)
{
	char rel[MANIFEST_CHUNK_PATH_LEN + 1], path[PATHBUF];
	uint8_t sum[DIGEST_SHA256_LEN];
	struct alerr e;

	if (z->fill == 0)
		return;
	alerr_clear(&e);
	manifest_chunk_path(rel, sizeof(rel), z->n++);
	path_of(path, "%s/%s", z->top, rel);
	put(path, z->buf, z->fill);
	digest_buffer(z->buf, z->fill, sum);
	if (manifest_add_file(z->m, rel, z->fill, sum, &e) < 0)
		die_e(&e);
	z->fill = 0;
}

static la_ssize_t zsink_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct zsink *z = ctx;
	const unsigned char *b = buf;
	size_t off = 0;

	(void)a;
	while (off < len) {
		size_t k = CHUNK_SIZE_MIN - z->fill < len - off ? CHUNK_SIZE_MIN - z->fill :
		           len - off;

		memcpy(z->buf + z->fill, b + off, k);
		z->fill += k;
		off += k;
		if (z->fill == CHUNK_SIZE_MIN)
			zsink_flush(z);
	}
	return (la_ssize_t)len;
}

/* A ustar member: its header (the largest size an octal field holds is
 * 8 GiB - 1), then len bytes of data, padded to a block when whole. */
static void tar_member(struct archive *raw, const char *name, uint64_t size,
                       const void *data, size_t len)
{
	static const char zeros[512];
	char h[512];
	unsigned int sum = 0;
	size_t i;

	memset(h, 0, sizeof(h));
	snprintf(h, 100, "%s", name);
	snprintf(h + 100, 8, "%07o", 0444u);
	snprintf(h + 108, 8, "%07o", 0u);
	snprintf(h + 116, 8, "%07o", 0u);
	snprintf(h + 124, 12, "%011" PRIo64, size);
	snprintf(h + 136, 12, "%011o", 1764335671u);
	memset(h + 148, ' ', 8);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);    /* with its NUL */
	memcpy(h + 263, "00", 2);
	for (i = 0; i < sizeof(h); i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
	if (archive_write_data(raw, h, sizeof(h)) != (la_ssize_t)sizeof(h) ||
	    archive_write_data(raw, data, len) != (la_ssize_t)len ||
	    (len == size && len % 512 &&
	     archive_write_data(raw, zeros, 512 - len % 512) != (la_ssize_t)(512 - len % 512)))
		die("libarchive (zstd): %s", archive_error_string(raw));
}

static void payload_raw(const struct opts *o, const char *top, struct manifest *m)
{
	struct zsink z = { top, m, malloc(CHUNK_SIZE_MIN), 0, 0 };
	struct archive *raw = archive_write_new();
	struct archive_entry *en = archive_entry_new();
	static char some[65536];

	if (!z.buf || !raw || !en)
		die("out of memory");
	memset(some, 'x', sizeof(some));
	archive_entry_set_pathname(en, "payload");
	archive_entry_set_filetype(en, AE_IFREG);
	if (archive_write_add_filter_zstd(raw) != ARCHIVE_OK ||
	    archive_write_set_format_raw(raw) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(raw, 0) != ARCHIVE_OK ||
	    archive_write_open2(raw, &z, NULL, zsink_write, NULL, NULL) != ARCHIVE_OK ||
	    archive_write_header(raw, en) != ARCHIVE_OK)
		die("libarchive (zstd): %s", archive_error_string(raw));
	archive_entry_free(en);
	/* the last member never ends: its declared size is never reached */
	if (is(o, "bomb-catalog")) {
		tar_member(raw, "catalog.json", HUGE_MEMBER, catalog_json, sizeof(catalog_json) - 1);
	} else {
		tar_member(raw, "catalog.json", sizeof(catalog_json) - 1, catalog_json,
		           sizeof(catalog_json) - 1);
		tar_member(raw, "data/feeds/advisories/000000.copy", HUGE_MEMBER, some,
		           sizeof(some));
	}
	if (archive_write_close(raw) != ARCHIVE_OK)
		die("libarchive (zstd): %s", archive_error_string(raw));
	archive_write_free(raw);
	zsink_flush(&z);
	free(z.buf);
}

/* ---- catalogue 32: the ISO 9660 structures of the written image ---- */

static uint32_t le32_at(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void both32(unsigned char *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
		p[7 - i] = (unsigned char)(v >> (8 * i));
	}
}

/* The offset of the SUSP entry sig ("NM", "PX") in the directory record
 * at rec, or 0. */
static size_t susp_find(const unsigned char *img, size_t rec, const char *sig)
{
	size_t rl = img[rec], p = rec + 33u + img[rec + 32];

	if (img[rec + 32] % 2 == 0)
		p++;
	while (p + 4 <= rec + rl && img[p + 2] >= 4 && p + img[p + 2] <= rec + rl) {
		if (img[p] == (unsigned char)sig[0] && img[p + 1] == (unsigned char)sig[1])
			return p;
		p += img[p + 2];
	}
	return 0;
}

/* The record named name (Rock Ridge) in the directory extent at lba. */
static size_t iso_find(const unsigned char *img, size_t len, uint32_t lba, uint32_t size,
                       const char *name)
{
	size_t p = (size_t)lba * VOLUME_BLOCK_SIZE, end = p + size, nm;

	if (end > len)
		die("directory extent beyond the image");
	while (p < end) {
		if (img[p] == 0) {         /* the rest of the block is padding */
			p = (p / VOLUME_BLOCK_SIZE + 1) * VOLUME_BLOCK_SIZE;
			continue;
		}
		nm = susp_find(img, p, "NM");
		if (nm && img[nm + 2] - 5u == strlen(name) &&
		    memcmp(img + nm + 5, name, strlen(name)) == 0)
			return p;
		p += img[p];
	}
	die("no directory record for %s", name);
}

static void patch_image(const struct opts *o)
{
	const size_t pvd = 16u * VOLUME_BLOCK_SIZE, root = pvd + 156u;
	size_t len, top, pay, chunk;
	unsigned char *img = (unsigned char *)slurp(o->out, &len);
	uint32_t blocks;

	if (len < pvd + VOLUME_BLOCK_SIZE || memcmp(img + pvd + 1, "CD001", 5) != 0)
		die("%s: no primary volume descriptor", o->out);
	blocks = le32_at(img + pvd + 80);
	top = iso_find(img, len, le32_at(img + root + 2), le32_at(img + root + 10), "AIRLOCK");
	pay = iso_find(img, len, le32_at(img + top + 2), le32_at(img + top + 10), "payload");
	if (is(o, "dir-loop")) {
		both32(img + pay + 2, le32_at(img + root + 2));
		both32(img + pay + 10, le32_at(img + root + 10));
	} else if (is(o, "dir-extent-past-end")) {
		both32(img + pay + 2, blocks + 1000u);
	} else if (is(o, "extent-past-end")) {
		chunk = iso_find(img, len, le32_at(img + pay + 2), le32_at(img + pay + 10),
		                 "000000.chunk");
		both32(img + chunk + 2, blocks + 1000u);
	} else {                /* rr-ce-loop */
		size_t px, ce, pad;
		unsigned char *grown;

		chunk = iso_find(img, len, le32_at(img + pay + 2), le32_at(img + pay + 10),
		                 "000001.chunk");
		px = susp_find(img, chunk, "PX");
		if (!px || img[px + 2] < 28u + 4u)
			die("no Rock Ridge PX entry of 32 bytes or more in chunk 1's record");
		pad = img[px + 2] - 28u;
		grown = realloc(img, len + VOLUME_BLOCK_SIZE);
		if (!grown || len != (size_t)blocks * VOLUME_BLOCK_SIZE)
			die("cannot grow the image");
		img = grown;
		memset(img + len, 0, VOLUME_BLOCK_SIZE);
		/* CE: block, offset, length; then PD padding in PX's place */
		for (ce = 0; ce < 2; ce++) {
			unsigned char *c = ce ? img + len : img + px;

			memcpy(c, "CE\x1c\x01", 4);
			both32(c + 4, blocks);
			both32(c + 12, 0);
			both32(c + 20, 28);
		}
		memcpy(img + px + 28, "PD", 2);
		img[px + 30] = (unsigned char)pad;
		img[px + 31] = 1;
		memset(img + px + 32, 0, pad - 4u);
		both32(img + pvd + 80, blocks + 1u);
		len += VOLUME_BLOCK_SIZE;
	}
	put(o->out, img, len);
	free(img);
}

static void forge(const struct opts *o)
{
	char work[PATHBUF], top[PATHBUF], path[PATHBUF], id[MANIFEST_BUNDLE_ID_LEN + 1];
	struct volume_info vi;
	struct manifest *m = manifest_new();
	char *text = NULL;
	size_t text_len = 0, i;
	struct alerr e;
	int fd;

	alerr_clear(&e);
	if (!m)
		die("out of memory");
	path_of(work, "%s.work.XXXXXX", o->out);
	if (!mkdtemp(work))
		die("%s: %s", work, strerror(errno));
	path_of(top, "%s/AIRLOCK", work);
	path_of(path, "%s/payload", top);
	if (mkdir(top, 0755) < 0 || mkdir(path, 0755) < 0)
		die("%s: %s", top, strerror(errno));
	path_of(path, "%s/SIGNATURES", top);
	if (mkdir(path, 0755) < 0)
		die("%s: %s", path, strerror(errno));
	snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012" PRIx64,
	         o->sequence & UINT64_C(0xffffffffffff));
	if (manifest_set_text(m, MANIFEST_F_CHANNEL, o->channel, &e) < 0 ||
	    manifest_set_sequence(m, o->sequence, &e) < 0 ||
	    manifest_set_text(m, MANIFEST_F_BUNDLE_ID, id, &e) < 0 ||
	    manifest_set_created(m, o->created, &e) < 0 ||
	    manifest_set_valid_until(m, o->created + o->valid_for, &e) < 0 ||
	    manifest_set_server_version(m, 150000, &e) < 0 ||
	    manifest_set_chunk_size(m, CHUNK_SIZE_MIN, &e) < 0 ||
	    manifest_set_text(m, MANIFEST_F_SNAPSHOT, "00000003-00000002-1", &e) < 0 ||
	    manifest_add_schema(m, "feeds", &e) < 0 ||
	    manifest_set_text(m, MANIFEST_F_WRITER_HOST, "forge.example", &e) < 0 ||
	    manifest_set_text(m, MANIFEST_F_COURIER, "Test Courier", &e) < 0 ||
	    (o->media_serial &&
	     manifest_set_text(m, MANIFEST_F_MEDIA_SERIAL, o->media_serial, &e) < 0) ||
	    manifest_add_table(m, "feeds", "advisories", o->rows, &e) < 0)
		die_e(&e);
	for (i = 0; i < o->n_signers; i++) {
		char fpr[SIG_FPR_SIZE];

		alerr_clear(&e);
		if (sig_signer_resolve(o->gnupghome, o->signers[i], fpr, &e) < 0 &&
		    sig_fpr_normalize(o->signers[i], fpr, &e) < 0)
			die_e(&e);
		alerr_clear(&e);
		if (manifest_add_signer(m, fpr, &e) < 0 && strcmp(e.reason, "manifest.entry_duplicate"))
			die_e(&e);
	}
	if (is(o, "bomb-member-size") || is(o, "bomb-catalog"))
		payload_raw(o, top, m);
	else if (has_payload(o))
		payload_packed(o, top, m);
	else
		write_chunks(o, top, m);
	if (manifest_emit(m, &text, &text_len, &e) < 0)
		die_e(&e);
	if (strncmp(o->attack, "manifest-", 9) == 0 && !is(o, "manifest-byte"))
		text = manifest_mutate(o, text, &text_len);
	path_of(path, "%s/MANIFEST", top);
	put(path, text, text_len);
	if (!is(o, "no-sig"))
		sign_all(o, top, text, text_len);
	corrupt_chunks(o, top, m);
	if (is(o, "manifest-byte")) {
		char *c = strstr(text, "Test Courier");

		c[5] = 'K';     /* "Test Kourier": still a valid MANIFEST */
		put(path, text, text_len);
	}
	if (is(o, "stray-file")) {
		path_of(path, "%s/README", top);
		put(path, "read me\n", 8);
	}
	if (is(o, "symlink")) {
		path_of(path, "%s/payload/000001.chunk", top);
		unlink(path);
		if (symlink("000000.chunk", path) < 0)
			die("%s: %s", path, strerror(errno));
	}
	unlink(o->out);
	if (is(o, "no-sig") || is(o, "stray-file") || is(o, "symlink") ||
	    is(o, "manifest-too-large")) {
		raw_iso(o, work);
	} else {
		fd = open(o->out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			die("%s: %s", o->out, strerror(errno));
		if (volume_write(work, fd, o->label_sequence, o->created, NULL, NULL, &vi, &e) < 0)
			die_e(&e);
		if (close(fd) < 0)
			die("%s: %s", o->out, strerror(errno));
		if (on_image(o))
			patch_image(o);
	}
	nftw(work, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	printf("%s\n", m->bundle_id);
	free(text);
	manifest_free(m);
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: al-forge --out IMAGE --gnupghome DIR --signer FPR [--signer FPR ...]\n"
	           "                [--attack NAME] [--sequence N] [--label-sequence N]\n"
	           "                [--channel C] [--created EPOCH] [--valid-for SECONDS]\n"
	           "                [--media-serial X] [--payload-size BYTES] [--rows N]\n"
	           "                [--bomb-bytes BYTES]\nattacks:");
	for (i = 0; attacks[i]; i++)
		fprintf(f, " %s", attacks[i]);
	fputc('\n', f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "gnupghome", required_argument, NULL, 'g' },
		{ "signer", required_argument, NULL, 's' },
		{ "attack", required_argument, NULL, 'a' },
		{ "sequence", required_argument, NULL, 'n' },
		{ "label-sequence", required_argument, NULL, 'l' },
		{ "channel", required_argument, NULL, 'c' },
		{ "created", required_argument, NULL, 't' },
		{ "valid-for", required_argument, NULL, 'v' },
		{ "media-serial", required_argument, NULL, 'm' },
		{ "payload-size", required_argument, NULL, 'p' },
		{ "rows", required_argument, NULL, 'r' },
		{ "bomb-bytes", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o;
	struct alerr e;
	size_t i;
	int c, known = 0;

	memset(&o, 0, sizeof(o));
	o.attack = "none";
	o.channel = "nvd";
	o.sequence = 1;
	o.created = INT64_C(1764335671);         /* 2025-11-28T13:14:31Z */
	o.valid_for = 14 * 86400;
	o.payload_size = CHUNK_SIZE_MIN + 4096u;  /* two chunks */
	o.rows = ROWS_BY_ATTACK;
	o.bomb_bytes = UINT64_C(1) << 30;
	log_init("al-forge", LOG_TO_STDERR, LOG_LEVEL_NOTICE);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o.out = optarg; break;
		case 'g': o.gnupghome = optarg; break;
		case 'a': o.attack = optarg; break;
		case 'c': o.channel = optarg; break;
		case 'm': o.media_serial = optarg; break;
		case 'n': o.sequence = strtoull(optarg, NULL, 10); break;
		case 'l': o.label_sequence = strtoull(optarg, NULL, 10); break;
		case 't': o.created = strtoll(optarg, NULL, 10); break;
		case 'v': o.valid_for = strtoll(optarg, NULL, 10); break;
		case 'p': o.payload_size = strtoull(optarg, NULL, 10); break;
		case 'r': o.rows = strtoull(optarg, NULL, 10); break;
		case 'b': o.bomb_bytes = strtoull(optarg, NULL, 10); break;
		case 's':
			if (o.n_signers == MAX_SIGNERS) {
				fprintf(stderr, "al-forge: too many signers\n");
				return 64;
			}
			o.signers[o.n_signers++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	for (i = 0; attacks[i]; i++)
		known |= strcmp(attacks[i], o.attack) == 0;
	if (!o.out || o.n_signers == 0 || !known ||
	    optind != argc || o.payload_size == 0 || o.payload_size > 64u * CHUNK_SIZE_MIN ||
	    o.bomb_bytes < PAYLOAD_SEGMENT_SIZE || o.bomb_bytes % PAYLOAD_SEGMENT_SIZE != 0 ||
	    o.bomb_bytes / PAYLOAD_SEGMENT_SIZE > PAYLOAD_SEGMENT_MAX_INDEX + 1u) {
		usage(stderr);
		return 64;
	}
	if (o.label_sequence == 0)
		o.label_sequence = o.sequence;
	if (o.rows == ROWS_BY_ATTACK)
		o.rows = !has_payload(&o) ? 0 : strcmp(o.attack, "bomb-line") == 0 ? 1 : 2;
	alerr_clear(&e);
	if (digest_library_init(&e) < 0)
		die_e(&e);
	forge(&o);
	return 0;
}
