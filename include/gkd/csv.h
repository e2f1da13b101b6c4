/* RFC 4180 CSV: a row builder, whole-file atomic writes, an appender for
 * per-step rows, truncation for resumed runs, and a reader.
 *
 * Written files use LF line endings, quote a field only when it contains a
 * comma, a double quote, CR or LF, and print numbers as the shortest decimal
 * that round-trips (floats: at most 9 significant digits, doubles: at most
 * 17), so the same values always give the same bytes. Non-finite numbers are
 * written as nan, inf, -inf. The reader accepts LF or CRLF, quoted fields
 * (with "" escapes and embedded newlines) and a leading UTF-8 BOM, and
 * reports ragged rows and unterminated quotes as "file:line: message". */
#ifndef GKD_CSV_H
#define GKD_CSV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A growable buffer of CSV text, built one field at a time. */
typedef struct {
    char *data;     /* NUL-terminated text so far */
    size_t len, cap;
    int row_fields; /* fields in the current (unfinished) row */
} gkd_csv_buf;

#define GKD_CSV_BUF_INIT {NULL, 0, 0, 0}

/** Release the buffer's memory and reset it to empty. */
void gkd_csv_buf_free(gkd_csv_buf *b);
/** Empty the buffer, keeping its memory. */
void gkd_csv_buf_reset(gkd_csv_buf *b);
/** Append a text field, quoted only when needed. NULL is written as empty. */
int gkd_csv_buf_str(gkd_csv_buf *b, const char *s);
/** Append an empty field (a value that was not measured). */
int gkd_csv_buf_empty(gkd_csv_buf *b);
int gkd_csv_buf_long(gkd_csv_buf *b, long v);
/** Shortest round-trip representation of a float (at most %.9g). */
int gkd_csv_buf_float(gkd_csv_buf *b, float v);
/** Shortest round-trip representation of a double (at most %.17g). */
int gkd_csv_buf_double(gkd_csv_buf *b, double v);
/** Append printf output as raw text (not a CSV field): tables, scripts. */
int gkd_csv_buf_printf(gkd_csv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Terminate the current row with LF. */
int gkd_csv_buf_end_row(gkd_csv_buf *b);

/** Format a double as gkd_csv_buf_double does into `out` (>= 32 bytes). */
void gkd_format_double(char *out, size_t size, double v);

/** An open CSV file that rows are appended to (one fflush per row, so a
 *  killed run loses at most the row being written). */
typedef struct gkd_csv_appender gkd_csv_appender;

/** Open `path` for appending. If the file is missing or empty, `header`
 *  (one complete CSV line, e.g. built with gkd_csv_buf) is written first;
 *  otherwise the file's first line must equal it (GKD_EMISMATCH if not). */
int gkd_csv_appender_open(gkd_csv_appender **out, const char *path, const char *header);
/** Append complete row text (one or more lines ending in LF) and flush. */
int gkd_csv_appender_write(gkd_csv_appender *a, const char *rows);
/** fsync and close; returns the first error of the file's lifetime. NULL is a no-op. */
int gkd_csv_appender_close(gkd_csv_appender *a);

/** Keep the header and the rows whose `step` column is <= `step`, dropping
 *  later rows and a trailing partial row (no final newline); the rewrite is
 *  atomic and kept rows are byte-identical. A missing file is not an error
 *  (nothing was logged yet). Used when a run resumes from a checkpoint. */
int gkd_csv_truncate_after_step(const char *path, long step);

/** A parsed CSV file: a header and rows of equal width (all strings owned). */
typedef struct {
    char *path;     /* name used in error messages */
    int ncols;
    size_t nrows;
    char **header;  /* (ncols) */
    char **cells;   /* (nrows, ncols), row-major */
    long *lines;    /* (nrows) 1-based line on which each row starts */
} gkd_csv;

/** Read and parse `path`. A file with no header line is GKD_EFORMAT. */
int gkd_csv_read(gkd_csv **out, const char *path);
/** Parse `len` bytes of CSV text; `name` is used in error messages. */
int gkd_csv_parse(gkd_csv **out, const char *text, size_t len, const char *name);
void gkd_csv_free(gkd_csv *c);
/** Column index of `name` in the header, or -1. */
int gkd_csv_col(const gkd_csv *c, const char *name);
/** Cell text (never NULL; "" for an empty field). */
const char *gkd_csv_get(const gkd_csv *c, size_t row, int col);

#ifdef __cplusplus
}
#endif

#endif
