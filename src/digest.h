/* SHA-256, streamed: chunks, files, pipes. libgcrypt does the hashing
 * (it picks the SHA-NI/AVX2 code itself); none of its types leak here. */
#ifndef AIRLOCK_DIGEST_H
#define AIRLOCK_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"

#define DIGEST_SHA256_LEN 32
#define DIGEST_SHA256_HEX_LEN 64

/* Check the libgcrypt version and finish its initialisation (no secure
 * memory: nothing hashed here is secret). Idempotent and thread-safe; call
 * it once from main, every function below also calls it. */
int digest_library_init(struct alerr *e);

/* A running SHA-256 computation. */
struct digest;

int digest_new(struct digest **out, struct alerr *e);

/* Feed len bytes (len may be 0). */
void digest_update(struct digest *d, const void *buf, size_t len);

/* Write the digest of everything fed since digest_new or digest_reset.
 * Feed nothing more until digest_reset. */
void digest_final(struct digest *d, uint8_t out[DIGEST_SHA256_LEN]);

/* Start again, as if new. */
void digest_reset(struct digest *d);

/* NULL is allowed. */
void digest_free(struct digest *d);

/* SHA-256 of one buffer. Returns 0, or a negative errno when libgcrypt
 * cannot be initialised. */
int digest_buffer(const void *buf, size_t len, uint8_t out[DIGEST_SHA256_LEN]);

/* Hash fd from its current position to EOF in IO_BUFFER_SIZE reads. More
 * than max_bytes bytes is refused (ALERR_REJECT "size.limit") after reading
 * at most max_bytes + 1; a read error is ALERR_IOERR "io.read". *nread (may
 * be NULL) gets the bytes read, also on failure. */
int digest_fd(int fd, uint64_t max_bytes, uint8_t out[DIGEST_SHA256_LEN],
              uint64_t *nread, struct alerr *e);

/* digest_fd on a regular file, opened O_NOFOLLOW: a symlink is refused
 * (ALERR_REJECT "file.symlink"), so is anything but a regular file
 * ("file.not_regular"); a missing file is ALERR_NOINPUT "file.missing". */
int digest_file(const char *path, uint64_t max_bytes, uint8_t out[DIGEST_SHA256_LEN],
                uint64_t *nread, struct alerr *e);

/* Lower-case hex, NUL-terminated. */
void digest_hex(char out[DIGEST_SHA256_HEX_LEN + 1], const uint8_t in[DIGEST_SHA256_LEN]);

/* Decode exactly 64 lower-case hex digits. Returns 0 or -EINVAL. */
int digest_from_hex(uint8_t out[DIGEST_SHA256_LEN], const char *hex, size_t len);

/* 1 when equal, else 0; the time taken does not depend on the contents. */
int digest_equal(const uint8_t a[DIGEST_SHA256_LEN], const uint8_t b[DIGEST_SHA256_LEN]);

#endif
