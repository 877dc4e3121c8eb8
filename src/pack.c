#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "digest.h"
#include "log.h"
#include "pack.h"

/* Chunk file names: six digits, as manifest_chunk_path gives them. */
#define CHUNK_NAME_SIZE 32                     /* "000042.chunk" + NUL, and room */
#define UNPACK_BUFFER_SIZE (128u * 1024u)      /* zstd's own input size */
#define CATALOG_NAME "catalog.json"
#define DATA_PREFIX "data/"
#define SEGMENT_SUFFIX ".copy"
#define SEGMENT_DIGITS 6u

_Static_assert(PACK_MAX_THREADS <= 1000u, "thread count fits its option text");
_Static_assert(MANIFEST_MAX_FILES <= MANIFEST_CHUNK_INDEX_MAX + 1u,
               "every chunk a manifest can list has a six-digit name");

/* ------------------------------------------------------------------ */
/* The member order of section 5, checked by the writer (a bug in the
 * exporter) and the reader (a hostile payload) alike. */

struct seq {
	int have_catalog;
	int have_table;
	char schema[NAME_MAX_IDENT + 1];
	char table[NAME_MAX_IDENT + 1];
	uint64_t index;             /* of the last segment */
	uint64_t last_size;         /* of the last segment */
	char **seen;                /* "schema.table", sorted */
	size_t n_seen, cap_seen;
	char why[160];
};

enum seq_verdict { SEQ_OK = 0, SEQ_NAME, SEQ_SIZE, SEQ_NOMEM };

static void seq_free(struct seq *s)
{
	size_t i;

	for (i = 0; i < s->n_seen; i++)
		free(s->seen[i]);
	free(s->seen);
	memset(s, 0, sizeof(*s));
}

/* Length of the identifier at s ([A-Za-z_][A-Za-z0-9_]*, at most
 * NAME_MAX_IDENT bytes) before the byte end, or 0. */
static size_t ident_len(const char *s, char end)
{
	size_t n = 0;

	for (;;) {
		char c = s[n];

		if (c == end)
			break;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
		      (n > 0 && c >= '0' && c <= '9')))
			return 0;
		if (++n > NAME_MAX_IDENT)
			return 0;
	}
	return n;
}

/* Split "data/S/T/NNNNNN.copy". */
static int parse_segment(const char *name, char schema[NAME_MAX_IDENT + 1],
                         char table[NAME_MAX_IDENT + 1], uint64_t *index)
{
	const char *p = name;
	size_t n, i;
	uint64_t v = 0;

	if (strncmp(p, DATA_PREFIX, strlen(DATA_PREFIX)) != 0)
		return -1;
	p += strlen(DATA_PREFIX);
	n = ident_len(p, '/');
	if (n == 0)
		return -1;
	memcpy(schema, p, n);
	schema[n] = '\0';
	p += n + 1;
	n = ident_len(p, '/');
	if (n == 0)
		return -1;
	memcpy(table, p, n);
	table[n] = '\0';
	p += n + 1;
	for (i = 0; i < SEGMENT_DIGITS; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10u + (uint64_t)(p[i] - '0');
	}
	if (strcmp(p + SEGMENT_DIGITS, SEGMENT_SUFFIX) != 0)
		return -1;
	*index = v;
	return 0;
}

/* Record schema.table as seen; SEQ_NAME when it was already. */
static enum seq_verdict seq_see(struct seq *s, const char *schema, const char *table)
{
	char key[2 * NAME_MAX_IDENT + 2], *k;
	size_t lo = 0, hi = s->n_seen;

	snprintf(key, sizeof(key), "%s.%s", schema, table);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, s->seen[mid]);

		if (c == 0) {
			snprintf(s->why, sizeof(s->why),
			         "table %s appears twice", key);
			return SEQ_NAME;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (s->n_seen == MANIFEST_MAX_TABLES) {
		snprintf(s->why, sizeof(s->why), "more than %u tables",
		         MANIFEST_MAX_TABLES);
		return SEQ_SIZE;
	}
	if (s->n_seen == s->cap_seen) {
		size_t cap = s->cap_seen ? s->cap_seen * 2 : 64;
		char **n = realloc(s->seen, cap * sizeof(*n));

		if (!n)
			return SEQ_NOMEM;
		s->seen = n;
		s->cap_seen = cap;
	}
	k = strdup(key);
	if (!k)
		return SEQ_NOMEM;
	memmove(s->seen + lo + 1, s->seen + lo, (s->n_seen - lo) * sizeof(*s->seen));
	s->seen[lo] = k;
	s->n_seen++;
	return SEQ_OK;
}

/* One more member: its name in order, its size within its cap. */
static enum seq_verdict seq_check(struct seq *s, const char *name, uint64_t size)
{
	char schema[NAME_MAX_IDENT + 1], table[NAME_MAX_IDENT + 1];
	uint64_t index;

	if (!s->have_catalog) {
		if (strcmp(name, CATALOG_NAME) != 0) {
			snprintf(s->why, sizeof(s->why), "the first member is not %s",
			         CATALOG_NAME);
			return SEQ_NAME;
		}
		if (size > PAYLOAD_CATALOG_MAX) {
			snprintf(s->why, sizeof(s->why),
			         "%s is %" PRIu64 " bytes, over the cap of %u",
			         CATALOG_NAME, size, PAYLOAD_CATALOG_MAX);
			return SEQ_SIZE;
		}
		s->have_catalog = 1;
		return SEQ_OK;
	}
	if (parse_segment(name, schema, table, &index) < 0) {
		snprintf(s->why, sizeof(s->why), "a name section 5 does not allow");
		return SEQ_NAME;
	}
	if (size > PAYLOAD_SEGMENT_SIZE) {
		snprintf(s->why, sizeof(s->why),
		         "segment of %" PRIu64 " bytes, over the segment size %u",
		         size, PAYLOAD_SEGMENT_SIZE);
		return SEQ_SIZE;
	}
	if (s->have_table && strcmp(schema, s->schema) == 0 &&
	    strcmp(table, s->table) == 0) {
		if (index != s->index + 1) {
			snprintf(s->why, sizeof(s->why),
			         "segment %06" PRIu64 " after %06" PRIu64, index, s->index);
			return SEQ_NAME;
		}
		if (s->last_size != PAYLOAD_SEGMENT_SIZE) {
			snprintf(s->why, sizeof(s->why),
			         "segment %06" PRIu64 " follows a short segment", index);
			return SEQ_NAME;
		}
	} else {
		enum seq_verdict v;

		if (index != 0) {
			snprintf(s->why, sizeof(s->why),
			         "a table starting at segment %06" PRIu64, index);
			return SEQ_NAME;
		}
		v = seq_see(s, schema, table);
		if (v != SEQ_OK)
			return v;
		memcpy(s->schema, schema, sizeof(schema));
		memcpy(s->table, table, sizeof(table));
		s->have_table = 1;
	}
	s->index = index;
	s->last_size = size;
	return SEQ_OK;
}

/* ------------------------------------------------------------------ */
/* Writer */

struct pack_chunk {
	uint64_t size;
	uint8_t sha256[DIGEST_SHA256_LEN];
};

struct pack {
	struct archive *a;
	struct archive_entry *entry;
	char *dir;
	int dirfd;
	uint64_t chunk_size;
	int64_t mtime;
	int fd;                     /* the chunk being written, or -1 */
	uint64_t fill;              /* its bytes so far */
	struct digest *d;
	struct pack_chunk *chunks;  /* closed chunks */
	size_t n_chunks, cap_chunks;
	uint64_t bytes_in, bytes_out;
	struct seq seq;
	struct alerr werr;          /* a failure inside the write callback */
	int closed, broken;
	int abandoned;              /* the callback writes nothing more */
};

static void chunk_name(char buf[CHUNK_NAME_SIZE], size_t index)
{
	snprintf(buf, CHUNK_NAME_SIZE, "%06zu.chunk", index);
}

static int chunk_open(struct pack *p)
{
	char name[CHUNK_NAME_SIZE];

	if (p->n_chunks >= MANIFEST_MAX_FILES)
		return alerr_set(&p->werr, ALERR_USAGE, -EFBIG, "pack.too_many_chunks",
		                 "the payload needs more than %u chunks of %" PRIu64
		                 " bytes: choose a larger chunk size",
		                 MANIFEST_MAX_FILES, p->chunk_size);
	if (p->n_chunks == p->cap_chunks) {
		size_t cap = p->cap_chunks ? p->cap_chunks * 2 : 16;
		struct pack_chunk *n = realloc(p->chunks, cap * sizeof(*n));

		if (!n)
			return alerr_set(&p->werr, ALERR_OSERR, -ENOMEM, "pack.memory",
			                 "payload: out of memory");
		p->chunks = n;
		p->cap_chunks = cap;
	}
	chunk_name(name, p->n_chunks);
	p->fd = openat(p->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	               0444);
	if (p->fd < 0)
		return alerr_set(&p->werr, ALERR_CANTCREAT, -errno, "pack.chunk_create",
		                 "%s/%s: %s", p->dir, name, strerror(errno));
	p->fill = 0;
	digest_reset(p->d);
	return 0;
}

static int chunk_close(struct pack *p)
{
	char name[CHUNK_NAME_SIZE];
	struct pack_chunk *c = &p->chunks[p->n_chunks];
	int fd = p->fd;

	chunk_name(name, p->n_chunks);
	p->fd = -1;
	if (fsync(fd) < 0) {
		int r = -errno;

		close(fd);
		return alerr_set(&p->werr, ALERR_IOERR, r, "pack.chunk_write",
		                 "%s/%s: fsync: %s", p->dir, name, strerror(-r));
	}
	if (close(fd) < 0)
		return alerr_set(&p->werr, ALERR_IOERR, -errno, "pack.chunk_write",
		                 "%s/%s: close: %s", p->dir, name, strerror(errno));
	c->size = p->fill;
	digest_final(p->d, c->sha256);
	p->n_chunks++;
	p->fill = 0;
	return 0;
}

static int write_full(int fd, const unsigned char *b, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* libarchive's output: cut into chunks, hashed as written. */
static la_ssize_t pack_write_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct pack *p = ctx;
	const unsigned char *b = buf;
	size_t left = len;

	if (p->abandoned) {
		archive_set_error(a, ECANCELED, "payload abandoned");
		return -1;
	}
	if (alerr_failed(&p->werr))
		goto fail;
	while (left > 0) {
		size_t n;
		int r;

		if (p->fd < 0 && chunk_open(p) < 0)
			goto fail;
		n = left;
		if (n > p->chunk_size - p->fill)
			n = (size_t)(p->chunk_size - p->fill);
		r = write_full(p->fd, b, n);
		if (r < 0) {
			char name[CHUNK_NAME_SIZE];

			chunk_name(name, p->n_chunks);
			alerr_set(&p->werr, ALERR_IOERR, r, "pack.chunk_write", "%s/%s: %s",
			          p->dir, name, strerror(-r));
			goto fail;
		}
		digest_update(p->d, b, n);
		p->fill += n;
		p->bytes_out += n;
		b += n;
		left -= n;
		if (p->fill == p->chunk_size && chunk_close(p) < 0)
			goto fail;
	}
	return (la_ssize_t)len;
fail:
	archive_set_error(a, -p->werr.errnum, "%s", p->werr.message);
	return -1;
}

/* A libarchive call failed: the callback's own error if it had one. */
static int pack_fail(struct pack *p, const char *what, struct alerr *e)
{
	p->broken = 1;
	if (alerr_failed(&p->werr))
		return alerr_set(e, p->werr.cls, p->werr.errnum, p->werr.reason, "%s",
		                 p->werr.message);
	return alerr_set(e, ALERR_SOFTWARE, -EIO, "pack.archive", "payload: %s: %s",
	                 what, archive_error_string(p->a) ? archive_error_string(p->a)
	                                                  : "unknown libarchive error");
}

int pack_new(struct pack **out, const char *payload_dir, uint64_t chunk_size,
             int zstd_level, unsigned int threads, struct alerr *e)
{
	char opt[16];
	struct pack *p;
	int r;

	*out = NULL;
	if (chunk_size < CHUNK_SIZE_MIN || chunk_size > CHUNK_SIZE_MAX)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "pack.chunk_size",
		                 "chunk size %" PRIu64 " is outside %u..%" PRIu64,
		                 chunk_size, CHUNK_SIZE_MIN, CHUNK_SIZE_MAX);
	if (zstd_level < PACK_ZSTD_LEVEL_MIN || zstd_level > PACK_ZSTD_LEVEL_MAX)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "pack.zstd_level",
		                 "zstd level %d is outside %d..%d", zstd_level,
		                 PACK_ZSTD_LEVEL_MIN, PACK_ZSTD_LEVEL_MAX);
	if (threads > PACK_MAX_THREADS)
		return alerr_set(e, ALERR_USAGE, -EINVAL, "pack.threads",
		                 "%u zstd threads: at most %u", threads, PACK_MAX_THREADS);
	p = calloc(1, sizeof(*p));
	if (!p)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "pack.memory", "payload: out of memory");
	p->fd = -1;
	p->dirfd = -1;
	p->chunk_size = chunk_size;
	p->dir = strdup(payload_dir);
	if (!p->dir) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "pack.memory", "payload: out of memory");
		goto fail;
	}
	r = digest_new(&p->d, e);
	if (r < 0)
		goto fail;
	p->dirfd = open(payload_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (p->dirfd < 0) {
		r = alerr_set(e, ALERR_CANTCREAT, -errno, "pack.chunk_create", "%s: %s",
		              payload_dir, strerror(errno));
		goto fail;
	}
	p->entry = archive_entry_new();
	p->a = archive_write_new();
	if (!p->entry || !p->a) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "pack.memory", "payload: out of memory");
		goto fail;
	}
	if (archive_write_set_format_pax_restricted(p->a) != ARCHIVE_OK ||
	    archive_write_add_filter_zstd(p->a) != ARCHIVE_OK) {
		r = pack_fail(p, "pax + zstd", e);
		goto fail;
	}
	snprintf(opt, sizeof(opt), "%d", zstd_level);
	if (archive_write_set_filter_option(p->a, "zstd", "compression-level", opt) != ARCHIVE_OK) {
		r = pack_fail(p, "zstd compression-level", e);
		goto fail;
	}
	if (threads > 0) {
		snprintf(opt, sizeof(opt), "%u", threads);
		if (archive_write_set_filter_option(p->a, "zstd", "threads", opt) != ARCHIVE_OK) {
			r = pack_fail(p, "zstd threads", e);
			goto fail;
		}
	}
	/* No blocking: the callback cuts the chunks itself, and a padded
	 * last block would put zero bytes after the zstd frame. */
	if (archive_write_set_bytes_per_block(p->a, 0) != ARCHIVE_OK ||
	    archive_write_open2(p->a, p, NULL, pack_write_cb, NULL, NULL) != ARCHIVE_OK) {
		r = pack_fail(p, "open", e);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	pack_free(p);
	return r;
}

void pack_set_mtime(struct pack *p, int64_t mtime)
{
	p->mtime = mtime;
}

int pack_add_member(void *pack, const char *name, const void *data, size_t len,
                    struct alerr *e)
{
	struct pack *p = pack;
	const char *b = data;
	size_t off = 0;

	if (p->broken || p->closed)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "pack.archive",
		                 "payload: member %s added after %s", name,
		                 p->closed ? "the end" : "a failure");
	switch (seq_check(&p->seq, name, len)) {
	case SEQ_OK:
		break;
	case SEQ_NOMEM:
		p->broken = 1;
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "pack.memory", "payload: out of memory");
	case SEQ_SIZE:
		p->broken = 1;
		return alerr_set(e, ALERR_SOFTWARE, -EFBIG, "pack.member_size",
		                 "payload member %s: %s", name, p->seq.why);
	default:
		p->broken = 1;
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "pack.member_name",
		                 "payload member %s: %s", name, p->seq.why);
	}
	archive_entry_clear(p->entry);
	archive_entry_set_pathname(p->entry, name);
	archive_entry_set_filetype(p->entry, AE_IFREG);
	archive_entry_set_perm(p->entry, 0444);
	archive_entry_set_size(p->entry, (la_int64_t)len);
	archive_entry_set_uid(p->entry, 0);
	archive_entry_set_gid(p->entry, 0);
	archive_entry_set_uname(p->entry, "root");
	archive_entry_set_gname(p->entry, "root");
	archive_entry_set_mtime(p->entry, (time_t)p->mtime, 0);
	if (archive_write_header(p->a, p->entry) != ARCHIVE_OK)
		return pack_fail(p, name, e);
	while (off < len) {
		la_ssize_t n = archive_write_data(p->a, b + off, len - off);

		if (n <= 0)
			return pack_fail(p, name, e);
		off += (size_t)n;
	}
	if (archive_write_finish_entry(p->a) != ARCHIVE_OK)
		return pack_fail(p, name, e);
	p->bytes_in += len;
	return 0;
}

int pack_finish(struct pack *p, struct manifest *m, struct alerr *e)
{
	char rel[MANIFEST_CHUNK_PATH_LEN + 1];
	size_t i;
	int r;

	if (p->broken || p->closed)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "pack.archive",
		                 "payload: finished after %s", p->closed ? "the end" : "a failure");
	if (!p->seq.have_catalog) {
		p->broken = 1;
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "pack.member_name",
		                 "payload: no %s", CATALOG_NAME);
	}
	p->closed = 1;
	if (archive_write_close(p->a) != ARCHIVE_OK)
		return pack_fail(p, "close", e);
	if (p->fd >= 0 && chunk_close(p) < 0)
		return pack_fail(p, "close", e);
	if (p->n_chunks == 0) {
		p->broken = 1;
		return alerr_set(e, ALERR_SOFTWARE, -EIO, "pack.archive",
		                 "payload: libarchive wrote nothing");
	}
	if (fsync(p->dirfd) < 0) {
		p->broken = 1;
		return alerr_set(e, ALERR_IOERR, -errno, "pack.chunk_write", "%s: fsync: %s",
		                 p->dir, strerror(errno));
	}
	for (i = 0; i < p->n_chunks; i++) {
		r = manifest_chunk_path(rel, sizeof(rel), i);
		if (r < 0)
			return alerr_set(e, ALERR_SOFTWARE, r, "pack.too_many_chunks",
			                 "chunk %zu has no name", i);
		r = manifest_add_file(m, rel, p->chunks[i].size, p->chunks[i].sha256, e);
		if (r < 0)
			return r;
	}
	return 0;
}

void pack_free(struct pack *p)
{
	if (!p)
		return;
	if (p->a) {
		/* An abandoned stream never flushes into more chunks; it is
		 * still closed: libarchive 3.6 frees its output buffer only
		 * there (archive_write_fail would leak it). */
		if (!p->closed || p->broken) {
			p->abandoned = 1;
			archive_write_close(p->a);
		}
		archive_write_free(p->a);
	}
	archive_entry_free(p->entry);
	if (p->fd >= 0)
		close(p->fd);
	if (p->dirfd >= 0)
		close(p->dirfd);
	digest_free(p->d);
	seq_free(&p->seq);
	free(p->chunks);
	free(p->dir);
	free(p);
}

uint64_t pack_bytes_in(const struct pack *p)
{
	return p->bytes_in;
}

uint64_t pack_bytes_out(const struct pack *p)
{
	return p->bytes_out;
}

uint64_t pack_chunks(const struct pack *p)
{
	return p->n_chunks + (p->fd >= 0 ? 1u : 0u);
}

/* ------------------------------------------------------------------ */
/* Reader */

struct unpack {
	struct archive *a;
	unpack_read_fn read_fn;
	void *ctx;
	unsigned char *buf;
	struct unpack_limits lim;
	struct seq seq;
	uint64_t members;
	uint64_t total;             /* declared sizes of the members so far */
	uint64_t remaining;         /* of the current member */
	int in_member, at_end, failed;
	struct alerr rerr;          /* a failure inside read_fn */
	struct alerr ferr;          /* sticky: every later call returns it */
	/* unpack_new_dir */
	char *dir;
	int dirfd, cur_fd;
	uint64_t n_chunks, next_chunk;
};

static la_ssize_t unpack_read_cb(struct archive *a, void *ctx, const void **out)
{
	struct unpack *u = ctx;
	ssize_t n;

	n = u->read_fn(u->ctx, u->buf, UNPACK_BUFFER_SIZE, &u->rerr);
	if (n < 0 || (size_t)n > UNPACK_BUFFER_SIZE) {
		if (!alerr_failed(&u->rerr))
			alerr_set(&u->rerr, ALERR_SOFTWARE, -EIO, "io.read",
			          "payload source returned %zd", n);
		archive_set_error(a, EIO, "%s", u->rerr.message);
		return -1;
	}
	*out = u->buf;
	return (la_ssize_t)n;
}

/* Remember a failure: every later call reports it again. */
static int unpack_failv(struct unpack *u, struct alerr *e, const char *reason,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int unpack_failv(struct unpack *u, struct alerr *e, const char *reason,
                        const char *fmt, ...)
{
	va_list ap;

	if (!u->failed) {
		u->failed = 1;
		va_start(ap, fmt);
		if (alerr_failed(&u->rerr))
			alerr_set(&u->ferr, u->rerr.cls, u->rerr.errnum, u->rerr.reason,
			          "%s", u->rerr.message);
		else if (strcmp(reason, "pack.memory") == 0)
			alerr_vset(&u->ferr, ALERR_OSERR, -ENOMEM, reason, fmt, ap);
		else
			alerr_vset(&u->ferr, ALERR_REJECT, -EBADMSG, reason, fmt, ap);
		va_end(ap);
	}
	return alerr_set(e, u->ferr.cls, u->ferr.errnum, u->ferr.reason, "%s",
	                 u->ferr.message);
}

static const char *arch_msg(struct archive *a)
{
	const char *s = archive_error_string(a);

	return s ? s : "unknown libarchive error";
}

/* A new reader; read_fn and ctx are set by the caller before
 * unpack_start. */
static struct unpack *unpack_alloc(const struct unpack_limits *lim)
{
	struct unpack *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->dirfd = -1;
	u->cur_fd = -1;
	u->lim = *lim;
	u->buf = malloc(UNPACK_BUFFER_SIZE);
	u->a = archive_read_new();
	if (!u->buf || !u->a) {
		unpack_free(u);
		return NULL;
	}
	return u;
}

static int unpack_start(struct unpack *u, struct alerr *e)
{
	/* One filter, one format: nothing else may parse these bytes. */
	if (archive_read_support_filter_zstd(u->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(u->a) != ARCHIVE_OK)
		return alerr_set(e, ALERR_SOFTWARE, -ENOTSUP, "pack.archive",
		                 "payload reader: %s", arch_msg(u->a));
	if (archive_read_open2(u->a, u, NULL, unpack_read_cb, NULL, NULL) != ARCHIVE_OK)
		return unpack_failv(u, e, "payload.malformed", "payload: %s", arch_msg(u->a));
	return 0;
}

int unpack_new(struct unpack **out, unpack_read_fn read_fn, void *ctx,
               const struct unpack_limits *lim, struct alerr *e)
{
	struct unpack *u;
	int r;

	*out = NULL;
	u = unpack_alloc(lim);
	if (!u)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "pack.memory", "payload: out of memory");
	u->read_fn = read_fn;
	u->ctx = ctx;
	r = unpack_start(u, e);
	if (r < 0) {
		unpack_free(u);
		return r;
	}
	*out = u;
	return 0;
}

static ssize_t dir_read(void *ctx, void *buf, size_t size, struct alerr *e)
{
	struct unpack *u = ctx;
	char name[CHUNK_NAME_SIZE];

	for (;;) {
		ssize_t n;

		if (u->cur_fd < 0) {
			struct stat st;

			if (u->next_chunk == u->n_chunks)
				return 0;
			chunk_name(name, (size_t)u->next_chunk);
			u->cur_fd = openat(u->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (u->cur_fd < 0) {
				if (errno == ENOENT)
					return alerr_set(e, ALERR_NOINPUT, -ENOENT, "file.missing",
					                 "%s/%s: missing", u->dir, name);
				return alerr_set(e, ALERR_IOERR, -errno, "io.read", "%s/%s: %s",
				                 u->dir, name, strerror(errno));
			}
			if (fstat(u->cur_fd, &st) < 0 || !S_ISREG(st.st_mode))
				return alerr_set(e, ALERR_REJECT, -EINVAL, "file.not_regular",
				                 "%s/%s: not a regular file", u->dir, name);
			u->next_chunk++;
		}
		n = read(u->cur_fd, buf, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			chunk_name(name, (size_t)(u->next_chunk - 1));
			return alerr_set(e, ALERR_IOERR, -errno, "io.read", "%s/%s: %s",
			                 u->dir, name, strerror(errno));
		}
		if (n > 0)
			return n;
		close(u->cur_fd);
		u->cur_fd = -1;
	}
}

int unpack_new_dir(struct unpack **out, const char *payload_dir, uint64_t n_chunks,
                   const struct unpack_limits *lim, struct alerr *e)
{
	struct unpack *u;
	int r;

	*out = NULL;
	if (n_chunks == 0 || n_chunks > MANIFEST_MAX_FILES)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "pack.archive",
		                 "%" PRIu64 " chunks: not a payload", n_chunks);
	u = unpack_alloc(lim);
	if (!u)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "pack.memory", "payload: out of memory");
	u->dir = strdup(payload_dir);
	if (!u->dir) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "pack.memory", "payload: out of memory");
		goto fail;
	}
	u->dirfd = open(payload_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (u->dirfd < 0) {
		r = alerr_set(e, ALERR_NOINPUT, -errno, "file.missing", "%s: %s",
		              payload_dir, strerror(errno));
		goto fail;
	}
	u->n_chunks = n_chunks;
	u->read_fn = dir_read;
	u->ctx = u;
	r = unpack_start(u, e);
	if (r < 0)
		goto fail;
	*out = u;
	return 0;
fail:
	unpack_free(u);
	return r;
}

int unpack_next(struct unpack *u, const char **name, uint64_t *size, struct alerr *e)
{
	char shown[128];
	struct archive_entry *entry;
	const char *path;
	la_int64_t sz;
	int fmt, r;

	*name = NULL;
	*size = 0;
	if (u->failed)
		return unpack_failv(u, e, "payload.malformed", "payload: failed earlier");
	if (u->at_end)
		return 0;
	u->in_member = 0;
	r = archive_read_next_header(u->a, &entry);
	if (r == ARCHIVE_EOF) {
		if (!u->seq.have_catalog)
			return unpack_failv(u, e, "payload.malformed",
			                    "payload: no member at all (no %s)", CATALOG_NAME);
		u->at_end = 1;
		return 0;
	}
	if (r != ARCHIVE_OK)   /* a warning too: nothing half-understood */
		return unpack_failv(u, e, "payload.malformed", "payload member %" PRIu64
		                    ": %s", u->members + 1, arch_msg(u->a));
	if (archive_filter_code(u->a, 0) != ARCHIVE_FILTER_ZSTD)
		return unpack_failv(u, e, "payload.malformed",
		                    "payload: not zstd-compressed (%s)",
		                    archive_filter_name(u->a, 0));
	if (archive_filter_count(u->a) != 2)
		return unpack_failv(u, e, "payload.malformed",
		                    "payload: compressed %d times", archive_filter_count(u->a) - 1);
	fmt = archive_format(u->a);
	if (fmt != ARCHIVE_FORMAT_TAR_USTAR && fmt != ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE &&
	    fmt != ARCHIVE_FORMAT_TAR_PAX_RESTRICTED)
		return unpack_failv(u, e, "payload.malformed",
		                    "payload: %s is not a pax or ustar tar",
		                    archive_format_name(u->a) ? archive_format_name(u->a)
		                                              : "the format");
	path = archive_entry_pathname(entry);
	if (!path)
		return unpack_failv(u, e, "payload.member_name",
		                    "payload member %" PRIu64 ": no usable name", u->members + 1);
	log_sanitize(shown, sizeof(shown), path, strlen(path));
	if (archive_entry_filetype(entry) != AE_IFREG || archive_entry_hardlink(entry) ||
	    archive_entry_symlink(entry) || archive_entry_sparse_count(entry) != 0)
		return unpack_failv(u, e, "payload.member_type",
		                    "payload member %" PRIu64 " (%s): a link, directory or "
		                    "special file, not a plain regular file", u->members + 1,
		                    shown);
	if (!archive_entry_size_is_set(entry) || archive_entry_size(entry) < 0)
		return unpack_failv(u, e, "payload.malformed",
		                    "payload member %" PRIu64 " (%s): no size", u->members + 1,
		                    shown);
	sz = archive_entry_size(entry);
	if (u->members >= u->lim.max_members)
		return unpack_failv(u, e, "payload.too_many_members",
		                    "payload: more than %" PRIu64 " members", u->lim.max_members);
	u->members++;
	switch (seq_check(&u->seq, path, (uint64_t)sz)) {
	case SEQ_OK:
		break;
	case SEQ_NOMEM:
		return unpack_failv(u, e, "pack.memory", "payload: out of memory");
	case SEQ_SIZE:
		return unpack_failv(u, e, "payload.too_large", "payload member %" PRIu64
		                    " (%s): %s", u->members, shown, u->seq.why);
	default:
		return unpack_failv(u, e, "payload.member_name", "payload member %" PRIu64
		                    " (%s): %s", u->members, shown, u->seq.why);
	}
	if ((uint64_t)sz > u->lim.max_total || u->total > u->lim.max_total - (uint64_t)sz)
		return unpack_failv(u, e, "payload.too_large",
		                    "payload: over the cap of %" PRIu64 " bytes at member %"
		                    PRIu64 " (%s)", u->lim.max_total, u->members, shown);
	u->total += (uint64_t)sz;
	u->remaining = (uint64_t)sz;
	u->in_member = 1;
	*name = path;
	*size = (uint64_t)sz;
	return 1;
}

ssize_t unpack_read(struct unpack *u, void *buf, size_t len, struct alerr *e)
{
	la_ssize_t n;

	if (u->failed)
		return unpack_failv(u, e, "payload.malformed", "payload: failed earlier");
	if (!u->in_member || len == 0)
		return 0;
	n = archive_read_data(u->a, buf, len);
	if (n < 0)
		return unpack_failv(u, e, "payload.malformed", "payload member %" PRIu64 ": %s",
		                    u->members, arch_msg(u->a));
	if ((uint64_t)n > u->remaining)
		return unpack_failv(u, e, "payload.malformed",
		                    "payload member %" PRIu64 ": more data than its size",
		                    u->members);
	if (n == 0 && u->remaining > 0)
		return unpack_failv(u, e, "payload.malformed",
		                    "payload member %" PRIu64 ": truncated", u->members);
	u->remaining -= (uint64_t)n;
	return (ssize_t)n;
}

uint64_t unpack_bytes(const struct unpack *u)
{
	return u->total;
}

void unpack_free(struct unpack *u)
{
	if (!u)
		return;
	if (u->a)
		archive_read_free(u->a);
	if (u->cur_fd >= 0)
		close(u->cur_fd);
	if (u->dirfd >= 0)
		close(u->dirfd);
	seq_free(&u->seq);
	free(u->buf);
	free(u->dir);
	free(u);
}
