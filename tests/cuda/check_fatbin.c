/* check_fatbin BINARY ARCHS: the GPU code an executable carries is exactly what CMAKE_CUDA_ARCHITECTURES asked for
 * (ARCHS, e.g. "80-real;90a-real;90-virtual": machine code for sm_80 and sm_90a, PTX for compute_90), read from its
 * .nv_fatbin section without a GPU or cuobjdump (the toolkit here has none).
 *
 * The fatbin layout is NVIDIA's and undocumented; this follows what the toolkit writes (and what open tools that
 * list fatbins read): a 16-byte header (magic 0xBA55ED50, version, header size, payload size) followed by entries
 * whose header starts {uint16 kind (1 = PTX, 2 = ELF), uint16, uint32 header size, uint64 payload size, uint32,
 * uint32, uint16 minor, uint16 major, uint32 arch, ...} with a 64-bit flags word at byte 40, whose bit 0x100000 marks
 * architecture-specific code (sm_90a rather than sm_90; checked against nvcc 13.0's output). Exit 0 when the sets
 * match, 1 (printing both) when not, 2 when the binary cannot be read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CODES 64

typedef struct { char items[MAX_CODES][24]; int n; } code_set;

static void add(code_set *s, const char *text) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->items[i], text) == 0) return;
  if (s->n < MAX_CODES) snprintf(s->items[s->n++], sizeof s->items[0], "%s", text);
}

static int contains(const code_set *s, const char *text) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->items[i], text) == 0) return 1;
  return 0;
}

static int same(const code_set *a, const code_set *b) {
  if (a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++)
    if (!contains(b, a->items[i])) return 0;
  return 1;
}

static void print(const char *what, const code_set *s) {
  printf("%s:", what);
  for (int i = 0; i < s->n; i++) printf(" %s", s->items[i]);
  printf("\n");
}

static uint64_t rd(const unsigned char *p, int n) {   /* little-endian */
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* The fatbin entries in [p, p + n) into found ("sm_90a", "compute_90"). Returns the number of fatbins read. */
static int read_fatbins(const unsigned char *p, uint64_t n, code_set *found) {
  int fatbins = 0;
  uint64_t off = 0;
  while (off + 16 <= n) {
    if (rd(p + off, 4) != 0xBA55ED50u) { off += 8; continue; }   /* fatbins are 8-byte aligned in the section */
    uint64_t hsize = rd(p + off + 6, 2), size = rd(p + off + 8, 8);
    uint64_t e = off + hsize, end = off + hsize + size;
    if (end > n || hsize < 16) return -1;
    fatbins++;
    while (e + 48 <= end) {
      uint64_t kind = rd(p + e, 2), ehsize = rd(p + e + 4, 4), esize = rd(p + e + 8, 8);
      uint64_t arch = rd(p + e + 28, 4), flags = rd(p + e + 40, 8);
      if (ehsize < 48 || e + ehsize + esize > end) return -1;
      char text[24];
      const char *suffix = (flags & 0x100000u) ? "a" : "";
      if (kind == 2) snprintf(text, sizeof text, "sm_%u%s", (unsigned)arch, suffix);
      else if (kind == 1) snprintf(text, sizeof text, "compute_%u%s", (unsigned)arch, suffix);
      else snprintf(text, sizeof text, "kind%u_%u", (unsigned)kind, (unsigned)arch);
      add(found, text);
      e += ehsize + esize;
    }
    off = end;
  }
  return fatbins;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: check_fatbin BINARY 'ARCH;ARCH...'\n"); return 2; }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *img = malloc((size_t)len);
  if (!img || fread(img, 1, (size_t)len, f) != (size_t)len) { fprintf(stderr, "cannot read %s\n", argv[1]); return 2; }
  fclose(f);
  if (len < 64 || memcmp(img, "\x7f" "ELF", 4) != 0 || img[4] != 2) { fprintf(stderr, "not an ELF64 file\n"); return 2; }
  uint64_t shoff = rd(img + 0x28, 8), shentsize = rd(img + 0x3A, 2), shnum = rd(img + 0x3C, 2),
           shstrndx = rd(img + 0x3E, 2);
  if (shoff + shnum * shentsize > (uint64_t)len || shstrndx >= shnum) { fprintf(stderr, "bad section table\n"); return 2; }
  const unsigned char *strsec = img + shoff + shstrndx * shentsize;
  uint64_t stroff = rd(strsec + 0x18, 8);
  code_set found = {.n = 0}, want = {.n = 0};
  int fatbins = 0;
  for (uint64_t i = 0; i < shnum; i++) {
    const unsigned char *sh = img + shoff + i * shentsize;
    const char *name = (const char *)img + stroff + rd(sh, 4);
    if (strcmp(name, ".nv_fatbin") != 0) continue;
    uint64_t off = rd(sh + 0x18, 8), size = rd(sh + 0x20, 8);
    if (off + size > (uint64_t)len) { fprintf(stderr, "bad .nv_fatbin section\n"); return 2; }
    int k = read_fatbins(img + off, size, &found);
    if (k < 0) { fprintf(stderr, "a fatbin entry runs past its fatbin\n"); return 2; }
    fatbins += k;
  }
  /* ARCHS in CMAKE_CUDA_ARCHITECTURES syntax */
  char archs[512];
  snprintf(archs, sizeof archs, "%s", argv[2]);
  for (char *tok = strtok(archs, "; "); tok; tok = strtok(NULL, "; ")) {
    char num[16], text[24];
    size_t k = strcspn(tok, "-");
    snprintf(num, sizeof num, "%.*s", (int)(k < sizeof num ? k : sizeof num - 1), tok);
    const char *kindpart = tok[k] ? tok + k + 1 : "";
    if (strcmp(kindpart, "virtual") != 0) { snprintf(text, sizeof text, "sm_%s", num); add(&want, text); }
    if (strcmp(kindpart, "real") != 0) { snprintf(text, sizeof text, "compute_%s", num); add(&want, text); }
  }
  printf("%s: %d fatbin(s)\n", argv[1], fatbins);
  print("found", &found);
  print("asked", &want);
  free(img);
  if (!same(&found, &want)) { printf("MISMATCH\n"); return 1; }
  printf("ok\n");
  return 0;
}
