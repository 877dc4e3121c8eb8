#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounds.h"
#include "digest.h"
#include "log.h"
#include "verify.h"

#define TOP "AIRLOCK/"
#define SIGDIR "AIRLOCK/SIGNATURES/"
#define TIME_BUF 32                     /* a manifest time or "@<int64>" */

struct lent {
	char *path;        /* relative to AIRLOCK/ */
	uint64_t size;
	char *data;        /* a signature file's bytes, read with the listing */
	size_t len;
};

/* The listing, and the bytes of MANIFEST and of the signature files read
 * in the same pass (at most SIG_MAX_FILES signatures: more are refused
 * before any is looked at). Only the payload is read in a second pass,
 * once MANIFEST is trusted. */
struct listing {
	struct lent *files;            /* under AIRLOCK/, not MANIFEST or signatures */
	size_t n_files, cap_files;
	struct lent *sigs;             /* names under SIGNATURES/ */
	size_t n_sigs, cap_sigs;
	int have_manifest;
	uint64_t manifest_size;
	char *manifest;                /* its bytes, NULL when over MANIFEST_MAX_BYTES */
	size_t manifest_len;
};

static void listing_free(struct listing *l)
{
	size_t i;

	for (i = 0; i < l->n_files; i++)
		free(l->files[i].path);
	for (i = 0; i < l->n_sigs; i++) {
		free(l->sigs[i].path);
		free(l->sigs[i].data);
	}
	free(l->files);
	free(l->sigs);
	free(l->manifest);
	memset(l, 0, sizeof(*l));
}

static int lent_add(struct lent **v, size_t *n, size_t *cap, const char *path, uint64_t size,
                    struct alerr *e)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct lent *nv;

		if (c > VOLUME_MAX_ENTRIES)
			c = VOLUME_MAX_ENTRIES;
		if (*n >= c)
			return alerr_set(e, ALERR_REJECT, -E2BIG, "volume.too_many_entries",
			                 "more than %u entries on the volume", VOLUME_MAX_ENTRIES);
		nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return alerr_set(e, ALERR_OSERR, -ENOMEM, "verify.memory", "out of memory");
		*v = nv;
		*cap = c;
	}
	(*v)[*n].path = strdup(path);
	if (!(*v)[*n].path)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "verify.memory", "out of memory");
	(*v)[*n].size = size;
	(*v)[*n].data = NULL;
	(*v)[*n].len = 0;
	(*n)++;
	return 0;
}

/* The current file of the walk, whole (size at most max). */
static int read_whole(struct volume_walk *w, const char *path, uint64_t size, size_t max,
                      char **out, size_t *out_len, struct alerr *e)
{
	size_t got = 0;
	char *buf;

	*out = NULL;
	*out_len = 0;
	if (size > max)
		return alerr_set(e, ALERR_SOFTWARE, -E2BIG, "verify.internal",
		                 "%s: %" PRIu64 " bytes, over %zu", path, size, max);
	buf = malloc(size ? (size_t)size : 1u);
	if (!buf)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "verify.memory", "out of memory");
	while (got < size) {
		ssize_t n = volume_walk_read(w, buf + got, (size_t)size - got, e);

		if (n < 0) {
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != size) {
		free(buf);
		return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
		                 "%s: %zu of %" PRIu64 " bytes readable", path, got, size);
	}
	*out = buf;
	*out_len = got;
	return 0;
}

static int list_entry(struct listing *l, struct volume_walk *w, const char *path, int is_dir,
                      uint64_t size, struct alerr *e)
{
	struct lent *s;
	int r;

	if (is_dir)
		return 0;
	if (strcmp(path, TOP "MANIFEST") == 0) {
		l->have_manifest = 1;
		l->manifest_size = size;
		if (size > MANIFEST_MAX_BYTES)
			return 0;
		return read_whole(w, path, size, MANIFEST_MAX_BYTES, &l->manifest,
		                  &l->manifest_len, e);
	}
	if (strncmp(path, SIGDIR, sizeof(SIGDIR) - 1) == 0) {
		r = lent_add(&l->sigs, &l->n_sigs, &l->cap_sigs, path + sizeof(SIGDIR) - 1,
		             size, e);
		if (r < 0 || l->n_sigs > SIG_MAX_FILES || size > SIG_FILE_MAX_BYTES)
			return r;
		s = &l->sigs[l->n_sigs - 1];
		return read_whole(w, path, size, SIG_FILE_MAX_BYTES, &s->data, &s->len, e);
	}
	if (strncmp(path, TOP, sizeof(TOP) - 1) == 0)
		return lent_add(&l->files, &l->n_files, &l->cap_files, path + sizeof(TOP) - 1,
		                size, e);
	/* volume_walk allows nothing outside AIRLOCK/: keep it that way. */
	return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.entry_name",
	                 "a file outside AIRLOCK/ on the volume");
}

static int lent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct lent *)a)->path, ((const struct lent *)b)->path);
}

static const struct lent *lent_find(const struct listing *l, const char *path)
{
	struct lent key = { .path = (char *)(uintptr_t)path };

	if (l->n_files == 0)
		return NULL;
	return bsearch(&key, l->files, l->n_files, sizeof(*l->files), lent_cmp);
}

static int policy_check(const char *image, const struct verify_policy *p, struct alerr *e)
{
	if (!image || !p)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "verify.policy", "no image or no policy");
	if (p->threshold == 0 || p->n_pinned == 0 || !p->pinned)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "verify.policy",
		                 "a threshold of at least 1 and pinned keys are required");
	if (p->n_channels == 0 || !p->channels)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "verify.policy",
		                 "no channel is accepted");
	if (p->max_entries == 0 || p->max_total == 0 || p->max_path == 0)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "verify.policy",
		                 "the listing caps must be above 0");
	if (p->now <= 0 || p->clock_skew < 0 || p->clock_skew > INT64_C(86400) * 366)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "verify.policy",
		                 "no station clock, or a clock skew out of range");
	return 0;
}

static int step_list(const char *image, const struct volume_limits *lim, struct listing *l,
                     struct verify_result *res, struct alerr *e)
{
	struct volume_walk *w = NULL;
	uint64_t bytes = 0, size;
	const char *path;
	int fd, r, is_dir;

	fd = open(image, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return alerr_set(e, ALERR_NOINPUT, -errno, "volume.not_iso", "%s: %s", image,
		                 strerror(errno));
	r = volume_probe(fd, &bytes, res->volume_id, e);
	close(fd);
	if (r < 0)
		return r;
	r = volume_walk_open(&w, image, lim, e);
	if (r < 0)
		return r;
	while ((r = volume_walk_next(w, &path, &is_dir, &size, e)) == 1) {
		r = list_entry(l, w, path, is_dir, size, e);
		if (r < 0)
			break;
	}
	volume_walk_close(w);
	if (r < 0)
		return r;
	if (l->n_files > 1)
		qsort(l->files, l->n_files, sizeof(*l->files), lent_cmp);
	if (l->n_sigs > 1)
		qsort(l->sigs, l->n_sigs, sizeof(*l->sigs), lent_cmp);
	return 0;
}

static int step_signatures(const struct verify_policy *p, const struct listing *l,
                           struct verify_result *res, struct alerr *e)
{
	struct sig_policy sp = {
		.keyring_dir = p->keyring_dir, .pinned = p->pinned,
		.n_pinned = p->n_pinned, .threshold = p->threshold,
	};
	struct sig_blob blobs[SIG_MAX_FILES];
	size_t i;
	int r;

	if (!l->have_manifest)
		return alerr_set(e, ALERR_REJECT, -ENOENT, "bundle.file_missing",
		                 "AIRLOCK/MANIFEST is not on the volume");
	if (l->n_sigs > SIG_MAX_FILES)
		return alerr_set(e, ALERR_REJECT, -E2BIG, "signature.too_many",
		                 "%zu signature files, at most %u allowed", l->n_sigs,
		                 SIG_MAX_FILES);
	if (!l->manifest)
		return alerr_set(e, ALERR_REJECT, -E2BIG, "manifest.too_large",
		                 TOP "MANIFEST: %" PRIu64 " bytes, at most %u allowed",
		                 l->manifest_size, MANIFEST_MAX_BYTES);
	r = digest_buffer(l->manifest, l->manifest_len, res->manifest_sha256);
	if (r < 0)
		return alerr_set(e, ALERR_SOFTWARE, r, "verify.digest", "SHA-256 unavailable");
	res->have_manifest_sha256 = 1;
	for (i = 0; i < l->n_sigs; i++) {
		if (!l->sigs[i].data)
			return alerr_set(e, ALERR_REJECT, -E2BIG, "volume.too_large",
			                 SIGDIR "%s: %" PRIu64 " bytes, at most %u allowed",
			                 l->sigs[i].path, l->sigs[i].size, SIG_FILE_MAX_BYTES);
		blobs[i].name = l->sigs[i].path;
		blobs[i].data = l->sigs[i].data;
		blobs[i].len = l->sigs[i].len;
	}
	return sig_verify(&sp, l->manifest, l->manifest_len, blobs, l->n_sigs, &res->sigs, e);
}

static int step_label(const struct manifest *m, const struct verify_result *res,
                      struct alerr *e)
{
	char want[VOLUME_ID_SIZE];

	snprintf(want, sizeof(want), VOLUME_LABEL_PREFIX "%" PRIu64, m->sequence);
	if (strcmp(want, res->volume_id) != 0) {
		char shown[VOLUME_ID_SIZE * 4];

		log_sanitize(shown, sizeof(shown), res->volume_id, strlen(res->volume_id));
		return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.label_mismatch",
		                 "volume label %s does not match the signed Sequence %" PRIu64,
		                 shown, m->sequence);
	}
	return 0;
}

/* Hash the walk's current file, the payload file mf. */
static int hash_entry(struct volume_walk *w, const struct manifest_file *mf, uint64_t size,
                      unsigned char *buf, struct digest *d, struct verify_result *res,
                      struct alerr *e)
{
	char want[65], got_hex[65];
	uint8_t sum[DIGEST_SHA256_LEN];
	uint64_t got = 0;

	digest_reset(d);
	for (;;) {
		ssize_t n = volume_walk_read(w, buf, IO_BUFFER_SIZE, e);

		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		got += (uint64_t)n;
		if (got > mf->size)
			break;
		digest_update(d, buf, (size_t)n);
	}
	if (got != mf->size || size != mf->size)
		return alerr_set(e, ALERR_REJECT, -EBADMSG, "checksum.size_mismatch",
		                 "%s: %" PRIu64 " bytes, the manifest says %" PRIu64, mf->path,
		                 got > size ? got : size, mf->size);
	digest_final(d, sum);
	if (!digest_equal(sum, mf->sha256)) {
		digest_hex(want, mf->sha256);
		digest_hex(got_hex, sum);
		return alerr_set(e, ALERR_REJECT, -EBADMSG, "checksum.mismatch",
		                 "%s: SHA-256 %s, the manifest says %s", mf->path, got_hex, want);
	}
	res->bytes += got;
	res->n_files++;
	return 0;
}

/* Every payload file hashed in one pass over the image, in the order the
 * files lie on it. */
static int hash_files(const char *image, const struct volume_limits *lim,
                      const struct manifest *m, struct verify_result *res, struct alerr *e)
{
	struct volume_walk *w = NULL;
	unsigned char *buf = NULL, *done = NULL;
	struct digest *d = NULL;
	const char *path, *rel;
	uint64_t size;
	size_t i;
	int r, is_dir;

	buf = malloc(IO_BUFFER_SIZE);
	done = calloc(m->n_files ? m->n_files : 1u, 1);
	if (!buf || !done) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "verify.memory", "out of memory");
		goto out;
	}
	r = digest_new(&d, e);
	if (r < 0)
		goto out;
	r = volume_walk_open(&w, image, lim, e);
	if (r < 0)
		goto out;
	while ((r = volume_walk_next(w, &path, &is_dir, &size, e)) == 1) {
		const struct manifest_file *mf;

		if (is_dir || strncmp(path, TOP, sizeof(TOP) - 1) != 0)
			continue;
		rel = path + sizeof(TOP) - 1;
		if (strcmp(rel, "MANIFEST") == 0 ||
		    strncmp(rel, "SIGNATURES/", sizeof("SIGNATURES/") - 1) == 0)
			continue;
		mf = manifest_find_file(m, rel);
		if (!mf) {
			r = alerr_set(e, ALERR_REJECT, -EBADMSG, "bundle.file_extra",
			              "%s is on the volume but not listed in MANIFEST", rel);
			break;
		}
		r = hash_entry(w, mf, size, buf, d, res, e);
		if (r < 0)
			break;
		done[mf - m->files] = 1;
	}
	if (r < 0)
		goto out;
	/* The listing had them all: only a reader that answers differently
	 * the second time gets here. */
	for (i = 0; i < m->n_files; i++)
		if (!done[i]) {
			r = alerr_set(e, ALERR_REJECT, -ENOENT, "bundle.file_missing",
			              "%s is listed in MANIFEST but was not read from the volume",
			              m->files[i].path);
			goto out;
		}
	r = 0;
out:
	volume_walk_close(w);
	digest_free(d);
	free(done);
	free(buf);
	return r;
}

static int step_files(const char *image, const struct volume_limits *lim,
                      const struct manifest *m, const struct listing *l,
                      struct verify_result *res, struct alerr *e)
{
	size_t i;

	for (i = 0; i < m->n_files; i++)
		if (!lent_find(l, m->files[i].path))
			return alerr_set(e, ALERR_REJECT, -ENOENT, "bundle.file_missing",
			                 "%s is listed in MANIFEST but not on the volume",
			                 m->files[i].path);
	for (i = 0; i < l->n_files; i++)
		if (!manifest_find_file(m, l->files[i].path))
			return alerr_set(e, ALERR_REJECT, -EBADMSG, "bundle.file_extra",
			                 "%s is on the volume but not listed in MANIFEST",
			                 l->files[i].path);
	/* Every size before any byte is hashed. */
	for (i = 0; i < m->n_files; i++) {
		const struct lent *x = lent_find(l, m->files[i].path);

		if (x->size != m->files[i].size)
			return alerr_set(e, ALERR_REJECT, -EBADMSG, "checksum.size_mismatch",
			                 "%s: %" PRIu64 " bytes, the manifest says %" PRIu64,
			                 m->files[i].path, x->size, m->files[i].size);
	}
	return hash_files(image, lim, m, res, e);
}

static int step_channel(const struct manifest *m, const struct verify_policy *p,
                        struct alerr *e)
{
	size_t i;

	for (i = 0; i < p->n_channels; i++)
		if (p->channels[i] && strcmp(p->channels[i], m->channel) == 0)
			return 0;
	return alerr_set(e, ALERR_REJECT, -EPERM, "policy.channel",
	                 "channel %s is not accepted by this station", m->channel);
}

static int step_sequence(const struct manifest *m, const struct verify_state *st,
                         const struct verify_result *res, struct alerr *e)
{
	char hex[65];

	if (!st->has_last || m->sequence > st->last_sequence)
		return 0;
	if (m->sequence < st->last_sequence)
		return alerr_set(e, ALERR_REJECT, -EPERM, "policy.rollback",
		                 "sequence %" PRIu64 " of channel %s is older than the last "
		                 "imported, %" PRIu64, m->sequence, m->channel, st->last_sequence);
	digest_hex(hex, res->manifest_sha256);
	if (strcmp(hex, st->last_manifest_sha256) == 0)
		return alerr_set(e, ALERR_REJECT, -EALREADY, "policy.replay",
		                 "sequence %" PRIu64 " of channel %s was already imported "
		                 "(same MANIFEST %.16s)", m->sequence, m->channel, hex);
	return alerr_set(e, ALERR_REJECT, -EPERM, "policy.equivocation",
	                 "sequence %" PRIu64 " of channel %s was already imported with a "
	                 "different MANIFEST (%.16s, now %.16s): flagged for the auditor",
	                 m->sequence, m->channel, st->last_manifest_sha256, hex);
}

static void fmt_time(int64_t t, char buf[TIME_BUF])
{
	if (manifest_time_format(t, buf, TIME_BUF) < 0)
		snprintf(buf, TIME_BUF, "@%" PRId64, t);
}

static int step_time(const struct manifest *m, const struct verify_policy *p,
                     const struct verify_state *st, struct alerr *e)
{
	char a[TIME_BUF], b[TIME_BUF];

	fmt_time(p->now, a);
	if (p->now > m->valid_until) {
		fmt_time(m->valid_until, b);
		return alerr_set(e, ALERR_REJECT, -EPERM, "policy.expired",
		                 "the bundle was valid until %s, the station clock says %s", b, a);
	}
	if (m->created > p->now && m->created - p->now > p->clock_skew) {
		fmt_time(m->created, b);
		return alerr_set(e, ALERR_REJECT, -EPERM, "policy.future",
		                 "the bundle was created at %s, after the station clock (%s)", b, a);
	}
	if (st->newest_created > 0 && p->now < st->newest_created &&
	    st->newest_created - p->now > p->clock_skew) {
		fmt_time(st->newest_created, b);
		return alerr_set(e, ALERR_REJECT, -EPERM, "policy.clock",
		                 "the station clock (%s) is earlier than the newest bundle "
		                 "already accepted (created %s)", a, b);
	}
	return 0;
}

static int step_media(const struct manifest *m, const struct verify_policy *p,
                      struct alerr *e)
{
	char shown[MANIFEST_MAX_TEXT * 4];

	if (!p->require_media_serial)
		return 0;
	if (!m->media_serial)
		return alerr_set(e, ALERR_REJECT, -EPERM, "policy.media_serial",
		                 "the policy requires a media serial and MANIFEST signs none");
	if (!p->media_serial || !*p->media_serial)
		return alerr_set(e, ALERR_REJECT, -EPERM, "policy.media_serial",
		                 "the policy requires a media serial and the media has none "
		                 "(signed: %s)", m->media_serial);
	if (strcmp(p->media_serial, m->media_serial) != 0) {
		log_sanitize(shown, sizeof(shown), p->media_serial, strlen(p->media_serial));
		return alerr_set(e, ALERR_REJECT, -EPERM, "policy.media_serial",
		                 "media serial %s does not match the signed %s", shown,
		                 m->media_serial);
	}
	return 0;
}

int verify_bundle(const char *image_path, const struct verify_policy *p,
                  struct verify_result *res, struct alerr *e)
{
	struct listing l;
	struct verify_state st;
	struct volume_limits lim;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&l, 0, sizeof(l));
	res->step = "policy";
	r = policy_check(image_path, p, e);
	if (r < 0)
		return r;
	r = digest_library_init(e);
	if (r < 0)
		return r;
	/* Catalogue 17: a bad keyring stops everything before a byte is read. */
	r = sig_keyring_check(p->keyring_dir, e);
	if (r < 0)
		return r;
	lim.max_entries = p->max_entries;
	lim.max_total = p->max_total;
	lim.max_path = p->max_path;

	res->step = "list";
	r = step_list(image_path, &lim, &l, res, e);
	if (r < 0)
		goto out;
	res->step = "signatures";
	r = step_signatures(p, &l, res, e);
	if (r < 0)
		goto out;
	res->step = "manifest";
	r = manifest_parse(l.manifest, l.manifest_len, &res->manifest, e);
	if (r < 0)
		goto out;
	r = step_label(res->manifest, res, e);
	if (r < 0)
		goto out;
	res->step = "files";
	r = step_files(image_path, &lim, res->manifest, &l, res, e);
	if (r < 0)
		goto out;
	res->step = "channel";
	r = step_channel(res->manifest, p, e);
	if (r < 0)
		goto out;
	res->step = "sequence";
	memset(&st, 0, sizeof(st));
	if (p->state_cb) {
		r = p->state_cb(p->state_ctx, res->manifest->channel, &st, e);
		if (r < 0)
			goto out;
		st.last_manifest_sha256[sizeof(st.last_manifest_sha256) - 1] = '\0';
	} else {
		st.has_last = p->has_last;
		st.last_sequence = p->last_sequence;
		memcpy(st.last_manifest_sha256, p->last_manifest_sha256,
		       sizeof(st.last_manifest_sha256));
		st.last_manifest_sha256[sizeof(st.last_manifest_sha256) - 1] = '\0';
		st.newest_created = p->newest_created;
	}
	r = step_sequence(res->manifest, &st, res, e);
	if (r < 0)
		goto out;
	res->step = "time";
	r = step_time(res->manifest, p, &st, e);
	if (r < 0)
		goto out;
	res->step = "media";
	r = step_media(res->manifest, p, e);
	if (r < 0)
		goto out;
	res->step = "done";
out:
	listing_free(&l);
	return r;
}

void verify_result_clear(struct verify_result *res)
{
	if (!res)
		return;
	manifest_free(res->manifest);
	sig_report_clear(&res->sigs);
	memset(res, 0, sizeof(*res));
}
