/* File locks of a results tree (run_lock.h). */
#define _GNU_SOURCE
#include "run_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "gkd/error.h"

/* Lock files live in gkd's own tree: a symbolic link there (dangling or
 * not) is refused rather than followed, so gkd never creates or opens a
 * file elsewhere through it. */
static int open_lock(const char *path) { return open(path, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0644); }

static int lock_open_error(const char *path) {
    if (errno == ELOOP) return gkd_error(GKD_EINVAL, "lock %s is a symbolic link; gkd does not follow it", path);
    return gkd_error(GKD_EIO, "cannot open lock %s: %s", path, strerror(errno));
}

int run_lock_acquire(run_lock *l, const char *path) {
    l->fd = open_lock(path);
    if (l->fd < 0) return lock_open_error(path);
    while (flock(l->fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            int e = errno;
            close(l->fd);
            l->fd = -1;
            return gkd_error(GKD_EIO, "cannot lock %s: %s", path, strerror(e));
        }
    return 0;
}

int run_lock_try(run_lock *l, const char *path, int *busy) {
    *busy = 0;
    l->fd = open_lock(path);
    if (l->fd < 0) return lock_open_error(path);
    while (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(l->fd);
        l->fd = -1;
        if (e == EWOULDBLOCK) { *busy = 1; return 0; }
        return gkd_error(GKD_EIO, "cannot lock %s: %s", path, strerror(e));
    }
    return 0;
}

void run_lock_release(run_lock *l) {
    if (l->fd >= 0) { flock(l->fd, LOCK_UN); close(l->fd); }
    l->fd = -1;
}
