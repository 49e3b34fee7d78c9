/* PNG writing (8/16-bit, 1-4 channels) read back by stb_image; JPEG/BMP reading; the DSB PNGs of
 * shared/data. */
#define _GNU_SOURCE
#include "dama_test.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* stb_image_write only to make JPEG and BMP inputs for the readers. */
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#define tmp_path dama_test_tmp_path   /* shared helpers of tests/c/dama_test.c */
#define data_dir dama_test_data_dir
static int same_tensor(const dama_tensor *a, const dama_tensor *b) {
  if (a->dtype != b->dtype || dama_numel(a) != dama_numel(b)) return 0;
  return memcmp(dama_data_ptr(a), dama_data_ptr(b), (size_t)(dama_numel(a) * dama_dtype_size((dama_dtype)a->dtype))) == 0;
}

DAMA_TEST(png_roundtrip_8_and_16_bit_1_to_4_channels) {
  for (int bits = 8; bits <= 16; bits += 8)
    for (int C = 1; C <= 4; C++)
      for (int smooth = 0; smooth < 2; smooth++) {
        dama_tensor *t = NULL, *back = NULL;
        int64_t s[3] = {23, 31, C};
        CHECK_OK(dama_empty(&t, 3, s, bits == 8 ? DAMA_U8 : DAMA_U16, (dama_device){DAMA_CPU, 0}));
        uint32_t r = 1;
        for (int64_t i = 0; i < dama_numel(t); i++) {
          r = r * 1664525u + 1013904223u;
          uint32_t v = smooth ? (uint32_t)(i * 97 + (r >> 29)) : r >> 8;
          if (bits == 8) ((uint8_t *)dama_data_ptr(t))[i] = (uint8_t)v;
          else ((uint16_t *)dama_data_ptr(t))[i] = (uint16_t)v;
        }
        const char *p = tmp_path("rt.png");
        CHECK_OK(dama_png_write(p, t));
        dama_image_info info;
        CHECK_OK(dama_image_info_read(p, &info));
        CHECK(info.format == DAMA_FMT_PNG && info.width == 31 && info.height == 23 && info.channels == C);
        CHECK(info.dtype == (bits == 8 ? DAMA_U8 : DAMA_U16));
        CHECK_OK(dama_image_read(p, &back));
        CHECK_MSG(same_tensor(t, back), "%d-bit %d-channel PNG differs", bits, C);
        dama_tensor_release(back);
        float *f = malloc(sizeof(float) * (size_t)dama_numel(t));
        CHECK_OK(dama_image_read_f32(p, f, 23, 31, C));
        float want = bits == 8 ? (float)((uint8_t *)dama_data_ptr(t))[5] / 255.0f
                               : (float)((uint16_t *)dama_data_ptr(t))[5] / 65535.0f;
        CHECK(f[5] == want);
        free(f);
        dama_tensor_release(t);
      }
}

DAMA_TEST(png_writer_errors_and_2d_input) {
  dama_tensor *t = NULL, *back = NULL;
  int64_t s[2] = {4, 5}, s3[3] = {4, 5, 5};
  CHECK_OK(dama_full(&t, 2, s, 200, DAMA_U8, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_image_write(tmp_path("g.png"), t));
  CHECK_OK(dama_image_read(tmp_path("g.png"), &back));
  CHECK(back->shape[2] == 1 && ((uint8_t *)dama_data_ptr(back))[19] == 200);
  dama_tensor_release(back);
  dama_tensor_release(t);
  CHECK_OK(dama_zeros(&t, 2, s, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_STATUS(dama_png_write(tmp_path("f.png"), t), DAMA_ERR_DTYPE);
  CHECK(strstr(dama_last_error(), "f.png") != NULL);
  dama_tensor_release(t);
  CHECK_OK(dama_zeros(&t, 3, s3, DAMA_U8, (dama_device){DAMA_CPU, 0}));
  CHECK_STATUS(dama_png_write(tmp_path("c5.png"), t), DAMA_ERR_SHAPE);
  dama_tensor_release(t);
}

static void write_func(void *ctx, void *data, int size) {
  FILE *f = ctx;
  fwrite(data, 1, (size_t)size, f);
}

DAMA_TEST(jpeg_and_bmp_are_read_by_stb) {
  uint8_t px[16 * 12 * 3];
  for (int i = 0; i < 16 * 12 * 3; i++) px[i] = (uint8_t)(i * 3);
  FILE *f = fopen(tmp_path("a.bmp"), "wb");
  CHECK(f != NULL);
  stbi_write_bmp_to_func(write_func, f, 16, 12, 3, px);
  fclose(f);
  dama_tensor *t = NULL;
  CHECK_OK(dama_image_read(tmp_path("a.bmp"), &t));
  CHECK(t->dtype == DAMA_U8 && t->shape[0] == 12 && t->shape[1] == 16 && t->shape[2] == 3);
  CHECK(memcmp(dama_data_ptr(t), px, sizeof px) == 0);
  dama_tensor_release(t);
  /* a JPEG written by libjpeg (tests/fixtures/io/make_fixtures.py) */
  const char *jpg = DAMA_SOURCE_ROOT "/tests/fixtures/io/gradient.jpg";
  dama_image_info info;
  CHECK_OK(dama_image_info_read(jpg, &info));
  CHECK(info.format == DAMA_FMT_JPEG && info.width == 16 && info.height == 12 && info.channels == 3);
  dama_tensor *want = NULL;
  CHECK_OK(dama_npy_load(DAMA_SOURCE_ROOT "/tests/fixtures/io/gradient.expected.npy", 0, &want));
  CHECK_OK(dama_image_read(jpg, &t));
  CHECK(t->dtype == DAMA_U8 && dama_numel(t) == dama_numel(want));
  double err = 0;
  for (int i = 0; i < 16 * 12 * 3; i++)
    err += fabs((double)((uint8_t *)dama_data_ptr(t))[i] - ((uint8_t *)dama_data_ptr(want))[i]);
  CHECK_MSG(err / (16 * 12 * 3) < 4, "mean JPEG error %g", err / (16 * 12 * 3));
  dama_tensor_release(t);
  dama_tensor_release(want);
  /* a truncated JPEG: an error or a partial image, never a crash */
  FILE *g = fopen(jpg, "rb");
  uint8_t buf[4096];
  size_t n = fread(buf, 1, sizeof buf, g);
  fclose(g);
  for (size_t len = 0; len < n; len += 7) {
    FILE *h = fopen(tmp_path("t.jpg"), "wb");
    fwrite(buf, 1, len, h);
    fclose(h);
    if (dama_image_read(tmp_path("t.jpg"), &t) == DAMA_OK) dama_tensor_release(t);
    else CHECK(strstr(dama_last_error(), "t.jpg") != NULL);
  }
}

DAMA_TEST(png_truncated_and_garbage_do_not_crash) {
  dama_tensor *t = NULL;
  int64_t s[3] = {30, 20, 3};
  CHECK_OK(dama_empty(&t, 3, s, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  for (int64_t i = 0; i < dama_numel(t); i++) ((uint16_t *)dama_data_ptr(t))[i] = (uint16_t)(i * 31);
  CHECK_OK(dama_png_write(tmp_path("src.png"), t));
  dama_tensor_release(t);
  FILE *g = fopen(tmp_path("src.png"), "rb");
  uint8_t buf[16384];
  size_t n = fread(buf, 1, sizeof buf, g);
  fclose(g);
  uint32_t r = 3;
  int errs = 0;
  for (int v = 0; v < 600; v++) {
    uint8_t b2[16384];
    memcpy(b2, buf, n);
    size_t len = v < 200 ? n * (size_t)v / 200 : n;
    if (v >= 200) {
      r = r * 1664525u + 1013904223u;
      b2[8 + (r >> 8) % (n - 8)] ^= (uint8_t)(1 + (r >> 24) % 255);
    }
    FILE *h = fopen(tmp_path("bad.png"), "wb");
    fwrite(b2, 1, len, h);
    fclose(h);
    float dst[30 * 20 * 3];
    dama_status st = dama_image_read(tmp_path("bad.png"), &t);
    if (st == DAMA_OK) dama_tensor_release(t);
    else { errs++; CHECK(strstr(dama_last_error(), "bad.png") != NULL); }
    st = dama_image_read_f32(tmp_path("bad.png"), dst, 30, 20, 3);
    if (st != DAMA_OK) CHECK(strstr(dama_last_error(), "bad.png") != NULL);
    t = NULL;
  }
  CHECK(errs > 200);
}

DAMA_TEST(png_dsb_images_are_8_bit_grey) {
  const char *dd = data_dir();
  if (!dd) SKIP("shared/data is absent");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/seg/dsb/images", dd);
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  struct dirent *e;
  int n = 0, n256 = 0;
  while ((e = readdir(d)) != NULL) {
    if (!strstr(e->d_name, ".png")) continue;
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    dama_tensor *t = NULL;
    CHECK_OK(dama_image_read(p, &t));
    CHECK(t->dtype == DAMA_U8 && t->shape[2] == 1);
    if (t->shape[0] == 256 && t->shape[1] == 256) n256++;
    dama_tensor_release(t);
    n++;
  }
  closedir(d);
  CHECK_MSG(n == 120 && n256 == 75, "%d images, %d of 256x256", n, n256);
}

/* Found by tests/fuzz/fuzz_tiff: a 13-byte GIF header claiming 23362 x 18761 pixels made stb_image
 * allocate about 1.75 GB (twice) before failing. The header's size is now checked against the file. */
DAMA_TEST(tiny_image_header_claiming_a_huge_size_is_refused_before_decoding) {
  static const uint8_t gif[13] = {'G', 'I', 'F', '8', '7', 'a', 0x42, 0x5b, 0x49, 0x49, 0x28, 0x00, 0x80};
  const char *p = tmp_path("huge_header.gif");
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL);
  fwrite(gif, 1, sizeof gif, f);
  fclose(f);
  dama_tensor *t = NULL;
  CHECK_STATUS(dama_image_read(p, &t), DAMA_ERR_FORMAT);
  CHECK_MSG(strstr(dama_last_error(), "huge_header.gif") && strstr(dama_last_error(), "header claims 23362 x 18761"),
            "%s", dama_last_error());
  CHECK_STATUS(dama_image_read_f32_tensor(p, 0, &t), DAMA_ERR_FORMAT);
  CHECK(strstr(dama_last_error(), "header claims") != NULL);
  /* a legitimate, highly compressible PNG (all zeros) still reads */
  dama_tensor *z = NULL;
  int64_t shape[3] = {512, 512, 1};
  CHECK_OK(dama_zeros(&z, 3, shape, DAMA_U8, (dama_device){DAMA_CPU, 0}));
  const char *zp = tmp_path("zeros.png");
  CHECK_OK(dama_png_write(zp, z));
  CHECK_OK(dama_image_read(zp, &t));
  CHECK(t->shape[0] == 512 && t->shape[1] == 512);
  dama_tensor_release(t);
  dama_tensor_release(z);
}

/* Found by tests/fuzz/fuzz_npy: a JPEG whose Huffman table (DHT) declares more than 256 codes made
 * stb_image 2.27 write past its 257-entry size table (UBSan: index 257 out of bounds). Refused first. */
DAMA_TEST(jpeg_huffman_table_with_too_many_codes_is_refused) {
  uint8_t jpg[80];
  memset(jpg, 0xff, sizeof jpg);
  const uint8_t head[9] = {0xff, 0xd8, 0xff, 0xc4, 0xfd, 0x32, 0x00, 0x4d, 0xff};
  memcpy(jpg, head, sizeof head);
  const char *p = tmp_path("bad_dht.jpg");
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL);
  fwrite(jpg, 1, sizeof jpg, f);
  fclose(f);
  dama_tensor *t = NULL;
  CHECK_STATUS(dama_image_read(p, &t), DAMA_ERR_FORMAT);
  CHECK_MSG(strstr(dama_last_error(), "bad_dht.jpg") && strstr(dama_last_error(), "Huffman table"), "%s",
            dama_last_error());
  /* the same with the table cut short by the end of the file (stb reads the missing bytes as 0) */
  static const uint8_t cut[21] = {0xff, 0xd8, 0xff, 0xff, 0xc4, 0x4d, 0, 0, 0, 0, 0, 0, 0, 0x15, 0x02,
                                  0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  f = fopen(p, "wb");
  CHECK(f != NULL);
  fwrite(cut, 1, sizeof cut, f);
  fclose(f);
  CHECK_STATUS(dama_image_read(p, &t), DAMA_ERR_FORMAT);
  CHECK_MSG(strstr(dama_last_error(), "Huffman table"), "%s", dama_last_error());
  /* a segment length that ends mid-table: stb reads the second table past the segment's end */
  static const uint8_t past[36] = {0xff, 0xd8, 0xff, 0xc4, 0x00, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                   0, 0, 0, 0, 0, 0x01, 0x00, 0x02, 0x3d, 0x00, 0xfa, 0, 0, 0, 0, 0, 0, 0};
  f = fopen(p, "wb");
  CHECK(f != NULL);
  fwrite(past, 1, sizeof past, f);
  fclose(f);
  CHECK_STATUS(dama_image_read(p, &t), DAMA_ERR_FORMAT);
  CHECK_MSG(strstr(dama_last_error(), "Huffman table"), "%s", dama_last_error());
}

/* Found by tests/fuzz/fuzz_png: a 115-byte PNG whose IDAT chunk claims about 2 GB made stb_image grow
 * its buffer to that size before reading. Chunk lengths are checked against the file first. */
DAMA_TEST(png_chunk_longer_than_the_file_is_refused) {
  const char *p = DAMA_SOURCE_ROOT "/tests/fuzz/corpus/png/regress_png_idat_claims_2GB";
  dama_tensor *t = NULL;
  CHECK_STATUS(dama_image_read(p, &t), DAMA_ERR_FORMAT);
  CHECK_MSG(strstr(dama_last_error(), "regress_png_idat_claims_2GB") && strstr(dama_last_error(), "the chunk at byte"),
            "%s", dama_last_error());
}

/* Found by tests/fuzz/fuzz_tiff: a binary PNM header whose width has 40 digits made stb_image 2.27 overflow a signed
 * int while parsing it (UBSan: signed multiply overflow). Header numbers over 9 digits are refused first; ordinary
 * PNMs still read. */
DAMA_TEST(pnm_header_number_too_long_is_refused) {
  char buf[64];
  snprintf(buf, sizeof buf, "P5 %s 2 255\n", "8666666666666666666666666666666666666666");
  const char *p = tmp_path("long.pgm");
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL);
  fwrite(buf, 1, strlen(buf), f);
  fwrite("\0\0\0\0", 1, 4, f);
  fclose(f);
  dama_tensor *t = NULL;
  CHECK_STATUS(dama_image_read(p, &t), DAMA_ERR_FORMAT);
  CHECK_MSG(strstr(dama_last_error(), "long.pgm") && strstr(dama_last_error(), "40 digits, expected at most 9"), "%s",
            dama_last_error());
  dama_image_info info;
  CHECK_STATUS(dama_image_info_read(p, &info), DAMA_ERR_FORMAT);
  /* a comment before the width is skipped as stb skips it; a valid 3 x 2 grey image reads */
  static const char ok[] = "P5\n# made by hand\n3 2\n255\n";
  f = fopen(p, "wb");
  CHECK(f != NULL);
  fwrite(ok, 1, strlen(ok), f);
  const uint8_t px[6] = {0, 50, 100, 150, 200, 250};
  fwrite(px, 1, sizeof px, f);
  fclose(f);
  CHECK_STATUS(dama_image_read(p, &t), DAMA_OK);
  CHECK(t->ndim >= 2 && dama_numel(t) == 6);
  dama_tensor_release(t);
}
