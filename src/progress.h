/* A one-line progress bar on stderr (bytes, rate, ETA) when stderr is a
 * terminal; silent otherwise, so logs and pipes stay clean. */
#ifndef AIRLOCK_PROGRESS_H
#define AIRLOCK_PROGRESS_H

#include <stdint.h>

struct progress;

/* label: a few words ("export", "write /dev/sdb"); total: bytes expected,
 * 0 when unknown (then no bar and no ETA). enabled: 1 to draw on a
 * terminal, 0 never. Returns NULL only when out of memory. */
struct progress *progress_new(const char *label, uint64_t total, int enabled);

/* Report bytes done so far; redraws at most a few times per second. */
void progress_update(struct progress *p, uint64_t done);

/* Change the expected total (e.g. once it is known). */
void progress_set_total(struct progress *p, uint64_t total);

/* Draw the final state, end the line, free p. NULL is allowed. */
void progress_done(struct progress *p);

/* "1.5 GiB": size with a binary unit into buf. */
void progress_format_bytes(char *buf, unsigned long size, uint64_t bytes);

#endif
