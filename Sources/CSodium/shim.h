#ifndef CLEANROOM_CSODIUM_SHIM_H
#define CLEANROOM_CSODIUM_SHIM_H
#include <sodium.h>
#endif
