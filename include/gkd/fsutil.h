/* Small file-system helpers shared by the runner and the writers. */
#ifndef GKD_FSUTIL_H
#define GKD_FSUTIL_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** mkdir -p: create dir and its missing parents (mode 0755). */
int gkd_mkdir_p(const char *dir);
/** rm -r: remove path and, if a directory, everything below it. A missing
 *  path is not an error. */
int gkd_remove_tree(const char *path);
/** 1 if path exists (any type). */
int gkd_path_exists(const char *path);

/** fopen(path, "rb") for regular files only. The file is opened without
 *  blocking, so a FIFO (which would wait forever for a writer), a device
 *  or a directory is refused at once: GKD_EINVAL, "PATH: is a FIFO, not a
 *  regular file". Other failures: GKD_EIO with strerror, errno kept (so
 *  callers can treat ENOENT as "absent"). */
int gkd_fopen_read(FILE **out, const char *path);

/** Remove what an atomic write killed before its rename leaves in `dir`:
 *  the temporary files `NAME.tmp.XXXXXX` (checkpoints) and `NAME.tmpXXXXXX`
 *  (other files) of each of the n NAMEs, XXXXXX being mkstemp's six
 *  letters and digits. Nothing else is touched. GKD_EIO if dir cannot be
 *  read or a match cannot be removed. */
int gkd_remove_stale_temps(const char *dir, const char *const *names, int n);

/** Write `len` bytes to `path` atomically: a temporary file in the same
 *  directory, fsync, rename, then fsync of the directory. */
int gkd_file_write_atomic(const char *path, const char *data, size_t len);

/** Read a whole regular file into a NUL-terminated malloc'd buffer. */
int gkd_file_read(char **out, size_t *len, const char *path);

#ifdef __cplusplus
}
#endif

#endif
