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

/* config module. Debian's inih 55 reads each line into a fixed buffer of
 * INI_MAX_LINE = 200 bytes that must also hold "\r\n\0"; it would split a
 * longer line silently, so the config module refuses it first. */
#define CONFIG_MAX_LINE         197u       /* bytes, without the line end */
#define CONFIG_MAX_JOBS         64u        /* write.jobs, import.jobs */
#define CONFIG_MAX_THRESHOLD    32u        /* import.threshold */
#define CONFIG_MAX_FILES        1000000u   /* import.max-files */
#define CONFIG_MAX_PATH         4096u      /* import.max-path */
/* 100 years: a duration added to any current time_t cannot overflow. */
#define CONFIG_MAX_DURATION     (UINT64_C(100) * 366u * 86400u)

_Static_assert(CONFIG_MAX_LINE < CONFIG_MAX_BYTES, "a line fits the config file");
_Static_assert(CONFIG_MAX_THRESHOLD <= CONFIG_MAX_LIST, "threshold reachable");

/* manifest module. Sizes in SHA256 entries stay far below 2^63 so that
 * sums of a few thousand of them cannot overflow a uint64_t; a
 * pg_export_snapshot() id is a few dozen bytes. */
#define MANIFEST_MAX_FILE_SIZE  (UINT64_C(1) << 62)
#define MANIFEST_MAX_SNAPSHOT   64u

/* sig module. A bundle carries one detached signature file per signer;
 * a policy pins at most one list's worth of fingerprints. */
#define SIG_MAX_FILES           MANIFEST_MAX_SIGNERS
#define SIG_MAX_PINNED          CONFIG_MAX_LIST
#define SIG_NAME_MAX            VOLUME_PATH_MAX    /* bytes in a blob name */

/* Payload (doc/bundle-format.md section 5). A table's COPY text is cut
 * into tar members of a fixed size so that it streams through a bounded
 * buffer on both sides; catalog.json is read whole, so it is capped. */
#define PAYLOAD_SEGMENT_SIZE    (8u * 1024u * 1024u)
#define PAYLOAD_SEGMENT_MAX_INDEX 999999u
#define PAYLOAD_CATALOG_MAX     (64u * 1024u * 1024u)

/* media module. A GPT holds 128 entries by default; nested and logical
 * partitions stay well below 256. A real signature set per area is a
 * handful (GPT: 3, FAT: 2); the cap stops a wipe that does not take from
 * looping. The device stack of one disk (partitions, dm/LVM/md holders
 * and theirs) and its depth are bounded so a sysfs cycle cannot hang. */
#define MEDIA_MAX_PARTITIONS    256u
#define MEDIA_MAX_SIGNATURES    64u        /* per probed area */
#define MEDIA_MAX_STACK         1024u      /* devices related to one disk */
#define MEDIA_MAX_STACK_DEPTH   16u
#define MEDIA_LABEL_MAX_DIGITS  19u        /* AIRLOCK_<sequence> */

/* pack module. zstd worker threads (zstd:threads): each holds a job
 * buffer of a few MiB, so the count is bounded like --jobs. */
#define PACK_MAX_THREADS        CONFIG_MAX_JOBS

/* custody module (doc/custody-log.md). An entry is one line of at most
 * CUSTODY_MAX_LINE bytes, newline excluded. A torn region (the bytes a
 * crashed append left after the last whole entry) holds at most what a
 * few appends write; anything bigger is not a crash but damage, and the
 * appender refuses to continue the chain over it. Text values are cut to
 * CUSTODY_MAX_TEXT bytes (JSON escaping at most doubles them: they hold
 * no control characters), so that an entry stays far below a line. */
#define CUSTODY_MAX_LINE        (64u * 1024u)
#define CUSTODY_MAX_TORN        (4u * (CUSTODY_MAX_LINE + 1u))
#define CUSTODY_MAX_TEXT        256u
#define CUSTODY_MAX_DETAILS     16u        /* members of "details" */
#define CUSTODY_MAX_LIST        MANIFEST_MAX_SIGNERS  /* strings in a list value */
#define CUSTODY_MAX_ANCHORS     1000000u   /* anchors checked in one scan */
#define CUSTODY_LOCK_WAIT_MS    30000u     /* wait for the log's lock */
/* 2^53 - 1: the largest integer every JSON reader (jq) reads exactly. */
#define CUSTODY_MAX_INT         ((INT64_C(1) << 53) - 1)

/* An entry's members: at most 32 text values outside "details" (host,
 * run, event, reason, the actor, bundle, device and signed facts), the
 * signers, a key and a value per detail, and the fixed text (member
 * names, numbers, hashes) well under 4 KiB. */
_Static_assert((32u + CUSTODY_MAX_LIST + 2u * CUSTODY_MAX_DETAILS) *
               (2u * CUSTODY_MAX_TEXT + 8u) + 4096u < CUSTODY_MAX_LINE,
               "custody: the text limits keep an entry within a line");
_Static_assert(CUSTODY_MAX_TORN > 2u * (CUSTODY_MAX_LINE + 1u),
               "custody: a torn region can hold one whole torn append");
/* airlock-audit show: the runs (insertions of the media, attempts to
 * write) gathered for one bundle. */
#define AUDIT_MAX_RUNS          4096u

/* volume module. Section 2's tree: three directories, MANIFEST, the
 * signatures and the chunks; a listing never needs more entries. The
 * volume descriptor set of an airlock volume is the primary descriptor
 * and its terminator; a parser looks at most this many descriptors. */
#define VOLUME_MAX_ENTRIES      (4u + MANIFEST_MAX_SIGNERS + MANIFEST_MAX_FILES)
#define VOLUME_MAX_DESCRIPTORS  15u

/* station module (--spool, --watch). Images taken from a spool per run:
 * more wait for the next run. Devices waiting in --watch's queue: more
 * inserted at once are logged and not imported (plug them again). The
 * (device, disk sequence) pairs remembered so that repeated udev events
 * for one insertion import it once. */
#define STATION_SPOOL_MAX       1024u
#define STATION_QUEUE_MAX       64u
#define STATION_SEEN_MAX        256u

/* restore: the longest row of COPY text taken (PostgreSQL's own limit on
 * a line it reads is 1 GiB - 1): a longer one is refused (restore.data)
 * as it streams, not once the server has buffered it */
#define RESTORE_MAX_ROW_BYTES   ((UINT64_C(1) << 30) - 1u)

#endif
