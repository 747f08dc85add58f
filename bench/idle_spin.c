/*
 * bench/idle_spin.c: how much CPU a machine really has left while something
 * else runs. N threads spin at SCHED_IDLE priority (run it under
 * `chrt --idle 0`), so they get a CPU only when nothing else wants it; on
 * SIGINT or SIGTERM it prints the CPU time they got, as a share of N CPUs
 * over the time it ran. On this virtual machine /proc/stat's idle time is
 * counted from scheduler ticks and is only an estimate; the spinners' CPU
 * time is exact. They do take a little from what they measure (a woken
 * thread may wait for a spinner's tick to end): compare the throughput of
 * the runs with and without them.
 *
 *   gcc -O2 -o /tmp/idle_spin bench/idle_spin.c -lpthread
 *   chrt --idle 0 /tmp/idle_spin 2 & SPIN=$!; ...load...; kill $SPIN
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) { (void)sig; stop = 1; }
static void *spin(void *arg) { (void)arg; while (!stop) {} return 0; }

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 0;
  if (n < 1 || n > 64) { fprintf(stderr, "usage: %s THREADS (1..64), under chrt --idle 0\n", argv[0]); return 2; }
  signal(SIGTERM, on_signal); signal(SIGINT, on_signal);
  pthread_t t[64]; struct timespec w0, w1, cpu;
  clock_gettime(CLOCK_MONOTONIC, &w0);
  for (int i = 0; i < n; i++) pthread_create(&t[i], 0, spin, 0);
  for (int i = 0; i < n; i++) pthread_join(t[i], 0);
  clock_gettime(CLOCK_MONOTONIC, &w1); clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  double el = (w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9, cs = cpu.tv_sec + cpu.tv_nsec / 1e9;
  printf("idle_spin: %.2f s, %.2f CPU-seconds left over: %.0f%% of %d CPUs\n", el, cs, 100 * cs / (el * n), n);
  return 0;
}
