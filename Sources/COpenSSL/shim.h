/* OpenSSL's libcrypto, for the SHA-256 and HMAC-SHA256 of S3 request signing (EVP digests and one-shot HMAC). */
#include <openssl/evp.h>
#include <openssl/hmac.h>
