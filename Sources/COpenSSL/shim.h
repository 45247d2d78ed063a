#ifndef CLEANROOM_COPENSSL_SHIM_H
#define CLEANROOM_COPENSSL_SHIM_H
/* Only libcrypto's SHA-256 (with the CPU's SHA extensions); no TLS, no libssl, no EVP.
 *
 * The one-context SHA256_Init/Update/Final functions, deprecated since OpenSSL 3.0 in favour of
 * EVP but still exported by 3.x and 4.x, run the same assembly as EVP's SHA-256 without waking the
 * provider machinery: the first EVP fetch loads the configuration and the default provider,
 * ~2 MiB resident in every process (Protocol/SPEC.md §3, BENCHMARKS.md "SHA-256 without EVP").
 * Deprecation attributes are silenced here, for this header only. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#endif
