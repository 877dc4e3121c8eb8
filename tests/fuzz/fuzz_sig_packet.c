/* Fuzz target: the OpenPGP framing check that runs on every signature
 * file before GPGME sees it. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "sig_packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;

	if (sig_packet_check(data, size, &why) < 0 && !why)
		abort();
	return 0;
}
