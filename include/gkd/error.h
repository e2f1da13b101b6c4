/* Error codes and the last-error message. Library functions that can fail
 * return 0 or a negative GKD_E* code and set a message readable with
 * gkd_last_error(); only the program's main prints and exits. */
#ifndef GKD_ERROR_H
#define GKD_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    GKD_OK = 0,
    GKD_EINVAL = -1,   /* bad argument or value out of range */
    GKD_ENOMEM = -2,   /* allocation failed */
    GKD_EIO = -3,      /* read/write/open failed (errno in the message) */
    GKD_EFORMAT = -4,  /* malformed file contents */
    GKD_ECORRUPT = -5, /* checksum mismatch or truncated binary file */
    GKD_EVERSION = -6, /* unsupported format version */
    GKD_EMISMATCH = -7,/* config or shape does not match what was expected */
    GKD_ENAN = -8,     /* non-finite value in a loss or gradient */
    GKD_ESTATE = -9    /* operation not valid in the current state */
};

/** Message of the most recent error in this thread ("" if none). */
const char *gkd_last_error(void);

/** Set the thread's error message (printf-style) and return `code`. The
 *  message is one line: control bytes (CR, newline, ...) of what it quotes
 *  are shown as '?', here and in gkd_error_wrap. */
int gkd_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Prefix the current message with "prefix: " (adds context as an error rises). */
int gkd_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
