#ifndef CLEANROOM_CSQLITE_SHIM_H
#define CLEANROOM_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
