/* Fuzz target: the strict MANIFEST parser on arbitrary bytes. Whatever it
 * accepts must re-emit to the same bytes. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alerr.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest *m = NULL;
	struct alerr e;
	char *text = NULL;
	size_t len = 0;

	alerr_clear(&e);
	if (manifest_parse((const char *)data, size, &m, &e) < 0) {
		if (!alerr_failed(&e) || strncmp(e.reason, "manifest.", 9) != 0)
			abort();
		return 0;
	}
	if (manifest_emit(m, &text, &len, &e) < 0 || len != size ||
	    memcmp(text, data, size) != 0)
		abort();
	free(text);
	manifest_free(m);
	return 0;
}
