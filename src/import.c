/* The importer pipeline: identify -> quarantine -> verify -> restore,
 * with a custody entry at every stage. Each stage is its own module; this
 * file sequences them and decides what is kept. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "custody.h"
#include "digest.h"
#include "import.h"
#include "log.h"
#include "manifest.h"
#include "media.h"
#include "pack.h"
#include "pg.h"
#include "progress.h"
#include "quarantine.h"
#include "restore.h"
#include "text.h"
#include "verify.h"
#include "volume.h"

volatile sig_atomic_t import_interrupted;

/* Tolerated difference between the low side's clock and the station's. */
#define IMPORT_CLOCK_SKEW 300
/* At most this many refused copies are looked at per retention sweep. */
#define IMPORT_RETENTION_SCAN 4096
/* Imports left between their intent and their last entry that one start
 * reconciles; a station crashing more often than this between two starts
 * has other problems, and the rest are reconciled at the next start. */
#define IMPORT_RECONCILE_MAX 32

struct importer {
	const struct import_options *o;
	struct import_result *res;
	struct media_info media;
	int have_media;
	struct quarantine_result q;
	int have_copy;
	struct verify_result v;
	int verified;                    /* signatures checked out */
	struct restore_lock *lock;
	struct progress *bar;
};

const char *import_outcome_name(enum import_outcome o)
{
	switch (o) {
	case IMPORT_RESTORED: return "restored";
	case IMPORT_VERIFIED: return "verified";
	case IMPORT_IGNORED:  return "ignored";
	case IMPORT_REJECTED: return "rejected";
	case IMPORT_FAILED:   return "failed";
	}
	return "failed";
}

static int interrupted(struct alerr *e)
{
	if (!import_interrupted)
		return 0;
	return alerr_set(e, ALERR_TEMPFAIL, -EINTR, "interrupted",
	                 "interrupted by signal %d before the swap: nothing changed",
	                 (int)import_interrupted);
}

/* --- custody ---------------------------------------------------------- */

static void fill_bundle(const struct importer *im, struct custody_bundle *b)
{
	const struct manifest *m = im->v.manifest;

	memset(b, 0, sizeof(*b));
	if (m) {
		b->channel = m->channel;
		b->sequence = m->sequence;
		b->has_sequence = 1;
		b->bundle_id = m->bundle_id;
	}
	if (im->v.have_manifest_sha256)
		b->manifest_sha256 = im->v.manifest_sha256;
	if (im->have_copy)
		b->image_sha256 = im->q.sha256;
	b->verified = im->verified;
}

static void fill_device(const struct importer *im, struct custody_device *d)
{
	memset(d, 0, sizeof(*d));
	d->devnode = im->media.devnode;
	d->vendor = im->media.vendor;
	d->model = im->media.model;
	d->serial = im->media.serial;
	d->bus_path = im->media.bus_path;
	d->size = im->media.size_bytes;
	d->has_size = 1;
}

/* Append one entry. A failure to record is fatal for the import. */
static int record(struct importer *im, const char *event, enum custody_outcome outcome,
                  const char *reason, const char *message, struct alerr *e)
{
	struct custody_entry *en = NULL;
	struct custody_bundle b;
	struct custody_device d;
	int r;

	r = custody_entry_new(&en, CUSTODY_SIDE_HIGH, event, outcome, e);
	if (r < 0)
		return r;
	custody_entry_set_run(en, im->res->run_id);
	if (reason)
		custody_entry_set_reason(en, reason);
	fill_bundle(im, &b);
	custody_entry_set_bundle(en, &b);
	if (im->have_media) {
		fill_device(im, &d);
		custody_entry_set_device(en, &d);
	} else {
		custody_entry_add_detail_str(en, "image", im->o->image);
	}
	if (im->verified && im->v.manifest)
		custody_entry_set_signed(en, im->v.manifest);
	if (message)
		custody_entry_add_detail_str(en, "message", message);
	if (strcmp(event, CUSTODY_EV_MEDIA_QUARANTINED) == 0) {
		custody_entry_add_detail_int(en, "bytes", (int64_t)im->q.bytes);
		custody_entry_add_detail_str(en, "volume_id", im->q.volume_id);
		/* Refused before there was a copy to hash: what was read. */
		if (!im->have_copy && im->q.have_read) {
			char hex[DIGEST_SHA256_HEX_LEN + 1];

			digest_hex(hex, im->q.read_sha256);
			custody_entry_add_detail_int(en, "read_bytes", (int64_t)im->q.read_bytes);
			custody_entry_add_detail_str(en, "read_sha256", hex);
		}
	}
	if (strcmp(event, CUSTODY_EV_BUNDLE_VERIFIED) == 0 ||
	    strcmp(event, CUSTODY_EV_BUNDLE_REJECTED) == 0) {
		size_t i;

		for (i = 0; i < im->v.sigs.n && i < SIG_MAX_FILES; i++) {
			char key[32];

			snprintf(key, sizeof(key), "signature_%zu", i + 1);
			custody_entry_add_detail_str(en, key, im->v.sigs.outcomes[i].reason);
		}
		custody_entry_add_detail_int(en, "valid_signers", (int64_t)im->v.sigs.n_valid);
		if (im->v.step)
			custody_entry_add_detail_str(en, "step", im->v.step);
	}
	if (strcmp(event, CUSTODY_EV_RESTORE_DONE) == 0) {
		custody_entry_add_detail_int(en, "tables", (int64_t)im->res->tables);
		custody_entry_add_detail_int(en, "rows", (int64_t)im->res->rows);
		custody_entry_add_detail_int(en, "milliseconds",
		                             (int64_t)(im->res->restore_seconds * 1000.0));
	}
	r = custody_append(im->o->custody_log, en, &im->res->custody_seq,
	                   im->res->custody_hash, e);
	custody_entry_free(en);
	return r;
}

/* --- refused copies ------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void remove_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Refused copies older than the retention are removed, so the quarantine
 * cannot fill up with old evidence; the custody log keeps their hashes. */
static void prune_rejected(const char *rejected, uint64_t retention)
{
	char path[QUARANTINE_PATH_MAX];
	time_t now = time(NULL);
	struct dirent *de;
	unsigned int n = 0;
	struct stat st;
	DIR *d;

	d = opendir(rejected);
	if (!d)
		return;
	while ((de = readdir(d)) && n++ < IMPORT_RETENTION_SCAN) {
		if (strncmp(de->d_name, "import-", 7) != 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", rejected, de->d_name) >= (int)sizeof(path))
			continue;
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if ((uint64_t)(now - st.st_mtime) > retention) {
			log_info("removing refused copy %s (older than the retention)", path);
			remove_tree(path);
		}
	}
	closedir(d);
}

static void keep_rejected(struct importer *im)
{
	char rejected[QUARANTINE_PATH_MAX], dest[QUARANTINE_PATH_MAX];
	const char *base;

	if (!im->have_copy)
		return;
	if (snprintf(rejected, sizeof(rejected), "%s/rejected", im->o->quarantine) >=
	    (int)sizeof(rejected))
		return;
	if (mkdir(rejected, 0700) < 0 && errno != EEXIST) {
		log_warn("cannot create %s: %s; the refused copy stays in %s", rejected,
		         strerror(errno), im->q.dir);
		snprintf(im->res->kept, sizeof(im->res->kept), "%s", im->q.dir);
		return;
	}
	prune_rejected(rejected, im->o->retention);
	base = strrchr(im->q.dir, '/');
	base = base ? base + 1 : im->q.dir;
	if (snprintf(dest, sizeof(dest), "%s/%s", rejected, base) >= (int)sizeof(dest) ||
	    rename(im->q.dir, dest) < 0) {
		snprintf(im->res->kept, sizeof(im->res->kept), "%s", im->q.dir);
		return;
	}
	utimensat(AT_FDCWD, dest, NULL, 0);
	snprintf(im->res->kept, sizeof(im->res->kept), "%s", dest);
}

/* --- stages ----------------------------------------------------------- */

static int on_copy(void *ctx, uint64_t done, uint64_t total)
{
	struct importer *im = ctx;

	progress_set_total(im->bar, total);
	progress_update(im->bar, done);
	return import_interrupted ? -EINTR : 0;
}

static int on_restore(void *ctx, uint64_t bytes)
{
	struct importer *im = ctx;

	progress_update(im->bar, bytes);
	return import_interrupted ? -EINTR : 0;
}

/* verify asks for the channel's state once the signed MANIFEST named the
 * channel: take the channel's lock first, so that two imports of one
 * channel decide one after the other. */
static int on_state(void *ctx, const char *channel, struct verify_state *st, struct alerr *e)
{
	struct importer *im = ctx;
	struct restore_state rs;
	int r;

	if (!im->lock) {
		r = restore_lock_channel(im->o->target, channel,
		                         (unsigned int)(im->o->lock_timeout * 1000u),
		                         &im->lock, e);
		if (r < 0)
			return r;
	}
	r = restore_read_state(im->o->target, channel, &rs, e);
	if (r < 0)
		return r;
	st->has_last = rs.has_last;
	st->last_sequence = rs.last_sequence;
	memcpy(st->last_manifest_sha256, rs.last_manifest_sha256, sizeof(st->last_manifest_sha256));
	st->newest_created = rs.newest_created;
	return 0;
}

static int stage_identify(struct importer *im, struct alerr *e)
{
	const char *src = im->o->device ? im->o->device : im->o->image;
	struct media_probe probe;
	int r;

	snprintf(im->res->source, sizeof(im->res->source), "%s", src);
	if (im->o->device) {
		r = media_inspect(im->o->device, &im->media, e);
		if (r < 0)
			return r;
		im->have_media = 1;
		snprintf(im->res->device_serial, sizeof(im->res->device_serial), "%s",
		         im->media.serial);
	}
	r = record(im, CUSTODY_EV_MEDIA_INSERTED, CUSTODY_INFO, NULL, NULL, e);
	if (r < 0)
		return r;
	r = media_identify(src, &probe, e);
	if (r < 0 && e->cls == ALERR_NOINPUT && strcmp(e->reason, "media.not_airlock") == 0) {
		struct alerr e2;

		alerr_clear(&e2);
		im->res->outcome = IMPORT_IGNORED;
		log_notice("%s holds no airlock volume (%s%s%s): left alone, never mounted",
		           src, probe.type[0] ? probe.type : "no known signature",
		           probe.label[0] ? ", label " : "", probe.label);
		if (record(im, CUSTODY_EV_MEDIA_IGNORED, CUSTODY_INFO, e->reason, e->message, &e2) < 0) {
			*e = e2;
			return e2.errnum;
		}
	}
	return r;
}

static int stage_quarantine(struct importer *im, struct alerr *e)
{
	struct quarantine_policy qp;
	char hex[DIGEST_SHA256_HEX_LEN + 1];
	int r;

	qp.dir = im->o->quarantine;
	qp.max_bytes = im->o->max_bytes;
	qp.run = im->res->run_id;
	im->bar = progress_new("quarantine", 0, im->o->progress);
	r = quarantine_copy(im->res->source, &qp, on_copy, im, &im->q, e);
	progress_done(im->bar);
	im->bar = NULL;
	if (r < 0) {
		struct alerr e2;

		alerr_clear(&e2);
		if (import_interrupted) {
			alerr_clear(e);
			r = interrupted(e);
		}
		if (record(im, CUSTODY_EV_MEDIA_QUARANTINED,
		           e->cls == ALERR_REJECT ? CUSTODY_REFUSED : CUSTODY_ERROR,
		           e->reason, e->message, &e2) < 0)
			log_warn("custody: %s", e2.message);
		if (e->cls == ALERR_REJECT)
			im->res->outcome = IMPORT_REJECTED;
		return r;
	}
	im->have_copy = 1;
	digest_hex(hex, im->q.sha256);
	memcpy(im->res->image_sha256, hex, sizeof(im->res->image_sha256));
	im->res->image_bytes = im->q.bytes;
	r = record(im, CUSTODY_EV_MEDIA_QUARANTINED, CUSTODY_OK, NULL, NULL, e);
	if (r < 0)
		return r;
	if (im->have_media)
		log_notice("%s copied into quarantine (%llu bytes, SHA-256 %.16s...): "
		           "the media is safe to remove", im->media.devnode,
		           (unsigned long long)im->q.bytes, hex);
	return 0;
}

static int stage_verify(struct importer *im, struct alerr *e)
{
	const struct import_options *o = im->o;
	struct verify_policy vp;
	struct alerr e2;
	int r;

	memset(&vp, 0, sizeof(vp));
	vp.keyring_dir = o->keyring;
	vp.pinned = o->trust;
	vp.n_pinned = o->n_trust;
	vp.threshold = o->threshold;
	vp.channels = o->channels;
	vp.n_channels = o->n_channels;
	vp.require_media_serial = o->require_media_serial;
	vp.media_serial = im->have_media && im->media.serial[0] ? im->media.serial : NULL;
	vp.max_entries = o->max_files;
	vp.max_total = o->max_bytes;
	vp.max_path = o->max_path;
	vp.now = (int64_t)time(NULL);
	vp.clock_skew = IMPORT_CLOCK_SKEW;
	vp.state_cb = on_state;
	vp.state_ctx = im;
	r = verify_bundle(im->q.image, &vp, &im->v, e);
	/* The signatures are the first check: a manifest parsed after them
	 * is signed, whatever failed later. */
	im->verified = im->v.manifest != NULL && im->v.sigs.n_valid >= o->threshold;
	if (im->v.have_manifest_sha256) {
		char hex[DIGEST_SHA256_HEX_LEN + 1];

		digest_hex(hex, im->v.manifest_sha256);
		memcpy(im->res->manifest_sha256, hex, sizeof(im->res->manifest_sha256));
	}
	if (im->v.manifest) {
		snprintf(im->res->channel, sizeof(im->res->channel), "%s", im->v.manifest->channel);
		im->res->sequence = im->v.manifest->sequence;
		snprintf(im->res->bundle_id, sizeof(im->res->bundle_id), "%s",
		         im->v.manifest->bundle_id);
	}
	for (im->res->n_signers = 0; im->res->n_signers < im->v.sigs.n_valid &&
	     im->res->n_signers < SIG_MAX_FILES; im->res->n_signers++)
		snprintf(im->res->signers[im->res->n_signers], SIG_FPR_SIZE, "%s",
		         im->v.sigs.valid_signers[im->res->n_signers]);
	if (r < 0) {
		alerr_clear(&e2);
		if (e->cls == ALERR_REJECT) {
			im->res->outcome = IMPORT_REJECTED;
			if (record(im, CUSTODY_EV_BUNDLE_REJECTED, CUSTODY_REFUSED, e->reason,
			           e->message, &e2) < 0) {
				*e = e2;
				return e2.errnum;
			}
		} else if (record(im, CUSTODY_EV_BUNDLE_REJECTED, CUSTODY_ERROR, e->reason,
		                  e->message, &e2) < 0) {
			log_warn("custody: %s", e2.message);
		}
		return r;
	}
	return record(im, CUSTODY_EV_BUNDLE_VERIFIED, CUSTODY_OK, NULL, NULL, e);
}

/* Inside the swap transaction, with the locks held: the intent entry is
 * written (and synced) before the commit, and its hash is stored with the
 * import in the database (the anchor of the custody log). */
static int before_swap(void *ctx, struct restore_record *rec, struct alerr *e)
{
	struct importer *im = ctx;
	int r;

	r = record(im, CUSTODY_EV_RESTORE_INTENT, CUSTODY_INFO, NULL, NULL, e);
	if (r < 0)
		return r;
	rec->custody_seq = im->res->custody_seq;
	rec->custody_hash = im->res->custody_hash;
	return 0;
}

/* A load worker's own reader of the payload (restore with --jobs > 1):
 * the same verified chunks of the quarantine copy, from the start. */
struct payload_src {
	const char *image;
	uint64_t n_chunks;
	struct volume_limits lim;
	struct unpack_limits ul;
};

static int open_payload(void *ctx, struct unpack **out, void **handle, struct alerr *e)
{
	const struct payload_src *ps = ctx;
	struct volume_chunks *chunks = NULL;
	int r;

	*out = NULL;
	*handle = NULL;
	r = volume_chunks_open(&chunks, ps->image, ps->n_chunks, &ps->lim, e);
	if (r == 0)
		r = unpack_new(out, volume_chunks_read, chunks, &ps->ul, e);
	if (r < 0) {
		volume_chunks_close(chunks);
		return r;
	}
	*handle = chunks;
	return 0;
}

static void close_payload(void *ctx, struct unpack *u, void *handle)
{
	(void)ctx;
	unpack_free(u);
	volume_chunks_close(handle);
}

static int stage_restore(struct importer *im, struct alerr *e)
{
	const struct import_options *o = im->o;
	const struct manifest *m = im->v.manifest;
	struct volume_chunks *chunks = NULL;
	struct unpack *u = NULL;
	struct restore_options ro;
	struct restore_record rec;
	struct restore_result rr;
	struct volume_limits lim;
	struct unpack_limits ul;
	struct payload_src ps;
	const char *signers[SIG_MAX_FILES];
	size_t i;
	int r;

	memset(&lim, 0, sizeof(lim));
	lim.max_entries = o->max_files;
	lim.max_total = o->max_bytes;
	lim.max_path = o->max_path;
	/* The payload was hashed whole; its decompressed size is still
	 * bounded: COPY text compresses well, but not beyond this. */
	ul.max_total = o->max_bytes > UINT64_MAX / 64 ? UINT64_MAX : o->max_bytes * 64;
	ul.max_members = UINT64_C(1) << 24;
	r = volume_chunks_open(&chunks, im->q.image, m->n_files, &lim, e);
	if (r == 0)
		r = unpack_new(&u, volume_chunks_read, chunks, &ul, e);
	if (r < 0)
		goto out;

	for (i = 0; i < im->res->n_signers; i++)
		signers[i] = im->res->signers[i];
	memset(&rec, 0, sizeof(rec));
	rec.channel = m->channel;
	rec.sequence = m->sequence;
	rec.bundle_id = m->bundle_id;
	rec.manifest_sha256 = im->res->manifest_sha256;
	rec.image_sha256 = im->res->image_sha256;
	rec.signers = signers;
	rec.n_signers = im->res->n_signers;
	rec.created = m->created;
	rec.valid_until = m->valid_until;

	memset(&ro, 0, sizeof(ro));
	ro.conninfo = o->target;
	ro.jobs = o->jobs;
	ro.lock_timeout_ms = o->lock_timeout * 1000u;
	ro.progress = on_restore;
	ro.progress_ctx = im;
	ps.image = im->q.image;
	ps.n_chunks = m->n_files;
	ps.lim = lim;
	ps.ul = ul;
	ro.open_payload = open_payload;
	ro.close_payload = close_payload;
	ro.payload_ctx = &ps;
	memset(&rr, 0, sizeof(rr));
	im->bar = progress_new("restore", 0, o->progress);
	r = restore_run(&ro, u, m, &rec, before_swap, im, &rr, e);
	progress_done(im->bar);
	im->bar = NULL;
	if (r < 0 && import_interrupted && e->cls != ALERR_UNAVAILABLE) {
		alerr_clear(e);
		r = interrupted(e);
	}
	if (r < 0)
		goto out;
	im->res->tables = rr.tables;
	im->res->rows = rr.rows;
	im->res->restore_seconds = rr.seconds;
	im->res->major_differs = rr.major_differs;
	im->res->source_version = rr.source_version;
	im->res->target_version = rr.target_version;
	if (rr.major_differs)
		log_notice("the bundle was exported from PostgreSQL %u, this server is %u: "
		           "COPY text is portable, restored all the same",
		           rr.source_version / 10000, rr.target_version / 10000);
out:
	unpack_free(u);
	volume_chunks_close(chunks);
	return r;
}

/* --- reconciliation (catalogue 44) -------------------------------------
 * A run an earlier import could not end is closed at the next start with
 * a custody.reconciled entry naming it (details.reconciles_run), from one
 * scan of the log:
 * - a restore.intent without restore.done (killed between the commit of
 *   its swap and its last entry): the database says whether that swap
 *   committed;
 * - a run killed outright before its swap (SIGKILL after the unit's stop
 *   timeout, a power cut), found through its quarantine copy, which the
 *   sweep just removed (the directory is named after the run): nothing was
 *   committed (import.interrupted, with the last stage it recorded).
 * A run still alive (another device's import: its copy's directory is
 * locked) is left alone: it writes its own ending. */

struct open_run {
	char run[CUSTODY_RUN_ID_LEN + 1];
	char last[40];                  /* its last event */
	char channel[64];
	uint64_t sequence;
	int has_sequence;
	char bundle_id[37];
	char manifest[DIGEST_SHA256_HEX_LEN + 1];
	int intent;                     /* it wrote restore.intent */
	int swept;                      /* its quarantine copy was swept */
};

struct open_runs {
	struct open_run r[IMPORT_RECONCILE_MAX];
	size_t n;
};

static struct open_run *run_find(struct open_runs *o, const char *run)
{
	size_t i;

	for (i = 0; run && i < o->n; i++)
		if (strcmp(o->r[i].run, run) == 0)
			return &o->r[i];
	return NULL;
}

static void run_drop(struct open_runs *o, struct open_run *x)
{
	size_t i = (size_t)(x - o->r);

	memmove(&o->r[i], &o->r[i + 1], (o->n - i - 1) * sizeof(o->r[0]));
	o->n--;
}

/* A new entry for run: the oldest that was not swept makes room when the
 * table is full (the rest are reconciled at the next start). */
static struct open_run *run_add(struct open_runs *o, const char *run)
{
	struct open_run *x;
	size_t i;

	if (o->n == IMPORT_RECONCILE_MAX) {
		for (i = 0; i < o->n && o->r[i].swept; i++)
			;
		if (i == o->n)
			return NULL;
		run_drop(o, &o->r[i]);
	}
	x = &o->r[o->n++];
	memset(x, 0, sizeof(*x));
	snprintf(x->run, sizeof(x->run), "%s", run);
	return x;
}

static void on_swept(void *ctx, const char *run)
{
	struct open_run *x = run_add(ctx, run);

	if (x)
		x->swept = 1;
}

static int reconcile_scan(const struct custody_record *r, void *arg)
{
	struct open_runs *o = arg;
	const char *side = custody_record_text(r, "side", NULL);
	const char *event = custody_record_text(r, "event", NULL);
	const char *run = custody_record_text(r, "run", NULL);
	const char *outcome = custody_record_text(r, "outcome", NULL);
	struct open_run *x;
	const char *v;

	if (!side || strcmp(side, "high") != 0 || !event)
		return 0;
	if (strcmp(event, CUSTODY_EV_RECONCILED) == 0) {
		if ((x = run_find(o, custody_record_text(r, "details", "reconciles_run"))))
			run_drop(o, x);
		return 0;
	}
	x = run_find(o, run);
	if (!x && run && strcmp(event, CUSTODY_EV_RESTORE_INTENT) == 0)
		x = run_add(o, run);
	if (!x)
		return 0;
	if (strcmp(event, CUSTODY_EV_RESTORE_DONE) == 0 ||
	    strcmp(event, CUSTODY_EV_RESTORE_FAILED) == 0 ||
	    strcmp(event, CUSTODY_EV_BUNDLE_REJECTED) == 0 ||
	    strcmp(event, CUSTODY_EV_MEDIA_IGNORED) == 0 ||
	    (outcome && (strcmp(outcome, "error") == 0 || strcmp(outcome, "refused") == 0))) {
		run_drop(o, x);         /* it ended */
		return 0;
	}
	snprintf(x->last, sizeof(x->last), "%s", event);
	if (strcmp(event, CUSTODY_EV_RESTORE_INTENT) == 0)
		x->intent = 1;
	if ((v = custody_record_text(r, "bundle", "channel")) != NULL)
		snprintf(x->channel, sizeof(x->channel), "%s", v);
	v = custody_record_text(r, "bundle", "sequence");
	if (v && text_parse_u64(v, strlen(v), (uint64_t)INT64_MAX, &x->sequence) == 0)
		x->has_sequence = 1;
	if ((v = custody_record_text(r, "bundle", "bundle_id")) != NULL)
		snprintf(x->bundle_id, sizeof(x->bundle_id), "%s", v);
	if ((v = custody_record_text(r, "bundle", "manifest_sha256")) != NULL)
		snprintf(x->manifest, sizeof(x->manifest), "%s", v);
	return 0;
}

/* 1 when airlock.imports holds the import, 0 when not, < 0 on error. */
static int import_committed(struct pg_conn *c, const struct open_run *p, struct alerr *e)
{
	struct pg_result *res = NULL;
	const char *params[3];
	char seq[24];
	int r;

	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)p->sequence);
	params[0] = p->channel;
	params[1] = seq;
	params[2] = p->bundle_id;
	r = pg_query(c, "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
	                "ON n.oid = c.relnamespace WHERE n.nspname = 'airlock' AND c.relname = 'imports'",
	             0, NULL, 1, &res, e);
	if (r < 0)
		return r;
	if (pg_result_ntuples(res) == 0) {
		pg_result_free(res);
		return 0;
	}
	pg_result_free(res);
	r = pg_query(c, "SELECT 1 FROM airlock.imports WHERE channel = $1 AND sequence = $2::bigint "
	                "AND bundle_id::text = $3", 3, params, 1, &res, e);
	if (r < 0)
		return r;
	r = pg_result_ntuples(res) > 0;
	pg_result_free(res);
	return r;
}

/* The custody.reconciled entry closing run x. committed < 0: it never
 * reached its swap (import.interrupted). */
static int close_run(struct importer *im, const struct open_run *x, int committed,
                     struct alerr *e)
{
	struct custody_entry *en = NULL;
	struct custody_bundle b;
	uint8_t sha[DIGEST_SHA256_LEN];
	int r;

	r = custody_entry_new(&en, CUSTODY_SIDE_HIGH, CUSTODY_EV_RECONCILED,
	                      committed > 0 ? CUSTODY_OK : CUSTODY_ERROR, e);
	if (r < 0)
		return r;
	custody_entry_set_run(en, im->res->run_id);
	if (x->channel[0] || x->has_sequence || x->bundle_id[0]) {
		memset(&b, 0, sizeof(b));
		b.channel = x->channel[0] ? x->channel : NULL;
		b.sequence = x->sequence;
		b.has_sequence = x->has_sequence;
		b.bundle_id = x->bundle_id[0] ? x->bundle_id : NULL;
		if (digest_from_hex(sha, x->manifest, strlen(x->manifest)) == 0)
			b.manifest_sha256 = sha;
		custody_entry_set_bundle(en, &b);
	}
	custody_entry_add_detail_str(en, "reconciles_run", x->run);
	custody_entry_add_detail_bool(en, "committed", committed > 0);
	if (committed < 0) {
		custody_entry_add_detail_str(en, "last_event", x->last);
		custody_entry_set_reason(en, "import.interrupted");
	} else if (!committed) {
		custody_entry_set_reason(en, "restore.interrupted");
	}
	r = custody_append(im->o->custody_log, en, NULL, NULL, e);
	custody_entry_free(en);
	if (r < 0)
		return r;
	if (committed < 0)
		log_notice("reconciled import %s: it was killed after %s; nothing was "
		           "committed", x->run, x->last);
	else
		log_notice("reconciled import %s (%s/%llu): the swap %s", x->run, x->channel,
		           (unsigned long long)x->sequence,
		           committed ? "had committed; its last custody entry was missing"
		                     : "never committed; the feed was not changed");
	return 0;
}

/* o holds the runs whose copies the sweep removed; with_db: settle the
 * intents against the database (not with --verify-only). */
static int reconcile(struct importer *im, struct open_runs *o, int with_db,
                     struct alerr *e)
{
	struct custody_summary sum;
	struct pg_conn *c = NULL;
	struct alerr e2;
	size_t i;
	int r;

	alerr_clear(&e2);
	r = custody_verify(im->o->custody_log, NULL, 0, reconcile_scan, o, &sum, &e2);
	if (r < 0 && e2.cls == ALERR_NOINPUT && strcmp(e2.reason, "custody.missing") == 0)
		return 0;
	if (r < 0 && e2.cls == ALERR_REJECT)
		log_warn("the custody log does not verify (%s): run airlock-audit verify", e2.message);
	else if (r < 0)
		return alerr_set(e, e2.cls, e2.errnum, e2.reason, "%s", e2.message);
	for (i = 0, r = 0; i < o->n && r == 0; i++) {
		const struct open_run *x = &o->r[i];
		int committed = -1;

		if (!x->last[0])
			continue;       /* a swept copy the log says nothing of */
		if (x->intent) {
			/* alive: between its intent and its commit, not ours */
			if (!with_db || quarantine_run_alive(im->o->quarantine, x->run))
				continue;
			if (!c && (r = pg_connect(im->o->target, &c, e)) < 0)
				break;
			if ((committed = import_committed(c, x, e)) < 0) {
				r = committed;
				break;
			}
		}
		r = close_run(im, x, committed, e);
	}
	pg_close(c);
	return r;
}

int import_run(const struct import_options *o, struct import_result *res, struct alerr *e)
{
	struct importer im;
	struct open_runs open;
	struct alerr e2;
	size_t dropped = 0;
	int r;

	memset(&im, 0, sizeof(im));
	memset(&open, 0, sizeof(open));
	memset(res, 0, sizeof(*res));
	im.o = o;
	im.res = res;
	res->outcome = IMPORT_FAILED;
	custody_run_id(res->run_id);
	if (!!o->device == !!o->image || !o->target || !o->quarantine || !o->custody_log ||
	    !o->keyring)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "internal", "import_run: incomplete options");
	r = digest_library_init(e);
	if (r < 0)
		return r;

	r = stage_identify(&im, e);
	if (r < 0)
		goto out;
	/* The database first: with it down nothing is staged (exit 69), and
	 * staging schemas a killed run left behind are removed. */
	if (!o->verify_only) {
		r = restore_cleanup_stale(o->target, &dropped, e);
		if (r < 0) {
			alerr_clear(&e2);
			if (record(&im, CUSTODY_EV_RESTORE_FAILED, CUSTODY_ERROR, e->reason,
			           e->message, &e2) < 0)
				log_warn("custody: %s", e2.message);
			goto out;
		}
		if (dropped)
			log_notice("removed %zu staging schema(s) left by an interrupted import",
			           dropped);
	}
	/* partial copies of imports killed before they could clean up; then
	 * the runs earlier imports could not end are closed in the log */
	if ((r = quarantine_sweep(o->quarantine, &dropped, on_swept, &open, e)) < 0)
		goto out;
	if (dropped)
		log_notice("removed %zu partial quarantine copies left by interrupted "
		           "imports", dropped);
	if ((r = reconcile(&im, &open, !o->verify_only, e)) < 0)
		goto out;
	if ((r = interrupted(e)) < 0 ||
	    (r = stage_quarantine(&im, e)) < 0 ||
	    (r = interrupted(e)) < 0 ||
	    (r = stage_verify(&im, e)) < 0)
		goto out;
	if (o->verify_only) {
		res->outcome = IMPORT_VERIFIED;
		goto out;
	}
	if ((r = interrupted(e)) < 0)
		goto out;
	r = stage_restore(&im, e);
	if (r < 0) {
		alerr_clear(&e2);
		if (record(&im, CUSTODY_EV_RESTORE_FAILED,
		           e->cls == ALERR_REJECT ? CUSTODY_REFUSED : CUSTODY_ERROR,
		           e->reason, e->message, &e2) < 0)
			log_warn("custody: %s", e2.message);
		if (e->cls == ALERR_REJECT)
			res->outcome = IMPORT_REJECTED;
		goto out;
	}
	res->outcome = IMPORT_RESTORED;
	r = record(&im, CUSTODY_EV_RESTORE_DONE, CUSTODY_OK, NULL, NULL, e);
	if (r < 0)
		log_err("the import is committed but its final custody entry failed: "
		        "the next start reconciles it from airlock.imports");
out:
	progress_done(im.bar);
	restore_lock_free(im.lock);
	if (im.have_copy) {
		/* A configuration error is the station's, not the bundle's:
		 * the copy is kept for review like a refused one. */
		if (res->outcome == IMPORT_REJECTED || (r < 0 && e->cls == ALERR_CONFIG))
			keep_rejected(&im);
		else
			remove_tree(im.q.dir);
		quarantine_release(&im.q);
	}
	verify_result_clear(&im.v);
	return r;
}
