/* The unattended station: --spool (a drop point of bundle images) and
 * --watch (udev insertions on hosts without systemd). Each image or
 * device goes through one whole import_run, one at a time. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sysexits.h>
#include <unistd.h>

/* libudev is otherwise wrapped by media.c (device facts, checks, probes);
 * media.c has no event API, so the monitor lives here, and no libudev
 * type leaves this file. */
#include <libudev.h>

#include "bounds.h"
#include "log.h"
#include "media.h"
#include "station.h"

/* The property 60-airlock.rules sets on the events that start an import,
 * and the tag the monitor filters on. */
#define STATION_TAG       "airlock"
#define STATION_PROP      "AIRLOCK_IMPORT"
#define STATION_DONE      "done"
#define STATION_REJECTED  "rejected"
/* done/NAME taken: NAME.1 ... NAME.<this> are tried. */
#define STATION_RENAME_TRIES 100

_Static_assert(STATION_QUEUE_MAX > 0 && STATION_SEEN_MAX > 0, "station: empty tables");

int station_spool_name_ok(const char *name)
{
	size_t n;

	if (!name || name[0] == '.' || strstr(name, ".partial"))
		return 0;
	n = strnlen(name, NAME_MAX + 1);
	if (n <= 4 || n > NAME_MAX)
		return 0;
	return strcmp(name + n - 4, ".iso") == 0;
}

static int exit_rank(int code)
{
	switch (code) {
	case EX_OK:          return 0;
	case EX_NOINPUT:     return 1;
	case EX_DATAERR:     return 2;
	case EX_TEMPFAIL:    return 3;
	case EX_UNAVAILABLE: return 4;
	case EX_CANTCREAT:   return 5;
	case EX_IOERR:       return 6;
	case EX_OSERR:       return 7;
	case EX_SOFTWARE:    return 8;
	case EX_CONFIG:      return 9;
	case EX_USAGE:       return 10;
	}
	return 8;
}

int station_worse_exit(int a, int b)
{
	return exit_rank(b) > exit_rank(a) ? b : a;
}

/* One line per import for the journal: what happened to which source. */
static void log_outcome(const char *what, const struct import_result *res, int r,
                        const struct alerr *e)
{
	if (r == 0) {
		log_notice("%s: bundle %s, channel %s, sequence %" PRIu64 " %s "
		           "(custody entry %" PRIu64 ")", what, res->bundle_id, res->channel,
		           res->sequence, import_outcome_name(res->outcome), res->custody_seq);
		return;
	}
	if (res->outcome == IMPORT_IGNORED) {
		log_notice("%s: not an airlock volume, left alone (exit %d)", what,
		           alerr_exit_code(e->cls));
		return;
	}
	log_warn("%s: %s: %s [%s] (exit %d)%s%s", what, import_outcome_name(res->outcome),
	         e->message, e->reason, alerr_exit_code(e->cls),
	         res->kept[0] ? "; copy kept in " : "", res->kept);
}

/* A failure of the custody log ends the station: every later import
 * would go unrecorded. */
static int custody_failed(const struct alerr *e)
{
	return strncmp(e->reason, "custody.", 8) == 0;
}

/* --- spool ------------------------------------------------------------ */

struct spool_item {
	char name[NAME_MAX + 1];
	int airlock;                /* media_identify found an airlock volume */
	uint64_t sequence;
};

static int spool_cmp(const void *pa, const void *pb)
{
	const struct spool_item *a = pa, *b = pb;

	if (a->airlock != b->airlock)
		return a->airlock ? -1 : 1;
	if (a->airlock && a->sequence != b->sequence)
		return a->sequence < b->sequence ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int spool_path(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Rename dfd/name into dfd/sub/, never over an earlier file. */
static int spool_move(int dfd, const char *name, const char *sub, char *dest, size_t size)
{
	char to[PATH_MAX];
	unsigned int i;

	if (mkdirat(dfd, sub, 0700) < 0 && errno != EEXIST)
		return -errno;
	for (i = 0; i <= STATION_RENAME_TRIES; i++) {
		int n = i == 0 ? snprintf(to, sizeof(to), "%s/%s", sub, name) :
		        snprintf(to, sizeof(to), "%s/%s.%u", sub, name, i);

		if (n < 0 || (size_t)n >= sizeof(to))
			return -ENAMETOOLONG;
		if (renameat2(dfd, name, dfd, to, RENAME_NOREPLACE) == 0) {
			snprintf(dest, size, "%s", to);
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static int spool_scan(const char *dir, int dfd, struct spool_item **out, size_t *n_out,
                      int *worst, struct alerr *e)
{
	struct spool_item *items = NULL;
	char path[PATH_MAX], shown[NAME_MAX + 1];
	struct dirent *de;
	size_t n = 0, skipped = 0;
	DIR *d;
	int fd2;

	fd2 = dup(dfd);
	if (fd2 < 0)
		return alerr_set(e, ALERR_OSERR, -errno, "station.spool", "spool %s: %s", dir,
		                 strerror(errno));
	d = fdopendir(fd2);
	if (!d) {
		close(fd2);
		return alerr_set(e, ALERR_OSERR, -errno, "station.spool", "spool %s: %s", dir,
		                 strerror(errno));
	}
	items = calloc(STATION_SPOOL_MAX, sizeof(*items));
	if (!items) {
		closedir(d);
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "station.memory", "spool: out of memory");
	}
	errno = 0;
	while ((de = readdir(d))) {
		struct media_probe probe;
		struct alerr pe;
		struct stat st;

		if (!station_spool_name_ok(de->d_name))
			continue;
		log_sanitize(shown, sizeof(shown), de->d_name, strlen(de->d_name));
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
			log_warn("spool %s: %s is not a regular file: not taken", dir, shown);
			continue;
		}
		if (n == STATION_SPOOL_MAX) {
			skipped++;
			continue;
		}
		if (spool_path(path, sizeof(path), dir, de->d_name) < 0)
			continue;
		alerr_clear(&pe);
		memset(&probe, 0, sizeof(probe));
		if (media_identify(path, &probe, &pe) == 0) {
			items[n].airlock = 1;
			items[n].sequence = probe.sequence;
		} else if (!(pe.cls == ALERR_NOINPUT && strcmp(pe.reason, "media.not_airlock") == 0)) {
			log_warn("spool %s: %s: %s [%s]: left for the next run", dir, shown,
			         pe.message, pe.reason);
			*worst = station_worse_exit(*worst, alerr_exit_code(pe.cls));
			continue;
		}
		memcpy(items[n].name, de->d_name, strlen(de->d_name) + 1);
		n++;
	}
	closedir(d);
	if (skipped)
		log_notice("spool %s: %zu more image(s) wait for the next run", dir, skipped);
	qsort(items, n, sizeof(*items), spool_cmp);
	*out = items;
	*n_out = n;
	return 0;
}

int station_spool(const char *dir, const struct import_options *base, int *exit_code,
                  struct alerr *e)
{
	struct spool_item *items = NULL;
	struct import_options o;
	size_t n = 0, i, done = 0, rejected = 0, left = 0;
	int dfd, r, worst = EX_OK;

	*exit_code = EX_OK;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return alerr_set(e, errno == ENOENT ? ALERR_NOINPUT : ALERR_CONFIG, -errno,
		                 "station.spool", "spool directory %s: %s", dir, strerror(errno));
	r = spool_scan(dir, dfd, &items, &n, &worst, e);
	if (r < 0)
		goto out;
	if (n == 0)
		log_info("spool %s: no complete image", dir);

	for (i = 0; i < n; i++) {
		struct import_result res;
		char path[PATH_MAX], dest[PATH_MAX], what[PATH_MAX + 16];
		const char *sub;
		struct alerr ie;
		int code, m;

		if (import_interrupted) {
			left += n - i;
			log_notice("spool %s: stopped by signal %d: %zu image(s) left for the "
			           "next run", dir, (int)import_interrupted, n - i);
			break;
		}
		if (spool_path(path, sizeof(path), dir, items[i].name) < 0)
			continue;
		log_sanitize(what, sizeof(what), path, strlen(path));
		o = *base;
		o.device = NULL;
		o.image = path;
		alerr_clear(&ie);
		r = import_run(&o, &res, &ie);
		code = r < 0 ? alerr_exit_code(ie.cls) : EX_OK;
		log_outcome(what, &res, r, &ie);
		worst = station_worse_exit(worst, code);
		if (r < 0 && custody_failed(&ie)) {
			left += n - i;
			log_err("spool %s: the custody log cannot be written: stopping", dir);
			break;
		}
		if (code == EX_OK)
			sub = STATION_DONE;
		else if (code == EX_DATAERR || code == EX_NOINPUT)
			sub = STATION_REJECTED;
		else {
			/* The station's trouble, not the image's: keep it, and
			 * import nothing later in the sequence before it. */
			left += n - i;
			log_notice("spool %s: %s stays for the next run (exit %d); %zu later "
			           "image(s) wait behind it", dir, what, code, n - i - 1);
			break;
		}
		m = spool_move(dfd, items[i].name, sub, dest, sizeof(dest));
		if (m < 0) {
			log_err("spool %s: cannot move %s into %s/: %s", dir, what, sub,
			        strerror(-m));
			worst = station_worse_exit(worst, EX_CANTCREAT);
			continue;
		}
		if (code == EX_OK)
			done++;
		else
			rejected++;
		log_info("spool %s: %s moved to %s", dir, what, dest);
	}
	if (n)
		log_notice("spool %s: %zu imported, %zu rejected, %zu left for the next run "
		           "(exit %d)", dir, done, rejected, left, worst);
	*exit_code = worst;
	r = 0;
out:
	free(items);
	close(dfd);
	return r;
}

/* --- watch ------------------------------------------------------------ */

struct station_dev {
	char devnode[256];
	dev_t devnum;
	char key[64];               /* diskseq, or udev's initialisation time */
};

struct watch {
	struct udev *udev;
	struct udev_monitor *mon;
	struct station_dev queue[STATION_QUEUE_MAX];
	size_t n_queue;
	struct station_dev seen[STATION_SEEN_MAX];
	size_t n_seen, next_seen;
	const struct import_options *base;
	int fatal;                  /* exit code that stops the station */
};

static int same_insertion(const struct station_dev *a, const struct station_dev *b)
{
	return a->devnum == b->devnum && strcmp(a->key, b->key) == 0;
}

static void watch_forget(struct watch *w, dev_t devnum, const char *why)
{
	size_t i = 0;

	while (i < w->n_queue) {
		if (w->queue[i].devnum != devnum) {
			i++;
			continue;
		}
		log_notice("%s %s: not imported", w->queue[i].devnode, why);
		memmove(&w->queue[i], &w->queue[i + 1], (w->n_queue - i - 1) * sizeof(w->queue[0]));
		w->n_queue--;
	}
}

static void watch_event(struct watch *w, struct udev_device *d)
{
	const char *action = udev_device_get_action(d);
	const char *node = udev_device_get_devnode(d);
	const char *mark = udev_device_get_property_value(d, STATION_PROP);
	const char *seq = udev_device_get_property_value(d, "DISKSEQ");
	const char *init = udev_device_get_property_value(d, "USEC_INITIALIZED");
	struct station_dev sd;
	size_t i;

	if (!action || !node)
		return;
	memset(&sd, 0, sizeof(sd));
	sd.devnum = udev_device_get_devnum(d);
	if (strcmp(action, "remove") == 0) {
		watch_forget(w, sd.devnum, "was removed before its import");
		return;
	}
	if (!mark || strcmp(mark, "1") != 0)
		return;
	log_sanitize(sd.devnode, sizeof(sd.devnode), node, strlen(node));
	if (seq && *seq)
		snprintf(sd.key, sizeof(sd.key), "diskseq:%.40s", seq);
	else
		snprintf(sd.key, sizeof(sd.key), "init:%.40s", init ? init : "");
	for (i = 0; i < w->n_queue; i++)
		if (same_insertion(&w->queue[i], &sd))
			return;
	for (i = 0; i < w->n_seen; i++)
		if (same_insertion(&w->seen[i], &sd)) {
			log_dbg("%s: %s event for an insertion already handled", sd.devnode, action);
			return;
		}
	/* Another insertion on the same device number replaces a waiting
	 * one: the earlier medium is gone. */
	watch_forget(w, sd.devnum, "was replaced before its import");
	if (w->n_queue == STATION_QUEUE_MAX) {
		log_warn("%s inserted but %u devices already wait: not imported, plug it again later",
		         sd.devnode, STATION_QUEUE_MAX);
		return;
	}
	w->queue[w->n_queue++] = sd;
	log_notice("%s inserted: queued for import (%zu waiting)", sd.devnode, w->n_queue);
}

/* Read every event that is waiting (the socket is non-blocking). */
static void watch_drain(struct watch *w)
{
	struct udev_device *d;

	while ((d = udev_monitor_receive_device(w->mon))) {
		watch_event(w, d);
		udev_device_unref(d);
	}
}

static void watch_import(struct watch *w, const sigset_t *run_mask, const sigset_t *idle_mask)
{
	struct station_dev sd = w->queue[0];
	struct import_result res;
	struct import_options o;
	struct alerr ie;
	int r;

	memmove(&w->queue[0], &w->queue[1], (w->n_queue - 1) * sizeof(w->queue[0]));
	w->n_queue--;
	w->seen[w->next_seen] = sd;
	w->next_seen = (w->next_seen + 1) % STATION_SEEN_MAX;
	if (w->n_seen < STATION_SEEN_MAX)
		w->n_seen++;

	o = *w->base;
	o.image = NULL;
	o.device = sd.devnode;
	o.progress = 0;
	alerr_clear(&ie);
	log_notice("%s: import started", sd.devnode);
	/* Signals arrive during the import: import_run stops at its next
	 * check point, or completes once past the swap. */
	sigprocmask(SIG_SETMASK, run_mask, NULL);
	r = import_run(&o, &res, &ie);
	sigprocmask(SIG_SETMASK, idle_mask, NULL);
	log_outcome(sd.devnode, &res, r, &ie);
	if (r < 0 && custody_failed(&ie)) {
		log_err("the custody log cannot be written: the station stops");
		w->fatal = alerr_exit_code(ie.cls);
	}
}

int station_watch(const struct import_options *base, int *exit_code, struct alerr *e)
{
	sigset_t block, orig;
	struct watch *w;
	struct pollfd pfd;
	int r = 0;

	*exit_code = EX_OK;
	w = calloc(1, sizeof(*w));
	if (!w)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "station.memory", "watch: out of memory");
	w->base = base;
	w->udev = udev_new();
	if (!w->udev) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "station.udev", "watch: cannot use libudev");
		goto out;
	}
	w->mon = udev_monitor_new_from_netlink(w->udev, "udev");
	if (!w->mon) {
		r = alerr_set(e, ALERR_OSERR, -EIO, "station.udev",
		              "watch: cannot open the udev event socket");
		goto out;
	}
	if (udev_monitor_filter_add_match_subsystem_devtype(w->mon, "block", "disk") < 0 ||
	    udev_monitor_filter_add_match_tag(w->mon, STATION_TAG) < 0 ||
	    udev_monitor_enable_receiving(w->mon) < 0) {
		r = alerr_set(e, ALERR_OSERR, -EIO, "station.udev",
		              "watch: cannot listen to udev events: %s", strerror(errno));
		goto out;
	}
	if (access("/run/udev/control", F_OK) < 0)
		log_warn("watch: udevd does not seem to run (no /run/udev/control): "
		         "no insertion will be seen until it does");
	log_notice("watching for airlock media (udev tag \"" STATION_TAG "\"); "
	           "devices present before now are not imported");

	/* Between the flag check and the wait a signal would be lost:
	 * block them, and let ppoll unblock them atomically. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &orig);
	pfd.fd = udev_monitor_get_fd(w->mon);
	pfd.events = POLLIN;
	while (!import_interrupted && !w->fatal) {
		watch_drain(w);
		if (w->n_queue) {
			sigset_t idle;

			sigprocmask(SIG_SETMASK, NULL, &idle);
			watch_import(w, &orig, &idle);
			continue;
		}
		if (ppoll(&pfd, 1, NULL, &orig) < 0 && errno != EINTR) {
			r = alerr_set(e, ALERR_OSERR, -errno, "station.udev",
			              "watch: waiting for udev events: %s", strerror(errno));
			break;
		}
	}
	sigprocmask(SIG_SETMASK, &orig, NULL);
	if (import_interrupted && r == 0)
		log_notice("watch: stopping on signal %d%s", (int)import_interrupted,
		           w->n_queue ? "; devices still queued are not imported" : "");
	while (w->n_queue)
		watch_forget(w, w->queue[0].devnum, "was still waiting when the station stopped");
	*exit_code = w->fatal;
out:
	udev_monitor_unref(w->mon);
	udev_unref(w->udev);
	free(w);
	return r;
}
