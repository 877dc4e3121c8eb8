/* al-mkbundle: a test tool that lays out the files of a bundle (section 1
 * of doc/bundle-format.md) in a directory, from a payload file, through the
 * real manifest, digest and sig modules. Tests use it to produce bundles
 * that external tools (gpgv, sha256sum, xorriso) then check.
 *
 *   al-mkbundle --out DIR --payload FILE --channel NAME --sequence N
 *               --signer FPR [--signer FPR ...] [--gnupghome DIR]
 *               [--chunk-size BYTES] [--created EPOCH] [--valid-for SECONDS]
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerr.h"
#include "bounds.h"
#include "digest.h"
#include "log.h"
#include "manifest.h"
#include "sig.h"

#define MAX_SIGNERS MANIFEST_MAX_SIGNERS

struct opts {
	const char *out;
	const char *payload;
	const char *channel;
	const char *gnupghome;
	const char *signers[MAX_SIGNERS];
	size_t n_signers;
	uint64_t sequence;
	uint64_t chunk_size;
	int64_t created;
	int64_t valid_for;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: al-mkbundle --out DIR --payload FILE --channel NAME --sequence N\n"
	           "                   --signer FPR [--signer FPR ...] [--gnupghome DIR]\n"
	           "                   [--chunk-size BYTES] [--created EPOCH] [--valid-for SECONDS]\n");
}

/* snprintf into a path buffer; a path that does not fit is an error. */
static int join(char *buf, size_t size, struct alerr *e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int join(char *buf, size_t size, struct alerr *e, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return alerr_set(e, ALERR_USAGE, -ENAMETOOLONG, "usage", "path too long");
	return 0;
}

static int write_all(const char *path, const void *data, size_t len, struct alerr *e)
{
	const char *p = data;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
	if (fd < 0)
		return alerr_set(e, ALERR_CANTCREAT, -errno, "io.create", "%s: %s", path, strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = -errno;

			close(fd);
			return alerr_set(e, ALERR_IOERR, r, "io.write", "%s: %s", path, strerror(-r));
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "io.write", "%s: %s", path, strerror(errno));
	return 0;
}

/* Cut the payload into chunks under dir/payload, adding each to m. */
static int write_chunks(const struct opts *o, const char *dir, struct manifest *m, struct alerr *e)
{
	char *buf = NULL, path[4096], rel[MANIFEST_CHUNK_PATH_LEN + 1];
	uint8_t sum[DIGEST_SHA256_LEN];
	uint64_t index = 0;
	FILE *in;
	int r = 0;

	in = fopen(o->payload, "rbe");
	if (!in)
		return alerr_set(e, ALERR_NOINPUT, -errno, "io.open", "%s: %s", o->payload, strerror(errno));
	buf = malloc((size_t)o->chunk_size);
	if (!buf) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "no_memory", "out of memory");
		goto out;
	}
	for (;;) {
		size_t n = fread(buf, 1, (size_t)o->chunk_size, in);

		if (n == 0) {
			if (ferror(in))
				r = alerr_set(e, ALERR_IOERR, -EIO, "io.read", "%s: read error", o->payload);
			break;
		}
		manifest_chunk_path(rel, sizeof(rel), index++);
		r = join(path, sizeof(path), e, "%s/%s", dir, rel);
		if (r == 0)
			r = write_all(path, buf, n, e);
		if (r < 0)
			break;
		digest_buffer(buf, n, sum);
		r = manifest_add_file(m, rel, n, sum, e);
		if (r < 0)
			break;
		if (n < o->chunk_size)
			break;
	}
	if (r == 0 && index == 0)
		r = alerr_set(e, ALERR_USAGE, -EINVAL, "usage", "%s: empty payload", o->payload);
out:
	free(buf);
	fclose(in);
	return r;
}

static int make_bundle(const struct opts *o, struct alerr *e)
{
	char top[4096], path[4096], host[256];
	struct manifest *m;
	char *text = NULL;
	size_t text_len = 0, i;
	int r;

	m = manifest_new();
	if (!m)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "no_memory", "out of memory");
	if ((r = join(top, sizeof(top), e, "%s/AIRLOCK", o->out)) < 0)
		goto out;
	if (mkdir(o->out, 0755) < 0 && errno != EEXIST) {
		r = alerr_set(e, ALERR_CANTCREAT, -errno, "io.create", "%s: %s", o->out, strerror(errno));
		goto out;
	}
	if ((r = join(path, sizeof(path), e, "%s/payload", top)) < 0)
		goto out;
	if (mkdir(top, 0755) < 0 || mkdir(path, 0755) < 0) {
		r = alerr_set(e, ALERR_CANTCREAT, -errno, "io.create", "%s: %s", top, strerror(errno));
		goto out;
	}
	if ((r = join(path, sizeof(path), e, "%s/SIGNATURES", top)) < 0)
		goto out;
	if (mkdir(path, 0755) < 0) {
		r = alerr_set(e, ALERR_CANTCREAT, -errno, "io.create", "%s: %s", path, strerror(errno));
		goto out;
	}
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';

	if ((r = manifest_set_text(m, MANIFEST_F_CHANNEL, o->channel, e)) < 0 ||
	    (r = manifest_set_sequence(m, o->sequence, e)) < 0 ||
	    (r = manifest_generate_bundle_id(m, e)) < 0 ||
	    (r = manifest_set_created(m, o->created, e)) < 0 ||
	    (r = manifest_set_valid_until(m, o->created + o->valid_for, e)) < 0 ||
	    (r = manifest_set_server_version(m, 150000, e)) < 0 ||
	    (r = manifest_set_chunk_size(m, o->chunk_size, e)) < 0 ||
	    (r = manifest_set_text(m, MANIFEST_F_SNAPSHOT, "00000003-00000002-1", e)) < 0 ||
	    (r = manifest_add_schema(m, "feeds", e)) < 0 ||
	    (r = manifest_set_text(m, MANIFEST_F_WRITER_HOST, host, e)) < 0 ||
	    (r = manifest_set_text(m, MANIFEST_F_COURIER, "Test Courier", e)) < 0 ||
	    (r = manifest_add_table(m, "feeds", "advisories", 0, e)) < 0)
		goto out;

	for (i = 0; i < o->n_signers; i++) {
		char fpr[SIG_FPR_SIZE];

		r = sig_signer_resolve(o->gnupghome, o->signers[i], fpr, e);
		if (r < 0)
			goto out;
		r = manifest_add_signer(m, fpr, e);
		if (r < 0)
			goto out;
	}
	r = write_chunks(o, top, m, e);
	if (r < 0)
		goto out;
	r = manifest_emit(m, &text, &text_len, e);
	if (r < 0)
		goto out;
	r = join(path, sizeof(path), e, "%s/MANIFEST", top);
	if (r == 0)
		r = write_all(path, text, text_len, e);
	if (r < 0)
		goto out;
	for (i = 0; i < o->n_signers; i++) {
		char fpr[SIG_FPR_SIZE];
		void *sig = NULL;
		size_t sig_len = 0;

		r = sig_sign_detached(o->gnupghome, o->signers[i], text, text_len,
		                      &sig, &sig_len, fpr, e);
		if (r < 0)
			goto out;
		r = join(path, sizeof(path), e, "%s/SIGNATURES/%s.sig", top, fpr);
		if (r == 0)
			r = write_all(path, sig, sig_len, e);
		free(sig);
		if (r < 0)
			goto out;
	}
	printf("%s\n", m->bundle_id);
out:
	free(text);
	manifest_free(m);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "payload", required_argument, NULL, 'p' },
		{ "channel", required_argument, NULL, 'c' },
		{ "sequence", required_argument, NULL, 'n' },
		{ "signer", required_argument, NULL, 's' },
		{ "gnupghome", required_argument, NULL, 'g' },
		{ "chunk-size", required_argument, NULL, 'k' },
		{ "created", required_argument, NULL, 't' },
		{ "valid-for", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o;
	struct alerr e;
	int c, r;

	memset(&o, 0, sizeof(o));
	o.chunk_size = CHUNK_SIZE_MIN;
	o.created = (int64_t)time(NULL);
	o.valid_for = 14 * 86400;
	log_init("al-mkbundle", LOG_TO_STDERR, LOG_LEVEL_NOTICE);
	alerr_clear(&e);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o.out = optarg; break;
		case 'p': o.payload = optarg; break;
		case 'c': o.channel = optarg; break;
		case 'g': o.gnupghome = optarg; break;
		case 'n': o.sequence = strtoull(optarg, NULL, 10); break;
		case 'k': o.chunk_size = strtoull(optarg, NULL, 10); break;
		case 't': o.created = strtoll(optarg, NULL, 10); break;
		case 'v': o.valid_for = strtoll(optarg, NULL, 10); break;
		case 's':
			if (o.n_signers == MAX_SIGNERS) {
				fprintf(stderr, "al-mkbundle: too many signers\n");
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
	if (!o.out || !o.payload || !o.channel || o.n_signers == 0 || optind != argc) {
		usage(stderr);
		return 64;
	}
	r = digest_library_init(&e);
	if (r == 0)
		r = make_bundle(&o, &e);
	if (r < 0) {
		log_alerr(&e);
		return alerr_exit_code(e.cls);
	}
	return 0;
}
