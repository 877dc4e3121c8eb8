/* al-forge: a test tool that makes the hostile bundles of
 * /work/shared/CATALOGUE.md (cases 1-24 and a few volume cases) as ISO
 * 9660 images, with the real manifest, digest, sig and volume modules and
 * one deliberate corruption each. Deterministic but for the signature
 * packets' timestamps (fixed bundle id, payload bytes, times).
 *
 *   al-forge --out IMAGE --gnupghome DIR --signer FPR [--signer FPR ...]
 *            [--attack NAME] [--sequence N] [--label-sequence N]
 *            [--channel C] [--created EPOCH] [--valid-for SECONDS]
 *            [--media-serial X] [--payload-size BYTES]
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
#include "sig.h"
#include "volume.h"

extern char **environ;

#define MAX_SIGNERS 8
#define PATHBUF 4096

struct opts {
	const char *out, *gnupghome, *attack, *channel, *media_serial;
	const char *signers[MAX_SIGNERS];
	size_t n_signers;
	uint64_t sequence, label_sequence, payload_size;
	int64_t created, valid_for;
};

static const char *const attacks[] = {
	"none", "flip-chunk-byte", "chunk-short", "chunk-long", "extra-file",
	"missing-file", "manifest-byte", "empty-sig", "garbage-sig", "inline-sig",
	"clearsigned", "armored", "sha1", "expired-sig", "sign-in-2020",
	"sig-twice-same-key", "no-sig", "stray-file", "symlink", NULL,
};

static int is(const struct opts *o, const char *a)
{
	return strcmp(o->attack, a) == 0;
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
	    manifest_add_table(m, "feeds", "advisories", 0, &e) < 0)
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
	write_chunks(o, top, m);
	if (manifest_emit(m, &text, &text_len, &e) < 0)
		die_e(&e);
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
	if (is(o, "no-sig") || is(o, "stray-file") || is(o, "symlink")) {
		raw_iso(o, work);
	} else {
		fd = open(o->out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			die("%s: %s", o->out, strerror(errno));
		if (volume_write(work, fd, o->label_sequence, o->created, NULL, NULL, &vi, &e) < 0)
			die_e(&e);
		if (close(fd) < 0)
			die("%s: %s", o->out, strerror(errno));
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
	           "                [--media-serial X] [--payload-size BYTES]\nattacks:");
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
	    optind != argc || o.payload_size == 0 || o.payload_size > 64u * CHUNK_SIZE_MIN) {
		usage(stderr);
		return 64;
	}
	if (o.label_sequence == 0)
		o.label_sequence = o.sequence;
	alerr_clear(&e);
	if (digest_library_init(&e) < 0)
		die_e(&e);
	forge(&o);
	return 0;
}
