#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#define PROGRESS_REDRAW_NS 200000000LL   /* at most 5 redraws a second */
#define PROGRESS_BAR_WIDTH 24

struct progress {
	char label[48];
	uint64_t total;
	uint64_t done;
	int64_t start_ns;
	int64_t last_draw_ns;
	int enabled;
	int drawn;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void progress_format_bytes(char *buf, unsigned long size, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned int u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

struct progress *progress_new(const char *label, uint64_t total, int enabled)
{
	struct progress *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	snprintf(p->label, sizeof(p->label), "%s", label ? label : "");
	p->total = total;
	p->enabled = enabled && isatty(STDERR_FILENO);
	p->start_ns = now_ns();
	return p;
}

void progress_set_total(struct progress *p, uint64_t total)
{
	if (p)
		p->total = total;
}

static void draw(struct progress *p, int64_t t)
{
	char done[32], total[32], rate[32], bar[PROGRESS_BAR_WIDTH + 1], eta[32] = "";
	double secs = (double)(t - p->start_ns) / 1e9;
	double bps = secs > 0.05 ? (double)p->done / secs : 0.0;

	progress_format_bytes(done, sizeof(done), p->done);
	progress_format_bytes(rate, sizeof(rate), (uint64_t)bps);
	if (p->total > 0) {
		uint64_t shown = p->done < p->total ? p->done : p->total;
		unsigned int fill = (unsigned int)(shown * PROGRESS_BAR_WIDTH / p->total);

		memset(bar, '#', fill);
		memset(bar + fill, '.', PROGRESS_BAR_WIDTH - fill);
		bar[PROGRESS_BAR_WIDTH] = '\0';
		progress_format_bytes(total, sizeof(total), p->total);
		if (bps > 0 && p->done < p->total) {
			uint64_t left = (uint64_t)((double)(p->total - p->done) / bps);

			snprintf(eta, sizeof(eta), "  ETA %llu:%02llu",
			         (unsigned long long)(left / 60), (unsigned long long)(left % 60));
		}
		fprintf(stderr, "\r%-14s [%s] %s / %s  %s/s%s\033[K", p->label, bar,
		        done, total, rate, eta);
	} else {
		fprintf(stderr, "\r%-14s %s  %s/s\033[K", p->label, done, rate);
	}
	p->drawn = 1;
	p->last_draw_ns = t;
}

void progress_update(struct progress *p, uint64_t done)
{
	int64_t t;

	if (!p)
		return;
	p->done = done;
	if (!p->enabled)
		return;
	t = now_ns();
	if (p->drawn && t - p->last_draw_ns < PROGRESS_REDRAW_NS)
		return;
	draw(p, t);
}

void progress_done(struct progress *p)
{
	if (!p)
		return;
	if (p->enabled) {
		draw(p, now_ns());
		fputc('\n', stderr);
	}
	free(p);
}
