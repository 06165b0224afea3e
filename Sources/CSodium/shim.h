#ifndef VEIL_CSODIUM_SHIM_H
#define VEIL_CSODIUM_SHIM_H
#include <sodium.h>
#endif
