/*
 * bench/fs_floor.h: the measurements fs_floor.c and fs_floor_uring.c share.
 */
#ifndef PILLARBOX_FS_FLOOR_H
#define PILLARBOX_FS_FLOOR_H
#include <stdio.h>
#include <unistd.h>

/* The whole machine's busy CPU time so far, in seconds (/proc/stat: user,
 * nice, system, irq, softirq), which counts the kernel's writeback threads
 * too. Not steal (the host running something else while one of our CPUs
 * waited): bench/procstat.py leaves it out too, so the floor and the
 * servers' runs are counted alike. 0 if unreadable. */
static double busy_s(void) {
  FILE *f = fopen("/proc/stat", "r"); long v[8] = {0};
  if (!f) return 0;
  if (fscanf(f, "cpu %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8) { fclose(f); return 0; }
  fclose(f);
  return (v[0] + v[1] + v[2] + v[5] + v[6]) / (double)sysconf(_SC_CLK_TCK);
}

/* Block writes and cache flushes completed so far on block device DEV, a
 * disk or a partition (/sys/class/block/DEV/stat: fields 5 and 16). Both 0
 * if unreadable. */
static void stat_io(const char *dev, long *writes, long *flushes) {
  char sp[160]; snprintf(sp, sizeof sp, "/sys/class/block/%s/stat", dev);
  FILE *fp = fopen(sp, "r"); long v[17] = {0};
  if (!fp) { *writes = *flushes = 0; return; }
  for (int i = 0; i < 17; i++) if (fscanf(fp, "%ld", &v[i]) != 1) break;
  fclose(fp); *writes = v[4]; *flushes = v[15];
}
#endif
