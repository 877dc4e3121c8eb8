/* MANIFEST, bundle format v1: a strict parser for untrusted bytes and a
 * canonical emitter for the writer. One meaning has exactly one byte form:
 * every text the parser accepts re-emits byte for byte.
 *
 * Rejections carry ALERR_REJECT and a reason code ("manifest.syntax",
 * "manifest.field_duplicate", "manifest.path_dotdot"...); besides the
 * codes of the format specification the module uses
 * "manifest.entry_duplicate" and "manifest.entry_order" (Schemas, Signers,
 * Tables not unique or not sorted) and "manifest.entry_limit" (more
 * entries than the bounds.h limit). Errnos: -EBADMSG for format and
 * syntax, -E2BIG for size limits, -ERANGE for number ranges, -ENOMEM. */
#ifndef AIRLOCK_MANIFEST_H
#define AIRLOCK_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"

#define MANIFEST_FORMAT              "airlock-bundle/1"
#define MANIFEST_PAYLOAD_KIND        "pg-copy-text/1"
#define MANIFEST_PAYLOAD_COMPRESSION "zstd"
#define MANIFEST_SERVER_VERSION_MIN  90400u     /* server_version_num */
#define MANIFEST_SERVER_VERSION_MAX  9999999u
#define MANIFEST_TIME_MIN            INT64_C(946684800)    /* 2000-01-01T00:00:00Z */
#define MANIFEST_TIME_MAX            INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define MANIFEST_TIME_LEN            20u        /* "YYYY-MM-DDTHH:MM:SSZ" */
#define MANIFEST_BUNDLE_ID_LEN       36u        /* 8-4-4-4-12 */
#define MANIFEST_CHUNK_INDEX_MAX     999999u    /* six decimal digits */
#define MANIFEST_CHUNK_PATH_LEN      20u        /* "payload/000042.chunk" */

/* The fields, in canonical order. */
enum manifest_field {
	MANIFEST_F_FORMAT = 0,
	MANIFEST_F_CHANNEL,
	MANIFEST_F_SEQUENCE,
	MANIFEST_F_BUNDLE_ID,
	MANIFEST_F_CREATED,
	MANIFEST_F_VALID_UNTIL,
	MANIFEST_F_SERVER_VERSION,
	MANIFEST_F_PAYLOAD_KIND,
	MANIFEST_F_PAYLOAD_COMPRESSION,
	MANIFEST_F_CHUNK_SIZE,
	MANIFEST_F_SNAPSHOT,
	MANIFEST_F_SCHEMAS,
	MANIFEST_F_WRITER_HOST,
	MANIFEST_F_COURIER,
	MANIFEST_F_MEDIA_VENDOR,
	MANIFEST_F_MEDIA_MODEL,
	MANIFEST_F_MEDIA_SERIAL,
	MANIFEST_F_SIGNERS,
	MANIFEST_F_TABLES,
	MANIFEST_F_SHA256,
	MANIFEST_F_COUNT
};

struct manifest_table {
	char *schema;
	char *table;
	uint64_t rows;                  /* 0..INT64_MAX */
};

struct manifest_file {
	char *path;                     /* relative to AIRLOCK/ */
	uint64_t size;
	uint8_t sha256[32];
};

/* Plain data, filled by manifest_parse or by the builders below. Lists are
 * kept sorted and unique; optional text fields may be NULL. */
struct manifest {
	char *channel;
	uint64_t sequence;
	char bundle_id[MANIFEST_BUNDLE_ID_LEN + 1];
	int64_t created;                /* Unix seconds, UTC */
	int64_t valid_until;
	uint32_t source_server_version;
	char *payload_kind;
	char *payload_compression;
	uint64_t chunk_size;
	char *snapshot;
	char **schemas;
	size_t n_schemas;
	char *writer_host;
	char *courier;
	char *media_vendor;
	char *media_model;
	char *media_serial;
	char **signers;
	size_t n_signers;
	struct manifest_table *tables;
	size_t n_tables;
	struct manifest_file *files;
	size_t n_files;
	/* allocated lengths of the lists: private to manifest.c */
	size_t cap_schemas, cap_signers, cap_tables, cap_files;
};

/* A new, empty manifest with Payload-Kind and Payload-Compression set to
 * the v1 values; NULL when out of memory. */
struct manifest *manifest_new(void);

/* Free m and everything it holds; NULL is allowed. */
void manifest_free(struct manifest *m);

/* The field's name as written in MANIFEST ("Bundle-Id"), or NULL. */
const char *manifest_field_name(enum manifest_field f);

/* Set a text field (Channel, Bundle-Id, Payload-Kind, Payload-Compression,
 * Snapshot, Writer-Host, Courier, Media-*) to a checked copy of value.
 * NULL clears an optional field. Bad values fail with ALERR_USAGE and the
 * reason code the parser would give. */
int manifest_set_text(struct manifest *m, enum manifest_field f,
                      const char *value, struct alerr *e);

/* Set Bundle-Id to a new random UUID (libuuid). */
int manifest_generate_bundle_id(struct manifest *m, struct alerr *e);

/* Checked setters for the numeric fields. */
int manifest_set_sequence(struct manifest *m, uint64_t sequence, struct alerr *e);
int manifest_set_created(struct manifest *m, int64_t t, struct alerr *e);
int manifest_set_valid_until(struct manifest *m, int64_t t, struct alerr *e);
int manifest_set_server_version(struct manifest *m, uint32_t version, struct alerr *e);
int manifest_set_chunk_size(struct manifest *m, uint64_t chunk_size, struct alerr *e);

/* Insert a checked copy into the sorted list; a duplicate is refused. */
int manifest_add_schema(struct manifest *m, const char *schema, struct alerr *e);
int manifest_add_signer(struct manifest *m, const char *fingerprint, struct alerr *e);
int manifest_add_table(struct manifest *m, const char *schema, const char *table,
                       uint64_t rows, struct alerr *e);
int manifest_add_file(struct manifest *m, const char *path, uint64_t size,
                      const uint8_t sha256[32], struct alerr *e);

/* Every rule of the format, on the data (ALERR_SOFTWARE: a writer bug),
 * including the size of the text it would emit. */
int manifest_validate(const struct manifest *m, struct alerr *e);

/* The canonical MANIFEST text (validated first); *out is malloc'd and
 * NUL-terminated, *out_len excludes the NUL. */
int manifest_emit(const struct manifest *m, char **out, size_t *out_len,
                  struct alerr *e);

/* Strict parse of len untrusted bytes (no NUL terminator needed, nothing
 * past len is read). On success *out is a new manifest, else NULL. */
int manifest_parse(const char *buf, size_t len, struct manifest **out,
                   struct alerr *e);

/* The path rules for names under AIRLOCK/ (syntax only: see
 * manifest_path_is_reserved). ALERR_REJECT with a manifest.path_* code. */
int manifest_path_check(const char *path, size_t len, struct alerr *e);

/* 1 when path (ASCII case ignored, as ISO 9660 folds case) is MANIFEST,
 * SIGNATURES or under SIGNATURES/: files a manifest cannot list. */
int manifest_path_is_reserved(const char *path, size_t len);

/* The entry for path, or NULL (binary search: lists are sorted). */
const struct manifest_file *manifest_find_file(const struct manifest *m,
                                               const char *path);

/* "payload/000042.chunk" into buf; 0, -ERANGE (index too large) or
 * -ENOSPC (size < MANIFEST_CHUNK_PATH_LEN + 1). */
int manifest_chunk_path(char *buf, size_t size, uint64_t index);

/* "YYYY-MM-DDTHH:MM:SSZ" into buf (size > MANIFEST_TIME_LEN); 0 or
 * -ERANGE outside MANIFEST_TIME_MIN..MANIFEST_TIME_MAX, -ENOSPC. */
int manifest_time_format(int64_t t, char *buf, size_t size);

#endif
