#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bounds.h"
#include "digest.h"
#include "log.h"
#include "quarantine.h"

/* entries of the quarantine directory looked at by one sweep */
#define QUARANTINE_SWEEP_MAX 4096

_Static_assert(VOLUME_PROBE_BYTES <= IO_BUFFER_SIZE, "the probe fits the copy buffer");

struct qcopy {
	int src;
	int dfd;                 /* the new per-import directory */
	int img;
	int made_dir;
	int made_img;
	unsigned char *buf;
	struct digest *d;
};

static int is_airlock_label(const char *id)
{
	size_t n = strlen(VOLUME_LABEL_PREFIX), i;

	if (strncmp(id, VOLUME_LABEL_PREFIX, n) != 0)
		return 0;
	id += n;
	n = strlen(id);
	if (n == 0 || n > MEDIA_LABEL_MAX_DIGITS || id[0] == '0')
		return 0;
	for (i = 0; i < n; i++)
		if (id[i] < '0' || id[i] > '9')
			return 0;
	return 1;
}

/* Open the source once: a block device exclusively (no one mounts or
 * writes it while we read), a file never through a symlink. */
static int open_source(const char *source, uint64_t *size, struct alerr *e)
{
	struct stat st, fst;
	int fd, err;

	if (stat(source, &st) < 0) {
		err = errno;
		return alerr_set(e, ALERR_NOINPUT, -err, "media.not_found", "%s: %s", source,
		                 strerror(err));
	}
	if (S_ISBLK(st.st_mode))
		fd = open(source, O_RDONLY | O_EXCL | O_CLOEXEC);
	else if (S_ISREG(st.st_mode))
		fd = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	else
		return alerr_set(e, ALERR_NOINPUT, -EINVAL, "media.not_block",
		                 "%s: neither a block device nor an image file", source);
	if (fd < 0) {
		err = errno;
		if (err == EBUSY)
			return alerr_set(e, ALERR_TEMPFAIL, -err, "media.busy",
			                 "%s is in use", source);
		if (err == ELOOP)
			return alerr_set(e, ALERR_NOINPUT, -err, "media.not_block",
			                 "%s is a symbolic link", source);
		return alerr_set(e, err == ENOENT ? ALERR_NOINPUT : ALERR_IOERR, -err,
		                 err == ENOENT ? "media.not_found" : "media.read",
		                 "%s: %s", source, strerror(err));
	}
	if (fstat(fd, &fst) < 0) {
		err = errno;
		close(fd);
		return alerr_set(e, ALERR_IOERR, -err, "media.read", "%s: %s", source,
		                 strerror(err));
	}
	/* The node must not have changed between stat and open. */
	if ((fst.st_mode & S_IFMT) != (st.st_mode & S_IFMT) ||
	    (S_ISBLK(st.st_mode) ? fst.st_rdev != st.st_rdev :
	     (fst.st_dev != st.st_dev || fst.st_ino != st.st_ino))) {
		close(fd);
		return alerr_set(e, ALERR_NOINPUT, -ESTALE, "media.not_found",
		                 "%s changed while it was opened", source);
	}
	if (S_ISBLK(fst.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			err = errno;
			close(fd);
			return alerr_set(e, ALERR_IOERR, -err, "media.read", "%s: BLKGETSIZE64: %s",
			                 source, strerror(err));
		}
	} else {
		*size = (uint64_t)fst.st_size;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return fd;
}

/* Read up to len bytes, fewer only at the end of the source. */
static ssize_t read_full(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The evidence of a refusal made before the copy: the probe's got bytes
 * in q->buf, and for an image file of at most max_bytes the rest of it,
 * read on from there (up to its size when it was opened: what an auditor
 * rereads with head -c). A read error ends the evidence where it is. */
static void read_evidence(struct qcopy *q, size_t got, uint64_t max_bytes,
                          struct quarantine_result *res)
{
	uint64_t done = got, end = got;
	struct stat st;

	digest_reset(q->d);
	digest_update(q->d, q->buf, got);
	if (fstat(q->src, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= max_bytes)
		end = (uint64_t)st.st_size;
	while (done < end) {
		size_t want = end - done < IO_BUFFER_SIZE ? (size_t)(end - done) : IO_BUFFER_SIZE;
		ssize_t n = read_full(q->src, q->buf, want);

		if (n <= 0)
			break;
		digest_update(q->d, q->buf, (size_t)n);
		done += (uint64_t)n;
		if ((size_t)n < want)
			break;
	}
	digest_final(q->d, res->read_sha256);
	res->read_bytes = done;
	res->have_read = 1;
}

static int read_error(int err, const char *source, uint64_t at, struct alerr *e)
{
	return alerr_set(e, ALERR_IOERR, err, "media.read", "%s: read at byte %" PRIu64 ": %s%s",
	                 source, at, strerror(-err),
	                 (err == -ENODEV || err == -ENXIO || err == -EIO) ?
	                 " (media removed or failing)" : "");
}

static int write_error(int err, const char *path, struct alerr *e)
{
	if (err == -ENOSPC || err == -EDQUOT)
		return alerr_set(e, ALERR_CANTCREAT, err, "quarantine.full", "%s: %s", path,
		                 strerror(-err));
	return alerr_set(e, ALERR_CANTCREAT, err, "quarantine.write", "%s: %s", path,
	                 strerror(-err));
}

static int write_full(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The policy directory: made 0700 when missing; never a symlink, ours
 * (or root's), and writable by no one else. */
static int policy_dir_check(const char *dir, struct alerr *e)
{
	struct stat st;
	int err;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		err = errno;
		return alerr_set(e, ALERR_CANTCREAT, -err, "quarantine.dir", "%s: %s", dir,
		                 strerror(err));
	}
	if (lstat(dir, &st) < 0) {
		err = errno;
		return alerr_set(e, ALERR_CANTCREAT, -err, "quarantine.dir", "%s: %s", dir,
		                 strerror(err));
	}
	if (S_ISLNK(st.st_mode))
		return alerr_set(e, ALERR_CANTCREAT, -ELOOP, "quarantine.dir",
		                 "%s is a symbolic link", dir);
	if (!S_ISDIR(st.st_mode))
		return alerr_set(e, ALERR_CANTCREAT, -ENOTDIR, "quarantine.dir",
		                 "%s is not a directory", dir);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return alerr_set(e, ALERR_CANTCREAT, -EPERM, "quarantine.dir",
		                 "%s is owned by uid %u", dir, (unsigned int)st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return alerr_set(e, ALERR_CANTCREAT, -EPERM, "quarantine.dir",
		                 "%s is writable by group or others (mode %04o)", dir,
		                 (unsigned int)(st.st_mode & 07777));
	return 0;
}

static int fsync_path(const char *path, struct alerr *e)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), err;

	if (fd < 0 || fsync(fd) < 0) {
		err = errno;
		if (fd >= 0)
			close(fd);
		return write_error(-err, path, e);
	}
	close(fd);
	return 0;
}

static void qcopy_cleanup(struct qcopy *q, struct quarantine_result *res, int failed)
{
	if (q->img >= 0)
		close(q->img);
	if (failed && q->made_img)
		(void)unlinkat(q->dfd, QUARANTINE_IMAGE_NAME, 0);
	if (q->dfd >= 0)
		close(q->dfd);
	if (failed && q->made_dir)
		(void)rmdir(res->dir);
	if (q->src >= 0)
		close(q->src);
	digest_free(q->d);
	free(q->buf);
}

/* The per-import directory, created, opened and locked: ours while we
 * live, so that a sweep removes it only once we are gone. A sweep can
 * take the lock in the instant between mkdtemp and flock and remove the
 * (empty) directory: then it is gone or has no link left, and we make
 * another. */
static int make_dir(struct qcopy *q, struct quarantine_result *res, struct alerr *e)
{
	char tmpl[sizeof(res->dir)];
	unsigned int tries;

	memcpy(tmpl, res->dir, sizeof(tmpl));
	for (tries = 0; tries < 8; tries++) {
		struct stat st;

		memcpy(res->dir, tmpl, sizeof(tmpl));
		if (!mkdtemp(res->dir))
			return alerr_set(e, ALERR_CANTCREAT, -errno, "quarantine.dir", "%s: %s",
			                 res->dir, strerror(errno));
		q->made_dir = 1;
		q->dfd = open(res->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (q->dfd < 0 && errno == ENOENT) {
			q->made_dir = 0;        /* swept already: make another */
			continue;
		}
		if (q->dfd < 0)
			return write_error(-errno, res->dir, e);
		if (flock(q->dfd, LOCK_EX) < 0 || fstat(q->dfd, &st) < 0)
			return write_error(-errno, res->dir, e);
		if (st.st_nlink > 0)
			return 0;
		close(q->dfd);
		q->dfd = -1;
		q->made_dir = 0;
	}
	return alerr_set(e, ALERR_CANTCREAT, -EAGAIN, "quarantine.dir",
	                 "%s: removed under us %u times", tmpl, tries);
}

/* n characters of a run id: QUARANTINE_RUN_LEN of [0-9a-f-] */
static int run_ok(const char *s, size_t n)
{
	size_t i;

	if (n != QUARANTINE_RUN_LEN)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
			return 0;
	return 1;
}

int quarantine_copy(const char *source, const struct quarantine_policy *p,
                    int (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
                    struct quarantine_result *res, struct alerr *e)
{
	struct qcopy q = { .src = -1, .dfd = -1, .img = -1 };
	uint64_t media = 0, declared = 0, done = 0;
	struct statvfs sv;
	struct alerr pe;
	ssize_t got;
	size_t first;
	int r, n;

	memset(res, 0, sizeof(*res));
	res->lock_fd = -1;
	if (!source || !p || !p->dir || p->dir[0] != '/' || p->max_bytes == 0)
		return alerr_set(e, ALERR_CONFIG, -EINVAL, "quarantine.policy",
		                 "quarantine: an absolute directory and a size cap are required");
	if (p->run && !run_ok(p->run, strlen(p->run)))
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "quarantine.policy",
		                 "quarantine: a malformed run id");
	n = snprintf(res->dir, sizeof(res->dir), "%s/import-%s%sXXXXXX", p->dir,
	             p->run ? p->run : "", p->run ? "-" : "");
	if (n < 0 || (size_t)n + sizeof("/" QUARANTINE_IMAGE_NAME) > sizeof(res->dir))
		return alerr_set(e, ALERR_CONFIG, -ENAMETOOLONG, "quarantine.policy",
		                 "quarantine directory path too long");
	r = digest_library_init(e);
	if (r < 0)
		return r;
	q.buf = malloc(IO_BUFFER_SIZE);
	if (!q.buf || digest_new(&q.d, e) < 0) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "quarantine.memory", "out of memory");
		goto out;
	}
	r = q.src = open_source(source, &media, e);
	if (r < 0)
		goto out;

	/* The first bytes of the one pass tell the volume's size. */
	got = read_full(q.src, q.buf, VOLUME_PROBE_BYTES);
	if (got < 0) {
		r = read_error((int)got, source, 0, e);
		goto out;
	}
	alerr_clear(&pe);
	r = volume_probe_buffer(q.buf, (size_t)got, &declared, res->volume_id, &pe);
	if (r < 0) {
		if (strcmp(pe.reason, "volume.not_iso") == 0) {
			r = alerr_set(e, ALERR_NOINPUT, -ENODATA, "media.not_airlock",
			              "%s: not an ISO 9660 volume: left alone", source);
			goto out;
		}
		r = alerr_set(e, pe.cls, pe.errnum, pe.reason, "%s: %s", source, pe.message);
		if (pe.cls == ALERR_REJECT)
			read_evidence(&q, (size_t)got, p->max_bytes, res);
		goto out;
	}
	if (!is_airlock_label(res->volume_id)) {
		char shown[VOLUME_ID_SIZE];

		memcpy(shown, res->volume_id, sizeof(shown));
		r = alerr_set(e, ALERR_NOINPUT, -ENODATA, "media.not_airlock",
		              "%s: volume label \"%s\" is not AIRLOCK_<sequence>: left alone",
		              source, shown);
		goto out;
	}
	if (declared > p->max_bytes) {
		r = alerr_set(e, ALERR_REJECT, -EFBIG, "volume.too_large",
		              "the volume declares %" PRIu64 " bytes, over the cap of %" PRIu64,
		              declared, p->max_bytes);
		read_evidence(&q, (size_t)got, p->max_bytes, res);
		goto out;
	}
	if (declared > media) {
		r = alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.truncated",
		              "the volume declares %" PRIu64 " bytes, the media holds %" PRIu64,
		              declared, media);
		read_evidence(&q, (size_t)got, p->max_bytes, res);
		goto out;
	}

	r = policy_dir_check(p->dir, e);
	if (r < 0)
		goto out;
	r = make_dir(&q, res, e);
	if (r < 0)
		goto out;
	if (fstatvfs(q.dfd, &sv) < 0) {
		r = write_error(-errno, res->dir, e);
		goto out;
	}
	if ((uint64_t)sv.f_bavail < declared / (sv.f_frsize ? sv.f_frsize : 1) + 1u) {
		r = alerr_set(e, ALERR_CANTCREAT, -ENOSPC, "quarantine.full",
		              "%s: %" PRIu64 " bytes free, the volume needs %" PRIu64, p->dir,
		              (uint64_t)sv.f_bavail * sv.f_frsize, declared);
		goto out;
	}
	n = snprintf(res->image, sizeof(res->image), "%s/%s", res->dir, QUARANTINE_IMAGE_NAME);
	if (n < 0 || (size_t)n >= sizeof(res->image)) {
		r = write_error(-ENAMETOOLONG, res->dir, e);
		goto out;
	}
	q.img = openat(q.dfd, QUARANTINE_IMAGE_NAME,
	               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (q.img < 0) {
		r = write_error(-errno, res->image, e);
		goto out;
	}
	q.made_img = 1;
	if (fchmod(q.img, 0600) < 0) {
		r = write_error(-errno, res->image, e);
		goto out;
	}

	/* Copy exactly the declared size, the probe bytes first. */
	first = (uint64_t)got < declared ? (size_t)got : (size_t)declared;
	for (;;) {
		digest_update(q.d, q.buf, first);
		r = write_full(q.img, q.buf, first);
		if (r < 0) {
			r = write_error(r, res->image, e);
			goto out;
		}
		done += first;
		if (progress && progress(ctx, done, declared) != 0) {
			r = alerr_set(e, ALERR_SOFTWARE, -ECANCELED, "quarantine.cancelled",
			              "copy into quarantine cancelled at %" PRIu64 " bytes", done);
			goto out;
		}
		if (done == declared)
			break;
		first = declared - done < IO_BUFFER_SIZE ? (size_t)(declared - done) :
		        IO_BUFFER_SIZE;
		got = read_full(q.src, q.buf, first);
		if (got < 0) {
			r = read_error((int)got, source, done, e);
			goto out;
		}
		if ((size_t)got < first) {
			r = alerr_set(e, ALERR_IOERR, -EIO, "media.read",
			              "%s ended at byte %" PRIu64 " of %" PRIu64
			              " (media removed or shrunk)", source, done + (uint64_t)got,
			              declared);
			goto out;
		}
	}
	if (fsync(q.img) < 0) {
		r = write_error(-errno, res->image, e);
		goto out;
	}
	if (close(q.img) < 0) {
		q.img = -1;
		r = write_error(-errno, res->image, e);
		goto out;
	}
	q.img = -1;
	if (fsync(q.dfd) < 0) {
		r = write_error(-errno, res->dir, e);
		goto out;
	}
	r = fsync_path(p->dir, e);
	if (r < 0)
		goto out;
	digest_final(q.d, res->sha256);
	res->bytes = declared;
	res->lock_fd = q.dfd;
	q.dfd = -1;
	r = 0;
out:
	qcopy_cleanup(&q, res, r < 0);
	if (r < 0) {
		struct quarantine_result keep = *res;

		memset(res, 0, sizeof(*res));
		res->lock_fd = -1;
		memcpy(res->volume_id, keep.volume_id, sizeof(res->volume_id));
		res->have_read = keep.have_read;
		res->read_bytes = keep.read_bytes;
		memcpy(res->read_sha256, keep.read_sha256, sizeof(res->read_sha256));
	}
	return r;
}

void quarantine_release(struct quarantine_result *res)
{
	if (res->lock_fd >= 0)
		close(res->lock_fd);
	res->lock_fd = -1;
}

/* The files of one dead import's directory, then the directory. */
static int sweep_one(int dfd, const char *path)
{
	int fd = dup(dfd);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int r = -errno;

		close(fd);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) < 0) {
			int r = -errno;

			closedir(d);
			return r;
		}
	}
	closedir(d);
	return rmdir(path) < 0 ? -errno : 0;
}

/* Directory dir/name, opened (not followed if a link) into a descriptor
 * to lock; its path into path. -1 when it cannot be. */
static int open_entry(const char *dir, const char *name, char *path, size_t size)
{
	if (snprintf(path, size, "%s/%s", dir, name) >= (int)size)
		return -1;
	return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

int quarantine_sweep(const char *dir, size_t *removed,
                     void (*dead)(void *ctx, const char *run), void *ctx,
                     struct alerr *e)
{
	char path[QUARANTINE_PATH_MAX];
	struct dirent *de;
	size_t n = 0, seen = 0;
	DIR *d;

	if (removed)
		*removed = 0;
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return alerr_set(e, ALERR_CANTCREAT, -errno, "quarantine.dir", "%s: %s", dir,
		                 strerror(errno));
	}
	while ((de = readdir(d)) != NULL && seen++ < QUARANTINE_SWEEP_MAX) {
		struct stat st;
		int fd, r;

		if (strncmp(de->d_name, "import-", 7) != 0 ||
		    (fd = open_entry(dir, de->d_name, path, sizeof(path))) < 0)
			continue;
		if (fstat(fd, &st) < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);      /* a live import's */
			continue;
		}
		r = sweep_one(fd, path);
		close(fd);
		if (r < 0) {
			log_warn("cannot remove %s, left by an interrupted import: %s", path,
			         strerror(-r));
			continue;
		}
		log_notice("removed %s, a partial copy left by an interrupted import", path);
		n++;
		/* import-<run>-XXXXXX */
		if (dead && strlen(de->d_name) == 7 + QUARANTINE_RUN_LEN + 7 &&
		    de->d_name[7 + QUARANTINE_RUN_LEN] == '-' &&
		    run_ok(de->d_name + 7, QUARANTINE_RUN_LEN)) {
			char run[QUARANTINE_RUN_LEN + 1];

			memcpy(run, de->d_name + 7, QUARANTINE_RUN_LEN);
			run[QUARANTINE_RUN_LEN] = '\0';
			dead(ctx, run);
		}
	}
	closedir(d);
	if (removed)
		*removed = n;
	return 0;
}

int quarantine_run_alive(const char *dir, const char *run)
{
	char path[QUARANTINE_PATH_MAX];
	struct dirent *de;
	size_t seen = 0;
	int alive = 0;
	DIR *d;

	if (!run || !run_ok(run, strlen(run)) || !(d = opendir(dir)))
		return 0;
	while (!alive && (de = readdir(d)) != NULL && seen++ < QUARANTINE_SWEEP_MAX) {
		int fd;

		if (strncmp(de->d_name, "import-", 7) != 0 ||
		    strncmp(de->d_name + 7, run, QUARANTINE_RUN_LEN) != 0 ||
		    de->d_name[7 + QUARANTINE_RUN_LEN] != '-' ||
		    (fd = open_entry(dir, de->d_name, path, sizeof(path))) < 0)
			continue;
		/* the live import holds it exclusively */
		if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
			alive = 1;
		close(fd);
	}
	closedir(d);
	return alive;
}
