/* Loop devices for Criterion tests. One implementation: every step runs
 * tests/harness/loop.sh in its command mode.
 *
 * Devices still attached at exit() are detached by an atexit handler of
 * the process that attached them (not by its children). When that
 * process dies without exit() (crash, timeout, SIGKILL), a watcher
 * started by loop.sh detaches them within about a second. */
#ifndef AIRLOCK_HARNESS_LOOP_H
#define AIRLOCK_HARNESS_LOOP_H

/* Skip the current Test when loop devices cannot be used here and we are
 * neither root nor in CI; fail it when we are root or CI=true (CI never
 * skips a missing loop device). Returns when loop devices work. */
void harness_loop_require(void);

/* Attach image (read-only when read_only is not 0, direct I/O off) to a
 * free loop device; *dev_out gets "/dev/loopN" (malloc'd). Returns 0, or
 * a negative errno with the reason on stderr. */
int harness_loop_attach(const char *image, int read_only, char **dev_out);

/* Detach dev and wait until the kernel has let it go (close it first). */
void harness_loop_detach(const char *dev);

#endif
