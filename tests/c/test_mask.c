/* Masking: the reference's counts, random masking, the adaptive mask (both modes) on hand-made cases, edge
 * cases and the committed PyTorch fixtures, masks from any 0/1 matrix, and the token gather / unshuffle
 * kernels (against naive loops and through the adjoint identity <f(x), g> = <x, f^T(g)>). */
#define _POSIX_C_SOURCE 200809L
#include "dama_test.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [0, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) & 0xffffff) / 16777216.0f;
}

/* ---------------------------------------------------------------- counts */

DAMA_TEST(visible_count_truncates_like_python_int) {
  int64_t K = -1;
  CHECK_OK(dama_mask_visible_count(64, 0.8, &K));
  CHECK(K == 12); /* 64 * (1 - 0.8) = 12.799999999999997 */
  CHECK_OK(dama_mask_visible_count(16, 0.75, &K));
  CHECK(K == 4);
  CHECK_OK(dama_mask_visible_count(196, 0.75, &K));
  CHECK(K == 49);
  CHECK_OK(dama_mask_visible_count(10, 0.7, &K));
  CHECK(K == 3); /* 10 * 0.30000000000000004 = 3.0000000000000004 */
  CHECK_OK(dama_mask_visible_count(10, 0.9, &K));
  CHECK(K == 0); /* 10 * 0.09999999999999998 = 0.9999999999999998 */
  CHECK_OK(dama_mask_visible_count(7, 0.0, &K));
  CHECK(K == 7);
  CHECK_OK(dama_mask_visible_count(7, 1.0, &K));
  CHECK(K == 0);
  CHECK_STATUS(dama_mask_visible_count(7, 1.5, &K), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "mask ratio") != NULL);
  CHECK_STATUS(dama_mask_visible_count(7, NAN, &K), DAMA_ERR_ARG);
  CHECK_STATUS(dama_mask_visible_count(0, 0.5, &K), DAMA_ERR_ARG);
}

DAMA_TEST(adaptive_counts_and_the_ratio_limit) {
  int64_t K, R, O;
  CHECK_OK(dama_mask_adaptive_counts(64, 0.8, 0.5, &K, &R, &O));
  CHECK(K == 12 && R == 40 && O == 6);
  CHECK_OK(dama_mask_adaptive_counts(16, 0.75, 0.5, &K, &R, &O));
  CHECK(K == 4 && R == 8 && O == 2);
  CHECK_OK(dama_mask_adaptive_counts(64, 0.6, 0.5, &K, &R, &O));
  CHECK(K == 25 && R == 14 && O == 12);
  CHECK_OK(dama_mask_adaptive_counts(16, 0.5, 0.0, &K, &R, &O));
  CHECK(K == 8 && R == 0 && O == 0);
  CHECK_OK(dama_mask_adaptive_counts(64, 0.8, 1.0, &K, &R, &O));
  CHECK(K == 12 && R == 40 && O == 12);
  CHECK_STATUS(dama_mask_adaptive_counts(16, 0.4, 0.5, &K, &R, &O), DAMA_ERR_ARG);
  CHECK_MSG(strstr(dama_last_error(), "R = L - 2K = -2 < 0") != NULL, "message: %s", dama_last_error());
  CHECK(strstr(dama_last_error(), "0.4") != NULL);
  CHECK_STATUS(dama_mask_adaptive_counts(16, 0.8, 1.5, &K, &R, &O), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "overlap ratio") != NULL);
}

/* ---------------------------------------------------------------- random masking */

DAMA_TEST(random_mask_hand_case_with_ties_and_nan) {
  /* row 0: plain; row 1: ties keep the lower index first, NaN sorts last */
  const float noise[2 * 5] = {0.5f, 0.1f, 0.9f, 0.3f, 0.2f, 0.4f, NAN, 0.4f, -0.0f, 0.0f};
  int64_t sh[10], rs[10], kp[4];
  float m[10];
  CHECK_OK(dama_mask_random(m, sh, rs, kp, noise, 2, 5, 2));
  const int64_t want_sh[10] = {1, 4, 3, 0, 2, 3, 4, 0, 2, 1};
  const int64_t want_rs[10] = {3, 0, 4, 2, 1, 2, 4, 3, 0, 1};
  const float want_m[10] = {1, 0, 1, 1, 0, 1, 1, 1, 0, 0};
  for (int i = 0; i < 10; i++) {
    CHECK_MSG(sh[i] == want_sh[i], "ids_shuffle[%d] = %lld, want %lld", i, (long long)sh[i], (long long)want_sh[i]);
    CHECK_MSG(rs[i] == want_rs[i], "ids_restore[%d] = %lld", i, (long long)rs[i]);
    CHECK_MSG(m[i] == want_m[i], "mask[%d] = %g", i, (double)m[i]);
  }
  CHECK(kp[0] == 1 && kp[1] == 4 && kp[2] == 3 && kp[3] == 4);
  /* optional outputs */
  CHECK_OK(dama_mask_random(NULL, sh, NULL, NULL, noise, 2, 5, 2));
  CHECK(sh[5] == 3);
  CHECK_STATUS(dama_mask_random(m, NULL, rs, kp, noise, 2, 5, 2), DAMA_ERR_ARG);
  CHECK_STATUS(dama_mask_random(m, sh, rs, kp, noise, 2, 5, 6), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "K (visible patches)") != NULL);
}

DAMA_TEST(random_mask_long_rows_sort_stably) {
  /* L large enough for the merge passes; few distinct values so ties are everywhere */
  const int64_t N = 40, L = 1000;
  float *noise = malloc(sizeof(float) * (size_t)(N * L));
  int64_t *sh = malloc(sizeof(int64_t) * (size_t)(N * L)), *rs = malloc(sizeof(int64_t) * (size_t)(N * L));
  float *m = malloc(sizeof(float) * (size_t)(N * L));
  for (int64_t i = 0; i < N * L; i++) noise[i] = (float)(int)(frand() * 37.0f) / 37.0f;
  CHECK_OK(dama_mask_random(m, sh, rs, NULL, noise, N, L, 100));
  int ok = 1;
  for (int64_t n = 0; n < N && ok; n++) {
    const float *x = noise + n * L;
    const int64_t *s = sh + n * L;
    for (int64_t i = 1; i < L; i++) {
      float a = x[s[i - 1]], b = x[s[i]];
      if (a > b || (a == b && s[i - 1] >= s[i])) ok = 0;
    }
    int64_t zeros = 0;
    for (int64_t i = 0; i < L; i++) {
      if (s[rs[n * L + i]] != i) ok = 0;
      zeros += m[n * L + i] == 0.0f;
    }
    if (zeros != 100) ok = 0;
  }
  free(noise); free(sh); free(rs); free(m);
  CHECK(ok);
}

/* ---------------------------------------------------------------- adaptive masking, hand cases */

static int zeros_of(const float *row, int64_t L) {
  int z = 0;
  for (int64_t l = 0; l < L; l++) z += row[l] == 0.0f;
  return z;
}

DAMA_TEST(adaptive_per_sample_hand_case) {
  /* L 8, ratio 0.75: K 2, R 4, O 1. Row 0 visible {1, 5}; masked {0,2,3,4,6,7} with losses; the easiest
   * masked (K - O = 1) is patch 6; overlap V = {1} (lowest-index visible). */
  const float m1[8] = {1, 0, 1, 1, 1, 0, 1, 1};
  const float loss[8] = {0.9f, 5.0f, 0.7f, 0.8f, 0.6f, 7.0f, 0.1f, 0.3f};
  float m2[8];
  int64_t sh[8], rs[8], kp[2];
  CHECK_OK(dama_mask_adaptive(m2, sh, rs, kp, m1, loss, 1, 8, 0.75, 0.5, DAMA_ADAPTIVE_PER_SAMPLE));
  const float want[8] = {1, 0, 1, 1, 1, 1, 0, 1};
  for (int i = 0; i < 8; i++) CHECK_MSG(m2[i] == want[i], "m2[%d] = %g", i, (double)m2[i]);
  CHECK(kp[0] == 1 && kp[1] == 6);
  const int64_t want_sh[8] = {1, 6, 0, 2, 3, 4, 5, 7};
  for (int i = 0; i < 8; i++) { CHECK(sh[i] == want_sh[i]); CHECK(rs[sh[i]] == i); }
  /* N = 1: the union rule gives the same */
  float u[8];
  int64_t ush[8];
  CHECK_OK(dama_mask_adaptive(u, ush, NULL, NULL, m1, loss, 1, 8, 0.75, 0.5, DAMA_ADAPTIVE_UNION));
  for (int i = 0; i < 8; i++) CHECK(u[i] == m2[i] && ush[i] == sh[i]);
}

DAMA_TEST(adaptive_union_zeroes_the_batch_union) {
  /* two rows with different lowest-index visible patches: V = {1} and {0}; union {0, 1} zeroed in both */
  const float m1[16] = {1, 0, 1, 1, 1, 0, 1, 1,
                        0, 1, 1, 1, 0, 1, 1, 1};
  const float loss[16] = {0.9f, 5, 0.7f, 0.8f, 0.6f, 7, 0.1f, 0.3f,
                          3, 0.2f, 0.5f, 0.6f, 4, 0.7f, 0.8f, 0.9f};
  float m2[16], p[16];
  int64_t sh[16], kp[4], psh[16];
  CHECK_OK(dama_mask_adaptive(m2, sh, NULL, kp, m1, loss, 2, 8, 0.75, 0.5, DAMA_ADAPTIVE_UNION));
  /* row 0: per-sample zeros {1, 6}, plus 0 from row 1's V -> {0, 1, 6}; row 1: easiest masked is 1 (0.2),
   * V = {0}, plus 1 from row 0 (already 0) -> {0, 1} */
  const float want[16] = {0, 0, 1, 1, 1, 1, 0, 1,
                          0, 0, 1, 1, 1, 1, 1, 1};
  for (int i = 0; i < 16; i++) CHECK_MSG(m2[i] == want[i], "m2[%d] = %g", i, (double)m2[i]);
  CHECK(zeros_of(m2, 8) == 3); /* more than K = 2: ids_keep2 is the first K zeros by index */
  CHECK(kp[0] == 0 && kp[1] == 1 && kp[2] == 0 && kp[3] == 1);
  CHECK(sh[2] == 6);
  CHECK_OK(dama_mask_adaptive(p, psh, NULL, NULL, m1, loss, 2, 8, 0.75, 0.5, DAMA_ADAPTIVE_PER_SAMPLE));
  CHECK(zeros_of(p, 8) == 2 && zeros_of(p + 8, 8) == 2);
  CHECK(p[1] == 0 && p[6] == 0 && p[8] == 0 && p[9] == 0);
}

DAMA_TEST(adaptive_overlap_zero_and_one) {
  const int64_t N = 4, L = 64;
  int64_t K, R, O;
  CHECK_OK(dama_mask_adaptive_counts(L, 0.8, 0.0, &K, &R, &O));
  float noise[4 * 64], m1[4 * 64], loss[4 * 64], m2[4 * 64];
  int64_t sh[4 * 64], kp[4 * 12];
  for (int i = 0; i < N * L; i++) { noise[i] = frand(); loss[i] = 0.01f + frand(); }
  CHECK_OK(dama_mask_random(m1, sh, NULL, NULL, noise, N, L, K));
  /* overlap 0: branch 2 sees the K easiest branch-1-masked patches, disjoint from branch 1 */
  for (int mode = 0; mode < 2; mode++) {
    CHECK_OK(dama_mask_adaptive(m2, sh, NULL, kp, m1, loss, N, L, 0.8, 0.0, mode));
    for (int64_t n = 0; n < N; n++) {
      CHECK(zeros_of(m2 + n * L, L) == K);
      float worst_shown = 0, best_hidden = 1e9f;
      for (int64_t l = 0; l < L; l++) {
        CHECK(!(m1[n * L + l] == 0 && m2[n * L + l] == 0));
        if (m1[n * L + l] == 1 && m2[n * L + l] == 0) worst_shown = fmaxf(worst_shown, loss[n * L + l]);
        if (m1[n * L + l] == 1 && m2[n * L + l] == 1) best_hidden = fminf(best_hidden, loss[n * L + l]);
      }
      CHECK(worst_shown < best_hidden);
      for (int64_t k = 0; k < K; k++) CHECK(m2[n * L + kp[n * K + k]] == 0);
    }
  }
  /* overlap 1: per sample, branch 2 sees exactly branch 1's visible patches */
  CHECK_OK(dama_mask_adaptive(m2, sh, NULL, kp, m1, loss, N, L, 0.8, 1.0, DAMA_ADAPTIVE_PER_SAMPLE));
  for (int i = 0; i < N * L; i++) CHECK(m2[i] == m1[i]);
  /* ... and in union mode every column visible in any sample is visible everywhere */
  CHECK_OK(dama_mask_adaptive(m2, sh, NULL, kp, m1, loss, N, L, 0.8, 1.0, DAMA_ADAPTIVE_UNION));
  for (int64_t l = 0; l < L; l++) {
    int any = 0;
    for (int64_t n = 0; n < N; n++) any |= m1[n * L + l] == 0;
    for (int64_t n = 0; n < N; n++) CHECK(m2[n * L + l] == (any ? 0.0f : 1.0f));
  }
}

DAMA_TEST(adaptive_r_plus_o_zero_follows_python_slice_in_union_mode) {
  /* ratio 0.5, overlap 0: R = 0, O = 0. The reference's argsort(s)[:, -0:] selects EVERY patch (m2 all ones);
   * the per-sample rule shows branch 2 all K branch-1-masked patches instead (m2 = 1 - m1). */
  const float m1[4] = {0, 1, 1, 0};
  const float loss[4] = {1, 2, 3, 4};
  float m2[4];
  int64_t sh[4], kp[2];
  CHECK_OK(dama_mask_adaptive(m2, sh, NULL, kp, m1, loss, 1, 4, 0.5, 0.0, DAMA_ADAPTIVE_UNION));
  for (int i = 0; i < 4; i++) CHECK(m2[i] == 1.0f);
  CHECK(kp[0] == 0 && kp[1] == 1);
  CHECK_OK(dama_mask_adaptive(m2, sh, NULL, kp, m1, loss, 1, 4, 0.5, 0.0, DAMA_ADAPTIVE_PER_SAMPLE));
  for (int i = 0; i < 4; i++) CHECK(m2[i] == 1.0f - m1[i]);
  CHECK(kp[0] == 1 && kp[1] == 2);
}

DAMA_TEST(adaptive_rejects_bad_inputs) {
  float m1[8] = {1, 0, 1, 1, 1, 0, 1, 1}, loss[8] = {1, 1, 1, 1, 1, 1, 1, 1}, m2[8];
  int64_t sh[8];
  CHECK_STATUS(dama_mask_adaptive(m2, sh, NULL, NULL, m1, loss, 1, 8, 0.3, 0.5, 0), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "R = L - 2K") != NULL);
  CHECK_STATUS(dama_mask_adaptive(m2, sh, NULL, NULL, m1, loss, 1, 8, 0.75, 0.5, 7), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "mode") != NULL);
  m1[3] = 0.5f;
  CHECK_STATUS(dama_mask_adaptive(m2, sh, NULL, NULL, m1, loss, 1, 8, 0.75, 0.5, 0), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "m1[0, 3] = 0.5") != NULL);
  /* per-sample needs O = 1 visible: a row with none is an error; the union rule runs as the reference */
  for (int i = 0; i < 8; i++) m1[i] = 1;
  CHECK_STATUS(dama_mask_adaptive(m2, sh, NULL, NULL, m1, loss, 1, 8, 0.75, 0.5, 0), DAMA_ERR_ARG);
  CHECK_MSG(strstr(dama_last_error(), "row 0 of m1 has 0 visible") != NULL, "%s", dama_last_error());
  CHECK_OK(dama_mask_adaptive(m2, sh, NULL, NULL, m1, loss, 1, 8, 0.75, 0.5, 1));
}

DAMA_TEST(adaptive_batch_results_equal_row_by_row_with_threads) {
  /* N x L big enough for the OpenMP path; per-sample rows must not depend on the batch */
  const int64_t N = 512, L = 64, K = 12;
  float *noise = malloc(sizeof(float) * N * L), *loss = malloc(sizeof(float) * N * L);
  float *m1 = malloc(sizeof(float) * N * L), *m2 = malloc(sizeof(float) * N * L), row[64];
  int64_t *sh = malloc(sizeof(int64_t) * N * L), *rs = malloc(sizeof(int64_t) * N * L), rsh[64], rrs[64];
  for (int64_t i = 0; i < N * L; i++) { noise[i] = frand(); loss[i] = 0.001f + frand(); }
  CHECK_OK(dama_mask_random(m1, sh, NULL, NULL, noise, N, L, K));
  CHECK_OK(dama_mask_adaptive(m2, sh, rs, NULL, m1, loss, N, L, 0.8, 0.5, DAMA_ADAPTIVE_PER_SAMPLE));
  int ok = 1;
  for (int64_t n = 0; n < N; n++) {
    if (dama_mask_adaptive(row, rsh, rrs, NULL, m1 + n * L, loss + n * L, 1, L, 0.8, 0.5, 1) != DAMA_OK) ok = 0;
    for (int64_t l = 0; l < L; l++)
      if (row[l] != m2[n * L + l] || rsh[l] != sh[n * L + l] || rrs[l] != rs[n * L + l]) ok = 0;
    if (zeros_of(m2 + n * L, L) != K) ok = 0;
  }
  free(noise); free(loss); free(m1); free(m2); free(sh); free(rs);
  CHECK(ok);
}

/* ---------------------------------------------------------------- the committed PyTorch fixtures */

typedef struct st_file { unsigned char *buf; long size; cJSON *header; long data_start; } st_file;

static int st_open(st_file *f, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/reference/fixtures/%s", DAMA_SOURCE_ROOT, name);
  memset(f, 0, sizeof *f);
  FILE *fp = fopen(path, "rb");
  if (!fp) return 0;
  fseek(fp, 0, SEEK_END);
  f->size = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  f->buf = malloc((size_t)f->size);
  size_t got = fread(f->buf, 1, (size_t)f->size, fp);
  fclose(fp);
  if ((long)got != f->size || f->size < 8) return 0;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->buf[i];
  f->header = cJSON_ParseWithLength((const char *)f->buf + 8, (size_t)hlen);
  f->data_start = 8 + (long)hlen;
  return f->header != NULL;
}

static void st_close(st_file *f) { cJSON_Delete(f->header); free(f->buf); }

/* Pointer to tensor `key` if it has dtype `dtype` and numel elements. */
static const void *st_get(st_file *f, const char *key, const char *dtype, int64_t numel) {
  cJSON *t = cJSON_GetObjectItemCaseSensitive(f->header, key);
  if (!t) return NULL;
  cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
  cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
  if (!cJSON_IsString(dt) || strcmp(dt->valuestring, dtype) != 0 || !cJSON_IsArray(sh) || !cJSON_IsArray(off)) return NULL;
  int64_t n = 1;
  cJSON *e;
  cJSON_ArrayForEach(e, sh) n *= (int64_t)e->valuedouble;
  if (n != numel) return NULL;
  long begin = (long)cJSON_GetArrayItem(off, 0)->valuedouble;
  return f->buf + f->data_start + begin;
}

DAMA_TEST(fixture_mae_random_masking) {
  st_file f;
  if (!st_open(&f, "vit_mae_fwd_bwd.safetensors")) SKIP("fixture vit_mae_fwd_bwd.safetensors not readable");
  const int64_t N = 3, L = 16;
  const float *noise = st_get(&f, "noise", "F32", N * L), *mask = st_get(&f, "mask", "F32", N * L);
  const int64_t *sh = st_get(&f, "ids_shuffle", "I64", N * L), *rs = st_get(&f, "ids_restore", "I64", N * L);
  if (!noise || !mask || !sh || !rs) { st_close(&f); CHECK_MSG(0, "fixture keys missing"); }
  int64_t K, osh[48], ors[48], okp[12];
  float om[48];
  CHECK_OK(dama_mask_visible_count(L, 0.75, &K));
  CHECK(K == 4);
  dama_status st = dama_mask_random(om, osh, ors, okp, noise, N, L, K);
  int ok = st == DAMA_OK;
  for (int i = 0; i < N * L && ok; i++) ok = osh[i] == sh[i] && ors[i] == rs[i] && om[i] == mask[i];
  st_close(&f);
  CHECK_MSG(ok, "random masking differs from the fixture");
}

static void check_dama_fixture(const char *file, int mode) {
  st_file f;
  if (!st_open(&f, file)) SKIP("fixture not readable");
  const int64_t N = 3, L = 16;
  const float *noise = st_get(&f, "noise1", "F32", N * L), *m1 = st_get(&f, "m1", "F32", N * L);
  const float *m2 = st_get(&f, "m2", "F32", N * L), *lpp = st_get(&f, "loss_per_patch1", "F32", N * L);
  const int64_t *sh1 = st_get(&f, "ids_shuffle1", "I64", N * L), *rs1 = st_get(&f, "ids_restore1", "I64", N * L);
  const int64_t *sh2 = st_get(&f, "ids_shuffle2", "I64", N * L), *rs2 = st_get(&f, "ids_restore2", "I64", N * L);
  int ok = noise && m1 && m2 && lpp && sh1 && rs1 && sh2 && rs2;
  float om1[48], om2[48];
  int64_t osh[48], ors[48], okp[12];
  dama_status st = DAMA_OK;
  if (ok) st = dama_mask_random(om1, osh, ors, NULL, noise, N, L, 4);
  for (int i = 0; ok && st == DAMA_OK && i < N * L; i++) ok = om1[i] == m1[i] && osh[i] == sh1[i] && ors[i] == rs1[i];
  if (ok && st == DAMA_OK) st = dama_mask_adaptive(om2, osh, ors, okp, m1, lpp, N, L, 0.75, 0.5, mode);
  for (int i = 0; ok && st == DAMA_OK && i < N * L; i++) ok = om2[i] == m2[i] && osh[i] == sh2[i] && ors[i] == rs2[i];
  for (int n = 0; ok && st == DAMA_OK && n < N; n++)
    for (int k = 0; k < 4; k++) ok = ok && okp[n * 4 + k] == sh2[n * L + k];
  int z0 = ok ? zeros_of(om2, L) : -1;
  st_close(&f);
  CHECK_OK(st);
  CHECK_MSG(ok, "%s: masks differ from the fixture", file);
  CHECK(mode == DAMA_ADAPTIVE_UNION ? z0 == 7 : z0 == 4); /* README: union rows have 7, 7, 6 zeros */
}

DAMA_TEST(fixture_dama_union) { check_dama_fixture("dama_step_union.safetensors", DAMA_ADAPTIVE_UNION); }
DAMA_TEST(fixture_dama_per_sample) { check_dama_fixture("dama_step_per_sample.safetensors", DAMA_ADAPTIVE_PER_SAMPLE); }

/* ---------------------------------------------------------------- masks from anywhere */

DAMA_TEST(mask_check_and_ids) {
  const float m[12] = {1, 0, 1, 0, 1, 1,
                       0, 1, 1, 1, 0, 1};
  int64_t K = -1, sh[12], rs[12], kp[4];
  CHECK_OK(dama_mask_check(m, 2, 6, &K));
  CHECK(K == 2);
  CHECK_OK(dama_mask_ids(sh, rs, kp, m, 2, 6, K));
  const int64_t want[12] = {1, 3, 0, 2, 4, 5, 0, 4, 1, 2, 3, 5};
  for (int i = 0; i < 12; i++) CHECK(sh[i] == want[i]);
  for (int n = 0; n < 2; n++)
    for (int i = 0; i < 6; i++) CHECK(rs[n * 6 + sh[n * 6 + i]] == i);
  CHECK(kp[0] == 1 && kp[1] == 3 && kp[2] == 0 && kp[3] == 4);
  CHECK_STATUS(dama_mask_ids(sh, rs, kp, m, 2, 6, 3), DAMA_ERR_ARG);
  const float uneven[6] = {0, 1, 1, 0, 0, 1};
  CHECK_STATUS(dama_mask_check(uneven, 2, 3, &K), DAMA_ERR_ARG);
  CHECK_MSG(strstr(dama_last_error(), "row 1 has 2 visible patches (zeros) but row 0 has 1") != NULL, "%s",
            dama_last_error());
  const float bad[3] = {0, 2, 1};
  CHECK_STATUS(dama_mask_check(bad, 1, 3, &K), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "mask[0, 1] = 2") != NULL);
  /* a random mask round-trips: ids of a random mask list the same visible set, by index */
  float noise[64], rm[64];
  int64_t rsh[64], ish[64];
  for (int i = 0; i < 64; i++) noise[i] = frand();
  CHECK_OK(dama_mask_random(rm, rsh, NULL, NULL, noise, 1, 64, 12));
  CHECK_OK(dama_mask_check(rm, 1, 64, &K));
  CHECK(K == 12);
  CHECK_OK(dama_mask_ids(ish, NULL, NULL, rm, 1, 64, K));
  for (int i = 0; i < 12; i++) CHECK(rm[ish[i]] == 0 && (i == 0 || ish[i] > ish[i - 1]));
}

/* ---------------------------------------------------------------- token kernels */

static double dot(const float *a, const float *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
  return s;
}

DAMA_TEST(gather_forward_backward) {
  const int64_t N = 5, L = 16, K = 4, D = 33;
  float *x = malloc(sizeof(float) * N * L * D), *out = malloc(sizeof(float) * N * K * D);
  float *g = malloc(sizeof(float) * N * K * D), *dx = calloc((size_t)(N * L * D), sizeof(float));
  float noise[80];
  int64_t sh[80], kp[20];
  for (int64_t i = 0; i < N * L * D; i++) x[i] = frand() - 0.5f;
  for (int64_t i = 0; i < N * K * D; i++) g[i] = frand() - 0.5f;
  for (int i = 0; i < 80; i++) noise[i] = frand();
  CHECK_OK(dama_mask_random(NULL, sh, NULL, kp, noise, N, L, K));
  CHECK_OK(dama_mask_gather_forward(out, x, kp, N, L, K, D));
  int ok = 1;
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++)
      for (int64_t c = 0; c < D; c++) ok &= out[(n * K + k) * D + c] == x[(n * L + kp[n * K + k]) * D + c];
  CHECK(ok);
  CHECK_OK(dama_mask_gather_backward(dx, g, kp, N, L, K, D));
  CHECK_CLOSE(dot(out, g, N * K * D), dot(x, dx, N * L * D), 1e-9);
  /* not-kept rows get zero gradient; backward accumulates */
  int64_t zero_rows = 0;
  for (int64_t r = 0; r < N * L; r++) {
    int all0 = 1;
    for (int64_t c = 0; c < D; c++) all0 &= dx[r * D + c] == 0.0f;
    zero_rows += all0;
  }
  CHECK(zero_rows == N * (L - K));
  float before = dx[(0 * L + kp[0]) * D];
  CHECK_OK(dama_mask_gather_backward(dx, g, kp, N, L, K, D));
  CHECK_CLOSE(dx[(0 * L + kp[0]) * D], 2 * before, 1e-6);
  kp[3] = L;
  CHECK_STATUS(dama_mask_gather_forward(out, x, kp, N, L, K, D), DAMA_ERR_INDEX);
  CHECK(strstr(dama_last_error(), "ids_keep[0, 3] = 16") != NULL);
  free(x); free(out); free(g); free(dx);
}

DAMA_TEST(unshuffle_forward_backward) {
  const int64_t N = 6, L = 16, K = 4, D = 130; /* D > 64: several feature blocks for dmask_token */
  float *tok = malloc(sizeof(float) * N * K * D), *mt = malloc(sizeof(float) * D);
  float *out = malloc(sizeof(float) * N * L * D), *g = malloc(sizeof(float) * N * L * D);
  float *dtok = calloc((size_t)(N * K * D), sizeof(float)), *dmt = calloc((size_t)D, sizeof(float));
  float noise[96];
  int64_t sh[96], rs[96];
  for (int64_t i = 0; i < N * K * D; i++) tok[i] = frand() - 0.5f;
  for (int64_t i = 0; i < D; i++) mt[i] = frand() - 0.5f;
  for (int64_t i = 0; i < N * L * D; i++) g[i] = frand() - 0.5f;
  for (int i = 0; i < 96; i++) noise[i] = frand();
  CHECK_OK(dama_mask_random(NULL, sh, rs, NULL, noise, N, L, K));
  CHECK_OK(dama_mask_unshuffle_forward(out, tok, mt, rs, N, L, K, D));
  int ok = 1;
  for (int64_t n = 0; n < N; n++)
    for (int64_t l = 0; l < L; l++) {
      int64_t j = rs[n * L + l];
      const float *want = j < K ? tok + (n * K + j) * D : mt;
      for (int64_t c = 0; c < D; c++) ok &= out[(n * L + l) * D + c] == want[c];
    }
  CHECK(ok);
  /* unshuffle(gather(...)) round trip: kept patch l's token comes back at position l */
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) CHECK(out[(n * L + sh[n * L + k]) * D] == tok[(n * K + k) * D]);
  CHECK_OK(dama_mask_unshuffle_backward(dtok, dmt, g, rs, N, L, K, D));
  CHECK_CLOSE(dot(out, g, N * L * D), dot(tok, dtok, N * K * D) + dot(mt, dmt, D), 1e-6);
  for (int64_t c = 0; c < D; c++) {
    double s = 0;
    for (int64_t r = 0; r < N * L; r++) if (rs[r] >= K) s += g[r * D + c];
    CHECK_CLOSE(dmt[c], s, 1e-5);
  }
  /* dmask_token does not depend on the thread count (fixed chunks, summed in order) */
  {
    const int64_t BN = 96, BL = 64, BK = 12, BD = 96;
    float *bg = malloc(sizeof(float) * BN * BL * BD), a1[96] = {0}, a2[96] = {0}, bnoise[96 * 64];
    int64_t *brs = malloc(sizeof(int64_t) * BN * BL), *bsh = malloc(sizeof(int64_t) * BN * BL);
    for (int64_t i = 0; i < BN * BL * BD; i++) bg[i] = frand() - 0.5f;
    for (int64_t i = 0; i < BN * BL; i++) bnoise[i] = frand();
    int threads = dama_get_num_threads();
    dama_status s1 = dama_mask_random(NULL, bsh, brs, NULL, bnoise, BN, BL, BK);
    dama_set_num_threads(1);
    dama_status s2 = dama_mask_unshuffle_backward(NULL, a1, bg, brs, BN, BL, BK, BD);
    dama_set_num_threads(2);
    dama_status s3 = dama_mask_unshuffle_backward(NULL, a2, bg, brs, BN, BL, BK, BD);
    dama_set_num_threads(threads);
    free(bg); free(brs); free(bsh);
    CHECK(s1 == DAMA_OK && s2 == DAMA_OK && s3 == DAMA_OK);
    CHECK(memcmp(a1, a2, sizeof a1) == 0);
  }
  /* either gradient may be skipped */
  CHECK_OK(dama_mask_unshuffle_backward(NULL, dmt, g, rs, N, L, K, D));
  CHECK_OK(dama_mask_unshuffle_backward(dtok, NULL, g, rs, N, L, K, D));
  rs[7] = -1;
  CHECK_STATUS(dama_mask_unshuffle_forward(out, tok, mt, rs, N, L, K, D), DAMA_ERR_INDEX);
  CHECK(strstr(dama_last_error(), "ids_restore[0, 7] = -1") != NULL);
  free(tok); free(mt); free(out); free(g); free(dtok); free(dmt);
}
