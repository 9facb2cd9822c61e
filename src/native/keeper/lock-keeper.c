/* afsfile-lock: the process that holds an image's flock on the OpenAFS client (src/image/lock.ts
 * lockImage with a keeper). OpenAFS owns a flock by the process that took it and drops it at
 * that process's next close of any open file of the image (src/afs/VNOPS/afs_vnop_flock.c
 * HandleFlock, called with the closing pid from afs_vnop_write.c afs_close), while the device
 * process must close such files: its reopens after a token renewal, and the close that clears
 * the client's sticky store error (afs_close: vc_error). So the lock belongs to this process,
 * which does nothing else with the file.
 *
 * A static program without libc (x86_64 system calls only), a few kilobytes, exec'd by the
 * addon from a sealed memfd (src/native/lock-keeper.c): a fork of the device process itself
 * would keep a copy of its whole heap alive for as long as the lock is held.
 *
 * On entry: fd 0 is the image (its own open file description), fd 1 one end of a stream
 * socket to the device process; argv[1] is "ex" or "sh". It takes the lock without waiting,
 * answers {pid, errno} (two int32, errno 0 when granted) and, when granted, answers the same to
 * every byte read until EOF: when every copy of the other end is closed (the device is done,
 * or its process died with nobody having adopted the lock), it exits, and its exit is the
 * close that releases the lock (a ReleaseLock to the file server). */
/* Kernel headers only (no libc): LOCK_* (asm-generic/fcntl.h), EINTR, PR_SET_NAME, SIG*, SYS_*. */
#include <asm-generic/errno-base.h>
#include <asm/signal.h>
#include <linux/fcntl.h>
#include <linux/prctl.h>
#include <sys/syscall.h>

#if !defined(__x86_64__)
#error "afsfile-lock: system calls written for x86_64 only"
#endif

static long sys(long n, long a, long b, long c, long d) {
  long r;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return r;
}

/* The kernel's struct sigaction on x86_64 (not libc's): handler, flags, restorer, mask. */
struct ksigaction { unsigned long handler, flags, restorer, mask; };

static void answer(int pid, int err) {
  int msg[2] = { pid, err };
  /* Eight bytes on a stream socket go out whole. A peer already gone raises SIGPIPE, whose
   * default action (reset in keeper_main) ends the keeper: that exit releases the lock too. */
  sys(SYS_write, 1, (long)msg, sizeof msg, 0);
}

__attribute__((noreturn)) static void quit(void) {
  for (;;) sys(SYS_exit_group, 0, 0, 0, 0);
}

__attribute__((noreturn, used)) void keeper_main(long *sp) {
  char **argv = (char **)(sp + 1);
  sys(SYS_prctl, PR_SET_NAME, (long)"afsfile-lock", 0, 0);
  /* exec keeps ignored signals ignored and the mask: a SIGTERM sent to the keeper must end it
   * (systemd's stop), so every signal goes back to its default and is unblocked. */
  struct ksigaction dfl = { 0, 0, 0, 0 };
  for (long s = 1; s <= 64; s++) {
    if (s != SIGKILL && s != SIGSTOP) sys(SYS_rt_sigaction, s, (long)&dfl, 0, 8);
  }
  unsigned long none = 0;
  sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8);
  int pid = (int)sys(SYS_getpid, 0, 0, 0, 0);
  int op = (sp[0] > 1 && argv[1] && argv[1][0] == 's' ? LOCK_SH : LOCK_EX) | LOCK_NB;
  long r;
  do r = sys(SYS_flock, 0, op, 0, 0); while (r == -EINTR);
  answer(pid, r < 0 ? (int)-r : 0);
  if (r < 0) quit();
  char buf[16];
  for (;;) {
    long n = sys(SYS_read, 1, (long)buf, sizeof buf, 0);
    if (n == -EINTR) continue;
    if (n <= 0) quit();
    answer(pid, 0);
  }
}

/* The entry point: the initial stack (argc, argv...) to keeper_main, aligned for the call. */
__asm__(".text\n.global _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n"
        "\tcall keeper_main\n\thlt\n");
