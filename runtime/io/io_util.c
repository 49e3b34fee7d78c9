/* Shared helpers of the image I/O files: error messages that name the file, whole-file reads, format
 * sniffing by magic bytes, and atomic writes (temporary file in the same folder, fsync, rename).
 * The io_*.c files declare the prototypes they use (there is no private io header). */
#define _GNU_SOURCE
#include "core/dama_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

dama_status dama_io_err(dama_status st, const char *op, const char *path, const char *fmt, ...);
dama_status dama_io_slurp(const char *op, const char *path, uint8_t **data, int64_t *size);
int dama_io_sniff(const uint8_t *p, int64_t n);
dama_status dama_io_tmp_open(const char *op, const char *path, char *tmp, size_t tmplen, int *fd);
dama_status dama_io_write_all(const char *op, const char *path, int fd, const void *data, int64_t n);
dama_status dama_io_commit(const char *op, const char *tmp, const char *path);
void dama_io_discard(const char *tmp);

dama_status dama_io_err(dama_status st, const char *op, const char *path, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dama_error(st, "%s: '%s': %s", op, path ? path : "(null)", msg);
}

/* The whole file in one malloc'ed buffer (caller frees). A missing, unreadable or empty file and a
 * directory are DAMA_ERR_IO with the reason. */
dama_status dama_io_slurp(const char *op, const char *path, uint8_t **data, int64_t *size) {
  *data = NULL;
  *size = 0;
  if (!path) return dama_error(DAMA_ERR_ARG, "%s: path is NULL", op);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return dama_io_err(DAMA_ERR_IO, op, path, "cannot open: %s", strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return dama_io_err(DAMA_ERR_IO, op, path, "cannot stat: %s", strerror(e));
  }
  if (S_ISDIR(sb.st_mode)) {
    close(fd);
    return dama_io_err(DAMA_ERR_IO, op, path, "is a directory, expected an image file");
  }
  if (sb.st_size == 0) {
    close(fd);
    return dama_io_err(DAMA_ERR_FORMAT, op, path, "file is empty");
  }
  int64_t n = (int64_t)sb.st_size;
  uint8_t *buf = malloc((size_t)n);
  if (!buf) {
    close(fd);
    return dama_io_err(DAMA_ERR_OOM, op, path, "cannot allocate %lld bytes to read the file", (long long)n);
  }
  int64_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, (size_t)(n - got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return dama_io_err(DAMA_ERR_IO, op, path, "read failed: %s", strerror(e));
    }
    if (r == 0) break; /* shrank while reading */
    got += r;
  }
  close(fd);
  *data = buf;
  *size = got;
  return DAMA_OK;
}

/* dama_image_format from the first bytes. */
int dama_io_sniff(const uint8_t *p, int64_t n) {
  if (n >= 4 && ((p[0] == 'I' && p[1] == 'I' && (p[2] == 42 || p[2] == 43) && p[3] == 0) ||
                 (p[0] == 'M' && p[1] == 'M' && p[2] == 0 && (p[3] == 42 || p[3] == 43))))
    return DAMA_FMT_TIFF;
  if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return DAMA_FMT_PNG;
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return DAMA_FMT_JPEG;
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return DAMA_FMT_BMP;
  if (n >= 6 && memcmp(p, "\x93NUMPY", 6) == 0) return DAMA_FMT_NPY;
  if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) return DAMA_FMT_OTHER_STB;
  if (n >= 4 && memcmp(p, "8BPS", 4) == 0) return DAMA_FMT_OTHER_STB;
  if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return DAMA_FMT_OTHER_STB;
  if (n >= 10 && (memcmp(p, "#?RADIANCE", 10) == 0)) return DAMA_FMT_OTHER_STB;
  if (n >= 6 && memcmp(p, "#?RGBE", 6) == 0) return DAMA_FMT_OTHER_STB;
  return DAMA_FMT_UNKNOWN;
}

/* Create "<path>.tmp.<pid>.<n>" exclusively (mode 0666 & ~umask, like a plain fopen). */
dama_status dama_io_tmp_open(const char *op, const char *path, char *tmp, size_t tmplen, int *fd) {
  static atomic_uint counter;
  *fd = -1;
  if (!path || !*path) return dama_error(DAMA_ERR_ARG, "%s: path is NULL or empty", op);
  if (!tmp || tmplen < 2) return dama_error(DAMA_ERR_ARG, "%s: no room for the temporary path", op);
  for (int attempt = 0; attempt < 100; attempt++) {
    unsigned k = atomic_fetch_add(&counter, 1u);
    int len = snprintf(tmp, tmplen, "%s.tmp.%ld.%u", path, (long)getpid(), k);
    if (len < 0 || (size_t)len >= tmplen) return dama_io_err(DAMA_ERR_ARG, op, path, "path too long");
    int f = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666); /* libtiff reads back when linking pages */
    if (f >= 0) {
      *fd = f;
      return DAMA_OK;
    }
    if (errno != EEXIST)
      return dama_io_err(DAMA_ERR_IO, op, path, "cannot create temporary file '%s': %s", tmp, strerror(errno));
  }
  return dama_io_err(DAMA_ERR_IO, op, path, "cannot create a unique temporary file");
}

dama_status dama_io_write_all(const char *op, const char *path, int fd, const void *data, int64_t n) {
  const uint8_t *p = data;
  while (n > 0) {
    size_t chunk = n > (1 << 30) ? (size_t)1 << 30 : (size_t)n;
    ssize_t w = write(fd, p, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return dama_io_err(DAMA_ERR_IO, op, path, "write failed: %s", strerror(errno));
    p += w;
    n -= w;
  }
  return DAMA_OK;
}

static atomic_int g_fsync = 1;
void dama_io_set_fsync(int32_t on) { atomic_store(&g_fsync, on ? 1 : 0); }

/* fsync the finished temporary file, rename it over path, fsync the folder. On failure tmp is removed. */
dama_status dama_io_commit(const char *op, const char *tmp, const char *path) {
  if (!atomic_load(&g_fsync)) {
    if (rename(tmp, path) != 0) {
      int e = errno;
      unlink(tmp);
      return dama_io_err(DAMA_ERR_IO, op, path, "rename from '%s' failed: %s", tmp, strerror(e));
    }
    return DAMA_OK;
  }
  int fd = open(tmp, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    return dama_io_err(DAMA_ERR_IO, op, path, "fsync of temporary file failed: %s", strerror(e));
  }
  close(fd);
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return dama_io_err(DAMA_ERR_IO, op, path, "rename from '%s' failed: %s", tmp, strerror(e));
  }
  /* fsync the directory so the rename itself is durable; failure here is not fatal. */
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (slash && (size_t)(slash - path) < sizeof dir) {
    size_t dl = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl] = 0;
  } else {
    strcpy(dir, ".");
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return DAMA_OK;
}

void dama_io_discard(const char *tmp) {
  if (tmp && *tmp) unlink(tmp);
}
