/* Wake-up cost of an idle vCPU, with (argv[1]=1) and without the PM QoS CPU-latency request. See idle-wake.sh. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
static int64_t now(clockid_t c){struct timespec t;clock_gettime(c,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
static int rx, tx; static struct sockaddr_in addr; static int N=200; static int64_t wake[1000], tlate[1000];
static void rt(void){struct sched_param p={.sched_priority=10}; if(getenv("RT")) pthread_setschedparam(pthread_self(),SCHED_FIFO,&p);}
static void* recvr(void*a){ rt(); char buf[64]; for(int i=0;i<N;i++){ struct msghdr m={0}; struct iovec v={buf,64}; char cb[256]; m.msg_iov=&v;m.msg_iovlen=1;m.msg_control=cb;m.msg_controllen=sizeof cb;
 recvmsg(rx,&m,0); int64_t t=now(CLOCK_REALTIME); for(struct cmsghdr*c=CMSG_FIRSTHDR(&m);c;c=CMSG_NXTHDR(&m,c)) if(c->cmsg_type==SO_TIMESTAMPNS){struct timespec ts; memcpy(&ts,CMSG_DATA(c),sizeof ts); wake[i]=t-(ts.tv_sec*1000000000LL+ts.tv_nsec);} } return 0;}
static int cmp(const void*a,const void*b){int64_t x=*(int64_t*)a,y=*(int64_t*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){ int qos=argc>1&&atoi(argv[1]); int fd=-1; if(qos){fd=open("/dev/cpu_dma_latency",O_WRONLY); int32_t z=0; write(fd,&z,4);}
 rx=socket(AF_INET,SOCK_DGRAM,0); tx=socket(AF_INET,SOCK_DGRAM,0); int one=1; setsockopt(rx,SOL_SOCKET,SO_TIMESTAMPNS,&one,4);
 addr.sin_family=AF_INET; addr.sin_addr.s_addr=htonl(0x7f000001); bind(rx,(void*)&addr,sizeof addr); socklen_t l=sizeof addr; getsockname(rx,(void*)&addr,&l);
 pthread_t t; pthread_create(&t,0,recvr,0); rt();
 for(int i=0;i<N;i++){ int64_t target=now(CLOCK_MONOTONIC)+10000000; struct timespec ts={target/1000000000,target%1000000000}; clock_nanosleep(CLOCK_MONOTONIC,TIMER_ABSTIME,&ts,0); tlate[i]=now(CLOCK_MONOTONIC)-target; sendto(tx,"x",1,0,(void*)&addr,sizeof addr);}
 pthread_join(t,0); qsort(wake,N,8,cmp); qsort(tlate,N,8,cmp);
 printf("qos=%d recv-wake us p50 %.1f p90 %.1f p99 %.1f | timer-late us p50 %.1f p90 %.1f p99 %.1f\n",qos,wake[N/2]/1e3,wake[N*9/10]/1e3,wake[N*99/100]/1e3,tlate[N/2]/1e3,tlate[N*9/10]/1e3,tlate[N*99/100]/1e3);
 if(fd>=0) close(fd); return 0;}
