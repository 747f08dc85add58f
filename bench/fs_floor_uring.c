/*
 * bench/fs_floor_uring.c: fs_floor's `v0` file work (create a named spool
 * file, write 4 KiB, fsync, link into new/, fsync new/, unlink the spool name)
 * driven through io_uring from ONE thread with K messages in flight, instead
 * of K threads each blocking in its syscalls. It asks whether an io_uring
 * commit path would cost the machine less CPU per message than the blocking
 * pool does. It did not (docs/PERFORMANCE.md, "After 07c1987"), so Pillarbox
 * has no io_uring path; this file keeps the measurement repeatable.
 *
 * The create stays a plain open(2) on the submitting thread; write, fsync,
 * linkat, fsync of new/ and unlinkat are one linked chain per message
 * (IOSQE_IO_LINK), so each step starts only after the previous one succeeded.
 * Each message fsyncs new/ itself (no shared rounds), as fs_floor does.
 * Needs liburing (Debian: liburing-dev) and Linux 5.15 or later (IORING_OP_LINKAT).
 *
 *   gcc -O2 -o /tmp/fs_floor_uring bench/fs_floor_uring.c -luring
 *   /tmp/fs_floor_uring 10000 20 /var/tmp/fs-floor/NEWDIR vda
 *
 * Prints messages/s, block writes and cache flushes per message (from
 * /sys/class/block/DEV/stat), this process's CPU per message (its io-wq workers
 * included) and the whole machine's busy CPU per message (/proc/stat), in
 * fs_floor's format. DIR must not exist yet: nothing is deleted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "fs_floor.h"

#define STEPS 5
static char data[4096];
static const char *dev;

static double now(void) { struct timeval t; gettimeofday(&t, 0); return t.tv_sec + t.tv_usec / 1e6; }

static double cpu_s(void) {
  struct rusage r; getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

struct msg { int fd, left, failed; char spool[512], target[512]; };

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: %s N INFLIGHT DIR BLOCKDEV\n", argv[0]); return 2; }
  int n = atoi(argv[1]), k = atoi(argv[2]); const char *base = argv[3]; dev = argv[4];
  if (n < 1 || k < 1 || k > 48) { fprintf(stderr, "N >= 1, 1 <= INFLIGHT <= 48\n"); return 2; }
  char d[512];
  if (mkdir(base, 0755)) { perror(base); return 1; }
  snprintf(d, sizeof d, "%s/spool", base); if (mkdir(d, 0755)) { perror(d); return 1; }
  snprintf(d, sizeof d, "%s/new", base); if (mkdir(d, 0755)) { perror(d); return 1; }
  int newfd = open(d, O_RDONLY | O_DIRECTORY);
  if (newfd < 0) { perror(d); return 1; }
  memset(data, 'x', sizeof data);
  struct io_uring ring;
  int e = io_uring_queue_init(256, &ring, 0);
  if (e) { fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-e)); return 1; }
  struct msg *m = calloc(k, sizeof *m);
  if (!m) return 1;
  int next = 0, inflight = 0, failed = 0;
  long w0, f0, w1, f1; stat_io(dev, &w0, &f0);
  double b0 = busy_s(), c0 = cpu_s(), t0 = now();
  for (;;) {
    for (int i = 0; i < k && next < n; i++) {
      struct msg *x = &m[i];
      if (x->left) continue;
      int id = ++next;
      snprintf(x->spool, sizeof x->spool, "%s/spool/%d", base, id);
      snprintf(x->target, sizeof x->target, "%s/new/%d", base, id);
      x->fd = open(x->spool, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (x->fd < 0) { perror(x->spool); return 1; }
      struct io_uring_sqe *s[STEPS];
      for (int j = 0; j < STEPS; j++) s[j] = io_uring_get_sqe(&ring);
      io_uring_prep_write(s[0], x->fd, data, sizeof data, 0);
      io_uring_prep_fsync(s[1], x->fd, 0);
      io_uring_prep_linkat(s[2], AT_FDCWD, x->spool, AT_FDCWD, x->target, 0);
      io_uring_prep_fsync(s[3], newfd, 0);
      io_uring_prep_unlinkat(s[4], AT_FDCWD, x->spool, 0);
      for (int j = 0; j < STEPS; j++) {
        if (j < STEPS - 1) s[j]->flags |= IOSQE_IO_LINK;
        io_uring_sqe_set_data(s[j], x);
      }
      x->left = STEPS; x->failed = 0; inflight++;
    }
    if (!inflight) break;
    e = io_uring_submit_and_wait(&ring, 1);
    if (e < 0) { fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-e)); return 1; }
    struct io_uring_cqe *c; unsigned head; int seen = 0;
    io_uring_for_each_cqe(&ring, head, c) {
      struct msg *x = io_uring_cqe_get_data(c);
      /* A failed step cancels the rest of its chain (-ECANCELED). */
      if (c->res < 0 && c->res != -ECANCELED && !x->failed) { fprintf(stderr, "step failed: %s\n", strerror(-c->res)); x->failed = 1; }
      if (--x->left == 0) { close(x->fd); inflight--; failed += x->failed; }
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
  }
  double t1 = now(), b1 = busy_s(), c1 = cpu_s(); stat_io(dev, &w1, &f1);
  printf("uring     K=%d: %6.0f/s writes/msg %.2f flushes/msg %.2f cpu us/msg %.1f machine-busy us/msg %.1f failed %d\n",
         k, n / (t1 - t0), (w1 - w0) / (double)n, (f1 - f0) / (double)n, (c1 - c0) * 1e6 / n, (b1 - b0) * 1e6 / n, failed);
  io_uring_queue_exit(&ring);
  return failed ? 1 : 0;
}
