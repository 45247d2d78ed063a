#ifndef CLEANROOM_COPENSSL_SHIM_H
#define CLEANROOM_COPENSSL_SHIM_H
/* Only the EVP digest API of libcrypto (SHA-256 with the CPU's SHA extensions); no TLS, no libssl. */
#include <openssl/evp.h>
#endif
