/* The import station's unattended modes: a spool directory of bundle
 * images (airlock-import --spool) and a libudev monitor of inserted media
 * for hosts without systemd (airlock-import --watch). Both run one whole
 * import_run per image or device, one at a time, and stop between two
 * imports once import_interrupted is set. */
#ifndef AIRLOCK_STATION_H
#define AIRLOCK_STATION_H

#include "alerr.h"
#include "import.h"

/* Is name a complete image a writer renamed into a spool: "*.iso", not a
 * dot file, no ".partial" in it (airlock-write --image writes
 * ".NAME.partial-XXXXXX" and renames)? */
int station_spool_name_ok(const char *name);

/* Of two exit codes, the one that matters more to an operator: 0 < 66
 * (not an airlock volume) < 65 (rejected) < retryable (75, 69, 73) <
 * I/O and system errors < configuration and usage. */
int station_worse_exit(int a, int b);

/* Import every complete image in dir (station_spool_name_ok, regular
 * files only, at most STATION_SPOOL_MAX per run): airlock volumes in
 * ascending sequence order, then anything else. After its import each
 * image is renamed into dir/done (restored or verified) or dir/rejected
 * (exit 65 or 66); on any other failure (database down, lock not taken,
 * quarantine full...) it stays where it is and the run stops, so that a
 * later sequence is not imported before it. Each image's exit status is
 * logged; *exit_code gets the worst (station_worse_exit). base gives the
 * policy; its device and image are ignored. Returns a negative errno (e
 * set) only when dir itself cannot be used. */
int station_spool(const char *dir, const struct import_options *base, int *exit_code,
                  struct alerr *e);

/* Follow udev's events (after its rules ran) for block disks tagged
 * "airlock" that carry AIRLOCK_IMPORT=1 (60-airlock.rules sets both):
 * each insertion is queued (once per device and disk sequence) and
 * imported with a full import_run, one after the other; a device removed
 * while it waits is dropped from the queue. Runs until import_interrupted
 * is set (SIGTERM): the import under way finishes or rolls back first.
 * Signals that set import_interrupted must be SIGTERM, SIGINT or SIGHUP.
 * *exit_code is 0, or the exit code of a failure that stops the station
 * (a custody log that cannot be written). Returns a negative errno (e set)
 * when the monitor cannot be set up. */
int station_watch(const struct import_options *base, int *exit_code, struct alerr *e);

#endif
