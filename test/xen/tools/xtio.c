/*
 * xtio: the block I/O workload of the Xen end-to-end test.
 *
 *   xtio run DEV     (in the domU, on /dev/xvda) write a deterministic pattern,
 *                    read it back and compare; print MB/s and IOPS
 *   xtio verify FILE (in dom0, on the image file) check the same bytes
 *   xtio fill FILE   write the whole layout (all of region C) with the pattern,
 *                    so a guest can check it read-only (`verify`, default
 *                    --rand-written: all)
 *   xtio refuse DEV  a 4 KiB O_DIRECT write to the first block of region C
 *                    must fail; prints "XTIO REFUSED errno=N name"
 *   xtio waitmark DEV TEXT SECONDS  O_DIRECT reads of the disk's last 4 KiB
 *                    block, every 0.5 s, until it starts with TEXT (dom0
 *                    writes it into the image file: a signal to the guest)
 *   xtio perf DEV    (the performance A/B, dom0/stages/perf-ab.sh) O_DIRECT
 *                    workloads on region A, each for --perf-seconds (3):
 *                    1 MiB sequential write (at least one whole pass) and
 *                    read, 4 KiB random read and write at queue depth 1 and
 *                    at --perf-qd (16; that many threads). Writes put the
 *                    pattern, reads check it, so `xtio verify` of the image
 *                    still holds afterwards. Each workload prints
 *                    "XTIO PERF BEGIN name" and "XTIO PERF name ops=N
 *                    seconds=S iops=X MBps=Y" (dom0 samples its CPU time at
 *                    both lines), after an idle --perf-gap (1 s); with
 *                    --perf-seq-only 1 only the two 1 MiB workloads
 *
 * Options (both modes): --seq-mb N (32) --buf-mb N (8) --rand-mb N (4)
 *                       --rand-ops N (1024) --rand-seconds N (10) --seed N (1)
 *         (verify only) --rand-written K: how many region C blocks the guest
 *                       wrote (its rand_write_blocks result; default all)
 *
 * Layout of the disk, from offset 0:
 *   region A  seq-mb MiB   O_DIRECT sequential write (1 MiB requests), then
 *                          O_DIRECT sequential read; 4 KiB O_DIRECT random
 *                          reads are also taken from here
 *   region B  buf-mb MiB   buffered write (256 KiB), fsync, cache dropped,
 *                          buffered read, then O_DIRECT read
 *   region C  rand-mb MiB  4 KiB O_DIRECT writes, each block at most once, in
 *                          a scrambled order, then read back sequentially;
 *                          blocks not written must still read as zeroes
 * The two random phases stop after rand-ops operations (reads) or all blocks
 * (writes), or after rand-seconds of I/O time, whichever comes first, so a slow
 * backend or a busy host bounds the run time instead of failing it.
 * The 8-byte word at byte offset o of region R holds mix(seed, R, o / 8), so any
 * reader can check any byte without state. Times count only the time spent in
 * pread/pwrite/fsync calls (not pattern generation or comparison). Queue depth
 * is 1 throughout.
 *
 * Output lines start with "XTIO ": "XTIO PHASE name seconds" after each phase,
 * "XTIO RESULT key=value ...", then "XTIO OK" or "XTIO FAIL reason". Exit
 * status 0 only on success.
 *
 * Built static (gcc -O2 -static) so it runs in the bare busybox initramfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ULL * 1024ULL)
#define BLK 4096ULL

static uint64_t seed = 1;
static uint64_t seq_mb = 32, buf_mb = 8, rand_mb = 4, rand_ops = 1024, rand_seconds = 10;
static uint64_t rand_written = UINT64_MAX; /* verify: blocks of region C written */
static uint64_t perf_seconds = 3, perf_qd = 16, perf_gap = 1, perf_seq_only = 0;
static double io_seconds; /* accumulated by the timed wrappers */

static void phase(const char *name, double seconds) {
  printf("XTIO PHASE %s %.2f\n", name, seconds);
  fflush(stdout);
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("XTIO FAIL ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* splitmix64 finaliser: a good 64-bit mix of (seed, region, word index). */
static uint64_t mix(uint64_t region, uint64_t word) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + region * 0xD1B54A32D192ED03ULL + word;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Fill buf with region's pattern for bytes [off, off+len) of that region. */
static void fill(uint64_t region, uint64_t off, uint8_t *buf, size_t len) {
  uint64_t *w = (uint64_t *)buf;
  for (size_t i = 0; i < len / 8; i++) w[i] = mix(region, off / 8 + i);
}

/* Compare buf with the expected pattern; report the first mismatch. */
static void check(const char *what, uint64_t region, uint64_t base, uint64_t off,
                  const uint8_t *buf, size_t len) {
  const uint64_t *w = (const uint64_t *)buf;
  for (size_t i = 0; i < len / 8; i++) {
    uint64_t want = mix(region, off / 8 + i);
    if (w[i] != want)
      die("%s: mismatch at disk byte %llu (region %c +%llu): got %016llx want %016llx", what,
          (unsigned long long)(base + off + i * 8), (char)('A' + region),
          (unsigned long long)(off + i * 8), (unsigned long long)w[i], (unsigned long long)want);
  }
}

static void xpwrite(int fd, const void *buf, size_t len, uint64_t pos) {
  double t = now();
  ssize_t n = pwrite(fd, buf, len, (off_t)pos);
  io_seconds += now() - t;
  if (n != (ssize_t)len) die("pwrite %zu at %llu: %s", len, (unsigned long long)pos, n < 0 ? strerror(errno) : "short");
}

static void xpread(int fd, void *buf, size_t len, uint64_t pos) {
  double t = now();
  ssize_t n = pread(fd, buf, len, (off_t)pos);
  io_seconds += now() - t;
  if (n != (ssize_t)len) die("pread %zu at %llu: %s", len, (unsigned long long)pos, n < 0 ? strerror(errno) : "short");
}

static void xfsync(int fd) {
  double t = now();
  if (fsync(fd) != 0) die("fsync: %s", strerror(errno));
  io_seconds += now() - t;
}

static int xopen(const char *path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) die("open %s: %s", path, strerror(errno));
  return fd;
}

static uint8_t *alloc(size_t len) {
  void *p;
  if (posix_memalign(&p, BLK, len) != 0) die("out of memory");
  return p;
}

/* Sequential pass over [base, base+len) of one region, in chunk-sized requests. */
static double seq_pass(int fd, int writing, uint64_t region, uint64_t base, uint64_t len,
                       size_t chunk, const char *what) {
  uint8_t *buf = alloc(chunk);
  io_seconds = 0;
  for (uint64_t off = 0; off < len; off += chunk) {
    if (writing) {
      fill(region, off, buf, chunk);
      xpwrite(fd, buf, chunk, base + off);
    } else {
      xpread(fd, buf, chunk, base + off);
      check(what, region, base, off, buf, chunk);
    }
  }
  if (writing) xfsync(fd);
  free(buf);
  return io_seconds;
}

static uint64_t gcd(uint64_t a, uint64_t b) {
  while (b) { uint64_t t = a % b; a = b; b = t; }
  return a;
}

static void drop_caches(int fd) {
  /* Both are best effort: the O_DIRECT read that follows is the real check. */
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ioctl(fd, BLKFLSBUF, 0);
  int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (dc >= 0) { if (write(dc, "3\n", 2) < 0) {} close(dc); }
}

/* Region C write order: block number of the k-th write (a bijection on 0..n-1). */
static uint64_t perm_step(uint64_t n) {
  uint64_t step = 2654435761ULL % n;
  if (step == 0) step = 1;
  while (gcd(step, n) != 1) step++;
  return step;
}
static uint64_t perm_block(uint64_t k, uint64_t n, uint64_t step) { return (k * step + seed) % n; }

/* Read region C and check it: the first `written` blocks of the write order
 * hold the pattern, every other block is still zero. Returns I/O seconds. */
static double check_region_c(int fd, uint64_t base, uint64_t len, uint64_t written, const char *what) {
  uint64_t n = len / BLK, step = perm_step(n);
  uint8_t *done = calloc(n, 1), *buf = alloc(MIB);
  if (!done) die("out of memory");
  for (uint64_t k = 0; k < written && k < n; k++) done[perm_block(k, n, step)] = 1;
  io_seconds = 0;
  for (uint64_t off = 0; off < len; off += MIB) {
    xpread(fd, buf, MIB, base + off);
    for (uint64_t o = 0; o < MIB; o += BLK) {
      uint64_t b = (off + o) / BLK;
      if (done[b]) {
        check(what, 2, base, off + o, buf + o, BLK);
      } else {
        for (uint64_t i = 0; i < BLK; i++)
          if (buf[o + i]) die("%s: block %llu of region C was not written but is not zero", what, (unsigned long long)b);
      }
    }
  }
  free(done);
  free(buf);
  return io_seconds;
}

static int run(const char *dev) {
  uint64_t a_base = 0, a_len = seq_mb * MIB;
  uint64_t b_base = a_len, b_len = buf_mb * MIB;
  uint64_t c_base = b_base + b_len, c_len = rand_mb * MIB;
  uint64_t need = c_base + c_len;

  int dfd = xopen(dev, O_RDWR | O_DIRECT);
  off_t size = lseek(dfd, 0, SEEK_END);
  if (size < 0 || (uint64_t)size < need)
    die("%s is %lld bytes, the layout needs %llu", dev, (long long)size, (unsigned long long)need);
  printf("XTIO START dev=%s size=%lld seq_mb=%llu buf_mb=%llu rand_mb=%llu rand_ops=%llu rand_seconds=%llu seed=%llu\n",
         dev, (long long)size, (unsigned long long)seq_mb, (unsigned long long)buf_mb, (unsigned long long)rand_mb,
         (unsigned long long)rand_ops, (unsigned long long)rand_seconds, (unsigned long long)seed);
  fflush(stdout);

  /* Region A: O_DIRECT sequential write then read, 1 MiB requests. */
  double t_sw = seq_pass(dfd, 1, 0, a_base, a_len, MIB, "seq write");
  phase("seq-write", t_sw);
  double t_sr = seq_pass(dfd, 0, 0, a_base, a_len, MIB, "O_DIRECT seq read A");
  phase("seq-read", t_sr);

  /* Region B: buffered write, fsync, drop caches, buffered read, O_DIRECT read. */
  int bfd = xopen(dev, O_RDWR);
  double t_bw = seq_pass(bfd, 1, 1, b_base, b_len, 256 * 1024, "buffered write");
  phase("buffered-write", t_bw);
  drop_caches(bfd);
  double t_br = seq_pass(bfd, 0, 1, b_base, b_len, 256 * 1024, "buffered read B");
  phase("buffered-read", t_br);
  close(bfd);
  phase("direct-read-B", seq_pass(dfd, 0, 1, b_base, b_len, MIB, "O_DIRECT read B"));

  /* Region C: 4 KiB O_DIRECT writes, each block at most once, scrambled order. */
  uint8_t *blk = alloc(BLK);
  uint64_t nblk = c_len / BLK, step = perm_step(nblk), written = 0;
  io_seconds = 0;
  while (written < nblk && io_seconds < (double)rand_seconds) {
    uint64_t b = perm_block(written, nblk, step);
    fill(2, b * BLK, blk, BLK);
    xpwrite(dfd, blk, BLK, c_base + b * BLK);
    written++;
  }
  double t_rw = io_seconds; /* no fsync inside: O_DIRECT reached the device */
  phase("rand-write", t_rw);
  xfsync(dfd);
  phase("direct-read-C", check_region_c(dfd, c_base, c_len, written, "O_DIRECT read C"));

  /* 4 KiB O_DIRECT random reads from region A, each checked. */
  uint64_t x = seed * 0x2545F4914F6CDD1DULL + 1, ablk = a_len / BLK, reads = 0;
  io_seconds = 0;
  while (reads < rand_ops && io_seconds < (double)rand_seconds) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    uint64_t b = x % ablk;
    xpread(dfd, blk, BLK, a_base + b * BLK);
    check("random read", 0, a_base, b * BLK, blk, BLK);
    reads++;
  }
  double t_rr = io_seconds;
  phase("rand-read", t_rr);
  free(blk);
  close(dfd);

  printf("XTIO RESULT seq_write_MBps=%.1f seq_read_MBps=%.1f buf_write_MBps=%.1f buf_read_MBps=%.1f "
         "rand_read_iops=%.0f rand_write_iops=%.0f rand_read_ops=%llu rand_write_blocks=%llu\n",
         a_len / MIB / t_sw, a_len / MIB / t_sr, b_len / MIB / t_bw, b_len / MIB / t_br,
         reads / t_rr, written / t_rw, (unsigned long long)reads, (unsigned long long)written);
  printf("XTIO OK\n");
  fflush(stdout);
  return 0;
}

/* --- perf: one workload at a time, time-bounded, on region A ------------------------------ */

struct perf_job {
  int fd;
  int writing;
  uint64_t blocks;  /* 4 KiB blocks in region A */
  uint64_t x;       /* this thread's xorshift state */
  double until;     /* now() deadline */
  uint64_t ops;
};

static void *perf_rand_thread(void *arg) {
  struct perf_job *j = arg;
  uint8_t *blk = alloc(BLK);
  while (now() < j->until) {
    j->x ^= j->x << 13; j->x ^= j->x >> 7; j->x ^= j->x << 17;
    uint64_t b = j->x % j->blocks;
    if (j->writing) {
      fill(0, b * BLK, blk, BLK);
      if (pwrite(j->fd, blk, BLK, (off_t)(b * BLK)) != (ssize_t)BLK)
        die("perf random write at block %llu: %s", (unsigned long long)b, strerror(errno));
    } else {
      if (pread(j->fd, blk, BLK, (off_t)(b * BLK)) != (ssize_t)BLK)
        die("perf random read at block %llu: %s", (unsigned long long)b, strerror(errno));
      check("perf random read", 0, 0, b * BLK, blk, BLK);
    }
    j->ops++;
  }
  free(blk);
  return NULL;
}

static void perf_report(const char *name, uint64_t ops, uint64_t bytes, double secs) {
  printf("XTIO PERF %s ops=%llu seconds=%.3f iops=%.1f MBps=%.2f\n", name, (unsigned long long)ops, secs,
         ops / secs, bytes / (double)MIB / secs);
  fflush(stdout);
}

/* An idle gap first (--perf-gap s), so dom0's CPU-time samples at the BEGIN and result lines,
 * taken a poll interval late, do not mix two workloads. */
static void perf_begin(const char *name) {
  sleep((unsigned)perf_gap);
  printf("XTIO PERF BEGIN %s\n", name);
  fflush(stdout);
}

/* 4 KiB random I/O at queue depth qd (qd threads, each one request in flight). */
static void perf_rand(int fd, int writing, uint64_t qd, uint64_t a_len, const char *name) {
  struct perf_job jobs[64];
  pthread_t th[64];
  if (qd < 1 || qd > 64) die("--perf-qd must be 1..64");
  perf_begin(name);
  double t0 = now();
  for (uint64_t i = 0; i < qd; i++) {
    uint64_t x = (seed + i + 1) * 0x2545F4914F6CDD1DULL;
    jobs[i] = (struct perf_job){ fd, writing, a_len / BLK, x, t0 + (double)perf_seconds, 0 };
    if (pthread_create(&th[i], NULL, perf_rand_thread, &jobs[i])) die("pthread_create failed");
  }
  uint64_t ops = 0;
  for (uint64_t i = 0; i < qd; i++) {
    pthread_join(th[i], NULL);
    ops += jobs[i].ops;
  }
  if (writing) xfsync(fd);
  perf_report(name, ops, ops * BLK, now() - t0);
}

/* 1 MiB sequential passes over region A: writes at least one whole pass, reads check. */
static void perf_seq(int fd, int writing, uint64_t a_len, const char *name) {
  uint8_t *buf = alloc(MIB);
  perf_begin(name);
  double t0 = now(), until = t0 + (double)perf_seconds;
  uint64_t ops = 0, off = 0;
  while (now() < until || (writing && ops * MIB < a_len)) {
    if (writing) {
      fill(0, off, buf, MIB);
      if (pwrite(fd, buf, MIB, (off_t)off) != (ssize_t)MIB)
        die("perf seq write at %llu: %s", (unsigned long long)off, strerror(errno));
    } else {
      if (pread(fd, buf, MIB, (off_t)off) != (ssize_t)MIB)
        die("perf seq read at %llu: %s", (unsigned long long)off, strerror(errno));
      check("perf seq read", 0, 0, off, buf, MIB);
    }
    ops++;
    off = off + MIB >= a_len ? 0 : off + MIB;
  }
  if (writing) xfsync(fd);
  free(buf);
  perf_report(name, ops, ops * MIB, now() - t0);
}

static int perf(const char *dev) {
  uint64_t a_len = seq_mb * MIB;
  int fd = xopen(dev, O_RDWR | O_DIRECT);
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0 || (uint64_t)size < a_len)
    die("%s is %lld bytes, region A needs %llu", dev, (long long)size, (unsigned long long)a_len);
  printf("XTIO START perf dev=%s seq_mb=%llu perf_seconds=%llu perf_qd=%llu\n", dev, (unsigned long long)seq_mb,
         (unsigned long long)perf_seconds, (unsigned long long)perf_qd);
  fflush(stdout);
  char qdname[2][32];
  snprintf(qdname[0], sizeof qdname[0], "randread-qd%llu", (unsigned long long)perf_qd);
  snprintf(qdname[1], sizeof qdname[1], "randwrite-qd%llu", (unsigned long long)perf_qd);
  perf_seq(fd, 1, a_len, "seqwrite-1m");
  perf_seq(fd, 0, a_len, "seqread-1m");
  if (!perf_seq_only) {
    perf_rand(fd, 0, 1, a_len, "randread-qd1");
    perf_rand(fd, 1, 1, a_len, "randwrite-qd1");
    perf_rand(fd, 0, perf_qd, a_len, qdname[0]);
    perf_rand(fd, 1, perf_qd, a_len, qdname[1]);
  }
  sleep((unsigned)perf_gap);
  close(fd);
  printf("XTIO OK\n");
  fflush(stdout);
  return 0;
}

static int verify(const char *path) {
  uint64_t a_len = seq_mb * MIB, b_len = buf_mb * MIB, c_len = rand_mb * MIB;
  int fd = xopen(path, O_RDONLY);
  seq_pass(fd, 0, 0, 0, a_len, MIB, "verify region A");
  seq_pass(fd, 0, 1, a_len, b_len, MIB, "verify region B");
  check_region_c(fd, a_len + b_len, c_len, rand_written, "verify region C");
  close(fd);
  printf("XTIO VERIFIED %s bytes=%llu rand_written=%lld\n", path, (unsigned long long)(a_len + b_len + c_len),
         rand_written == UINT64_MAX ? -1LL : (long long)rand_written);
  printf("XTIO OK\n");
  return 0;
}

static int fill_file(const char *path) {
  int fd = xopen(path, O_RDWR);
  seq_pass(fd, 1, 0, 0, seq_mb * MIB, MIB, "fill region A");
  seq_pass(fd, 1, 1, seq_mb * MIB, buf_mb * MIB, MIB, "fill region B");
  seq_pass(fd, 1, 2, (seq_mb + buf_mb) * MIB, rand_mb * MIB, MIB, "fill region C");
  close(fd);
  printf("XTIO FILLED %s\nXTIO OK\n", path);
  return 0;
}

/* A write that must not reach the disk (read-only attach). Its data is not the
 * pattern, so a write that got through also shows in a later verify. */
static int refuse(const char *dev) {
  uint64_t pos = (seq_mb + buf_mb) * MIB;
  int fd = open(dev, O_RDWR | O_DIRECT);
  if (fd < 0) {
    printf("XTIO REFUSED errno=%d %s (open O_RDWR)\n", errno, strerror(errno));
    return 0;
  }
  uint8_t *buf = alloc(BLK);
  memset(buf, 0xA5, BLK);
  ssize_t n = pwrite(fd, buf, BLK, (off_t)pos);
  int e = errno;
  if (n == (ssize_t)BLK && fsync(fd) != 0) { n = -1; e = errno; }
  close(fd);
  free(buf);
  if (n == (ssize_t)BLK) die("a write of %llu bytes at %llu on %s succeeded", BLK, (unsigned long long)pos, dev);
  printf("XTIO REFUSED errno=%d %s (pwrite)\n", n < 0 ? e : 0, n < 0 ? strerror(e) : "short write");
  return 0;
}

static int waitmark(const char *dev, const char *text, const char *secs) {
  int fd = xopen(dev, O_RDONLY | O_DIRECT);
  off_t size = lseek(fd, 0, SEEK_END);
  uint8_t *buf = alloc(BLK);
  double end = now() + atof(secs ? secs : "60"), t0 = now();
  if (size < (off_t)BLK) die("%s is too small", dev);
  for (;;) {
    xpread(fd, buf, BLK, (uint64_t)size - BLK);
    if (!memcmp(buf, text, strlen(text))) break;
    if (now() > end) die("no mark %s on %s after %s s", text, dev, secs);
    usleep(500000);
  }
  close(fd);
  free(buf);
  printf("XTIO MARK %s after %.1f s\n", text, now() - t0);
  return 0;
}

static uint64_t num(const char *opt, const char *v) {
  char *end;
  if (!v) die("%s needs a value", opt);
  unsigned long long n = strtoull(v, &end, 0);
  if (*end || n == 0) die("bad value for %s: %s", opt, v);
  return n;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3) {
    fprintf(stderr, "usage: xtio run DEV | verify FILE | fill FILE | refuse DEV | waitmark DEV TEXT SECONDS | perf DEV\n"
                    "  [--seq-mb N] [--buf-mb N] [--rand-mb N] [--rand-ops N] [--rand-seconds N] [--seed N]\n"
                    "  [--rand-written K] [--perf-seconds N] [--perf-qd N] [--perf-gap S] [--perf-seq-only 1]\n");
    return 2;
  }
  for (int i = strcmp(argv[1], "waitmark") ? 3 : argc; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--seq-mb")) seq_mb = num(o, v);
    else if (!strcmp(o, "--buf-mb")) buf_mb = num(o, v);
    else if (!strcmp(o, "--rand-mb")) rand_mb = num(o, v);
    else if (!strcmp(o, "--rand-ops")) rand_ops = num(o, v);
    else if (!strcmp(o, "--rand-seconds")) rand_seconds = num(o, v);
    else if (!strcmp(o, "--rand-written")) rand_written = strtoull(v ? v : "x", NULL, 10);
    else if (!strcmp(o, "--seed")) seed = num(o, v);
    else if (!strcmp(o, "--perf-seconds")) perf_seconds = num(o, v);
    else if (!strcmp(o, "--perf-qd")) perf_qd = num(o, v);
    else if (!strcmp(o, "--perf-gap")) perf_gap = strtoull(v ? v : "x", NULL, 10);
    else if (!strcmp(o, "--perf-seq-only")) perf_seq_only = strtoull(v ? v : "x", NULL, 10);
    else die("unknown option %s", o);
    i++;
  }
  if (!strcmp(argv[1], "run")) return run(argv[2]);
  if (!strcmp(argv[1], "verify")) return verify(argv[2]);
  if (!strcmp(argv[1], "fill")) return fill_file(argv[2]);
  if (!strcmp(argv[1], "refuse")) return refuse(argv[2]);
  if (!strcmp(argv[1], "perf")) return perf(argv[2]);
  if (!strcmp(argv[1], "waitmark")) return waitmark(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
  die("unknown mode %s", argv[1]);
  return 2;
}
