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
};

struct listing {
	struct lent *files;            /* under AIRLOCK/, not MANIFEST or signatures */
	size_t n_files, cap_files;
	struct lent *sigs;             /* names under SIGNATURES/ */
	size_t n_sigs, cap_sigs;
	int have_manifest;
	uint64_t manifest_size;
};

static void listing_free(struct listing *l)
{
	size_t i;

	for (i = 0; i < l->n_files; i++)
		free(l->files[i].path);
	for (i = 0; i < l->n_sigs; i++)
		free(l->sigs[i].path);
	free(l->files);
	free(l->sigs);
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
	(*n)++;
	return 0;
}

static int list_cb(void *ctx, const char *path, int is_dir, uint64_t size, struct alerr *e)
{
	struct listing *l = ctx;

	if (is_dir)
		return 0;
	if (strcmp(path, TOP "MANIFEST") == 0) {
		l->have_manifest = 1;
		l->manifest_size = size;
		return 0;
	}
	if (strncmp(path, SIGDIR, sizeof(SIGDIR) - 1) == 0)
		return lent_add(&l->sigs, &l->n_sigs, &l->cap_sigs, path + sizeof(SIGDIR) - 1,
		                size, e);
	if (strncmp(path, TOP, sizeof(TOP) - 1) == 0)
		return lent_add(&l->files, &l->n_files, &l->cap_files, path + sizeof(TOP) - 1,
		                size, e);
	/* volume_list allows nothing outside AIRLOCK/: keep it that way. */
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

/* Read one whole file of at most max bytes from the image. */
static int read_whole(const char *image, const char *path, const struct volume_limits *lim,
                      size_t max, char **out, size_t *out_len, struct alerr *e)
{
	struct volume_file *f = NULL;
	uint64_t size = 0;
	size_t got = 0;
	char *buf = NULL;
	int r;

	*out = NULL;
	*out_len = 0;
	r = volume_file_open(&f, image, path, lim, &size, e);
	if (r < 0)
		return r;
	if (size > max) {
		r = alerr_set(e, ALERR_REJECT, -E2BIG,
		              strcmp(path, TOP "MANIFEST") == 0 ? "manifest.too_large" :
		              "volume.too_large", "%s: %" PRIu64 " bytes, at most %zu allowed",
		              path, size, max);
		goto out;
	}
	buf = malloc(size ? (size_t)size : 1u);
	if (!buf) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "verify.memory", "out of memory");
		goto out;
	}
	while (got < size) {
		ssize_t n = volume_file_read(f, buf + got, (size_t)size - got, e);

		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != size) {
		r = alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
		              "%s: %zu of %" PRIu64 " bytes readable", path, got, size);
		goto out;
	}
	*out = buf;
	*out_len = got;
	buf = NULL;
	r = 0;
out:
	free(buf);
	volume_file_close(f);
	return r;
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
	uint64_t bytes = 0;
	int fd, r;

	fd = open(image, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return alerr_set(e, ALERR_NOINPUT, -errno, "volume.not_iso", "%s: %s", image,
		                 strerror(errno));
	r = volume_probe(fd, &bytes, res->volume_id, e);
	close(fd);
	if (r < 0)
		return r;
	r = volume_list(image, lim, list_cb, l, e);
	if (r < 0)
		return r;
	if (l->n_files > 1)
		qsort(l->files, l->n_files, sizeof(*l->files), lent_cmp);
	if (l->n_sigs > 1)
		qsort(l->sigs, l->n_sigs, sizeof(*l->sigs), lent_cmp);
	return 0;
}

static int step_signatures(const char *image, const struct volume_limits *lim,
                           const struct verify_policy *p, const struct listing *l,
                           char **mbuf, size_t *mlen, struct verify_result *res,
                           struct alerr *e)
{
	struct sig_policy sp = {
		.keyring_dir = p->keyring_dir, .pinned = p->pinned,
		.n_pinned = p->n_pinned, .threshold = p->threshold,
	};
	struct sig_blob blobs[SIG_MAX_FILES];
	char *data[SIG_MAX_FILES];
	size_t i, n = 0;
	int r;

	if (!l->have_manifest)
		return alerr_set(e, ALERR_REJECT, -ENOENT, "bundle.file_missing",
		                 "AIRLOCK/MANIFEST is not on the volume");
	if (l->n_sigs > SIG_MAX_FILES)
		return alerr_set(e, ALERR_REJECT, -E2BIG, "signature.too_many",
		                 "%zu signature files, at most %u allowed", l->n_sigs,
		                 SIG_MAX_FILES);
	r = read_whole(image, TOP "MANIFEST", lim, MANIFEST_MAX_BYTES, mbuf, mlen, e);
	if (r < 0)
		return r;
	r = digest_buffer(*mbuf, *mlen, res->manifest_sha256);
	if (r < 0)
		return alerr_set(e, ALERR_SOFTWARE, r, "verify.digest", "SHA-256 unavailable");
	res->have_manifest_sha256 = 1;
	for (i = 0; i < l->n_sigs; i++) {
		char path[sizeof(SIGDIR) + VOLUME_PATH_MAX];
		size_t len = 0;

		snprintf(path, sizeof(path), "%s%s", SIGDIR, l->sigs[i].path);
		r = read_whole(image, path, lim, SIG_FILE_MAX_BYTES, &data[n], &len, e);
		if (r < 0)
			goto out;
		blobs[n].name = l->sigs[i].path;
		blobs[n].data = data[n];
		blobs[n].len = len;
		n++;
	}
	r = sig_verify(&sp, *mbuf, *mlen, blobs, n, &res->sigs, e);
out:
	for (i = 0; i < n; i++)
		free(data[i]);
	return r;
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

static int hash_file(const char *image, const struct volume_limits *lim,
                     const struct manifest_file *mf, unsigned char *buf, struct digest *d,
                     struct verify_result *res, struct alerr *e)
{
	char path[sizeof(TOP) + VOLUME_PATH_MAX], want[65], got_hex[65];
	struct volume_file *f = NULL;
	uint8_t sum[DIGEST_SHA256_LEN];
	uint64_t size = 0, got = 0;
	int r;

	snprintf(path, sizeof(path), "%s%s", TOP, mf->path);
	r = volume_file_open(&f, image, path, lim, &size, e);
	if (r < 0)
		return r;
	digest_reset(d);
	for (;;) {
		ssize_t n = volume_file_read(f, buf, IO_BUFFER_SIZE, e);

		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
		if (got > mf->size)
			break;
		digest_update(d, buf, (size_t)n);
	}
	if (got != mf->size || size != mf->size) {
		r = alerr_set(e, ALERR_REJECT, -EBADMSG, "checksum.size_mismatch",
		              "%s: %" PRIu64 " bytes, the manifest says %" PRIu64, mf->path,
		              got > size ? got : size, mf->size);
		goto out;
	}
	digest_final(d, sum);
	if (!digest_equal(sum, mf->sha256)) {
		digest_hex(want, mf->sha256);
		digest_hex(got_hex, sum);
		r = alerr_set(e, ALERR_REJECT, -EBADMSG, "checksum.mismatch",
		              "%s: SHA-256 %s, the manifest says %s", mf->path, got_hex, want);
		goto out;
	}
	res->bytes += got;
	res->n_files++;
	r = 0;
out:
	volume_file_close(f);
	return r;
}

static int step_files(const char *image, const struct volume_limits *lim,
                      const struct manifest *m, const struct listing *l,
                      struct verify_result *res, struct alerr *e)
{
	unsigned char *buf = NULL;
	struct digest *d = NULL;
	size_t i;
	int r = 0;

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
	buf = malloc(IO_BUFFER_SIZE);
	if (!buf) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "verify.memory", "out of memory");
		goto out;
	}
	r = digest_new(&d, e);
	for (i = 0; r == 0 && i < m->n_files; i++)
		r = hash_file(image, lim, &m->files[i], buf, d, res, e);
out:
	digest_free(d);
	free(buf);
	return r;
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
	char *mbuf = NULL;
	size_t mlen = 0;
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
	r = step_signatures(image_path, &lim, p, &l, &mbuf, &mlen, res, e);
	if (r < 0)
		goto out;
	res->step = "manifest";
	r = manifest_parse(mbuf, mlen, &res->manifest, e);
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
	free(mbuf);
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
