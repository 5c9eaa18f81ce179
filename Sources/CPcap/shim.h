#include <pcap/pcap.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Privilege drop for a thread glibc's setuid() does not reach.
 *
 * glibc broadcasts setuid/setgid to every thread, except threads that are exiting. Swift's async
 * main calls dispatch_main(), which pthread_exit()s the main thread and parks it in sigsuspend()
 * inside a TSD destructor: glibc then skips it and the thread-group leader keeps uid 0 (it still
 * runs signal handlers). em_drop_thread() makes that thread drop its own credentials with raw,
 * per-thread syscalls from a signal handler. */
static inline void em_drop_this_thread(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    uint64_t v = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
    gid_t gid = (gid_t)(v & 0xffffffffu);
    uid_t uid = (uid_t)(v >> 32);
    syscall(SYS_setgroups, 1, &gid);
    syscall(SYS_setresgid, gid, gid, gid);
    syscall(SYS_setresuid, uid, uid, uid);
}

/* Signals thread `tid` of this process so that it drops to uid/gid. Returns 0 when the signal was
 * queued, -1 with errno set otherwise. */
static inline int em_drop_thread(int tid, uint32_t uid, uint32_t gid) {
    int sig = SIGRTMAX - 3;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = em_drop_this_thread;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) return -1;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = sig;
    si.si_code = SI_QUEUE;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_ptr = (void *)(uintptr_t)(((uint64_t)uid << 32) | gid);
    return (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, &si);
}

/* The calling thread's kernel id. */
static inline int em_gettid(void) { return (int)syscall(SYS_gettid); }
