#ifndef CLEANROOM_CZLIB_SHIM_H
#define CLEANROOM_CZLIB_SHIM_H
#include <zlib.h>
#endif
