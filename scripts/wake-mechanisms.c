/* The cost of a wake-up by mechanism, between two processes pinned to CPUs
 * 0 and 1, both asleep on every message: what an async end (asleep in epoll)
 * pays against a blocking one (asleep on a futex), with nothing of ipcraft
 * or tokio in the way.
 *
 *   cc -O2 -o /tmp/wake scripts/wake-mechanisms.c
 *   for m in futex eventfd dgram; do /tmp/wake $m; done
 *
 * futex:   FUTEX_WAKE / FUTEX_WAIT on a shared word (the channel's blocking
 *          sleep).
 * eventfd: write(2) to an eventfd / epoll_wait, never read (edge-triggered:
 *          each write is a new event): the cheapest pollable wake-up.
 * dgram:   send(2) one byte on a Unix datagram socket / epoll_wait, then
 *          recv(2): what the channel's async doorbell does.
 * Prints the mean round trip (two wake-ups). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <unistd.h>
#include <time.h>
#include <sched.h>
#include <stdatomic.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
#define N 20000
int main(int argc,char**argv){
  const char*mode=argv[1];
  _Atomic uint32_t *w = mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  int a[2], b[2]; // a: parent->child, b: child->parent
  int efa=-1, efb=-1;
  if(!strcmp(mode,"dgram")){ socketpair(AF_UNIX,SOCK_DGRAM,0,a); socketpair(AF_UNIX,SOCK_DGRAM,0,b);} 
  if(!strcmp(mode,"eventfd")){ efa=eventfd(0,EFD_NONBLOCK); efb=eventfd(0,EFD_NONBLOCK);} 
  pid_t p=fork(); int child = p==0; pin(child?1:0);
  int ep=epoll_create1(0); struct epoll_event ev={.events=EPOLLIN|EPOLLET};
  int rfd=-1, wfd=-1;
  if(!strcmp(mode,"dgram")){ rfd = child? a[1]: b[0]; wfd = child? b[1]: a[0]; }
  if(!strcmp(mode,"eventfd")){ rfd = child? efa: efb; wfd = child? efb: efa; }
  if(rfd>=0){ ev.data.fd=rfd; epoll_ctl(ep,EPOLL_CTL_ADD,rfd,&ev); }
  _Atomic uint32_t *mine = child? &w[0]: &w[16], *theirs = child? &w[16]: &w[0];
  double t0=now(); char c=1; uint64_t one=1;
  for(uint32_t i=1;i<=N;i++){
    if(!child){ // parent sends i, waits reply
      atomic_store(theirs,i);
      if(!strcmp(mode,"futex")) syscall(SYS_futex,theirs,FUTEX_WAKE,1,0,0,0);
      else if(!strcmp(mode,"dgram")) send(wfd,&c,1,MSG_DONTWAIT);
      else write(wfd,&one,8);
    }
    // wait for mine == i
    while(atomic_load(mine)!=i){
      if(!strcmp(mode,"futex")) { uint32_t cur=atomic_load(mine); if(cur!=i) syscall(SYS_futex,mine,FUTEX_WAIT,cur,0,0,0); }
      else { struct epoll_event e; epoll_wait(ep,&e,1,-1); if(!strcmp(mode,"dgram")) recv(rfd,&c,1,MSG_DONTWAIT); }
    }
    if(child){ atomic_store(theirs,i);
      if(!strcmp(mode,"futex")) syscall(SYS_futex,theirs,FUTEX_WAKE,1,0,0,0);
      else if(!strcmp(mode,"dgram")) send(wfd,&c,1,MSG_DONTWAIT);
      else write(wfd,&one,8);
    }
  }
  if(child) _exit(0);
  double t=now()-t0; waitpid(p,0,0);
  printf("%s: %.0f ns/rt\n",mode,t/N*1e9);
}
