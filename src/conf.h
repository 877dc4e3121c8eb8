/* The config module (src/config.c): the INI file airlock-write and
 * airlock-import share, and the command-line options that override it.
 * This header is not called config.h: that name is autoconf's, and a
 * src/config.h would shadow it for every file in src/.
 *
 * The file is parsed by inih, strictly: sections [common], [write] and
 * [import] only; "key = value" lines starting in the first column; a key
 * outside a section, an unknown section or key, a second value for a key
 * that is not repeatable, an indented (continuation) line, an inline
 * comment (";" after a space), a NUL byte, a control character other than
 * tab, invalid UTF-8 and a line longer than CONFIG_MAX_LINE bytes are all
 * errors naming FILE:LINE. Whole-line comments start with ';' or '#'. A
 * UTF-8 byte-order mark is ignored.
 *
 * Value types: paths are absolute; booleans are yes/no/true/false/on/off/
 * 1/0 (any case); durations are a decimal number and a unit s, m, h, d or w
 * (the unit is required), > 0, at most CONFIG_MAX_DURATION seconds; sizes
 * are a decimal number with an optional binary suffix K, M, G or T;
 * fingerprints are 40 or 64 hex digits, stored upper-case. */
#ifndef AIRLOCK_CONF_H
#define AIRLOCK_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "alerr.h"

/* Defaults of the numeric keys. */
#define CONFIG_DEFAULT_VALID_FOR    (UINT64_C(14) * 86400u)
#define CONFIG_DEFAULT_JOBS         2u
#define CONFIG_DEFAULT_THRESHOLD    2u
#define CONFIG_DEFAULT_MAX_BYTES    (UINT64_C(64) << 30)
#define CONFIG_DEFAULT_MAX_FILES    10000u
#define CONFIG_DEFAULT_MAX_PATH     255u
#define CONFIG_DEFAULT_LOCK_TIMEOUT UINT64_C(30)
#define CONFIG_DEFAULT_RETENTION    (UINT64_C(30) * 86400u)

/* The values of a repeatable key, in the order given. */
struct config_list {
	char **v;
	size_t n;
};

/* [write]: airlock-write, the low side. */
struct config_write {
	char *source;                 /* libpq conninfo or URI */
	struct config_list schemas;   /* PostgreSQL identifiers */
	char *channel;
	struct config_list signers;   /* fingerprints, upper-case hex */
	char *gnupghome;              /* NULL: GnuPG's default */
	char *workdir;
	uint64_t valid_for;           /* seconds */
	char *courier;                /* NULL: not given */
	uint64_t chunk_size;          /* bytes */
	unsigned int jobs;
};

/* [import]: airlock-import, the high side. */
struct config_import {
	char *target;                 /* libpq conninfo or URI */
	struct config_list channels;  /* channels accepted */
	char *keyring;
	struct config_list trust;     /* pinned fingerprints, upper-case hex */
	unsigned int threshold;
	int require_media_serial;
	char *quarantine;
	uint64_t max_bytes;           /* cap on the quarantined volume */
	unsigned int max_files;
	unsigned int max_path;
	uint64_t lock_timeout;        /* seconds */
	uint64_t retention;           /* seconds a rejected copy is kept */
	unsigned int jobs;
};

struct config {
	/* [common] */
	char *custody_log;
	char *state_dir;
	int syslog;
	struct config_write write;
	struct config_import import;
	char *path;                   /* the file loaded last, or NULL */
	uint32_t cmdline_seen;        /* internal: keys config_set has set */
};

/* SYSCONFDIR "/airlock/airlock.conf". */
const char *config_default_path(void);

/* Fill c with the defaults (lists empty). Returns 0, or -ENOMEM
 * (ALERR_OSERR); c can be given to config_free either way. */
int config_init(struct config *c, struct alerr *e);

/* Free everything c holds; c is left zeroed. */
void config_free(struct config *c);

/* Load a file over the current values: each key the file sets replaces
 * the value in c, and a repeatable key's values in the file replace c's
 * list. All or nothing: on failure c is unchanged. With missing_ok, a
 * missing file is not an error (returns 0, c unchanged). Errors are
 * ALERR_CONFIG; reasons config.syntax, config.line_too_long,
 * config.unknown_section, config.unknown_key, config.duplicate_key,
 * config.bad_value, config.list_too_long name "FILE:LINE: ..."; reasons
 * config.unsafe_file (symlink, not a regular file, writable by group or
 * others, owned by neither root nor the effective uid), config.too_large,
 * config.missing_file and config.unreadable name "FILE: ...". */
int config_load(struct config *c, const char *path, int missing_ok, struct alerr *e);

/* Set one key from a command-line option (origin, e.g. "--trust", names
 * it in errors), with the file's validation; load the file first. A non-repeatable key given
 * twice is refused; the first value of a repeatable key replaces the list
 * loaded from the file, later ones append. A bad value is ALERR_USAGE
 * (config.bad_value, config.duplicate_key, config.list_too_long); an
 * unknown section or key is a programming error, ALERR_SOFTWARE. */
int config_set(struct config *c, const char *section, const char *key,
               const char *value, const char *origin, struct alerr *e);

/* "90s", "15m", "2h", "14d", "1w" into seconds. -EINVAL for a missing or
 * unknown unit or a malformed number; -ERANGE for 0, overflow or more
 * than CONFIG_MAX_DURATION. */
int config_parse_duration(const char *s, uint64_t *seconds);

/* "4096", "256M", "64G" (K, M, G, T: powers of 1024) into bytes. -EINVAL
 * for a malformed number or suffix; -ERANGE on overflow. */
int config_parse_size(const char *s, uint64_t *bytes);

/* yes/no, true/false, on/off, 1/0, in any case, into 1 or 0; -EINVAL. */
int config_parse_bool(const char *s, int *out);

#endif
