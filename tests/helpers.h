/* Helpers shared by the test suites: temporary directories and files. */
#ifndef GKD_TEST_HELPERS_H
#define GKD_TEST_HELPERS_H

#include <stddef.h>

/** Create a fresh directory /tmp/<prefix>-XXXXXX into buf (fails the test
 *  if it cannot). */
void th_make_tmpdir(char *buf, size_t cap, const char *prefix);
/** rm -r dir (fails the test if it cannot). */
void th_remove_tmpdir(const char *dir);
/** Write text to path, replacing it (fails the test if it cannot). */
void th_write_file(const char *path, const char *text);

#endif
