#define _XOPEN_SOURCE 700
#include "gkd/fsutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/error.h"

int gkd_mkdir_p(const char *dir) {
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) return gkd_error(GKD_EINVAL, "invalid directory name '%s'", dir);
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return gkd_error(GKD_EIO, "cannot create directory %s: %s", path, strerror(errno));
        path[i] = c;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int gkd_remove_tree(const char *path) {
    if (!gkd_path_exists(path)) return 0;
    if (nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS) != 0)
        return gkd_error(GKD_EIO, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

int gkd_path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static const char *file_kind(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

int gkd_fopen_read(FILE **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        const int rc = gkd_error(GKD_EIO, "%s: cannot open: %s", path, strerror(e));
        errno = e;
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        close(fd);
        return gkd_error(GKD_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return gkd_error(GKD_EINVAL, "%s: is %s, not a regular file", path, file_kind(st.st_mode));
    }
    /* Reads from here on may block as for any file. */
    const int flags = fcntl(fd, F_GETFL);
    FILE *f = flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        const int e = errno;
        close(fd);
        return gkd_error(GKD_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    *out = f;
    return 0;
}

/* name is prefix + (".tmp." or ".tmp") + six mkstemp characters. */
static int is_temp_of(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0) return 0;
    const char *rest = name + n;
    if (!strncmp(rest, ".tmp.", 5)) rest += 5;
    else if (!strncmp(rest, ".tmp", 4)) rest += 4;
    else return 0;
    if (strlen(rest) != 6) return 0;
    for (int i = 0; i < 6; i++)
        if (!isalnum((unsigned char)rest[i])) return 0;
    return 1;
}

int gkd_remove_stale_temps(const char *dir, const char *const *names, int n) {
    DIR *d = opendir(dir);
    if (!d) return gkd_error(GKD_EIO, "cannot read %s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        int match = 0;
        for (int i = 0; i < n && !match; i++) match = is_temp_of(e->d_name, names[i]);
        if (!match) continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) { rc = gkd_error(GKD_ENOMEM, "out of memory"); break; }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT)
            rc = gkd_error(GKD_EIO, "cannot remove the stale temporary file %s: %s", path, strerror(errno));
        free(path);
    }
    closedir(d);
    return rc;
}

/* ---- whole files ----------------------------------------------------- */

static int fsync_parent_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return gkd_error(GKD_ENOMEM, "%s: out of memory", path);
    int rc = 0;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        /* Some file systems refuse fsync on directories; the rename is
         * still atomic, so only open failures matter. */
        (void)fsync(fd);
        close(fd);
    } else {
        rc = gkd_error(GKD_EIO, "%s: cannot open directory: %s", path, strerror(errno));
    }
    free(copy);
    return rc;
}

int gkd_file_write_atomic(const char *path, const char *data, size_t len) {
    int rc = 0, fd = -1;
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return gkd_error(GKD_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = gkd_error(GKD_EIO, "%s: cannot create temporary file: %s", path, strerror(errno));
        goto done;
    }
    (void)fchmod(fd, 0644);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = gkd_error(GKD_EIO, "%s: write failed: %s", path, strerror(errno));
            goto done;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = gkd_error(GKD_EIO, "%s: fsync failed: %s", path, strerror(errno));
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = gkd_error(GKD_EIO, "%s: close failed: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = gkd_error(GKD_EIO, "%s: rename failed: %s", path, strerror(errno));
        goto done;
    }
    rc = fsync_parent_dir(path);
done:
    if (fd >= 0) close(fd);
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

int gkd_file_read(char **out, size_t *len, const char *path) {
    int rc = 0;
    char *data = NULL;
    size_t n = 0, cap = 0;
    FILE *f = NULL;
    if ((rc = gkd_fopen_read(&f, path))) return rc;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(data, cap);
            if (!p) {
                rc = gkd_error(GKD_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            data = p;
        }
        size_t r = fread(data + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        rc = gkd_error(GKD_EIO, "%s: read failed", path);
        goto done;
    }
    data[n] = '\0';
    *out = data;
    if (len) *len = n;
    data = NULL;
done:
    fclose(f);
    free(data);
    return rc;
}
