#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "digest.h"
#include "log.h"
#include "manifest.h"
#include "volume.h"

#define BLK VOLUME_BLOCK_SIZE
#define PVD_BLOCK 16u                   /* after the system area */
#define WRITE_BLOCK (1024u * 1024u)     /* bytes per write to the medium */
#define HEAD_MAX (4u * 1024u * 1024u)   /* the patched start of the image */
#define READ_BLOCK (64u * 1024u)        /* libarchive's reads of an image */
#define REL_MAX 96u                     /* "AIRLOCK/SIGNATURES/<64>.sig" fits */
#define ISO_YEAR_MAX 2155               /* 1900 + 255: 9.1.5 dates */

_Static_assert(VOLUME_PROBE_BYTES >= (PVD_BLOCK + 1u + VOLUME_MAX_DESCRIPTORS) * BLK,
               "the probe buffer holds the descriptors looked at");
_Static_assert(CHUNK_SIZE_MAX < (UINT64_C(1) << 32) - BLK,
               "a file needs one extent");

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[0] << 24;
}

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint16_t be16(const unsigned char *p)
{
	return (uint16_t)(p[1] | p[0] << 8);
}

/* ------------------------------------------------------------------ */
/* Section 2's names: the writer's tree and the importer's listing. */

enum vol_kind {
	VK_NONE = 0,
	VK_ROOT,         /* "." as libarchive's reader names the root */
	VK_TOP,          /* AIRLOCK */
	VK_MANIFEST,     /* AIRLOCK/MANIFEST */
	VK_SIGDIR,       /* AIRLOCK/SIGNATURES */
	VK_SIG,          /* AIRLOCK/SIGNATURES/<FPR>.sig */
	VK_PAYDIR,       /* AIRLOCK/payload */
	VK_CHUNK,        /* AIRLOCK/payload/NNNNNN.chunk */
};

static int all_of(const char *s, size_t n, const char *set)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!s[i] || !strchr(set, s[i]))
			return 0;
	return 1;
}

static enum vol_kind vol_kind(const char *path)
{
	static const char sigdir[] = "AIRLOCK/SIGNATURES/";
	static const char paydir[] = "AIRLOCK/payload/";
	size_t n;

	if (strcmp(path, "AIRLOCK") == 0)
		return VK_TOP;
	if (strcmp(path, ".") == 0)
		return VK_ROOT;
	if (strcmp(path, "AIRLOCK/MANIFEST") == 0)
		return VK_MANIFEST;
	if (strcmp(path, "AIRLOCK/SIGNATURES") == 0)
		return VK_SIGDIR;
	if (strcmp(path, "AIRLOCK/payload") == 0)
		return VK_PAYDIR;
	if (strncmp(path, sigdir, sizeof(sigdir) - 1) == 0) {
		const char *f = path + sizeof(sigdir) - 1;

		n = strlen(f);
		if ((n == 40 + 4 || n == 64 + 4) && all_of(f, n - 4, "0123456789ABCDEF") &&
		    strcmp(f + n - 4, ".sig") == 0)
			return VK_SIG;
		return VK_NONE;
	}
	if (strncmp(path, paydir, sizeof(paydir) - 1) == 0) {
		const char *f = path + sizeof(paydir) - 1;

		if (strlen(f) == 12 && all_of(f, 6, "0123456789") && strcmp(f + 6, ".chunk") == 0)
			return VK_CHUNK;
	}
	return VK_NONE;
}

static int kind_is_dir(enum vol_kind k)
{
	return k == VK_ROOT || k == VK_TOP || k == VK_SIGDIR || k == VK_PAYDIR;
}

static uint64_t kind_max_size(enum vol_kind k)
{
	switch (k) {
	case VK_MANIFEST: return MANIFEST_MAX_BYTES;
	case VK_SIG:      return SIG_FILE_MAX_BYTES;
	case VK_CHUNK:    return CHUNK_SIZE_MAX;
	default:          return 0;
	}
}

/* ------------------------------------------------------------------ */
/* The bundle tree, read from the work directory (the writer's own files,
 * still checked: a stray file must not reach the medium). */

struct vol_entry {
	char path[REL_MAX];
	int is_dir;
	unsigned int nlink;
	uint64_t size;
};

struct vol_tree {
	struct vol_entry *v;
	size_t n, cap;
	uint64_t file_bytes;
	size_t n_dirs;
};

static void tree_free(struct vol_tree *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static int tree_add(struct vol_tree *t, const char *path, int is_dir, unsigned int nlink,
                    uint64_t size, struct alerr *e)
{
	struct vol_entry *x;

	if (t->n == VOLUME_MAX_ENTRIES)
		return alerr_set(e, ALERR_SOFTWARE, -E2BIG, "volume.bundle_layout",
		                 "bundle: more than %u entries", VOLUME_MAX_ENTRIES);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;

		x = realloc(t->v, cap * sizeof(*x));
		if (!x)
			return alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
		t->v = x;
		t->cap = cap;
	}
	x = &t->v[t->n++];
	snprintf(x->path, sizeof(x->path), "%s", path);
	x->is_dir = is_dir;
	x->nlink = nlink;
	x->size = size;
	if (is_dir)
		t->n_dirs++;
	else
		t->file_bytes += size;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The names in directory fd (not . and ..), sorted. */
static int list_names(int fd, const char *where, char ***out, size_t *n_out, struct alerr *e)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int dfd, r = 0;

	*out = NULL;
	*n_out = 0;
	dfd = dup(fd);
	if (dfd < 0 || !(d = fdopendir(dfd))) {
		r = -errno;
		if (dfd >= 0)
			close(dfd);
		return alerr_set(e, ALERR_IOERR, r, "volume.bundle_layout", "%s: %s", where,
		                 strerror(-r));
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == VOLUME_MAX_ENTRIES) {
			r = alerr_set(e, ALERR_SOFTWARE, -E2BIG, "volume.bundle_layout",
			              "%s: more than %u entries", where, VOLUME_MAX_ENTRIES);
			goto out;
		}
		if (n == cap) {
			size_t c = cap ? cap * 2 : 32;
			char **x = realloc(names, c * sizeof(*x));

			if (!x) {
				r = alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory",
				              "out of memory");
				goto out;
			}
			names = x;
			cap = c;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
			goto out;
		}
		n++;
	}
	if (errno != 0) {
		r = alerr_set(e, ALERR_IOERR, -errno, "volume.bundle_layout", "%s: %s", where,
		              strerror(errno));
		goto out;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
out:
	closedir(d);
	if (r < 0) {
		names_free(names, n);
		return r;
	}
	*out = names;
	*n_out = n;
	return 0;
}

/* Add the regular files of directory rel (opened as dfd), each of the kind
 * wanted; chunk names must be contiguous from 000000. */
static int scan_files(struct vol_tree *t, int dfd, const char *rel, enum vol_kind want,
                      size_t min, size_t max, struct alerr *e)
{
	char **names = NULL;
	size_t n = 0, i;
	int r;

	r = list_names(dfd, rel, &names, &n, e);
	if (r < 0)
		return r;
	if (n < min || n > max) {
		r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
		              "bundle: %s holds %zu files, not %zu to %zu", rel, n, min, max);
		goto out;
	}
	for (i = 0; i < n; i++) {
		char path[REL_MAX];
		struct stat st;

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", rel, names[i]) >= sizeof(path) ||
		    vol_kind(path) != want) {
			r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
			              "bundle: unexpected %s/%s", rel, names[i]);
			goto out;
		}
		if (want == VK_CHUNK) {
			char expect[32];

			snprintf(expect, sizeof(expect), "%06zu.chunk", i);
			if (strcmp(names[i], expect) != 0) {
				r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
				              "bundle: %s/%s where %s was expected", rel,
				              names[i], expect);
				goto out;
			}
		}
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = alerr_set(e, ALERR_IOERR, -errno, "volume.bundle_layout", "%s: %s",
			              path, strerror(errno));
			goto out;
		}
		if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > kind_max_size(want)) {
			r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
			              "bundle: %s is not a regular file of at most %" PRIu64
			              " bytes", path, kind_max_size(want));
			goto out;
		}
		r = tree_add(t, path, 0, 1, (uint64_t)st.st_size, e);
		if (r < 0)
			goto out;
	}
out:
	names_free(names, n);
	return r;
}

static int open_dir_at(int at, const char *name, const char *shown, struct alerr *e)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return alerr_set(e, errno == ENOENT ? ALERR_NOINPUT : ALERR_IOERR, -errno,
		                 "volume.bundle_layout", "%s: %s", shown, strerror(errno));
	return fd;
}

/* Section 1's tree in the deterministic order the volume is written in. */
static int tree_scan(const char *bundle_dir, struct vol_tree *t, struct alerr *e)
{
	static const char *const top[] = { "MANIFEST", "SIGNATURES", "payload" };
	int bfd = -1, afd = -1, sfd = -1, pfd = -1, r;
	char **names = NULL;
	size_t n = 0, i;
	struct stat st;

	memset(t, 0, sizeof(*t));
	bfd = open(bundle_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd < 0)
		return alerr_set(e, ALERR_NOINPUT, -errno, "volume.bundle_layout", "%s: %s",
		                 bundle_dir, strerror(errno));
	r = afd = open_dir_at(bfd, "AIRLOCK", "AIRLOCK", e);
	if (r < 0)
		goto out;
	r = list_names(afd, "AIRLOCK", &names, &n, e);
	if (r < 0)
		goto out;
	if (n != 3) {
		r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
		              "bundle: AIRLOCK/ holds %zu entries, not MANIFEST, SIGNATURES "
		              "and payload", n);
		goto out;
	}
	for (i = 0; i < 3; i++)
		if (strcmp(names[i], top[i]) != 0) {
			r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
			              "bundle: unexpected AIRLOCK/%s", names[i]);
			goto out;
		}
	r = tree_add(t, "AIRLOCK", 1, 4, 0, e);
	if (r < 0)
		goto out;
	if (fstatat(afd, "MANIFEST", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > MANIFEST_MAX_BYTES || st.st_size == 0) {
		r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
		              "bundle: AIRLOCK/MANIFEST is not a regular file of 1 to %u bytes",
		              MANIFEST_MAX_BYTES);
		goto out;
	}
	r = tree_add(t, "AIRLOCK/MANIFEST", 0, 1, (uint64_t)st.st_size, e);
	if (r < 0)
		goto out;
	r = sfd = open_dir_at(afd, "SIGNATURES", "AIRLOCK/SIGNATURES", e);
	if (r < 0)
		goto out;
	r = tree_add(t, "AIRLOCK/SIGNATURES", 1, 2, 0, e);
	if (r < 0)
		goto out;
	r = scan_files(t, sfd, "AIRLOCK/SIGNATURES", VK_SIG, 1, MANIFEST_MAX_SIGNERS, e);
	if (r < 0)
		goto out;
	r = pfd = open_dir_at(afd, "payload", "AIRLOCK/payload", e);
	if (r < 0)
		goto out;
	r = tree_add(t, "AIRLOCK/payload", 1, 2, 0, e);
	if (r < 0)
		goto out;
	r = scan_files(t, pfd, "AIRLOCK/payload", VK_CHUNK, 1, MANIFEST_MAX_FILES, e);
out:
	names_free(names, n);
	if (pfd >= 0)
		close(pfd);
	if (sfd >= 0)
		close(sfd);
	if (afd >= 0)
		close(afd);
	close(bfd);
	if (r < 0)
		tree_free(t);
	return r < 0 ? r : 0;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

/* Blocks of libarchive's layout, each term an upper bound: system area,
 * PVD, terminator, its information block; L and M path tables (4 KiB
 * units); directories (records of at most 255 bytes never span a block:
 * at least 8 a block, plus one block for continuation areas); the Rock
 * Ridge ER block; the files. */
static uint64_t tree_blocks(const struct vol_tree *t)
{
	uint64_t blocks = PVD_BLOCK + 3u, pt = 10u, dirs = 0;
	size_t i, j;

	for (i = 0; i < t->n; i++) {
		const struct vol_entry *x = &t->v[i];
		size_t plen = strlen(x->path), children = 0;

		if (!x->is_dir) {
			blocks += div_up(x->size, BLK);
			continue;
		}
		pt += 8u + 32u;
		for (j = 0; j < t->n; j++)
			if (strncmp(t->v[j].path, x->path, plen) == 0 &&
			    t->v[j].path[plen] == '/' && !strchr(t->v[j].path + plen + 1, '/'))
				children++;
		dirs += div_up(children + 2u, 8u) + 1u;
	}
	dirs += 2u;   /* the root: AIRLOCK, itself, its parent; continuation */
	blocks += 2u * 2u * div_up(pt, 2u * BLK) + dirs + 1u;
	return blocks;
}

int volume_estimate(const char *bundle_dir, uint64_t *bytes, struct alerr *e)
{
	struct vol_tree t;
	int r;

	*bytes = 0;
	r = tree_scan(bundle_dir, &t, e);
	if (r < 0)
		return r;
	*bytes = tree_blocks(&t) * BLK;
	tree_free(&t);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Output: to the medium, hashed as written; the head of the image held
 * back until the fields libarchive fills with the clock and the caller's
 * uid (the root directory, the volume dates, the information block) carry
 * Created and 0:0 instead. */

struct vol_out {
	int fd;
	struct digest *d;
	int64_t created;
	uint8_t t7[7];                  /* Created as a 9.1.5 date, UTC */
	uint64_t written;
	uint64_t vss_bytes;             /* what the PVD declares */
	unsigned char *head;
	size_t head_len, head_cap, head_need;
	int head_stage, head_done;
	volume_progress_fn progress;
	void *pctx;
	uint64_t done, total;
	struct alerr err;
	int abandoned;                  /* write nothing more */
};

static int out_progress(struct vol_out *o, uint64_t n)
{
	o->done += n;
	if (o->done > o->total)
		o->done = o->total;
	if (o->progress && o->progress(o->pctx, o->done, o->total) != 0)
		return alerr_set(&o->err, ALERR_SOFTWARE, -ECANCELED, "volume.cancelled",
		                 "volume write cancelled");
	return 0;
}

static int out_write(struct vol_out *o, const unsigned char *b, size_t len)
{
	size_t left = len;

	while (left > 0) {
		ssize_t n = write(o->fd, b, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : ENOSPC;

			return alerr_set(&o->err, ALERR_IOERR, -err, "media.write",
			                 "write at byte %" PRIu64 ": %s%s", o->written,
			                 strerror(err), err == ENOSPC ?
			                 " (the target is smaller than the volume)" : "");
		}
		digest_update(o->d, b, (size_t)n);
		o->written += (uint64_t)n;
		b += n;
		left -= (size_t)n;
	}
	return out_progress(o, len);
}

static int layout_error(struct vol_out *o, const char *what)
{
	return alerr_set(&o->err, ALERR_SOFTWARE, -EPROTO, "volume.layout",
	                 "libarchive's ISO 9660 image is not laid out as expected: %s", what);
}

/* Walk the directory records of one extent: fn on each. */
static int each_record(struct vol_out *o, unsigned char *ext, size_t len,
                       int (*fn)(struct vol_out *o, unsigned char *rec, size_t rl, void *arg),
                       void *arg)
{
	size_t off = 0;

	while (off < len) {
		size_t rl = ext[off];
		int r;

		if (rl == 0) {
			off = (off / BLK + 1) * BLK;
			continue;
		}
		if (rl < 34u || off + rl > len || off / BLK != (off + rl - 1) / BLK ||
		    33u + (size_t)ext[off + 32] > rl)
			return layout_error(o, "a directory record");
		r = fn(o, ext + off, rl, arg);
		if (r < 0)
			return r;
		off += rl;
	}
	return 0;
}

static int is_dot(const unsigned char *rec)
{
	return rec[32] == 1 && (rec[33] == 0 || rec[33] == 1);
}

/* Created and 0:0 into a record for the root: its date, and its Rock
 * Ridge PX (uid, gid) and TF (every time) entries. */
static int patch_root_record(struct vol_out *o, unsigned char *rec, size_t rl)
{
	size_t nl = rec[32], su = 33u + nl + (nl % 2u == 0u ? 1u : 0u);

	memcpy(rec + 18, o->t7, 7);
	while (su + 4u <= rl) {
		size_t l = rec[su + 2];

		if (l < 4u || su + l > rl)
			return layout_error(o, "a System Use entry of the root");
		if (memcmp(rec + su, "PX", 2) == 0) {
			if (l < 36u)
				return layout_error(o, "the root's PX entry");
			memset(rec + su + 20, 0, 16);   /* uid, gid: both byte orders */
		} else if (memcmp(rec + su, "TF", 2) == 0) {
			unsigned int flags = rec[su + 4], k, count = 0;

			if (flags & 0x80u)
				return layout_error(o, "a long-form TF entry");
			for (k = 0; k < 7; k++)
				count += (flags >> k) & 1u;
			if (l != 5u + 7u * count)
				return layout_error(o, "the root's TF entry");
			for (k = 0; k < count; k++)
				memcpy(rec + su + 5 + 7 * k, o->t7, 7);
		}
		su += l;
	}
	return 0;
}

struct root_scan {
	int children;
	uint32_t child_lba;
	int patch;
};

static int root_record(struct vol_out *o, unsigned char *rec, size_t rl, void *arg)
{
	struct root_scan *s = arg;

	if (is_dot(rec))
		return s->patch ? patch_root_record(o, rec, rl) : 0;
	if (!(rec[25] & 2u))
		return layout_error(o, "a file in the root directory");
	if (memcmp(rec + 18, o->t7, 7) != 0)
		return layout_error(o, "AIRLOCK's date is not Created in UTC");
	s->children++;
	s->child_lba = le32(rec + 2);
	return 0;
}

static int parent_record(struct vol_out *o, unsigned char *rec, size_t rl, void *arg)
{
	int *n = arg;

	/* In AIRLOCK's extent, ".." is the root. */
	if (rec[32] == 1 && rec[33] == 1) {
		(*n)++;
		return patch_root_record(o, rec, rl);
	}
	return 0;
}

static void date17(char out[17], const uint8_t t7[7])
{
	char tmp[20];

	snprintf(tmp, sizeof(tmp), "%04u%02u%02u%02u%02u%02u00", 1900u + t7[0],
	         (unsigned)t7[1] % 100u, (unsigned)t7[2] % 100u, (unsigned)t7[3] % 100u,
	         (unsigned)t7[4] % 100u, (unsigned)t7[5] % 100u);
	memcpy(out, tmp, 16);
	out[16] = (char)t7[6];
}

/* Advance through the head as far as its bytes allow; patch and release
 * it when complete. */
static int head_advance(struct vol_out *o)
{
	unsigned char *pvd = o->head + PVD_BLOCK * BLK;
	uint32_t root_lba, root_len;

	if (o->head_stage == 0) {
		uint32_t vss;

		if (memcmp(pvd, "\001CD001\001", 7) != 0 || le16(pvd + 128) != BLK ||
		    pvd[156] != 34u)
			return layout_error(o, "no primary descriptor at block 16");
		vss = le32(pvd + 80);
		o->vss_bytes = (uint64_t)vss * BLK;
		if (memcmp(o->head + (PVD_BLOCK + 1u) * BLK, "\377CD001", 6) != 0)
			return layout_error(o, "no terminator at block 17");
		if (memcmp(o->head + (PVD_BLOCK + 2u) * BLK, "INFO ", 5) != 0)
			return layout_error(o, "no information block at block 18");
		root_lba = le32(pvd + 156 + 2);
		root_len = le32(pvd + 156 + 10);
		if (root_lba < PVD_BLOCK + 3u || root_len == 0 || root_len % BLK != 0 ||
		    (uint64_t)root_lba * BLK + root_len > HEAD_MAX)
			return layout_error(o, "the root directory's extent");
		o->head_need = (size_t)root_lba * BLK + root_len;
		o->head_stage = 1;
		return 0;
	}
	root_lba = le32(pvd + 156 + 2);
	root_len = le32(pvd + 156 + 10);
	if (o->head_stage == 1) {
		struct root_scan s = { 0, 0, 0 };
		int r = each_record(o, o->head + (size_t)root_lba * BLK, root_len, root_record, &s);

		if (r < 0)
			return r;
		if (s.children != 1 || s.child_lba <= PVD_BLOCK + 2u ||
		    (uint64_t)s.child_lba * BLK + BLK > HEAD_MAX)
			return layout_error(o, "the root holds something else than AIRLOCK");
		o->head_need = (size_t)s.child_lba * BLK + BLK;
		o->head_stage = 2;
		return 0;
	}
	{
		struct root_scan s = { 0, 0, 1 };
		unsigned char *info = o->head + (PVD_BLOCK + 2u) * BLK;
		char when[32], d17[17];
		time_t t = (time_t)o->created;
		int parents = 0, r;

		r = each_record(o, o->head + (size_t)root_lba * BLK, root_len, root_record, &s);
		if (r < 0)
			return r;
		r = each_record(o, o->head + o->head_need - BLK, BLK, parent_record, &parents);
		if (r < 0)
			return r;
		if (parents != 1)
			return layout_error(o, "AIRLOCK's parent record");
		memcpy(pvd + 156 + 18, o->t7, 7);
		date17(d17, o->t7);
		memcpy(pvd + 813, d17, 17);     /* creation */
		memcpy(pvd + 830, d17, 17);     /* modification */
		memcpy(pvd + 864, d17, 17);     /* effective */
		/* "INFO " and ctime()'s 25 bytes ("Thu Nov 24 18:22:48 1986\n") */
		if (!ctime_r(&t, when) || strlen(when) != 25 || info[5 + 24] != '\n')
			return layout_error(o, "the information block's date");
		memcpy(info + 5, when, 24);
		o->head_done = 1;
		return 0;
	}
}

static la_ssize_t vol_write_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct vol_out *o = ctx;

	if (o->abandoned) {
		archive_set_error(a, ECANCELED, "volume abandoned");
		return -1;
	}
	if (alerr_failed(&o->err))
		goto fail;
	if (o->head_done) {
		if (out_write(o, buf, len) < 0)
			goto fail;
		return (la_ssize_t)len;
	}
	if (o->head_len + len > o->head_cap) {
		size_t cap = o->head_len + len;
		unsigned char *n;

		if (cap > HEAD_MAX + (size_t)WRITE_BLOCK) {
			layout_error(o, "the directories are too far from the start");
			goto fail;
		}
		n = realloc(o->head, cap);
		if (!n) {
			alerr_set(&o->err, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
			goto fail;
		}
		o->head = n;
		o->head_cap = cap;
	}
	memcpy(o->head + o->head_len, buf, len);
	o->head_len += len;
	while (!o->head_done && o->head_len >= o->head_need)
		if (head_advance(o) < 0)
			goto fail;
	if (o->head_done) {
		if (out_write(o, o->head, o->head_len) < 0)
			goto fail;
		free(o->head);
		o->head = NULL;
		o->head_len = o->head_cap = 0;
	}
	return (la_ssize_t)len;
fail:
	archive_set_error(a, -o->err.errnum, "%s", o->err.message);
	return -1;
}

/* ------------------------------------------------------------------ */
/* volume_write */

/* An environment variable set for the duration of a call. */
struct env_saved {
	const char *name;
	char *old;
	int had;
};

static int env_push(struct env_saved *s, const char *name, const char *value)
{
	const char *old = getenv(name);

	s->name = name;
	s->had = old != NULL;
	s->old = old ? strdup(old) : NULL;
	if (old && !s->old)
		return -ENOMEM;
	if (setenv(name, value, 1) < 0) {
		free(s->old);
		s->old = NULL;
		return -errno;
	}
	return 0;
}

static void env_pop(struct env_saved *s)
{
	if (!s->name)
		return;
	if (s->had)
		setenv(s->name, s->old, 1);
	else
		unsetenv(s->name);
	free(s->old);
	s->name = NULL;
}

static int vol_fail(struct archive *a, struct vol_out *o, const char *what, struct alerr *e)
{
	if (alerr_failed(&o->err))
		return alerr_set(e, o->err.cls, o->err.errnum, o->err.reason, "%s",
		                 o->err.message);
	return alerr_set(e, ALERR_SOFTWARE, -EIO, "volume.archive", "ISO 9660 writer: %s: %s",
	                 what, archive_error_string(a) ? archive_error_string(a)
	                                              : "unknown libarchive error");
}

static int set_opt(struct archive *a, struct vol_out *o, const char *key, const char *value,
                   struct alerr *e)
{
	if (archive_write_set_format_option(a, "iso9660", key, value) != ARCHIVE_OK)
		return vol_fail(a, o, key, e);
	return 0;
}

/* Copy one file of the bundle into the archive. */
static int write_file(struct archive *a, struct vol_out *o, int bfd, const struct vol_entry *x,
                      unsigned char *buf, struct alerr *e)
{
	uint64_t left = x->size;
	struct stat st;
	int fd, r = 0;

	fd = openat(bfd, x->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "volume.bundle_layout", "%s: %s",
		                 x->path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != x->size) {
		r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
		              "%s changed while the volume was written", x->path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, IO_BUFFER_SIZE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = alerr_set(e, ALERR_IOERR, -errno, "volume.bundle_layout", "%s: %s",
			              x->path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((uint64_t)n > left) {
			r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
			              "%s grew while the volume was written", x->path);
			goto out;
		}
		if (archive_write_data(a, buf, (size_t)n) != n) {
			r = vol_fail(a, o, x->path, e);
			goto out;
		}
		left -= (uint64_t)n;
		if (out_progress(o, (uint64_t)n) < 0) {
			r = vol_fail(a, o, x->path, e);
			goto out;
		}
	}
	if (left != 0)
		r = alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.bundle_layout",
		              "%s shrank while the volume was written", x->path);
out:
	close(fd);
	return r;
}

int volume_write(const char *bundle_dir, int out_fd, uint64_t sequence, int64_t created,
                 volume_progress_fn progress, void *pctx, struct volume_info *out,
                 struct alerr *e)
{
	struct env_saved tz = { 0 }, tmpdir = { 0 };
	struct archive_entry *entry = NULL;
	struct archive *a = NULL;
	unsigned char *buf = NULL;
	char label[VOLUME_ID_SIZE];
	struct vol_tree t = { 0 };
	struct vol_out o;
	time_t ct = (time_t)created;
	struct tm tm;
	int bfd = -1, r;
	size_t i;

	memset(out, 0, sizeof(*out));
	memset(&o, 0, sizeof(o));
	o.fd = out_fd;
	o.created = created;
	o.progress = progress;
	o.pctx = pctx;
	o.head_need = (PVD_BLOCK + 3u) * BLK;
	if (sequence == 0 || sequence > (uint64_t)INT64_MAX)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.archive",
		                 "sequence %" PRIu64 " is out of range", sequence);
	if (created < MANIFEST_TIME_MIN || !gmtime_r(&ct, &tm) || tm.tm_year + 1900 > ISO_YEAR_MAX)
		return alerr_set(e, ALERR_SOFTWARE, -ERANGE, "volume.archive",
		                 "created time %" PRId64 " cannot be an ISO 9660 date", created);
	o.t7[0] = (uint8_t)tm.tm_year;
	o.t7[1] = (uint8_t)(tm.tm_mon + 1);
	o.t7[2] = (uint8_t)tm.tm_mday;
	o.t7[3] = (uint8_t)tm.tm_hour;
	o.t7[4] = (uint8_t)tm.tm_min;
	o.t7[5] = (uint8_t)tm.tm_sec;
	o.t7[6] = 0;
	snprintf(label, sizeof(label), VOLUME_LABEL_PREFIX "%" PRIu64, sequence);
	if (lseek(out_fd, 0, SEEK_CUR) != 0)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.archive",
		                 "the target is not positioned at its start");

	r = tree_scan(bundle_dir, &t, e);
	if (r < 0)
		return r;
	o.total = t.file_bytes + tree_blocks(&t) * BLK;
	r = digest_new(&o.d, e);
	if (r < 0)
		goto out;
	buf = malloc(IO_BUFFER_SIZE);
	entry = archive_entry_new();
	a = archive_write_new();
	if (!buf || !entry || !a) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
		goto out;
	}
	bfd = open(bundle_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd < 0) {
		r = alerr_set(e, ALERR_NOINPUT, -errno, "volume.bundle_layout", "%s: %s",
		              bundle_dir, strerror(errno));
		goto out;
	}
	/* libarchive encodes dates in local time and spools file data in
	 * $TMPDIR (it has no option for either). */
	if (env_push(&tz, "TZ", "UTC0") < 0 || env_push(&tmpdir, "TMPDIR", bundle_dir) < 0) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "cannot set TZ, TMPDIR");
		goto out;
	}
	tzset();
	if (archive_write_set_format_iso9660(a) != ARCHIVE_OK) {
		r = vol_fail(a, &o, "iso9660", e);
		goto out;
	}
	if ((r = set_opt(a, &o, "iso-level", "3", e)) < 0 ||
	    (r = set_opt(a, &o, "rockridge", "strict", e)) < 0 ||
	    (r = set_opt(a, &o, "joliet", NULL, e)) < 0 ||
	    (r = set_opt(a, &o, "zisofs", NULL, e)) < 0 ||
	    (r = set_opt(a, &o, "boot", NULL, e)) < 0 ||
	    (r = set_opt(a, &o, "pad", NULL, e)) < 0 ||
	    (r = set_opt(a, &o, "volume-id", label, e)) < 0 ||
	    (r = set_opt(a, &o, "application-id", VOLUME_APPLICATION_ID, e)) < 0)
		goto out;
	/* Large writes to the medium; the image is whole blocks, so the last
	 * write is never padded past the volume. */
	if (archive_write_set_bytes_per_block(a, (int)WRITE_BLOCK) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, (int)BLK) != ARCHIVE_OK ||
	    archive_write_open2(a, &o, NULL, vol_write_cb, NULL, NULL) != ARCHIVE_OK) {
		r = vol_fail(a, &o, "open", e);
		goto out;
	}
	for (i = 0; i < t.n; i++) {
		const struct vol_entry *x = &t.v[i];

		archive_entry_clear(entry);
		archive_entry_set_pathname(entry, x->path);
		archive_entry_set_filetype(entry, x->is_dir ? AE_IFDIR : AE_IFREG);
		archive_entry_set_perm(entry, x->is_dir ? 0555 : 0444);
		archive_entry_set_uid(entry, 0);
		archive_entry_set_gid(entry, 0);
		archive_entry_set_nlink(entry, x->nlink);
		archive_entry_set_mtime(entry, ct, 0);
		archive_entry_set_atime(entry, ct, 0);
		archive_entry_set_ctime(entry, ct, 0);
		if (!x->is_dir)
			archive_entry_set_size(entry, (la_int64_t)x->size);
		if (archive_write_header(a, entry) != ARCHIVE_OK) {
			r = vol_fail(a, &o, x->path, e);
			goto out;
		}
		if (!x->is_dir && x->size > 0) {
			r = write_file(a, &o, bfd, x, buf, e);
			if (r < 0)
				goto out;
		}
	}
	if (archive_write_close(a) != ARCHIVE_OK) {
		r = vol_fail(a, &o, "close", e);
		goto out;
	}
	if (!o.head_done || o.written != o.vss_bytes) {
		r = alerr_set(e, ALERR_SOFTWARE, -EPROTO, "volume.layout",
		              "wrote %" PRIu64 " bytes for a volume of %" PRIu64, o.written,
		              o.vss_bytes);
		goto out;
	}
	out->bytes = o.written;
	digest_final(o.d, out->sha256);
	if (progress && o.done < o.total)
		progress(pctx, o.total, o.total);
	r = 0;
out:
	if (a) {
		/* Nothing more reaches the medium; closing (not
		 * archive_write_fail) lets libarchive 3.6 free its buffers. */
		if (r < 0) {
			o.abandoned = 1;
			archive_write_close(a);
		}
		archive_write_free(a);
	}
	env_pop(&tmpdir);
	env_pop(&tz);
	tzset();
	archive_entry_free(entry);
	if (bfd >= 0)
		close(bfd);
	free(o.head);
	free(buf);
	digest_free(o.d);
	tree_free(&t);
	return r;
}

/* ------------------------------------------------------------------ */
/* Read back */

int volume_readback(int fd, const struct volume_info *expected,
                    volume_progress_fn progress, void *pctx, struct alerr *e)
{
	uint8_t sum[DIGEST_SHA256_LEN];
	char want[DIGEST_SHA256_HEX_LEN + 1], got[DIGEST_SHA256_HEX_LEN + 1];
	struct digest *d = NULL;
	void *buf = NULL;
	uint64_t off = 0;
	struct stat st;
	int r;

	if (fsync(fd) < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "media.flush", "fsync: %s",
		                 strerror(errno));
	if (fstat(fd, &st) < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "media.flush", "fstat: %s",
		                 strerror(errno));
	/* Drop the buffers so the bytes come from the medium. */
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKFLSBUF, 0) < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "media.flush", "BLKFLSBUF: %s",
		                 strerror(errno));
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	r = digest_new(&d, e);
	if (r < 0)
		return r;
	if (posix_memalign(&buf, 4096, IO_BUFFER_SIZE) != 0) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
		goto out;
	}
	while (off < expected->bytes) {
		size_t want_n = IO_BUFFER_SIZE;
		ssize_t n;

		if (expected->bytes - off < want_n)
			want_n = (size_t)(expected->bytes - off);
		n = pread(fd, buf, want_n, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = alerr_set(e, ALERR_IOERR, -errno, "media.read",
			              "read back at byte %" PRIu64 ": %s", off, strerror(errno));
			goto out;
		}
		if (n == 0) {
			r = alerr_set(e, ALERR_IOERR, -EIO, "volume.readback_mismatch",
			              "read back only %" PRIu64 " of %" PRIu64 " bytes", off,
			              expected->bytes);
			goto out;
		}
		digest_update(d, buf, (size_t)n);
		off += (uint64_t)n;
		if (progress && progress(pctx, off, expected->bytes) != 0) {
			r = alerr_set(e, ALERR_SOFTWARE, -ECANCELED, "volume.cancelled",
			              "read-back cancelled");
			goto out;
		}
	}
	digest_final(d, sum);
	if (!digest_equal(sum, expected->sha256)) {
		digest_hex(want, expected->sha256);
		digest_hex(got, sum);
		r = alerr_set(e, ALERR_IOERR, -EIO, "volume.readback_mismatch",
		              "the %" PRIu64 " bytes read back hash to %.16s..., "
		              "not %.16s... as written", expected->bytes, got, want);
		goto out;
	}
	r = 0;
out:
	free(buf);
	digest_free(d);
	return r;
}

/* ------------------------------------------------------------------ */
/* Probe */

int volume_probe_buffer(const void *buf, size_t len, uint64_t *volume_bytes,
                        char volume_id[VOLUME_ID_SIZE], struct alerr *e)
{
	const unsigned char *b = buf, *pvd;
	uint32_t vss;
	size_t i, n;

	*volume_bytes = 0;
	volume_id[0] = '\0';
	if (len < (PVD_BLOCK + 1u) * BLK)
		return alerr_set(e, ALERR_NOINPUT, -ENODATA, "volume.not_iso",
		                 "%zu bytes: too short for an ISO 9660 volume", len);
	pvd = b + PVD_BLOCK * BLK;
	if (pvd[0] != 1 || memcmp(pvd + 1, "CD001", 5) != 0 || pvd[6] != 1)
		return alerr_set(e, ALERR_NOINPUT, -ENODATA, "volume.not_iso",
		                 "no ISO 9660 primary volume descriptor at block 16");
	if (le16(pvd + 128) != be16(pvd + 130) || le32(pvd + 80) != be32(pvd + 84))
		return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
		                 "primary volume descriptor: both-endian fields disagree");
	if (le16(pvd + 128) != BLK)
		return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
		                 "logical block size %u, not %u", le16(pvd + 128), BLK);
	vss = le32(pvd + 80);
	if (vss < PVD_BLOCK + 3u)
		return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
		                 "volume space size of %" PRIu32 " blocks", vss);
	for (n = 32; n > 0 && pvd[40 + n - 1] == ' '; n--)
		;
	for (i = 0; i < n; i++)
		if (pvd[40 + i] < 0x20 || pvd[40 + i] > 0x7e)
			return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
			                 "volume identifier byte %zu is 0x%02x", i, pvd[40 + i]);
	/* Only the terminator may follow: no boot record, no Joliet. */
	for (i = 1; ; i++) {
		const unsigned char *vd = b + (PVD_BLOCK + i) * BLK;

		if (i > VOLUME_MAX_DESCRIPTORS || (PVD_BLOCK + i + 1u) * BLK > len)
			return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
			                 "no volume descriptor set terminator in blocks 17-%zu",
			                 PVD_BLOCK + i - 1u);
		if (memcmp(vd + 1, "CD001", 5) != 0)
			return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
			                 "block %zu is not a volume descriptor", PVD_BLOCK + i);
		if (vd[0] == 255)
			break;
		return alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed",
		                 "volume descriptor of type %u in block %zu (%s)", vd[0],
		                 PVD_BLOCK + i, vd[0] == 2 ? "Joliet or supplementary" :
		                 vd[0] == 0 ? "boot record" : "not allowed");
	}
	memcpy(volume_id, pvd + 40, n);
	volume_id[n] = '\0';
	*volume_bytes = (uint64_t)vss * BLK;
	return 0;
}

int volume_probe(int fd, uint64_t *volume_bytes, char volume_id[VOLUME_ID_SIZE],
                 struct alerr *e)
{
	unsigned char *buf;
	uint64_t media;
	size_t got = 0;
	struct stat st;
	int r;

	*volume_bytes = 0;
	volume_id[0] = '\0';
	if (fstat(fd, &st) < 0)
		return alerr_set(e, ALERR_IOERR, -errno, "media.read", "fstat: %s",
		                 strerror(errno));
	if (S_ISREG(st.st_mode)) {
		media = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &media) < 0)
			return alerr_set(e, ALERR_IOERR, -errno, "media.read", "BLKGETSIZE64: %s",
			                 strerror(errno));
	} else {
		return alerr_set(e, ALERR_NOINPUT, -EINVAL, "volume.not_iso",
		                 "neither a regular file nor a block device");
	}
	buf = malloc(VOLUME_PROBE_BYTES);
	if (!buf)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
	while (got < VOLUME_PROBE_BYTES) {
		ssize_t n = pread(fd, buf + got, VOLUME_PROBE_BYTES - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = alerr_set(e, ALERR_IOERR, -errno, "media.read", "read: %s",
			              strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	r = volume_probe_buffer(buf, got, volume_bytes, volume_id, e);
	if (r == 0 && *volume_bytes > media) {
		r = alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.truncated",
		              "the volume declares %" PRIu64 " bytes, the medium holds %" PRIu64,
		              *volume_bytes, media);
		*volume_bytes = 0;
		volume_id[0] = '\0';
	}
out:
	free(buf);
	return r;
}

/* ------------------------------------------------------------------ */
/* The importer's reader */

struct vol_reader {
	struct archive *a;
	int fd;
	struct volume_limits lim;
	uint64_t entries, total;
	char **seen;                   /* sorted paths */
	size_t n_seen, cap_seen;
	char path[VOLUME_PATH_MAX + 16];
	int is_dir, is_root;
	uint64_t size, remaining;
	int failed;
	struct alerr ferr;
};

static int rd_fail(struct vol_reader *r, struct alerr *e, enum alerr_class cls,
                   const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int rd_fail(struct vol_reader *r, struct alerr *e, enum alerr_class cls,
                   const char *reason, const char *fmt, ...)
{
	va_list ap;

	if (!r->failed) {
		r->failed = 1;
		va_start(ap, fmt);
		alerr_vset(&r->ferr, cls, cls == ALERR_OSERR ? -ENOMEM : -EBADMSG, reason, fmt, ap);
		va_end(ap);
	}
	return alerr_set(e, r->ferr.cls, r->ferr.errnum, r->ferr.reason, "%s", r->ferr.message);
}

static void rd_free(struct vol_reader *r)
{
	size_t i;

	if (!r)
		return;
	if (r->a)
		archive_read_free(r->a);
	if (r->fd >= 0)
		close(r->fd);
	for (i = 0; i < r->n_seen; i++)
		free(r->seen[i]);
	free(r->seen);
	free(r);
}

static const char *rd_msg(struct archive *a)
{
	const char *s = archive_error_string(a);

	return s ? s : "unknown libarchive error";
}

static int rd_open(struct vol_reader **out, const char *image_path,
                   const struct volume_limits *lim, struct alerr *e)
{
	char id[VOLUME_ID_SIZE];
	struct vol_reader *r;
	uint64_t bytes;
	struct stat st;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
	r->lim = *lim;
	r->fd = open(image_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (r->fd < 0) {
		rc = alerr_set(e, ALERR_NOINPUT, -errno, "volume.not_iso", "%s: %s", image_path,
		               strerror(errno));
		goto fail;
	}
	if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = alerr_set(e, ALERR_NOINPUT, -EINVAL, "volume.not_iso",
		               "%s: not a regular file", image_path);
		goto fail;
	}
	rc = volume_probe(r->fd, &bytes, id, e);
	if (rc < 0)
		goto fail;
	r->a = archive_read_new();
	if (!r->a) {
		rc = alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
		goto fail;
	}
	/* The ISO 9660 reader alone, Rock Ridge names only. */
	if (archive_read_support_format_iso9660(r->a) != ARCHIVE_OK ||
	    archive_read_set_format_option(r->a, "iso9660", "joliet", NULL) != ARCHIVE_OK ||
	    archive_read_set_format_option(r->a, "iso9660", "rockridge", "1") != ARCHIVE_OK) {
		rc = alerr_set(e, ALERR_SOFTWARE, -ENOTSUP, "volume.archive", "ISO 9660 reader: %s",
		               rd_msg(r->a));
		goto fail;
	}
	if (archive_read_open_fd(r->a, r->fd, READ_BLOCK) != ARCHIVE_OK) {
		rc = alerr_set(e, ALERR_REJECT, -EBADMSG, "volume.malformed", "%s: %s",
		               image_path, rd_msg(r->a));
		goto fail;
	}
	*out = r;
	return 0;
fail:
	rd_free(r);
	return rc;
}

/* Remember path; 1 when it was already seen. */
static int rd_seen(struct vol_reader *r, const char *path)
{
	size_t lo = 0, hi = r->n_seen;
	char *k;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(path, r->seen[mid]);

		if (c == 0)
			return 1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (r->n_seen == r->cap_seen) {
		size_t cap = r->cap_seen ? r->cap_seen * 2 : 64;
		char **n = realloc(r->seen, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		r->seen = n;
		r->cap_seen = cap;
	}
	k = strdup(path);
	if (!k)
		return -ENOMEM;
	memmove(r->seen + lo + 1, r->seen + lo, (r->n_seen - lo) * sizeof(*r->seen));
	r->seen[lo] = k;
	r->n_seen++;
	return 0;
}

/* The next entry, checked: 1, 0 at the end, or a negative errno. */
static int rd_next(struct vol_reader *r, struct alerr *e)
{
	char shown[80];
	struct archive_entry *entry;
	const char *p;
	enum vol_kind k;
	mode_t type;
	size_t len;
	la_int64_t sz;
	int rc;

	if (r->failed)
		return alerr_set(e, r->ferr.cls, r->ferr.errnum, r->ferr.reason, "%s",
		                 r->ferr.message);
	r->remaining = 0;       /* the previous entry's data is left behind */
	rc = archive_read_next_header(r->a, &entry);
	if (rc == ARCHIVE_EOF)
		return 0;
	if (rc != ARCHIVE_OK)   /* warnings too */
		return rd_fail(r, e, ALERR_REJECT, "volume.malformed", "ISO 9660 entry %" PRIu64
		               ": %s", r->entries + 1, rd_msg(r->a));
	if (archive_format(r->a) != ARCHIVE_FORMAT_ISO9660_ROCKRIDGE)
		return rd_fail(r, e, ALERR_REJECT, "volume.malformed",
		               "the volume has no Rock Ridge names");
	if (++r->entries > r->lim.max_entries || r->entries > VOLUME_MAX_ENTRIES)
		return rd_fail(r, e, ALERR_REJECT, "volume.too_many_entries",
		               "more than %" PRIu64 " entries on the volume",
		               r->lim.max_entries < VOLUME_MAX_ENTRIES ?
		               r->lim.max_entries : (uint64_t)VOLUME_MAX_ENTRIES);
	p = archive_entry_pathname(entry);
	if (!p)
		return rd_fail(r, e, ALERR_REJECT, "volume.entry_name",
		               "entry %" PRIu64 " has no usable name", r->entries);
	len = strlen(p);
	log_sanitize(shown, sizeof(shown), p, len);
	if (len > r->lim.max_path || len >= sizeof(r->path))
		return rd_fail(r, e, ALERR_REJECT, "volume.entry_name",
		               "a path of %zu bytes (%s...)", len, shown);
	memcpy(r->path, p, len + 1);
	if (len > 0 && r->path[len - 1] == '/')
		r->path[--len] = '\0';
	k = vol_kind(r->path);
	if (k == VK_NONE)
		return rd_fail(r, e, ALERR_REJECT, "volume.entry_name",
		               "an entry section 2 does not allow: %s", shown);
	type = archive_entry_filetype(entry);
	if (archive_entry_hardlink(entry) || archive_entry_symlink(entry) ||
	    (type != AE_IFDIR && type != AE_IFREG) || (type == AE_IFDIR) != kind_is_dir(k))
		return rd_fail(r, e, ALERR_REJECT, "volume.entry_type",
		               "%s: a link or special file where a %s belongs", shown,
		               kind_is_dir(k) ? "directory" : "regular file");
	sz = archive_entry_size(entry);
	if (sz < 0 || (!kind_is_dir(k) && (uint64_t)sz > kind_max_size(k)))
		/* the bundle format's own name for an oversized MANIFEST */
		return rd_fail(r, e, ALERR_REJECT, k == VK_MANIFEST ? "manifest.too_large" :
		               "volume.too_large",
		               "%s: %" PRId64 " bytes, over its cap of %" PRIu64, shown,
		               (int64_t)sz, kind_max_size(k));
	if (kind_is_dir(k))
		sz = 0;
	if (r->total > r->lim.max_total || (uint64_t)sz > r->lim.max_total - r->total)
		return rd_fail(r, e, ALERR_REJECT, "volume.too_large",
		               "the files exceed %" PRIu64 " bytes at %s", r->lim.max_total, shown);
	rc = rd_seen(r, r->path);
	if (rc < 0)
		return rd_fail(r, e, ALERR_OSERR, "volume.memory", "out of memory");
	if (rc == 1)
		return rd_fail(r, e, ALERR_REJECT, "volume.duplicate", "%s appears twice", shown);
	r->total += (uint64_t)sz;
	r->is_root = k == VK_ROOT;
	r->is_dir = kind_is_dir(k);
	r->size = (uint64_t)sz;
	r->remaining = (uint64_t)sz;
	return 1;
}

int volume_list(const char *image_path, const struct volume_limits *lim,
                volume_entry_fn entry_cb, void *ctx, struct alerr *e)
{
	struct vol_reader *r = NULL;
	int rc;

	rc = rd_open(&r, image_path, lim, e);
	if (rc < 0)
		return rc;
	while ((rc = rd_next(r, e)) == 1) {
		if (r->is_root)
			continue;
		rc = entry_cb(ctx, r->path, r->is_dir, r->size, e);
		if (rc != 0)
			break;
	}
	rd_free(r);
	return rc;
}

struct volume_file {
	struct vol_reader *r;
};

int volume_file_open(struct volume_file **out, const char *image_path, const char *path,
                     const struct volume_limits *lim, uint64_t *size, struct alerr *e)
{
	struct volume_file *f;
	int rc;

	*out = NULL;
	*size = 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
	rc = rd_open(&f->r, image_path, lim, e);
	if (rc < 0)
		goto fail;
	while ((rc = rd_next(f->r, e)) == 1)
		if (!f->r->is_dir && strcmp(f->r->path, path) == 0)
			break;
	if (rc == 0)
		rc = alerr_set(e, ALERR_REJECT, -ENOENT, "bundle.file_missing",
		               "%s is not on the volume", path);
	if (rc < 0)
		goto fail;
	*size = f->r->size;
	*out = f;
	return 0;
fail:
	volume_file_close(f);
	return rc;
}

/* Up to len bytes of the current file's data. */
static ssize_t rd_read(struct vol_reader *r, void *buf, size_t len, struct alerr *e)
{
	la_ssize_t n;

	if (r->failed)
		return alerr_set(e, r->ferr.cls, r->ferr.errnum, r->ferr.reason, "%s",
		                 r->ferr.message);
	if (r->remaining == 0 || len == 0)
		return 0;
	if (len > r->remaining)
		len = (size_t)r->remaining;
	n = archive_read_data(r->a, buf, len);
	if (n < 0)
		return rd_fail(r, e, ALERR_REJECT, "volume.malformed", "%s: %s", r->path,
		               rd_msg(r->a));
	if (n == 0 || (uint64_t)n > r->remaining)
		return rd_fail(r, e, ALERR_REJECT, "volume.malformed",
		               "%s: data does not match its size", r->path);
	r->remaining -= (uint64_t)n;
	return (ssize_t)n;
}

ssize_t volume_file_read(void *ctx, void *buf, size_t len, struct alerr *e)
{
	struct volume_file *f = ctx;

	return rd_read(f->r, buf, len, e);
}

void volume_file_close(struct volume_file *f)
{
	if (!f)
		return;
	rd_free(f->r);
	free(f);
}

struct volume_walk {
	struct vol_reader *r;
};

int volume_walk_open(struct volume_walk **out, const char *image_path,
                     const struct volume_limits *lim, struct alerr *e)
{
	struct volume_walk *w;
	int rc;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
	rc = rd_open(&w->r, image_path, lim, e);
	if (rc < 0) {
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int volume_walk_next(struct volume_walk *w, const char **path, int *is_dir, uint64_t *size,
                     struct alerr *e)
{
	int rc;

	*path = NULL;
	*is_dir = 0;
	*size = 0;
	while ((rc = rd_next(w->r, e)) == 1 && w->r->is_root)
		;
	if (rc != 1)
		return rc;
	*path = w->r->path;
	*is_dir = w->r->is_dir;
	*size = w->r->size;
	return 1;
}

ssize_t volume_walk_read(void *ctx, void *buf, size_t len, struct alerr *e)
{
	struct volume_walk *w = ctx;

	return rd_read(w->r, buf, len, e);
}

void volume_walk_close(struct volume_walk *w)
{
	if (!w)
		return;
	rd_free(w->r);
	free(w);
}

/* The chunks through one reader: the writer lays them out in order, and
 * the reader meets files in the order of their place on the volume, so
 * each chunk is the next file. A chunk the reader has already passed
 * (another layout) is looked for again from the start. */
struct volume_chunks {
	char *image;
	struct volume_limits lim;
	uint64_t n_chunks, next;
	struct vol_reader *r;
	int in_chunk;                  /* r is inside chunk next - 1 */
};

int volume_chunks_open(struct volume_chunks **out, const char *image_path, uint64_t n_chunks,
                       const struct volume_limits *lim, struct alerr *e)
{
	struct volume_chunks *c;

	*out = NULL;
	if (n_chunks == 0 || n_chunks > MANIFEST_MAX_FILES)
		return alerr_set(e, ALERR_SOFTWARE, -EINVAL, "volume.archive",
		                 "%" PRIu64 " chunks: not a payload", n_chunks);
	c = calloc(1, sizeof(*c));
	if (!c || !(c->image = strdup(image_path))) {
		free(c);
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "volume.memory", "out of memory");
	}
	c->lim = *lim;
	c->n_chunks = n_chunks;
	*out = c;
	return 0;
}

/* Move c->r onto the file at path: onward from where it is, then once
 * more from the start. */
static int chunks_find(struct volume_chunks *c, const char *path, struct alerr *e)
{
	int fresh = 0, rc;

	for (;;) {
		if (!c->r) {
			rc = rd_open(&c->r, c->image, &c->lim, e);
			if (rc < 0)
				return rc;
			fresh = 1;
		}
		while ((rc = rd_next(c->r, e)) == 1)
			if (!c->r->is_dir && strcmp(c->r->path, path) == 0)
				return 0;
		if (rc < 0)
			return rc;
		rd_free(c->r);
		c->r = NULL;
		if (fresh)
			return alerr_set(e, ALERR_REJECT, -ENOENT, "bundle.file_missing",
			                 "%s is not on the volume", path);
	}
}

ssize_t volume_chunks_read(void *ctx, void *buf, size_t len, struct alerr *e)
{
	struct volume_chunks *c = ctx;

	for (;;) {
		char path[64];
		ssize_t n;
		int r;

		if (!c->in_chunk) {
			if (c->next == c->n_chunks)
				return 0;
			snprintf(path, sizeof(path), "AIRLOCK/payload/%06" PRIu64 ".chunk", c->next);
			r = chunks_find(c, path, e);
			if (r < 0)
				return r;
			c->in_chunk = 1;
			c->next++;
		}
		n = rd_read(c->r, buf, len, e);
		if (n != 0)
			return n;
		c->in_chunk = 0;
	}
}

void volume_chunks_close(struct volume_chunks *c)
{
	if (!c)
		return;
	rd_free(c->r);
	free(c->image);
	free(c);
}
