/* The payload (doc/bundle-format.md section 5): a pax tar stream of
 * members, zstd-compressed by libarchive, cut into AIRLOCK/payload/
 * NNNNNN.chunk files of a fixed size, each hashed as it is written; and the
 * strict reader the importer runs over the verified chunks. libarchive is
 * used here and in volume.c only: none of its types leave this module.
 *
 * Reason codes. Writer: "pack.chunk_size", "pack.zstd_level",
 * "pack.threads" (bad parameters, ALERR_USAGE), "pack.member_name" and
 * "pack.member_size" (a member out of the section 5 rules: a bug in the
 * caller, ALERR_SOFTWARE), "pack.too_many_chunks" (more chunks than a MANIFEST can
 * list: choose a larger chunk size, ALERR_USAGE), "pack.chunk_create",
 * "pack.chunk_write" (ALERR_CANTCREAT / ALERR_IOERR), "pack.archive"
 * (libarchive refused, ALERR_SOFTWARE). Reader (ALERR_REJECT):
 * "payload.malformed" (anything libarchive refuses or warns about, a
 * stream that is not zstd-compressed pax/ustar tar), "payload.member_type"
 * (anything but a plain regular file), "payload.member_name" (a name or an
 * order section 5 does not allow), "payload.too_large" (a member or the
 * whole stream over its cap), "payload.too_many_members". */
#ifndef AIRLOCK_PACK_H
#define AIRLOCK_PACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "alerr.h"
#include "manifest.h"

#define PACK_ZSTD_LEVEL_DEFAULT 3
#define PACK_ZSTD_LEVEL_MIN     1
#define PACK_ZSTD_LEVEL_MAX     19

/* ---- writer ---- */

struct pack;

/* Start a payload in payload_dir (an existing, empty directory: the
 * bundle's AIRLOCK/payload), cut into chunks of chunk_size bytes
 * (CHUNK_SIZE_MIN..CHUNK_SIZE_MAX), zstd level PACK_ZSTD_LEVEL_MIN..MAX,
 * threads zstd worker threads (0: compress in the calling thread). */
int pack_new(struct pack **out, const char *payload_dir, uint64_t chunk_size,
             int zstd_level, unsigned int threads, struct alerr *e);

/* The mtime of every member (the manifest's Created); 0 until set. Call
 * before the first member. */
void pack_set_mtime(struct pack *p, int64_t mtime);

/* Add one member, whole (an export_emit_fn: pack is a struct pack *).
 * Names and order are checked against section 5: "catalog.json" first,
 * then data/<schema>/<table>/NNNNNN.copy. */
int pack_add_member(void *pack, const char *name, const void *data, size_t len,
                    struct alerr *e);

/* End the stream, fsync the last chunk and the directory, and add every
 * chunk (path, size, SHA-256) to m with manifest_add_file. */
int pack_finish(struct pack *p, struct manifest *m, struct alerr *e);

/* NULL is allowed. Removes no file: after an error the caller removes its
 * work directory. */
void pack_free(struct pack *p);

/* Bytes of member data given to pack_add_member so far. */
uint64_t pack_bytes_in(const struct pack *p);

/* Compressed bytes written into chunks so far. */
uint64_t pack_bytes_out(const struct pack *p);

/* Chunks written so far (including one still open). */
uint64_t pack_chunks(const struct pack *p);

/* ---- reader ---- */

/* Where the compressed bytes come from: fill buf with up to size bytes of
 * the concatenated chunks; return the count, 0 at the end, or a negative
 * errno after filling e. */
typedef ssize_t (*unpack_read_fn)(void *ctx, void *buf, size_t size,
                                  struct alerr *e);

/* Caps from the importer's policy. max_total bounds the decompressed
 * bytes of all members together, max_members their count. */
struct unpack_limits {
	uint64_t max_total;
	uint64_t max_members;
};

struct unpack;

/* Read a payload through read_fn(ctx, ...): only tar (ustar or pax) in
 * only zstd. */
int unpack_new(struct unpack **out, unpack_read_fn read_fn, void *ctx,
               const struct unpack_limits *lim, struct alerr *e);

/* The same over payload_dir/000000.chunk ... (n_chunks files, each opened
 * O_NOFOLLOW, regular files only). */
int unpack_new_dir(struct unpack **out, const char *payload_dir,
                   uint64_t n_chunks, const struct unpack_limits *lim,
                   struct alerr *e);

/* Go to the next member: 1 with *name (valid until the next call) and
 * *size set, 0 at the end of the stream, or a negative errno. Data of the
 * previous member not read is skipped (still counted against the caps).
 * The stream must end with at least catalog.json read. */
int unpack_next(struct unpack *u, const char **name, uint64_t *size,
                struct alerr *e);

/* Read up to len bytes of the current member: the count, 0 at its end, or
 * a negative errno. */
ssize_t unpack_read(struct unpack *u, void *buf, size_t len, struct alerr *e);

/* Decompressed member bytes delivered or skipped so far. */
uint64_t unpack_bytes(const struct unpack *u);

/* NULL is allowed. */
void unpack_free(struct unpack *u);

#endif
