/* The writer pipeline: snapshot -> export -> pack -> seal -> place ->
 * record. Each stage is its own module; this file only sequences them,
 * owns the private work directory, and keeps the low-side sequence state. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "custody.h"
#include "digest.h"
#include "export.h"
#include "log.h"
#include "manifest.h"
#include "media.h"
#include "pack.h"
#include "progress.h"
#include "sig.h"
#include "text.h"
#include "volume.h"
#include "write.h"

volatile sig_atomic_t write_interrupted;

#define WRITE_PATH_MAX 4096

struct writer {
	const struct write_options *o;
	struct write_result *res;
	char work[WRITE_PATH_MAX];         /* private work dir; "" when none */
	char top[WRITE_PATH_MAX];          /* work/AIRLOCK */
	char partial[WRITE_PATH_MAX];      /* image being written; "" when none */
	struct media_info media;
	int have_media;
	int state_fd;                      /* locked sequence state, or -1 */
	uint64_t last_sequence;
	struct manifest *m;
	struct pack *pack;
	struct progress *bar;
	char signers[SIG_MAX_FILES][SIG_FPR_SIZE];
	size_t n_signers;
	uint8_t manifest_sha[DIGEST_SHA256_LEN];
	int have_manifest_sha;
	char run_id[CUSTODY_RUN_ID_LEN + 1];
};

static int interrupted(struct alerr *e)
{
	if (!write_interrupted)
		return 0;
	return alerr_set(e, ALERR_TEMPFAIL, -EINTR, "interrupted",
	                 "interrupted by signal %d: nothing written, temporary files removed",
	                 (int)write_interrupted);
}

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
		return alerr_set(e, ALERR_USAGE, -ENAMETOOLONG, "usage", "path too long: %.80s...", buf);
	return 0;
}

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

static int write_file(const char *path, const void *data, size_t len, struct alerr *e)
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
			int r = n < 0 ? -errno : -ENOSPC;

			close(fd);
			return alerr_set(e, ALERR_IOERR, r, "io.write", "%s: %s", path, strerror(-r));
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "io.write", "%s: %s", path, strerror(errno));
	return 0;
}

static int make_dir(const char *path, struct alerr *e)
{
	if (mkdir(path, 0700) < 0)
		return alerr_set(e, ALERR_CANTCREAT, -errno, "io.create", "%s: %s", path, strerror(errno));
	return 0;
}

/* --- low-side sequence state: <state_dir>/sequence/<channel> --------- */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[WRITE_PATH_MAX];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

static int state_open(struct writer *w, struct alerr *e)
{
	char dir[WRITE_PATH_MAX], path[WRITE_PATH_MAX], buf[32];
	ssize_t n;
	int r;

	if ((r = join(dir, sizeof(dir), e, "%s/sequence", w->o->state_dir)) < 0 ||
	    (r = join(path, sizeof(path), e, "%s/%s", dir, w->o->channel)) < 0)
		return r;
	r = mkdir_p(dir, 0750);
	if (r < 0)
		return alerr_set(e, ALERR_CANTCREAT, r, "state.create",
		                 "state directory %s: %s", dir, strerror(-r));
	w->state_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (w->state_fd < 0)
		return alerr_set(e, ALERR_CANTCREAT, -errno, "state.create", "%s: %s",
		                 path, strerror(errno));
	/* One writer per channel at a time: two sticks must never carry the
	 * same sequence. */
	if (flock(w->state_fd, LOCK_EX | LOCK_NB) < 0)
		return alerr_set(e, ALERR_TEMPFAIL, -errno, "state.locked",
		                 "another airlock-write holds channel %s (%s)", w->o->channel, path);
	n = pread(w->state_fd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "state.read", "%s: %s", path, strerror(errno));
	buf[n] = '\0';
	w->last_sequence = 0;
	if (n > 0) {
		size_t len = strcspn(buf, "\n");

		if (text_parse_u64(buf, len, (uint64_t)INT64_MAX, &w->last_sequence) < 0)
			return alerr_set(e, ALERR_CONFIG, -EINVAL, "state.corrupt",
			                 "%s: not a sequence number; fix or remove it", path);
	}
	return 0;
}

static int state_save(struct writer *w, uint64_t sequence, struct alerr *e)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)sequence);

	if (sequence <= w->last_sequence)
		return 0;
	if (ftruncate(w->state_fd, 0) < 0 || pwrite(w->state_fd, buf, (size_t)n, 0) != n ||
	    fdatasync(w->state_fd) < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "state.write",
		                 "saving the last sequence of channel %s: %s",
		                 w->o->channel, strerror(errno));
	return 0;
}

/* --- stages ----------------------------------------------------------- */

static int on_export_progress(void *ctx, uint64_t bytes, uint64_t rows)
{
	struct writer *w = ctx;

	(void)rows;
	progress_update(w->bar, bytes);
	return write_interrupted ? -EINTR : 0;
}

static int on_volume_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct writer *w = ctx;

	progress_set_total(w->bar, total);
	progress_update(w->bar, done);
	return write_interrupted ? -EINTR : 0;
}

static int emit_member(void *ctx, const char *name, const void *data, size_t len,
                       struct alerr *e)
{
	struct writer *w = ctx;
	int r = interrupted(e);

	if (r < 0)
		return r;
	return pack_add_member(w->pack, name, data, len, e);
}

static int stage_target(struct writer *w, struct alerr *e)
{
	const struct write_options *o = w->o;
	struct write_target_facts t;
	struct stat st;
	int r;

	if (o->image) {
		char copy[WRITE_PATH_MAX];

		if (lstat(o->image, &st) == 0)
			return alerr_set(e, ALERR_CANTCREAT, -EEXIST, "target.exists",
			                 "%s already exists: airlock-write never overwrites an image",
			                 o->image);
		if ((r = join(copy, sizeof(copy), e, "%s", o->image)) < 0)
			return r;
		if (stat(dirname(copy), &st) < 0 || !S_ISDIR(st.st_mode))
			return alerr_set(e, ALERR_NOINPUT, -ENOENT, "target.missing",
			                 "%s: its directory does not exist", o->image);
		snprintf(w->res->target, sizeof(w->res->target), "%s", o->image);
		return 0;
	}
	r = media_inspect(o->device, &w->media, e);
	if (r < 0)
		return r;
	w->have_media = 1;
	r = media_check_target(&w->media, o->force_device, 0, e);
	if (r < 0)
		return r;
	snprintf(w->res->target, sizeof(w->res->target), "%s", w->media.devnode);
	snprintf(w->res->media_vendor, sizeof(w->res->media_vendor), "%s", w->media.vendor);
	snprintf(w->res->media_model, sizeof(w->res->media_model), "%s", w->media.model);
	snprintf(w->res->media_serial, sizeof(w->res->media_serial), "%s", w->media.serial);
	if (!o->confirm)
		return 0;
	t.devnode = w->media.devnode;
	t.vendor = w->media.vendor;
	t.model = w->media.model;
	t.serial = w->media.serial;
	t.size_bytes = w->media.size_bytes;
	return o->confirm(o->confirm_ctx, &t, e);
}

static int stage_manifest(struct writer *w, struct alerr *e)
{
	const struct write_options *o = w->o;
	struct manifest *m;
	char host[256];
	int64_t now = (int64_t)time(NULL);
	uint64_t seq;
	size_t i, j;
	int r;

	/* Signers are listed in MANIFEST by primary key: resolve them
	 * before anything long runs, so a wrong fingerprint fails at once. */
	for (i = 0; i < o->n_signers; i++) {
		char fpr[SIG_FPR_SIZE];

		r = sig_signer_resolve(o->gnupghome, o->signers[i], fpr, e);
		if (r < 0)
			return r;
		for (j = 0; j < w->n_signers; j++)
			if (strcmp(w->signers[j], fpr) == 0)
				break;
		if (j < w->n_signers)
			return alerr_set(e, ALERR_USAGE, -EINVAL, "usage",
			                 "--signer %s names key %s a second time", o->signers[i], fpr);
		if (w->n_signers == SIG_MAX_FILES)
			return alerr_set(e, ALERR_USAGE, -E2BIG, "usage", "too many signers");
		memcpy(w->signers[w->n_signers++], fpr, SIG_FPR_SIZE);
	}

	seq = o->sequence ? o->sequence : w->last_sequence + 1;
	if (o->sequence && o->sequence <= w->last_sequence)
		log_warn("--sequence %llu is not above %llu, the last written for channel %s: "
		         "the station will refuse it as a rollback or replay",
		         (unsigned long long)o->sequence, (unsigned long long)w->last_sequence,
		         o->channel);
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';

	m = manifest_new();
	if (!m)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "no_memory", "out of memory");
	w->m = m;
	if ((r = manifest_set_text(m, MANIFEST_F_CHANNEL, o->channel, e)) < 0 ||
	    (r = manifest_set_sequence(m, seq, e)) < 0 ||
	    (r = manifest_generate_bundle_id(m, e)) < 0 ||
	    (r = manifest_set_created(m, now, e)) < 0 ||
	    (r = manifest_set_valid_until(m, now + (int64_t)o->valid_for, e)) < 0 ||
	    (r = manifest_set_chunk_size(m, o->chunk_size, e)) < 0 ||
	    (r = manifest_set_text(m, MANIFEST_F_WRITER_HOST, host, e)) < 0)
		return r;
	if (o->courier && (r = manifest_set_text(m, MANIFEST_F_COURIER, o->courier, e)) < 0)
		return r;
	if (w->have_media) {
		if ((w->media.vendor[0] &&
		     (r = manifest_set_text(m, MANIFEST_F_MEDIA_VENDOR, w->media.vendor, e)) < 0) ||
		    (w->media.model[0] &&
		     (r = manifest_set_text(m, MANIFEST_F_MEDIA_MODEL, w->media.model, e)) < 0) ||
		    (w->media.serial[0] &&
		     (r = manifest_set_text(m, MANIFEST_F_MEDIA_SERIAL, w->media.serial, e)) < 0))
			return r;
	}
	for (i = 0; i < w->n_signers; i++)
		if ((r = manifest_add_signer(m, w->signers[i], e)) < 0)
			return r;
	return 0;
}

static int stage_export_pack(struct writer *w, struct alerr *e)
{
	const struct write_options *o = w->o;
	struct export_options xo;
	struct export_result xr;
	char payload[WRITE_PATH_MAX];
	int r;

	if ((r = join(payload, sizeof(payload), e, "%s/payload", w->top)) < 0)
		return r;
	/* Single-threaded zstd: its worker threads each take tens of MiB,
	 * and memory must stay flat and small whatever the feed's size. */
	r = pack_new(&w->pack, payload, o->chunk_size, PACK_ZSTD_LEVEL_DEFAULT, 0, e);
	if (r < 0)
		return r;
	pack_set_mtime(w->pack, w->m->created);

	memset(&xo, 0, sizeof(xo));
	memset(&xr, 0, sizeof(xr));
	xo.conninfo = o->source;
	xo.schemas = o->schemas;
	xo.n_schemas = o->n_schemas;
	xo.jobs = o->jobs;
	xo.workdir = w->work;
	xo.progress = on_export_progress;
	xo.progress_ctx = w;
	w->bar = progress_new("export", 0, o->progress);
	log_info("exporting schema%s of %s", o->n_schemas > 1 ? "s" : "", o->source);
	r = export_run(&xo, w->m, emit_member, w, &xr, e);
	progress_done(w->bar);
	w->bar = NULL;
	if (r < 0) {
		size_t i;

		for (i = 0; i < xr.n_unsupported; i++)
			log_err("cannot carry: %s", xr.unsupported[i]);
		export_result_clear(&xr);
		if (write_interrupted) {
			alerr_clear(e);
			return interrupted(e);
		}
		return r;
	}
	w->res->tables = xr.tables;
	w->res->rows = xr.rows;
	export_result_clear(&xr);
	r = interrupted(e);
	if (r == 0)
		r = pack_finish(w->pack, w->m, e);
	if (r < 0)
		return r;
	w->res->payload_bytes = pack_bytes_out(w->pack);
	log_info("payload: %llu chunk(s), %llu bytes compressed from %llu",
	         (unsigned long long)pack_chunks(w->pack),
	         (unsigned long long)pack_bytes_out(w->pack),
	         (unsigned long long)pack_bytes_in(w->pack));
	return 0;
}

static int stage_seal(struct writer *w, struct alerr *e)
{
	const struct write_options *o = w->o;
	char path[WRITE_PATH_MAX], *text = NULL;
	size_t len = 0, i;
	int r;

	r = manifest_emit(w->m, &text, &len, e);
	if (r < 0)
		return r;
	r = join(path, sizeof(path), e, "%s/MANIFEST", w->top);
	if (r == 0)
		r = write_file(path, text, len, e);
	if (r == 0) {
		digest_buffer(text, len, w->manifest_sha);
		w->have_manifest_sha = 1;
	}
	for (i = 0; r == 0 && i < o->n_signers; i++) {
		char fpr[SIG_FPR_SIZE];
		void *sig = NULL;
		size_t sig_len = 0;

		r = interrupted(e);
		if (r == 0)
			r = sig_sign_detached(o->gnupghome, o->signers[i], text, len,
			                      &sig, &sig_len, fpr, e);
		if (r == 0)
			r = join(path, sizeof(path), e, "%s/SIGNATURES/%s.sig", w->top, fpr);
		if (r == 0)
			r = write_file(path, sig, sig_len, e);
		free(sig);
	}
	free(text);
	return r;
}

static int open_image(struct writer *w, int *fd_out, struct alerr *e)
{
	char copy[WRITE_PATH_MAX], base[WRITE_PATH_MAX];
	int fd, r;

	if ((r = join(copy, sizeof(copy), e, "%s", w->o->image)) < 0 ||
	    (r = join(base, sizeof(base), e, "%s", w->o->image)) < 0)
		return r;
	/* A drop point must never see a partial image: write under a
	 * temporary name in the same directory, rename once verified. */
	if ((r = join(w->partial, sizeof(w->partial), e, "%s/.%s.partial-XXXXXX",
	              dirname(copy), basename(base))) < 0)
		return r;
	fd = mkostemp(w->partial, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		w->partial[0] = '\0';
		return alerr_set(e, ALERR_CANTCREAT, r, "target.create", "%s: %s",
		                 w->o->image, strerror(-r));
	}
	fchmod(fd, 0644);
	*fd_out = fd;
	return 0;
}

static int on_wiped(void *ctx, const struct media_signature *sig)
{
	(void)ctx;
	log_notice("wiping %s signature on %s at offset %llu", sig->type, sig->dev,
	           (unsigned long long)sig->offset);
	return 0;
}

static int stage_place(struct writer *w, struct alerr *e)
{
	const struct write_options *o = w->o;
	struct volume_info vi;
	uint64_t needed = 0;
	char label[300];
	int fd = -1, r;

	r = volume_estimate(w->work, &needed, e);
	if (r < 0)
		return r;
	if (w->have_media) {
		/* Refused before anything is wiped. */
		r = media_check_target(&w->media, o->force_device, needed, e);
		if (r < 0)
			return r;
		r = interrupted(e);
		if (r == 0)
			r = media_open_and_wipe(&w->media, &fd, on_wiped, w, e);
	} else {
		r = open_image(w, &fd, e);
	}
	if (r < 0)
		return r;
	/* The wipe moved the descriptor's offset; the volume starts at 0. */
	if (lseek(fd, 0, SEEK_SET) != 0) {
		r = alerr_set(e, ALERR_IOERR, -errno, "media.write", "%s: seek: %s",
		              w->res->target, strerror(errno));
		close(fd);
		return r;
	}

	if (snprintf(label, sizeof(label), "write %s",
	             w->have_media ? w->media.devnode : "image") < 0)
		label[0] = '\0';
	w->bar = progress_new(label, needed, o->progress);
	r = volume_write(w->work, fd, w->m->sequence, w->m->created, on_volume_progress, w, &vi, e);
	progress_done(w->bar);
	w->bar = NULL;
	if (r == 0) {
		w->bar = progress_new("read back", vi.bytes, o->progress);
		r = volume_readback(fd, &vi, on_volume_progress, w, e);
		progress_done(w->bar);
		w->bar = NULL;
	}
	if (r < 0) {
		close(fd);
		if (write_interrupted) {
			alerr_clear(e);
			return interrupted(e);
		}
		return r;
	}
	if (close(fd) < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "media.write", "closing %s: %s",
		                 w->res->target, strerror(errno));
	if (!w->have_media) {
		char copy[WRITE_PATH_MAX];
		int dfd;

		if (renameat2(AT_FDCWD, w->partial, AT_FDCWD, o->image, RENAME_NOREPLACE) < 0)
			return alerr_set(e, ALERR_CANTCREAT, -errno, "target.create",
			                 "renaming the verified image to %s: %s", o->image,
			                 strerror(errno));
		w->partial[0] = '\0';
		if (join(copy, sizeof(copy), e, "%s", o->image) == 0) {
			dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				fsync(dfd);
				close(dfd);
			}
		}
	}
	w->res->volume_bytes = vi.bytes;
	digest_hex(w->res->volume_sha256, vi.sha256);
	return 0;
}

static void fill_custody_bundle(const struct writer *w, struct custody_bundle *b)
{
	memset(b, 0, sizeof(*b));
	b->channel = w->o->channel;
	if (w->m && w->m->sequence) {
		b->sequence = w->m->sequence;
		b->has_sequence = 1;
		b->bundle_id = w->m->bundle_id[0] ? w->m->bundle_id : NULL;
	}
	/* The writer made and signed this MANIFEST itself: its facts are
	 * first-hand on the low side. */
	if (w->have_manifest_sha) {
		b->manifest_sha256 = w->manifest_sha;
		b->verified = 1;
	}
}

static void fill_custody_device(const struct writer *w, struct custody_device *d)
{
	memset(d, 0, sizeof(*d));
	d->devnode = w->media.devnode;
	d->vendor = w->media.vendor;
	d->model = w->media.model;
	d->serial = w->media.serial;
	d->bus_path = w->media.bus_path;
	d->size = w->media.size_bytes;
	d->has_size = 1;
}

static int stage_record(struct writer *w, struct alerr *e)
{
	struct custody_entry *en = NULL;
	struct custody_bundle b;
	struct custody_device d;
	int r;

	r = custody_entry_new(&en, CUSTODY_SIDE_LOW, CUSTODY_EV_BUNDLE_WRITTEN, CUSTODY_OK, e);
	if (r < 0)
		return r;
	custody_entry_set_run(en, w->run_id);
	fill_custody_bundle(w, &b);
	custody_entry_set_bundle(en, &b);
	if (w->have_media) {
		fill_custody_device(w, &d);
		custody_entry_set_device(en, &d);
	}
	if (w->o->courier)
		custody_entry_set_courier(en, w->o->courier);
	custody_entry_set_signed(en, w->m);
	custody_entry_add_detail_str(en, "target", w->res->target);
	custody_entry_add_detail_int(en, "volume_bytes", (int64_t)w->res->volume_bytes);
	custody_entry_add_detail_str(en, "volume_sha256", w->res->volume_sha256);
	custody_entry_add_detail_int(en, "payload_bytes", (int64_t)w->res->payload_bytes);
	custody_entry_add_detail_int(en, "tables", (int64_t)w->res->tables);
	custody_entry_add_detail_int(en, "rows", (int64_t)w->res->rows);
	r = custody_append(w->o->custody_log, en, &w->res->custody_seq, w->res->custody_hash, e);
	custody_entry_free(en);
	return r;
}

/* A failure is recorded too, when the log can be written. */
static void record_failure(struct writer *w, const struct alerr *why)
{
	struct custody_entry *en = NULL;
	struct custody_bundle b;
	struct custody_device d;
	struct alerr e2;

	alerr_clear(&e2);
	if (!w->o->custody_log || strncmp(why->reason, "custody.", 8) == 0)
		return;
	if (custody_entry_new(&en, CUSTODY_SIDE_LOW, CUSTODY_EV_BUNDLE_WRITE_FAILED,
	                      CUSTODY_ERROR, &e2) < 0)
		return;
	custody_entry_set_reason(en, why->reason);
	custody_entry_set_run(en, w->run_id);
	fill_custody_bundle(w, &b);
	custody_entry_set_bundle(en, &b);
	if (w->have_media) {
		fill_custody_device(w, &d);
		custody_entry_set_device(en, &d);
	}
	custody_entry_add_detail_str(en, "message", why->message);
	if (w->res->target[0])
		custody_entry_add_detail_str(en, "target", w->res->target);
	if (custody_append(w->o->custody_log, en, NULL, NULL, &e2) < 0)
		log_warn("the failure could not be recorded in the custody log: %s", e2.message);
	custody_entry_free(en);
}

static void fill_result(struct writer *w)
{
	struct write_result *res = w->res;
	char hex[DIGEST_SHA256_HEX_LEN + 1];
	size_t i;

	snprintf(res->bundle_id, sizeof(res->bundle_id), "%s", w->m->bundle_id);
	snprintf(res->channel, sizeof(res->channel), "%s", w->o->channel);
	res->sequence = w->m->sequence;
	res->created = w->m->created;
	res->valid_until = w->m->valid_until;
	digest_hex(hex, w->manifest_sha);
	memcpy(res->manifest_sha256, hex, sizeof(res->manifest_sha256));
	for (i = 0; i < 16; i++)
		if (hex[i] >= 'a' && hex[i] <= 'f')
			hex[i] = (char)(hex[i] - 'a' + 'A');
	snprintf(res->fingerprint, sizeof(res->fingerprint), "%.4s-%.4s-%.4s-%.4s",
	         hex, hex + 4, hex + 8, hex + 12);
	res->n_signers = w->n_signers;
	for (i = 0; i < w->n_signers; i++)
		memcpy(res->signers[i], w->signers[i], SIG_FPR_SIZE);
}

int write_run(const struct write_options *o, struct write_result *res, struct alerr *e)
{
	struct writer w;
	char tmpl[WRITE_PATH_MAX], sub[WRITE_PATH_MAX];
	int r;

	memset(&w, 0, sizeof(w));
	memset(res, 0, sizeof(*res));
	w.o = o;
	w.res = res;
	w.state_fd = -1;
	custody_run_id(w.run_id);

	if (!o->channel || !o->source || o->n_schemas == 0 || o->n_signers == 0 ||
	    !!o->device == !!o->image || !o->workdir || !o->state_dir || !o->custody_log)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "internal", "write_run: incomplete options");
	r = digest_library_init(e);
	if (r < 0)
		return r;

	if ((r = stage_target(&w, e)) < 0 ||
	    (r = state_open(&w, e)) < 0 ||
	    (r = stage_manifest(&w, e)) < 0)
		goto out;

	if ((r = join(tmpl, sizeof(tmpl), e, "%s/airlock-write.XXXXXX", o->workdir)) < 0)
		goto out;
	if (!mkdtemp(tmpl)) {
		r = alerr_set(e, ALERR_CANTCREAT, -errno, "workdir.create",
		              "cannot create a work directory in %s: %s", o->workdir, strerror(errno));
		goto out;
	}
	memcpy(w.work, tmpl, sizeof(w.work));
	if ((r = join(w.top, sizeof(w.top), e, "%s/AIRLOCK", w.work)) < 0 ||
	    (r = make_dir(w.top, e)) < 0 ||
	    (r = join(sub, sizeof(sub), e, "%s/payload", w.top)) < 0 ||
	    (r = make_dir(sub, e)) < 0 ||
	    (r = join(sub, sizeof(sub), e, "%s/SIGNATURES", w.top)) < 0 ||
	    (r = make_dir(sub, e)) < 0)
		goto out;

	if ((r = stage_export_pack(&w, e)) < 0 ||
	    (r = interrupted(e)) < 0 ||
	    (r = stage_seal(&w, e)) < 0 ||
	    (r = stage_place(&w, e)) < 0)
		goto out;
	fill_result(&w);
	if ((r = stage_record(&w, e)) < 0)
		goto out;
	r = state_save(&w, w.m->sequence, e);
out:
	if (r < 0)
		record_failure(&w, e);
	progress_done(w.bar);
	pack_free(w.pack);
	if (w.partial[0])
		unlink(w.partial);
	remove_tree(w.work);
	manifest_free(w.m);
	if (w.state_fd >= 0)
		close(w.state_fd);
	return r;
}
