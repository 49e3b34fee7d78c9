/* Shared helpers of the libFuzzer harnesses (tests/fuzz/README.md). The readers take paths, so each
 * input is written to one temporary file per process and read back from there. */
#ifndef DAMA_FUZZ_COMMON_H
#define DAMA_FUZZ_COMMON_H
#define _GNU_SOURCE
#include "dama.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A temporary path ending in `ext`, fixed for this process. */
static const char *fuzz_path(const char *ext) {
  static char buf[256];
  if (!buf[0]) {
    const char *d = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/dama_fuzz_%d%s", d && *d ? d : "/tmp", (int)getpid(), ext);
  }
  return buf;
}

static const char *fuzz_write(const char *ext, const uint8_t *data, size_t size) {
  const char *p = fuzz_path(ext);
  FILE *f = fopen(p, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  return p;
}

/* Every failure must leave a message that names the file. */
static void fuzz_check_error(dama_status st, const char *path) {
  if (st == DAMA_OK || st == DAMA_ERR_OOM) return;
  if (!strstr(dama_last_error(), path)) {
    fprintf(stderr, "error message does not name the file '%s': %s\n", path, dama_last_error());
    abort();
  }
}

/* Keep legitimate large decodes below libFuzzer's -rss_limit_mb. */
static void fuzz_init_once(void) {
  static int done;
  if (done) return;
  done = 1;
  dama_memory_set_limit((int64_t)256 << 20);
  dama_set_num_threads(1);
}
#endif
