/* Runner for DAMA_TEST cases: runs all (or those whose name contains argv[1]), prints a summary. */
#define _GNU_SOURCE
#include "dama_test.h"
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TESTS 1024
static struct { const char *name; dama_test_fn fn; } tests[MAX_TESTS];
static int n_tests;
static int cur_failed, cur_skipped;

void dama_test_register(const char *name, dama_test_fn fn) {
  if (n_tests < MAX_TESTS) { tests[n_tests].name = name; tests[n_tests].fn = fn; n_tests++; }
}

void dama_test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "  %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  cur_failed = 1;
}

void dama_test_skip(const char *why) {
  fprintf(stderr, "  skipped: %s\n", why);
  cur_skipped = 1;
}

int dama_test_failed_now(void) { return cur_failed; }

static char tmp_dir[256];
static pthread_mutex_t tmp_lock = PTHREAD_MUTEX_INITIALIZER;

static void remove_tmp_dir(void) {
  DIR *d = opendir(tmp_dir);
  if (!d) return;
  struct dirent *e;
  char p[600];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(tmp_dir);
}

const char *dama_test_tmp_path(const char *name) {
  static _Thread_local char buf[8][600];
  static _Thread_local int k;
  pthread_mutex_lock(&tmp_lock);
  if (!tmp_dir[0]) {
    strcpy(tmp_dir, "/tmp/dama_test_XXXXXX");
    if (mkdtemp(tmp_dir)) atexit(remove_tmp_dir);
    else tmp_dir[0] = '\0';
  }
  pthread_mutex_unlock(&tmp_lock);
  if (!tmp_dir[0]) return NULL;
  char *b = buf[k++ & 7];
  snprintf(b, 600, "%s/%s", tmp_dir, name);
  return b;
}

const char *dama_test_data_dir(void) {
  static char dir[512];
  const char *cands[2] = {DAMA_SOURCE_ROOT "/../shared/data", "/work/shared/data"};
  for (int i = 0; i < 2; i++) {
    struct stat sb;
    if (stat(cands[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
      snprintf(dir, sizeof dir, "%s", cands[i]);
      return dir;
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0, skipped = 0;
  for (int i = 0; i < n_tests; i++) {
    if (argc > 1 && !strstr(tests[i].name, argv[1])) continue;
    cur_failed = cur_skipped = 0;
    dama_clear_error();
    tests[i].fn();
    int64_t in_use = 0, peak = 0, n_live = 0;
    dama_memory_stats(&in_use, &peak, &n_live);
    (void)in_use; (void)peak;
    const char *verdict = cur_failed ? "FAIL" : cur_skipped ? "SKIP" : "ok";
    printf("%-4s %s\n", verdict, tests[i].name);
    if (cur_failed) failed++; else if (cur_skipped) skipped++; else passed++;
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (failed) return 1;
  if (skipped && !passed) return 77;
  return 0;
}
