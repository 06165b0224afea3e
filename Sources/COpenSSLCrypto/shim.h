#ifndef VEIL_COPENSSLCRYPTO_SHIM_H
#define VEIL_COPENSSLCRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#endif
