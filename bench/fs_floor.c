/*
 * bench/fs_floor.c: the file-system work of one durable delivery, alone, on
 * T threads: what a server pays per message before any SMTP. Variants:
 *   v0       named spool file: create, write, fsync, link into new/, fsync new/,
 *            unlink (Pillarbox since 07c1987, which shares the fsyncs of new/)
 *   v0r      v0 with a rename into new/ instead of the link and the unlink
 *   tmpfile2 O_TMPFILE, write, fdatasync, linkat into new/, fsync new/ (Pillarbox
 *            67673a2; unsafe without a journal, see tmpfile3)
 *   tmpfile3 tmpfile2 plus an fsync of the file after the link, so the inode's
 *            link count is on disk too (without a journal, e2fsck treats an
 *            inode whose on-disk count is 0 as deleted and clears its entry;
 *            Pillarbox bb07266 to 643417f)
 *   anchor   O_TMPFILE, write, link into spool/, fsync (data and a count of 1
 *            at once), link into new/, fsync new/, unlink the spool name
 *   pre      v0 with spool files created ahead: a thread keeps a pool of open,
 *            empty spool files, made in batches of PRE_BATCH with one fsync of
 *            spool/ per batch; the delivered spool names are unlinked in the
 *            next batch. Per message: take a file, write, fsync, link into
 *            new/, fsync new/. The spool/ block a new file's first fsync
 *            writes (its parent, ext4_sync_parent) is then clean.
 *   v2       classic Maildir: create in tmp/, write, fsync, rename into new/, fsync new/
 *   nosync   tmp/ + rename, no fsync at all
 *   syncfs2  group commit by syncfs(2): O_TMPFILE, write, wait for a shared
 *            round, linkat into new/, wait for another round; a round is
 *            syncfs + fsync of new/ (on ext4 without a journal syncfs issues
 *            its cache flush before its last metadata writes, the fsync adds
 *            one after them). Two rounds, because a name must not reach the
 *            disk before the data it names: with one round after the link, a
 *            crash can leave an empty file in new/.
 *   wal      not Pillarbox's design (Pillarbox puts each message in its
 *            Maildir, fsync'd, before its 250): the message appended to a
 *            shared queue log written ahead of time (pwrite into blocks
 *            already allocated and written), acknowledged after a shared
 *            fdatasync round of the log (a round started after its write),
 *            then delivered by one background thread in batches: create in
 *            tmp/, write, close; syncfs; rename each into new/; fsync new/
 *            (after which the log's blocks could be reused); at most
 *            WAL_BATCH (64; -DWAL_BATCH=n) messages a round. Prints the
 *            acknowledgement rate and the mean time from the write to the
 *            acknowledgement besides the delivered rate.
 * v0 driven through io_uring from one thread is bench/fs_floor_uring.c.
 * Prints messages/s, block-device writes and flushes per message (from
 * /sys/class/block/$DEV/stat), this process's CPU and context switches per message,
 * and the whole machine's busy CPU per message (/proc/stat: it includes the
 * kernel's writeback threads, which syncfs leaves the work to).
 *
 *   gcc -O2 -o /tmp/fs_floor bench/fs_floor.c -lpthread
 *   /tmp/fs_floor tmpfile2 10000 20 /var/tmp/fs-floor vda
 *
 * It deletes nothing it did not create, but does `rm -rf DIR/d-VARIANT` first:
 * mind the recently-deleted-inode effect (docs/PERFORMANCE.md) between runs.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <time.h>
#include "fs_floor.h"
static const char *variant, *dev; static int N, T; static char base[256];
static int counter = 0; static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char data[4096];
/* A shared round: a sync that waiters share. round_wait returns once a round
 * that started after the call has finished, running it when none runs. */
struct round { pthread_mutex_t m; pthread_cond_t c; long started, finished, count; int running; const char *what; };
#define ROUND_INIT(what) { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, what }
static void round_wait(struct round *r, int (*sync)(int), int fd){
  pthread_mutex_lock(&r->m); long need=r->started+1;
  while(r->finished<need){
    if(r->running){ pthread_cond_wait(&r->c,&r->m); continue; }
    r->running=1; long me=++r->started; pthread_mutex_unlock(&r->m);
    if(sync(fd)) perror(r->what);
    pthread_mutex_lock(&r->m); r->count++; r->finished=me; r->running=0; pthread_cond_broadcast(&r->c);
  }
  pthread_mutex_unlock(&r->m);
}
static long rounds = 0;
/* "syncfs2": a round is syncfs, then an fsync of new/. */
static int syncfs_then_fsync(int dirfd){ return syncfs(dirfd)||fsync(dirfd); }
static struct round dir_round = ROUND_INIT("syncfs");
/* "wal": the queue log, its shared fdatasync rounds, and the delivery queue
 * (at most WAL_BATCH messages per delivery round). */
#ifndef WAL_BATCH
#define WAL_BATCH 64
#endif
static int logfd = -1; static struct round log_round = ROUND_INIT("fdatasync log");
static pthread_mutex_t wm = PTHREAD_MUTEX_INITIALIZER; static pthread_cond_t qc = PTHREAD_COND_INITIALIZER;
static int *wq; static int wq_n = 0, wq_head = 0, acked = 0; static double ack_wait = 0, last_ack = 0;
static double now_s(void){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec/1e9; }
static void *deliverer(void *arg){
  char p[512], q[512], nd[300]; snprintf(nd,sizeof nd,"%s/md/new",base); int newfd=open(nd,O_RDONLY|O_DIRECTORY);
  int *batch=malloc(sizeof(int)*(N+1)); int done=0;
  while(done<N){
    pthread_mutex_lock(&wm); while(wq_head==wq_n) pthread_cond_wait(&qc,&wm);
    int n=0; while(wq_head<wq_n&&n<WAL_BATCH) batch[n++]=wq[wq_head++]; pthread_mutex_unlock(&wm);
    for(int i=0;i<n;i++){
      snprintf(p,sizeof p,"%s/md/tmp/%d",base,batch[i]); int fd=open(p,O_WRONLY|O_CREAT|O_EXCL,0600);
      if(fd<0||write(fd,data,4096)!=4096) perror(p);
      if(fd>=0) close(fd);
    }
    if(syncfs(newfd)) perror("syncfs");
    for(int i=0;i<n;i++){
      snprintf(p,sizeof p,"%s/md/tmp/%d",base,batch[i]); snprintf(q,sizeof q,"%s/md/new/%d",base,batch[i]);
      if(rename(p,q)) perror("rename");
    }
    if(fsync(newfd)) perror("fsync new");
    done+=n; rounds++;
  }
  free(batch); close(newfd); return 0;
}
/* "pre": the pool of spool files created ahead, and the names to unlink. */
#define PRE_CAP 256
#define PRE_BATCH 64
static pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER; static pthread_cond_t pc = PTHREAD_COND_INITIALIZER, pr = PTHREAD_COND_INITIALIZER;
static int pool_fd[PRE_CAP], pool_k[PRE_CAP], pool_n = 0, pre_next = 0, pre_done = 0;
static int *dead; static int dead_n = 0; static long pre_batches = 0;
static void *refiller(void *arg){
  char p[512]; char sd[300]; snprintf(sd,sizeof sd,"%s/spool",base); int spoolfd=open(sd,O_RDONLY|O_DIRECTORY);
  int mine[PRE_BATCH], mk[PRE_BATCH]; int *gone=malloc(sizeof(int)*(N+1));
  pthread_mutex_lock(&pm);
  for(;;){
    while(!pre_done && pool_n > PRE_CAP-PRE_BATCH) pthread_cond_wait(&pr,&pm);
    if(pre_done) break;
    int g=dead_n; memcpy(gone,dead,sizeof(int)*g); dead_n=0;
    pthread_mutex_unlock(&pm);
    for(int i=0;i<g;i++){ snprintf(p,sizeof p,"%s/spool/p%d",base,gone[i]); unlink(p); }
    for(int i=0;i<PRE_BATCH;i++){ int k=++pre_next; snprintf(p,sizeof p,"%s/spool/p%d",base,k); mine[i]=open(p,O_WRONLY|O_CREAT|O_EXCL,0600); mk[i]=k; }
    fsync(spoolfd);
    pthread_mutex_lock(&pm); pre_batches++;
    for(int i=0;i<PRE_BATCH;i++){ pool_fd[pool_n]=mine[i]; pool_k[pool_n]=mk[i]; pool_n++; }
    pthread_cond_broadcast(&pc);
  }
  pthread_mutex_unlock(&pm); free(gone); close(spoolfd); return 0;
}
static void *worker(void *arg){
  char p[512], q[512], pp[64];
  char nd[300]; snprintf(nd,sizeof nd,"%s/md/new",base); int newfd=open(nd,O_RDONLY|O_DIRECTORY);
  char td[300]; snprintf(td,sizeof td,"%s/md/tmp",base);
  for(;;){
    pthread_mutex_lock(&mu); if(counter>=N){pthread_mutex_unlock(&mu);break;} int k=++counter; pthread_mutex_unlock(&mu);
    if(!strcmp(variant,"wal")){
      double t0=now_s();
      if(pwrite(logfd,data,4096,(off_t)(k-1)*4096)!=4096) perror("pwrite log");
      round_wait(&log_round,fdatasync,logfd);
      double t1=now_s();
      pthread_mutex_lock(&wm); wq[wq_n++]=k; acked++; ack_wait+=t1-t0; if(t1>last_ack) last_ack=t1; pthread_cond_signal(&qc); pthread_mutex_unlock(&wm);
    } else if(!strcmp(variant,"v0")){
      snprintf(p,sizeof p,"%s/spool/%d",base,k); int fd=open(p,O_WRONLY|O_CREAT|O_EXCL,0600);
      write(fd,data,4096); fsync(fd); close(fd);
      snprintf(q,sizeof q,"%s/md/new/%d",base,k); link(p,q); fsync(newfd); unlink(p);
    } else if(!strcmp(variant,"pre")){
      pthread_mutex_lock(&pm); while(pool_n==0) pthread_cond_wait(&pc,&pm);
      pool_n--; int fd=pool_fd[pool_n], pk=pool_k[pool_n]; if(pool_n<=PRE_CAP-PRE_BATCH) pthread_cond_signal(&pr); pthread_mutex_unlock(&pm);
      write(fd,data,4096); fsync(fd); close(fd);
      snprintf(p,sizeof p,"%s/spool/p%d",base,pk); snprintf(q,sizeof q,"%s/md/new/%d",base,k); if(link(p,q)) perror("link"); fsync(newfd);
      pthread_mutex_lock(&pm); dead[dead_n++]=pk; pthread_mutex_unlock(&pm);
    } else if(!strcmp(variant,"v0r")){ /* v0 with a rename into new/ instead of link + unlink */
      snprintf(p,sizeof p,"%s/spool/%d",base,k); int fd=open(p,O_WRONLY|O_CREAT|O_EXCL,0600);
      write(fd,data,4096); fsync(fd); close(fd);
      snprintf(q,sizeof q,"%s/md/new/%d",base,k); if(rename(p,q)) perror("rename"); fsync(newfd);
    } else if(!strcmp(variant,"v0d")){ /* fdatasync spool */
      snprintf(p,sizeof p,"%s/spool/%d",base,k); int fd=open(p,O_WRONLY|O_CREAT|O_EXCL,0600);
      write(fd,data,4096); fdatasync(fd); close(fd);
      snprintf(q,sizeof q,"%s/md/new/%d",base,k); link(p,q); fsync(newfd); unlink(p);
    } else if(!strcmp(variant,"tmpfile")){ /* O_TMPFILE, fdatasync, link, fsync file */
      int fd=open(td,O_WRONLY|O_TMPFILE,0600); write(fd,data,4096); fdatasync(fd);
      snprintf(pp,sizeof pp,"/proc/self/fd/%d",fd); snprintf(q,sizeof q,"%s/md/new/%d",base,k);
      if(linkat(AT_FDCWD,pp,AT_FDCWD,q,AT_SYMLINK_FOLLOW)) perror("linkat");
      fsync(fd); close(fd);
    } else if(!strcmp(variant,"tmpfile2")){ /* O_TMPFILE, fdatasync, link, fsync dir */
      int fd=open(td,O_WRONLY|O_TMPFILE,0600); write(fd,data,4096); fdatasync(fd);
      snprintf(pp,sizeof pp,"/proc/self/fd/%d",fd); snprintf(q,sizeof q,"%s/md/new/%d",base,k);
      if(linkat(AT_FDCWD,pp,AT_FDCWD,q,AT_SYMLINK_FOLLOW)) perror("linkat");
      fsync(newfd); close(fd);
    } else if(!strcmp(variant,"tmpfile3")){ /* O_TMPFILE, fdatasync, link, fsync file, fsync dir */
      int fd=open(td,O_WRONLY|O_TMPFILE,0600); write(fd,data,4096); fdatasync(fd);
      snprintf(pp,sizeof pp,"/proc/self/fd/%d",fd); snprintf(q,sizeof q,"%s/md/new/%d",base,k);
      if(linkat(AT_FDCWD,pp,AT_FDCWD,q,AT_SYMLINK_FOLLOW)) perror("linkat");
      fsync(fd); fsync(newfd); close(fd);
    } else if(!strcmp(variant,"anchor")){ /* O_TMPFILE, write, linkat into spool/, fsync file, linkat into new/, fsync dir, unlink spool name */
      int fd=open(td,O_WRONLY|O_TMPFILE,0600); write(fd,data,4096);
      snprintf(pp,sizeof pp,"/proc/self/fd/%d",fd); snprintf(p,sizeof p,"%s/spool/%d",base,k);
      if(linkat(AT_FDCWD,pp,AT_FDCWD,p,AT_SYMLINK_FOLLOW)) perror("linkat spool");
      fsync(fd);
      snprintf(q,sizeof q,"%s/md/new/%d",base,k);
      if(linkat(AT_FDCWD,pp,AT_FDCWD,q,AT_SYMLINK_FOLLOW)) perror("linkat");
      fsync(newfd); close(fd); unlink(p);
    } else if(!strcmp(variant,"v2")){
      snprintf(p,sizeof p,"%s/md/tmp/%d",base,k); int fd=open(p,O_WRONLY|O_CREAT|O_EXCL,0600);
      write(fd,data,4096); fsync(fd); close(fd);
      snprintf(q,sizeof q,"%s/md/new/%d",base,k); rename(p,q); fsync(newfd);
    } else if(!strcmp(variant,"syncfs2")){
      int fd=open(td,O_WRONLY|O_TMPFILE,0600); write(fd,data,4096);
      round_wait(&dir_round,syncfs_then_fsync,newfd);
      snprintf(pp,sizeof pp,"/proc/self/fd/%d",fd); snprintf(q,sizeof q,"%s/md/new/%d",base,k);
      if(linkat(AT_FDCWD,pp,AT_FDCWD,q,AT_SYMLINK_FOLLOW)) perror("linkat");
      close(fd); round_wait(&dir_round,syncfs_then_fsync,newfd);
    } else if(!strcmp(variant,"nosync")){
      snprintf(p,sizeof p,"%s/md/tmp/%d",base,k); int fd=open(p,O_WRONLY|O_CREAT|O_EXCL,0600);
      write(fd,data,4096); close(fd);
      snprintf(q,sizeof q,"%s/md/new/%d",base,k); rename(p,q);
    }
  }
  close(newfd); return 0;
}
int main(int argc,char**argv){
  if(argc<6){fprintf(stderr,"usage: %s VARIANT N THREADS DIR BLOCKDEV\n",argv[0]);return 2;} variant=argv[1]; N=atoi(argv[2]); T=atoi(argv[3]); dev=argv[5]; if(strcmp(variant,"v0")&&strcmp(variant,"v0r")&&strcmp(variant,"v0d")&&strcmp(variant,"tmpfile")&&strcmp(variant,"tmpfile2")&&strcmp(variant,"tmpfile3")&&strcmp(variant,"anchor")&&strcmp(variant,"v2")&&strcmp(variant,"nosync")&&strcmp(variant,"syncfs2")&&strcmp(variant,"pre")&&strcmp(variant,"wal")){fprintf(stderr,"unknown variant %s\n",variant);return 2;} if(T<1||T>256){fprintf(stderr,"1..256 threads\n");return 2;} memset(data,'x',4096);
  snprintf(base,sizeof base,"%s/d-%s",argv[4],variant); char cmd[600]; snprintf(cmd,sizeof cmd,"rm -rf %s; mkdir -p %s/spool %s/md/new %s/md/tmp %s/md/cur; sync",base,base,base,base,base); system(cmd);
  int wal=!strcmp(variant,"wal"); pthread_t dl;
  if(wal){ /* the log written ahead of time, as a reused ring would be */
    char lp[300]; snprintf(lp,sizeof lp,"%s/queue.log",base); logfd=open(lp,O_RDWR|O_CREAT|O_EXCL,0600);
    if(logfd<0){perror(lp);return 1;}
    for(int i=0;i<N;i++) if(write(logfd,data,4096)!=4096){perror("log");return 1;}
    if(fsync(logfd)){perror("fsync log");return 1;} wq=malloc(sizeof(int)*(N+1)); }
  struct rusage ru0; getrusage(RUSAGE_SELF,&ru0); /* the set-up's CPU is not counted */
  long w0,f0,w1,f1; stat_io(dev,&w0,&f0); double b0=busy_s(); struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a);
  pthread_t th[256], rf; int pre=!strcmp(variant,"pre"); if(pre){ dead=malloc(sizeof(int)*(N+1)); pthread_create(&rf,0,refiller,0); }
  if(wal) pthread_create(&dl,0,deliverer,0);
  for(int i=0;i<T;i++) pthread_create(&th[i],0,worker,0); for(int i=0;i<T;i++) pthread_join(th[i],0);
  if(pre){ pthread_mutex_lock(&pm); pre_done=1; pthread_cond_broadcast(&pr); pthread_mutex_unlock(&pm); pthread_join(rf,0); rounds=pre_batches; }
  if(wal) pthread_join(dl,0);
  if(!strcmp(variant,"syncfs2")) rounds=dir_round.count;
  clock_gettime(CLOCK_MONOTONIC,&b); stat_io(dev,&w1,&f1); double b1=busy_s(); struct rusage ru; getrusage(RUSAGE_SELF,&ru);
  double el=(b.tv_sec-a.tv_sec)+(b.tv_nsec-a.tv_nsec)/1e9; double cpu=ru.ru_utime.tv_sec-ru0.ru_utime.tv_sec+(ru.ru_utime.tv_usec-ru0.ru_utime.tv_usec)/1e6+ru.ru_stime.tv_sec-ru0.ru_stime.tv_sec+(ru.ru_stime.tv_usec-ru0.ru_stime.tv_usec)/1e6;
  printf("%-9s T=%d: %6.0f/s writes/msg %.2f flushes/msg %.2f cpu us/msg %.1f ctxsw/msg %.1f machine-busy us/msg %.1f rounds %ld\n",variant,T,N/el,(double)(w1-w0)/N,(double)(f1-f0)/N,cpu*1e6/N,(double)(ru.ru_nvcsw+ru.ru_nivcsw-ru0.ru_nvcsw-ru0.ru_nivcsw)/N,(b1-b0)*1e6/N,rounds);
  if(wal){ double st=a.tv_sec+a.tv_nsec/1e9; printf("%-9s acknowledged %6.0f/s, mean wait for the acknowledgement %.3f ms, log rounds %ld\n","",acked/(last_ack-st),1e3*ack_wait/acked,log_round.count); }
}
