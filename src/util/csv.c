/* RFC 4180 CSV writing, appending, truncation and reading. */
#include "gkd/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/parse.h"

/* ---- row builder ---------------------------------------------------- */

void gkd_csv_buf_free(gkd_csv_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->row_fields = 0;
}

void gkd_csv_buf_reset(gkd_csv_buf *b) {
    b->len = 0;
    b->row_fields = 0;
    if (b->data) b->data[0] = '\0';
}

static int buf_append(gkd_csv_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return gkd_error(GKD_ENOMEM, "csv: out of memory");
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int begin_field(gkd_csv_buf *b) {
    int rc = b->row_fields > 0 ? buf_append(b, ",", 1) : 0;
    b->row_fields++;
    return rc;
}

int gkd_csv_buf_str(gkd_csv_buf *b, const char *s) {
    int rc = begin_field(b);
    if (rc || !s) return rc;
    /* Quoted: separators, quotes, line ends, and a leading byte order mark
     * (the reader drops one at the start of a file). */
    if (!s[strcspn(s, ",\"\r\n")] && strncmp(s, "\xEF\xBB\xBF", 3)) return buf_append(b, s, strlen(s));
    if ((rc = buf_append(b, "\"", 1))) return rc;
    for (const char *p = s; *p; p++) {
        if (*p == '"' && (rc = buf_append(b, "\"", 1))) return rc;
        if ((rc = buf_append(b, p, 1))) return rc;
    }
    return buf_append(b, "\"", 1);
}

int gkd_csv_buf_empty(gkd_csv_buf *b) { return begin_field(b); }

int gkd_csv_buf_long(gkd_csv_buf *b, long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%ld", v);
    int rc = begin_field(b);
    return rc ? rc : buf_append(b, tmp, (size_t)n);
}

static int format_nonfinite(char *out, size_t size, double v) {
    if (isnan(v)) snprintf(out, size, "nan");
    else if (isinf(v)) snprintf(out, size, v > 0 ? "inf" : "-inf");
    else return 0;
    return 1;
}

/* %g switches to an exponent once the exponent reaches the precision, so
 * 50 would print as 5e+01; below 1e17 print such values with enough
 * digits to stay plain (the value is unchanged: only zeros are added). */
static void plain_integer_digits(char *out, size_t size, int prec, double v) {
    if (!strchr(out, 'e') || v == 0) return;
    int exp10 = (int)floor(log10(fabs(v)));
    if (exp10 >= prec && exp10 < 17) snprintf(out, size, "%.*g", exp10 + 1, v);
}

void gkd_format_double(char *out, size_t size, double v) {
    if (format_nonfinite(out, size, v)) return;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            plain_integer_digits(out, size, prec, v);
            return;
        }
    }
}

static void format_float(char *out, size_t size, float v) {
    if (format_nonfinite(out, size, v)) return;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(out, size, "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v) {
            plain_integer_digits(out, size, prec, v);
            return;
        }
    }
}

int gkd_csv_buf_float(gkd_csv_buf *b, float v) {
    char tmp[48];
    format_float(tmp, sizeof tmp, v);
    int rc = begin_field(b);
    return rc ? rc : buf_append(b, tmp, strlen(tmp));
}

int gkd_csv_buf_double(gkd_csv_buf *b, double v) {
    char tmp[48];
    gkd_format_double(tmp, sizeof tmp, v);
    int rc = begin_field(b);
    return rc ? rc : buf_append(b, tmp, strlen(tmp));
}

int gkd_csv_buf_end_row(gkd_csv_buf *b) {
    b->row_fields = 0;
    return buf_append(b, "\n", 1);
}

/* ---- appender -------------------------------------------------------- */

struct gkd_csv_appender {
    FILE *f;
    char *path;
    int err;
};

int gkd_csv_appender_open(gkd_csv_appender **out, const char *path, const char *header) {
    int rc = 0;
    char *existing = NULL;
    size_t elen = 0;
    gkd_csv_appender *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        rc = gkd_error(GKD_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) {
        if ((rc = gkd_file_read(&existing, &elen, path))) goto done;
        size_t hlen = strlen(header);
        if (elen < hlen || memcmp(existing, header, hlen) != 0) {
            rc = gkd_error(GKD_EMISMATCH, "%s: existing header differs from the one being written", path);
            goto done;
        }
        if (existing[elen - 1] != '\n') {
            rc = gkd_error(GKD_EFORMAT, "%s: ends with a partial row (truncate it before appending)", path);
            goto done;
        }
    }
    /* Logs live in gkd's own run directory: a symbolic link there is
     * refused rather than followed (appending outside the tree). */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    a->f = fd >= 0 ? fdopen(fd, "ab") : NULL;
    if (!a->f) {
        const int e = errno;
        if (fd >= 0) close(fd);
        rc = e == ELOOP ? gkd_error(GKD_EINVAL, "%s: is a symbolic link; gkd does not append through it", path)
                        : gkd_error(GKD_EIO, "%s: cannot open for appending: %s", path, strerror(e));
        goto done;
    }
    if (!existing) {
        if (fputs(header, a->f) < 0 || fflush(a->f) != 0) {
            rc = gkd_error(GKD_EIO, "%s: write failed: %s", path, strerror(errno));
            goto done;
        }
    }
    *out = a;
    a = NULL;
done:
    free(existing);
    if (a) {
        if (a->f) fclose(a->f);
        free(a->path);
        free(a);
    }
    return rc;
}

int gkd_csv_appender_write(gkd_csv_appender *a, const char *rows) {
    if (a->err) return gkd_error(a->err, "%s: an earlier write failed", a->path);
    if (fputs(rows, a->f) < 0 || fflush(a->f) != 0) {
        a->err = GKD_EIO;
        return gkd_error(GKD_EIO, "%s: write failed: %s", a->path, strerror(errno));
    }
    return 0;
}

int gkd_csv_appender_close(gkd_csv_appender *a) {
    if (!a) return 0;
    int rc = a->err ? gkd_error(a->err, "%s: an earlier write failed", a->path) : 0;
    if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)
        if (!rc) rc = gkd_error(GKD_EIO, "%s: flush failed: %s", a->path, strerror(errno));
    if (fclose(a->f) != 0 && !rc) rc = gkd_error(GKD_EIO, "%s: close failed: %s", a->path, strerror(errno));
    free(a->path);
    free(a);
    return rc;
}

/* ---- parser ------------------------------------------------------------ */

typedef struct {
    char **v;
    int n, cap;
} strvec;

static void strvec_clear(strvec *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    s->n = 0;
}

static int strvec_push(strvec *s, char *str) {
    if (!str) return GKD_ENOMEM;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        char **p = realloc(s->v, (size_t)cap * sizeof *p);
        if (!p) {
            free(str);
            return GKD_ENOMEM;
        }
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = str;
    return 0;
}

/* Outcome of reading one record. */
enum { REC_EOF = 0, REC_OK = 1 };

/* Read the record at *pos into `fields`. Returns REC_OK, REC_EOF, or a
 * negative error; *complete tells whether it ended with a line terminator
 * (CRLF or LF) rather than the end of the text; *open_quote is set when the
 * text ended inside a quoted field. */
static int next_record(const char *s, size_t len, size_t *pos, long *line, const char *name,
                       strvec *fields, int *complete, int *open_quote) {
    strvec_clear(fields);
    *complete = 0;
    *open_quote = 0;
    size_t i = *pos;
    if (i >= len) return REC_EOF;
    gkd_csv_buf field = GKD_CSV_BUF_INIT;
    int rc = REC_OK;
    for (;;) {
        gkd_csv_buf_reset(&field);
        if (buf_append(&field, "", 0)) goto nomem;
        if (i < len && s[i] == '"') {
            long quote_line = *line;
            i++;
            for (;;) {
                if (i >= len) {
                    *open_quote = 1;
                    rc = gkd_error(GKD_EFORMAT, "%s:%ld: unterminated quoted field", name, quote_line);
                    goto done;
                }
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        if (buf_append(&field, "\"", 1)) goto nomem;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (s[i] == '\n') (*line)++;
                if (buf_append(&field, s + i, 1)) goto nomem;
                i++;
            }
            if (i < len && s[i] != ',' && s[i] != '\n' && !(s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')) {
                rc = gkd_error(GKD_EFORMAT, "%s:%ld: unexpected character after a closing quote", name, *line);
                goto done;
            }
        } else {
            size_t j = i;
            while (j < len && s[j] != ',' && s[j] != '\n' && !(s[j] == '\r' && j + 1 < len && s[j + 1] == '\n')) {
                if (s[j] == '"') {
                    rc = gkd_error(GKD_EFORMAT, "%s:%ld: double quote inside an unquoted field", name, *line);
                    goto done;
                }
                j++;
            }
            if (buf_append(&field, s + i, j - i)) goto nomem;
            i = j;
        }
        if (strvec_push(fields, strdup(field.data))) goto nomem;
        if (i >= len) break;
        if (s[i] == ',') {
            i++;
            continue;
        }
        i += s[i] == '\r' ? 2 : 1;
        (*line)++;
        *complete = 1;
        break;
    }
    goto done;
nomem:
    rc = gkd_error(GKD_ENOMEM, "%s: out of memory", name);
done:
    gkd_csv_buf_free(&field);
    *pos = i;
    return rc;
}

void gkd_csv_free(gkd_csv *c) {
    if (!c) return;
    for (int j = 0; j < c->ncols; j++) free(c->header ? c->header[j] : NULL);
    for (size_t k = 0; c->cells && k < c->nrows * (size_t)c->ncols; k++) free(c->cells[k]);
    free(c->header);
    free(c->cells);
    free(c->lines);
    free(c->path);
    free(c);
}

int gkd_csv_parse(gkd_csv **out, const char *text, size_t len, const char *name) {
    int rc = 0, complete, open_quote;
    strvec fields = {0};
    size_t pos = 0, cap = 0;
    long line = 1;
    gkd_csv *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(name))) {
        rc = gkd_error(GKD_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    rc = next_record(text, len, &pos, &line, name, &fields, &complete, &open_quote);
    if (rc < 0) goto done;
    if (rc == REC_EOF) {
        rc = gkd_error(GKD_EFORMAT, "%s:1: empty file (expected a header line)", name);
        goto done;
    }
    c->ncols = fields.n;
    c->header = fields.v;
    fields.v = NULL;
    fields.n = fields.cap = 0;
    for (;;) {
        long row_line = line;
        rc = next_record(text, len, &pos, &line, name, &fields, &complete, &open_quote);
        if (rc < 0) goto done;
        if (rc == REC_EOF) {
            rc = 0;
            break;
        }
        if (fields.n != c->ncols) {
            rc = gkd_error(GKD_EFORMAT, "%s:%ld: expected %d fields, got %d", name, row_line, c->ncols, fields.n);
            goto done;
        }
        if (c->nrows == cap) {
            cap = cap ? cap * 2 : 64;
            char **cells = realloc(c->cells, cap * (size_t)c->ncols * sizeof *cells);
            long *lines = cells ? realloc(c->lines, cap * sizeof *lines) : NULL;
            if (cells) c->cells = cells;
            if (!lines) {
                rc = gkd_error(GKD_ENOMEM, "%s: out of memory", name);
                goto done;
            }
            c->lines = lines;
        }
        memcpy(c->cells + c->nrows * (size_t)c->ncols, fields.v, (size_t)c->ncols * sizeof(char *));
        fields.n = 0;
        c->lines[c->nrows++] = row_line;
    }
    *out = c;
    c = NULL;
done:
    strvec_clear(&fields);
    free(fields.v);
    gkd_csv_free(c);
    return rc;
}

int gkd_csv_read(gkd_csv **out, const char *path) {
    char *text = NULL;
    size_t len = 0;
    int rc = gkd_file_read(&text, &len, path);
    if (rc == 0) rc = gkd_csv_parse(out, text, len, path);
    free(text);
    return rc;
}

int gkd_csv_col(const gkd_csv *c, const char *name) {
    for (int j = 0; j < c->ncols; j++)
        if (strcmp(c->header[j], name) == 0) return j;
    return -1;
}

const char *gkd_csv_get(const gkd_csv *c, size_t row, int col) {
    return c->cells[row * (size_t)c->ncols + (size_t)col];
}

/* ---- truncation --------------------------------------------------------- */

int gkd_csv_truncate_after_step(const char *path, long step) {
    int rc = 0, complete, open_quote, dropped = 0;
    char *text = NULL;
    size_t len = 0, pos = 0;
    long line = 1;
    strvec fields = {0};
    gkd_csv_buf kept = GKD_CSV_BUF_INIT;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) return 0;
    if ((rc = gkd_file_read(&text, &len, path))) goto done;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    rc = next_record(text, len, &pos, &line, path, &fields, &complete, &open_quote);
    if (rc < 0) goto done;
    if (rc == REC_EOF || !complete) {
        rc = gkd_error(GKD_EFORMAT, "%s:1: no complete header line", path);
        goto done;
    }
    int step_col = -1;
    for (int j = 0; j < fields.n; j++)
        if (strcmp(fields.v[j], "step") == 0) step_col = j;
    if (step_col < 0) {
        rc = gkd_error(GKD_EFORMAT, "%s:1: no 'step' column", path);
        goto done;
    }
    int ncols = fields.n;
    if ((rc = buf_append(&kept, text, pos))) goto done;
    for (;;) {
        long row_line = line;
        size_t rec_start = pos;
        rc = next_record(text, len, &pos, &line, path, &fields, &complete, &open_quote);
        if (rc == REC_EOF) {
            rc = 0;
            break;
        }
        if ((rc < 0 && open_quote) || (rc == REC_OK && !complete)) {
            rc = 0; /* a row cut off mid-write */
            dropped = 1;
            break;
        }
        if (rc < 0) goto done;
        if (fields.n != ncols) {
            rc = gkd_error(GKD_EFORMAT, "%s:%ld: expected %d fields, got %d", path, row_line, ncols, fields.n);
            goto done;
        }
        long s;
        if ((rc = gkd_parse_long(&s, fields.v[step_col], 0, __LONG_MAX__, "step"))) {
            rc = gkd_error_wrap(rc, "%s:%ld", path, row_line);
            goto done;
        }
        if (s > step) {
            dropped = 1;
            continue;
        }
        if ((rc = buf_append(&kept, text + rec_start, pos - rec_start))) goto done;
    }
    if (dropped) rc = gkd_file_write_atomic(path, kept.data, kept.len);
done:
    gkd_csv_buf_free(&kept);
    strvec_clear(&fields);
    free(fields.v);
    free(text);
    return rc;
}

int gkd_csv_buf_printf(gkd_csv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return gkd_error(GKD_EINVAL, "format error");
    size_t need = b->len + (size_t)n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < need) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return gkd_error(GKD_ENOMEM, "out of memory");
        b->data = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}
