#include <sqlite3.h>

/* SQLITE_TRANSIENT is a cast macro the Swift importer cannot express: sqlite3 copies the bytes. */
static inline sqlite3_destructor_type em_sqlite_transient(void) { return SQLITE_TRANSIENT; }
