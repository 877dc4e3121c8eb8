/* Every limit airlock places on untrusted input, in one place. The media
 * and the low side are hostile: each parser checks these before it
 * allocates, reads or hashes. */
#ifndef AIRLOCK_BOUNDS_H
#define AIRLOCK_BOUNDS_H

#include <stdint.h>

/* MANIFEST. A feed has at most a few thousand tables and its payload is cut
 * into at most a few thousand chunks; 4 MiB leaves ample headroom while
 * keeping the whole manifest in memory. */
#define MANIFEST_MAX_BYTES      (4u * 1024u * 1024u)
#define MANIFEST_MAX_LINE       4096u      /* bytes, without the newline */
#define MANIFEST_MAX_FILES      20000u     /* entries in the SHA256 field */
#define MANIFEST_MAX_TABLES     20000u     /* entries in the Tables field */
#define MANIFEST_MAX_SCHEMAS    64u
#define MANIFEST_MAX_SIGNERS    32u
#define MANIFEST_MAX_TEXT       256u       /* bytes in a free-text field */

/* Names. PostgreSQL identifiers are at most NAMEDATALEN-1 = 63 bytes;
 * channel names follow the same rule. */
#define NAME_MAX_IDENT          63u
#define CHANNEL_MAX             63u

/* Paths on the volume, relative to the AIRLOCK/ directory. */
#define VOLUME_PATH_MAX         255u       /* bytes in a whole path */
#define VOLUME_SEGMENT_MAX      64u        /* bytes in one segment */
#define VOLUME_DEPTH_MAX        4u         /* segments in a path */

/* Detached signatures: one OpenPGP signature packet, nothing else. An
 * RSA-4096 signature with its subpackets is under 1 KiB. */
#define SIG_FILE_MAX_BYTES      (64u * 1024u)

/* Payload chunks. The fixed chunk size is chosen by the writer within
 * these bounds; ISO 9660 needs no multi-extent file below 4 GiB. */
#define CHUNK_SIZE_MIN          (1u * 1024u * 1024u)
#define CHUNK_SIZE_MAX          (UINT64_C(1) << 31)
#define CHUNK_SIZE_DEFAULT      (UINT64_C(256) * 1024u * 1024u)

/* Config file. */
#define CONFIG_MAX_BYTES        (256u * 1024u)
#define CONFIG_MAX_LIST         64u        /* values of a repeatable key */

/* Streaming I/O buffer for hashing and copying. */
#define IO_BUFFER_SIZE          (1u * 1024u * 1024u)

_Static_assert(MANIFEST_MAX_LINE < MANIFEST_MAX_BYTES, "line fits the manifest");
_Static_assert(VOLUME_SEGMENT_MAX < VOLUME_PATH_MAX, "segment fits a path");
_Static_assert(VOLUME_PATH_MAX + 64u + 24u < MANIFEST_MAX_LINE,
               "a SHA256 line (hash, size, path) fits a manifest line");
_Static_assert(CHUNK_SIZE_MAX < (UINT64_C(1) << 32),
               "a chunk fits one ISO 9660 extent");
_Static_assert(CHUNK_SIZE_DEFAULT >= CHUNK_SIZE_MIN &&
               CHUNK_SIZE_DEFAULT <= CHUNK_SIZE_MAX, "default chunk size in range");

#endif
