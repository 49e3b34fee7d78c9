/* A tiny test harness for dama's C tests.
 *
 *   DAMA_TEST(adds_two_numbers) { CHECK(1 + 1 == 2); CHECK_CLOSE(0.1 + 0.2, 0.3, 1e-12); }
 *
 * Each DAMA_TEST registers itself (constructor attribute); dama_test.c's main runs them all and prints
 * "N passed, N failed, N skipped". A test calls SKIP("why") to skip itself; main exits 77 if every
 * test skipped, 1 on any failure. CHECK_OK(call) checks a dama_status and prints dama_last_error().
 */
#ifndef DAMA_TEST_H
#define DAMA_TEST_H

#include "dama.h"
#include <math.h>
#include <stdio.h>

typedef void (*dama_test_fn)(void);
void dama_test_register(const char *name, dama_test_fn fn);
void dama_test_fail(const char *file, int line, const char *fmt, ...);
void dama_test_skip(const char *why);
int dama_test_failed_now(void);
/* A path for `name` inside a fresh per-process temporary folder (removed at exit); thread-safe, the
 * returned buffer stays valid for the next 7 calls on the same thread. */
const char *dama_test_tmp_path(const char *name);
/* The shared real-data folder (../shared/data beside the checkout, or /work/shared/data), or NULL. */
const char *dama_test_data_dir(void);

#define DAMA_TEST(name)                                                              \
  static void test_##name(void);                                                     \
  __attribute__((constructor)) static void register_##name(void) {                   \
    dama_test_register(#name, test_##name);                                          \
  }                                                                                  \
  static void test_##name(void)

#define CHECK(cond)                                                                  \
  do { if (!(cond)) { dama_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); return; } } while (0)
#define CHECK_MSG(cond, ...)                                                         \
  do { if (!(cond)) { dama_test_fail(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)
#define CHECK_OK(call)                                                               \
  do { dama_status st_ = (call); if (st_ != DAMA_OK) {                               \
    dama_test_fail(__FILE__, __LINE__, "%s -> %s: %s", #call, dama_status_name(st_), dama_last_error()); \
    return; } } while (0)
#define CHECK_STATUS(call, expected)                                                 \
  do { dama_status st_ = (call); if (st_ != (expected)) {                            \
    dama_test_fail(__FILE__, __LINE__, "%s -> %s (%s), expected %s", #call, dama_status_name(st_), \
                   dama_last_error(), dama_status_name(expected)); return; } } while (0)
#define CHECK_CLOSE(a, b, tol)                                                       \
  do { double a_ = (double)(a), b_ = (double)(b);                                    \
    if (!(fabs(a_ - b_) <= (tol) * (1.0 + fabs(b_)))) {                              \
      dama_test_fail(__FILE__, __LINE__, "CHECK_CLOSE(%s, %s): %.9g vs %.9g", #a, #b, a_, b_); return; } } while (0)
#define SKIP(why) do { dama_test_skip(why); return; } while (0)

#endif
